/* ts_schedule_ref.c - kernels of the memory-saving schedules (engine/memory/inplace.py, fused.py): the in-place
 * depthwise convolution, NHWC, batch 1, channel multiplier 1, for int8 and int4 weights. Each channel group runs
 * the portable depthwise loop itself (ts_depthwise_channels_*, ts_depthwise_ref.c, the oracle) on the group's
 * channels; groups of a multiple of 4 channels with int8 weights run on the DSP path where it is built
 * (ts_schedule_dsp.c). */
#include "ts_fixedpoint.h"

#include <string.h>

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
void ts_depthwise_group4_s8_dsp(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp);
#endif

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
        } else
#endif
        if (packed4) {
            ts_depthwise_channels_s4(p, c0, cg, xy, (const uint8_t *)w, bias, multiplier, shift, tmp);
        } else {
            ts_depthwise_channels_s8(p, c0, cg, xy, (const int8_t *)w, bias, multiplier, shift, tmp);
        }
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
