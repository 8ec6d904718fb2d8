/* ts_pool_ref.c - pooling and reductions, NHWC (average and max pooling, MEAN / SUM, ReduceMin / ReduceMax):
 * portable C (the oracle), and the entry point ts_avg_pool_s8, which runs the Helium version (ts_pool_mve.c)
 * or, on DSP builds without Helium, the DSP version (ts_pool_dsp.c); max pooling hands over to ts_pool_mve.c
 * on Helium builds. */
#include "ts_fixedpoint.h"
#include "ts_pool_window.h"

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
#endif
#if TINYSTUDIO_MVE
#include "ts_mve.h"
#endif

void ts_avg_pool_s8_ref(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t b, oh, ow, c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow) {
                ts_pool_win win;
                ts_pool_window(p, img, oh, ow, &win);
                for (c = 0; c < p->channels; ++c) {
                    *y++ = ts_pool_divide(ts_pool_sum(&win, p->channels, c), win.count, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_avg_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
#if TINYSTUDIO_MVE
    if (ts_avg_pool_s8_mve(p, x, y)) {
        return;
    }
#endif
#if TINYSTUDIO_DSP && !TINYSTUDIO_MVE /* an MVE build falls back to the portable loop: no DSP kernel linked */
    ts_avg_pool_s8_dsp(p, x, y);
#else
    ts_avg_pool_s8_ref(p, x, y);
#endif
}

void ts_max_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
#if TINYSTUDIO_MVE
    if (ts_max_pool_s8_mve(p, x, y)) {
        return;
    }
#endif
    int32_t b, oh, ow, c, i, j;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                for (c = 0; c < p->channels; ++c) {
                    int32_t best = -128; /* padding never wins */
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            if (iw >= 0 && iw < p->in_w) {
                                best = ts_max32(best, img[((size_t)ih * p->in_w + iw) * p->channels + c]);
                            }
                        }
                    }
                    *y++ = (int8_t)ts_clamp(best, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_mean_s8(const ts_mean_params *p, const int8_t *x, int8_t *y)
{
    const int32_t bias = p->input_offset * p->reduce;
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *xo = x + (size_t)o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int32_t total = 0;
            for (r = 0; r < p->reduce; ++r) {
                total += xo[(size_t)r * p->inner + i];
            }
            *y++ = ts_requant(ts_wrap_add(total, bias), p->multiplier, p->shift, p->output_offset, -128, 127);
        }
    }
}

void ts_reduce_minmax_s8(const ts_reduce_params *p, const int8_t *x, int8_t *y)
{
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *xo = x + (size_t)o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int8_t best = xo[i];
            for (r = 1; r < p->reduce; ++r) {
                const int8_t v = xo[(size_t)r * p->inner + i];
                best = p->is_min ? (v < best ? v : best) : (v > best ? v : best);
            }
            *y++ = best;
        }
    }
}
