/* ts_elementwise_ref.c - element-wise binary ops with broadcasting (ADD/SUB, MUL, MINIMUM/MAXIMUM): the
 * portable rows (the oracle) and the entry points; ts_add_s8 runs the DSP version (ts_elementwise_dsp.c) where
 * it is built and the generator cleared general_requant or proved a linear form. */
#include "ts_elementwise.h"

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
#endif
#if TINYSTUDIO_MVE
#include "ts_mve.h"
#endif

/* An ordinary function: the rows are called through a pointer, one call per innermost row. */
void ts_broadcast(const ts_bcast *it, const void *ctx, ts_row_fn row, const int8_t *a, const int8_t *b, int8_t *y)
{
    int32_t idx[TS_MAX_DIMS] = {0};
    const int32_t last = it->ndim - 1, n = it->shape[last];
    ptrdiff_t ao = 0, bo = 0;
    int32_t d;
    for (;;) {
        row(ctx, a + ao, it->a_stride[last], b + bo, it->b_stride[last], y, n);
        y += n;
        for (d = last - 1; d >= 0; --d) { /* odometer over the outer dims */
            ao += it->a_stride[d];
            bo += it->b_stride[d];
            if (++idx[d] < it->shape[d]) {
                break;
            }
            ao -= (ptrdiff_t)it->a_stride[d] * it->shape[d];
            bo -= (ptrdiff_t)it->b_stride[d] * it->shape[d];
            idx[d] = 0;
        }
        if (d < 0) {
            return;
        }
    }
}

/* ADD/SUB (TFLite): both inputs lifted by 2**left_shift, rescaled to a common scale, summed, rescaled. */
static void ts_add_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                       int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t lift = (int32_t)1 << p->left_shift;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x1 = ts_mbqm((a[i * as] + p->a_offset) * lift, p->a_multiplier, p->a_shift);
        const int32_t x2 = ts_mbqm((b[i * bs] + p->b_offset) * lift, p->b_multiplier, p->b_shift);
        const int32_t raw = p->subtract ? ts_wrap_sub(x1, x2) : ts_wrap_add(x1, x2);
        y[i] = ts_requant(raw, p->out_multiplier, p->out_shift, p->output_offset, p->act_min, p->act_max);
    }
}

static void ts_mul_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                       int32_t n)
{
    const ts_mul_params *p = (const ts_mul_params *)ctx;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t prod = (a[i * as] + p->a_offset) * (b[i * bs] + p->b_offset);
        y[i] = ts_requant(prod, p->multiplier, p->shift, p->output_offset, p->act_min, p->act_max);
    }
}

static void ts_minmax_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                          int32_t n)
{
    const ts_minmax_params *p = (const ts_minmax_params *)ctx;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int8_t u = a[i * as], v = b[i * bs];
        y[i] = p->is_min ? (u < v ? u : v) : (u > v ? u : v);
    }
}

void ts_add_s8(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
#if TINYSTUDIO_MVE
    ts_add_s8_mve(p, a, b, y);
    return;
#endif
#if TINYSTUDIO_DSP
    if (!p->general_requant || p->lin_shift > 0) {
        ts_add_s8_dsp(p, a, b, y);
        return;
    }
#endif
    ts_broadcast(&p->it, p, ts_add_row, a, b, y);
}

void ts_mul_s8(const ts_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_mul_row, a, b, y);
}

void ts_minmax_s8(const ts_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_minmax_row, a, b, y);
}
