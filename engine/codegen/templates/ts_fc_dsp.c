/* ts_fc_dsp.c - fully connected on the DSP path (Armv7E-M / Armv8-M mainline): four weight rows at a time
 * against one input row by SMLAD, the last out_features % 4 rows one at a time. Called by
 * ts_fully_connected_s8 (ts_fc_ref.c); the same bytes as ts_fully_connected_s8_ref. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* Four weight rows against one input row, 4 steps: x02/x13 the input word's sign-extended halves (plus the
 * input offset in ts_fc_step4_offset), rows 0 and 2 at w and w2, rows 1 and 3 one row (k_n bytes) further on. On
 * the target one block of inline assembly (per row LDR, 2 SXTB16, 2 SMLAD, the row 0 and 2 loads
 * post-incrementing: 23 instructions for 16 MACs, 12 registers, 13 with the offset): in C, GCC hoisted the four
 * weight loads ahead of the multiplies and spilled accumulators and pointers. (Optimized builds only: at -O0,
 * with r7 the frame pointer, the 13 registers are not there.) */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__) || !defined(__OPTIMIZE__)
TS_ALWAYS_INLINE void ts_fc_step4_offset(int32_t *a, const int8_t **x, const int8_t **w, const int8_t **w2,
                                         int32_t k_n, uint32_t offset)
{
    const uint32_t xv = ts_read32(*x), x02 = ts_sxtab16(offset, xv), x13 = ts_sxtab16_ror8(offset, xv);
    const uint32_t r0 = ts_read32(*w), r1 = ts_read32(*w + k_n), r2 = ts_read32(*w2), r3 = ts_read32(*w2 + k_n);
    a[0] = ts_smlad(x13, ts_sxtb16_ror8(r0), ts_smlad(x02, ts_sxtb16(r0), a[0]));
    a[1] = ts_smlad(x13, ts_sxtb16_ror8(r1), ts_smlad(x02, ts_sxtb16(r1), a[1]));
    a[2] = ts_smlad(x13, ts_sxtb16_ror8(r2), ts_smlad(x02, ts_sxtb16(r2), a[2]));
    a[3] = ts_smlad(x13, ts_sxtb16_ror8(r3), ts_smlad(x02, ts_sxtb16(r3), a[3]));
    *x += 4;
    *w += 4;
    *w2 += 4;
}
TS_ALWAYS_INLINE void ts_fc_step4(int32_t *a, const int8_t **x, const int8_t **w, const int8_t **w2, int32_t k_n)
{
    ts_fc_step4_offset(a, x, w, w2, k_n, 0);
}
#else
/* The four rows' weight words against the input pair (xv, x13) already extended, shared by both steps. */
#define TS_FC_ROWS4                                                                                                 \
    "sxtb16 %[wv], %[t], ror #8\n\t"                                                                                \
    "sxtb16 %[t], %[t]\n\t"                                                                                         \
    "smlad %[a1], %[xv], %[t], %[a1]\n\t"                                                                           \
    "smlad %[a1], %[x13], %[wv], %[a1]\n\t"                                                                         \
    "ldr %[t], [%[w]], #4\n\t"                                                                                      \
    "sxtb16 %[wv], %[t], ror #8\n\t"                                                                                \
    "sxtb16 %[t], %[t]\n\t"                                                                                         \
    "smlad %[a0], %[xv], %[t], %[a0]\n\t"                                                                           \
    "smlad %[a0], %[x13], %[wv], %[a0]\n\t"                                                                         \
    "ldr %[t], [%[w2], %[kn]]\n\t"                                                                                  \
    "sxtb16 %[wv], %[t], ror #8\n\t"                                                                                \
    "sxtb16 %[t], %[t]\n\t"                                                                                         \
    "smlad %[a3], %[xv], %[t], %[a3]\n\t"                                                                           \
    "smlad %[a3], %[x13], %[wv], %[a3]\n\t"                                                                         \
    "ldr %[t], [%[w2]], #4\n\t"                                                                                     \
    "sxtb16 %[wv], %[t], ror #8\n\t"                                                                                \
    "sxtb16 %[t], %[t]\n\t"                                                                                         \
    "smlad %[a2], %[xv], %[t], %[a2]\n\t"                                                                           \
    "smlad %[a2], %[x13], %[wv], %[a2]\n\t"

