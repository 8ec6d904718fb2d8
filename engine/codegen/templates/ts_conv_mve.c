/* ts_conv_mve.c - regular convolution on Helium (Cortex-M55/M85): output pixels 8 (or 4) at a time, each
 * output channel's weights against their receptive fields by VMLADAVA (16 int8 MACs per instruction), the
 * K % 16 tail under a VCTP predicate, each four results requantized as one vector. The receptive fields are
 * gathered as int8 into the DSP path's scratch, interleaved by 16 bytes and padded with the input zero point.
 * Called by ts_conv_s8 (ts_conv_ref.c) for groups == 1; the same bytes as ts_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* The interleaved im2col block of np pixels (4 or 8): 16-byte chunk k of pixel s at buf + 16 (np k + s), so
 * that the dot-product loop reads every pixel from one pointer with immediate offsets. Bytes past K in the
 * last chunk are left as they are: they meet zeroed weight lanes. */
#define TS_MVE_CHUNKS(k_all) (((k_all) + 15) >> 4)

/* Copies src[0 .. n) (or n bytes of `fill` when src is NULL) to bytes k0 .. k0 + n of the field of pixel s:
 * one predicated load and store per piece that stays inside a chunk. */
static void ts_mve_put(int8_t *buf, int32_t np, int32_t s, int32_t k0, const int8_t *src, int32_t n, int8_t fill)
{
    const int8x16_t f = vdupq_n_s8(fill);
    while (n > 0) {
        const int32_t in_chunk = k0 & 15, take = 16 - in_chunk < n ? 16 - in_chunk : n;
        int8_t *dst = buf + 16 * (np * (k0 >> 4) + s) + in_chunk;
        const mve_pred16_t pr = vctp8q((uint32_t)take);
        if (src != NULL) {
            vstrbq_p_s8(dst, vldrbq_z_s8(src, pr), pr);
            src += take;
        } else {
            vstrbq_p_s8(dst, f, pr);
        }
        k0 += take;
        n -= take;
    }
}

/* The receptive field of output pixel q (k_h * k_w * in_c int8, in the weights' order) into slot s of the
 * interleaved block, taps outside the image holding the input zero point. */
static void ts_mve_field(const ts_conv_params *p, const int8_t *img, int32_t q, int8_t *buf, int32_t np, int32_t s)
{
    const int32_t c_n = p->in_c, oh = q / p->out_w, ow = q - oh * p->out_w;
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t row = p->k_w * c_n;
    const int cols_inside = w0 >= 0 && w0 + (p->k_w - 1) * p->dil_w < p->in_w;
    int32_t i, j, k = 0;
    for (i = 0; i < p->k_h; ++i) {
        const int32_t ih = h0 + i * p->dil_h;
        if (ih < 0 || ih >= p->in_h) {
            ts_mve_put(buf, np, s, k, NULL, row, zp);
            k += row;
        } else if (cols_inside && (p->dil_w == 1 || p->k_w == 1)) {
            ts_mve_put(buf, np, s, k, img + ((size_t)ih * p->in_w + w0) * c_n, row, zp);
            k += row;
        } else {
            for (j = 0; j < p->k_w; ++j, k += c_n) {
                const int32_t iw = w0 + j * p->dil_w;
                const int inside = iw >= 0 && iw < p->in_w;
                ts_mve_put(buf, np, s, k, inside ? img + ((size_t)ih * p->in_w + iw) * c_n : NULL, c_n, zp);
            }
        }
    }
}

/* Four accumulators (plus bias + offset * sum of the weights) requantized and stored at y[s * ys]. */
TS_ALWAYS_INLINE void ts_mve_conv_out(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t start, int32x4_t mult,
                                      int32x4_t left, int32x4_t right, int general, const ts_conv_params *p,
                                      int8_t *y, uint32x4_t yoff)
{
    const int32x4_t acc = vaddq_n_s32(ts_mve_vec4(a0, a1, a2, a3), start);
    vstrbq_scatter_offset_s32(y, yoff, ts_mve_rq(acc, mult, left, right, general, p->output_offset, p->act_min,
                                                 p->act_max));
}

/* The channel's requantization constants. */
TS_ALWAYS_INLINE void ts_mve_conv_rq(int32_t m, int32_t sh, int32x4_t *mult, int32x4_t *left, int32x4_t *right)
{
    *mult = vdupq_n_s32(m);
    *left = vdupq_n_s32(sh > 0 ? sh : 0);
    *right = vdupq_n_s32(sh > 0 ? 0 : sh);
}

/* Every output channel of the np (4 or 8, a constant in each caller) pixels in `buf`, outputs at
 * y[m + s * ys]. Per 16 reduction steps: 1 weight load, np field loads, np VMLADAVA and one VADDVA (the
 * weights' sum, which carries the input offset: sum (x + off) * w = sum x * w + off * sum w, exact, padding
 * holding the zero point) give 16 np MACs; the last K % 16 under a VCTP predicate on the weights.
 * `general`: the requantization form (ts_mve_rq). */
TS_ALWAYS_INLINE void ts_mve_conv_any(const ts_conv_params *p, const int8_t *buf, int32_t k_all, const int8_t *w,
                                      const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                      int8_t *y, int32_t ys, int np, int general)
{
    const int32_t loops = k_all >> 4, tail = k_all & 15, off = p->input_offset, step = p->per_channel ? 1 : 0;
    const mve_pred16_t pt = vctp8q((uint32_t)tail);
    const uint32x4_t yoff = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)ys);
    const int8_t *tail_x = buf + 16 * np * loops;
    int8_t *const y_end = y + p->out_c;
    int32x4_t mult, left, right;
    ts_mve_conv_rq(multiplier[0], shift[0], &mult, &left, &right);
    for (; y != y_end; ++y, multiplier += step, shift += step) {
        const int8_t *x = buf;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, ws = 0, k, start;
        for (k = 0; k < loops; ++k) {
            const int8x16_t wv = vldrbq_s8(w);
            w += 16;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(x), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(x + 16), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(x + 32), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(x + 48), wv);
            if (np == 8) {
                a4 = vmladavaq_s8(a4, vldrbq_s8(x + 64), wv);
                a5 = vmladavaq_s8(a5, vldrbq_s8(x + 80), wv);
                a6 = vmladavaq_s8(a6, vldrbq_s8(x + 96), wv);
                a7 = vmladavaq_s8(a7, vldrbq_s8(x + 112), wv);
            }
            x += 16 * np;
        }
        if (tail) {
            const int8x16_t wv = vldrbq_z_s8(w, pt);
            w += tail;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(tail_x), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(tail_x + 16), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(tail_x + 32), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(tail_x + 48), wv);
            if (np == 8) {
                a4 = vmladavaq_s8(a4, vldrbq_s8(tail_x + 64), wv);
                a5 = vmladavaq_s8(a5, vldrbq_s8(tail_x + 80), wv);
                a6 = vmladavaq_s8(a6, vldrbq_s8(tail_x + 96), wv);
                a7 = vmladavaq_s8(a7, vldrbq_s8(tail_x + 112), wv);
            }
        }
        if (step) {
            ts_mve_conv_rq(*multiplier, *shift, &mult, &left, &right);
        }
        start = *bias++ + off * ws;
        ts_mve_conv_out(a0, a1, a2, a3, start, mult, left, right, general, p, y, yoff);
        if (np == 8) {
            ts_mve_conv_out(a4, a5, a6, a7, start, mult, left, right, general, p, y + 4 * ys, yoff);
        }
    }
}

/* K <= 16: the four fields stay in registers across the channels; per channel one weight load, four
 * VMLADAVA and the weights' sum. */
TS_ALWAYS_INLINE void ts_mve_conv_small_any(const ts_conv_params *p, const int8_t *buf, int32_t k_all,
                                            const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                            const int8_t *shift, int8_t *y, int32_t ys, int general)
{
    const int32_t off = p->input_offset, step = p->per_channel ? 1 : 0;
    const mve_pred16_t pt = vctp8q((uint32_t)k_all);
    const uint32x4_t yoff = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)ys);
    const int8x16_t x0 = vldrbq_s8(buf), x1 = vldrbq_s8(buf + 16), x2 = vldrbq_s8(buf + 32);
    const int8x16_t x3 = vldrbq_s8(buf + 48);
    int8_t *const y_end = y + p->out_c;
    int32x4_t mult, left, right;
    ts_mve_conv_rq(multiplier[0], shift[0], &mult, &left, &right);
    for (; y != y_end; ++y, multiplier += step, shift += step, w += k_all) {
        const int8x16_t wv = vldrbq_z_s8(w, pt);
        if (step) {
            ts_mve_conv_rq(*multiplier, *shift, &mult, &left, &right);
        }
        ts_mve_conv_out(vmladavq_s8(x0, wv), vmladavq_s8(x1, wv), vmladavq_s8(x2, wv), vmladavq_s8(x3, wv),
                        *bias++ + off * vaddvq_s8(wv), mult, left, right, general, p, y, yoff);
    }
}

typedef void (*ts_mve_conv_fn)(const ts_conv_params *, const int8_t *, int32_t, const int8_t *, const int32_t *,
                               const int32_t *, const int8_t *, int8_t *, int32_t);

#define TS_MVE_CONV_FN(name, call)                                                                               \
    static TS_NOINLINE void name(const ts_conv_params *p, const int8_t *buf, int32_t k_all, const int8_t *w,     \
                                 const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y, \
                                 int32_t ys)                                                                     \
    {                                                                                                            \
        call;                                                                                                    \
    }
TS_MVE_CONV_FN(ts_mve_conv4_short, ts_mve_conv_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 4, 0))
TS_MVE_CONV_FN(ts_mve_conv4_general, ts_mve_conv_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 4, 1))
TS_MVE_CONV_FN(ts_mve_conv8_short, ts_mve_conv_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 8, 0))
TS_MVE_CONV_FN(ts_mve_conv8_general, ts_mve_conv_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 8, 1))
TS_MVE_CONV_FN(ts_mve_conv_small_short, ts_mve_conv_small_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 0))
TS_MVE_CONV_FN(ts_mve_conv_small_general, ts_mve_conv_small_any(p, buf, k_all, w, bias, multiplier, shift, y, ys, 1))

/* Regular conv (groups 1): pixels np at a time (8 when the scratch holds their block, else 4); a last
 * partial block moves back to overlap the one before (those pixels are computed twice, same bytes); fewer
 * pixels than that in all go one at a time (one field np times, output stride 0: the same bytes written np
 * times). The scratch is the DSP path's (emit_conv.py: 8 K bytes, plus K + K % 2 when in_c % 4 != 0).
 * Returns 0, computing nothing, when it cannot hold a 4-pixel block (K < 15 with in_c % 4 != 0): the DSP
 * path runs then. */
int ts_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                   const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const int32_t given = 8 * k_all + ((p->in_c & 3) ? k_all + (k_all & 1) : 0);
    const int32_t np = 128 * TS_MVE_CHUNKS(k_all) <= given && k_all > 16 ? 8 : 4;
    const int g = p->general_requant != 0;
    ts_mve_conv_fn block;
    int8_t *buf = (int8_t *)scratch;
    int32_t b, q, s;
    if (64 * TS_MVE_CHUNKS(k_all) > given) {
        return 0;
    }
    if (k_all <= 16) {
        block = g ? ts_mve_conv_small_general : ts_mve_conv_small_short;
    } else if (np == 8) {
        block = g ? ts_mve_conv8_general : ts_mve_conv8_short;
    } else {
        block = g ? ts_mve_conv4_general : ts_mve_conv4_short;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        if (pixels < np) {
            for (q = 0; q < pixels; ++q) {
                for (s = 0; s < np; ++s) {
                    ts_mve_field(p, img, q, buf, np, s);
                }
                block(p, buf, k_all, w, bias, multiplier, shift, yb + (size_t)q * n_out, 0);
            }
            continue;
        }
        for (q = 0; q < pixels; q += np) {
            const int32_t q0 = q + np <= pixels ? q : pixels - np;
            for (s = 0; s < np; ++s) {
                ts_mve_field(p, img, q0 + s, buf, np, s);
            }
            block(p, buf, k_all, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
    }
    return 1;
}

#endif /* TINYSTUDIO_MVE */
