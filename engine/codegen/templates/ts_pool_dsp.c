/* ts_pool_dsp.c - average pooling on the DSP path (Armv7E-M / Armv8-M mainline): 4 channels per word summed
 * in 16-bit lanes by SXTAB16, and the mean without a divide per output: TFLite's rounding division
 * (|sum| + count / 2) / count, sign restored, is one UMULL by a reciprocal of the window's count, exact for
 * the sums a window of up to TS_POOL_RECIP_MAX pixels gives (see ts_pool_recip). Called by ts_avg_pool_s8
 * (ts_pool_ref.c); the same bytes as ts_avg_pool_s8_ref. */
#include "ts_dsp.h"
#include "ts_pool_window.h"

#if TINYSTUDIO_DSP

/* 16-bit lanes hold the sum of up to 255 int8 values (|sum| <= 32640). */
#define TS_POOL_LANES_MAX 255

/* The reciprocal ts_pool_recip (ts_pool_window.h) is exact up to this count. */
#define TS_POOL_RECIP_MAX 5000

/* TFLite's mean of a window: round half away from zero, then the activation clamp. */
TS_ALWAYS_INLINE int8_t ts_pool_mean(int32_t acc, int32_t count, uint32_t recip, int32_t lo, int32_t hi)
{
    const uint32_t n = (uint32_t)(acc < 0 ? -acc : acc) + (uint32_t)(count >> 1);
    const int32_t q = count > 1 ? (int32_t)(((uint64_t)n * recip) >> 32) : (int32_t)n;
    int32_t mean = acc < 0 ? -q : q;
    mean = mean < lo ? lo : mean;
    return (int8_t)(mean > hi ? hi : mean);
}

void ts_avg_pool_s8_dsp(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t c_n = p->channels, c4 = c_n & ~3, lo = p->act_min, hi = p->act_max;
    int32_t b, oh, ow, c, i, j, last_count = -1;
    uint32_t recip = 0;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += c_n) {
                ts_pool_win win;
                ts_pool_window(p, img, oh, ow, &win);
                if (win.count != last_count) { /* one divide per change of the window's count (border pixels) */
                    recip = ts_pool_recip(win.count);
                    last_count = win.count;
                }
                for (c = 0; c < c_n; c += 4) {
                    if (c < c4 && win.rows * win.cols <= TS_POOL_LANES_MAX && win.count <= TS_POOL_RECIP_MAX) {
                        const int8_t *xp = win.x0 + c;
                        uint32_t s02 = 0, s13 = 0;
                        for (i = 0; i < win.rows; ++i, xp += win.row_step) {
                            for (j = 0; j < win.cols; ++j, xp += c_n) {
                                const uint32_t v = ts_read32(xp);
                                s02 = ts_sxtab16(s02, v);
                                s13 = ts_sxtab16_ror8(s13, v);
                            }
                        }
                        y[c] = ts_pool_mean((int16_t)(s02 & 0xFFFFu), win.count, recip, lo, hi);
                        y[c + 1] = ts_pool_mean((int16_t)(s13 & 0xFFFFu), win.count, recip, lo, hi);
                        y[c + 2] = ts_pool_mean((int16_t)(s02 >> 16), win.count, recip, lo, hi);
                        y[c + 3] = ts_pool_mean((int16_t)(s13 >> 16), win.count, recip, lo, hi);
                    } else { /* the last c_n % 4 channels, or windows too large for the lanes or reciprocal */
                        int32_t t;
                        for (t = c; t < c + 4 && t < c_n; ++t) {
                            y[t] = ts_pool_divide(ts_pool_sum(&win, c_n, t), win.count, lo, hi);
                        }
                    }
                }
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */
