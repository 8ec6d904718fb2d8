/* ts_conv_rows_dsp.h - the last one or two pixels of a pointwise layer (those no four- or eight-pixel block
 * takes) as one input row against every output channel, four channels at a time in inline assembly; internal to
 * ts_conv_dsp.c, which otherwise runs them through ts_fully_connected_s8_dsp (the same bytes). Kept apart from
 * the blocks so that each file holds one job. */
#ifndef TS_CONV_ROWS_DSP_H
#define TS_CONV_ROWS_DSP_H

#include "ts_conv_asm_dsp.h"

#if TINYSTUDIO_DSP

/* (Optimized target builds with the eight-pixel block, i.e. a pointwise layer in the library: as
 * ts_conv_asm_dsp.h's, 13 free registers.) */
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TINYSTUDIO_EMULATE_DSP) && TINYSTUDIO_CONV_EIGHT
/* Full-range form, per-channel constants, K % 4 == 0, int8 weights. The pixel's K inputs are widened once,
 * offset added, into the scratch as the SMLAD pairs (x0, x2), (x1, x3) of each word; then per group of 4
 * reduction steps one LDRD of those and, per channel, a weight LDR, 2 SXTB16 and 2 SMLADs: 21 instructions for
 * 16 MACs (ts_fc_dsp.c's rows widen the input in the loop too: 23), two groups per loop turn, entered at the
 * second for an odd count. The channel pass's state (the widened row and its end, bias, y, the requantization
 * arrays indexed by y as in ts_conv_asm_dsp.h, the rounding term's odd, the end of the four-channel passes)
 * lives in memory; its requantization is 13 instructions per channel (ts_fc_dsp.c: ~60 with its calls). The
 * last out_c % 4 channels run in C from the same widened row. */
typedef struct {
    uintptr_t x, x_end, bias, y, multiplier, shift, rq_odd, y_end;
} ts_conv_row_state;

/* One group: the widened input pair, then rows 1, 0 (at w) and 3, 2 (at w2), rows 0 and 2 post-incrementing. */
#define TS_CONV_ROW_CH(A, LOAD)                                                                                 \
    LOAD "sxtb16 %[wv], %[t], ror #8\n\t"                                                                      \
         "sxtb16 %[t], %[t]\n\t"                                                                               \
         "smlad %[" A "], %[xv], %[t], %[" A "]\n\t"                                                           \
         "smlad %[" A "], %[x13], %[wv], %[" A "]\n\t"
#define TS_CONV_ROW_GROUP                                                                                       \
    "ldrd %[xv], %[x13], [%[x]], #8\n\t" TS_CONV_ROW_CH("a1", "ldr %[t], [%[w], %[kn]]\n\t")                    \
        TS_CONV_ROW_CH("a0", "ldr %[t], [%[w]], #4\n\t") TS_CONV_ROW_CH("a3", "ldr %[t], [%[w2], %[kn]]\n\t")    \
            TS_CONV_ROW_CH("a2", "ldr %[t], [%[w2]], #4\n\t")

/* ts_rq_fast and SSAT of accumulator A, stored at y (in x) + 0, y post-incremented: the channel's multiplier
 * (xv), right shift (x13) and rounding term (w2) from the state, t and wv scratch. */
#define TS_CONV_ROW_RQ(A)                                                                                       \
    "ldrd %[xv], %[x13], [%[s], #16]\n\t"                                                                      \
    "ldr %[xv], [%[xv], %[x], lsl #2]\n\t"                                                                     \
    "ldrsb %[x13], [%[x13], %[x]]\n\t"                                                                         \
    "ldr %[w2], [%[s], #24]\n\t"                                                                               \
    "mvn %[t], %[x13]\n\t"                                                                                     \
    "lsl %[w2], %[w2], %[t]\n\t"                                                                               \
    "rsb %[x13], %[x13], #0\n\t"                                                                               \
    "lsl %[t], %[" A "], #1\n\t"                                                                               \
    "sub %[wv], %[w2], %[" A "], lsr #31\n\t"                                                                  \
    "smmlar %[" A "], %[t], %[xv], %[wv]\n\t"                                                                  \
    "asr %[" A "], %[" A "], %[x13]\n\t"                                                                       \
    "ssat %[" A "], #8, %[" A "]\n\t"                                                                          \
    "strb %[" A "], [%[x]], #1\n\t"

