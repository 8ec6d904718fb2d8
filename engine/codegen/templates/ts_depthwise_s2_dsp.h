/* ts_depthwise_s2_dsp.h - the DSP depthwise's stride-2 3x3 path (internal to ts_depthwise_dsp.c, included after
 * ts_dw_edge and ts_dw_span): full-range requantization, every window inside the image or cut by one row and/or
 * one column of padding (pads 0 or 1; TFLite SAME). Stride 2 shares little between neighbouring windows (each
 * input pixel serves 2.25 outputs, too few for a widened ring), so per output pixel and group of 4 channels the
 * 9 taps are taken straight from the image (LDR, 2 SXTB16, 4 SMLAxy), as in ts_dw_run9, but on the target in
 * one block of assembly that keeps a block of outputs in registers: the 4 biases and the weights of 2 taps come
 * by one LDM, the next 2 taps' by one LDM, the 12 requantization constants by two (98 instructions per output
 * pixel of 4 channels, 2.72 per MAC). For the registers that takes, the input offset is folded into a bias per
 * window case (no SXTAB16 operand), and the weights and bias are doubled (the 2x that SMMLAR takes, no shift per
 * channel), as in the ring. */
#ifndef TS_DEPTHWISE_S2_DSP_H
#define TS_DEPTHWISE_S2_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* One window case of a group of 4 channels, in the order the assembly reads it (byte offsets fixed on the
 * target): the 4 doubled biases with the input offset times the case's weights folded in, the 9 taps' doubled
 * weight pairs (channels c, c + 2 then c + 1, c + 3), per channel the multiplier, ts_rq's bias and right shift;
 * then the block being run: the output position and the end of its row, the bytes from a window's last row
 * (where the taps leave the pointer) to the next window's top-left tap and from an output to the next, the rows
 * left, from the end of an output row to the next row's end and start, from the end of an input row of windows
 * to the next one's start, and the bytes between input rows. */
typedef struct {
    int32_t bias[4];
    uint32_t w[18];
    int32_t q[12];
    int8_t *y, *y_end;
    int32_t x_next, y_step, rows, y_rstep, y_back, x_rnext, x_row;
} ts_dw_s2case;

/* A block of cs->rows rows of outputs of one window case from cs->y (4 channels each), the first window's
 * top-left tap at xq, the input's columns xc bytes apart. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
static void ts_dw_s2_run(ts_dw_s2case *cs, const int8_t *xq, int32_t xc)
{
    int8_t *y = cs->y, *y_end = cs->y_end;
    int32_t t;
    for (;;) {
        int32_t a[4];
        a[0] = cs->bias[0];
        a[1] = cs->bias[1];
        a[2] = cs->bias[2];
        a[3] = cs->bias[3];
        for (t = 0; t < 9; ++t) {
            const uint32_t v = ts_read32(xq + (t / 3) * cs->x_row + (t % 3) * xc);
            const uint32_t x02 = ts_sxtb16(v), x13 = ts_sxtb16_ror8(v);
            a[0] = ts_smlabb(x02, cs->w[2 * t], a[0]);
            a[2] = ts_smlatt(x02, cs->w[2 * t], a[2]);
            a[1] = ts_smlabb(x13, cs->w[2 * t + 1], a[1]);
            a[3] = ts_smlatt(x13, cs->w[2 * t + 1], a[3]);
        }
        for (t = 0; t < 4; ++t) {
            const int32_t *q = cs->q + 3 * t;
            y[t] = (int8_t)ts_ssat8(ts_smmlar(a[t], q[0], q[1] - (int32_t)((uint32_t)a[t] >> 31)) >> q[2]);
        }
        y += cs->y_step;
        xq += cs->x_next + 2 * cs->x_row; /* x_next counts from the window's last row */
        if (y == y_end) {
            if (--cs->rows == 0) {
                return;
            }
            y_end += cs->y_rstep;
            y += cs->y_back;
            xq += cs->x_rnext;
        }
    }
}
#else
/* one tap: the input word at ADDR, weights in WA (channels c, c + 2) and WB (c + 1, c + 3) */
#define TS_DW_S2_TAP(ADDR, WA, WB)                                                                                 \
    "ldr r9, " ADDR "\n\t"                                                                                         \
    "sxtb16 r10, r9\n\t"                                                                                           \
    "sxtb16 r9, r9, ror #8\n\t"                                                                                    \
    "smlabb r0, r10, " WA ", r0\n\t"                                                                               \
    "smlatt r2, r10, " WA ", r2\n\t"                                                                               \
    "smlabb r1, r9, " WB ", r1\n\t"                                                                                \
    "smlatt r3, r9, " WB ", r3\n\t"
