/* ts_depthwise_mve.c - depthwise convolution with channel multiplier 1 on Helium (Cortex-M55/M85): eight
 * channels per vector in int16 lanes (VLDRB.S16 widening loads), the products widened to int32 by
 * VMULLB/VMULLT (even and odd channels), two output pixels of a column per weight load where their windows'
 * rows lie inside the image, the requantization on the vectors. Called by ts_depthwise_conv_s8
 * (ts_depthwise_ref.c) when out_c == in_c and the kernel has at most 256 taps (the int16 sum of the weights
 * stays exact); the same bytes as ts_depthwise_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* The geometry and constants the group loops read, copied out of the parameter struct once (stores through
 * int8_t pointers may alias it, so the compiler would reload every field after each store). */
typedef struct {
    int32_t c_n, x_row, x_col, w_row, off, out_off, lo, hi, per_channel;
} ts_mve_dw_geo;

/* Eight bytes widened to int16 lanes; under the channel-tail predicate `pr` when `tail` (a constant in each
 * caller: the full groups load without predication). */
TS_ALWAYS_INLINE int16x8_t ts_mve_ld8(const int8_t *p, int tail, mve_pred16_t pr)
{
    return tail ? vldrbq_z_s16(p, pr) : vldrbq_s16(p);
}

/* One output pixel's eight channels: even (c, c + 2, ...) and odd lanes' sums plus their start values,
 * requantized and stored at y[0, 2, 4, 6] and y[1, 3, 5, 7] (the tail's lanes under pe / po). */
TS_ALWAYS_INLINE void ts_mve_dw_out(int8_t *y, int32x4_t ae, int32x4_t ao, const int32x4_t *k, uint32x4_t even,
                                    const ts_mve_dw_geo *g, int tail, mve_pred16_t pe, mve_pred16_t po,
                                    int general)
{
    const int32x4_t ve = ts_mve_rq(vaddq_s32(ae, k[0]), k[2], k[4], k[6], general, g->out_off, g->lo, g->hi);
    const int32x4_t vo = ts_mve_rq(vaddq_s32(ao, k[1]), k[3], k[5], k[7], general, g->out_off, g->lo, g->hi);
    if (tail) {
        vstrbq_scatter_offset_p_s32(y, even, ve, pe);
        vstrbq_scatter_offset_p_s32(y + 1, even, vo, po);
    } else {
        vstrbq_scatter_offset_s32(y, even, ve);
        vstrbq_scatter_offset_s32(y + 1, even, vo);
    }
}

/* The even (or odd: k + 1, y + 1, the odd predicate) lanes of two pixels ys apart: the same constants for both. */
TS_ALWAYS_INLINE void ts_mve_dw_half(int8_t *y, int32x4_t a0, int32x4_t a1, int32_t ys, const int32x4_t *k,
                                     uint32x4_t even, const ts_mve_dw_geo *g, int tail, mve_pred16_t pr,
                                     int general)
{
    const int32x4_t start = k[0], mult = k[2], left = k[4], right = k[6];
    const int32x4_t v0 = ts_mve_rq(vaddq_s32(a0, start), mult, left, right, general, g->out_off, g->lo, g->hi);
    const int32x4_t v1 = ts_mve_rq(vaddq_s32(a1, start), mult, left, right, general, g->out_off, g->lo, g->hi);
    if (tail) {
        vstrbq_scatter_offset_p_s32(y, even, v0, pr);
        vstrbq_scatter_offset_p_s32(y + ys, even, v1, pr);
    } else {
        vstrbq_scatter_offset_s32(y, even, v0);
        vstrbq_scatter_offset_s32(y + ys, even, v1);
    }
}

/* Channel c + 2 i of a per-channel table (int32 words, or int8 when `bytes`), i = 0 .. 3: a gather, under the
 * tail group's predicate p when `tail` (a constant in each caller: the full groups gather unpredicated). */
TS_ALWAYS_INLINE int32x4_t ts_mve_dw_gather(const void *t, int bytes, uint32x4_t even, int tail, mve_pred16_t p)
{
    if (bytes) {
        return tail ? vldrbq_gather_offset_z_s32((const int8_t *)t, even, p)
                    : vldrbq_gather_offset_s32((const int8_t *)t, even);
    }
    return tail ? vldrwq_gather_shifted_offset_z_s32((const int32_t *)t, even, p)
                : vldrwq_gather_shifted_offset_s32((const int32_t *)t, even);
}

