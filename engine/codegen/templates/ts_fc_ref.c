/* ts_fc_ref.c - fully connected, y[b, n] = sum_k (x[b, k] + input_offset) * w[n, k] + bias[n]: the portable
 * loops (the oracle) for int8 and int4 weights, and the entry point ts_fully_connected_s8, which runs the DSP
 * version (ts_fc_dsp.c) where it is built. */
#include "ts_fixedpoint.h"

#if TINYSTUDIO_DSP
#include "ts_dsp.h"
#endif
#if TINYSTUDIO_MVE
#include "ts_mve.h"
#endif

/* One loop for both weight storages (packed4: int4 weights), always inlined with packed4 a constant. */
TS_ALWAYS_INLINE void ts_fc_loops(const ts_fc_params *p, const int8_t *x, const void *w, int packed4,
                                  const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    int32_t b, n, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * p->in_features;
        for (n = 0; n < p->out_features; ++n) {
            const int32_t ch = p->per_channel ? n : 0;
            const size_t wn = (size_t)n * p->in_features;
            int32_t acc = bias[n];
            for (k = 0; k < p->in_features; ++k) {
                acc += (row[k] + p->input_offset) * ts_weight(w, wn + (size_t)k, packed4);
            }
            *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
        }
    }
}

void ts_fully_connected_s8_ref(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_fc_loops(p, x, w, 0, bias, multiplier, shift, y);
}

void ts_fully_connected_s4(const ts_fc_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_fc_loops(p, x, w, 1, bias, multiplier, shift, y);
}

void ts_fully_connected_s8(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
#if TINYSTUDIO_MVE /* every case: neither the DSP nor the portable loop is linked */
    ts_fully_connected_s8_mve(p, x, w, bias, multiplier, shift, y);
#elif TINYSTUDIO_DSP
    ts_fully_connected_s8_dsp(p, x, w, bias, multiplier, shift, y);
#else
    ts_fully_connected_s8_ref(p, x, w, bias, multiplier, shift, y);
#endif
}