/* requantize accumulator A with multiplier M, ts_rq bias B (consumed) and right shift R, saturated */
#define TS_DW_S2_RQ(A, M, B, R)                                                                                    \
    "sub " B ", " B ", " A ", lsr #31\n\t"                                                                         \
    "smmlar " A ", " A ", " M ", " B "\n\t"                                                                        \
    "asr " A ", " A ", " R "\n\t"                                                                                  \
    "ssat " A ", #8, " A "\n\t"
/* the byte offsets that the assembly uses */
typedef char ts_dw_s2_layout[offsetof(ts_dw_s2case, y) == 136 && offsetof(ts_dw_s2case, x_row) == 168 ? 1 : -1];
/* Registers pinned for the LDMs (in register order): r0-r3 the accumulators, r4-r6 and r8 two taps' weights,
 * r9 and r10 the input word and its extensions, r11 the window, r12 the case, lr the column step, r7 (pushed:
 * the frame pointer of some builds) the row step; the case pointer walks the struct and is reset per pixel. */
static TS_NOINLINE void ts_dw_s2_run(ts_dw_s2case *cs, const int8_t *xq, int32_t xc)
{
    register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"), a3 __asm__("r3");
    register uint32_t w0 __asm__("r4"), w1 __asm__("r5"), w2 __asm__("r6"), w3 __asm__("r8");
    register uint32_t xv __asm__("r9"), xe __asm__("r10");
    register const int8_t *xp __asm__("r11") = xq;
    register ts_dw_s2case *wp __asm__("r12") = cs;
    register int32_t xs __asm__("lr") = xc;
    __asm__ volatile("push {r7}\n\t"
                     "ldr r7, [r12, #168]\n\t"
                     "1:\n\t"
                     "ldm r12!, {r0, r1, r2, r3, r4, r5, r6, r8}\n\t" /* the biases, 2 taps' weights */
                     TS_DW_S2_TAP("[r11]", "r4", "r5")
                     TS_DW_S2_TAP("[r11, lr]", "r6", "r8")
                     "ldm r12!, {r4, r5, r6, r8}\n\t"
                     TS_DW_S2_TAP("[r11, lr, lsl #1]", "r4", "r5")
                     "add r11, r11, r7\n\t"
                     TS_DW_S2_TAP("[r11]", "r6", "r8")
                     "ldm r12!, {r4, r5, r6, r8}\n\t"
                     TS_DW_S2_TAP("[r11, lr]", "r4", "r5")
                     TS_DW_S2_TAP("[r11, lr, lsl #1]", "r6", "r8")
                     "add r11, r11, r7\n\t"
                     "ldm r12!, {r4, r5, r6, r8}\n\t"
                     TS_DW_S2_TAP("[r11]", "r4", "r5")
                     TS_DW_S2_TAP("[r11, lr]", "r6", "r8")
                     "ldrd r4, r5, [r12], #8\n\t"
                     TS_DW_S2_TAP("[r11, lr, lsl #1]", "r4", "r5")
                     "ldm r12!, {r4, r5, r6, r8, r9, r10}\n\t"
                     TS_DW_S2_RQ("r0", "r4", "r5", "r6")
                     TS_DW_S2_RQ("r1", "r8", "r9", "r10")
                     "ldm r12!, {r4, r5, r6, r8, r9, r10}\n\t"
                     TS_DW_S2_RQ("r2", "r4", "r5", "r6")
                     TS_DW_S2_RQ("r3", "r8", "r9", "r10")
                     "ldm r12, {r4, r5, r6, r8}\n\t" /* y, y_end, x_next, y_step */
                     "strb r0, [r4]\n\t"
                     "strb r1, [r4, #1]\n\t"
                     "strb r2, [r4, #2]\n\t"
                     "strb r3, [r4, #3]\n\t"
                     "add r4, r4, r8\n\t"
                     "str r4, [r12], #-136\n\t" /* and back to the biases */
                     "add r11, r11, r6\n\t" /* the next window: 2 columns on, 2 rows back */
                     "cmp r4, r5\n\t"
                     "bne 1b\n\t"
                     "ldr r8, [r12, #152]\n\t" /* the end of an output row: the next row, or done */
                     "subs r8, r8, #1\n\t"
                     "beq 2f\n\t"
                     "str r8, [r12, #152]\n\t"
                     "ldrd r9, r10, [r12, #156]\n\t"
                     "ldr r6, [r12, #164]\n\t"
                     "add r5, r5, r9\n\t"
                     "add r4, r4, r10\n\t"
                     "strd r4, r5, [r12, #136]\n\t"
                     "add r11, r11, r6\n\t"
                     "b 1b\n\t"
                     "2:\n\t"
                     "pop {r7}\n\t"
                     : "=r"(a0), "=r"(a1), "=r"(a2), "=r"(a3), "=r"(w0), "=r"(w1), "=r"(w2), "=r"(w3), "=r"(xv),
                       "=r"(xe), "+r"(xp), "+r"(wp), "+r"(xs)
                     :
                     : "cc", "memory");
}
#undef TS_DW_S2_RQ
#undef TS_DW_S2_TAP
#endif

/* Whether ts_dw_group_s2 takes the layer: 3x3, stride 2, dilation 1, full-range requantization, an image of at
 * least 3x3 and every window inside or cut by one row and/or column of padding (ts_dw_edge >= 0); never where the
 * library switched it off (TINYSTUDIO_DW_S2, mirrored by engine/codegen/kernelfiles.py dsp_paths). */
TS_ALWAYS_INLINE int ts_dw_s2_ok(const ts_conv_params *p, int mode)
{
    return TINYSTUDIO_DW_S2 && mode == 1 && p->k_h == 3 && p->k_w == 3 && p->stride_h == 2 && p->stride_w == 2 &&
           p->dil_h == 1 && p->dil_w == 1 && p->in_h >= 3 && p->in_w >= 3 && p->pad_top >= 0 && p->pad_top <= 1 &&
           p->pad_left >= 0 && p->pad_left <= 1 && 2 * (p->out_h - 1) - p->pad_top + 2 <= p->in_h &&
           2 * (p->out_w - 1) - p->pad_left + 2 <= p->in_w;
}

/* SADD16: the weights doubled, and the sums of a case's weights by halves (at most 9 x 254: no overflow). */
#if defined(TINYSTUDIO_EMULATE_DSP)
static inline uint32_t ts_dw_sadd16(uint32_t a, uint32_t b)
{
    return ts_half(ts_lo16(a) + ts_lo16(b), ts_hi16(a) + ts_hi16(b));
}
#else
static inline uint32_t ts_dw_sadd16(uint32_t a, uint32_t b) { return (uint32_t)__sadd16((int32_t)a, (int32_t)b); }
#endif

/* The doubled weight pairs of a word of 4 int8 weights: (c, c + 2) and (c + 1, c + 3), each half times 2. */
TS_ALWAYS_INLINE uint64_t ts_dw_s2_pairs(uint32_t v)
{
    const uint32_t e = ts_sxtb16(v), o = ts_sxtb16_ror8(v);
    return (uint64_t)ts_dw_sadd16(e, e) | (uint64_t)ts_dw_sadd16(o, o) << 32;
}

