/* ts_conv_dsp.c - regular convolution on the DSP path (Armv7E-M / Armv8-M mainline): output pixels four at a
 * time are expanded into an int16 im2col block, then multiplied with every output channel by SMLAD. Called by
 * ts_conv_s8 (ts_conv_ref.c) for groups == 1, and by ts_conv_s8_w16 for weights stored pre-widened to int16
 * (a flash-for-speed choice of the generator: no sign extension in the inner loop); the same bytes as
 * ts_conv_s8_ref. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* Whether the K % 4 tail of the reduction goes as one more 4-step group, its missing steps zero in the block
 * (first layers: 1 or 3 input channels, K = 27, 25, ...): one group of SMLADs per channel instead of a
 * multiply-accumulate loop over the tail. Only from K = 24 on, where the padded block (8 * ceil4(K) bytes)
 * fits the scratch the generator gives a layer with in_c % 4 != 0 (9 K bytes). */
TS_ALWAYS_INLINE int ts_conv_padded_tail(int32_t k_all) { return (k_all & 3) != 0 && k_all >= 24; }

/* Four words of int16 for 4 input bytes: (x + offset) in the order [0, 2] then [1, 3] (see below). */
TS_ALWAYS_INLINE void ts_expand4(int16_t *dst, const int8_t *src, uint32_t offset)
{
    const uint32_t v = ts_read32(src);
    ts_write32(dst, ts_sxtab16(offset, v));
    ts_write32(dst + 2, ts_sxtab16_ror8(offset, v));
}

/* First layers (in_c 1 or 3, dilation 1): where each 4-step group of a window lies, relative to the window's
 * first byte, made once per layer, so that a window inside the image is expanded straight from the image
 * (one or two unaligned words per group) instead of being gathered byte-wise into tmp first. A group inside
 * one kernel row is the word at off_a (mask all ones); one that crosses into the next row after m bytes takes
 * its low m bytes from the word at off_a and the others from the word that ends 4 - m bytes into that row
 * (off_b: m bytes before it, inside the image since that row is not the window's first). The zero-padded tail
 * group (ts_conv_padded_tail) is the word ending at the tail's last byte, shifted down (its other steps meet
 * zero weights). */
#define TS_CONV_PLAN_MAX 12
typedef struct {
    int32_t off_a, off_b;
    uint32_t mask;
} ts_conv_plan_group;

typedef struct {
    int32_t groups, tail_off, tail_shift, has_tail;
    ts_conv_plan_group g[TS_CONV_PLAN_MAX];
} ts_conv_plan;

/* 1 with the plan made, 0 where the layer keeps the gather (in_c % 4 == 0, dilation, kernel rows shorter than
 * a word, more than TS_CONV_PLAN_MAX groups, a tail that is not padded or that crosses a kernel row). */
static int ts_conv_plan_make(const ts_conv_params *p, ts_conv_plan *plan)
{
    const int32_t c_n = p->in_c, n = p->k_w * c_n, row = p->in_w * c_n, k_all = p->k_h * n;
    const int32_t k4 = k_all & ~3, tail = k_all - k4, r_t = k4 / n, j_t = k4 - r_t * n;
    int32_t g;
    if ((c_n & 3) == 0 || p->dil_h != 1 || p->dil_w != 1 || n < 4 || k4 / 4 > TS_CONV_PLAN_MAX ||
        (tail != 0 && (!ts_conv_padded_tail(k_all) || j_t + tail > n || (r_t == 0 && j_t + tail < 4)))) {
        return 0;
    }
    plan->groups = k4 / 4;
    for (g = 0; g < plan->groups; ++g) {
        const int32_t r = 4 * g / n, j = 4 * g - r * n, m = n - j; /* m: the group's bytes left in row r */
        plan->g[g].off_a = r * row + j;
        plan->g[g].off_b = m >= 4 ? r * row + j : (r + 1) * row - m;
        plan->g[g].mask = m >= 4 ? 0xFFFFFFFFu : (1u << (8 * m)) - 1u;
    }
    plan->has_tail = tail != 0;
    plan->tail_off = r_t * row + j_t + tail - 4;
    plan->tail_shift = 8 * (4 - tail);
    return 1;
}

