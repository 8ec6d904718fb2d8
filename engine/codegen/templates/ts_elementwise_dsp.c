/* ts_elementwise_dsp.c - ADD/SUB on the DSP build: the generator's proved linear form where the layer has one
 * (two MLAs and a shift per element), else TFLite's rescalings with SMMLAR. Called by ts_add_s8
 * (ts_elementwise_ref.c) when either applies; the same bytes as the portable rows. */
#include "ts_dsp.h"
#include "ts_elementwise.h"

#if TINYSTUDIO_DSP

/* For the input rescalings ((x + offset) << 20, below 2**28, multipliers in [2**30, 2**31), shifts in
 * [-30, 0]) and the output one (shift in [-23, -1]), which the generator checks (general_requant = 0), each
 * MultiplyByQuantizedMultiplier is one SMMLAR and a shift (ts_dsp.h); the rounding term of a zero shift is 0
 * (the sign bit of x & shift). */
/* One input's rescaling, (x + offset) << (left_shift + 1) multiplied by its multiplier and shifted right by r:
 * lift = 2**(left_shift + 1), olift = offset * lift, h = the rounding half, mask = the shift (its sign bit set
 * when the shift is negative, which gives the rounding term of a negative value). */
TS_ALWAYS_INLINE int32_t ts_add_input(int32_t x, int32_t lift, int32_t olift, int32_t h, int32_t mask, int32_t m,
                                      int32_t r)
{
    const int32_t v = x * lift + olift;
    return ts_smmlar(v, m, h - (int32_t)((uint32_t)(v & mask) >> 31)) >> r;
}

static void ts_add_row_dsp(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                           int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t r1 = -p->a_shift, r2 = -p->b_shift, ro = -p->out_shift;
    const int32_t h1 = (int32_t)(((uint32_t)1 << r1) >> 1), h2 = (int32_t)(((uint32_t)1 << r2) >> 1);
    const int32_t fold = (int32_t)((uint32_t)(2 * p->output_offset + 1) << (ro - 1));
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t ao = p->a_offset * ((int32_t)1 << (p->left_shift + 1));
    const int32_t bo = p->b_offset * ((int32_t)1 << (p->left_shift + 1));
    const int32_t ae = p->a_shift, be = p->b_shift, am = p->a_multiplier, bm = p->b_multiplier, om = p->out_multiplier;
    const int full = lo == -128 && hi == 127;
    int32_t lift = (int32_t)1 << (p->left_shift + 1), raw[16];
    int32_t i, j, k;
    TS_OPAQUE(lift); /* one MLA for x * lift + offset, not a shift and an add */
    /* Contiguous rows, 16 elements at a time in three short loops (input a, input b, output), so that each
     * loop's constants stay in registers; strided (broadcast) rows one element at a time. */
    for (i = 0; as == 1 && bs == 1 && i + 16 <= n; i += 16) {
        for (j = 0; j < 16; ++j) {
            raw[j] = ts_add_input(a[i + j], lift, ao, h1, ae, am, r1);
        }
        if (p->subtract) {
            for (j = 0; j < 16; ++j) {
                raw[j] -= ts_add_input(b[i + j], lift, bo, h2, be, bm, r2);
            }
        } else {
            for (j = 0; j < 16; ++j) {
                raw[j] += ts_add_input(b[i + j], lift, bo, h2, be, bm, r2);
            }
        }
        if (full) { /* no activation: SSAT alone clamps (5 instructions an element less) */
            for (j = 0; j < 16; ++j) {
                k = raw[j];
                y[i + j] = (int8_t)ts_ssat8(ts_smmlar(k * 2, om, fold - (int32_t)((uint32_t)k >> 31)) >> ro);
            }
        } else {
            for (j = 0; j < 16; ++j) { /* lo and hi lie in the int8 range: the clamp alone saturates */
                k = raw[j];
                k = ts_smmlar(k * 2, om, fold - (int32_t)((uint32_t)k >> 31)) >> ro;
                k = k < lo ? lo : k;
                y[i + j] = (int8_t)(k > hi ? hi : k);
            }
        }
    }
    for (; i < n; ++i) { /* the parameters in locals: stores through y may not alias them */
        const int32_t x1 = ts_add_input(a[i * as], lift, ao, h1, ae, am, r1);
        const int32_t x2 = ts_add_input(b[i * bs], lift, bo, h2, be, bm, r2);
        const int32_t r = p->subtract ? x1 - x2 : x1 + x2;
        y[i] = ts_clamp8(ts_smmlar(r * 2, om, fold - (int32_t)((uint32_t)r >> 31)) >> ro, lo, hi);
    }
}

