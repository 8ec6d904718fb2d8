/* ts_depthwise_dsp.c - depthwise convolution with channel multiplier 1 on the DSP path (Armv7E-M / Armv8-M
 * mainline): groups of 4 channels, SMLABB/SMLATT keeping the channels apart, 3x3 kernels with pre-extended
 * weights and a straight-line interior. Called by ts_depthwise_conv_s8 (ts_depthwise_ref.c) when
 * out_c == in_c; the same bytes as ts_depthwise_conv_s8_ref. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* The accumulators of channels c .. c + 3 (a0: channel c, a1: c + 1, a2: c + 2, a3: c + 3). */
typedef struct {
    int32_t a0, a1, a2, a3;
} ts_acc4;

/* One tap for 4 channels, from the input word at xq and the two sign-extended weight words in wp. */
TS_ALWAYS_INLINE void ts_dw_tapx(ts_acc4 *a, const int8_t *xq, uint64_t wp, uint32_t offset)
{
    const uint32_t xv = ts_read32(xq);
    const uint32_t x02 = ts_sxtab16(offset, xv), x13 = ts_sxtab16_ror8(offset, xv);
    const uint32_t w02 = (uint32_t)wp, w13 = (uint32_t)(wp >> 32);
    a->a0 = ts_smlabb(x02, w02, a->a0);
    a->a1 = ts_smlabb(x13, w13, a->a1);
    a->a2 = ts_smlatt(x02, w02, a->a2);
    a->a3 = ts_smlatt(x13, w13, a->a3);
}

/* One tap for 4 channels: one 32-bit load of inputs and one of weights (read from the kernel). */
TS_ALWAYS_INLINE void ts_dw_tap(ts_acc4 *a, const int8_t *xq, const int8_t *wq, uint32_t offset)
{
    const uint32_t wv = ts_read32(wq);
    ts_dw_tapx(a, xq, ts_sxtb16(wv) | (uint64_t)ts_sxtb16_ror8(wv) << 32, offset);
}

/* The taps of a rows x cols window for 4 channels with weights read from the kernel (border pixels). */
TS_ALWAYS_INLINE void ts_dw_window(ts_acc4 *a, const int8_t *xr, const int8_t *wr, int32_t rows, int32_t cols,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t c_n, uint32_t offset)
{
    int32_t i, j;
    for (i = 0; i < rows; ++i, xr += x_row, wr += w_row) {
        const int8_t *xq = xr, *wq = wr;
        for (j = 0; j < cols; ++j, xq += x_col, wq += c_n) {
            ts_dw_tap(a, xq, wq, offset);
        }
    }
}

/* Tap t = 3i + j of a 3x3 window cut by the border, only when bit t of `valid` is set (xo: the offset of
 * the window's top-left tap, which may lie outside the image; only inside taps are addressed). */
TS_ALWAYS_INLINE void ts_dw_tapm(ts_acc4 *a, uint32_t valid, int t, const int8_t *img, ptrdiff_t xo,
                                 int32_t x_row, int32_t x_col, const uint64_t *wx, uint32_t offset)
{
    if (valid & (1u << t)) {
        ts_dw_tapx(a, img + xo + (t / 3) * x_row + (t % 3) * x_col, wx[t], offset);
    }
}

/* Requantizes channels c .. c + 3 into yr[0 .. 3] in the form `mode` (0: portable, 1: full int8 range,
 * 2: clamped; q: the fast form's constants). */
TS_ALWAYS_INLINE void ts_dw_store4(int8_t *yr, const ts_acc4 *a, int mode, const int32_t *multiplier,
                                   const int8_t *shift, int32_t c, int32_t step, int32_t off, int32_t lo,
                                   int32_t hi, const ts_rq *q)
{
    if (mode == 0) {
        yr[0] = ts_requant(a->a0, multiplier[c * step], shift[c * step], off, lo, hi);
        yr[1] = ts_requant(a->a1, multiplier[(c + 1) * step], shift[(c + 1) * step], off, lo, hi);
        yr[2] = ts_requant(a->a2, multiplier[(c + 2) * step], shift[(c + 2) * step], off, lo, hi);
        yr[3] = ts_requant(a->a3, multiplier[(c + 3) * step], shift[(c + 3) * step], off, lo, hi);
    } else if (mode == 1) {
        yr[0] = (int8_t)ts_ssat8(ts_rq_fast(a->a0, &q[0]));
        yr[1] = (int8_t)ts_ssat8(ts_rq_fast(a->a1, &q[1]));
        yr[2] = (int8_t)ts_ssat8(ts_rq_fast(a->a2, &q[2]));
        yr[3] = (int8_t)ts_ssat8(ts_rq_fast(a->a3, &q[3]));
    } else {
        yr[0] = ts_clamp8(ts_rq_fast(a->a0, &q[0]), lo, hi);
        yr[1] = ts_clamp8(ts_rq_fast(a->a1, &q[1]), lo, hi);
        yr[2] = ts_clamp8(ts_rq_fast(a->a2, &q[2]), lo, hi);
        yr[3] = ts_clamp8(ts_rq_fast(a->a3, &q[3]), lo, hi);
    }
}

/* Channels c .. c + 3 of a depthwise conv (multiplier 1) over the whole output: the group's requantization
 * constants, and for a 3x3 kernel its sign-extended weights, are made once. Each output row runs as a
 * left border, an interior whose 3x3 windows lie inside the image (straight-line taps, pointers stepping
 * by the stride) and a right border; border pixels take their part of the window. Always inlined into one
 * function per requantization form (`mode`, as ts_dw_store4) below. */
TS_ALWAYS_INLINE void ts_dw_group(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,
                                  const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y,
                                  int mode)
{
    const int32_t c_n = p->in_c, off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int32_t step = p->per_channel ? 1 : 0;
    const int k3 = p->k_h == 3 && p->k_w == 3;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int32_t x_row = p->dil_h * p->in_w * c_n, x_col = p->dil_w * c_n, w_row = p->k_w * c_n;
    const int32_t x_step = p->stride_w * c_n;
    const int32_t b0 = bias[c], b1 = bias[c + 1], b2 = bias[c + 2], b3 = bias[c + 3];
    /* output columns whose window lies inside the image: [ow_lo, ow_hi) (3x3 kernels only). Rounded as floor and
     * ceil for any sign (a patch tile's pad_left is negative inside the image, its width may be below the window's);
     * an empty run leaves the fast path unused (it must never be entered with nothing to do). */
    const int32_t last = p->in_w - 1 - (p->k_w - 1) * p->dil_w + p->pad_left;
    int32_t ow_lo = p->pad_left > 0 ? (p->pad_left + p->stride_w - 1) / p->stride_w : 0;
    int32_t ow_hi = last < 0 ? 0 : last / p->stride_w + 1;
    uint64_t wx[9];
    ts_rq q[4];
    int32_t t, b, oh, ow;
    ow_hi = ow_hi < p->out_w ? ow_hi : p->out_w;
    if (!k3 || ow_lo >= ow_hi) {
        ow_lo = ow_hi = p->out_w;
    }
    for (t = 0; t < 4; ++t) {
        q[t] = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * off + 1);
    }
    for (t = 0; k3 && t < 9; ++t) {
        const uint32_t v = ts_read32(w + (size_t)t * c_n + c);
        wx[t] = ts_sxtb16(v) | (uint64_t)ts_sxtb16_ror8(v) << 32;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n + c;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            int32_t i_lo = 0, i_hi = p->k_h; /* kernel rows inside the image: [i_lo, i_hi) */
            int8_t *yr = y + ((size_t)(b * p->out_h + oh) * p->out_w) * c_n + c;
            while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {
                ++i_lo;
            }
            while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {
                --i_hi;
            }
            for (ow = 0; ow < p->out_w; ++ow, yr += c_n) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                ts_acc4 a = {b0, b1, b2, b3};
                int32_t j_lo = 0, j_hi = p->k_w;
                if (ow == ow_lo && i_lo == 0 && i_hi == 3) { /* the interior run */
                    const int8_t *xq0 = img + ((size_t)h0 * p->in_w + w0) * c_n;
                    for (; ow < ow_hi; ++ow, yr += c_n, xq0 += x_step) {
                        const int8_t *xq = xq0;
                        int32_t xc = x_col;
                        TS_OPAQUE(xq);
                        TS_OPAQUE(xc);
                        a.a0 = b0;
                        a.a1 = b1;
                        a.a2 = b2;
                        a.a3 = b3;
                        ts_dw_tapx(&a, xq, wx[0], offset);
                        ts_dw_tapx(&a, xq + xc, wx[1], offset);
                        ts_dw_tapx(&a, xq + 2 * xc, wx[2], offset);
                        xq += x_row;
                        ts_dw_tapx(&a, xq, wx[3], offset);
                        ts_dw_tapx(&a, xq + xc, wx[4], offset);
                        ts_dw_tapx(&a, xq + 2 * xc, wx[5], offset);
                        xq += x_row;
                        ts_dw_tapx(&a, xq, wx[6], offset);
                        ts_dw_tapx(&a, xq + xc, wx[7], offset);
                        ts_dw_tapx(&a, xq + 2 * xc, wx[8], offset);
                        ts_dw_store4(yr, &a, mode, multiplier, shift, c, step, off, lo, hi, q);
                    }
                    --ow; /* the for loop steps past the run */
                    yr -= c_n;
                    continue;
                }
                if (k3) { /* a 3x3 window cut by the border: the valid taps, pre-extended weights */
                    const ptrdiff_t xo = ((ptrdiff_t)h0 * p->in_w + w0) * c_n;
                    uint32_t valid = 0, cols = 0;
                    int32_t i;
                    for (i = 0; i < 3; ++i) {
                        const int32_t iw = w0 + i * p->dil_w;
                        cols |= (uint32_t)(iw >= 0 && iw < p->in_w) << i;
                    }
                    for (i = i_lo; i < i_hi; ++i) {
                        valid |= cols << (3 * i);
                    }
                    ts_dw_tapm(&a, valid, 0, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 1, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 2, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 3, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 4, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 5, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 6, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 7, img, xo, x_row, x_col, wx, offset);
                    ts_dw_tapm(&a, valid, 8, img, xo, x_row, x_col, wx, offset);
                } else {
                    while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {
                        ++j_lo;
                    }
                    while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {
                        --j_hi;
                    }
                    ts_dw_window(&a, img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n,
                                 w + ((size_t)i_lo * p->k_w + j_lo) * c_n + c, i_hi - i_lo, j_hi - j_lo, x_row,
                                 x_col, w_row, c_n, offset);
                }
                ts_dw_store4(yr, &a, mode, multiplier, shift, c, step, off, lo, hi, q);
            }
        }
    }
}

