/* ts_conv_dsp.c - regular convolution on the DSP path (Armv7E-M / Armv8-M mainline): output pixels four at a
 * time are expanded into an int16 im2col block, then multiplied with every output channel by SMLAD. Called by
 * ts_conv_s8 (ts_conv_ref.c) for groups == 1, and by ts_conv_s8_w16 for weights stored pre-widened to int16
 * (a flash-for-speed choice of the generator: no sign extension in the inner loop); the same bytes as
 * ts_conv_s8_ref. */
#include "ts_conv_im2col_dsp.h"
#include "ts_conv_asm_dsp.h"
#include "ts_conv_first_dsp.h"
#include "ts_conv_pwnarrow_dsp.h"
#include "ts_conv_rgb_dsp.h"
#include "ts_conv_rows_dsp.h"

#if TINYSTUDIO_DSP

/* The accumulators of the four pixels of a block. */
typedef struct {
    int32_t a0, a1, a2, a3;
} ts_conv_acc;

/* One group of 4 reduction steps of the four pixels with the weight words (k0, k2), (k1, k3): 4 double loads
 * of the block, 8 SMLADs. */
TS_ALWAYS_INLINE void ts_conv_group4(ts_conv_acc *a, const int16_t **x, uint32_t w02, uint32_t w13)
{
    uint32_t u, v;
    ts_load2(x, &u, &v);
    a->a0 = ts_smlad(v, w13, ts_smlad(u, w02, a->a0));
    ts_load2(x, &u, &v);
    a->a1 = ts_smlad(v, w13, ts_smlad(u, w02, a->a1));
    ts_load2(x, &u, &v);
    a->a2 = ts_smlad(v, w13, ts_smlad(u, w02, a->a2));
    ts_load2(x, &u, &v);
    a->a3 = ts_smlad(v, w13, ts_smlad(u, w02, a->a3));
}

/* The group with int8 weights (1 load, 2 sign extensions: 15 instructions for 16 MACs) or pre-widened ones
 * (ts_conv_s8_w16: one LDRD, 13 instructions). */
TS_ALWAYS_INLINE void ts_conv_group(ts_conv_acc *a, const int16_t **x, const int8_t **w, const uint32_t **ww,
                                    int wide)
{
    if (wide) {
        uint32_t w02, w13;
        ts_load2w(ww, &w02, &w13);
        ts_conv_group4(a, x, w02, w13);
    } else {
        const uint32_t wv = ts_read32(*w);
        *w += 4;
        ts_conv_group4(a, x, ts_sxtb16(wv), ts_sxtb16_ror8(wv));
    }
}

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
    const int odd_group = (k_all >> 2) & 1;
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
        ts_conv_acc a;
        int32_t ys;
        int8_t *yc;
        a.a0 = *s.bias++;
        a.a1 = a.a0;
        a.a2 = a.a0;
        a.a3 = a.a0;
        while ((mode == 0 || !TS_CONV_UNROLL) && x != end) {
            ts_conv_group(&a, &x, &w, &ww, wide);
        }
        while (mode != 0 && TS_CONV_UNROLL && x != end2) {
            ts_conv_group(&a, &x, &w, &ww, wide);
            ts_conv_group(&a, &x, &w, &ww, wide);
        }
        if (mode != 0 && TS_CONV_UNROLL && odd_group) {
            ts_conv_group(&a, &x, &w, &ww, wide);
        }
        for (t = 0; has_tail && t < tail; ++t) {
            const int32_t wt = wide ? ts_w16_half(ww, t) : w[t];
            a.a0 += x[t] * wt;
            a.a1 += x[tail + t] * wt;
            a.a2 += x[2 * tail + t] * wt;
            a.a3 += x[3 * tail + t] * wt;
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
            yc[0] = ts_requant(a.a0, m, e, off, lo, hi);
            yc[ys] = ts_requant(a.a1, m, e, off, lo, hi);
            yc[2 * ys] = ts_requant(a.a2, m, e, off, lo, hi);
            yc[3 * ys] = ts_requant(a.a3, m, e, off, lo, hi);
        } else {
            const ts_rq q = ts_rq_channel(s.multiplier, s.shift, 0, odd);
            a.a0 = ts_rq_fast(a.a0, &q);
            a.a1 = ts_rq_fast(a.a1, &q);
            a.a2 = ts_rq_fast(a.a2, &q);
            a.a3 = ts_rq_fast(a.a3, &q);
            if (mode == 1) {
                yc[0] = (int8_t)ts_ssat8(a.a0);
                yc[ys] = (int8_t)ts_ssat8(a.a1);
                yc[2 * ys] = (int8_t)ts_ssat8(a.a2);
                yc[3 * ys] = (int8_t)ts_ssat8(a.a3);
            } else {
                yc[0] = ts_clamp8(a.a0, lo, hi);
                yc[ys] = ts_clamp8(a.a1, lo, hi);
                yc[2 * ys] = ts_clamp8(a.a2, lo, hi);
                yc[3 * ys] = ts_clamp8(a.a3, lo, hi);
            }
        }
        s.multiplier += s.step;
        s.shift += s.step;
    } while (++s.y != s.y_end);
}

