/* ts_depthwise_dsp.c - depthwise convolution with channel multiplier 1 on the DSP path (Armv7E-M / Armv8-M
 * mainline), in groups of 4 channels. Called by ts_depthwise_conv_s8 (ts_depthwise_ref.c) when out_c == in_c;
 * the same bytes as ts_depthwise_conv_s8_ref. Three ways, by shape:
 * - 3x3, stride 1, a long output side (>= 12), full-range requantization: a ring of 3 input lines widened to
 *   int16 (input offset added, zeros for the padding), one plane per channel, lines along the longer side;
 *   a word holds 2 adjacent columns of a channel, so a window row of 4 adjacent outputs is 3 loads and 8
 *   SMLAD/SMLAxy (ts_dw_group3).
 * - other 3x3 layers: SMLABB/SMLATT over the 4 channels of a pixel with pre-extended weights, the output in
 *   blocks of one window case (inside, or one row or column cut by the padding), each block one call of a
 *   straight-line 9-tap loop; small stride-1 images are first copied with their padding, so that all of it is
 *   one inside block (ts_dw_group).
 * - other kernels, dilation: each pixel's valid taps in loops (ts_dw_pixel_any). */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* SMLABT / SMLATB (bottom x top, top x bottom halves), which ts_dsp.h has no use for elsewhere. */
#if defined(TINYSTUDIO_EMULATE_DSP)
static inline int32_t ts_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_hi16(b)));
}
static inline int32_t ts_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_hi16(a) * ts_lo16(b)));
}
#else
static inline int32_t ts_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
static inline int32_t ts_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
#endif
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

/* Most 4-channel pixels of the padded copy of a small image, stride 1 (ts_dw_group; 256 bytes of stack):
 * 8 x 8, i.e. outputs up to 6 x 6. (At stride 2 the copy costs more than the edge cases it saves.) */
#define TS_DW_PADDED 64

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
 * more than that take their valid taps in loops. A small image at stride 1 is instead copied with its padding
 * (the input zero point, which the offset makes 0) into img, 4 channels a word: one inside block, one call. */
