/* ts_depthwise_ring_dsp.h - the DSP depthwise's widened input ring (internal to ts_depthwise_dsp.c): 3 input
 * lines widened to int16 (input offset added, zeros for the padding), one plane per channel, so that a word holds
 * 2 adjacent columns of a channel; an output line of 4 adjacent outputs per step (3 loads and 8 SMLAD/SMLAxy per
 * window row, in inline assembly on the target; then a pair and a single one) and the fill of a ring line.
 * ts_dw_group3 drives it. */
#ifndef TS_DEPTHWISE_RING_DSP_H
#define TS_DEPTHWISE_RING_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* SMLABT / SMLATB (bottom x top, top x bottom halves), which ts_dsp.h has no use for elsewhere. */
#if defined(TINYSTUDIO_EMULATE_DSP)
static inline int32_t ts_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_hi16(b)));
}
static inline int32_t ts_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_hi16(a) * ts_lo16(b)));
}
#else
static inline int32_t ts_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
static inline int32_t ts_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
#endif

/* Most values per line of the widened input ring (3 lines x 4 channel planes x 28 int16 = 672 bytes of
 * stack): a strip of n windows spans n + 2 columns, for an odd n plus the one that the single last window's
 * second word reads past them (its value unused); strips of up to 25 windows (KWS in one). */
#define TS_DW_LINE 28
/* The longer output side from which the widened ring beats the 4-channel path (measured: 25 x 5, 12 x 12
 * and 6 x 6 do, the last 4.00 against 4.60 instructions/MAC; 3 x 3 does not). */
#define TS_DW_PLANAR_MIN 6

/* One channel of a 3x3 group: its bias, its requantization (ts_rq's multiplier, bias and right in the order
 * that one LDRD takes the first two) and per window row i the int16 weight pairs (w_i0, w_i1) and
 * (w_i1, w_i2), low half first, for rows 0, 1, 2, 0, 1: the ring slot s holds window row (s + k) mod 3 for a
 * rotation k, so the 3 rows of rotation k are w + 2k on, in slot order. Weights and bias are doubled, so that
 * the accumulator is the 2x that SMMLAR takes (ts_dw_out). */
typedef struct {
    int32_t bias, multiplier, qbias, right;
    uint32_t w[10];
} ts_dw_ch;

/* One output line of n outputs of 4 channels: r the first channel's plane in ring slot 0 at the first window
 * (slot s is s * TS_DW_SLOT values further, the next channel's plane TS_DW_LINE), rot the weight rotation,
 * outputs at y, y_step bytes apart (the next channel's 1 further). */
typedef struct {
    const int16_t *r;
    int8_t *y;
    int32_t n, y_step, rot;
} ts_dw_job;

#define TS_DW_SLOT (4 * TS_DW_LINE)
#define TS_DW_SLOT_BYTES (8 * TS_DW_LINE)
#define TS_DW_SLOT2_BYTES (16 * TS_DW_LINE)
#define TS_DW_PLANE_BYTES (2 * TS_DW_LINE)
#define TS_DW_PLANE2_BYTES (4 * TS_DW_LINE)
#define TS_DW_PLANE3_BYTES (6 * TS_DW_LINE)

/* ts_rq_fast and SSAT of an accumulator that holds 2x. */
TS_ALWAYS_INLINE int8_t ts_dw_out(int32_t acc, const ts_dw_ch *ch)
{
    return (int8_t)ts_ssat8(ts_smmlar(acc, ch->multiplier, ch->qbias - (int32_t)((uint32_t)acc >> 31)) >>
                            ch->right);
}

/* One window row for four adjacent outputs s[0 .. 3] from the plane row r at the first output's window. */
TS_ALWAYS_INLINE void ts_dw_quad(const int16_t *r, const uint32_t *wr, int32_t *s)
{
    const uint32_t w01 = wr[0], w12 = wr[1];
    const uint32_t a = ts_read32(r), b = ts_read32(r + 2), c = ts_read32(r + 4);
    s[0] = ts_smlabt(b, w12, ts_smlad(a, w01, s[0]));
    s[1] = ts_smlad(b, w12, ts_smlatb(a, w01, s[1]));
    s[2] = ts_smlabt(c, w12, ts_smlad(b, w01, s[2]));
    s[3] = ts_smlad(c, w12, ts_smlatb(b, w01, s[3]));
}