/* The receptive fields of output pixels q0 .. q0 + 3 (or q0 four times when `same`) as one four-pixel
 * block of int16 (input + offset; taps outside the image are 0, i.e. the zero point). Groups of 4
 * reduction steps hold all four pixels (16 int16 per group, 4 per pixel), each in the order [0, 2, 1, 3]
 * in which SXTB16 of a weight word and of its ROR-8 pair up with the two input words; the K % 4 tail
 * follows, pixel by pixel, or as one zero-padded group (ts_conv_padded_tail). With in_c % 4 != 0 each
 * field is first gathered as int8 into `tmp`. */
static void ts_im2col_block(const ts_conv_params *p, const int8_t *img, int32_t q0, int same, int16_t *block,
                            int8_t *tmp, const ts_conv_plan *plan)
{
    const int32_t c_n = p->in_c, k_all = p->k_h * p->k_w * c_n, k4 = k_all & ~3, tail = k_all - k4;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int8_t zero_point = (int8_t)(-p->input_offset);
    const int padded = ts_conv_padded_tail(k_all);
    int16_t tails[16];
    int32_t pix, i, j, c, k;
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
        p->pad_left == 0 && (c_n & 3) == 0 && p->out_w == p->in_w) {
        /* pointwise: output pixel q reads input pixel q */
        for (pix = 0; pix < 4; ++pix) {
            const int8_t *src = img + (size_t)(q0 + (same ? 0 : pix)) * c_n;
            int16_t *dst = block + 4 * pix;
            for (c = 0; c < c_n; c += 4, dst += 16) {
                ts_expand4(dst, src + c, offset);
            }
        }
        return;
    }
    for (pix = 0; pix < 4; ++pix) {
        const int32_t q = q0 + (same ? 0 : pix), oh = q / p->out_w, ow = q - oh * p->out_w;
        const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
        int16_t *dst = block + 4 * pix;
        if ((c_n & 3) == 0) {
            for (i = 0; i < p->k_h; ++i) {
                const int32_t ih = h0 + i * p->dil_h;
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) {
                        for (c = 0; c < c_n; c += 4, dst += 16) {
                            ts_write32(dst, 0);
                            ts_write32(dst + 2, 0);
                        }
                    } else {
                        const int8_t *src = img + ((size_t)ih * p->in_w + iw) * c_n;
                        for (c = 0; c < c_n; c += 4, dst += 16) {
                            ts_expand4(dst, src + c, offset);
                        }
                    }
                }
            }
            continue;
        }
        if (plan != NULL && h0 >= 0 && h0 + p->k_h <= p->in_h && w0 >= 0 && w0 + p->k_w <= p->in_w) {
            const int8_t *base = img + ((size_t)h0 * p->in_w + w0) * c_n;
            const ts_conv_plan_group *g = plan->g, *const g_end = plan->g + plan->groups;
            for (; g != g_end; ++g, dst += 16) {
                uint32_t v = ts_read32(base + g->off_a);
                if (g->mask != 0xFFFFFFFFu) {
                    v = (v & g->mask) | (ts_read32(base + g->off_b) & ~g->mask);
                }
                ts_write32(dst, ts_sxtab16(offset, v));
                ts_write32(dst + 2, ts_sxtab16_ror8(offset, v));
            }
            if (plan->has_tail) {
                const uint32_t v = ts_read32(base + plan->tail_off) >> plan->tail_shift;
                ts_write32(tails + 4 * pix, ts_sxtab16(offset, v));
                ts_write32(tails + 4 * pix + 2, ts_sxtab16_ror8(offset, v));
            }
            continue;
        }
        /* gather the field as int8, one kernel row at a time (a row's taps are adjacent in NHWC) */
        for (i = 0, k = 0; i < p->k_h; ++i, k += p->k_w * c_n) {
            const int32_t ih = h0 + i * p->dil_h;
            if (ih < 0 || ih >= p->in_h) {
                memset(tmp + k, zero_point, (size_t)(p->k_w * c_n));
            } else if (p->dil_w == 1 && w0 >= 0 && w0 + p->k_w <= p->in_w) {
                const int8_t *src = img + ((size_t)ih * p->in_w + w0) * c_n;
                const int32_t n = p->k_w * c_n;
                for (c = 0; c + 4 <= n; c += 4) {
                    ts_write32(tmp + k + c, ts_read32(src + c));
                }
                for (; c < n; ++c) {
                    tmp[k + c] = src[c];
                }
            } else {
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    const int inside = iw >= 0 && iw < p->in_w;
                    const int8_t *src = img + ((size_t)ih * p->in_w + (inside ? iw : 0)) * c_n;
                    for (c = 0; c < c_n; ++c) {
                        tmp[k + j * c_n + c] = inside ? src[c] : zero_point;
                    }
                }
            }
        }
        for (k = 0; k < k4; k += 4, dst += 16) {
            ts_expand4(dst, tmp + k, offset);
        }
        if (padded) { /* the tail as one more group, zeros for the missing steps, order [0, 2, 1, 3] */
            tails[4 * pix] = (int16_t)(tmp[k4] + p->input_offset);
            tails[4 * pix + 1] = (int16_t)(tail > 2 ? tmp[k4 + 2] + p->input_offset : 0);
            tails[4 * pix + 2] = (int16_t)(tail > 1 ? tmp[k4 + 1] + p->input_offset : 0);
            tails[4 * pix + 3] = 0;
            continue;
        }
        for (k = 0; k < tail; ++k) {
            block[4 * k4 + pix * tail + k] = (int16_t)(tmp[k4 + k] + p->input_offset);
        }
    }
    if (padded) { /* after the last gather: the group overlaps the start of tmp */
        memcpy(block + 4 * k4, tails, sizeof tails);
    }
}

