/* ts_elementwise_mve.c - ADD/SUB on Helium (Cortex-M55/M85): four elements per vector in int32 lanes, the
 * inputs read by gather loads (element i at i * stride, stride 0 for a broadcast input), TFLite's three
 * requantizations on the vector (ts_mve_mbqm: exact for every constant). Called by ts_add_s8
 * (ts_elementwise_ref.c); the same bytes as the portable rows. */
#include "ts_mve.h"
#include "ts_elementwise.h"

#if TINYSTUDIO_MVE

static void ts_add_row_mve(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                           int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32x4_t zero = vdupq_n_s32(0), lift = vdupq_n_s32(p->left_shift);
    const int32x4_t am = vdupq_n_s32(p->a_multiplier), bm = vdupq_n_s32(p->b_multiplier);
    const int32x4_t al = vmaxq_s32(vdupq_n_s32(p->a_shift), zero), ar = vminq_s32(vdupq_n_s32(p->a_shift), zero);
    const int32x4_t bl = vmaxq_s32(vdupq_n_s32(p->b_shift), zero), br = vminq_s32(vdupq_n_s32(p->b_shift), zero);
    const int32x4_t om = vdupq_n_s32(p->out_multiplier), os = vdupq_n_s32(p->out_shift);
    const int32_t ao = p->a_offset, bo = p->b_offset, off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32x4_t lanes = vidupq_n_u32(0, 1);
    const uint32x4_t a_idx = vmulq_n_u32(lanes, (uint32_t)as), b_idx = vmulq_n_u32(lanes, (uint32_t)bs);
    const int subtract = p->subtract;
    for (; n > 0; n -= 4, a += 4 * as, b += 4 * bs, y += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)n);
        const int32x4_t va = vshlq_s32(vaddq_n_s32(vldrbq_gather_offset_z_s32(a, a_idx, pr), ao), lift);
        const int32x4_t vb = vshlq_s32(vaddq_n_s32(vldrbq_gather_offset_z_s32(b, b_idx, pr), bo), lift);
        const int32x4_t x1 = ts_mve_mbqm(va, al, am, ar), x2 = ts_mve_mbqm(vb, bl, bm, br);
        const int32x4_t raw = subtract ? vsubq_s32(x1, x2) : vaddq_s32(x1, x2);
        vstrbq_p_s32(y, ts_mve_requant(raw, om, os, off, lo, hi), pr);
    }
}

void ts_add_s8_mve(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_add_row_mve, a, b, y);
}

#endif /* TINYSTUDIO_MVE */