/* Channel ch's n outputs at *yp, ys bytes apart, from its plane at *rp (slot 0), with the slots' weight rows at w:
 * 4 adjacent ones per step, then a pair, then one; back[0] = 2 n - 8 (the bytes from the first to the last step of 4's
 * start), back[1] = n ys - 1. Leaves *rp and *yp at the next channel's plane and output. On the target one block
 * of inline assembly: per step of 4, 3 window rows of 3 loads of inputs, one LDRD of weights and 8 multiplies
 * (the first row's start from the bias), then 4 requantizations and stores, in 14 registers (one ring pointer
 * for the 3 rows, since the rotated weights keep the slots in address order; back in memory); GCC spills
 * otherwise. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_run(const ts_dw_ch *ch, const uint32_t *w, const int16_t **rp, int8_t **yp, int32_t ys,
                                const int32_t *back)
{
    const int16_t *r = *rp;
    int8_t *y = *yp;
    int32_t n = back[0] / 2 + 4;
    *rp += TS_DW_LINE;
    *yp += 1;
    for (; n >= 4; n -= 4, r += 4, y += 4 * ys) {
        int32_t s[4];
        s[0] = s[1] = s[2] = s[3] = ch->bias;
        ts_dw_quad(r, w, s);
        ts_dw_quad(r + TS_DW_SLOT, w + 2, s);
        ts_dw_quad(r + 2 * TS_DW_SLOT, w + 4, s);
        y[0] = ts_dw_out(s[0], ch);
        y[ys] = ts_dw_out(s[1], ch);
        y[2 * ys] = ts_dw_out(s[2], ch);
        y[3 * ys] = ts_dw_out(s[3], ch);
    }
    if (n >= 2) { /* a pair: one window row is 2 loads and 4 multiplies */
        int32_t s0 = ch->bias, s1 = ch->bias, i;
        for (i = 0; i < 3; ++i) {
            const uint32_t a = ts_read32(r + i * TS_DW_SLOT), b = ts_read32(r + i * TS_DW_SLOT + 2);
            s0 = ts_smlabt(b, w[2 * i + 1], ts_smlad(a, w[2 * i], s0));
            s1 = ts_smlad(b, w[2 * i + 1], ts_smlatb(a, w[2 * i], s1));
        }
        y[0] = ts_dw_out(s0, ch);
        y[ys] = ts_dw_out(s1, ch);
        n -= 2;
        r += 2;
        y += 2 * ys;
    }
    for (; n > 0; --n, ++r, y += ys) {
        int32_t s0 = ts_smlabt(ts_read32(r + 2), w[1], ts_smlad(ts_read32(r), w[0], ch->bias));
        s0 = ts_smlabt(ts_read32(r + TS_DW_SLOT + 2), w[3], ts_smlad(ts_read32(r + TS_DW_SLOT), w[2], s0));
        s0 = ts_smlabt(ts_read32(r + 2 * TS_DW_SLOT + 2), w[5], ts_smlad(ts_read32(r + 2 * TS_DW_SLOT), w[4], s0));
        y[0] = ts_dw_out(s0, ch);
    }
}
#else
#define TS_DW_S2(X) #X
#define TS_DW_S(X) TS_DW_S2(X)
/* window row at byte offset ROFF of the ring pointer (8 bytes ahead already), weights at byte offset WOFF */
#define TS_DW_QROW(ROFF, WOFF)                                                                                     \
    "ldr %[a], [%[r], #" ROFF "-8]\n\t"                                                                          \
    "ldr %[b], [%[r], #" ROFF "-4]\n\t"                                                                          \
    "ldrd %[w01], %[w12], [%[w], #" WOFF "]\n\t"                                                                 \
    "smlad %[s0], %[a], %[w01], %[s0]\n\t"                                                                       \
    "smlatb %[s1], %[a], %[w01], %[s1]\n\t"                                                                      \
    "ldr %[a], [%[r], #" ROFF "]\n\t"                                                                            \
    "smlabt %[s0], %[b], %[w12], %[s0]\n\t"                                                                      \
    "smlad %[s1], %[b], %[w12], %[s1]\n\t"                                                                       \
    "smlad %[s2], %[b], %[w01], %[s2]\n\t"                                                                       \
    "smlatb %[s3], %[b], %[w01], %[s3]\n\t"                                                                      \
    "smlabt %[s2], %[a], %[w12], %[s2]\n\t"                                                                      \
    "smlad %[s3], %[a], %[w12], %[s3]\n\t"
/* one window row of a single output */
#define TS_DW_SROW(ROFF, WOFF)                                                                                     \
    "ldr %[a], [%[r], #" ROFF "]\n\t"                                                                            \
    "ldr %[b], [%[r], #" ROFF "+4]\n\t"                                                                          \
    "ldrd %[w01], %[w12], [%[w], #" WOFF "]\n\t"                                                                 \
    "smlad %[s0], %[a], %[w01], %[s0]\n\t"                                                                       \
    "smlabt %[s0], %[b], %[w12], %[s0]\n\t"
/* one window row of a pair of outputs */
#define TS_DW_PROW(ROFF, WOFF)                                                                                     \
    "ldr %[a], [%[r], #" ROFF "]\n\t"                                                                            \
    "ldr %[b], [%[r], #" ROFF "+4]\n\t"                                                                          \
    "ldrd %[w01], %[w12], [%[w], #" WOFF "]\n\t"                                                                 \
    "smlad %[s0], %[a], %[w01], %[s0]\n\t"                                                                       \
    "smlatb %[s1], %[a], %[w01], %[s1]\n\t"                                                                      \
    "smlabt %[s0], %[b], %[w12], %[s0]\n\t"                                                                      \
    "smlad %[s1], %[b], %[w12], %[s1]\n\t"
/* requantize accumulator S (ts_dw_out; mult in a, qbias in b, right in w01) and store it at [ADDR] */
#define TS_DW_QOUT(S, ADDR)                                                                                        \
    "sub %[w12], %[b], %[" S "], lsr #31\n\t"                                                                    \
    "smmlar %[" S "], %[" S "], %[a], %[w12]\n\t"                                                                \
    "asr %[" S "], %[" S "], %[w01]\n\t"                                                                         \
    "ssat %[" S "], #8, %[" S "]\n\t"                                                                            \
    "strb %[" S "], " ADDR "\n\t"
