/* ts_elementwise.h - the broadcast iteration of the element-wise binary kernels (internal; defined in
 * ts_elementwise_ref.c, also used by ts_elementwise_dsp.c). */
#ifndef TS_ELEMENTWISE_H
#define TS_ELEMENTWISE_H

#include "ts_fixedpoint.h"

/* Calls row(ctx, a, a_step, b, b_step, y, n) for every innermost row of the broadcast iteration. Each
 * element is read before it is written, so y may be a when a is not broadcast (in-place). */
typedef void (*ts_row_fn)(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                          int32_t n);

void ts_broadcast(const ts_bcast *it, const void *ctx, ts_row_fn row, const int8_t *a, const int8_t *b, int8_t *y);

#endif /* TS_ELEMENTWISE_H */