/* One element of the linear form: (c + a ka + b kb) >> s, every partial sum inside int32 (the generator
 * checks all 65,536 input pairs, and that the clamp of this to [lo, hi] is TFLite's output for each). */
TS_ALWAYS_INLINE int32_t ts_add_lin(int32_t a, int32_t b, int32_t ka, int32_t kb, int32_t c, int32_t s)
{
    return (c + a * ka + b * kb) >> s;
}

/* The linear form (ts_add_params.lin_*), which replaces the three roundings by one: on contiguous rows 8
 * elements a turn without an activation clamp (SSAT alone clamps), 4 with one; strided rows one at a time. */
static void ts_add_row_linear(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                              int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t ka = p->lin_a, kb = p->lin_b, c = p->lin_c, s = p->lin_shift, lo = p->act_min, hi = p->act_max;
    const int8_t *const end = y + (n & ~7), *const end4 = y + (n & ~3);
    int32_t i;
    if (as == 1 && bs == 1 && lo == -128 && hi == 127) {
        for (; y < end; a += 8, b += 8, y += 8) { /* 8 a turn: the loop's 5 instructions over 56 */
            y[0] = (int8_t)ts_ssat8(ts_add_lin(a[0], b[0], ka, kb, c, s));
            y[1] = (int8_t)ts_ssat8(ts_add_lin(a[1], b[1], ka, kb, c, s));
            y[2] = (int8_t)ts_ssat8(ts_add_lin(a[2], b[2], ka, kb, c, s));
            y[3] = (int8_t)ts_ssat8(ts_add_lin(a[3], b[3], ka, kb, c, s));
            y[4] = (int8_t)ts_ssat8(ts_add_lin(a[4], b[4], ka, kb, c, s));
            y[5] = (int8_t)ts_ssat8(ts_add_lin(a[5], b[5], ka, kb, c, s));
            y[6] = (int8_t)ts_ssat8(ts_add_lin(a[6], b[6], ka, kb, c, s));
            y[7] = (int8_t)ts_ssat8(ts_add_lin(a[7], b[7], ka, kb, c, s));
        }
        n &= 7;
    } else if (as == 1 && bs == 1) { /* a clamp: 4 outputs saturated to int8, one word, clamped per byte */
        const uint32_t lo4 = 0x01010101u * (uint8_t)lo, hi4 = 0x01010101u * (uint8_t)hi;
        for (; y < end4; a += 4, b += 4, y += 4) {
            const uint32_t w = ts_pack8x4(ts_ssat8(ts_add_lin(a[0], b[0], ka, kb, c, s)),
                                          ts_ssat8(ts_add_lin(a[1], b[1], ka, kb, c, s)),
                                          ts_ssat8(ts_add_lin(a[2], b[2], ka, kb, c, s)),
                                          ts_ssat8(ts_add_lin(a[3], b[3], ka, kb, c, s)));
            ts_write32(y, ts_min_s8x4(ts_max_s8x4(w, lo4), hi4));
        }
        n &= 3;
    }
    for (i = 0; i < n; ++i) {
        y[i] = (int8_t)ts_clamp(ts_add_lin(a[i * as], b[i * bs], ka, kb, c, s), lo, hi);
    }
}

void ts_add_s8_dsp(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, p->lin_shift > 0 ? ts_add_row_linear : ts_add_row_dsp, a, b, y);
}

#endif /* TINYSTUDIO_DSP */