static void ts_dw_group(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y, int mode, int padded)
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
    for (t = 0; (k3 || padded) && t < 9; ++t) {
        const uint32_t v = ts_read32(w + (size_t)t * c_n + c);
        wx[t] = ts_sxtb16(v) | (uint64_t)ts_sxtb16_ror8(v) << 32;
    }
    if (padded) { /* the group's 4 channels copied into a padded image: all windows inside, one run9 call */
        const int32_t ph = p->out_h + 2, pw = p->out_w + 2;
        const uint32_t zp = (uint8_t)-p->input_offset * 0x01010101u; /* + input_offset = 0 */
        uint32_t img[TS_DW_PADDED];
        int32_t i, j;
        k.x_col = 4;
        k.x_row = pw * 4;
        k.x_step = 4;
        k.x_rstep = k.x_row;
        for (b = 0; b < p->batches; ++b) {
            const int8_t *xb = x + (size_t)b * p->in_h * p->in_w * c_n + c;
            for (i = 0; i < ph; ++i) { /* per row: padding, the image's pixels, padding */
                const int32_t ih = i - p->pad_top, in = ih >= 0 && ih < p->in_h;
                uint32_t *d = img + i * pw;
                int32_t jl = in ? p->pad_left : pw, jr = in ? p->pad_left + p->in_w : pw;
                jl = jl < 0 ? 0 : (jl > pw ? pw : jl);
                jr = jr < jl ? jl : (jr > pw ? pw : jr);
                for (j = 0; j < jl; ++j) {
                    d[j] = zp;
                }
                for (; j < jr; ++j) {
                    d[j] = ts_read32(xb + ((size_t)ih * p->in_w + (j - p->pad_left)) * c_n);
                }
                for (; j < pw; ++j) {
                    d[j] = zp;
                }
            }
            run9(&k, (const int8_t *)img, wx, y + (size_t)b * p->out_h * p->out_w * c_n + c, p->out_w, p->out_h);
        }
        return;
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

/* Most values per line of the widened input ring (3 lines x 4 channel planes x 28 int16 = 672 bytes of
 * stack): a strip of n windows spans n + 2 columns, plus the one that the single last window's second word
 * reads past them (its value unused), rounded up to even; strips of up to 25 windows (KWS in one). */
#define TS_DW_LINE 28
/* The longer output side from which the widened ring beats the 4-channel path (measured: 25 x 5 and
 * 12 x 12 do, 6 x 6 does not). */
#define TS_DW_PLANAR_MIN 12

/* One channel of a 3x3 group: its bias, its requantization (ts_rq's multiplier, bias and right in the order
 * that one LDRD takes the first two) and per window row i the int16 weight pairs (w_i0, w_i1) and
 * (w_i1, w_i2), low half first, for rows 0, 1, 2, 0, 1: the ring slot s holds window row (s + k) mod 3 for a
 * rotation k, so the 3 rows of rotation k are w + 2k on, in slot order. Weights and bias are doubled, so that
 * the accumulator is the 2x that SMMLAR takes (ts_dw_out). */
typedef struct {
    int32_t bias, multiplier, qbias, right;
    uint32_t w[10];
} ts_dw_ch;

/* One output line of n outputs of 4 channels: r the first channel's plane in ring slot 0 at the first window
 * (slot s is s * TS_DW_SLOT values further, the next channel's plane TS_DW_LINE), rot the weight rotation,
 * outputs at y, y_step bytes apart (the next channel's 1 further). */
typedef struct {
    const int16_t *r;
    int8_t *y;
    int32_t n, y_step, rot;
} ts_dw_job;

#define TS_DW_SLOT (4 * TS_DW_LINE)
#define TS_DW_SLOT_BYTES (8 * TS_DW_LINE)
#define TS_DW_SLOT2_BYTES (16 * TS_DW_LINE)
#define TS_DW_PLANE_BYTES (2 * TS_DW_LINE)
#define TS_DW_PLANE2_BYTES (4 * TS_DW_LINE)
#define TS_DW_PLANE3_BYTES (6 * TS_DW_LINE)

/* ts_rq_fast and SSAT of an accumulator that holds 2x. */
TS_ALWAYS_INLINE int8_t ts_dw_out(int32_t acc, const ts_dw_ch *ch)
{
    return (int8_t)ts_ssat8(ts_smmlar(acc, ch->multiplier, ch->qbias - (int32_t)((uint32_t)acc >> 31)) >>
                            ch->right);
}

/* One window row for four adjacent outputs s[0 .. 3] from the plane row r at the first output's window. */
TS_ALWAYS_INLINE void ts_dw_quad(const int16_t *r, const uint32_t *wr, int32_t *s)
{
    const uint32_t w01 = wr[0], w12 = wr[1];
    const uint32_t a = ts_read32(r), b = ts_read32(r + 2), c = ts_read32(r + 4);
    s[0] = ts_smlabt(b, w12, ts_smlad(a, w01, s[0]));
    s[1] = ts_smlad(b, w12, ts_smlatb(a, w01, s[1]));
    s[2] = ts_smlabt(c, w12, ts_smlad(b, w01, s[2]));
    s[3] = ts_smlad(c, w12, ts_smlatb(b, w01, s[3]));
}

/* Channel ch's n outputs at *yp, ys bytes apart, from its plane at *rp (slot 0), with the slots' weight rows at w:
 * 4 adjacent ones per step, then single ones; back[0] = 2 n - 8 (the bytes from the first to the last step of 4's
 * start), back[1] = n ys - 1. Leaves *rp and *yp at the next channel's plane and output. On the target one block
 * of inline assembly: per step of 4, 3 window rows of 3 loads of inputs, one LDRD of weights and 8 multiplies
 * (the first row's start from the bias), then 4 requantizations and stores, in 14 registers (one ring pointer
 * for the 3 rows, since the rotated weights keep the slots in address order; back in memory); GCC spills
 * otherwise. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_run(const ts_dw_ch *ch, const uint32_t *w, const int16_t **rp, int8_t **yp, int32_t ys,
                                const int32_t *back)
{
    const int16_t *r = *rp;
    int8_t *y = *yp;
    int32_t n = back[0] / 2 + 4;
    *rp += TS_DW_LINE;
    *yp += 1;
    for (; n >= 4; n -= 4, r += 4, y += 4 * ys) {
        int32_t s[4];
        s[0] = s[1] = s[2] = s[3] = ch->bias;
        ts_dw_quad(r, w, s);
        ts_dw_quad(r + TS_DW_SLOT, w + 2, s);
        ts_dw_quad(r + 2 * TS_DW_SLOT, w + 4, s);
        y[0] = ts_dw_out(s[0], ch);
        y[ys] = ts_dw_out(s[1], ch);
        y[2 * ys] = ts_dw_out(s[2], ch);
        y[3 * ys] = ts_dw_out(s[3], ch);
    }
    for (; n > 0; --n, ++r, y += ys) {
        int32_t s0 = ts_smlabt(ts_read32(r + 2), w[1], ts_smlad(ts_read32(r), w[0], ch->bias));
        s0 = ts_smlabt(ts_read32(r + TS_DW_SLOT + 2), w[3], ts_smlad(ts_read32(r + TS_DW_SLOT), w[2], s0));
        s0 = ts_smlabt(ts_read32(r + 2 * TS_DW_SLOT + 2), w[5], ts_smlad(ts_read32(r + 2 * TS_DW_SLOT), w[4], s0));
        y[0] = ts_dw_out(s0, ch);
    }
}
#else
#define TS_DW_S2(X) #X
#define TS_DW_S(X) TS_DW_S2(X)
/* window row at byte offset ROFF of the ring pointer (8 bytes ahead already), weights at byte offset WOFF */
#define TS_DW_QROW(ROFF, WOFF)                                                                                     \
    "ldr %[a], [%[r], #" ROFF "-8]\n\t"                                                                          \
    "ldr %[b], [%[r], #" ROFF "-4]\n\t"                                                                          \
    "ldrd %[w01], %[w12], [%[w], #" WOFF "]\n\t"                                                                 \
    "smlad %[s0], %[a], %[w01], %[s0]\n\t"                                                                       \
    "smlatb %[s1], %[a], %[w01], %[s1]\n\t"                                                                      \
    "ldr %[a], [%[r], #" ROFF "]\n\t"                                                                            \
    "smlabt %[s0], %[b], %[w12], %[s0]\n\t"                                                                      \
    "smlad %[s1], %[b], %[w12], %[s1]\n\t"                                                                       \
    "smlad %[s2], %[b], %[w01], %[s2]\n\t"                                                                       \
    "smlatb %[s3], %[b], %[w01], %[s3]\n\t"                                                                      \
    "smlabt %[s2], %[a], %[w12], %[s2]\n\t"                                                                      \
    "smlad %[s3], %[a], %[w12], %[s3]\n\t"
/* one window row of a single output */
#define TS_DW_SROW(ROFF, WOFF)                                                                                     \
    "ldr %[a], [%[r], #" ROFF "]\n\t"                                                                            \
    "ldr %[b], [%[r], #" ROFF "+4]\n\t"                                                                          \
    "ldrd %[w01], %[w12], [%[w], #" WOFF "]\n\t"                                                                 \
    "smlad %[s0], %[a], %[w01], %[s0]\n\t"                                                                       \
    "smlabt %[s0], %[b], %[w12], %[s0]\n\t"
/* requantize accumulator S (ts_dw_out; mult in a, qbias in b, right in w01) and store it at [ADDR] */
#define TS_DW_QOUT(S, ADDR)                                                                                        \
    "sub %[w12], %[b], %[" S "], lsr #31\n\t"                                                                    \
    "smmlar %[" S "], %[" S "], %[a], %[w12]\n\t"                                                                \
    "asr %[" S "], %[" S "], %[w01]\n\t"                                                                         \
    "ssat %[" S "], #8, %[" S "]\n\t"                                                                            \
    "strb %[" S "], " ADDR "\n\t"
TS_ALWAYS_INLINE void ts_dw_run(const ts_dw_ch *ch, const uint32_t *w, const int16_t **rp, int8_t **yp, int32_t ys,
                                const int32_t *back)
{
    const int16_t *r = *rp, *end;
    int8_t *y = *yp;
    int32_t s0, s1, s2, s3;
    uint32_t a, b, w01, w12;
    __asm__ volatile("ldr %[end], %[n2]\n\t"
                     "add %[end], %[r], %[end]\n\t" /* the last step of 4's start */
                     "cmp %[r], %[end]\n\t"
                     "bhi 2f\n\t"
                     "1:\n\t"
                     "ldr %[s3], [%[ch]]\n\t"
                     "ldr %[a], [%[r]], #8\n\t" /* the step's advance */
                     "ldr %[b], [%[r], #-4]\n\t"
                     "ldrd %[w01], %[w12], [%[w]]\n\t"
                     "smlad %[s0], %[a], %[w01], %[s3]\n\t"
                     "smlatb %[s1], %[a], %[w01], %[s3]\n\t"
                     "smlad %[s2], %[b], %[w01], %[s3]\n\t"
                     "smlatb %[s3], %[b], %[w01], %[s3]\n\t"
                     "ldr %[a], [%[r]]\n\t"
                     "smlabt %[s0], %[b], %[w12], %[s0]\n\t"
                     "smlad %[s1], %[b], %[w12], %[s1]\n\t"
                     "smlabt %[s2], %[a], %[w12], %[s2]\n\t"
                     "smlad %[s3], %[a], %[w12], %[s3]\n\t"
                     TS_DW_QROW(TS_DW_S(TS_DW_SLOT_BYTES), "8")
                     TS_DW_QROW(TS_DW_S(TS_DW_SLOT2_BYTES), "16")
                     "ldrd %[a], %[b], [%[ch], #4]\n\t"
                     "ldr %[w01], [%[ch], #12]\n\t"
                     TS_DW_QOUT("s0", "[%[y]]")
                     TS_DW_QOUT("s1", "[%[y], %[ys]]")
                     "add %[y], %[y], %[ys], lsl #1\n\t"
                     TS_DW_QOUT("s2", "[%[y]]")
                     TS_DW_QOUT("s3", "[%[y], %[ys]]")
                     "add %[y], %[y], %[ys], lsl #1\n\t"
                     "cmp %[r], %[end]\n\t"
                     "bls 1b\n\t"
                     "2:\n\t"
                     "adds %[end], %[end], #8\n\t"
                     "cmp %[r], %[end]\n\t"
                     "beq 4f\n\t"
                     "3:\n\t"
                     "ldr %[s0], [%[ch]]\n\t"
                     TS_DW_SROW("0", "0")
                     TS_DW_SROW(TS_DW_S(TS_DW_SLOT_BYTES), "8")
                     TS_DW_SROW(TS_DW_S(TS_DW_SLOT2_BYTES), "16")
                     "ldrd %[a], %[b], [%[ch], #4]\n\t"
                     "ldr %[w01], [%[ch], #12]\n\t"
                     TS_DW_QOUT("s0", "[%[y]]")
                     "add %[y], %[y], %[ys]\n\t"
                     "adds %[r], %[r], #2\n\t"
                     "cmp %[r], %[end]\n\t"
                     "bne 3b\n\t"
                     "4:\n\t"
                     "ldr %[a], %[n2]\n\t" /* to the next channel's first output and plane */
                     "sub %[r], %[r], %[a]\n\t"
                     "adds %[r], %[r], #" TS_DW_S(TS_DW_PLANE_BYTES) "-8\n\t"
                     "ldr %[a], %[nys]\n\t"
                     "sub %[y], %[y], %[a]\n\t"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [a] "=&r"(a), [b] "=&r"(b),
                       [w01] "=&r"(w01), [w12] "=&r"(w12), [r] "+r"(r), [y] "+r"(y), [end] "=&r"(end)
                     : [ch] "r"(ch), [w] "r"(w), [ys] "r"(ys), [n2] "m"(back[0]), [nys] "m"(back[1])
                     : "cc", "memory");
    *rp = r;
    *yp = y;
}
#undef TS_DW_QOUT
#undef TS_DW_SROW
#undef TS_DW_QROW
#endif

/* An output line of 4 channels (ts_dw_run each). A function of its own, so that its live values stay in
 * registers. */
static TS_NOINLINE void ts_dw_line(const ts_dw_ch *chs, const ts_dw_job *j)
{
    const ts_dw_ch *ch = chs;
    const uint32_t *w = chs->w + 2 * j->rot;
    const int16_t *r = j->r;
    int8_t *y = j->y;
    const int32_t ys = j->y_step, back[2] = {2 * j->n - 8, j->n * j->y_step - 1}; /* see ts_dw_run */
    for (; ch != chs + 4; ++ch, w += sizeof(ts_dw_ch) / 4) {
        ts_dw_run(ch, w, &r, &y, ys, back);
    }
}

/* Column 0 of the 4 planes (TS_DW_LINE values apart) at p0 from the input position at x. */
TS_ALWAYS_INLINE void ts_dw_fill1(int16_t *p0, const int8_t *x, uint32_t offset)
{
    const uint32_t v = ts_read32(x), e = ts_sxtab16(offset, v), o = ts_sxtab16_ror8(offset, v);
    p0[0] = (int16_t)(uint16_t)(e & 0xFFFFu);
    p0[TS_DW_LINE] = (int16_t)(uint16_t)(o & 0xFFFFu);
    p0[2 * TS_DW_LINE] = (int16_t)(uint16_t)(e >> 16);
    p0[3 * TS_DW_LINE] = (int16_t)(uint16_t)(o >> 16);
}

/* Columns 0 .. n - 1 (n even, > 0) of the 4 planes (TS_DW_LINE values apart) at p0 (word aligned) from the input
 * positions at x, xs bytes apart: per pair of positions 2 loads, 4 SXTAB16 (which add the offset) and PKHBT /
 * PKHTB into one word per plane. On the target inline assembly, since GCC does not form the PKHs; two pairs per
 * loop step. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_fill2(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t n)
{
    int32_t j;
    for (j = 0; j < n; j += 2) {
        const uint32_t v0 = ts_read32(x + (ptrdiff_t)j * xs), v1 = ts_read32(x + (ptrdiff_t)(j + 1) * xs);
        const uint32_t e0 = ts_sxtab16(offset, v0), o0 = ts_sxtab16_ror8(offset, v0);
        const uint32_t e1 = ts_sxtab16(offset, v1), o1 = ts_sxtab16_ror8(offset, v1);
        ts_write32(p0 + j, (e0 & 0xFFFFu) | e1 << 16);
        ts_write32(p0 + j + TS_DW_LINE, (o0 & 0xFFFFu) | o1 << 16);
        ts_write32(p0 + j + 2 * TS_DW_LINE, (e1 & 0xFFFF0000u) | e0 >> 16);
        ts_write32(p0 + j + 3 * TS_DW_LINE, (o1 & 0xFFFF0000u) | o0 >> 16);
    }
}
#else
/* one pair of positions (2 columns of the 4 planes) */
#define TS_DW_FPAIR                                                                                                \
    "ldr %[v0], [%[x]]\n\t"                                                                                        \
    "ldr %[v1], [%[x], %[xs]]\n\t"                                                                                 \
    "add %[x], %[x], %[xs], lsl #1\n\t"                                                                            \
    "sxtab16 %[e0], %[off], %[v0]\n\t"                                                                             \
    "sxtab16 %[o0], %[off], %[v0], ror #8\n\t"                                                                     \
    "sxtab16 %[e1], %[off], %[v1]\n\t"                                                                             \
    "sxtab16 %[o1], %[off], %[v1], ror #8\n\t"                                                                     \
    "pkhbt %[v0], %[e0], %[e1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[e1], %[e0], asr #16\n\t"                                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_PLANE2_BYTES) "]\n\t"                                                      \
    "pkhbt %[e1], %[o0], %[o1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[o1], %[o0], asr #16\n\t"                                                                       \
    "str %[e1], [%[p], #" TS_DW_S(TS_DW_PLANE_BYTES) "]\n\t"                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_PLANE3_BYTES) "]\n\t"                                                      \
    "str %[v0], [%[p]], #4\n\t"
