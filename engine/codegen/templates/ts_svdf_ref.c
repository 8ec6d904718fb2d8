/* ts_svdf_ref.c - SVDF (TFLite's stateful rank-decomposed filter), int8 in and out with an int16 or int8 state,
 * as tflite-micro's EvalIntegerSvdfReference computes it: the state (batch, filters, memory) shifts left by one,
 * the newest column is the requantized feature projection, the output sums the time-filtered state over each
 * unit's `rank` filters, adds the bias and requantizes, clamped to [act_min, act_max] (int8's range for a
 * TFLite file: tflite-micro applies no fused activation in int8).
 * The state lives outside the arena (the model's static state buffer), kept between invocations. Sums that
 * tflite-micro accumulates in int32 wrap here in uint32 (no undefined overflow). */
#include "ts_fixedpoint.h"

static int32_t ts_svdf_get(const void *s, size_t i, int32_t wide)
{
    return wide ? (int32_t)((const int16_t *)s)[i] : (int32_t)((const int8_t *)s)[i];
}

static void ts_svdf_set(void *s, size_t i, int32_t v, int32_t wide)
{
    if (wide) {
        ((int16_t *)s)[i] = (int16_t)v;
    } else {
        ((int8_t *)s)[i] = (int8_t)v;
    }
}

void ts_svdf_s8(const ts_svdf_params *p, const int8_t *x, const int8_t *wf, const void *wt, const int32_t *bias,
                void *state, int8_t *y)
{
    const int32_t wide = p->state_bits == 16;
    const int32_t lo = wide ? -32768 : -128;
    const int32_t hi = wide ? 32767 : 127;
    const size_t per_batch = (size_t)p->filters * (size_t)p->memory;
    const size_t total = (size_t)p->batches * per_batch;
    size_t i;
    int32_t b, f, m, u, r, k;
    /* Shift the whole state left by one value; each filter's last column is written below. */
    for (i = 0; i + 1 < total; ++i) {
        ts_svdf_set(state, i, ts_svdf_get(state, i + 1, wide), wide);
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * (size_t)p->n_input;
        for (f = 0; f < p->filters; ++f) {
            const int8_t *w = wf + (size_t)f * (size_t)p->n_input;
            int32_t acc = 0;
            for (k = 0; k < p->n_input; ++k) {
                acc = ts_wrap_add(acc, (int32_t)w[k] * ((int32_t)row[k] + p->input_offset));
            }
            acc = ts_clamp(ts_mbqm(acc, p->multiplier1, p->shift1), lo, hi);
            ts_svdf_set(state, (size_t)b * per_batch + (size_t)f * (size_t)p->memory + (size_t)(p->memory - 1),
                        acc + p->state_zero_point, wide);
        }
    }
    for (b = 0; b < p->batches; ++b) {
        for (u = 0; u < p->units; ++u) {
            int32_t acc = bias != NULL ? bias[u] : 0;
            for (r = 0; r < p->rank; ++r) {
                const int32_t f2 = u * p->rank + r;
                const size_t base = (size_t)b * per_batch + (size_t)f2 * (size_t)p->memory;
                int32_t dot = 0;
                for (m = 0; m < p->memory; ++m) {
                    const uint32_t t = (uint32_t)ts_svdf_get(wt, (size_t)f2 * (size_t)p->memory + (size_t)m, wide);
                    const uint32_t s = (uint32_t)(ts_svdf_get(state, base + (size_t)m, wide) - p->state_zero_point);
                    dot = ts_wrap_add(dot, (int32_t)(t * s));
                }
                acc = ts_wrap_add(acc, dot);
            }
            *y++ = ts_requant(acc, p->multiplier2, p->shift2, p->output_offset, p->act_min, p->act_max);
        }
    }
}