/* One group of 4 reduction steps of the four pixels: 1 weight load, 2 sign extensions, 4 double loads of the
 * block, 8 SMLADs (16 MACs, 15 instructions). */
#define TS_CONV_GROUP()                                                                                            \
    do {                                                                                                           \
        const uint32_t wv = ts_read32(w), w02 = ts_sxtb16(wv), w13 = ts_sxtb16_ror8(wv);                            \
        uint32_t u, v;                                                                                             \
        ts_load2(&x, &u, &v);                                                                                      \
        a0 = ts_smlad(v, w13, ts_smlad(u, w02, a0));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a1 = ts_smlad(v, w13, ts_smlad(u, w02, a1));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a2 = ts_smlad(v, w13, ts_smlad(u, w02, a2));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a3 = ts_smlad(v, w13, ts_smlad(u, w02, a3));                                                               \
        w += 4;                                                                                                    \
    } while (0)

/* The same group with pre-widened weights (ts_conv_s8_w16): one LDRD gives both weight words (13 instructions). */
#define TS_CONV_GROUP_WIDE()                                                                                       \
    do {                                                                                                           \
        uint32_t w02, w13, u, v;                                                                                   \
        ts_load2w(&ww, &w02, &w13);                                                                                \
        ts_load2(&x, &u, &v);                                                                                      \
        a0 = ts_smlad(v, w13, ts_smlad(u, w02, a0));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a1 = ts_smlad(v, w13, ts_smlad(u, w02, a1));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a2 = ts_smlad(v, w13, ts_smlad(u, w02, a2));                                                               \
        ts_load2(&x, &u, &v);                                                                                      \
        a3 = ts_smlad(v, w13, ts_smlad(u, w02, a3));                                                               \
    } while (0)

/* A four-pixel block times every output channel, one channel at a time: the groups of 4 reduction steps two
 * per loop turn (one more when their count is odd), the K % 4 tail, then the channel's requantization
 * constants serve four outputs, stored at y[m + s * y_stride]. The loop state that the inner loop does not
 * use lives in one struct, so that the compiler keeps the accumulators and pointers in registers and spills
 * only that. `mode` is the requantization form (0: portable, 1: full int8 range, 2: clamped), has_tail
 * whether K % 4 may be nonzero (1 in every build: one function per form keeps the code small) and wide the
 * weight storage; always inlined into one function per form and storage below. */
/* The groups two per loop turn (1 instruction in 32 less, ~140 bytes more code) in the full-range form only:
 * the library stays within the code size the flash estimate assumes (hwmodels/runtimes/tinystudio-c.toml). */
#define TS_CONV_UNROLL (mode == 1)

typedef struct {
    const int32_t *bias, *multiplier;
    const int8_t *shift;
    int8_t *y, *y_end;
    int32_t step, y_stride;
} ts_conv_chan;