TS_ALWAYS_INLINE void ts_dw_fill2(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t n)
{
    const int16_t *end = p0 + n;
    uint32_t v0, v1, e0, o0, e1, o1;
    __asm__ volatile("sub %[v0], %[end], %[p]\n\t" /* an odd count of pairs: enter at the second */
                     "tst %[v0], #4\n\t"
                     "bne 2f\n\t"
                     "1:\n\t" TS_DW_FPAIR
                     "2:\n\t" TS_DW_FPAIR
                     "cmp %[p], %[end]\n\t"
                     "bne 1b\n\t"
                     : [v0] "=&r"(v0), [v1] "=&r"(v1), [e0] "=&r"(e0), [o0] "=&r"(o0), [e1] "=&r"(e1), [o1] "=&r"(o1),
                       [x] "+r"(x), [p] "+r"(p0)
                     : [xs] "r"(xs), [off] "r"(offset), [end] "r"(end)
                     : "cc", "memory");
}
#undef TS_DW_FPAIR
#endif

/* Ring line `line` (4 channel planes of TS_DW_LINE values) from the input line xl (channel c at position 0,
 * positions xs bytes apart, n of them; NULL: a padding line), column j holding position cb + j for j < wn:
 * 4 channels widened at once (SXTAB16 adds the offset), zeros outside the input. (The zero is hidden from the
 * optimizer, which would otherwise make 4 memset calls of the one or two padding columns.) Not
 * inlined: its loops keep their values in registers. */
static TS_NOINLINE void ts_dw_fill(int16_t (*line)[TS_DW_LINE], const int8_t *xl, int32_t cb, int32_t wn,
                                   int32_t n, int32_t xs, uint32_t offset)
{
    int16_t *p0 = line[0], *p1 = line[1], *p2 = line[2], *p3 = line[3];
    int32_t j = 0, jl = -cb, jr = n - cb;
    int16_t zero = 0;
    uint32_t zero2 = 0;
    TS_OPAQUE(zero);
    TS_OPAQUE(zero2);
    if (!xl) { /* a padding line: the whole slot (4 x TS_DW_LINE values, a multiple of 8) in words of zeros */
        for (; j < 4 * TS_DW_LINE; j += 8) {
            ts_write32(p0 + j, zero2);
            ts_write32(p0 + j + 2, zero2);
            ts_write32(p0 + j + 4, zero2);
            ts_write32(p0 + j + 6, zero2);
        }
        return;
    }
    jl = jl < 0 ? 0 : (jl > wn ? wn : jl);
    jr = jr < jl ? jl : (jr > wn ? wn : jr);
    for (; j < jl; ++j) {
        p0[j] = p1[j] = p2[j] = p3[j] = zero;
    }
    if ((j & 1) == 1 && j < jr) { /* an odd first column alone, then pairs from an even one */
        ts_dw_fill1(p0 + j, xl + (ptrdiff_t)(cb + j) * xs, offset);
        ++j;
    }
    if (jr - j >= 2) {
        const int32_t jp = (jr - j) & ~1;
        ts_dw_fill2(p0 + j, xl + (ptrdiff_t)(cb + j) * xs, xs, offset, jp);
        j += jp;
    }
    if (j < jr) {
        ts_dw_fill1(p0 + j, xl + (ptrdiff_t)(cb + j) * xs, offset);
        ++j;
    }
    for (; j < wn; ++j) {
        p0[j] = p1[j] = p2[j] = p3[j] = zero;
    }
}

