/* ts_elementwise_dsp.c - ADD/SUB with the DSP build's requantization (SMMLAR). Called by ts_add_s8
 * (ts_elementwise_ref.c) when the generator cleared general_requant; the same bytes as the portable rows. */
#include "ts_dsp.h"
#include "ts_elementwise.h"

#if TINYSTUDIO_DSP

/* For the input rescalings ((x + offset) << 20, below 2**28, multipliers in [2**30, 2**31), shifts in
 * [-30, 0]) and the output one (shift in [-23, -1]), which the generator checks (general_requant = 0), each
 * MultiplyByQuantizedMultiplier is one SMMLAR and a shift (ts_dsp.h); the rounding term of a zero shift is 0
 * (the sign bit of x & shift). */
static void ts_add_row_dsp(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                           int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t r1 = -p->a_shift, r2 = -p->b_shift, ro = -p->out_shift;
    const int32_t h1 = (int32_t)(((uint32_t)1 << r1) >> 1), h2 = (int32_t)(((uint32_t)1 << r2) >> 1);
    const int32_t fold = (int32_t)((uint32_t)(2 * p->output_offset + 1) << (ro - 1));
    const int32_t lift = (int32_t)1 << (p->left_shift + 1), lo = p->act_min, hi = p->act_max;
    const int32_t ao = p->a_offset, bo = p->b_offset, am = p->a_multiplier, bm = p->b_multiplier;
    const int32_t ae = p->a_shift, be = p->b_shift, om = p->out_multiplier, sign = p->subtract ? -1 : 1;
    int32_t i;
    for (i = 0; i < n; ++i) { /* the parameters in locals: stores through y may not alias them */
        const int32_t v1 = (a[i * as] + ao) * lift, v2 = (b[i * bs] + bo) * lift;
        const int32_t x1 = ts_smmlar(v1, am, h1 - (int32_t)((uint32_t)(v1 & ae) >> 31)) >> r1;
        const int32_t x2 = ts_smmlar(v2, bm, h2 - (int32_t)((uint32_t)(v2 & be) >> 31)) >> r2;
        const int32_t raw = x1 + sign * x2;
        const int32_t v = ts_smmlar(raw * 2, om, fold - (int32_t)((uint32_t)raw >> 31)) >> ro;
        y[i] = ts_clamp8(v, lo, hi);
    }
}

void ts_add_s8_dsp(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_add_row_dsp, a, b, y);
}

#endif /* TINYSTUDIO_DSP */
