/* ts_depthwise_small_dsp.h - the DSP depthwise's small-image path (internal to ts_depthwise_dsp.c): a 3x3,
 * stride-1 layer with padding 1 on every side (SAME) in the full-range form whose whole image fits in 4 int16
 * planes of TS_DW_SMALL values. Most outputs of a 6 x 6 image touch the padding, so the padding is not stored
 * at all: a plane holds the image's rows back to back (an odd width gets one zero column so that rows stay
 * word aligned), and the taps that would read the padding are left out of the code instead (first and last
 * output columns one multiply fewer, first and last output rows one window row fewer). A plane is widened once
 * per group of 4 channels (no ring, no strips), then each channel's whole image is one block of inline
 * assembly on the target (ts_dw_srows6 for width 6, ts_dw_srows3 for width 3). Same bytes as the ring path:
 * ts_dw_ch's doubled weights and ts_dw_out's requantization. */
#ifndef TS_DEPTHWISE_SMALL_DSP_H
#define TS_DEPTHWISE_SMALL_DSP_H

#include "ts_depthwise_ring_dsp.h"

#if TINYSTUDIO_DSP

/* Values per channel plane (4 planes: 1,152 bytes of stack): up to 12 rows of 12, 24 of 6, 36 of 3. */
#define TS_DW_SMALL 144
#define TS_DW_SMALL_BYTES (2 * TS_DW_SMALL)
#define TS_DW_SMALL2_BYTES (4 * TS_DW_SMALL)
#define TS_DW_SMALL3_BYTES (6 * TS_DW_SMALL)

/* Whether the small-image path takes the layer (mode: ts_depthwise_conv_s8_dsp's requantization form). */
TS_ALWAYS_INLINE int ts_dw_small_fits(const ts_conv_params *p, int mode)
{
    return mode == 1 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && p->pad_top == 1 && p->pad_left == 1 && p->out_h == p->in_h &&
           p->out_w == p->in_w && (p->in_w == 12 || p->in_w == 6 || p->in_w == 3) && p->in_h >= 2 &&
           p->in_h * ((p->in_w + 1) & ~1) <= TS_DW_SMALL;
}

/* The h x w image of 4 channels at x (pixels xs bytes apart) into the 4 planes at p0 (TS_DW_SMALL values
 * apart), rows of w2 = w rounded up to even values, the input offset added (SXTAB16), the extra column 0.
 * For an even width the pixels pair up over the whole image: per pair 2 loads, 4 SXTAB16 and PKHBT / PKHTB
 * into one word per plane (in inline assembly on the target, which GCC does not form). */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
static TS_NOINLINE void ts_dw_sfill(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t h, int32_t w)
{
    const int32_t w2 = (w + 1) & ~1;
    int32_t i, j;
    for (i = 0; i < h; ++i) {
        for (j = 0; j < w; j += 2) {
            const int8_t *xp = x + (ptrdiff_t)(i * w + j) * xs;
            const uint32_t v0 = ts_read32(xp), v1 = j + 1 < w ? ts_read32(xp + xs) : 0;
            const uint32_t e0 = ts_sxtab16(offset, v0), o0 = ts_sxtab16_ror8(offset, v0);
            const uint32_t e1 = j + 1 < w ? ts_sxtab16(offset, v1) : 0;
            const uint32_t o1 = j + 1 < w ? ts_sxtab16_ror8(offset, v1) : 0;
            int16_t *q = p0 + i * w2 + j;
            ts_write32(q, (e0 & 0xFFFFu) | e1 << 16);
            ts_write32(q + TS_DW_SMALL, (o0 & 0xFFFFu) | o1 << 16);
            ts_write32(q + 2 * TS_DW_SMALL, (e1 & 0xFFFF0000u) | e0 >> 16);
            ts_write32(q + 3 * TS_DW_SMALL, (o1 & 0xFFFF0000u) | o0 >> 16);
        }
    }
}
#else
/* one pair of positions: values at x and x + xs (SXTAB16 even and odd bytes), packed per plane */
#define TS_DW_SPAIR                                                                                                \
    "ldr %[v0], [%[x]]\n\t"                                                                                        \
    "ldr %[v1], [%[x], %[xs]]\n\t"                                                                                 \
    "add %[x], %[x], %[xs], lsl #1\n\t"                                                                            \
    "sxtab16 %[e0], %[off], %[v0]\n\t"                                                                             \
    "sxtab16 %[o0], %[off], %[v0], ror #8\n\t"                                                                     \
    "sxtab16 %[e1], %[off], %[v1]\n\t"                                                                             \
    "sxtab16 %[o1], %[off], %[v1], ror #8\n\t"                                                                     \
    "pkhbt %[v0], %[e0], %[e1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[e1], %[e0], asr #16\n\t"                                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_SMALL2_BYTES) "]\n\t"                                                      \
    "pkhbt %[e1], %[o0], %[o1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[o1], %[o0], asr #16\n\t"                                                                       \
    "str %[e1], [%[p], #" TS_DW_S(TS_DW_SMALL_BYTES) "]\n\t"                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_SMALL3_BYTES) "]\n\t"                                                      \
    "str %[v0], [%[p]], #4\n\t"
