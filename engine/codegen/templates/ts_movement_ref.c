/* ts_movement_ref.c - data movement (tables, strided copies, gathers): portable C, the only implementation on
 * every build. */
#include <string.h>

#include "tinystudio_kernels.h"

void ts_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = table[x[i] + 128];
    }
}

void ts_copy_s8(const ts_copy_params *p, const int8_t *x, int8_t *y, const int8_t *table)
{
    int32_t idx[TS_MAX_DIMS] = {0};
    const int32_t last = p->ndim - 1, n = p->shape[last], xs = p->x_stride[last], ys = p->y_stride[last];
    ptrdiff_t xo = 0, yo = 0;
    int32_t d, i;
    for (;;) {
        const int8_t *xr = x + xo;
        int8_t *yr = y + yo;
        if (table) {
            for (i = 0; i < n; ++i) {
                yr[i * ys] = table[xr[i * xs] + 128];
            }
        } else if (xs == 1 && ys == 1) {
            memcpy(yr, xr, (size_t)n);
        } else {
            for (i = 0; i < n; ++i) {
                yr[i * ys] = xr[i * xs];
            }
        }
        for (d = last - 1; d >= 0; --d) {
            xo += p->x_stride[d];
            yo += p->y_stride[d];
            if (++idx[d] < p->shape[d]) {
                break;
            }
            xo -= (ptrdiff_t)p->x_stride[d] * p->shape[d];
            yo -= (ptrdiff_t)p->y_stride[d] * p->shape[d];
            idx[d] = 0;
        }
        if (d < 0) {
            return;
        }
    }
}

void ts_gather_s8(const int8_t *x, const int32_t *index, int32_t n, int32_t fill, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = index[i] < 0 ? (int8_t)fill : x[index[i]];
    }
}
