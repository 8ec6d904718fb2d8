/* ts_depthwise_mve.c - depthwise convolution with channel multiplier 1 on Helium (Cortex-M55/M85): four
 * channels per vector in int32 lanes (VLDRB.S32 widening loads, VMUL and VADD), four output pixels of a
 * column per weight load where their windows' rows lie inside the image, the requantization on the vector. Called by ts_depthwise_conv_s8
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

/* The geometry and constants the group loops read, copied out of the parameter struct once (stores through
 * int8_t pointers may alias it, so the compiler would reload every field after each store). */
typedef struct {
    int32_t c_n, x_row, x_col, w_row, off, out_off, lo, hi, per_channel;
} ts_mve_dw_geo;

/* Channels c .. c + 3 (fewer in the tail group, under `pr`) of `np` output pixels (1 or 4, a constant in
 * each caller) whose windows have the same rows x cols taps inside the image: xw is the first such tap of
 * pixel 0 (channel 0), pixel s's lie s * xs further and its outputs s * ys further than yp; ww is the tap's
 * weights. Each weight load serves the np pixels; the input offset is added once at the end as
 * offset * (sum of the weights used), which gives sum (x + offset) * w exactly. `general`: the
 * requantization form (ts_mve_rq). */
TS_ALWAYS_INLINE void ts_mve_dw_group(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
                                      int32_t cols, int32_t xs, int32_t ys, int32_t c, const int32_t *bias,
                                      const int32_t *multiplier, const int8_t *shift, int8_t *yp, int np, int tail,
                                      int general)
{
    const int32_t c_n = g->c_n, x_row = g->x_row, x_col = g->x_col, w_row = g->w_row;
    const int32_t out_off = g->out_off, lo = g->lo, hi = g->hi;
    const mve_pred16_t pr = vctp32q((uint32_t)(c_n - c));
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t a0 = zero, a1 = zero, a2 = zero, a3 = zero, wsum = zero, start, mult, sh, left, right;
    int32_t i, j;
    for (i = 0; i < rows; ++i) {
        const int8_t *x0 = xw + (size_t)i * x_row + c, *wq = ww + (size_t)i * w_row + c;
        const int8_t *x1 = x0 + xs, *x2 = x1 + xs, *x3 = x2 + xs;
        for (j = 0; j < cols; ++j, wq += c_n) {
            const int32x4_t wv = ts_mve_ld4(wq, tail, pr);
            wsum = vaddq_s32(wsum, wv);
            a0 = vaddq_s32(a0, vmulq_s32(ts_mve_ld4(x0, tail, pr), wv));
            x0 += x_col;
            if (np == 4) {
                a1 = vaddq_s32(a1, vmulq_s32(ts_mve_ld4(x1, tail, pr), wv));
                a2 = vaddq_s32(a2, vmulq_s32(ts_mve_ld4(x2, tail, pr), wv));
                a3 = vaddq_s32(a3, vmulq_s32(ts_mve_ld4(x3, tail, pr), wv));
                x1 += x_col;
                x2 += x_col;
                x3 += x_col;
            }
        }
    }
    start = vmlaq_n_s32(tail ? vldrwq_z_s32(bias + c, pr) : vldrwq_s32(bias + c), wsum, g->off);
    if (g->per_channel) {
        mult = tail ? vldrwq_z_s32(multiplier + c, pr) : vldrwq_s32(multiplier + c);
        sh = ts_mve_ld4(shift + c, tail, pr);
    } else {
        mult = vdupq_n_s32(multiplier[0]);
        sh = vdupq_n_s32(shift[0]);
    }
    left = vmaxq_s32(sh, zero);
    right = vminq_s32(sh, zero);
    yp += c;
    ts_mve_st4(yp, ts_mve_rq(vaddq_s32(a0, start), mult, left, right, general, out_off, lo, hi), tail, pr);
    if (np == 4) {
        ts_mve_st4(yp + ys, ts_mve_rq(vaddq_s32(a1, start), mult, left, right, general, out_off, lo, hi), tail, pr);
        ts_mve_st4(yp + 2 * ys, ts_mve_rq(vaddq_s32(a2, start), mult, left, right, general, out_off, lo, hi), tail,
                   pr);
        ts_mve_st4(yp + 3 * ys, ts_mve_rq(vaddq_s32(a3, start), mult, left, right, general, out_off, lo, hi), tail,
                   pr);
    }
}

