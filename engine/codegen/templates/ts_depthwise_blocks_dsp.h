/* ts_depthwise_blocks_dsp.h - the DSP depthwise's 4-channel pixel path (internal to ts_depthwise_dsp.c): taps
 * and window rows over the 4 channels of a pixel by SMLABB/SMLATT with pre-extended weights, the requantized
 * store of 4 channels, and the straight-line 9-tap run over a block of pixels of one window case. */
#ifndef TS_DEPTHWISE_BLOCKS_DSP_H
#define TS_DEPTHWISE_BLOCKS_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* The accumulators of channels c .. c + 3 (a0: channel c, a1: c + 1, a2: c + 2, a3: c + 3). */
typedef struct {
    int32_t a0, a1, a2, a3;
} ts_acc4;

/* One tap for 4 channels, from the input word at xq and the two sign-extended weight words in wp. */
TS_ALWAYS_INLINE void ts_dw_tapx(ts_acc4 *a, const int8_t *xq, uint64_t wp, uint32_t offset)
{
    const uint32_t xv = ts_read32(xq);
    const uint32_t x02 = ts_sxtab16(offset, xv), x13 = ts_sxtab16_ror8(offset, xv);
    const uint32_t w02 = (uint32_t)wp, w13 = (uint32_t)(wp >> 32);
    a->a0 = ts_smlabb(x02, w02, a->a0);
    a->a1 = ts_smlabb(x13, w13, a->a1);
    a->a2 = ts_smlatt(x02, w02, a->a2);
    a->a3 = ts_smlatt(x13, w13, a->a3);
}

/* One window row of 3 taps for 4 channels: inputs at xq, xq + xc, xq + 2 xc, weights wr[0 .. 2] (pre-extended
 * pairs, 8-byte aligned). On the target one block of inline assembly (per tap LDR, LDRD, 2 SXTAB16,
 * 4 SMLAxy, with 4 temporaries): GCC would otherwise hoist the loads of all 9 taps of a pixel ahead of the
 * multiplies and spill them. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_dw_row3(ts_acc4 *a, const int8_t *xq, int32_t xc, const uint64_t *wr, uint32_t offset)
{
    ts_dw_tapx(a, xq, wr[0], offset);
    ts_dw_tapx(a, xq + xc, wr[1], offset);
    ts_dw_tapx(a, xq + 2 * xc, wr[2], offset);
}
#else
TS_ALWAYS_INLINE void ts_dw_row3(ts_acc4 *a, const int8_t *xq, int32_t xc, const uint64_t *wr, uint32_t offset)
{
    uint32_t xv, x02, w02, w13;
    __asm__(/* per tap: inputs, weight pair, 2 extensions, 4 multiply-accumulates */
            "ldr %[xv], [%[xq]]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #0]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            "ldr %[xv], [%[xq], %[xc]]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #8]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            "ldr %[xv], [%[xq], %[xc], lsl #1]\n\t"
            "ldrd %[w02], %[w13], [%[wr], #16]\n\t"
            "sxtab16 %[x02], %[off], %[xv]\n\t"
            "sxtab16 %[xv], %[off], %[xv], ror #8\n\t"
            "smlabb %[a0], %[x02], %[w02], %[a0]\n\t"
            "smlatt %[a2], %[x02], %[w02], %[a2]\n\t"
            "smlabb %[a1], %[xv], %[w13], %[a1]\n\t"
            "smlatt %[a3], %[xv], %[w13], %[a3]\n\t"
            : [a0] "+r"(a->a0), [a1] "+r"(a->a1), [a2] "+r"(a->a2), [a3] "+r"(a->a3), [xv] "=&r"(xv),
              [x02] "=&r"(x02), [w02] "=&r"(w02), [w13] "=&r"(w13)
            : [xq] "r"(xq), [xc] "r"(xc), [wr] "r"(wr), [off] "r"(offset), "m"(*(const uint64_t(*)[3])wr),
              "m"(*xq));
}
#endif

/* One tap for 4 channels: one 32-bit load of inputs and one of weights (read from the kernel). */
TS_ALWAYS_INLINE void ts_dw_tap(ts_acc4 *a, const int8_t *xq, const int8_t *wq, uint32_t offset)
{
    const uint32_t wv = ts_read32(wq);
    ts_dw_tapx(a, xq, ts_sxtb16(wv) | (uint64_t)ts_sxtb16_ror8(wv) << 32, offset);
}

/* The taps of a rows x cols window for 4 channels with weights read from the kernel (border pixels). */
TS_ALWAYS_INLINE void ts_dw_window(ts_acc4 *a, const int8_t *xr, const int8_t *wr, int32_t rows, int32_t cols,
                                   int32_t x_row, int32_t x_col, int32_t w_row, int32_t c_n, uint32_t offset)
{
    int32_t i, j;
    for (i = 0; i < rows; ++i, xr += x_row, wr += w_row) {
        const int8_t *xq = xr, *wq = wr;
        for (j = 0; j < cols; ++j, xq += x_col, wq += c_n) {
            ts_dw_tap(a, xq, wq, offset);
        }
    }
}