TS_ALWAYS_INLINE void ts_fc_step4(int32_t *a, const int8_t **x, const int8_t **w, const int8_t **w2, int32_t k_n)
{
    uint32_t xv, x13, wv, t;
    __asm__("ldr %[xv], [%[x]], #4\n\t"
            "ldr %[t], [%[w], %[kn]]\n\t"
            "sxtb16 %[x13], %[xv], ror #8\n\t"
            "sxtb16 %[xv], %[xv]\n\t"
            TS_FC_ROWS4
            : [a0] "+r"(a[0]), [a1] "+r"(a[1]), [a2] "+r"(a[2]), [a3] "+r"(a[3]), [x] "+r"(*x), [w] "+r"(*w),
              [w2] "+r"(*w2), [xv] "=&r"(xv), [x13] "=&r"(x13), [wv] "=&r"(wv), [t] "=&r"(t)
            : [kn] "r"(k_n), "m"(**x), "m"(**w), "m"(**w2));
}
TS_ALWAYS_INLINE void ts_fc_step4_offset(int32_t *a, const int8_t **x, const int8_t **w, const int8_t **w2,
                                         int32_t k_n, uint32_t offset)
{
    uint32_t xv, x13, wv, t;
    __asm__("ldr %[xv], [%[x]], #4\n\t"
            "ldr %[t], [%[w], %[kn]]\n\t"
            "sxtab16 %[x13], %[off], %[xv], ror #8\n\t"
            "sxtab16 %[xv], %[off], %[xv]\n\t"
            TS_FC_ROWS4
            : [a0] "+r"(a[0]), [a1] "+r"(a[1]), [a2] "+r"(a[2]), [a3] "+r"(a[3]), [x] "+r"(*x), [w] "+r"(*w),
              [w2] "+r"(*w2), [xv] "=&r"(xv), [x13] "=&r"(x13), [wv] "=&r"(wv), [t] "=&r"(t)
            : [kn] "r"(k_n), [off] "r"(offset), "m"(**x), "m"(**w), "m"(**w2));
}
#endif

/* Four weight rows against one input row. The generator folds the input offset into the bias
 * (-zero_point * sum(w), exact), so the rows run without it (ts_fc_step4); with an offset (with_offset, a
 * constant in each caller below; pointwise convolutions' last pixels, ts_conv_dsp.c) SXTAB16 adds it in the
 * same step (ts_fc_step4_offset: one more register). */
TS_ALWAYS_INLINE void ts_fc_rows4_any(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset,
                                      int32_t *acc, int with_offset)
{
    const int8_t *end = x + (k_n & ~3), *w2 = w + 2 * k_n;
    int32_t a[4];
    a[0] = acc[0];
    a[1] = acc[1];
    a[2] = acc[2];
    a[3] = acc[3];
    while (!with_offset && x != end) {
        ts_fc_step4(a, &x, &w, &w2, k_n);
    }
    while (with_offset && x != end) {
        ts_fc_step4_offset(a, &x, &w, &w2, k_n, offset);
    }
    acc[0] = a[0];
    acc[1] = a[1];
    acc[2] = a[2];
    acc[3] = a[3];
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
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max, in_off = p->input_offset;
    /* read once: the int8 stores to y may alias *p as far as the compiler knows */
    const int per_channel = p->per_channel, general = p->general_requant;
    int32_t b, n, k, t;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * k_n;
        for (n = 0; n < p->out_features; n += 4) {
            const int32_t rows = p->out_features - n < 4 ? p->out_features - n : 4;
            int32_t acc[4] = {0, 0, 0, 0};
            if (rows == 4) {
                (in_off ? ts_fc_rows4_offset : ts_fc_rows4)(row, w + (size_t)n * k_n, k_n, offset, acc);
            } else { /* the last out_features % 4 rows, one at a time */
                for (t = 0; t < rows; ++t) {
                    acc[t] = ts_fc_row1(row, w + (size_t)(n + t) * k_n, k_n, offset, 0);
                }
            }
            for (t = 0; t < rows; ++t) {
                const int8_t *wn = w + (size_t)(n + t) * k_n;
                const int32_t ch = per_channel ? n + t : 0;
                acc[t] += bias[n + t];
                for (k = k4; k < k_n; ++k) { /* the k % 4 tail */
                    acc[t] += (row[k] + in_off) * wn[k];
                }
                if (general) {
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
