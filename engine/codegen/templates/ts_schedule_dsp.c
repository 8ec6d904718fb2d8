/* ts_schedule_dsp.c - the in-place depthwise convolution's channel groups on the DSP path (Armv7E-M / Armv8-M
 * mainline): 4 channels per pass with SMLABB/SMLATT keeping them apart, as ts_depthwise_dsp.c, each output
 * pixel's taps clipped to the image. Called by ts_depthwise_inplace_s8 (ts_schedule_ref.c) for groups of a
 * multiple of 4 channels; the same bytes as its portable loop. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

void ts_depthwise_group4_s8_dsp(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp);

/* Channels c0 .. c0 + cg - 1 (cg a multiple of 4, multiplier 1) of a depthwise conv into tmp (out_h * out_w
 * pixels of cg channels). */
void ts_depthwise_group4_s8_dsp(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                                const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0, off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    const uint32_t offset = ts_dup16(p->input_offset);
    int32_t c, oh, ow, i, j, t;
    for (c = c0; c < c0 + cg; c += 4) {
        int8_t *yq = tmp + (c - c0);
        ts_rq q[4];
        for (t = 0; t < 4; ++t) {
            q[t] = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * off + 1);
        }
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            int32_t i_lo = 0, i_hi = p->k_h; /* kernel rows inside the image: [i_lo, i_hi) */
            while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {
                ++i_lo;
            }
            while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {
                --i_hi;
            }
            for (ow = 0; ow < p->out_w; ++ow, yq += cg) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                int32_t j_lo = 0, j_hi = p->k_w;
                int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
                while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {
                    ++j_lo;
                }
                while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {
                    --j_hi;
                }
                for (i = i_lo; i < i_hi; ++i) {
                    const int8_t *xr = x + (size_t)(h0 + i * p->dil_h) * p->in_w * c_n + c;
                    const int8_t *wr = w + (size_t)i * p->k_w * c_n + c;
                    for (j = j_lo; j < j_hi; ++j) {
                        const uint32_t xv = ts_read32(xr + (size_t)(w0 + j * p->dil_w) * c_n);
                        const uint32_t wv = ts_read32(wr + (size_t)j * c_n);
                        const uint32_t x02 = ts_sxtab16(offset, xv), x13 = ts_sxtab16_ror8(offset, xv);
                        const uint32_t w02 = ts_sxtb16(wv), w13 = ts_sxtb16_ror8(wv);
                        a0 = ts_smlabb(x02, w02, a0);
                        a1 = ts_smlabb(x13, w13, a1);
                        a2 = ts_smlatt(x02, w02, a2);
                        a3 = ts_smlatt(x13, w13, a3);
                    }
                }
                if (p->general_requant) {
                    yq[0] = ts_requant(a0, multiplier[c * step], shift[c * step], off, lo, hi);
                    yq[1] = ts_requant(a1, multiplier[(c + 1) * step], shift[(c + 1) * step], off, lo, hi);
                    yq[2] = ts_requant(a2, multiplier[(c + 2) * step], shift[(c + 2) * step], off, lo, hi);
                    yq[3] = ts_requant(a3, multiplier[(c + 3) * step], shift[(c + 3) * step], off, lo, hi);
                } else {
                    yq[0] = ts_clamp8(ts_rq_fast(a0, &q[0]), lo, hi);
                    yq[1] = ts_clamp8(ts_rq_fast(a1, &q[1]), lo, hi);
                    yq[2] = ts_clamp8(ts_rq_fast(a2, &q[2]), lo, hi);
                    yq[3] = ts_clamp8(ts_rq_fast(a3, &q[3]), lo, hi);
                }
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */
