/* ts_depthwise_dsp.c - depthwise convolution with channel multiplier 1 on the DSP path (Armv7E-M / Armv8-M
 * mainline): groups of 4 channels, SMLABB/SMLATT keeping the channels apart; 3x3 kernels with pre-extended
 * weights, the output in blocks of one window case (inside, or one row or column cut by the padding), each block
 * one call of a straight-line 9-tap loop. Called by ts_depthwise_conv_s8 (ts_depthwise_ref.c) when
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

/* One window row of 3 taps for 4 channels: inputs at xq, xq + xc, xq + 2 xc, weights wr[0 .. 2] (pre-extended
 * pairs, 8-byte aligned). On the target one block of inline assembly (per tap LDR, LDRD, 2 SXTAB16,
 * 4 SMLAxy, with 4 temporaries): GCC would otherwise hoist the loads of all 9 taps of a pixel ahead of the
 * multiplies and spill them. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_row3(ts_acc4 *a, const int8_t *xq, int32_t xc, const uint64_t *wr, uint32_t offset)
{
    ts_dw_tapx(a, xq, wr[0], offset);
    ts_dw_tapx(a, xq + xc, wr[1], offset);
    ts_dw_tapx(a, xq + 2 * xc, wr[2], offset);
}
#else
TS_ALWAYS_INLINE void ts_dw_row3(ts_acc4 *a, const int8_t *xq, int32_t xc, const uint64_t *wr, uint32_t offset)
{
    uint32_t xv, x02, w02, w13;
    __asm__(/* per tap: inputs, weight pair, 2 extensions, 4 multiply-accumulates */
            "ldr %[xv], [%[xq]]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #0]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            "ldr %[xv], [%[xq], %[xc]]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #8]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            "ldr %[xv], [%[xq], %[xc], lsl #1]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #16]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            : [a0] "+r"(a->a0), [a1] "+r"(a->a1), [a2] "+r"(a->a2), [a3] "+r"(a->a3), [xv] "=&r"(xv),
              [x02] "=&r"(x02), [w02] "=&r"(w02), [w13] "=&r"(w13)
            : [xq] "r"(xq), [xc] "r"(xc), [wr] "r"(wr), [off] "r"(offset), "m"(*(const uint64_t(*)[3])wr),
              "m"(*xq));
}
#endif

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

/* What the 9-tap run function needs besides its pixels (one struct: one pointer live). */
typedef struct {
    int32_t bias[4];
    ts_rq q[4];
    int32_t x_col, x_row, x_step, y_step, x_rstep, y_rstep;
    uint32_t offset;
    int32_t lo, hi;
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t c, step, off;
} ts_dw_ctx;

/* A block of rows x n output pixels (4 channels each) whose 3x3 windows all have the same case (ts_dw_edge),
 * every tap read lying inside the image: xq is the first pixel's top-left tap, wk the 9 pre-extended weight
 * pairs of the case (zeros where the true window lies in the padding, see ts_dw_group); along a row the window
 * steps by k->x_step and the output by k->y_step, from row to row by k->x_rstep and k->y_rstep. One call per
 * block (at most 9 per group of channels: the inside block and the edge rows and columns), so that the call
 * and the row bookkeeping cost nothing per pixel; a function of its own so that its live values stay in
 * registers; always inlined into one function per requantization form (`mode`, as ts_dw_store4). */
TS_ALWAYS_INLINE void ts_dw_run9_any(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                     int32_t n, int32_t rows, int mode)
{
    do {
        const int8_t *xp = xq;
        int8_t *yp = yr;
        int32_t m = n;
        do {
            const int32_t xc = k->x_col, xr = k->x_row;
            const uint32_t offset = k->offset;
            ts_acc4 a;
            a.a0 = k->bias[0];
            a.a1 = k->bias[1];
            a.a2 = k->bias[2];
            a.a3 = k->bias[3];
            ts_dw_row3(&a, xp, xc, wk, offset);
            ts_dw_row3(&a, xp + xr, xc, wk + 3, offset);
            ts_dw_row3(&a, xp + 2 * xr, xc, wk + 6, offset);
            ts_dw_store4(yp, &a, mode, k->multiplier, k->shift, k->c, k->step, k->off, k->lo, k->hi, k->q);
            xp += k->x_step;
            yp += k->y_step;
        } while (--m > 0);
        xq += k->x_rstep;
        yr += k->y_rstep;
    } while (--rows > 0);
}

