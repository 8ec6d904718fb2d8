/* ts_elementwise_mve.c - ADD/SUB on Helium (Cortex-M55/M85): four elements per vector in int32 lanes, the
 * inputs read by gather loads (element i at i * stride, stride 0 for a broadcast input), TFLite's three
 * requantizations on the vector (ts_mve_mbqm_n: exact for every constant). Called by ts_add_s8
 * (ts_elementwise_ref.c); the same bytes as the portable rows. */
#include "ts_mve.h"
#include "ts_elementwise.h"

#if TINYSTUDIO_MVE

/* ts_add_row (ts_elementwise_ref.c) four elements per vector, for every constant: (x + offset) lifted by
 * 2**left_shift and shifted left by the input's own left shift in one VSHL (both wrap modulo 2**32, as the
 * portable lift does); the difference or sum as x1 + sign * x2 (VMLA, wrapping like ts_wrap_add/sub). */
static void ts_add_row_mve(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                           int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t a_left = p->left_shift + ts_max32(p->a_shift, 0), a_right = ts_min32(p->a_shift, 0);
    const int32_t b_left = p->left_shift + ts_max32(p->b_shift, 0), b_right = ts_min32(p->b_shift, 0);
    const int32_t o_left = ts_max32(p->out_shift, 0), o_right = ts_min32(p->out_shift, 0);
    const int32_t a_sign = a_right ? -31 : -32, b_sign = b_right ? -31 : -32, o_sign = o_right ? -31 : -32;
    const int32_t am = p->a_multiplier, bm = p->b_multiplier, om = p->out_multiplier, sign = p->subtract ? -1 : 1;
    const int32_t ao = p->a_offset, bo = p->b_offset, off = p->output_offset;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    const uint32x4_t lanes = vidupq_n_u32(0, 1);
    const uint32x4_t a_idx = vmulq_n_u32(lanes, (uint32_t)as), b_idx = vmulq_n_u32(lanes, (uint32_t)bs);
    for (; n > 0; n -= 4, a += 4 * as, b += 4 * bs, y += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)n);
        const int32x4_t va = vaddq_n_s32(vldrbq_gather_offset_z_s32(a, a_idx, pr), ao);
        const int32x4_t vb = vaddq_n_s32(vldrbq_gather_offset_z_s32(b, b_idx, pr), bo);
        const int32x4_t x1 = ts_mve_mbqm_n(va, a_left, am, a_right, a_sign);
        const int32x4_t x2 = ts_mve_mbqm_n(vb, b_left, bm, b_right, b_sign);
        int32x4_t v = ts_mve_mbqm_n(vmlaq_n_s32(x1, x2, sign), o_left, om, o_right, o_sign);
        v = vminq_s32(vmaxq_s32(vaddq_n_s32(v, off), lo), hi);
        vstrbq_p_s32(y, v, pr);
    }
}

/* ts_add_row_mve for a layer the generator left on the short requantization (add_requant_mode: input shifts in
 * [-30, 0], the output shift in [-23, -1], normalized multipliers, every value below 2**29 in magnitude: no
 * left shift but the lift, nothing saturates): (x + offset) * 2**left_shift in one VMLAS, the output's
 * rounding fix-up without a test of its shift. Fewer constants than the general row, so none of them is
 * reloaded from the stack in the loop. */
static void ts_add_row_mve_short(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs,
                                 int8_t *y, int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32x4_t lift = vdupq_n_s32((int32_t)1 << p->left_shift);
    const int32_t ao = p->a_offset * ((int32_t)1 << p->left_shift), bo = p->b_offset * ((int32_t)1 << p->left_shift);
    const int32_t a_right = p->a_shift, b_right = p->b_shift, o_right = p->out_shift;
    const int32_t a_sign = a_right ? -31 : -32, b_sign = b_right ? -31 : -32;
    const int32_t am = p->a_multiplier, bm = p->b_multiplier, om = p->out_multiplier, sign = p->subtract ? -1 : 1;
    const int32_t off = p->output_offset;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    const uint32x4_t lanes = vidupq_n_u32(0, 1);
    const uint32x4_t a_idx = vmulq_n_u32(lanes, (uint32_t)as), b_idx = vmulq_n_u32(lanes, (uint32_t)bs);
    for (; n > 0; n -= 4, a += 4 * as, b += 4 * bs, y += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)n);
        const int32x4_t va = vmlasq_n_s32(vldrbq_gather_offset_z_s32(a, a_idx, pr), lift, ao);
        const int32x4_t vb = vmlasq_n_s32(vldrbq_gather_offset_z_s32(b, b_idx, pr), lift, bo);
        int32x4_t x1 = vqrdmulhq_n_s32(va, am), x2 = vqrdmulhq_n_s32(vb, bm), v;
        x1 = vrshlq_n_s32(vsubq_s32(x1, vreinterpretq_s32_u32(vshlq_r_u32(vreinterpretq_u32_s32(x1), a_sign))),
                          a_right);
        x2 = vrshlq_n_s32(vsubq_s32(x2, vreinterpretq_s32_u32(vshlq_r_u32(vreinterpretq_u32_s32(x2), b_sign))),
                          b_right);
        v = vqrdmulhq_n_s32(vmlaq_n_s32(x1, x2, sign), om);
        v = vrshlq_n_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), o_right);
        v = vminq_s32(vmaxq_s32(vaddq_n_s32(v, off), lo), hi);
        vstrbq_p_s32(y, v, pr);
    }
}

void ts_add_s8_mve(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, TS_MVE_GENERAL(p) ? ts_add_row_mve : ts_add_row_mve_short, a, b, y);
}

#endif /* TINYSTUDIO_MVE */
