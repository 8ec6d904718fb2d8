/* ts_depthwise_dsp.c - depthwise convolution with channel multiplier 1 on the DSP path (Armv7E-M / Armv8-M
 * mainline), in groups of 4 channels. Called by ts_depthwise_conv_s8 (ts_depthwise_ref.c) when out_c == in_c;
 * the same bytes as ts_depthwise_conv_s8_ref. Four ways, by shape:
 * - 3x3, stride 1, SAME, full-range requantization, 12, 6 or 3 pixels wide: the padding neither stored nor
 *   multiplied, all groups in one call (ts_dw_small, ts_depthwise_small_dsp.h).
 * - 3x3, stride 1, an output side of 6 or more (TS_DW_PLANAR_MIN), full-range requantization: a ring of 3
 *   input lines widened to int16 (input offset added, zeros for the padding), one plane per channel, lines
 *   along the longer side; a word holds 2 adjacent columns of a channel, so a window row of 4 adjacent outputs
 *   is 3 loads and 8 SMLAD/SMLAxy (ts_dw_group3).
 * - other 3x3 layers: SMLABB/SMLATT over the 4 channels of a pixel with pre-extended weights, the output in
 *   blocks of one window case (inside, or one row or column cut by the padding), each block one call of a
 *   straight-line 9-tap loop; small stride-1 images are first copied with their padding, so that all of it is
 *   one inside block (ts_dw_group).
 * - other kernels, dilation: each pixel's valid taps in loops (ts_dw_pixel_any). */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

#include "ts_depthwise_blocks_dsp.h"
#include "ts_depthwise_ring_dsp.h"
#include "ts_depthwise_small_dsp.h"

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

/* the stride-2 path, which uses the two above */
#include "ts_depthwise_s2_dsp.h"

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
            wn = (ns + 3) & ~1; /* the columns its windows read (TS_DW_LINE) */
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

/* Whether the ring (ts_dw_group3) takes the layer: where widening pays (every input value serves 9 outputs, long
 * lines), in the full-range form of the MLPerf Tiny models; the other forms keep the 4-channel path. */
TS_ALWAYS_INLINE int ts_dw_planar(const ts_conv_params *p, int mode)
{
    return mode == 1 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && (p->out_h > p->out_w ? p->out_h : p->out_w) >= TS_DW_PLANAR_MIN;
}

/* Depthwise with multiplier 1: groups of 4 channels on the DSP path, the last in_c % 4 channels portably. */
void ts_depthwise_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, c4 = c_n & ~3;
    const int mode = p->general_requant ? 0 : (p->act_min == -128 && p->act_max == 127 ? 1 : 2);
    const int planar = ts_dw_planar(p, mode);
    /* small images at stride 1: ts_dw_group's padded copy */
    const int padded = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->stride_h == 1 &&
                       p->stride_w == 1 && p->input_offset > -128 && (p->out_h + 2) * (p->out_w + 2) <= TS_DW_PADDED;
    const int small = ts_dw_small_fits(p, mode); /* before the ring: small SAME images, no padding stored */
    const int s2 = !small && ts_dw_s2_ok(p, mode);
    /* the channels run in groups of 4: all whole groups, except where ts_dw_group would take them in a library
     * that switched it off (TINYSTUDIO_DW_GROUP 0: no layer predicted to use it, kernelfiles.dsp_paths), where
     * every channel takes the per-channel loop below (slower, the same bytes) */
    const int32_t cg = small || s2 || planar || TINYSTUDIO_DW_GROUP ? c4 : 0;
    int32_t c, b, oh, ow, m, i, j;
    if (small) { /* all groups in one call */
        ts_dw_small(p, x, w, bias, multiplier, shift, y);
    } else if (s2) {
        ts_dw_conv_s2(p, x, w, bias, multiplier, shift, y);
    }
    for (c = small || s2 ? c4 : 0; c < cg; c += 4) {
        if (planar) {
            ts_dw_group3(p, x, w, c, bias, multiplier, shift, y);
        } else if (TINYSTUDIO_DW_GROUP) { /* (at 0, cg is 0 here: the test lets the compiler drop ts_dw_group) */
            ts_dw_group(p, x, w, c, bias, multiplier, shift, y, mode, padded);
        }
    }
    for (m = cg; m < c_n; ++m) {
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