TS_ALWAYS_INLINE void ts_conv_block(const ts_conv_params *p, const int16_t *block, const void *wv,
                                    const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y,
                                    int32_t y_stride, int mode, int has_tail, int wide)
{
    const int8_t *w = (const int8_t *)wv;
    const uint32_t *ww = (const uint32_t *)wv;
    const int32_t k_all = p->k_h * p->k_w * p->in_c, tail = has_tail ? k_all & 3 : 0;
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max, odd = 2 * off + 1;
    const int16_t *const end2 = block + 32 * (k_all >> 3), *const end = block + 16 * (k_all >> 2);
    const int odd_group = (k_all >> 2) & 1, padded = has_tail && ts_conv_padded_tail(k_all);
    const uint32_t tail_shift = 8u * (uint32_t)(4 - tail);
    ts_conv_chan s;
    int32_t t;
    s.bias = bias;
    s.multiplier = multiplier;
    s.shift = shift;
    s.y = y;
    s.y_end = y + p->out_c;
    s.step = p->per_channel ? 1 : 0;
    s.y_stride = y_stride;
    do {
        const int16_t *x = block;
        int32_t a0 = *s.bias++, a1 = a0, a2 = a0, a3 = a0, ys;
        int8_t *yc;
        while ((mode == 0 || !TS_CONV_UNROLL) && x != end) {
            if (wide) {
                TS_CONV_GROUP_WIDE();
            } else {
                TS_CONV_GROUP();
            }
        }
        while (mode != 0 && TS_CONV_UNROLL && x != end2) {
            if (wide) {
                TS_CONV_GROUP_WIDE();
                TS_CONV_GROUP_WIDE();
            } else {
                TS_CONV_GROUP();
                TS_CONV_GROUP();
            }
        }
        if (mode != 0 && TS_CONV_UNROLL && odd_group) {
            if (wide) {
                TS_CONV_GROUP_WIDE();
            } else {
                TS_CONV_GROUP();
            }
        }
        if (has_tail && padded) { /* the tail group: its weights without reading past the channel's */
            uint32_t w02, w13, u, v;
            if (wide) { /* stored (k0, k1), (k2, 0): make (k0, k2), (k1, 0) */
                const uint32_t lo = ww[0], hi = tail > 2 ? ww[1] : 0;
                w02 = (lo & 0xFFFFu) | (hi << 16);
                w13 = lo >> 16;
            } else { /* the word ending at the tail's last byte, shifted down: bytes k0 .. k(tail-1), zeros */
                const uint32_t wv = ts_read32(w + tail - 4) >> tail_shift;
                w02 = ts_sxtb16(wv);
                w13 = ts_sxtb16_ror8(wv);
            }
            ts_load2(&x, &u, &v);
            a0 = ts_smlad(v, w13, ts_smlad(u, w02, a0));
            ts_load2(&x, &u, &v);
            a1 = ts_smlad(v, w13, ts_smlad(u, w02, a1));
            ts_load2(&x, &u, &v);
            a2 = ts_smlad(v, w13, ts_smlad(u, w02, a2));
            ts_load2(&x, &u, &v);
            a3 = ts_smlad(v, w13, ts_smlad(u, w02, a3));
        }
        for (t = 0; has_tail && !padded && t < tail; ++t) {
            const int32_t wt = wide ? ts_w16_half(ww, t) : w[t];
            a0 += x[t] * wt;
            a1 += x[tail + t] * wt;
            a2 += x[2 * tail + t] * wt;
            a3 += x[3 * tail + t] * wt;
        }
        if (has_tail) {
            if (wide) {
                ww += (tail + 1) >> 1;
            } else {
                w += tail;
            }
        }
        yc = s.y;
        ys = s.y_stride;
        TS_OPAQUE(ys);
        if (mode == 0) {
            const int32_t m = *s.multiplier, e = *s.shift;
            yc[0] = ts_requant(a0, m, e, off, lo, hi);
            yc[ys] = ts_requant(a1, m, e, off, lo, hi);
            yc[2 * ys] = ts_requant(a2, m, e, off, lo, hi);
            yc[3 * ys] = ts_requant(a3, m, e, off, lo, hi);
        } else {
            const ts_rq q = ts_rq_channel(s.multiplier, s.shift, 0, odd);
            a0 = ts_rq_fast(a0, &q);
            a1 = ts_rq_fast(a1, &q);
            a2 = ts_rq_fast(a2, &q);
            a3 = ts_rq_fast(a3, &q);
            if (mode == 1) {
                yc[0] = (int8_t)ts_ssat8(a0);
                yc[ys] = (int8_t)ts_ssat8(a1);
                yc[2 * ys] = (int8_t)ts_ssat8(a2);
                yc[3 * ys] = (int8_t)ts_ssat8(a3);
            } else {
                yc[0] = ts_clamp8(a0, lo, hi);
                yc[ys] = ts_clamp8(a1, lo, hi);
                yc[2 * ys] = ts_clamp8(a2, lo, hi);
                yc[3 * ys] = ts_clamp8(a3, lo, hi);
            }
        }
        s.multiplier += s.step;
        s.shift += s.step;
    } while (++s.y != s.y_end);
}