typedef void (*ts_conv_block_fn)(const ts_conv_params *, const int16_t *, const void *, const int32_t *,
                                 const int32_t *, const int8_t *, int8_t *, int32_t);
/* The eight-pixel blocks of one image (ts_conv_asm_dsp.h): the first pixel they leave. */
typedef int32_t (*ts_conv_run8_fn)(const ts_conv_params *, const int8_t *, int16_t *, const void *,
                                   const int32_t *, const int32_t *, const int8_t *, int8_t *);

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

static TS_NOINLINE void ts_conv_block_w16_full(const ts_conv_params *p, const int16_t *block, const void *w,
                                               const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                               int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 1, 1, 1);
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

static TS_NOINLINE void ts_conv_block_w16_clamp(const ts_conv_params *p, const int16_t *block, const void *w,
                                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                                int8_t *y, int32_t y_stride)
{
    ts_conv_block(p, block, w, bias, multiplier, shift, y, y_stride, 2, 1, 1);
}

/* Regular conv: output pixels four at a time are expanded into `scratch`, then multiplied by the block
 * function of the layer's requantization form. A last partial block is moved back to overlap the one before
 * (those pixels are computed twice, same bytes); fewer than 4 pixels in all go one at a time (stride 0, each
 * at the cost of four). Pointwise layers with int8 weights (rows: 1) leave one or two pixels over instead, as
 * rows (the pixel's K inputs against each channel's K weights; the same bytes): in assembly for the full-range
 * form on the target (ts_conv_rows_dsp.h, about 1.4 instructions per MAC), else as fully connected rows
 * (ts_fully_connected_s8_dsp, about 1.7-2), against 4 x 0.97 for the pixel in an overlapping block. Pointwise
 * layers that run8 (the eight-pixel assembly blocks, 0 where there are none) takes go eight pixels at a time.
 * scratch: 4 * k_h * k_w * in_c int16 (word aligned), 8 * in_c for those pointwise layers, plus k_h * k_w *
 * in_c bytes when in_c % 4 != 0. wide: the weights are ts_conv_s8_w16's pre-widened words. */
static void ts_conv_any_dsp(const ts_conv_params *p, const int8_t *x, const void *w, const int32_t *bias,
                            const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch,
                            const ts_conv_block_fn *blocks, ts_conv_run8_fn run8, int rows)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const int full = p->act_min == -128 && p->act_max == 127;
    const ts_conv_block_fn block = blocks[p->general_requant ? 0 : (full ? (TS_CONV_ASM_OK(p, k_all) ? 3 : 1) : 2)];
    int8_t *tmp = (int8_t *)(scratch + 4 * k_all);
    const int direct = ts_conv_direct_ok(p);
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                          p->pad_left == 0 && p->out_w == p->in_w;
    const int eight = run8 && block == blocks[3] && pixels >= 8 && k_all <= 128 && pointwise;
    /* the fewest pixels left that take one more (overlapping) four-pixel block */
    const int32_t min4 = pixels < 4 ? pixels + 1 : (rows && pointwise ? 3 : 1);
    int32_t b, q;
    rows = rows && pointwise;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        q = 0;
        if (eight) {
            /* eight pixels a block; a rest of 6 or 7 as one more block moved back to overlap, of 3 to 5 as a
             * four-pixel block below (cheaper than 8), the 1 or 2 after it as rows */
            q = run8(p, img, scratch, w, bias, multiplier, shift, yb);
        }
        for (; pixels - q >= min4; q += 4) {
            const int32_t q0 = q + 4 <= pixels ? q : pixels - 4;
            ts_conv_im2col_dsp(p, img, q0, 0, scratch, tmp, direct);
            block(p, scratch, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
        for (; q < pixels; ++q) {
            if (rows && TS_CONV_ROW_ASM && block == blocks[3]) {
                ts_conv_row_asm(p, img + (size_t)q * k_all, (const int8_t *)w, bias, multiplier, shift,
                                yb + (size_t)q * n_out, scratch);
            } else if (rows) {
                const ts_fc_params fc = {1, k_all, n_out, p->input_offset, p->output_offset, p->act_min, p->act_max,
                                         p->per_channel, p->general_requant};
                ts_fully_connected_s8_dsp(&fc, img + (size_t)q * k_all, (const int8_t *)w, bias, multiplier, shift,
                                          yb + (size_t)q * n_out);
            } else {
                ts_conv_im2col_dsp(p, img, q, 1, scratch, tmp, direct);
                block(p, scratch, w, bias, multiplier, shift, yb + (size_t)q * n_out, 0);
            }
        }
    }
}

void ts_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    /* the block functions by requantization form (general, full, clamp), one table per weight storage, so
     * that a library links only the storage its layers use */
    static const ts_conv_block_fn blocks[4] = TS_CONV_BLOCKS(ts_conv_block_general, ts_conv_block_full,
                                                               ts_conv_block_clamp, ts_conv_block_full_asm);
#if TINYSTUDIO_CONV_NARROW
    /* pointwise with 8 or 16 input channels: the inputs in registers, the channels from a table
     * (ts_conv_pwnarrow_dsp.h) */
    if (ts_conv_pwnarrow(p, x, w, 0, bias, multiplier, shift, y)) {
        return;
    }
#endif
    /* 3x3 over 3 channels, full range (first layers on RGB images): their own kernel (ts_conv_rgb_dsp.h) */
    if (ts_conv_rgb_ok(p)) {
        ts_conv_rgb_dsp(p, x, w, 0, bias, multiplier, shift, y, scratch);
        return;
    }
#ifdef TS_CONV_FIRST_ASM
    /* K % 4 != 0, K > 4 (first layers), per-channel constants, on the target: the full form in assembly with
     * the tail as one more group (ts_conv_im2col_dsp.h) */
    static const ts_conv_block_fn first[4] = {ts_conv_block_general, ts_conv_block_first_asm, ts_conv_block_clamp,
                                              ts_conv_block_first_asm};
    const int32_t k_all = p->k_h * p->k_w * p->in_c;
    if (TINYSTUDIO_CONV_FIRST && (k_all & 3) != 0 && k_all > 4 && p->per_channel) { /* 0: no such layer */
        ts_conv_any_dsp(p, x, w, bias, multiplier, shift, y, scratch, first, 0, 0);
        return;
    }
#endif
    ts_conv_any_dsp(p, x, w, bias, multiplier, shift, y, scratch, blocks, TS_CONV_BLOCK8(ts_conv_run8_asm), 1);
}

void ts_conv_s8_w16_dsp(const ts_conv_params *p, const int8_t *x, const int32_t *w, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    static const ts_conv_block_fn blocks[4] = TS_CONV_BLOCKS(ts_conv_block_w16_general, ts_conv_block_w16_full,
                                                               ts_conv_block_w16_clamp, ts_conv_block_w16_full_asm);
#if TINYSTUDIO_CONV_NARROW
    if (ts_conv_pwnarrow(p, x, w, 1, bias, multiplier, shift, y)) {
        return;
    }
#endif
    if (ts_conv_rgb_ok(p)) {
        ts_conv_rgb_dsp(p, x, w, 1, bias, multiplier, shift, y, scratch);
        return;
    }
    ts_conv_any_dsp(p, x, w, bias, multiplier, shift, y, scratch, blocks,
                    TS_CONV_BLOCK8(ts_conv_run8_w16_asm), 0);
}

#endif /* TINYSTUDIO_DSP */
