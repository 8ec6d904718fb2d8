/* ts_depthwise_ref.c - depthwise convolution, NHWC, weights (k_h, k_w, out_c) with out_c = in_c * multiplier:
 * the portable loops (the oracle) for int8 and int4 weights, and the entry point ts_depthwise_conv_s8, which
 * runs the DSP version (ts_depthwise_dsp.c) where it is built and applies. */
#include "ts_fixedpoint.h"

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
#endif
#if TINYSTUDIO_MVE
#include "ts_mve.h"
#endif

/* Output channels [c0, c0 + cg) of every output pixel, cg per pixel in y (the whole layer: c0 = 0, cg = out_c;
 * one channel group of the in-place schedule, ts_schedule_ref.c, otherwise). One loop for both weight storages
 * (packed4: int4 weights), always inlined with packed4 and mult1 (channel multiplier 1 known) constants. */
TS_ALWAYS_INLINE void ts_depthwise_loops(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x,
                                         const void *w, int packed4, int mult1, const int32_t *bias,
                                         const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t mult = mult1 ? 1 : p->out_c / p->in_c;
    int32_t b, oh, ow, m, i, j;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                for (m = c0; m < c0 + cg; ++m) {
                    const int8_t *xm = img + m / mult;   /* out of the tap loops: no divide per tap */
                    const int32_t ch = p->per_channel ? m : 0;
                    int32_t acc = bias[m];
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            if (iw < 0 || iw >= p->in_w) {
                                continue;
                            }
                            acc += (xm[((size_t)ih * p->in_w + iw) * p->in_c] + p->input_offset) *
                                   ts_weight(w, ((size_t)i * p->k_w + j) * p->out_c + (size_t)m, packed4);
                        }
                    }
                    *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_depthwise_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_depthwise_loops(p, 0, p->out_c, x, w, 0, 0, bias, multiplier, shift, y);
}

void ts_depthwise_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_depthwise_loops(p, 0, p->out_c, x, w, 1, 0, bias, multiplier, shift, y);
}

void ts_depthwise_channels_s8(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_depthwise_loops(p, c0, cg, x, w, 0, 1, bias, multiplier, shift, y);
}

void ts_depthwise_channels_s4(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const uint8_t *w,
                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_depthwise_loops(p, c0, cg, x, w, 1, 1, bias, multiplier, shift, y);
}

void ts_depthwise_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
#if TINYSTUDIO_MVE
    if (p->out_c == p->in_c && ts_depthwise_conv_s8_mve(p, x, w, bias, multiplier, shift, y)) {
        return;
    }
#endif
#if TINYSTUDIO_DSP && !TINYSTUDIO_MVE /* an MVE build falls back to the portable loop: no DSP kernel linked */
    if (p->out_c == p->in_c) {
        ts_depthwise_conv_s8_dsp(p, x, w, bias, multiplier, shift, y);
        return;
    }
#endif
    ts_depthwise_conv_s8_ref(p, x, w, bias, multiplier, shift, y);
}