TS_ALWAYS_INLINE void ts_dw_run(const ts_dw_ch *ch, const uint32_t *w, const int16_t **rp, int8_t **yp, int32_t ys,
                                const int32_t *back)
{
    const int16_t *r = *rp, *end;
    int8_t *y = *yp;
    int32_t s0, s1, s2, s3;
    uint32_t a, b, w01, w12;
    __asm__ volatile("ldr %[end], %[n2]\n\t"
                     "add %[end], %[r], %[end]\n\t" /* the last step of 4's start */
                     "cmp %[r], %[end]\n\t"
                     "bhi 2f\n\t"
                     "1:\n\t"
                     "ldr %[s3], [%[ch]]\n\t"
                     "ldr %[a], [%[r]], #8\n\t" /* the step's advance */
                     "ldr %[b], [%[r], #-4]\n\t"
                     "ldrd %[w01], %[w12], [%[w]]\n\t"
                     "smlad %[s0], %[a], %[w01], %[s3]\n\t"
                     "smlatb %[s1], %[a], %[w01], %[s3]\n\t"
                     "smlad %[s2], %[b], %[w01], %[s3]\n\t"
                     "smlatb %[s3], %[b], %[w01], %[s3]\n\t"
                     "ldr %[a], [%[r]]\n\t"
                     "smlabt %[s0], %[b], %[w12], %[s0]\n\t"
                     "smlad %[s1], %[b], %[w12], %[s1]\n\t"
                     "smlabt %[s2], %[a], %[w12], %[s2]\n\t"
                     "smlad %[s3], %[a], %[w12], %[s3]\n\t"
                     TS_DW_QROW(TS_DW_S(TS_DW_SLOT_BYTES), "8")
                     TS_DW_QROW(TS_DW_S(TS_DW_SLOT2_BYTES), "16")
                     "ldrd %[a], %[b], [%[ch], #4]\n\t"
                     "ldr %[w01], [%[ch], #12]\n\t"
                     TS_DW_QOUT("s0", "[%[y]]")
                     TS_DW_QOUT("s1", "[%[y], %[ys]]")
                     "add %[y], %[y], %[ys], lsl #1\n\t"
                     TS_DW_QOUT("s2", "[%[y]]")
                     TS_DW_QOUT("s3", "[%[y], %[ys]]")
                     "add %[y], %[y], %[ys], lsl #1\n\t"
                     "cmp %[r], %[end]\n\t"
                     "bls 1b\n\t"
                     "2:\n\t"
                     "adds %[end], %[end], #8\n\t"
                     "subs %[a], %[end], %[r]\n\t" /* 2x the outputs left, 0 .. 3 of them */
                     "beq 4f\n\t"
                     "cmp %[a], #4\n\t"
                     "blo 3f\n\t"
                     "ldr %[s0], [%[ch]]\n\t" /* a pair */
                     "mov %[s1], %[s0]\n\t"
                     TS_DW_PROW("0", "0")
                     TS_DW_PROW(TS_DW_S(TS_DW_SLOT_BYTES), "8")
                     TS_DW_PROW(TS_DW_S(TS_DW_SLOT2_BYTES), "16")
                     "ldrd %[a], %[b], [%[ch], #4]\n\t"
                     "ldr %[w01], [%[ch], #12]\n\t"
                     TS_DW_QOUT("s0", "[%[y]]")
                     TS_DW_QOUT("s1", "[%[y], %[ys]]")
                     "add %[y], %[y], %[ys], lsl #1\n\t"
                     "adds %[r], %[r], #4\n\t"
                     "cmp %[r], %[end]\n\t"
                     "beq 4f\n\t"
                     "3:\n\t"
                     "ldr %[s0], [%[ch]]\n\t"
                     TS_DW_SROW("0", "0")
                     TS_DW_SROW(TS_DW_S(TS_DW_SLOT_BYTES), "8")
                     TS_DW_SROW(TS_DW_S(TS_DW_SLOT2_BYTES), "16")
                     "ldrd %[a], %[b], [%[ch], #4]\n\t"
                     "ldr %[w01], [%[ch], #12]\n\t"
                     TS_DW_QOUT("s0", "[%[y]]")
                     "add %[y], %[y], %[ys]\n\t"
                     "adds %[r], %[r], #2\n\t"
                     "cmp %[r], %[end]\n\t"
                     "bne 3b\n\t"
                     "4:\n\t"
                     "ldr %[a], %[n2]\n\t" /* to the next channel's first output and plane */
                     "sub %[r], %[r], %[a]\n\t"
                     "adds %[r], %[r], #" TS_DW_S(TS_DW_PLANE_BYTES) "-8\n\t"
                     "ldr %[a], %[nys]\n\t"
                     "sub %[y], %[y], %[a]\n\t"
                     : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [a] "=&r"(a), [b] "=&r"(b),
                       [w01] "=&r"(w01), [w12] "=&r"(w12), [r] "+r"(r), [y] "+r"(y), [end] "=&r"(end)
                     : [ch] "r"(ch), [w] "r"(w), [ys] "r"(ys), [n2] "m"(back[0]), [nys] "m"(back[1])
                     : "cc", "memory");
    *rp = r;
    *yp = y;
}
#undef TS_DW_QOUT
#undef TS_DW_PROW
#undef TS_DW_SROW
#undef TS_DW_QROW
#endif