typedef void (*ts_dw_run9_fn)(const ts_dw_ctx *, const int8_t *, const uint64_t *, int8_t *, int32_t, int32_t);

static TS_NOINLINE void ts_dw_run9_general(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                           int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 0);
}

static TS_NOINLINE void ts_dw_run9_full(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                        int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 1);
}

static TS_NOINLINE void ts_dw_run9_clamp(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                         int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 2);
}

/* Where a 3x3 window lies along one axis (start s0 of an axis of n pixels, n >= 3): 0 inside, 1 its first tap
 * in the padding, 2 its last tap in the padding, -1 otherwise (wider padding). */
TS_ALWAYS_INLINE int32_t ts_dw_edge(int32_t s0, int32_t n)
{
    return s0 >= 0 && s0 + 3 <= n ? 0 : (s0 == -1 ? 1 : (s0 + 2 == n ? 2 : -1));
}

/* How many consecutive outputs from o on (of `out`, along an axis of n pixels, padding pad, stride) share the
 * window case e: the run of inside windows up to the last one, a single output for the edge and other cases. */
TS_ALWAYS_INLINE int32_t ts_dw_span(int32_t e, int32_t o, int32_t out, int32_t n, int32_t pad, int32_t stride)
{
    const int32_t last = e == 0 ? (n - 3 + pad) / stride : o; /* the last output whose window is inside */
    return (last < out - 1 ? last : out - 1) - o + 1;
}

/* The taps of one output pixel that ts_dw_run9 does not take (wider padding, other kernels, dilation): its
 * valid taps in loops, weights read from the kernel. */
static void ts_dw_pixel_any(const ts_conv_params *p, const ts_dw_ctx *k, const int8_t *img, const int8_t *w,
                            int32_t h0, int32_t w0, int8_t *yr, int mode)
{
    const int32_t c_n = p->in_c;
    int32_t i_lo = 0, i_hi = p->k_h, j_lo = 0, j_hi = p->k_w;
    ts_acc4 a;
    a.a0 = k->bias[0];
    a.a1 = k->bias[1];
    a.a2 = k->bias[2];
    a.a3 = k->bias[3];
    while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {
        ++i_lo;
    }
    while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {
        --i_hi;
    }
    while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {
        ++j_lo;
    }
    while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {
        --j_hi;
    }
    ts_dw_window(&a, img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n,
                 w + ((size_t)i_lo * p->k_w + j_lo) * c_n + k->c, i_hi - i_lo, j_hi - j_lo, k->x_row, k->x_col,
                 p->k_w * c_n, c_n, k->offset);
    if (mode == 0) {
        ts_dw_store4(yr, &a, 0, k->multiplier, k->shift, k->c, k->step, k->off, k->lo, k->hi, k->q);
    } else if (mode == 1) {
        ts_dw_store4(yr, &a, 1, k->multiplier, k->shift, k->c, k->step, k->off, k->lo, k->hi, k->q);
    } else {
        ts_dw_store4(yr, &a, 2, k->multiplier, k->shift, k->c, k->step, k->off, k->lo, k->hi, k->q);
    }
}

/* Channels c .. c + 3 of a depthwise conv (multiplier 1) over the whole output; the group's requantization
 * constants and, for a 3x3 kernel (dilation 1, image at least 3x3), its sign-extended weights are made once.
 * A 3x3 window cut by the padding on one side of an axis is read one pixel further in, so that every tap it
 * reads lies inside the image, with the weights moved the other way and a zero row or column where the true
 * window has padding: wk[e] holds, for the current row case, the 9 weights of column case e (0 inside,
 * 1 left edge, 2 right edge), remade when the row case changes. Each output row is then a left edge pixel,
 * a run of inside pixels and a right edge pixel, each one call of the straight-line 9-tap run; windows cut
 * more than that take their valid taps in loops. */
