/* ts_schedule_ref.c - kernels of the memory-saving schedules (engine/memory/inplace.py, fused.py): the in-place
 * depthwise convolution, NHWC, batch 1, channel multiplier 1, for int8 and int4 weights. Its arithmetic is the
 * portable depthwise loop's (ts_depthwise_ref.c, the oracle) restricted to one channel group at a time; groups of
 * a multiple of 4 channels with int8 weights run on the DSP path where it is built (ts_schedule_dsp.c). */
#include "ts_fixedpoint.h"

#include <string.h>

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
void ts_depthwise_group4_s8_dsp(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp);
#endif

/* One channel group [c0, c0 + cg) of a depthwise conv: reads channels c0.. of x (in_c interleaved channels),
 * writes the group's whole output to tmp (out_h * out_w * cg, channels interleaved by cg). */
TS_ALWAYS_INLINE void ts_depthwise_group(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x,
                                         const void *w, int packed4, const int32_t *bias,
                                         const int32_t *multiplier, const int8_t *shift, int8_t *tmp)
{
    int32_t oh, ow, k, i, j;
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
            for (k = 0; k < cg; ++k) {
                const int32_t m = c0 + k, ch = p->per_channel ? m : 0;
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
                        acc += (x[((size_t)ih * p->in_w + iw) * p->in_c + m] + p->input_offset) *
                               ts_weight(w, ((size_t)i * p->k_w + j) * p->out_c + (size_t)m, packed4);
                    }
                }
                *tmp++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
            }
        }
    }
}

/* The whole layer in place: per group of `group` channels, its output into tmp, then scattered over xy at
 * (h * out_w + w) * C + c, where only channel c of the (finished) group lived. The output fills the first
 * out_h * out_w * C bytes of xy. */
TS_ALWAYS_INLINE void ts_depthwise_inplace(const ts_conv_params *p, int32_t group, int8_t *xy, const void *w,
                                           int packed4, const int32_t *bias, const int32_t *multiplier,
                                           const int8_t *shift, int8_t *tmp)
{
    const int32_t c_n = p->in_c, pixels = p->out_h * p->out_w;
    int32_t c0, q;
    for (c0 = 0; c0 < c_n; c0 += group) {
        const int32_t cg = c_n - c0 < group ? c_n - c0 : group;
#if TINYSTUDIO_DSP
        if (!packed4 && (cg & 3) == 0) {   /* int8 weights, groups of 4k channels: ts_schedule_dsp.c */
            ts_depthwise_group4_s8_dsp(p, c0, cg, xy, (const int8_t *)w, bias, multiplier, shift, tmp);
        } else {
            ts_depthwise_group(p, c0, cg, xy, w, packed4, bias, multiplier, shift, tmp);
        }
#else
        ts_depthwise_group(p, c0, cg, xy, w, packed4, bias, multiplier, shift, tmp);
#endif
        for (q = 0; q < pixels; ++q) {
            memcpy(xy + (size_t)q * c_n + c0, tmp + (size_t)q * cg, (size_t)cg);
        }
    }
}

void ts_depthwise_inplace_s8(const ts_conv_params *p, int32_t group, int8_t *xy, const int8_t *w,
                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp)
{
    ts_depthwise_inplace(p, group, xy, w, 0, bias, multiplier, shift, tmp);
}

void ts_depthwise_inplace_s4(const ts_conv_params *p, int32_t group, int8_t *xy, const uint8_t *w,
                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp)
{
    ts_depthwise_inplace(p, group, xy, w, 1, bias, multiplier, shift, tmp);
}