/* The requantization constants of channels c .. c + 7, even and odd lanes (k[0, 2, 4, 6] and k[1, 3, 5, 7]):
 * start values (bias + offset * weight sum), multipliers, left shifts, negated right shifts. */
TS_ALWAYS_INLINE void ts_mve_dw_consts(const ts_mve_dw_geo *g, int16x8_t wsum, int32_t c, const int32_t *bias,
                                       const int32_t *multiplier, const int8_t *shift, uint32x4_t even, int tail,
                                       mve_pred16_t pe, mve_pred16_t po, int32x4_t *k)
{
    const int32x4_t zero = vdupq_n_s32(0);
    k[0] = vmlaq_n_s32(ts_mve_dw_gather(bias + c, 0, even, tail, pe), vmovlbq_s16(wsum), g->off);
    k[1] = vmlaq_n_s32(ts_mve_dw_gather(bias + c + 1, 0, even, tail, po), vmovltq_s16(wsum), g->off);
    if (g->per_channel) {
        const int32x4_t se = ts_mve_dw_gather(shift + c, 1, even, tail, pe);
        const int32x4_t so = ts_mve_dw_gather(shift + c + 1, 1, even, tail, po);
        k[2] = ts_mve_dw_gather(multiplier + c, 0, even, tail, pe);
        k[3] = ts_mve_dw_gather(multiplier + c + 1, 0, even, tail, po);
        k[4] = vmaxq_s32(se, zero);
        k[5] = vmaxq_s32(so, zero);
        k[6] = vminq_s32(se, zero);
        k[7] = vminq_s32(so, zero);
    } else {
        const int32x4_t s = vdupq_n_s32(shift[0]);
        k[2] = k[3] = vdupq_n_s32(multiplier[0]);
        k[4] = k[5] = vmaxq_s32(s, zero);
        k[6] = k[7] = vminq_s32(s, zero);
    }
}

/* Channels c .. c + 7 (fewer in the tail group, when `tail`) of one output pixel (a border pixel, or one left
 * over by the column pass) with rows x cols taps inside the image: xw is the first such tap (channel 0), ww its
 * weights. The input offset is added once at the end as offset * (sum of the weights used), which gives
 * sum (x + offset) * w exactly. `general`: the requantization form (ts_mve_rq). */
TS_ALWAYS_INLINE void ts_mve_dw_group(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
                                      int32_t cols, int32_t c, const int32_t *bias, const int32_t *multiplier,
                                      const int8_t *shift, int8_t *yp, int tail, int general)
{
    const int32_t c_n = g->c_n, x_row = g->x_row, x_col = g->x_col, w_row = g->w_row, left_n = c_n - c;
    const mve_pred16_t pr = vctp16q((uint32_t)left_n);
    const mve_pred16_t pe = vctp32q((uint32_t)((left_n + 1) >> 1)), po = vctp32q((uint32_t)(left_n >> 1));
    const uint32x4_t even = vidupq_n_u32(0, 2);
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t e0 = zero, o0 = zero, k[8];
    int16x8_t wsum = vdupq_n_s16(0);
    int32_t i, j;
    for (i = 0; i < rows; ++i) {
        const int8_t *x0 = xw + (size_t)i * x_row + c, *wq = ww + (size_t)i * w_row + c;
        for (j = 0; j < cols; ++j, wq += c_n) {
            const int16x8_t wv = ts_mve_ld8(wq, tail, pr);
            const int16x8_t v0 = ts_mve_ld8(x0, tail, pr);
            wsum = vaddq_s16(wsum, wv);
            e0 = vaddq_s32(e0, vmullbq_int_s16(v0, wv));
            o0 = vaddq_s32(o0, vmulltq_int_s16(v0, wv));
            x0 += x_col;
        }
    }
    ts_mve_dw_consts(g, wsum, c, bias, multiplier, shift, even, tail, pe, po, k);
    ts_mve_dw_out(yp + c, e0, o0, k, even, g, tail, pe, po, general);
}

/* Every channel of one pixel (see ts_mve_dw_group): full groups of eight, then the in_c % 8 tail. */
TS_ALWAYS_INLINE void ts_mve_dw_pixels(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
                                       int32_t cols, const int32_t *bias, const int32_t *multiplier,
                                       const int8_t *shift, int8_t *yp, int general)
{
    const ts_mve_dw_geo gl = *g; /* a local copy, once per pixel: see ts_mve_dw_col */
    const int32_t c8 = gl.c_n & ~7;
    int32_t c;
    for (c = 0; c < c8; c += 8) {
        ts_mve_dw_group(&gl, xw, ww, rows, cols, c, bias, multiplier, shift, yp, 0, general);
    }
    if (c8 < gl.c_n) {
        ts_mve_dw_group(&gl, xw, ww, rows, cols, c8, bias, multiplier, shift, yp, 1, 1);
    }
}

