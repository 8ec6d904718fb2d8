/* ts_depthwise_mve.c - depthwise convolution with channel multiplier 1 on Helium (Cortex-M55/M85): four
 * channels per vector in int32 lanes (VLDRB.S32 widening loads, VMUL and VADD), four output pixels per weight
 * load where their windows' columns lie inside the image, the requantization on the vector. Called by ts_depthwise_conv_s8
 * (ts_depthwise_ref.c) when out_c == in_c; the same bytes as ts_depthwise_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* Four bytes widened to int32 lanes; under the channel-tail predicate `pr` when `tail` (a constant in each
 * caller: the full groups load without predication). */
TS_ALWAYS_INLINE int32x4_t ts_mve_ld4(const int8_t *p, int tail, mve_pred16_t pr)
{
    return tail ? vldrbq_z_s32(p, pr) : vldrbq_s32(p);
}

TS_ALWAYS_INLINE void ts_mve_st4(int8_t *p, int32x4_t v, int tail, mve_pred16_t pr)
{
    if (tail) {
        vstrbq_p_s32(p, v, pr);
    } else {
        vstrbq_s32(p, v);
    }
}

/* Channels c .. c + 3 (fewer in the tail group, under `pr`) of `np` output pixels (1 or 4, a constant in
 * each caller) whose windows have the same rows x cols taps inside the image: xw is the first such tap of
 * pixel 0 (channel 0), pixel s's taps lie s * xs further, ww the tap's weights. Each weight load serves the
 * np pixels; the input offset is added once at the end as offset * (sum of the weights used), which gives
 * sum (x + offset) * w exactly. `general`: the requantization form (ts_mve_rq). */
TS_ALWAYS_INLINE void ts_mve_dw_group(const ts_conv_params *p, const int8_t *xw, const int8_t *ww, int32_t rows,
                                      int32_t cols, int32_t c, const int32_t *bias, const int32_t *multiplier,
                                      const int8_t *shift, int8_t *yp, int np, int tail, int general)
{
    const int32_t c_n = p->in_c, x_row = p->dil_h * p->in_w * c_n, x_col = p->dil_w * c_n;
    const int32_t w_row = p->k_w * c_n, xs = p->stride_w * c_n;
    const mve_pred16_t pr = vctp32q((uint32_t)(c_n - c));
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t a0 = zero, a1 = zero, a2 = zero, a3 = zero, wsum = zero, start, mult, sh, left, right;
    int32_t i, j;
    for (i = 0; i < rows; ++i) {
        const int8_t *xq = xw + (size_t)i * x_row + c, *wq = ww + (size_t)i * w_row + c;
        for (j = 0; j < cols; ++j, xq += x_col, wq += c_n) {
            const int32x4_t wv = ts_mve_ld4(wq, tail, pr);
            wsum = vaddq_s32(wsum, wv);
            a0 = vaddq_s32(a0, vmulq_s32(ts_mve_ld4(xq, tail, pr), wv));
            if (np == 4) {
                a1 = vaddq_s32(a1, vmulq_s32(ts_mve_ld4(xq + xs, tail, pr), wv));
                a2 = vaddq_s32(a2, vmulq_s32(ts_mve_ld4(xq + 2 * xs, tail, pr), wv));
                a3 = vaddq_s32(a3, vmulq_s32(ts_mve_ld4(xq + 3 * xs, tail, pr), wv));
            }
        }
    }
    start = vmlaq_n_s32(tail ? vldrwq_z_s32(bias + c, pr) : vldrwq_s32(bias + c), wsum, p->input_offset);
    if (p->per_channel) {
        mult = tail ? vldrwq_z_s32(multiplier + c, pr) : vldrwq_s32(multiplier + c);
        sh = ts_mve_ld4(shift + c, tail, pr);
    } else {
        mult = vdupq_n_s32(multiplier[0]);
        sh = vdupq_n_s32(shift[0]);
    }
    left = vmaxq_s32(sh, zero);
    right = vminq_s32(sh, zero);
#define TS_DW_OUT(a, s)                                                                                          \
    ts_mve_st4(yp + (s) * c_n + c,                                                                               \
               ts_mve_rq(vaddq_s32(a, start), mult, left, right, general, p->output_offset, p->act_min,          \
                         p->act_max),                                                                            \
               tail, pr)
    TS_DW_OUT(a0, 0);
    if (np == 4) {
        TS_DW_OUT(a1, 1);
        TS_DW_OUT(a2, 2);
        TS_DW_OUT(a3, 3);
    }
#undef TS_DW_OUT
}

