/* ts_fc_dsp.c - fully connected on the DSP path (Armv7E-M / Armv8-M mainline): four weight rows at a time
 * against one input row by SMLAD, the last out_features % 4 rows one at a time. Called by
 * ts_fully_connected_s8 (ts_fc_ref.c); the same bytes as ts_fully_connected_s8_ref. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* Four weight rows against one input row. The generator folds the input offset into the bias
 * (-zero_point * sum(w), exact), so the rows run without it (13 values live); with an offset (with_offset,
 * a constant in each caller below) SXTAB16 adds it. */
TS_ALWAYS_INLINE void ts_fc_rows4_any(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset,
                                      int32_t *acc, int with_offset)
{
    const int8_t *end = x + (k_n & ~3), *w1 = w + k_n, *w2 = w1 + k_n, *w3 = w2 + k_n;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    while (x != end) {
        const uint32_t xv = ts_read32(x);
        const uint32_t x02 = with_offset ? ts_sxtab16(offset, xv) : ts_sxtb16(xv);
        const uint32_t x13 = with_offset ? ts_sxtab16_ror8(offset, xv) : ts_sxtb16_ror8(xv);
        uint32_t wv = ts_read32(w);
        a0 = ts_smlad(x02, ts_sxtb16(wv), a0);
        a0 = ts_smlad(x13, ts_sxtb16_ror8(wv), a0);
        wv = ts_read32(w1);
        a1 = ts_smlad(x02, ts_sxtb16(wv), a1);
        a1 = ts_smlad(x13, ts_sxtb16_ror8(wv), a1);
        wv = ts_read32(w2);
        a2 = ts_smlad(x02, ts_sxtb16(wv), a2);
        a2 = ts_smlad(x13, ts_sxtb16_ror8(wv), a2);
        wv = ts_read32(w3);
        a3 = ts_smlad(x02, ts_sxtb16(wv), a3);
        a3 = ts_smlad(x13, ts_sxtb16_ror8(wv), a3);
        x += 4;
        w += 4;
        w1 += 4;
        w2 += 4;
        w3 += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static TS_NOINLINE void ts_fc_rows4(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset, int32_t *acc)
{
    ts_fc_rows4_any(x, w, k_n, offset, acc, 0);
}

static TS_NOINLINE void ts_fc_rows4_offset(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset,
                                           int32_t *acc)
{
    ts_fc_rows4_any(x, w, k_n, offset, acc, 1);
}

/* One weight row against the input row (the last out_features % 4 rows), two SMLADs per 4 steps; the K % 4 tail
 * is left to the caller. */
static TS_NOINLINE int32_t ts_fc_row1(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset, int32_t acc)
{
    const int8_t *end = x + (k_n & ~3);
    while (x != end) {
        const uint32_t xv = ts_read32(x), wv = ts_read32(w);
        acc = ts_smlad(ts_sxtab16(offset, xv), ts_sxtb16(wv), acc);
        acc = ts_smlad(ts_sxtab16_ror8(offset, xv), ts_sxtb16_ror8(wv), acc);
        x += 4;
        w += 4;
    }
    return acc;
}

void ts_fully_connected_s8_dsp(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t k_n = p->in_features, k4 = k_n & ~3;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t b, n, k, t;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * k_n;
        for (n = 0; n < p->out_features; n += 4) {
            const int32_t rows = p->out_features - n < 4 ? p->out_features - n : 4;
            int32_t acc[4] = {0, 0, 0, 0};
            if (rows == 4) {
                (p->input_offset ? ts_fc_rows4_offset : ts_fc_rows4)(row, w + (size_t)n * k_n, k_n, offset, acc);
            } else { /* the last out_features % 4 rows, one at a time */
                for (t = 0; t < rows; ++t) {
                    acc[t] = ts_fc_row1(row, w + (size_t)(n + t) * k_n, k_n, offset, 0);
                }
            }
            for (t = 0; t < rows; ++t) {
                const int8_t *wn = w + (size_t)(n + t) * k_n;
                const int32_t ch = p->per_channel ? n + t : 0;
                acc[t] += bias[n + t];
                for (k = k4; k < k_n; ++k) { /* the k % 4 tail */
                    acc[t] += (row[k] + p->input_offset) * wn[k];
                }
                if (p->general_requant) {
                    y[n + t] = ts_requant(acc[t], multiplier[ch], shift[ch], off, lo, hi);
                } else {
                    const ts_rq q = ts_rq_channel(multiplier, shift, ch, 2 * off + 1);
                    y[n + t] = ts_clamp8(ts_rq_fast(acc[t], &q), lo, hi);
                }
            }
        }
        y += p->out_features;
    }
}

#endif /* TINYSTUDIO_DSP */