typedef void (*ts_mve_dw_fn)(const ts_mve_dw_geo *, const int8_t *, const int8_t *, int32_t, int32_t,
                             const int32_t *, const int32_t *, const int8_t *, int8_t *);
typedef void (*ts_mve_dwcol_fn)(const ts_mve_dw_geo *, const int8_t *, const int8_t *, int32_t, int32_t, int32_t,
                                int32_t, int32_t, const int32_t *, const int32_t *, const int8_t *, int8_t *);

static TS_NOINLINE void ts_mve_dw1_short(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
        int32_t cols, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *yp)
{
    ts_mve_dw_pixels(g, xw, ww, rows, cols, bias, multiplier, shift, yp, 0);
}

static TS_NOINLINE void ts_mve_dw1_general(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww,
        int32_t rows, int32_t cols, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *yp)
{
    ts_mve_dw_pixels(g, xw, ww, rows, cols, bias, multiplier, shift, yp, 1);
}

/* Channels c .. c + 7 (fewer in the tail group, when `tail`) of n_pairs pairs of output pixels down one output
 * column, pixel pairs whose windows have the same rows x cols taps inside the image (the interior rows: only
 * the left or right border cuts them, the same for the whole column): the weight sum and the requantization
 * constants once for the column, then per pair only the taps (one weight load for the two pixels, no weight
 * sum in the loop: every register free for the sums), the requantization and the stores. xw: first tap of the
 * first pixel (channel 0), the pair's second pixel xs further and its outputs ys further than yp; the next
 * pair 2 * xs and 2 * ys further. */
TS_ALWAYS_INLINE void ts_mve_dw_col_group(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww,
                                          int32_t rows, int32_t cols, int32_t xs, int32_t ys, int32_t n_pairs,
                                          int32_t c, const int32_t *bias, const int32_t *multiplier,
                                          const int8_t *shift, int8_t *yp, int tail, int general)
{
    const int32_t c_n = g->c_n, x_row = g->x_row, x_col = g->x_col, w_row = g->w_row, left_n = c_n - c;
    const mve_pred16_t pr = vctp16q((uint32_t)left_n);
    const mve_pred16_t pe = vctp32q((uint32_t)((left_n + 1) >> 1)), po = vctp32q((uint32_t)(left_n >> 1));
    const uint32x4_t even = vidupq_n_u32(0, 2);
    int32x4_t k[8];
    int16x8_t wsum = vdupq_n_s16(0);
    int32_t i, j, q;
    for (i = 0; i < rows; ++i) {
        const int8_t *wq = ww + (size_t)i * w_row + c;
        for (j = 0; j < cols; ++j, wq += c_n) {
            wsum = vaddq_s16(wsum, ts_mve_ld8(wq, tail, pr));
        }
    }
    ts_mve_dw_consts(g, wsum, c, bias, multiplier, shift, even, tail, pe, po, k);
    for (q = 0; q < n_pairs; ++q) {
        const int32x4_t zero = vdupq_n_s32(0);
        int32x4_t e0 = zero, o0 = zero, e1 = zero, o1 = zero;
        int8_t *y0 = yp + (size_t)q * 2 * ys + c;
        for (i = 0; i < rows; ++i) {
            const int8_t *x0 = xw + (size_t)q * 2 * xs + (size_t)i * x_row + c, *wq = ww + (size_t)i * w_row + c;
            for (j = 0; j < cols; ++j, wq += c_n, x0 += x_col) {
                const int16x8_t wv = ts_mve_ld8(wq, tail, pr);
                const int16x8_t v0 = ts_mve_ld8(x0, tail, pr);
                const int16x8_t v1 = ts_mve_ld8(x0 + xs, tail, pr);
                e0 = vaddq_s32(e0, vmullbq_int_s16(v0, wv));
                o0 = vaddq_s32(o0, vmulltq_int_s16(v0, wv));
                e1 = vaddq_s32(e1, vmullbq_int_s16(v1, wv));
                o1 = vaddq_s32(o1, vmulltq_int_s16(v1, wv));
            }
        }
        /* even lanes of both pixels, then odd ones: each constant loaded once per pair */
        ts_mve_dw_half(y0, e0, e1, ys, k, even, g, tail, pe, general);
        ts_mve_dw_half(y0 + 1, o0, o1, ys, k + 1, even, g, tail, po, general);
    }
}

