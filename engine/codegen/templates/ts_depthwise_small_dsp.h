/* ts_depthwise_small_dsp.h - the DSP depthwise's small-image path (internal to ts_depthwise_dsp.c): a 3x3,
 * stride-1 layer with padding 1 on every side (SAME) in the full-range form, 12, 6 or 3 pixels wide. Most
 * outputs of a 6 x 6 image touch the padding, so the padding is not stored at all: 4 int16 planes hold the
 * image's rows back to back (an odd width gets one zero column so that rows stay word aligned), and the taps
 * that would read the padding are left out of the code instead (first and last output columns one multiply
 * fewer, first and last output rows one window row fewer). The planes are widened once per group of 4 channels
 * (a taller image: per band of rows), then each channel's image or band is one block of inline assembly on the
 * target (ts_depthwise_srows_dsp.h). Same bytes as the ring path: ts_dw_ch's doubled weights (ts_dw_sch) and
 * ts_dw_out's requantization. */
#ifndef TS_DEPTHWISE_SMALL_DSP_H
#define TS_DEPTHWISE_SMALL_DSP_H

#include "ts_depthwise_srows_dsp.h"

#if TINYSTUDIO_DSP

/* Values per channel plane (4 planes: 768 bytes of stack, the frame no larger than the ring's): an image of up
 * to 8 rows of 12, 16 of 6, 24 of 3 at once, a taller one in bands of 6, 14, 22 output rows (and the rows
 * above and below them). */
#define TS_DW_SMALL 96
#define TS_DW_SMALL_BYTES (2 * TS_DW_SMALL)
#define TS_DW_SMALL2_BYTES (4 * TS_DW_SMALL)
#define TS_DW_SMALL3_BYTES (6 * TS_DW_SMALL)

/* Whether the small-image path takes the layer (mode: ts_depthwise_conv_s8_dsp's requantization form): the
 * widths that have assembly (VWW's 12, 6 and 3; ts_dw_small4 picks one of the three), at least 2 rows (the
 * first and the last output row are different rows); never where the library switched it off (TINYSTUDIO_DW_SMALL,
 * mirrored by engine/codegen/kernelfiles.py dsp_paths). */
TS_ALWAYS_INLINE int ts_dw_small_fits(const ts_conv_params *p, int mode)
{
    return TINYSTUDIO_DW_SMALL && mode == 1 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 &&
           p->stride_h == 1 &&
           p->stride_w == 1 && p->pad_top == 1 && p->pad_left == 1 && p->out_h == p->in_h &&
           p->out_w == p->in_w && (p->in_w == 12 || p->in_w == 6 || p->in_w == 3) && p->in_h >= 2;
}

/* (lo of a, lo of b) and (hi of a, hi of b) as int16 pairs: one PKHBT / PKHTB on the target, which GCC makes
 * two instructions of. */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE uint32_t ts_dw_pklo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | b << 16; }
TS_ALWAYS_INLINE uint32_t ts_dw_pkhi(uint32_t a, uint32_t b) { return a >> 16 | (b & 0xFFFF0000u); }
#else
TS_ALWAYS_INLINE uint32_t ts_dw_pklo(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
TS_ALWAYS_INLINE uint32_t ts_dw_pkhi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#endif

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

/* The 4 channels' outputs of a band of n rows from its planes (pl at the plane row of its first output row, fl as
 * ts_dw_srows; one function, so that the assembly has its registers). */
static TS_NOINLINE void ts_dw_small4(const ts_dw_sch *ch, const int16_t *pl, int8_t *y, int32_t ys, int32_t n,
                                     int32_t w, int32_t fl)
{
    const int32_t span = ((w + 1) & ~1) * (n - (fl >> 1)); /* to the end of the middle rows */
    const ts_dw_sch *end = ch + 4;
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
    (void)span;
    for (; ch != end; ++ch, pl += TS_DW_SMALL, ++y) {
        ts_dw_srows(ch, pl, y, ys, n, w, fl);
    }
#else
    if (w == 6) { /* the width chosen once per band */
        for (; ch != end; ++ch, pl += TS_DW_SMALL, ++y) {
            ts_dw_srows6(ch, pl, y, ys, span, fl);
        }
    } else if (w == 12) {
        for (; ch != end; ++ch, pl += TS_DW_SMALL, ++y) {
            ts_dw_srows12(ch, pl, y, ys, span, fl);
        }
    } else {
        for (; ch != end; ++ch, pl += TS_DW_SMALL, ++y) {
            ts_dw_srows3(ch, pl, y, ys, span, fl);
        }
    }
#endif
}

/* A layer that ts_dw_small_fits, groups of 4 channels in one call (the layer's constants loaded once): per
 * group the doubled weights and requantization as in ts_dw_group3 (rows k at w[2 k], w[2 k + 1]), then per
 * image, or band of nb output rows of a taller one, the fill (a band's input rows from the one above to the
 * one below) and the 4 channels. */
static void ts_dw_small(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    const int32_t c_n = p->in_c, step = p->per_channel ? 1 : 0, h = p->in_h, iw = p->in_w, w2 = (iw + 1) & ~1;
    const int32_t n = h * iw, nb = h * w2 <= TS_DW_SMALL ? h : TS_DW_SMALL / w2 - 2, odd = 2 * p->output_offset + 1;
    const uint32_t offset = ts_dup16(p->input_offset);
    union { /* word aligned for the word accesses */
        int16_t v[4][TS_DW_SMALL];
        uint32_t align;
    } pl;
    ts_dw_sch ch[4];
    int32_t c, t, i, b, o0;
    for (c = 0; c < (c_n & ~3); c += 4) {
        for (t = 0; t < 4; ++t) {
            const ts_rq q = ts_rq_channel(multiplier, shift, (c + t) * step, odd);
            ch[t].bias = (int32_t)((uint32_t)bias[c + t] * 2u);
            ch[t].multiplier = q.multiplier;
            ch[t].qbias = q.bias;
            ch[t].right = q.right;
        }
        for (i = 0; i < 3; ++i) { /* the 4 channels' taps of a row at once: SXTAB16 of a word onto its own
                                   * extension doubles it; channels c, c + 2 in e, c + 1, c + 3 in o */
            const int8_t *wr = w + (size_t)(3 * i) * c_n + c;
            const uint32_t v0 = ts_read32(wr), v1 = ts_read32(wr + c_n), v2 = ts_read32(wr + 2 * c_n);
            const uint32_t e0 = ts_sxtab16(ts_sxtb16(v0), v0), o0 = ts_sxtab16_ror8(ts_sxtb16_ror8(v0), v0);
            const uint32_t e1 = ts_sxtab16(ts_sxtb16(v1), v1), o1 = ts_sxtab16_ror8(ts_sxtb16_ror8(v1), v1);
            const uint32_t e2 = ts_sxtab16(ts_sxtb16(v2), v2), o2 = ts_sxtab16_ror8(ts_sxtb16_ror8(v2), v2);
            ch[0].w[2 * i] = ts_dw_pklo(e0, e1);
            ch[0].w[2 * i + 1] = ts_dw_pklo(e1, e2);
            ch[1].w[2 * i] = ts_dw_pklo(o0, o1);
            ch[1].w[2 * i + 1] = ts_dw_pklo(o1, o2);
            ch[2].w[2 * i] = ts_dw_pkhi(e0, e1);
            ch[2].w[2 * i + 1] = ts_dw_pkhi(e1, e2);
            ch[3].w[2 * i] = ts_dw_pkhi(o0, o1);
            ch[3].w[2 * i + 1] = ts_dw_pkhi(o1, o2);
        }
        for (b = 0; b < p->batches; ++b) {
            for (o0 = 0; o0 < h; o0 += nb) {
                const int32_t o1 = o0 + nb < h ? o0 + nb : h, top = o0 == 0, bottom = o1 == h;
                const int32_t i0 = top ? 0 : o0 - 1, i1 = bottom ? h : o1 + 1;
                ts_dw_sfill(pl.v[0], x + ((size_t)b * n + (size_t)i0 * iw) * c_n + c, c_n, offset, i1 - i0, iw);
                ts_dw_small4(ch, pl.v[0] + (top ? 0 : w2), y + ((size_t)b * n + (size_t)o0 * iw) * c_n + c, c_n,
                             o1 - o0, iw, top | bottom << 1);
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DEPTHWISE_SMALL_DSP_H */