typedef void (*ts_conv_block_fn)(const ts_conv_params *, const int16_t *, const void *, const int32_t *,
                                 const int32_t *, const int8_t *, int8_t *, int32_t);

static TS_NOINLINE void ts_conv_block_general(const ts_conv_params *p, const int16_t *block, const void *w,
                                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                              int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 0, 1, 0);
}

static TS_NOINLINE void ts_conv_block_full(const ts_conv_params *p, const int16_t *block, const void *w,
                                           const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                           int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 1, 1, 0);
}

static TS_NOINLINE void ts_conv_block_clamp(const ts_conv_params *p, const int16_t *block, const void *w,
                                            const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                            int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 2, 1, 0);
}

static TS_NOINLINE void ts_conv_block_w16_general(const ts_conv_params *p, const int16_t *block, const void *w,
                                                  const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                                  int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 0, 1, 1);
}

static TS_NOINLINE void ts_conv_block_w16_full(const ts_conv_params *p, const int16_t *block, const void *w,
                                               const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                               int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 1, 1, 1);
}

static TS_NOINLINE void ts_conv_block_w16_clamp(const ts_conv_params *p, const int16_t *block, const void *w,
                                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                                int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 2, 1, 1);
}

/* Regular conv: output pixels four at a time are expanded into `scratch`, then multiplied by the block
 * function of the layer's requantization form. A last partial block is moved back to overlap the one before
 * (those pixels are computed twice, same bytes); fewer than 4 pixels in all go one at a time (stride 0).
 * scratch: 4 * k_h * k_w * in_c int16 (word aligned), plus k_h * k_w * in_c bytes when in_c % 4 != 0.
 * wide: the weights are ts_conv_s8_w16's pre-widened words. */
static void ts_conv_any_dsp(const ts_conv_params *p, const int8_t *x, const void *w, const int32_t *bias,
                            const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch,
                            const ts_conv_block_fn *blocks)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const int full = p->act_min == -128 && p->act_max == 127;
    const ts_conv_block_fn block = blocks[p->general_requant ? 0 : (full ? 1 : 2)];
    int8_t *tmp = (int8_t *)(scratch + 4 * k_all);
    ts_conv_plan plan_store;
    const ts_conv_plan *plan = ts_conv_plan_make(p, &plan_store) ? &plan_store : NULL;
    int32_t b, q;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        if (pixels < 4) {
            for (q = 0; q < pixels; ++q) {
                ts_im2col_block(p, img, q, 1, scratch, tmp, plan);
                block(p, scratch, w, bias, multiplier, shift, yb + (size_t)q * n_out, 0);
            }
            continue;
        }
        for (q = 0; q < pixels; q += 4) {
            const int32_t q0 = q + 4 <= pixels ? q : pixels - 4;
            ts_im2col_block(p, img, q0, 0, scratch, tmp, plan);
            block(p, scratch, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
    }
}

void ts_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    /* the block functions by requantization form (general, full, clamp), one table per weight storage, so
     * that a library links only the storage its layers use */
    static const ts_conv_block_fn blocks[3] = {ts_conv_block_general, ts_conv_block_full, ts_conv_block_clamp};
    ts_conv_any_dsp(p, x, w, bias, multiplier, shift, y, scratch, blocks);
}

void ts_conv_s8_w16_dsp(const ts_conv_params *p, const int8_t *x, const int32_t *w, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    static const ts_conv_block_fn blocks[3] = {ts_conv_block_w16_general, ts_conv_block_w16_full,
                                               ts_conv_block_w16_clamp};
    ts_conv_any_dsp(p, x, w, bias, multiplier, shift, y, scratch, blocks);
}

#endif /* TINYSTUDIO_DSP */