static void ts_dw_group(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y, int mode)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0;
    const int k3 = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->in_h >= 3 && p->in_w >= 3;
    const ts_dw_run9_fn run9 = mode == 0 ? ts_dw_run9_general : (mode == 1 ? ts_dw_run9_full : ts_dw_run9_clamp);
    uint64_t wx[9], wk[3][9];
    ts_dw_ctx k;
    int32_t t, b, oh, ow, nh, nw, row_case = -1;
    for (t = 0; t < 4; ++t) {
        k.bias[t] = bias[c + t];
        k.q[t] = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * p->output_offset + 1);
    }
    k.x_col = p->dil_w * c_n;
    k.x_row = p->dil_h * p->in_w * c_n;
    k.x_step = p->stride_w * c_n;
    k.y_step = c_n;
    k.x_rstep = p->stride_h * k.x_row;
    k.y_rstep = p->out_w * c_n;
    k.offset = ts_dup16(p->input_offset);
    k.lo = p->act_min;
    k.hi = p->act_max;
    k.multiplier = multiplier;
    k.shift = shift;
    k.c = c;
    k.step = step;
    k.off = p->output_offset;
    for (t = 0; k3 && t < 9; ++t) {
        const uint32_t v = ts_read32(w + (size_t)t * c_n + c);
        wx[t] = ts_sxtb16(v) | (uint64_t)ts_sxtb16_ror8(v) << 32;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n + c;
        for (oh = 0; oh < p->out_h; oh += nh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            const int32_t re = k3 ? ts_dw_edge(h0, p->in_h) : -1, drow = re == 1 ? 1 : (re == 2 ? -1 : 0);
            const int8_t *xrow = img + (ptrdiff_t)(h0 + drow) * k.x_row;
            int8_t *yr = y + ((size_t)(b * p->out_h + oh) * p->out_w) * c_n + c;
            nh = ts_dw_span(re, oh, p->out_h, p->in_h, p->pad_top, p->stride_h);
            if (re >= 0 && re != row_case) { /* weight (i, j) of case e reads tap (i + drow, j + dcol) */
                for (t = 0; t < 9; t += 3) {
                    const int32_t si = 3 * (t / 3 + drow);
                    const int inside = si >= 0 && si < 9;
                    const uint64_t r0 = inside ? wx[si] : 0, r1 = inside ? wx[si + 1] : 0;
                    const uint64_t r2 = inside ? wx[si + 2] : 0;
                    wk[0][t] = r0;
                    wk[0][t + 1] = r1;
                    wk[0][t + 2] = r2;
                    wk[1][t] = r1;
                    wk[1][t + 1] = r2;
                    wk[1][t + 2] = 0;
                    wk[2][t] = 0;
                    wk[2][t + 1] = r0;
                    wk[2][t + 2] = r1;
                }
                row_case = re;
            }
            for (ow = 0; ow < p->out_w; ow += nw, yr += nw * c_n) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                const int32_t ce = re >= 0 ? ts_dw_edge(w0, p->in_w) : -1;
                nw = ts_dw_span(ce, ow, p->out_w, p->in_w, p->pad_left, p->stride_w);
                if (ce >= 0) { /* the block of nh rows x nw pixels of this row and column case */
                    run9(&k, xrow + (w0 + (ce == 1) - (ce == 2)) * k.x_col, wk[ce], yr, nw, nh);
                } else { /* a column of windows cut more than one tap: pixel by pixel */
                    for (t = 0; t < nh; ++t) {
                        ts_dw_pixel_any(p, &k, img, w, h0 + t * p->stride_h, w0, yr + (size_t)t * k.y_rstep, mode);
                    }
                }
            }
        }
    }
}

/* Depthwise with multiplier 1: groups of 4 channels on the DSP path, the last in_c % 4 channels portably. */
void ts_depthwise_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, c4 = c_n & ~3;
    int32_t c, b, oh, ow, m, i, j;
    for (c = 0; c < c4; c += 4) {
        ts_dw_group(p, x, w, c, bias, multiplier, shift, y,
                    p->general_requant ? 0 : (p->act_min == -128 && p->act_max == 127 ? 1 : 2));
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