static TS_NOINLINE void ts_conv_row_asm(const ts_conv_params *p, const int8_t *xrow, const int8_t *w,
                                        const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                        int8_t *y, int16_t *scratch)
{
    const int32_t k_n = p->in_c, n_out = p->out_c, n4 = n_out & ~3;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int32_t odd = 2 * p->output_offset + 1;
    const uintptr_t y0 = (uintptr_t)y;
    ts_conv_row_state st;
    int32_t j, c;
    for (j = 0; j < k_n; j += 4) { /* the row widened: (x0, x2), (x1, x3) per word, offset added */
        const uint32_t v = ts_read32(xrow + j);
        ts_write32(scratch + j, ts_sxtab16(offset, v));
        ts_write32(scratch + j + 2, ts_sxtab16_ror8(offset, v));
    }
    if (n4 != 0) {
        uint32_t a0, a1, a2, a3, xv, x13, t, wv;
        const int16_t *x;
        const int8_t *w2, *wp = w;
        st.x = (uintptr_t)scratch;
        st.x_end = (uintptr_t)(scratch + k_n);
        st.bias = (uintptr_t)bias;
        st.y = y0;
        st.multiplier = (uintptr_t)multiplier - 4u * y0;
        st.shift = (uintptr_t)shift - y0;
        st.rq_odd = (uintptr_t)odd;
        st.y_end = y0 + (uintptr_t)n4;
        __asm__ volatile("1:\n\t"
                         "ldr %[t], [%[s], #8]\n\t"
                         "ldrd %[a0], %[a1], [%[t]]\n\t"
                         "ldrd %[a2], %[a3], [%[t], #8]\n\t"
                         "add %[t], %[t], #16\n\t"
                         "str %[t], [%[s], #8]\n\t"
                         "ldr %[x], [%[s]]\n\t"
                         "add %[w2], %[w], %[kn], lsl #1\n\t"
                         "lsls %[t], %[kn], #30\n\t" /* carry: bit 2 of K, an odd group count */
                         "bcs 3f\n"
                         "2:\n\t" TS_CONV_ROW_GROUP "3:\n\t" TS_CONV_ROW_GROUP
                         "ldr %[t], [%[s], #4]\n\t"
                         "cmp %[x], %[t]\n\t"
                         "bne 2b\n\t"
                         "ldr %[x], [%[s], #12]\n\t" TS_CONV_ROW_RQ("a0") TS_CONV_ROW_RQ("a1") TS_CONV_ROW_RQ("a2")
                             TS_CONV_ROW_RQ("a3") "str %[x], [%[s], #12]\n\t"
                         "add %[w], %[w], %[kn], lsl #1\n\t" /* from row 1 to row 4 */
                         "add %[w], %[w], %[kn]\n\t"
                         "ldr %[t], [%[s], #28]\n\t"
                         "cmp %[x], %[t]\n\t"
                         "bne 1b\n\t"
                         : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "=&r"(x),
                           [xv] "=&r"(xv), [x13] "=&r"(x13), [t] "=&r"(t), [wv] "=&r"(wv), [w2] "=&r"(w2),
                           [w] "+r"(wp)
                         : [kn] "r"(k_n), [s] "r"(&st)
                         : "cc", "memory");
    }
    for (c = n4; c < n_out; ++c) { /* the last out_c % 4 channels */
        const int8_t *wc = w + (size_t)c * k_n;
        const ts_rq q = ts_rq_channel(multiplier, shift, c, odd);
        int32_t acc = bias[c];
        for (j = 0; j < k_n; j += 4) {
            const uint32_t wv = ts_read32(wc + j);
            acc = ts_smlad(ts_read32(scratch + j), ts_sxtb16(wv), acc);
            acc = ts_smlad(ts_read32(scratch + j + 2), ts_sxtb16_ror8(wv), acc);
        }
        y[c] = (int8_t)ts_ssat8(ts_rq_fast(acc, &q));
    }
}

#define TS_CONV_ROW_ASM 1
#else
#define TS_CONV_ROW_ASM 0
#define ts_conv_row_asm(p, xrow, w, bias, multiplier, shift, y, scratch) ((void)0)
#endif

#endif /* TINYSTUDIO_DSP */

#endif /* TS_CONV_ROWS_DSP_H */
