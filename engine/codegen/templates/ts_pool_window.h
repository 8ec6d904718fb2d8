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

/* The window of output row `oh`: its rows inside the image and the divisor's row count. */
static inline int32_t ts_pool_rows(const ts_pool_params *p, int32_t oh, int32_t *h0, int32_t *i_lo, int32_t *i_hi)
{
    *h0 = oh * p->stride_h - p->pad_top;
    return ts_pool_span(*h0, p->k_h, p->in_h, p->count_h_lo, p->count_h_hi, i_lo, i_hi);
}

/* The window of output column `ow`: its columns inside the image and the divisor's column count. */
static inline int32_t ts_pool_cols(const ts_pool_params *p, int32_t ow, int32_t *w0, int32_t *j_lo, int32_t *j_hi)
{
    *w0 = ow * p->stride_w - p->pad_left;
    return ts_pool_span(*w0, p->k_w, p->in_w, p->count_w_lo, p->count_w_hi, j_lo, j_hi);
}

/* TFLite's mean: round half away from zero (the generator checks count > 0), then the activation clamp. */
static inline int8_t ts_pool_divide(int32_t acc, int32_t count, int32_t lo, int32_t hi)
{
    const int32_t mean = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
    return (int8_t)ts_clamp(mean, lo, hi);
}

#endif /* TS_POOL_WINDOW_H */