/* One tap of a window case: the doubled weight pairs v into d, their halves added to the sums s. */
TS_ALWAYS_INLINE void ts_dw_s2_tap(uint32_t *d, uint64_t v, uint32_t *s)
{
    const uint32_t v02 = (uint32_t)v, v13 = (uint32_t)(v >> 32);
    d[0] = v02;
    d[1] = v13;
    s[0] = ts_dw_sadd16(s[0], v02);
    s[1] = ts_dw_sadd16(s[1], v13);
}

/* One row of a window case from the 3 doubled weight pairs at src, straight-line. */
TS_ALWAYS_INLINE void ts_dw_s2_row(uint32_t *d, const uint64_t *src, uint32_t *s)
{
    ts_dw_s2_tap(d, src[0], s);
    ts_dw_s2_tap(d + 2, src[1], s);
    ts_dw_s2_tap(d + 4, src[2], s);
}

/* Case (drow, dcol) of the window (ts_dw_group's shift: weight (i, j) reads tap (i + drow, j + dcol), zeros
 * outside) from the group's doubled pairs in rows padded with a zero on each side (tab): its weights, and as
 * its biases b2 (2 bias) plus the input offset (od, in both halves) times the sum of its weights. */
static void ts_dw_s2_case(ts_dw_s2case *cs, const uint64_t (*tab)[5], int32_t drow, int32_t dcol,
                          const int32_t *b2, uint32_t od)
{
    static const uint64_t zero[3] = {0, 0, 0};
    const uint64_t *r0 = tab[0] + 1 + dcol, *r1 = tab[1] + 1 + dcol, *r2 = tab[2] + 1 + dcol;
    uint32_t s[2] = {0, 0};
    ts_dw_s2_row(cs->w, drow == 0 ? r0 : (drow > 0 ? r1 : zero), s);
    ts_dw_s2_row(cs->w + 6, drow == 0 ? r1 : (drow > 0 ? r2 : r0), s);
    ts_dw_s2_row(cs->w + 12, drow == 0 ? r2 : (drow > 0 ? zero : r1), s);
    cs->bias[0] = ts_smlabb(s[0], od, b2[0]);
    cs->bias[1] = ts_smlabb(s[1], od, b2[1]);
    cs->bias[2] = ts_smlatt(s[0], od, b2[2]);
    cs->bias[3] = ts_smlatt(s[1], od, b2[3]);
}

/* A block of outputs of one window case (ts_dw_edge of its rows and of its columns) as the run walks it: the
 * bytes from the image (channel 0) to its first window's top-left tap and from the output to its first output,
 * from there to the end of its first run row, the run's x_next, y_step, rows, y_back and x_rnext
 * (ts_dw_s2case), the case's shift (ts_dw_s2_case). At most 3 x 3 of them: the first row or column cut by the
 * padding, the inside, the last. */
typedef struct {
    int32_t x, y, y_len, x_next, y_step, rows, y_back, x_rnext, drow, dcol;
} ts_dw_s2blk;

/* Channels c .. c + 3 (ts_dw_s2_ok): per block of the layer's nb (blk) its case, then one run per batch. */
static void ts_dw_group_s2(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y, const ts_dw_s2blk *blk,
                           int32_t nb)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0, y_rstep = p->out_w * c_n;
    const int32_t x_row = p->in_w * c_n, x_img = p->in_h * x_row;
    const uint32_t od = ts_dup16(p->input_offset);
    ts_dw_s2case cs;
    uint64_t tab[3][5];
    int32_t b2[4];
    int32_t i, b;
    for (i = 0; i < 3; ++i) {
        const int8_t *wr = w + (size_t)3 * i * c_n + c;
        tab[i][0] = 0;
        tab[i][1] = ts_dw_s2_pairs(ts_read32(wr));
        tab[i][2] = ts_dw_s2_pairs(ts_read32(wr + c_n));
        tab[i][3] = ts_dw_s2_pairs(ts_read32(wr + 2 * c_n));
        tab[i][4] = 0;
    }
    for (i = 0; i < 4; ++i) {
        const ts_rq r = ts_rq_channel(multiplier, shift, (c + i) * step, 2 * p->output_offset + 1);
        b2[i] = (int32_t)(2u * (uint32_t)bias[c + i]);
        cs.q[3 * i] = r.multiplier;
        cs.q[3 * i + 1] = r.bias;
        cs.q[3 * i + 2] = r.right;
    }
    cs.y_rstep = y_rstep;
    cs.x_row = x_row;
    for (i = 0; i < nb; ++i, ++blk) {
        ts_dw_s2_case(&cs, (const uint64_t(*)[5])tab, blk->drow, blk->dcol, b2, od);
        cs.x_next = blk->x_next;
        cs.y_step = blk->y_step;
        cs.y_back = blk->y_back;
        cs.x_rnext = blk->x_rnext;
        for (b = 0; b < p->batches; ++b) {
            cs.y = y + (size_t)b * p->out_h * y_rstep + blk->y + c;
            cs.y_end = cs.y + blk->y_len;
            cs.rows = blk->rows;
            ts_dw_s2_run(&cs, x + (size_t)b * x_img + blk->x + c, c_n);
        }
    }
}

/* The groups of 4 channels of a layer that ts_dw_s2_ok takes: its blocks of one window case (windows cut by the
 * padding read one pixel further in with the weights moved the other way, as ts_dw_group), the same for every
 * group, listed once. (A padded copy of a small image, as ts_dw_group's, measured slower: 5.60 against 5.50
 * instructions/MAC on VWW's 6x6 -> 3x3.) */
static void ts_dw_conv_s2(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, c4 = c_n & ~3, x_row = p->in_w * c_n, y_rstep = p->out_w * c_n;
    ts_dw_s2blk blk[9];
    int32_t nb = 0, oh, ow, nh, nw, c;
    for (oh = 0; oh < p->out_h; oh += nh) {
        const int32_t h0 = 2 * oh - p->pad_top, re = ts_dw_edge(h0, p->in_h);
        const int32_t drow = re == 1 ? 1 : (re == 2 ? -1 : 0);
        nh = ts_dw_span(re, oh, p->out_h, p->in_h, p->pad_top, 2);
        for (ow = 0; ow < p->out_w; ow += nw, ++nb) {
            const int32_t w0 = 2 * ow - p->pad_left, ce = ts_dw_edge(w0, p->in_w);
            const int32_t dcol = ce == 1 ? 1 : (ce == 2 ? -1 : 0);
            nw = ts_dw_span(ce, ow, p->out_w, p->in_w, p->pad_left, 2);
            ts_dw_s2blk *k = &blk[nb];
            k->x = ((h0 + drow) * p->in_w + w0 + dcol) * c_n;
            k->y = (oh * p->out_w + ow) * c_n;
            if (nw == 1) { /* a column of windows: one run down it (no row ends) */
                k->y_len = nh * y_rstep;
                k->x_next = 0;
                k->y_step = y_rstep;
                k->rows = 1;
            } else { /* rows of windows */
                k->y_len = nw * c_n;
                k->x_next = 2 * c_n - 2 * x_row;
                k->y_step = c_n;
                k->rows = nh;
            }
            k->y_back = y_rstep - nw * c_n;
            k->x_rnext = 2 * x_row - 2 * nw * c_n;
            k->drow = drow;
            k->dcol = dcol;
        }
    }
    for (c = 0; c < c4; c += 4) {
        ts_dw_group_s2(p, x, w, c, bias, multiplier, shift, y, blk, nb);
    }
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_S2_DSP_H */
