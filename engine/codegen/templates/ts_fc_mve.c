/* ts_fc_mve.c - fully connected on Helium (Cortex-M55/M85): four weight rows at a time against one input
 * row by VMLADAVA (16 int8 MACs per instruction), the K % 16 tail under a VCTP predicate, leftover rows one at
 * a time, the four outputs requantized as one vector. Called by ts_fully_connected_s8 (ts_fc_ref.c) for every
 * layer; the same bytes as ts_fully_connected_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* Rows n .. n + np - 1 (np 4 or 1, a constant in each caller) of one input row: the accumulators, bias included. */
TS_ALWAYS_INLINE int32x4_t ts_mve_fc_rows(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias,
                                          int np)
{
    const int32_t loops = k_n >> 4, tail = k_n & 15;
    const int8_t *w1 = w + k_n, *w2 = w1 + k_n, *w3 = w2 + k_n;
    int32_t a0 = bias[0], a1 = 0, a2 = 0, a3 = 0, k;
    if (np == 4) {
        a1 = bias[1];
        a2 = bias[2];
        a3 = bias[3];
    }
    for (k = 0; k < loops; ++k) {
        const int8x16_t xv = vldrbq_s8(x);
        x += 16;
        a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w));
        w += 16;
        if (np == 4) {
            a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w1));
            a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w2));
            a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w3));
            w1 += 16;
            w2 += 16;
            w3 += 16;
        }
    }
    if (tail) {
        const mve_pred16_t pt = vctp8q((uint32_t)tail);
        const int8x16_t xv = vldrbq_z_s8(x, pt);
        a0 = vmladavaq_s8(a0, xv, vldrbq_z_s8(w, pt));
        if (np == 4) {
            a1 = vmladavaq_s8(a1, xv, vldrbq_z_s8(w1, pt));
            a2 = vmladavaq_s8(a2, xv, vldrbq_z_s8(w2, pt));
            a3 = vmladavaq_s8(a3, xv, vldrbq_z_s8(w3, pt));
        }
    }
    return ts_mve_vec4(a0, a1, a2, a3);
}

static TS_NOINLINE int32x4_t ts_mve_fc_rows4(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias)
{
    return ts_mve_fc_rows(x, w, k_n, bias, 4);
}

static TS_NOINLINE int32x4_t ts_mve_fc_row1(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias)
{
    return ts_mve_fc_rows(x, w, k_n, bias, 1);
}

/* The sum of one weight row (the input offset's share: sum (x + off) * w = sum x * w + off * sum w). */
static int32_t ts_mve_fc_wsum(const int8_t *w, int32_t k_n)
{
    int32_t s = 0;
    for (; k_n > 0; k_n -= 16, w += 16) {
        s = vaddvaq_s8(s, vldrbq_z_s8(w, vctp8q((uint32_t)k_n)));
    }
    return s;
}

/* Every row of every batch; `offset` (a constant in each caller): a layer with an input offset (the generator
 * folds it into the bias; a direct caller may not) adds offset * (sum of the row's weights) to each sum. */
TS_ALWAYS_INLINE void ts_mve_fc(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                                const int32_t *multiplier, const int8_t *shift, int8_t *y, int offset)
{
    const int32_t k_n = p->in_features, n_out = p->out_features, n4 = n_out & ~3, in_off = p->input_offset;
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32x4_t mult = vdupq_n_s32(multiplier[0]), sh = vdupq_n_s32(shift[0]);
    int32_t b, n;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * k_n;
        for (n = 0; n < n4; n += 4) {
            int32x4_t acc = ts_mve_fc_rows4(row, w + (size_t)n * k_n, k_n, bias + n);
            if (offset) {
                const int8_t *wn = w + (size_t)n * k_n;
                acc = vmlaq_n_s32(acc, ts_mve_vec4(ts_mve_fc_wsum(wn, k_n), ts_mve_fc_wsum(wn + k_n, k_n),
                                                   ts_mve_fc_wsum(wn + 2 * k_n, k_n),
                                                   ts_mve_fc_wsum(wn + 3 * k_n, k_n)), in_off);
            }
            if (p->per_channel) {
                mult = vldrwq_s32(multiplier + n);
                sh = vldrbq_s32(shift + n);
            }
            vstrbq_s32(y + n, ts_mve_requant(acc, mult, sh, off, lo, hi));
        }
        for (; n < n_out; ++n) {
            const int32_t ch = p->per_channel ? n : 0;
            int32_t acc = vgetq_lane_s32(ts_mve_fc_row1(row, w + (size_t)n * k_n, k_n, bias + n), 0);
            if (offset) {
                acc += in_off * ts_mve_fc_wsum(w + (size_t)n * k_n, k_n);
            }
            y[n] = ts_requant(acc, multiplier[ch], shift[ch], off, lo, hi);
        }
        y += n_out;
    }
}

static TS_NOINLINE void ts_mve_fc_with_offset(const ts_fc_params *p, const int8_t *x, const int8_t *w,
        const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_mve_fc(p, x, w, bias, multiplier, shift, y, 1);
}

/* Every fully connected layer (the input offset's rare form out of line, the generator's inline). */
void ts_fully_connected_s8_mve(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    if (p->input_offset != 0) {
        ts_mve_fc_with_offset(p, x, w, bias, multiplier, shift, y);
        return;
    }
    ts_mve_fc(p, x, w, bias, multiplier, shift, y, 0);
}

#endif /* TINYSTUDIO_MVE */