/* An output line of 4 channels (ts_dw_run each). A function of its own, so that its live values stay in
 * registers. */
static TS_NOINLINE void ts_dw_line(const ts_dw_ch *chs, const ts_dw_job *j)
{
    const ts_dw_ch *ch = chs;
    const uint32_t *w = chs->w + 2 * j->rot;
    const int16_t *r = j->r;
    int8_t *y = j->y;
    const int32_t ys = j->y_step, back[2] = {2 * j->n - 8, j->n * j->y_step - 1}; /* see ts_dw_run */
    for (; ch != chs + 4; ++ch, w += sizeof(ts_dw_ch) / 4) {
        ts_dw_run(ch, w, &r, &y, ys, back);
    }
}

/* Columns 0 and 1 of the 4 planes (TS_DW_LINE values apart) at p0 (word aligned): the input position at x in
 * column 1 (hi) or 0 (!hi), a zero in the other; one word per plane. */
TS_ALWAYS_INLINE void ts_dw_fill1(int16_t *p0, const int8_t *x, uint32_t offset, int hi)
{
    const uint32_t v = ts_read32(x), e = ts_sxtab16(offset, v), o = ts_sxtab16_ror8(offset, v);
    ts_write32(p0, hi ? e << 16 : e & 0xFFFFu);
    ts_write32(p0 + TS_DW_LINE, hi ? o << 16 : o & 0xFFFFu);
    ts_write32(p0 + 2 * TS_DW_LINE, hi ? e & 0xFFFF0000u : e >> 16);
    ts_write32(p0 + 3 * TS_DW_LINE, hi ? o & 0xFFFF0000u : o >> 16);
}

/* Columns 0 .. n - 1 (n even, > 0) of the 4 planes (TS_DW_LINE values apart) at p0 (word aligned) from the input
 * positions at x, xs bytes apart: per pair of positions 2 loads, 4 SXTAB16 (which add the offset) and PKHBT /
 * PKHTB into one word per plane. On the target inline assembly, since GCC does not form the PKHs; two pairs per
 * loop step. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_fill2(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t n)
{
    int32_t j;
    for (j = 0; j < n; j += 2) {
        const uint32_t v0 = ts_read32(x + (ptrdiff_t)j * xs), v1 = ts_read32(x + (ptrdiff_t)(j + 1) * xs);
        const uint32_t e0 = ts_sxtab16(offset, v0), o0 = ts_sxtab16_ror8(offset, v0);
        const uint32_t e1 = ts_sxtab16(offset, v1), o1 = ts_sxtab16_ror8(offset, v1);
        ts_write32(p0 + j, (e0 & 0xFFFFu) | e1 << 16);
        ts_write32(p0 + j + TS_DW_LINE, (o0 & 0xFFFFu) | o1 << 16);
        ts_write32(p0 + j + 2 * TS_DW_LINE, (e1 & 0xFFFF0000u) | e0 >> 16);
        ts_write32(p0 + j + 3 * TS_DW_LINE, (o1 & 0xFFFF0000u) | o0 >> 16);
    }
}
#else
/* one pair of positions (2 columns of the 4 planes) */
#define TS_DW_FPAIR                                                                                                \
    "ldr %[v0], [%[x]]\n\t"                                                                                        \
    "ldr %[v1], [%[x], %[xs]]\n\t"                                                                                 \
    "add %[x], %[x], %[xs], lsl #1\n\t"                                                                            \
    "sxtab16 %[e0], %[off], %[v0]\n\t"                                                                             \
    "sxtab16 %[o0], %[off], %[v0], ror #8\n\t"                                                                     \
    "sxtab16 %[e1], %[off], %[v1]\n\t"                                                                             \
    "sxtab16 %[o1], %[off], %[v1], ror #8\n\t"                                                                     \
    "pkhbt %[v0], %[e0], %[e1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[e1], %[e0], asr #16\n\t"                                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_PLANE2_BYTES) "]\n\t"                                                      \
    "pkhbt %[e1], %[o0], %[o1], lsl #16\n\t"                                                                       \
    "pkhtb %[v1], %[o1], %[o0], asr #16\n\t"                                                                       \
    "str %[e1], [%[p], #" TS_DW_S(TS_DW_PLANE_BYTES) "]\n\t"                                                       \
    "str %[v1], [%[p], #" TS_DW_S(TS_DW_PLANE3_BYTES) "]\n\t"                                                      \
    "str %[v0], [%[p]], #4\n\t"