/* the last position of an odd row: its value and a zero, one word per plane */
#define TS_DW_SODD                                                                                                 \
    "ldr %[v0], [%[x]]\n\t"                                                                                        \
    "add %[x], %[x], %[xs]\n\t"                                                                                    \
    "sxtab16 %[e0], %[off], %[v0]\n\t"                                                                             \
    "sxtab16 %[o0], %[off], %[v0], ror #8\n\t"                                                                     \
    "uxth %[v0], %[e0]\n\t"                                                                                        \
    "uxth %[v1], %[o0]\n\t"                                                                                        \
    "lsr %[e0], %[e0], #16\n\t"                                                                                    \
    "lsr %[o0], %[o0], #16\n\t"                                                                                    \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_SMALL_BYTES) "]\n\t"                                                       \
    "str %[e0], [%[p], #" TS_DW_S(TS_DW_SMALL2_BYTES) "]\n\t"                                                      \
    "str %[o0], [%[p], #" TS_DW_S(TS_DW_SMALL3_BYTES) "]\n\t"                                                      \
    "str %[v0], [%[p]], #4\n\t"
static TS_NOINLINE void ts_dw_sfill(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t h, int32_t w)
{
    const int16_t *end = p0 + h * ((w + 1) & ~1);
    uint32_t v0, v1, e0, o0, e1, o1;
    if (w == 3) { /* per row a pair and the odd last position */
        __asm__ volatile("1:\n\t" TS_DW_SPAIR TS_DW_SODD
                         "cmp %[p], %[end]\n\t"
                         "bne 1b\n\t"
                         : [v0] "=&r"(v0), [v1] "=&r"(v1), [e0] "=&r"(e0), [o0] "=&r"(o0), [e1] "=&r"(e1),
                           [o1] "=&r"(o1), [x] "+r"(x), [p] "+r"(p0)
                         : [xs] "r"(xs), [off] "r"(offset), [end] "r"(end)
                         : "cc", "memory");
        return;
    }
    __asm__ volatile("sub %[v0], %[end], %[p]\n\t" /* an odd count of pairs: enter at the second */
                     "tst %[v0], #4\n\t"
                     "bne 2f\n\t"
                     "1:\n\t" TS_DW_SPAIR
                     "2:\n\t" TS_DW_SPAIR
                     "cmp %[p], %[end]\n\t"
                     "bne 1b\n\t"
                     : [v0] "=&r"(v0), [v1] "=&r"(v1), [e0] "=&r"(e0), [o0] "=&r"(o0), [e1] "=&r"(e1), [o1] "=&r"(o1),
                       [x] "+r"(x), [p] "+r"(p0)
                     : [xs] "r"(xs), [off] "r"(offset), [end] "r"(end)
                     : "cc", "memory");
}
#undef TS_DW_SODD
#undef TS_DW_SPAIR
#endif

/* Channel ch's h x w outputs at y (pixels ys bytes apart, rows w ys) from its plane pl (rows of w2 values): the
 * portable form of the assembly below, for any width. Output o of a row has taps o - 1 .. o + 1: for an odd o
 * the word (o - 1, o) times (w0, w1) and the next word's low half times w2; for an even o the previous word's
 * high half times w0 (none at o = 0) and the word (o, o + 1) times (w1, w2); the missing taps are padding. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_srows(const ts_dw_ch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t h, int32_t w)
{
    const int32_t w2 = (w + 1) & ~1;
    int32_t i, o, k;
    for (i = 0; i < h; ++i) {
        for (o = 0; o < w; ++o) {
            int32_t s = ch->bias;
            for (k = 0; k < 3; ++k) {
                const int16_t *r;
                if (i - 1 + k < 0 || i - 1 + k >= h) {
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
            y[(i * w + o) * ys] = ts_dw_out(s, ch);
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
/* The weight rows of ts_dw_ch: row k's (w0, w1), (w1, w2) at byte 16 + 8 k. */
#define TS_DW_W(K) "ldrd %[w01], %[w12], [%[ch], #" K "]\n\t"
/* Width 6: per output row the 3 window rows (the first and last output rows 2), r at the input row of the
 * output row's centre (12 bytes a row; the middle rows' last window row moves it on), 14 registers. */
