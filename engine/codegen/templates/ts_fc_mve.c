/* ts_fc_mve.c - fully connected on Helium (Cortex-M55/M85): four weight rows at a time against one input
 * row by VMLADAVA (16 int8 MACs per instruction), the K % 16 tail under a VCTP predicate, leftover rows one at
 * a time, the four outputs requantized as one vector. Called by ts_fully_connected_s8 (ts_fc_ref.c) for every
 * layer; the same bytes as ts_fully_connected_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* 16 bytes of a weight row, under the K % 16 tail's predicate when `tail` (a constant: zeros past the tail). */
TS_ALWAYS_INLINE int8x16_t ts_mve_fc_ld(const int8_t *p, int tail, mve_pred16_t pt)
{
    return tail ? vldrbq_z_s8(p, pt) : vldrbq_s8(p);
}

/* Four rows' (np 4) or one row's dot products with x over 16 bytes, and with `offset` the sums of their
 * weights (VADDVA on the weight vectors the dot products load). */
TS_ALWAYS_INLINE void ts_mve_fc_step(int8x16_t xv, int8x16_t wv0, const int8_t *w1, const int8_t *w2,
                                     const int8_t *w3, int tail, mve_pred16_t pt, int np, int offset, int32_t *a,
                                     int32_t *s)
{
    a[0] = vmladavaq_s8(a[0], xv, wv0);
    if (offset) {
        s[0] = vaddvaq_s8(s[0], wv0);
    }
    if (np == 4) {
        const int8x16_t wv1 = ts_mve_fc_ld(w1, tail, pt), wv2 = ts_mve_fc_ld(w2, tail, pt);
        const int8x16_t wv3 = ts_mve_fc_ld(w3, tail, pt);
        a[1] = vmladavaq_s8(a[1], xv, wv1);
        a[2] = vmladavaq_s8(a[2], xv, wv2);
        a[3] = vmladavaq_s8(a[3], xv, wv3);
        if (offset) {
            s[1] = vaddvaq_s8(s[1], wv1);
            s[2] = vaddvaq_s8(s[2], wv2);
            s[3] = vaddvaq_s8(s[3], wv3);
        }
    }
}

/* Rows n .. n + np - 1 (np 4 or 1, a constant in each caller) of one input row: the accumulators, bias included;
 * with `offset` (a constant) plus in_off * (the sum of each row's weights: sum (x + off) * w = sum x * w + off *
 * sum w). */
TS_ALWAYS_INLINE int32x4_t ts_mve_fc_rows(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias,
                                          int32_t in_off, int np, int offset)
{
    const int32_t loops = k_n >> 4, tail = k_n & 15;
    const int8_t *w1 = w + k_n, *w2 = w1 + k_n, *w3 = w2 + k_n;
    int32_t a[4] = {0, 0, 0, 0}, s[4] = {0, 0, 0, 0}, k;
    int32x4_t acc;
    a[0] = bias[0];
    if (np == 4) {
        a[1] = bias[1];
        a[2] = bias[2];
        a[3] = bias[3];
    }
    for (k = 0; k < loops; ++k, x += 16, w += 16, w1 += 16, w2 += 16, w3 += 16) {
        ts_mve_fc_step(vldrbq_s8(x), vldrbq_s8(w), w1, w2, w3, 0, 0, np, offset, a, s);
    }
    if (tail) {
        const mve_pred16_t pt = vctp8q((uint32_t)tail);
        ts_mve_fc_step(vldrbq_z_s8(x, pt), vldrbq_z_s8(w, pt), w1, w2, w3, 1, pt, np, offset, a, s);
    }
    acc = ts_mve_vec4(a[0], a[1], a[2], a[3]);
    return offset ? vmlaq_n_s32(acc, ts_mve_vec4(s[0], s[1], s[2], s[3]), in_off) : acc;
}

static TS_NOINLINE int32x4_t ts_mve_fc_rows4(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias)
{
    return ts_mve_fc_rows(x, w, k_n, bias, 0, 4, 0);
}

static TS_NOINLINE int32x4_t ts_mve_fc_row1(const int8_t *x, const int8_t *w, int32_t k_n, const int32_t *bias)
{
    return ts_mve_fc_rows(x, w, k_n, bias, 0, 1, 0);
}

/* The same with an input offset: a conv's leftover pixels (ts_conv_mve.c), or a direct caller's layer. */
static TS_NOINLINE int32x4_t ts_mve_fc_rows4_off(const int8_t *x, const int8_t *w, int32_t k_n,
                                                 const int32_t *bias, int32_t in_off)
{
    return ts_mve_fc_rows(x, w, k_n, bias, in_off, 4, 1);
}

static TS_NOINLINE int32x4_t ts_mve_fc_row1_off(const int8_t *x, const int8_t *w, int32_t k_n,
                                                const int32_t *bias, int32_t in_off)
{
    return ts_mve_fc_rows(x, w, k_n, bias, in_off, 1, 1);
}

/* Every row of every batch; `offset` (a constant in each caller): a layer with an input offset (the generator
 * folds it into a fully connected layer's bias; a conv's leftover pixels and a direct caller do not). */
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
            const int8_t *wn = w + (size_t)n * k_n;
            const int32x4_t acc = offset ? ts_mve_fc_rows4_off(row, wn, k_n, bias + n, in_off)
                                         : ts_mve_fc_rows4(row, wn, k_n, bias + n);
            if (p->per_channel) {
                mult = vldrwq_s32(multiplier + n);
                sh = vldrbq_s32(shift + n);
            }
            vstrbq_s32(y + n, ts_mve_requant(acc, mult, sh, off, lo, hi));
        }
        for (; n < n_out; ++n) {
            const int8_t *wn = w + (size_t)n * k_n;
            const int32_t ch = p->per_channel ? n : 0;
            const int32x4_t acc = offset ? ts_mve_fc_row1_off(row, wn, k_n, bias + n, in_off)
                                         : ts_mve_fc_row1(row, wn, k_n, bias + n);
            y[n] = ts_requant(vgetq_lane_s32(acc, 0), multiplier[ch], shift[ch], off, lo, hi);
        }
        y += n_out;
    }
}

static TS_NOINLINE void ts_mve_fc_with_offset(const ts_fc_params *p, const int8_t *x, const int8_t *w,
        const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_mve_fc(p, x, w, bias, multiplier, shift, y, 1);
}

/* Every fully connected layer (the input offset's form out of line, the generator's inline). */
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
