/* ts_mve.h - the Helium (M-profile Vector Extension, Armv8.1-M: Cortex-M55/M85) layer of the *_mve.c kernel
 * files (internal).
 *
 * <arm_mve.h> intrinsics: int8 dot products across a vector (VMLADAVA), widening byte loads, tail predication
 * (VCTP) and TFLite's requantization on four int32 lanes. Everything here exists only when TINYSTUDIO_MVE is 1
 * (integer MVE present, TINYSTUDIO_USE_MVE 1, and the DSP path on, whose scratch the MVE conv reuses). The MVE
 * kernels give the portable kernels' bytes; there is no host emulation, QEMU mps3-an547 runs them.
 */
#ifndef TS_MVE_H
#define TS_MVE_H

#include "ts_fixedpoint.h"

#if TINYSTUDIO_MVE

#include <arm_mve.h>

/* TFLite's MultiplyByQuantizedMultiplier on four lanes, the same value as ts_mbqm for every input:
 * left = max(shift, 0), neg_right = min(shift, 0). VSHL wraps like the portable (uint32) lift, VQRDMULH is
 * SaturatingRoundingDoublingHighMul (the one overflow, MIN * MIN, saturating), and VRSHL by -r rounds halves
 * up, where RoundingDivideByPOT rounds them away from zero: a negative value is first lowered by one
 * (saturating; gemmlowp's NEON form), which moves exactly its ties down and leaves every other result. */
TS_ALWAYS_INLINE int32x4_t ts_mve_mbqm(int32x4_t x, int32x4_t left, int32x4_t mult, int32x4_t neg_right)
{
    int32x4_t v = vqrdmulhq_s32(vshlq_s32(x, left), mult);
    v = vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, neg_right), 31));
    return vrshlq_s32(v, neg_right);
}

/* TFLite's MultiplyByQuantizedMultiplier on four lanes with one multiplier and shift for all of them, every
 * operand a scalar (no vector register held across the loop for it): x shifted left by `left` (wrapping, like
 * the portable uint32 lift), VQRDMULH, then the rounding right shift by -neg_right (VRSHL, which rounds halves
 * up: a negative value is first lowered by one, saturating, when the shift is not 0, which moves exactly its
 * ties down, as in ts_mve_mbqm). `sign_sh` is -31 for a right shift (the sign bit, VSHL.U32 by register) and
 * -32 for none (0: VSHL by the element size or more clears the lane). */
TS_ALWAYS_INLINE int32x4_t ts_mve_mbqm_n(int32x4_t x, int32_t left, int32_t mult, int32_t neg_right,
                                         int32_t sign_sh)
{
    int32x4_t v = vqrdmulhq_n_s32(vshlq_r_s32(x, left), mult);
    v = vqsubq_s32(v, vreinterpretq_s32_u32(vshlq_r_u32(vreinterpretq_u32_s32(v), sign_sh)));
    return vrshlq_n_s32(v, neg_right);
}

/* ts_requant on four lanes with the lanes' multipliers, left = max(shift, 0) and neg_right = min(shift, 0):
 * rescale, add the output offset, clamp. `general` 0 (a constant in each caller) for a layer whose generator
 * cleared general_requant (every shift in [-30, -1]: no left shift, and the sign of v & neg_right is the sign
 * of v), the same value with two instructions fewer. */
TS_ALWAYS_INLINE int32x4_t ts_mve_rq(int32x4_t acc, int32x4_t mult, int32x4_t left, int32x4_t neg_right,
                                     int general, int32_t out_offset, int32_t lo, int32_t hi)
{
    int32x4_t v;
    if (general) {
        v = ts_mve_mbqm(acc, left, mult, neg_right);
    } else {
        v = vqrdmulhq_s32(acc, mult);
        v = vrshlq_s32(vqaddq_s32(v, vshrq_n_s32(v, 31)), neg_right);
    }
    v = vaddq_n_s32(v, out_offset);
    v = vmaxq_s32(v, vdupq_n_s32(lo));
    return vminq_s32(v, vdupq_n_s32(hi));
}

/* Whether layer p requantizes with the general form: never where the library has no such layer
 * (TINYSTUDIO_GENERAL_REQUANT 0, tinystudio_kernels.h), so that the general copies of the kernels are not linked. */
#define TS_MVE_GENERAL(p) (TINYSTUDIO_GENERAL_REQUANT && (p)->general_requant)

/* ts_requant on four lanes (multipliers and shifts per lane), for every constant. */
TS_ALWAYS_INLINE int32x4_t ts_mve_requant(int32x4_t acc, int32x4_t mult, int32x4_t shift, int32_t out_offset,
                                          int32_t lo, int32_t hi)
{
    const int32x4_t zero = vdupq_n_s32(0);
    return ts_mve_rq(acc, mult, vmaxq_s32(shift, zero), vminq_s32(shift, zero), 1, out_offset, lo, hi);
}