TS_ALWAYS_INLINE void ts_dw_srows6(const ts_dw_ch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t h)
{
    const int16_t *r = pl, *last = pl + 6 * (h - 1);
    int32_t s0, s1, s2, s3, s4, s5;
    uint32_t d, w01, w12, t;
    __asm__ volatile("ldr %[t], [%[ch]]\n\t" /* output row 0: window rows 1, 2 */
                     TS_DW_W("24") TS_DW_F6("[%[r]]", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_W("32") TS_DW_A6("[%[r], #12]!", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_O6
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
                     "2:\n\t" /* the last output row: window rows 0, 1 */
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F6("[%[r], #-12]", "[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A6("[%[r]]", "[%[r], #4]", "[%[r], #8]")
                     TS_DW_O6
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [s4] "=&r"(s4), [s5] "=&r"(s5),
                       [d] "=&r"(d), [w01] "=&r"(w01), [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last)
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
TS_ALWAYS_INLINE void ts_dw_srows12(const ts_dw_ch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t h)
{
    const int16_t *r = pl, *last = pl + 12 * (h - 1);
    int32_t s0, s1, s2, s3, s4, s5;
    uint32_t d, w01, w12, t;
    __asm__ volatile(/* output row 0: window rows 1, 2 */
                     TS_DW_ROW12("24", "0", "32", "24", "0", "0", TS_DW_LSF, TS_DW_LSA, TS_DW_TWO)
                     TS_DW_ROW12("24", "0", "32", "24", "0", "0", TS_DW_RSF, TS_DW_RSA, TS_DW_TWO)
                     "add %[r], %[r], #24\n\t"
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
                     "2:\n\t" /* the last output row: window rows 0, 1 */
                     TS_DW_ROW12("16", "-24", "24", "0", "0", "0", TS_DW_LSF, TS_DW_LSA, TS_DW_TWO)
                     TS_DW_ROW12("16", "-24", "24", "0", "0", "0", TS_DW_RSF, TS_DW_RSA, TS_DW_TWO)
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [s4] "=&r"(s4), [s5] "=&r"(s5),
                       [d] "=&r"(d), [w01] "=&r"(w01), [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last)
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
TS_ALWAYS_INLINE void ts_dw_srows3(const ts_dw_ch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t h)
{
    const int16_t *r = pl, *last = pl + 4 * (h - 1);
    int32_t s0, s1, s2;
    uint32_t d, w01, w12, t;
    __asm__ volatile("ldr %[t], [%[ch]]\n\t" /* output row 0: window rows 1, 2 */
                     TS_DW_W("24") TS_DW_F3("[%[r]]", "[%[r], #4]")
                     TS_DW_W("32") TS_DW_A3("[%[r], #8]!", "[%[r], #4]")
                     TS_DW_O3
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
                     "2:\n\t" /* the last output row: window rows 0, 1 */
                     "ldr %[t], [%[ch]]\n\t"
                     TS_DW_W("16") TS_DW_F3("[%[r], #-8]", "[%[r], #-4]")
                     TS_DW_W("24") TS_DW_A3("[%[r]]", "[%[r], #4]")
                     TS_DW_O3
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [d] "=&r"(d), [w01] "=&r"(w01),
                       [w12] "=&r"(w12), [t] "=&r"(t), [r] "+r"(r), [y] "+r"(y)
                     : [ch] "r"(ch), [ys] "r"(ys), [last] "m"(last)
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

/* The 4 channels' outputs of a group from its planes (one function, so that the assembly has its registers). */
static TS_NOINLINE void ts_dw_small4(const ts_dw_ch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t h,
                                     int32_t w)
{
    int32_t t;
    for (t = 0; t < 4; ++t, ++ch, pl += TS_DW_SMALL, ++y) {
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
        ts_dw_srows(ch, pl, y, ys, h, w);
#else
        if (w == 6) {
            ts_dw_srows6(ch, pl, y, ys, h);
        } else if (w == 12) {
            ts_dw_srows12(ch, pl, y, ys, h);
        } else {
            ts_dw_srows3(ch, pl, y, ys, h);
        }
#endif
    }
}

/* Channels c .. c + 3 of a layer that ts_dw_small_fits: ts_dw_ch's doubled weights and requantization as in
 * ts_dw_group3 (its rows k at w[2 k], w[2 k + 1]), then per image the fill and the 4 channels. */
static void ts_dw_group_small(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,
                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0, n = p->in_h * p->in_w;
    union { /* word aligned for the word accesses */
        int16_t v[4][TS_DW_SMALL];
        uint32_t align;
    } pl;
    ts_dw_ch ch[4];
    int32_t t, i, b;
    for (t = 0; t < 4; ++t) {
        ts_rq q = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * p->output_offset + 1);
        for (i = 0; i < 3; ++i) {
            const int8_t *wr = w + (size_t)(3 * i) * c_n + c + t;
            const uint32_t w0 = (uint16_t)(2 * wr[0]), w1 = (uint16_t)(2 * wr[c_n]), w2 = (uint16_t)(2 * wr[2 * c_n]);
            ch[t].w[2 * i] = w0 | w1 << 16;
            ch[t].w[2 * i + 1] = w1 | w2 << 16;
        }
        ch[t].bias = (int32_t)((uint32_t)bias[c + t] * 2u);
        ch[t].multiplier = q.multiplier;
        ch[t].qbias = q.bias;
        ch[t].right = q.right;
    }
    for (b = 0; b < p->batches; ++b) {
        ts_dw_sfill(pl.v[0], x + (size_t)b * n * c_n + c, c_n, ts_dup16(p->input_offset), p->in_h, p->in_w);
        ts_dw_small4(ch, pl.v[0], y + (size_t)b * n * c_n + c, c_n, p->in_h, p->in_w);
    }
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_SMALL_DSP_H */
