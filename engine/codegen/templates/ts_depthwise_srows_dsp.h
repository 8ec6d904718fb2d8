/* ts_depthwise_srows_dsp.h - the small-image depthwise's per-channel rows (internal to ts_depthwise_dsp.c, via
 * ts_depthwise_small_dsp.h, which fills the planes): a channel's whole image from its int16 plane, the taps
 * that would read the padding left out of the code, in one block of inline assembly per channel on the target
 * (ts_dw_srows6, ts_dw_srows12, ts_dw_srows3 for widths 6, 12 and 3; ts_dw_srows in C otherwise). */
#ifndef TS_DEPTHWISE_SROWS_DSP_H
#define TS_DEPTHWISE_SROWS_DSP_H

#include "ts_depthwise_ring_dsp.h"

#if TINYSTUDIO_DSP

/* One channel: ts_dw_ch without the rotated weight rows (the rows here stay in order), which keeps the group's
 * frame no larger than the ring's: bias, requantization and the int16 weight pairs (w_k0, w_k1), (w_k1, w_k2)
 * of rows k = 0 .. 2, all doubled (ts_dw_out). */
typedef struct {
    int32_t bias, multiplier, qbias, right;
    uint32_t w[6];
} ts_dw_sch;

/* Channel ch's n x w outputs of a band at y (pixels ys bytes apart, rows w ys), pl at the plane row (of w2
 * values) of the band's first output row; with bit 0 of fl the band starts the image (no row above), with bit 1
 * it ends it (no row below). The portable form of the assembly below, for any width. Output o of a row has taps
 * o - 1 .. o + 1: for an odd o the word (o - 1, o) times (w0, w1) and the next word's low half times w2; for an
 * even o the previous word's high half times w0 (none at o = 0) and the word (o, o + 1) times (w1, w2); the
 * missing taps are padding. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_srows(const ts_dw_sch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t n, int32_t w,
                                  int32_t fl)
{
    const int32_t w2 = (w + 1) & ~1;
    int32_t i, o, k;
    for (i = 0; i < n; ++i) {
        for (o = 0; o < w; ++o) {
            int32_t s = ch->bias;
            for (k = 0; k < 3; ++k) {
                const int16_t *r;
                if ((i - 1 + k < 0 && (fl & 1)) || (i - 1 + k >= n && (fl & 2))) {
                    continue;
                }
                r = pl + (i - 1 + k) * w2 + o;
                if (o & 1) {
                    s = ts_smlad(ts_read32(r - 1), ch->w[2 * k], s);
                    s = o + 1 < w2 ? ts_smlabt(ts_read32(r + 1), ch->w[2 * k + 1], s) : s;
                } else {
                    s = o > 0 ? ts_smlatb(ts_read32(r - 2), ch->w[2 * k], s) : s;
                    s = ts_smlad(ts_read32(r), ch->w[2 * k + 1], s);
                }
            }
            y[(i * w + o) * ys] = (int8_t)ts_ssat8(
                ts_smmlar(s, ch->multiplier, ch->qbias - (int32_t)((uint32_t)s >> 31)) >> ch->right); /* ts_dw_out */
        }
    }
}
#else
/* One window row of the 6 outputs s0 .. s5 (accumulating onto A0 .. A5) from the words at L0, L1, L2 (the
 * row's 6 values) with that row's weights in w01, w12. */
#define TS_DW_R6(L0, L1, L2, A0, A1, A2, A3, A4, A5)                                                              \
    "ldr %[d], " L0 "\n\t"                                                                                         \
    "smlad %[s0], %[d], %[w12], %[" A0 "]\n\t"                                                                    \
    "smlad %[s1], %[d], %[w01], %[" A1 "]\n\t"                                                                    \
    "smlatb %[s2], %[d], %[w01], %[" A2 "]\n\t"                                                                   \
    "ldr %[d], " L1 "\n\t"                                                                                         \
    "smlabt %[s1], %[d], %[w12], %[s1]\n\t"                                                                       \
    "smlad %[s2], %[d], %[w12], %[s2]\n\t"                                                                        \
    "smlad %[s3], %[d], %[w01], %[" A3 "]\n\t"                                                                    \
    "smlatb %[s4], %[d], %[w01], %[" A4 "]\n\t"                                                                   \
    "ldr %[d], " L2 "\n\t"                                                                                         \
    "smlabt %[s3], %[d], %[w12], %[s3]\n\t"                                                                       \
    "smlad %[s4], %[d], %[w12], %[s4]\n\t"                                                                        \
    "smlad %[s5], %[d], %[w01], %[" A5 "]\n\t"
/* the first window row of an output row: from the bias (in t) */
#define TS_DW_F6(L0, L1, L2) TS_DW_R6(L0, L1, L2, "t", "t", "t", "t", "t", "t")
#define TS_DW_A6(L0, L1, L2) TS_DW_R6(L0, L1, L2, "s0", "s1", "s2", "s3", "s4", "s5")
/* ts_dw_out of S (mult in d, qbias in w01, right in w12; SMMLAR's added high word taken apart: the same
 * value) stored at [ADDR] */
#define TS_DW_O(S, ADDR)                                                                                           \
    "smmlar %[t], %[" S "], %[d], %[w01]\n\t"                                                                     \
    "sub %[t], %[t], %[" S "], lsr #31\n\t"                                                                       \
    "asr %[t], %[t], %[w12]\n\t"                                                                                   \
    "ssat %[t], #8, %[t]\n\t"                                                                                      \
    "strb %[t], " ADDR "\n\t"
#define TS_DW_O6                                                                                                   \
    "ldrd %[d], %[w01], [%[ch], #4]\n\t"                                                                           \
    "ldr %[w12], [%[ch], #12]\n\t"                                                                                 \
    TS_DW_O("s0", "[%[y]]") TS_DW_O("s1", "[%[y], %[ys]]")                                                        \
    "add %[y], %[y], %[ys], lsl #1\n\t"                                                                            \
    TS_DW_O("s2", "[%[y]]") TS_DW_O("s3", "[%[y], %[ys]]")                                                        \
    "add %[y], %[y], %[ys], lsl #1\n\t"                                                                            \
    TS_DW_O("s4", "[%[y]]") TS_DW_O("s5", "[%[y], %[ys]]")                                                        \
    "add %[y], %[y], %[ys], lsl #1\n\t"
/* The weight rows of ts_dw_sch: row k's (w0, w1), (w1, w2) at byte 16 + 8 k. */
#define TS_DW_W(K) "ldrd %[w01], %[w12], [%[ch], #" K "]\n\t"
/* Width 6, a band of output rows (fl as ts_dw_srows; the rows before the image's last output row end span values
 * after pl): per output row the 3 window rows, the image's first and last output rows 2; r at the input row of
 * the output row's centre (12 bytes a row; the middle rows' last window row moves it on), 14 registers, fl and
 * the end of the middle rows in memory. */
TS_ALWAYS_INLINE void ts_dw_srows6(const ts_dw_sch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t span,
                                   int32_t fl)
{
    const int16_t *r = pl, *last = pl + span;
    int32_t s0, s1, s2, s3, s4, s5;
    uint32_t d, w01, w12, t;
    __asm__ volatile("ldr %[t], %[fl]\n\t"
                     "tst %[t], #1\n\t"
                     "beq 5f\n\t"
                     "ldr %[t], [%[ch]]\n\t" /* output row 0: window rows 1, 2 */
                     TS_DW_W("24") TS_DW_F6("[%[r]]", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_W("32") TS_DW_A6("[%[r], #12]!", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_O6
                     "5:\n\t"
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "bhs 2f\n\t"
                     "1:\n\t"
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F6("[%[r], #-12]", "[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A6("[%[r]]", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_W("32") TS_DW_A6("[%[r], #12]!", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_O6
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "blo 1b\n\t"
                     "2:\n\t"
                     "ldr %[t], %[fl]\n\t"
                     "tst %[t], #2\n\t"
                     "beq 3f\n\t" /* the last output row: window rows 0, 1 */
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F6("[%[r], #-12]", "[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A6("[%[r]]", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_O6
                     "3:\n\t"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [s4] "=&r"(s4), [s5] "=&r"(s5),
                       [d] "=&r"(d), [w01] "=&r"(w01), [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last), [fl] "m"(fl)
                     : "cc", "memory");
}
/* Width 12: each output row as two sextets (outputs 0 .. 5: the words at B .. B + 8 and the low half of
 * B + 12; outputs 6 .. 11: the high half of B + 8 and the words at B + 12 .. B + 20, for a window row's row
 * at byte B of r), A: from the bias (in t) or onto the sextet's sums. */
#define TS_DW_LS(B, A0, A1, A2, A3, A4, A5)                                                                        \
    TS_DW_R6("[%[r], #" B "]", "[%[r], #" B "+4]", "[%[r], #" B "+8]", A0, A1, A2, A3, A4, A5)                   \
    "ldr %[d], [%[r], #" B "+12]\n\t"                                                                              \
    "smlabt %[s5], %[d], %[w12], %[s5]\n\t"
#define TS_DW_RS(B, A0, A1, A2, A3, A4, A5)                                                                        \
    "ldr %[d], [%[r], #" B "+8]\n\t"                                                                               \
    "smlatb %[s0], %[d], %[w01], %[" A0 "]\n\t"                                                                   \
    TS_DW_R6("[%[r], #" B "+12]", "[%[r], #" B "+16]", "[%[r], #" B "+20]", "s0", A1, A2, A3, A4, A5)
#define TS_DW_LSF(B) TS_DW_LS(B, "t", "t", "t", "t", "t", "t")
#define TS_DW_LSA(B) TS_DW_LS(B, "s0", "s1", "s2", "s3", "s4", "s5")
#define TS_DW_RSF(B) TS_DW_RS(B, "t", "t", "t", "t", "t", "t")
#define TS_DW_RSA(B) TS_DW_RS(B, "s0", "s1", "s2", "s3", "s4", "s5")
/* one sextet of an output row from window rows K0, K1 and, with N = TS_DW_ALL3, K2 (weights at byte 16 + 8 K
 * of ch, rows at byte B of r), the first from the bias (F), the others onto the sums (A) */
#define TS_DW_ROW12(K0, B0, K1, B1, K2, B2, F, A, N)                                                               \
    "ldr %[t], [%[ch]]\n\t"                                                                                        \
    TS_DW_W(K0) F(B0) TS_DW_W(K1) A(B1) N(TS_DW_W(K2) A(B2)) TS_DW_O6
#define TS_DW_ALL3(X) X
#define TS_DW_TWO(X)
/* As ts_dw_srows6, r at the output row's centre row (24 bytes a row), moved on once per output row. */
TS_ALWAYS_INLINE void ts_dw_srows12(const ts_dw_sch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t span,
                                   int32_t fl)
{
    const int16_t *r = pl, *last = pl + span;
    int32_t s0, s1, s2, s3, s4, s5;
    uint32_t d, w01, w12, t;
    __asm__ volatile("ldr %[t], %[fl]\n\t"
                     "tst %[t], #1\n\t"
                     "beq 5f\n\t" /* output row 0: window rows 1, 2 */
                     TS_DW_ROW12("24", "0", "32", "24", "0", "0", TS_DW_LSF, TS_DW_LSA, TS_DW_TWO)
                     TS_DW_ROW12("24", "0", "32", "24", "0", "0", TS_DW_RSF, TS_DW_RSA, TS_DW_TWO)
                     "add %[r], %[r], #24\n\t"
                     "5:\n\t"
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "bhs 2f\n\t"
                     "1:\n\t"
                     TS_DW_ROW12("16", "-24", "24", "0", "32", "24", TS_DW_LSF, TS_DW_LSA, TS_DW_ALL3)
                     TS_DW_ROW12("16", "-24", "24", "0", "32", "24", TS_DW_RSF, TS_DW_RSA, TS_DW_ALL3)
                     "add %[r], %[r], #24\n\t"
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "blo 1b\n\t"
                     "2:\n\t"
                     "ldr %[t], %[fl]\n\t"
                     "tst %[t], #2\n\t"
                     "beq 3f\n\t" /* the last output row: window rows 0, 1 */
                     TS_DW_ROW12("16", "-24", "24", "0", "0", "0", TS_DW_LSF, TS_DW_LSA, TS_DW_TWO)
                     TS_DW_ROW12("16", "-24", "24", "0", "0", "0", TS_DW_RSF, TS_DW_RSA, TS_DW_TWO)
                     "3:\n\t"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [s4] "=&r"(s4), [s5] "=&r"(s5),
                       [d] "=&r"(d), [w01] "=&r"(w01), [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last), [fl] "m"(fl)
                     : "cc", "memory");
}
#undef TS_DW_TWO
#undef TS_DW_ALL3
#undef TS_DW_ROW12
#undef TS_DW_RSA
#undef TS_DW_RSF
#undef TS_DW_LSA
#undef TS_DW_LSF
#undef TS_DW_RS
#undef TS_DW_LS
/* one window row of the 3 outputs s0 .. s2 from the words at L0 (x0, x1) and L1 (x2, 0) */
#define TS_DW_R3(L0, L1, A0, A1, A2)                                                                               \
    "ldr %[d], " L0 "\n\t"                                                                                         \
    "smlad %[s0], %[d], %[w12], %[" A0 "]\n\t"                                                                    \
    "smlad %[s1], %[d], %[w01], %[" A1 "]\n\t"                                                                    \
    "smlatb %[s2], %[d], %[w01], %[" A2 "]\n\t"                                                                   \
    "ldr %[d], " L1 "\n\t"                                                                                         \
    "smlabt %[s1], %[d], %[w12], %[s1]\n\t"                                                                       \
    "smlad %[s2], %[d], %[w12], %[s2]\n\t"
#define TS_DW_F3(L0, L1) TS_DW_R3(L0, L1, "t", "t", "t")
#define TS_DW_A3(L0, L1) TS_DW_R3(L0, L1, "s0", "s1", "s2")
#define TS_DW_O3                                                                                                   \
    "ldrd %[d], %[w01], [%[ch], #4]\n\t"                                                                           \
    "ldr %[w12], [%[ch], #12]\n\t"                                                                                 \
    TS_DW_O("s0", "[%[y]]") TS_DW_O("s1", "[%[y], %[ys]]")                                                        \
    "add %[y], %[y], %[ys], lsl #1\n\t"                                                                            \
    TS_DW_O("s2", "[%[y]]")                                                                                        \
    "add %[y], %[y], %[ys]\n\t"
/* Width 3 (rows of 4 values, the last 0): as ts_dw_srows6, 8 bytes a row. */
TS_ALWAYS_INLINE void ts_dw_srows3(const ts_dw_sch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t span,
                                   int32_t fl)
{
    const int16_t *r = pl, *last = pl + span;
    int32_t s0, s1, s2;
    uint32_t d, w01, w12, t;
    __asm__ volatile("ldr %[t], %[fl]\n\t"
                     "tst %[t], #1\n\t"
                     "beq 5f\n\t"
                     "ldr %[t], [%[ch]]\n\t" /* output row 0: window rows 1, 2 */
                     TS_DW_W("24") TS_DW_F3("[%[r]]", "[%[r], #4]")
                     TS_DW_W("32") TS_DW_A3("[%[r], #8]!", "[%[r], #4]")
                     TS_DW_O3
                     "5:\n\t"
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "bhs 2f\n\t"
                     "1:\n\t"
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F3("[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A3("[%[r]]", "[%[r], #4]")
                     TS_DW_W("32") TS_DW_A3("[%[r], #8]!", "[%[r], #4]")
                     TS_DW_O3
                     "ldr %[t], %[last]\n\t"
                     "cmp %[r], %[t]\n\t"
                     "blo 1b\n\t"
                     "2:\n\t"
                     "ldr %[t], %[fl]\n\t"
                     "tst %[t], #2\n\t"
                     "beq 3f\n\t" /* the last output row: window rows 0, 1 */
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F3("[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A3("[%[r]]", "[%[r], #4]")
                     TS_DW_O3
                     "3:\n\t"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [d] "=&r"(d), [w01] "=&r"(w01),
                       [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last), [fl] "m"(fl)
                     : "cc", "memory");
}
#undef TS_DW_O3
#undef TS_DW_A3
#undef TS_DW_F3
#undef TS_DW_R3
#undef TS_DW_O6
#undef TS_DW_A6
#undef TS_DW_F6
#undef TS_DW_R6
#undef TS_DW_W
#undef TS_DW_O
#endif

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_SROWS_DSP_H */