/* Requantizes channels c .. c + 3 into yr[0 .. 3] in the form `mode` (0: portable, 1: full int8 range,
 * 2: clamped; q: the fast form's constants). */
TS_ALWAYS_INLINE void ts_dw_store4(int8_t *yr, const ts_acc4 *a, int mode, const int32_t *multiplier,
                                   const int8_t *shift, int32_t c, int32_t step, int32_t off, int32_t lo,
                                   int32_t hi, const ts_rq *q)
{
    if (mode == 0) {
        yr[0] = ts_requant(a->a0, multiplier[c * step], shift[c * step], off, lo, hi);
        yr[1] = ts_requant(a->a1, multiplier[(c + 1) * step], shift[(c + 1) * step], off, lo, hi);
        yr[2] = ts_requant(a->a2, multiplier[(c + 2) * step], shift[(c + 2) * step], off, lo, hi);
        yr[3] = ts_requant(a->a3, multiplier[(c + 3) * step], shift[(c + 3) * step], off, lo, hi);
    } else if (mode == 1) {
        yr[0] = (int8_t)ts_ssat8(ts_rq_fast(a->a0, &q[0]));
        yr[1] = (int8_t)ts_ssat8(ts_rq_fast(a->a1, &q[1]));
        yr[2] = (int8_t)ts_ssat8(ts_rq_fast(a->a2, &q[2]));
        yr[3] = (int8_t)ts_ssat8(ts_rq_fast(a->a3, &q[3]));
    } else {
        yr[0] = ts_clamp8(ts_rq_fast(a->a0, &q[0]), lo, hi);
        yr[1] = ts_clamp8(ts_rq_fast(a->a1, &q[1]), lo, hi);
        yr[2] = ts_clamp8(ts_rq_fast(a->a2, &q[2]), lo, hi);
        yr[3] = ts_clamp8(ts_rq_fast(a->a3, &q[3]), lo, hi);
    }
}

/* What the 9-tap run function needs besides its pixels (one struct: one pointer live). */
typedef struct {
    int32_t bias[4];
    ts_rq q[4];
    int32_t x_col, x_row, x_step, y_step, x_rstep, y_rstep;
    uint32_t offset;
    int32_t lo, hi;
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t c, step, off;
} ts_dw_ctx;

/* A block of rows x n output pixels (4 channels each) whose 3x3 windows all have the same case (ts_dw_edge),
 * every tap read lying inside the image: xq is the first pixel's top-left tap, wk the 9 pre-extended weight
 * pairs of the case (zeros where the true window lies in the padding, see ts_dw_group); along a row the window
 * steps by k->x_step and the output by k->y_step, from row to row by k->x_rstep and k->y_rstep. One call per
 * block (at most 9 per group of channels: the inside block and the edge rows and columns), so that the call
 * and the row bookkeeping cost nothing per pixel; a function of its own so that its live values stay in
 * registers; always inlined into one function per requantization form (`mode`, as ts_dw_store4). */
TS_ALWAYS_INLINE void ts_dw_run9_any(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                     int32_t n, int32_t rows, int mode)
{
    do {
        const int8_t *xp = xq;
        int8_t *yp = yr;
        int32_t m = n;
        do {
            const int32_t xc = k->x_col, xr = k->x_row;
            const uint32_t offset = k->offset;
            ts_acc4 a;
            a.a0 = k->bias[0];
            a.a1 = k->bias[1];
            a.a2 = k->bias[2];
            a.a3 = k->bias[3];
            ts_dw_row3(&a, xp, xc, wk, offset);
            ts_dw_row3(&a, xp + xr, xc, wk + 3, offset);
            ts_dw_row3(&a, xp + 2 * xr, xc, wk + 6, offset);
            ts_dw_store4(yp, &a, mode, k->multiplier, k->shift, k->c, k->step, k->off, k->lo, k->hi, k->q);
            xp += k->x_step;
            yp += k->y_step;
        } while (--m > 0);
        xq += k->x_rstep;
        yr += k->y_rstep;
    } while (--rows > 0);
}

typedef void (*ts_dw_run9_fn)(const ts_dw_ctx *, const int8_t *, const uint64_t *, int8_t *, int32_t, int32_t);

static TS_NOINLINE void ts_dw_run9_general(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                           int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 0);
}

static TS_NOINLINE void ts_dw_run9_full(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                        int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 1);
}

static TS_NOINLINE void ts_dw_run9_clamp(const ts_dw_ctx *k, const int8_t *xq, const uint64_t *wk, int8_t *yr,
                                         int32_t n, int32_t rows)
{
    ts_dw_run9_any(k, xq, wk, yr, n, rows, 2);
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_BLOCKS_DSP_H */