/* Every channel of `np` pixels (see ts_mve_dw_group): full groups of four, then the in_c % 4 tail. */
TS_ALWAYS_INLINE void ts_mve_dw_pixels(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
                                       int32_t cols, int32_t xs, int32_t ys, const int32_t *bias,
                                       const int32_t *multiplier, const int8_t *shift, int8_t *yp, int np,
                                       int general)
{
    const int32_t c4 = g->c_n & ~3;
    int32_t c;
    for (c = 0; c < c4; c += 4) {
        ts_mve_dw_group(g, xw, ww, rows, cols, xs, ys, c, bias, multiplier, shift, yp, np, 0, general);
    }
    if (c4 < g->c_n) {
        ts_mve_dw_group(g, xw, ww, rows, cols, xs, ys, c4, bias, multiplier, shift, yp, np, 1, 1);
    }
}

typedef void (*ts_mve_dw_fn)(const ts_mve_dw_geo *, const int8_t *, const int8_t *, int32_t, int32_t, int32_t,
                             int32_t, const int32_t *, const int32_t *, const int8_t *, int8_t *);

#define TS_MVE_DW_FN(name, np, general)                                                                          \
    static TS_NOINLINE void name(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,       \
                                 int32_t cols, int32_t xs, int32_t ys, const int32_t *bias,                      \
                                 const int32_t *multiplier, const int8_t *shift, int8_t *yp)                     \
    {                                                                                                            \
        ts_mve_dw_pixels(g, xw, ww, rows, cols, xs, ys, bias, multiplier, shift, yp, np, general);              \
    }
TS_MVE_DW_FN(ts_mve_dw1_short, 1, 0)
TS_MVE_DW_FN(ts_mve_dw4_short, 4, 0)
TS_MVE_DW_FN(ts_mve_dw1_general, 1, 1)
TS_MVE_DW_FN(ts_mve_dw4_general, 4, 1)

/* Depthwise with multiplier 1, column by column of the output: in each, output rows four at a time where
 * their windows' rows all lie inside the image (the four share the column's cut by the left or right
 * border, so one weight load serves them), one at a time elsewhere, each with its taps inside the image. */
void ts_depthwise_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const ts_mve_dw_fn one = p->general_requant ? ts_mve_dw1_general : ts_mve_dw1_short;
    const ts_mve_dw_fn four = p->general_requant ? ts_mve_dw4_general : ts_mve_dw4_short;
    const int32_t xs = p->stride_h * p->in_w * c_n, ys = p->out_w * c_n;
    /* output rows whose window's rows lie inside the image: [oh_lo, oh_hi) */
    const int32_t oh_lo = (p->pad_top + p->stride_h - 1) / p->stride_h;
    const int32_t oh_hi = ts_min32((p->in_h - 1 - (k_h - 1) * p->dil_h + p->pad_top) / p->stride_h + 1, p->out_h);
    ts_mve_dw_geo g;
    int32_t bt, oh, ow;
    g.c_n = c_n;
    g.x_row = p->dil_h * p->in_w * c_n;
    g.x_col = p->dil_w * c_n;
    g.w_row = k_w * c_n;
    g.off = p->input_offset;
    g.out_off = p->output_offset;
    g.lo = p->act_min;
    g.hi = p->act_max;
    g.per_channel = p->per_channel;
    for (bt = 0; bt < p->batches; ++bt) {
        const int8_t *img = x + (size_t)bt * p->in_h * p->in_w * c_n;
        int8_t *yb = y + (size_t)bt * p->out_h * ys;
        for (ow = 0; ow < p->out_w; ++ow) {
            const int32_t w0 = ow * p->stride_w - p->pad_left;
            int32_t j_lo = 0, j_hi = k_w; /* kernel columns inside the image: [j_lo, j_hi) */
            while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {
                ++j_lo;
            }
            while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {
                --j_hi;
            }
            for (oh = 0; oh < p->out_h;) {
                const int32_t h0 = oh * p->stride_h - p->pad_top;
                int32_t i_lo = 0, i_hi = k_h, np = 1; /* kernel rows inside the image: [i_lo, i_hi) */
                int8_t *yp = yb + (size_t)oh * ys + (size_t)ow * c_n;
                if (oh >= oh_lo && oh + 4 <= oh_hi) {
                    np = 4;
                } else {
                    while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {
                        ++i_lo;
                    }
                    while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {
                        --i_hi;
                    }
                }
                if (i_lo < i_hi && j_lo < j_hi) {
                    const int8_t *xw = img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n;
                    const int8_t *ww = w + ((size_t)i_lo * k_w + j_lo) * c_n;
                    (np == 4 ? four : one)(&g, xw, ww, i_hi - i_lo, j_hi - j_lo, xs, ys, bias, multiplier, shift, yp);
                } else { /* no tap inside the image: the bias alone */
                    one(&g, img, w, 0, 0, xs, ys, bias, multiplier, shift, yp);
                }
                oh += np;
            }
        }
    }
}

#endif /* TINYSTUDIO_MVE */