TS_ALWAYS_INLINE void ts_dw_fill2(int16_t *p0, const int8_t *x, int32_t xs, uint32_t offset, int32_t n)
{
    const int16_t *end = p0 + n;
    uint32_t v0, v1, e0, o0, e1, o1;
    __asm__ volatile("sub %[v0], %[end], %[p]\n\t" /* an odd count of pairs: enter at the second */
                     "tst %[v0], #4\n\t"
                     "bne 2f\n\t"
                     "1:\n\t" TS_DW_FPAIR
                     "2:\n\t" TS_DW_FPAIR
                     "cmp %[p], %[end]\n\t"
                     "bne 1b\n\t"
                     : [v0] "=&r"(v0), [v1] "=&r"(v1), [e0] "=&r"(e0), [o0] "=&r"(o0), [e1] "=&r"(e1), [o1] "=&r"(o1),
                       [x] "+r"(x), [p] "+r"(p0)
                     : [xs] "r"(xs), [off] "r"(offset), [end] "r"(end)
                     : "cc", "memory");
}
#undef TS_DW_FPAIR
#endif

/* Ring line `line` (4 channel planes of TS_DW_LINE values) from the input line xl (channel c at position 0,
 * positions xs bytes apart, n of them; NULL: a padding line), column j holding position cb + j for j < wn:
 * 4 channels widened at once (SXTAB16 adds the offset), zeros outside the input. (The zero is hidden from the
 * optimizer, which would otherwise make 4 memset calls of the one or two padding columns.) Not
 * inlined: its loops keep their values in registers. */
static TS_NOINLINE void ts_dw_fill(int16_t (*line)[TS_DW_LINE], const int8_t *xl, int32_t cb, int32_t wn,
                                   int32_t n, int32_t xs, uint32_t offset)
{
    int16_t *p0 = line[0], *p1 = line[1], *p2 = line[2], *p3 = line[3];
    int32_t j = 0, jl = -cb, jr = n - cb, jz;
    int16_t zero = 0;
    uint32_t zero2 = 0;
    TS_OPAQUE(zero);
    TS_OPAQUE(zero2);
    if (!xl) { /* a padding line: its wn columns (even) of the 4 planes in words of zeros */
        for (; j < wn; j += 2) {
            ts_write32(p0 + j, zero2);
            ts_write32(p1 + j, zero2);
            ts_write32(p2 + j, zero2);
            ts_write32(p3 + j, zero2);
        }
        return;
    }
    jl = jl < 0 ? 0 : (jl > wn ? wn : jl);
    jr = jr < jl ? jl : (jr > wn ? wn : jr);
    jz = (jl & 1) == 1 && jl < jr ? jl - 1 : jl; /* an odd first column shares its word with a zero */
    for (; j < jz; ++j) {
        p0[j] = p1[j] = p2[j] = p3[j] = zero;
    }
    if (j < jl) {
        ts_dw_fill1(p0 + j, xl + (ptrdiff_t)(cb + jl) * xs, offset, 1);
        j += 2;
    }
    if (jr - j >= 2) { /* pairs from an even column */
        const int32_t jp = (jr - j) & ~1;
        ts_dw_fill2(p0 + j, xl + (ptrdiff_t)(cb + j) * xs, xs, offset, jp);
        j += jp;
    }
    if (j < jr) { /* an odd last column, and a zero (wn is even) */
        ts_dw_fill1(p0 + j, xl + (ptrdiff_t)(cb + j) * xs, offset, 0);
        j += 2;
    }
    for (; j < wn; ++j) {
        p0[j] = p1[j] = p2[j] = p3[j] = zero;
    }
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_RING_DSP_H */