/* Every channel of `np` pixels (see ts_mve_dw_group): full groups of four, then the in_c % 4 tail. */
TS_ALWAYS_INLINE void ts_mve_dw_pixels(const ts_conv_params *p, const int8_t *xw, const int8_t *ww, int32_t rows,
                                       int32_t cols, const int32_t *bias, const int32_t *multiplier,
                                       const int8_t *shift, int8_t *yp, int np, int general)
{
    const int32_t c4 = p->in_c & ~3;
    int32_t c;
    for (c = 0; c < c4; c += 4) {
        ts_mve_dw_group(p, xw, ww, rows, cols, c, bias, multiplier, shift, yp, np, 0, general);
    }
    if (c4 < p->in_c) {
        ts_mve_dw_group(p, xw, ww, rows, cols, c4, bias, multiplier, shift, yp, np, 1, 1);
    }
}

typedef void (*ts_mve_dw_fn)(const ts_conv_params *, const int8_t *, const int8_t *, int32_t, int32_t,
                             const int32_t *, const int32_t *, const int8_t *, int8_t *);

#define TS_MVE_DW_FN(name, np, general)                                                                          \
    static TS_NOINLINE void name(const ts_conv_params *p, const int8_t *xw, const int8_t *ww, int32_t rows,      \
                                 int32_t cols, const int32_t *bias, const int32_t *multiplier,                   \
                                 const int8_t *shift, int8_t *yp)                                                \
    {                                                                                                            \
        ts_mve_dw_pixels(p, xw, ww, rows, cols, bias, multiplier, shift, yp, np, general);                      \
    }
TS_MVE_DW_FN(ts_mve_dw1_short, 1, 0)
TS_MVE_DW_FN(ts_mve_dw4_short, 4, 0)
TS_MVE_DW_FN(ts_mve_dw1_general, 1, 1)
TS_MVE_DW_FN(ts_mve_dw4_general, 4, 1)

/* Depthwise with multiplier 1, pixel by pixel along each output row: four at a time where their windows'
 * columns all lie inside the image (rows cut by the top or bottom border are left out for all four alike),
 * one at a time elsewhere, each with its taps inside the image. */
void ts_depthwise_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const ts_mve_dw_fn one = p->general_requant ? ts_mve_dw1_general : ts_mve_dw1_short;
    const ts_mve_dw_fn four = p->general_requant ? ts_mve_dw4_general : ts_mve_dw4_short;
    /* output columns whose window's columns lie inside the image: [ow_lo, ow_hi) */
    const int32_t ow_lo = (p->pad_left + p->stride_w - 1) / p->stride_w;
    const int32_t ow_hi = ts_min32((p->in_w - 1 - (k_w - 1) * p->dil_w + p->pad_left) / p->stride_w + 1, p->out_w);
    int32_t bt, oh, ow;
    for (bt = 0; bt < p->batches; ++bt) {
        const int8_t *img = x + (size_t)bt * p->in_h * p->in_w * c_n;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            int32_t i_lo = 0, i_hi = k_h; /* kernel rows inside the image: [i_lo, i_hi) */
            int8_t *yr = y + ((size_t)(bt * p->out_h + oh) * p->out_w) * c_n;
            while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {
                ++i_lo;
            }
            while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {
                --i_hi;
            }
            for (ow = 0; ow < p->out_w;) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                int32_t j_lo = 0, j_hi = k_w, np = 1;
                if (ow >= ow_lo && ow + 4 <= ow_hi) {
                    np = 4;
                } else {
                    while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {
                        ++j_lo;
                    }
                    while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {
                        --j_hi;
                    }
                }
                if (i_lo < i_hi && j_lo < j_hi) {
                    const int8_t *xw = img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n;
                    const int8_t *ww = w + ((size_t)i_lo * k_w + j_lo) * c_n;
                    (np == 4 ? four : one)(p, xw, ww, i_hi - i_lo, j_hi - j_lo, bias, multiplier, shift, yr);
                } else { /* no tap inside the image: the bias alone */
                    one(p, img, w, 0, 0, bias, multiplier, shift, yr);
                }
                ow += np;
                yr += np * c_n;
            }
        }
    }
}

#endif /* TINYSTUDIO_MVE */