/* The in_c % 8 tail group of n_pairs pixel pairs down a column (general form: the same bytes for either kind
 * of layer), one copy for both requantization forms and every kernel size. */
static TS_NOINLINE void ts_mve_dwcol_tail(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww,
        int32_t rows, int32_t cols, int32_t xs, int32_t ys, int32_t n_pairs, const int32_t *bias,
        const int32_t *multiplier, const int8_t *shift, int8_t *yp)
{
    const ts_mve_dw_geo gl = *g; /* see ts_mve_dw_col */
    ts_mve_dw_col_group(&gl, xw, ww, rows, cols, xs, ys, n_pairs, gl.c_n & ~7, bias, multiplier, shift, yp, 1, 1);
}

/* Every channel of n_pairs pixel pairs down a column (see ts_mve_dw_col_group): groups of eight, then the tail. */
TS_ALWAYS_INLINE void ts_mve_dw_col(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww, int32_t rows,
                                    int32_t cols, int32_t xs, int32_t ys, int32_t n_pairs, const int32_t *bias,
                                    const int32_t *multiplier, const int8_t *shift, int8_t *yp, int general)
{
    /* a local copy: the int8 output stores could alias *g, so its fields would be reloaded after each one */
    const ts_mve_dw_geo gl = *g;
    const int32_t c8 = gl.c_n & ~7;
    int32_t c;
    for (c = 0; c < c8; c += 8) {
        ts_mve_dw_col_group(&gl, xw, ww, rows, cols, xs, ys, n_pairs, c, bias, multiplier, shift, yp, 0, general);
    }
}

static TS_NOINLINE void ts_mve_dwcol_short(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww,
        int32_t rows, int32_t cols, int32_t xs, int32_t ys, int32_t n_pairs, const int32_t *bias,
        const int32_t *multiplier, const int8_t *shift, int8_t *yp)
{
    if (rows == 3 && cols == 3) { /* the common 3x3 interior: taps unrolled */
        ts_mve_dw_col(g, xw, ww, 3, 3, xs, ys, n_pairs, bias, multiplier, shift, yp, 0);
    } else {
        ts_mve_dw_col(g, xw, ww, rows, cols, xs, ys, n_pairs, bias, multiplier, shift, yp, 0);
    }
    if (g->c_n & 7) {
        ts_mve_dwcol_tail(g, xw, ww, rows, cols, xs, ys, n_pairs, bias, multiplier, shift, yp);
    }
}

static TS_NOINLINE void ts_mve_dwcol_general(const ts_mve_dw_geo *g, const int8_t *xw, const int8_t *ww,
        int32_t rows, int32_t cols, int32_t xs, int32_t ys, int32_t n_pairs, const int32_t *bias,
        const int32_t *multiplier, const int8_t *shift, int8_t *yp)
{
    ts_mve_dw_col(g, xw, ww, rows, cols, xs, ys, n_pairs, bias, multiplier, shift, yp, 1);
    if (g->c_n & 7) {
        ts_mve_dwcol_tail(g, xw, ww, rows, cols, xs, ys, n_pairs, bias, multiplier, shift, yp);
    }
}

/* Depthwise with multiplier 1: the column pass, then the row pass, then the pixels neither took. Column pass:
 * in each output column, the output rows whose windows' rows all lie inside the image two at a time (they share
 * the column's cut by the left or right border, hence one weight sum and one set of requantization constants
 * per channel group for all of them, and one weight load per two pixels). Row pass: in each other output row
 * (cut by the top or bottom border), the columns whose windows' columns all lie inside the image, two at a time
 * along the row (the same function with the steps of a row). The others one at a time, each with its taps
 * inside the image. Returns 0 (computing nothing) for a kernel of more than 256 taps: the DSP path takes it. */