/* One axis of the image as the ring sees it: input and output lengths, padding, and the bytes between
 * consecutive input and output positions. */
typedef struct {
    int32_t in, out, pad, xs, ys;
} ts_dw_axis;

/* Channels c .. c + 3 of a 3x3 depthwise conv (dilation 1, stride 1, full-range requantization, weights and
 * bias doubled for ts_dw_out): the ring lines run along the longer output
 * axis A (the image transposed when that is the height, weights too). Per strip of windows along A and per
 * output line across, the input lines its windows read are widened into the ring once (line h in slot h mod 3:
 * consecutive output lines share two), then one line call per channel. */
static void ts_dw_group3(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c, const int32_t *bias,
                         const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0, tr = p->out_h > p->out_w;
    const ts_dw_axis h = {p->in_h, p->out_h, p->pad_top, p->in_w * c_n, p->out_w * c_n};
    const ts_dw_axis v = {p->in_w, p->out_w, p->pad_left, c_n, c_n};
    const ts_dw_axis A = tr ? h : v, B = tr ? v : h; /* A along the ring lines, B across */
    const int32_t smax = TS_DW_LINE - 3, nstrips = (A.out + smax - 1) / smax;
    const uint32_t offset = ts_dup16(p->input_offset);
    union { /* word aligned for the word accesses */
        int16_t v[3][4][TS_DW_LINE];
        uint32_t align;
    } ring;
    ts_dw_ch ch[4];
    ts_dw_job job;
    ts_rq q;
    int32_t t, i, b, os, si, ns, s;
    for (t = 0; t < 4; ++t) {
        for (i = 0; i < 3; ++i) { /* weight (i, j): ring line i, column j */
            const int8_t *wr = w + (size_t)(tr ? i : 3 * i) * c_n + c + t;
            const int32_t wj = (tr ? 3 : 1) * c_n;
            const uint32_t w0 = (uint16_t)(2 * wr[0]), w1 = (uint16_t)(2 * wr[wj]), w2 = (uint16_t)(2 * wr[2 * wj]);
            ch[t].w[2 * i] = w0 | w1 << 16;
            ch[t].w[2 * i + 1] = w1 | w2 << 16;
        }
        ch[t].w[6] = ch[t].w[0];
        ch[t].w[7] = ch[t].w[1];
        ch[t].w[8] = ch[t].w[2];
        ch[t].w[9] = ch[t].w[3];
        ch[t].bias = (int32_t)((uint32_t)bias[c + t] * 2u);
        q = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * p->output_offset + 1);
        ch[t].multiplier = q.multiplier;
        ch[t].qbias = q.bias;
        ch[t].right = q.right;
    }
    job.y_step = A.ys;
    job.r = ring.v[0][0];
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n + c;
        int8_t *yb = y + (size_t)b * p->out_h * p->out_w * c_n + c;
        for (os = 0, si = 0; os < A.out; os += ns, ++si) {
            const int32_t cb = os - A.pad;
            int32_t wn;
            ns = (A.out - os + nstrips - si - 1) / (nstrips - si); /* strips of equal length */
            wn = (ns + 4) & ~1;
            job.n = ns;
            /* line i - pad in slot s (line h in slot h mod 3), each widened once; from the third on, the output
             * line i - 2, whose window ends there, its first line in slot s + 1 mod 3 */
            for (i = 0, s = ((-B.pad) % 3 + 3) % 3; i < B.out + 2; ++i, s = s == 2 ? 0 : s + 1) {
                const int32_t r = i - B.pad, first = s == 2 ? 0 : s + 1;
                ts_dw_fill(ring.v[s], r >= 0 && r < B.in ? img + (size_t)r * B.xs : NULL, cb, wn, A.in, A.xs,
                           offset);
                if (i >= 2) {
                    job.y = yb + (size_t)(i - 2) * B.ys + (size_t)os * A.ys;
                    job.rot = first ? 3 - first : 0; /* slot t: input line i - 2 - pad + (t + rot) mod 3 */
                    ts_dw_line(ch, &job);
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
    const int mode = p->general_requant ? 0 : (p->act_min == -128 && p->act_max == 127 ? 1 : 2);
    /* the ring where widening pays (every input value serves 9 outputs, long lines), in the full-range form of
     * the MLPerf Tiny models; the other forms keep the 4-channel path */
    const int planar = mode == 1 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 &&
                       p->stride_h == 1 && p->stride_w == 1 &&
                       (p->out_h > p->out_w ? p->out_h : p->out_w) >= TS_DW_PLANAR_MIN;
    /* small images at stride 1: ts_dw_group's padded copy */
    const int padded = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->stride_h == 1 &&
                       p->stride_w == 1 && p->input_offset > -128 && (p->out_h + 2) * (p->out_w + 2) <= TS_DW_PADDED;
    int32_t c, b, oh, ow, m, i, j;
    for (c = 0; c < c4; c += 4) {
        if (planar) {
            ts_dw_group3(p, x, w, c, bias, multiplier, shift, y);
        } else {
            ts_dw_group(p, x, w, c, bias, multiplier, shift, y, mode, padded);
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
