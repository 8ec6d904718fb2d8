/* ts_conv_mve.c - regular convolution on Helium (Cortex-M55/M85): four output pixels at a time, each output
 * channel's weights against the four receptive fields by VMLADAVA (16 int8 MACs per instruction), the K % 16
 * tail under a VCTP predicate, the four results requantized as one vector. The four receptive fields are
 * gathered as int8 into the DSP path's scratch, interleaved by 16 bytes and padded with the input zero point.
 * Called by ts_conv_s8 (ts_conv_ref.c) for groups == 1; the same bytes as ts_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* The interleaved im2col block: for 4 pixels, 16-byte chunk k of pixel s at buf + 64 k + 16 s, so that the
 * dot-product loop reads all four from one pointer (immediate offsets). Bytes past K in the last chunk are
 * left as they are: they meet zeroed weight lanes. */
#define TS_MVE_CHUNKS(k_all) (((k_all) + 15) >> 4)

/* Copies src[0 .. n) (or n bytes of `fill` when src is NULL) to bytes k0 .. k0 + n of the field of pixel s,
 * whose byte k lives at buf + 64 (k / 16) + 16 s + k % 16: one predicated load and store per piece. */
static void ts_mve_put(int8_t *buf, int32_t s, int32_t k0, const int8_t *src, int32_t n, int8_t fill)
{
    const int8x16_t f = vdupq_n_s8(fill);
    while (n > 0) {
        const int32_t in_chunk = k0 & 15, take = 16 - in_chunk < n ? 16 - in_chunk : n;
        int8_t *dst = buf + 64 * (k0 >> 4) + 16 * s + in_chunk;
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
static void ts_mve_field(const ts_conv_params *p, const int8_t *img, int32_t q, int8_t *buf, int32_t s)
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
            ts_mve_put(buf, s, k, NULL, row, zp);
            k += row;
        } else if (cols_inside && (p->dil_w == 1 || p->k_w == 1)) {
            ts_mve_put(buf, s, k, img + ((size_t)ih * p->in_w + w0) * c_n, row, zp);
            k += row;
        } else {
            for (j = 0; j < p->k_w; ++j, k += c_n) {
                const int32_t iw = w0 + j * p->dil_w;
                const int inside = iw >= 0 && iw < p->in_w;
                ts_mve_put(buf, s, k, inside ? img + ((size_t)ih * p->in_w + iw) * c_n : NULL, c_n, zp);
            }
        }
    }
}

/* Every output channel of the four pixels in `buf`, outputs at y[m + s * ys]. Per 16 reduction steps:
 * 1 weight load, 4 field loads, 4 VMLADAVA and one VADDVA (the weights' sum, which carries the input
 * offset: sum (x + off) * w = sum x * w + off * sum w, exact, padding holding the zero point) give 64 MACs;
 * the last K % 16 under a VCTP predicate on the weights. */
static TS_NOINLINE void ts_mve_conv_block(const ts_conv_params *p, const int8_t *buf, int32_t k_all,
                                          const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                          const int8_t *shift, int8_t *y, int32_t ys)
{
    const int32_t loops = k_all >> 4, tail = k_all & 15, off = p->input_offset;
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max, step = p->per_channel ? 1 : 0;
    const mve_pred16_t pt = vctp8q((uint32_t)tail);
    const uint32x4_t yoff = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)ys);
    const int8_t *tail_x = buf + 64 * loops;
    int8_t *const y_end = y + p->out_c;
    for (; y != y_end; ++y, multiplier += step, shift += step) {
        const int8_t *x = buf;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, ws = 0, k;
        for (k = 0; k < loops; ++k) {
            const int8x16_t wv = vldrbq_s8(w);
            w += 16;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(x), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(x + 16), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(x + 32), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(x + 48), wv);
            x += 64;
        }
        if (tail) {
            const int8x16_t wv = vldrbq_z_s8(w, pt);
            w += tail;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(tail_x), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(tail_x + 16), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(tail_x + 32), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(tail_x + 48), wv);
        }
        {
            const int32x4_t acc = vaddq_n_s32(ts_mve_vec4(a0, a1, a2, a3), *bias++ + off * ws);
            const int32x4_t v = ts_mve_requant(acc, vdupq_n_s32(*multiplier), vdupq_n_s32(*shift), out_off, lo, hi);
            vstrbq_scatter_offset_s32(y, yoff, v);
        }
    }
}

/* Bytes of the conv scratch the generator gives (emit_conv.py: four int16 im2col columns, and an int8
 * gather buffer when in_c % 4 != 0); the MVE block needs 64 per 16 reduction steps. */
static int ts_mve_conv_fits(const ts_conv_params *p, int32_t k_all)
{
    const int32_t given = 8 * k_all + ((p->in_c & 3) ? k_all + (k_all & 1) : 0);
    return 64 * TS_MVE_CHUNKS(k_all) <= given;
}

/* Regular conv (groups 1): pixels four at a time; a last partial block moves back to overlap the one before
 * (those pixels are computed twice, same bytes); fewer than 4 pixels in all go one at a time (one field four
 * times, output stride 0: the same bytes written four times). Returns 0, computing nothing, when the
 * scratch is too small for the interleaved block (K < 15 with in_c % 4 != 0): the DSP path runs then. */
int ts_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                   const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    int8_t *buf = (int8_t *)scratch;
    int32_t b, q, s;
    if (!ts_mve_conv_fits(p, k_all)) {
        return 0;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        if (pixels < 4) {
            for (q = 0; q < pixels; ++q) {
                for (s = 0; s < 4; ++s) {
                    ts_mve_field(p, img, q, buf, s);
                }
                ts_mve_conv_block(p, buf, k_all, w, bias, multiplier, shift, yb + (size_t)q * n_out, 0);
            }
            continue;
        }
        for (q = 0; q < pixels; q += 4) {
            const int32_t q0 = q + 4 <= pixels ? q : pixels - 4;
            for (s = 0; s < 4; ++s) {
                ts_mve_field(p, img, q0 + s, buf, s);
            }
            ts_mve_conv_block(p, buf, k_all, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
    }
    return 1;
}

#endif /* TINYSTUDIO_MVE */