int ts_depthwise_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                             const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const ts_mve_dw_fn one = TS_MVE_GENERAL(p) ? ts_mve_dw1_general : ts_mve_dw1_short;
    const ts_mve_dwcol_fn col = TS_MVE_GENERAL(p) ? ts_mve_dwcol_general : ts_mve_dwcol_short;
    const int32_t xs = p->stride_h * p->in_w * c_n, ys = p->out_w * c_n, xs_w = p->stride_w * c_n;
    /* output rows whose window's rows lie inside the image: [oh_lo, oh_hi), taken in pairs from oh_lo; the same
     * for columns: [ow_lo, ow_hi), in pairs from ow_lo */
    const int32_t oh_lo = (p->pad_top + p->stride_h - 1) / p->stride_h;
    const int32_t oh_hi = ts_min32((p->in_h - 1 - (k_h - 1) * p->dil_h + p->pad_top) / p->stride_h + 1, p->out_h);
    const int32_t n_pairs = oh_hi > oh_lo ? (oh_hi - oh_lo) >> 1 : 0, oh_end = oh_lo + 2 * n_pairs;
    const int32_t ow_lo = (p->pad_left + p->stride_w - 1) / p->stride_w;
    const int32_t ow_hi = ts_min32((p->in_w - 1 - (k_w - 1) * p->dil_w + p->pad_left) / p->stride_w + 1, p->out_w);
    const int32_t w_pairs = ow_hi > ow_lo ? (ow_hi - ow_lo) >> 1 : 0, ow_end = ow_lo + 2 * w_pairs;
    ts_mve_dw_geo g;
    int32_t bt, oh, ow;
    if (k_h * k_w > 256) {
        return 0;
    }
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
        int empty_cols = 0; /* some output column has no tap inside the image (the column pass skips it) */
        for (ow = 0; ow < p->out_w; ++ow) {
            const int32_t w0 = ow * p->stride_w - p->pad_left;
            int32_t j_lo, j_hi; /* kernel columns inside the image: [j_lo, j_hi) */
            ts_mve_taps(w0, k_w, p->dil_w, p->in_w, &j_lo, &j_hi);
            empty_cols |= j_lo >= j_hi;
            if (n_pairs > 0 && j_lo < j_hi) {
                const int32_t h0 = oh_lo * p->stride_h - p->pad_top;
                const int8_t *xw = img + ((size_t)h0 * p->in_w + (w0 + j_lo * p->dil_w)) * c_n;
                col(&g, xw, w + (size_t)j_lo * c_n, k_h, j_hi - j_lo, xs, ys, n_pairs, bias, multiplier, shift,
                    yb + (size_t)oh_lo * ys + (size_t)ow * c_n);
            }
        }
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            const int col_row = oh >= oh_lo && oh < oh_end;
            int32_t i_lo, i_hi, s_lo, s_hi;
            if (col_row && !empty_cols) {
                continue; /* the whole row done by the column pass */
            }
            ts_mve_taps(h0, k_h, p->dil_h, p->in_h, &i_lo, &i_hi); /* kernel rows inside the image */
            if (!col_row && w_pairs > 0 && i_lo < i_hi) { /* the row pass */
                const int8_t *xw =
                    img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (ow_lo * p->stride_w - p->pad_left)) * c_n;
                col(&g, xw, w + (size_t)i_lo * k_w * c_n, i_hi - i_lo, k_w, xs_w, c_n, w_pairs, bias, multiplier,
                    shift, yb + (size_t)oh * ys + (size_t)ow_lo * c_n);
            }
            /* then the pixels left one at a time: none of the columns [s_lo, s_hi) (the interior ones of a
             * column-pass row, the row pass's of another row) */
            s_lo = col_row || i_lo < i_hi ? ow_lo : 0;
            s_hi = col_row ? ts_max32(ow_hi, ow_lo) : (i_lo < i_hi ? ow_end : 0);
            for (ow = s_lo > 0 ? 0 : s_hi; ow < p->out_w; ow = ow + 1 == s_lo ? s_hi : ow + 1) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                int8_t *yp = yb + (size_t)oh * ys + (size_t)ow * c_n;
                int32_t j_lo, j_hi;
                ts_mve_taps(w0, k_w, p->dil_w, p->in_w, &j_lo, &j_hi);
                if (col_row && j_lo < j_hi) {
                    continue; /* a border column of the column pass */
                }
                if (i_lo < i_hi && j_lo < j_hi) {
                    const int8_t *xw = img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n;
                    one(&g, xw, w + ((size_t)i_lo * k_w + j_lo) * c_n, i_hi - i_lo, j_hi - j_lo, bias, multiplier,
                        shift, yp);
                } else { /* no tap inside the image: the bias alone */
                    one(&g, img, w, 0, 0, bias, multiplier, shift, yp);
                }
            }
        }
    }
    return 1;
}

#endif /* TINYSTUDIO_MVE */
