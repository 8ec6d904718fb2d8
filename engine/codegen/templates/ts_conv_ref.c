/* ts_conv_ref.c - regular and grouped convolution, NHWC: the portable loops (the oracle, and the fallback on any
 * C99 compiler) for int8 and int4 weights, and the entry point ts_conv_s8, which runs the DSP version
 * (ts_conv_dsp.c) where it is built and applies. */
#include "ts_fixedpoint.h"

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
#endif
#if TINYSTUDIO_MVE
#include "ts_mve.h"
#endif

/* Weight k of output channel m in storage `packed4` (0: int8, 1: int4 packed, see ts_weight; 2: int16
 * pre-widened words of ts_conv_s8_w16: per channel, per 4 steps the pairs (k0, k2) and (k1, k3), then the
 * K % 4 tail, two per word, low half first; k_all: K). */
TS_ALWAYS_INLINE int32_t ts_conv_w(const void *w, int32_t m, int32_t k, int32_t k_all, int packed4)
{
    if (packed4 == 2) {
        const int32_t k4 = k_all & ~3, words = k4 / 2 + ((k_all - k4 + 1) >> 1);
        const uint32_t *wm = (const uint32_t *)w + (size_t)m * words;
        const int32_t idx = k < k4 ? (k & ~3) + 2 * (k & 1) + ((k >> 1) & 1) : k;
        const uint32_t v = wm[idx >> 1] >> (16 * (idx & 1));
        return (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu);
    }
    return ts_weight(w, (size_t)m * k_all + (size_t)k, packed4);
}

/* One loop for the weight storages (packed4, see ts_conv_w); always inlined into the kernels below with
 * packed4 a constant. Taps outside the image are skipped (padding with the zero point). */
TS_ALWAYS_INLINE void ts_conv_loops(const ts_conv_params *p, const int8_t *x, const void *w, int packed4,
                                    const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t cg = p->in_c / p->groups, mg = p->out_c / p->groups;
    int32_t b, oh, ow, m, i, j, c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                for (m = 0; m < p->out_c; ++m) {
                    const int32_t ch = p->per_channel ? m : 0;
                    const int32_t k_all = p->k_h * p->k_w * cg;
                    const int32_t c0 = (m / mg) * cg;
                    int32_t acc = bias[m];
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            const int8_t *xp;
                            int32_t wp;
                            if (iw < 0 || iw >= p->in_w) {
                                continue;
                            }
                            xp = img + ((size_t)ih * p->in_w + iw) * p->in_c + c0;
                            wp = (i * p->k_w + j) * cg;
                            for (c = 0; c < cg; ++c) {
                                acc += (xp[c] + p->input_offset) * ts_conv_w(w, m, wp + c, k_all, packed4);
                            }
                        }
                    }
                    *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_conv_loops(p, x, w, 0, bias, multiplier, shift, y);
}

/* int4 weights on every build (the DSP path has no int4 variant): the same bytes as the int8 layer holding the
 * same weight values. */
void ts_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_conv_loops(p, x, w, 1, bias, multiplier, shift, y);
}

/* Weights pre-widened to int16 (two per int32 word, see ts_conv_w): the DSP path reads each weight pair with
 * one load instead of a load and two sign extensions per 4; the portable loop here decodes them. Same bytes. */
void ts_conv_s8_w16(const ts_conv_params *p, const int8_t *x, const int32_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
#if TINYSTUDIO_DSP
    if (p->groups == 1 && scratch != NULL) {
        ts_conv_s8_w16_dsp(p, x, w, bias, multiplier, shift, y, scratch);
        return;
    }
#else
    (void)scratch;
#endif
    ts_conv_loops(p, x, w, 2, bias, multiplier, shift, y);
}

void ts_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
#if TINYSTUDIO_MVE
    if (p->groups == 1 && scratch != NULL) {
        ts_conv_s8_mve(p, x, w, bias, multiplier, shift, y, scratch);
        return;
    }
#endif
#if TINYSTUDIO_DSP
    if (p->groups == 1 && scratch != NULL) {
        ts_conv_s8_dsp(p, x, w, bias, multiplier, shift, y, scratch);
        return;
    }
#else
    (void)scratch;
#endif
    ts_conv_s8_ref(p, x, w, bias, multiplier, shift, y);
}