static TS_NOINLINE void ts_dw_group_general(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,
                                            const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                            int8_t *y)
{
    ts_dw_group(p, x, w, c, bias, multiplier, shift, y, 0);
}

static TS_NOINLINE void ts_dw_group_full(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,
                                         const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                         int8_t *y)
{
    ts_dw_group(p, x, w, c, bias, multiplier, shift, y, 1);
}

static TS_NOINLINE void ts_dw_group_clamp(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,
                                          const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                          int8_t *y)
{
    ts_dw_group(p, x, w, c, bias, multiplier, shift, y, 2);
}

/* Depthwise with multiplier 1: groups of 4 channels on the DSP path, the last in_c % 4 channels portably. */
void ts_depthwise_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, c4 = c_n & ~3;
    int32_t c, b, oh, ow, m, i, j;
    for (c = 0; c < c4; c += 4) {
        if (p->general_requant) {
            ts_dw_group_general(p, x, w, c, bias, multiplier, shift, y);
        } else if (p->act_min == -128 && p->act_max == 127) {
            ts_dw_group_full(p, x, w, c, bias, multiplier, shift, y);
        } else {
            ts_dw_group_clamp(p, x, w, c, bias, multiplier, shift, y);
        }
    }
    for (m = c4; m < c_n; ++m) {
        const int32_t ch = p->per_channel ? m : 0;
        for (b = 0; b < p->batches; ++b) {
            const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n;
            for (oh = 0; oh < p->out_h; ++oh) {
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                    int32_t acc = bias[m];
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            if (ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w) {
                                acc += (img[((size_t)ih * p->in_w + iw) * c_n + m] + p->input_offset) *
                                       w[((size_t)i * p->k_w + j) * c_n + m];
                            }
                        }
                    }
                    y[(((size_t)b * p->out_h + oh) * p->out_w + ow) * c_n + m] =
                        ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */
