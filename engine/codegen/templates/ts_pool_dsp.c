/* ts_pool_dsp.c - average pooling on the DSP path (Armv7E-M / Armv8-M mainline): 8 (then 4) channels per tap
 * summed in 16-bit lanes by SXTAB16, and the mean without a divide per output: TFLite's rounding division
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

/* TFLite's mean of a window of count > 1 cells: round half away from zero. The counted area holds the image, so
 * count >= the cells summed and the mean lies in the int8 range: only an activation clamp applies (full: none). */
TS_ALWAYS_INLINE int8_t ts_pool_mean(int32_t acc, int32_t half, uint32_t recip, int32_t lo, int32_t hi, int full)
{
    const uint32_t n = (uint32_t)(acc < 0 ? -acc : acc) + (uint32_t)half;
    const int32_t q = (int32_t)(((uint64_t)n * recip) >> 32);
    const int32_t mean = acc < 0 ? -q : q;
    return (int8_t)(full ? mean : ts_clamp(mean, lo, hi));
}

/* The means of 4 channels from their lane sums (s02: channels 0 and 2, s13: 1 and 3). Out of line: one copy
 * serves the 8- and 4-channel passes. */
static void ts_pool_store4(int8_t *y, uint32_t s02, uint32_t s13, int32_t half, uint32_t recip, int32_t lo,
                           int32_t hi)
{
    if (lo == -128 && hi == 127) {
        y[0] = ts_pool_mean((int16_t)(s02 & 0xFFFFu), half, recip, lo, hi, 1);
        y[1] = ts_pool_mean((int16_t)(s13 & 0xFFFFu), half, recip, lo, hi, 1);
        y[2] = ts_pool_mean((int16_t)(s02 >> 16), half, recip, lo, hi, 1);
        y[3] = ts_pool_mean((int16_t)(s13 >> 16), half, recip, lo, hi, 1);
    } else {
        y[0] = ts_pool_mean((int16_t)(s02 & 0xFFFFu), half, recip, lo, hi, 0);
        y[1] = ts_pool_mean((int16_t)(s13 & 0xFFFFu), half, recip, lo, hi, 0);
        y[2] = ts_pool_mean((int16_t)(s02 >> 16), half, recip, lo, hi, 0);
        y[3] = ts_pool_mean((int16_t)(s13 >> 16), half, recip, lo, hi, 0);
    }
}

void ts_avg_pool_s8_dsp(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t c_n = p->channels, lo = p->act_min, hi = p->act_max;
    int32_t b, oh, ow, c, i, last_count = -1;
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
                c = 0;
                /* The lanes and the reciprocal apply (a count of 1 takes the loop below: ts_pool_recip starts at 2). */
                if (win.rows * win.cols <= TS_POOL_LANES_MAX && win.count > 1 && win.count <= TS_POOL_RECIP_MAX) {
                    const int32_t row = win.cols * c_n, half = win.count >> 1;
                    for (; c + 8 <= c_n; c += 8) { /* two words a tap */
                        const int8_t *xp = win.x0 + c;
                        uint32_t s02 = 0, s13 = 0, t02 = 0, t13 = 0;
                        for (i = 0; i < win.rows; ++i, xp += win.row_step) {
                            const int8_t *const end = xp + row;
                            for (; xp != end; xp += c_n) {
                                const uint32_t v = ts_read32(xp), w = ts_read32(xp + 4);
                                s02 = ts_sxtab16(s02, v);
                                s13 = ts_sxtab16_ror8(s13, v);
                                t02 = ts_sxtab16(t02, w);
                                t13 = ts_sxtab16_ror8(t13, w);
                            }
                        }
                        ts_pool_store4(y + c, s02, s13, half, recip, lo, hi);
                        ts_pool_store4(y + c + 4, t02, t13, half, recip, lo, hi);
                    }
                    if (c + 4 <= c_n) { /* 4 channels left */
                        const int8_t *xp = win.x0 + c;
                        uint32_t s02 = 0, s13 = 0;
                        for (i = 0; i < win.rows; ++i, xp += win.row_step) {
                            const int8_t *const end = xp + row;
                            for (; xp != end; xp += c_n) {
                                const uint32_t v = ts_read32(xp);
                                s02 = ts_sxtab16(s02, v);
                                s13 = ts_sxtab16_ror8(s13, v);
                            }
                        }
                        ts_pool_store4(y + c, s02, s13, half, recip, lo, hi);
                        c += 4;
                    }
                }
                for (; c < c_n; ++c) { /* c_n % 4 channels left, or windows too large for the lanes or reciprocal */
                    y[c] = ts_pool_divide(ts_pool_sum(&win, c_n, c), win.count, lo, hi);
                }
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */
