/* ts_pool_window.h - the average-pool window arithmetic shared by the portable, DSP and Helium pooling files
 * (ts_pool_ref.c, ts_pool_dsp.c, ts_pool_mve.c; internal): which kernel taps of a window fall inside the image,
 * TFLite's divisor (the cells inside the counted area, which may include padding), and its rounding division.
 * One copy, so that the three ISA levels cannot drift apart in what they average. */
#ifndef TS_POOL_WINDOW_H
#define TS_POOL_WINDOW_H

#include "ts_fixedpoint.h"

/* One axis of a window starting at `start` (k taps, image size `size`): the taps inside the image, [*lo, *hi),
 * and the number of cells the divisor counts, those inside [count_lo, count_hi). */
static inline int32_t ts_pool_span(int32_t start, int32_t k, int32_t size, int32_t count_lo, int32_t count_hi,
                                   int32_t *lo, int32_t *hi)
{
    *lo = ts_max32(0, -start);
    *hi = ts_min32(k, size - start);
    return ts_max32(0, ts_min32(count_hi, start + k) - ts_max32(count_lo, start));
}

/* The part of output pixel (oh, ow)'s window that lies inside the image `img` (one batch): its first tap x0
 * (channel 0), rows x cols taps, row_step bytes from past the end of one of its rows to the start of the next,
 * and TFLite's divisor `count`. */
typedef struct {
    const int8_t *x0;
    int32_t rows, cols, row_step, count;
} ts_pool_win;

static inline void ts_pool_window(const ts_pool_params *p, const int8_t *img, int32_t oh, int32_t ow,
                                  ts_pool_win *win)
{
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    int32_t i_lo, i_hi, j_lo, j_hi;
    const int32_t rows = ts_pool_span(h0, p->k_h, p->in_h, p->count_h_lo, p->count_h_hi, &i_lo, &i_hi);
    win->count = rows * ts_pool_span(w0, p->k_w, p->in_w, p->count_w_lo, p->count_w_hi, &j_lo, &j_hi);
    win->rows = ts_max32(0, i_hi - i_lo);
    win->cols = ts_max32(0, j_hi - j_lo);
    win->row_step = (p->in_w - win->cols) * p->channels;
    win->x0 = img + ((size_t)(h0 + i_lo) * p->in_w + (size_t)(w0 + j_lo)) * p->channels;
}

/* The sum of channel c over the window (c_n channels per pixel). */
static inline int32_t ts_pool_sum(const ts_pool_win *win, int32_t c_n, int32_t c)
{
    const int8_t *xp = win->x0 + c;
    int32_t i, j, acc = 0;
    for (i = 0; i < win->rows; ++i, xp += win->row_step) {
        for (j = 0; j < win->cols; ++j, xp += c_n) {
            acc += *xp;
        }
    }
    return acc;
}

/* ceil(2**32 / count), 0 for count 1: n / count is the high word of n times it for 0 <= n <= 129 count when
 * count <= 5000 (the DSP and Helium means; the host tests check every count up to that bound). */
static inline uint32_t ts_pool_recip(int32_t count)
{
    return count > 1 ? (uint32_t)((0xFFFFFFFFu / (uint32_t)count) + 1u) : 0u;
}

/* TFLite's mean: round half away from zero (the generator checks count > 0), then the activation clamp. */
static inline int8_t ts_pool_divide(int32_t acc, int32_t count, int32_t lo, int32_t hi)
{
    const int32_t mean = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
    return (int8_t)ts_clamp(mean, lo, hi);
}

#endif /* TS_POOL_WINDOW_H */