/* Four int32 values as one vector: with GNU C two VMOV Q[2], Q[0], Rt, Rt2 (two lanes each; GCC 12 makes
 * four single-lane moves of vsetq_lane), otherwise the intrinsics. */
TS_ALWAYS_INLINE int32x4_t ts_mve_vec4(int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
#if defined(__GNUC__)
    int32x4_t v;
    __asm__("vmov %q[v][2], %q[v][0], %[a0], %[a2]\n\t"
            "vmov %q[v][3], %q[v][1], %[a1], %[a3]"
            : [v] "=&w"(v)
            : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3));
    return v;
#else
    int32x4_t v = vdupq_n_s32(a0);
    v = vsetq_lane_s32(a1, v, 1);
    v = vsetq_lane_s32(a2, v, 2);
    return vsetq_lane_s32(a3, v, 3);
#endif
}

/* Copies src[0 .. n) (or n bytes of `fill` when src is NULL) to dst, 16 bytes per load and store. With GNU C,
 * a tail-predicated low-overhead loop (DLSTP/LETP: the last partial vector under the loop's own predicate),
 * three instructions per 16 bytes; otherwise VCTP-predicated intrinsics. */
TS_ALWAYS_INLINE void ts_mve_put(int8_t *dst, const int8_t *src, int32_t n, int8_t fill)
{
    const int8x16_t f = vdupq_n_s8(fill);
    if (n <= 0) {
        return;
    }
#if defined(__GNUC__)
    if (src != NULL) {
        __asm__ volatile("dlstp.8 lr, %[n]\n"
                         "1:\n\t"
                         "vldrb.8 q0, [%[s]], #16\n\t"
                         "vstrb.8 q0, [%[d]], #16\n\t"
                         "letp lr, 1b\n"
                         : [s] "+r"(src), [d] "+r"(dst)
                         : [n] "r"(n)
                         : "lr", "q0", "memory");
    } else {
        __asm__ volatile("dlstp.8 lr, %[n]\n"
                         "1:\n\t"
                         "vstrb.8 %q[f], [%[d]], #16\n\t"
                         "letp lr, 1b\n"
                         : [d] "+r"(dst)
                         : [n] "r"(n), [f] "w"(f)
                         : "lr", "memory");
    }
#else
    for (; n > 0; n -= 16, dst += 16) {
        const mve_pred16_t pr = vctp8q((uint32_t)n);
        if (src != NULL) {
            vstrbq_p_s8(dst, vldrbq_z_s8(src, pr), pr);
            src += 16;
        } else {
            vstrbq_p_s8(dst, f, pr);
        }
    }
#endif
}

/* Kernel rows / columns inside the image (size cells) of a window starting at `start` (k taps, dil apart):
 * [*lo, *hi) (the pooling and depthwise files). */
TS_ALWAYS_INLINE void ts_mve_taps(int32_t start, int32_t k, int32_t dil, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = k;
    while (a < b && start + a * dil < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * dil >= size) {
        --b;
    }
    *lo = a;
    *hi = b;
}

/* The MVE files' entry points, called by the portable ones (ts_conv_ref.c, ...) when they apply; where the MVE
 * kernel declines a layer the portable loop takes it, so an M55 program links none of the DSP kernels their
 * entry points call (except avg pool's over 5000 cells and the wide-weight conv: ts_pool_ref.c, ts_conv_ref.c). */
void ts_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch);
/* ts_conv_narrow_mve.c: one image of a conv with K <= 32, the short requantization and the full int8 range
 * (buf: 8 fields of scratch), and output pixel (oh, ow)'s receptive field (in place where it is one run of
 * the input, else gathered into dst). */
void ts_conv_s8_mve_narrow(const ts_conv_params *p, const int8_t *img, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *yb, int8_t *buf);
const int8_t *ts_mve_conv_field_at(const ts_conv_params *p, const int8_t *img, int32_t oh, int32_t ow, int8_t *dst);
/* Returns 0 (computing nothing) for a kernel of more than 256 taps: ts_depthwise_conv_s8 then runs the
 * portable loop (an MVE build links no DSP kernel). */
int ts_depthwise_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                             const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_fully_connected_s8_mve(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_add_s8_mve(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y);
/* Return 0 (computing nothing) where the portable loop takes the layer. */
int ts_avg_pool_s8_mve(const ts_pool_params *p, const int8_t *x, int8_t *y);
int ts_max_pool_s8_mve(const ts_pool_params *p, const int8_t *x, int8_t *y);

#endif /* TINYSTUDIO_MVE */

#endif /* TS_MVE_H */
