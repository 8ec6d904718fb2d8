/* ts_conv_rgb_dsp.h - 3x3 convolutions over 3 input channels (first layers on RGB images: VWW, IC) on the DSP
 * path, full-range requantization, internal to ts_conv_dsp.c. The general first-layer path (ts_conv_first_dsp.h)
 * spent ~38 instructions per pixel and channel: int8 weights widened again for every block, the K % 4 tail in
 * multiplies of its own, four pixels per weight word. Here the weights are widened once per call, doubled (the
 * accumulators then hold 2x, the shift-left of the requantization is gone) and laid out in the order the window
 * is widened, on the stack; each block of four output pixels multiplies two channels at a time (8 accumulators:
 * every window word serves 2 channels, every weight word 4 pixels), 14 SMLADs per pixel and channel.
 *
 * The window of a pixel (rows r0..r2 of 9 bytes b0..b8) as 14 int16 pairs (input offset added), per row the
 * words at b0 and b4 by SXTAB16 and its ROR 8: (b0, b2) (b1, b3) (b4, b6) (b5, b7); then (r0 b8, r1 b8) from the
 * high halves of the words at r0 b5 and r1 b5 (PKHTB), and (r2 b6, r2 b8) from the word at r2 b5, whose b6 meets
 * a zero weight. Every read stays inside the window's 9 bytes of each row. */
#ifndef TS_CONV_RGB_DSP_H
#define TS_CONV_RGB_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* A block's job for the channel loop: the widened windows (x: 14 groups of 4 words, one per pixel), the prepared
 * weights from the first channel pair to w_end, the block's output (y, its pixels ys bytes apart). The assembly
 * reads the fields at fixed offsets (0, 4, 8, 12, 16). */
typedef struct {
    const uint32_t *x, *w;
    int8_t *y;
    int32_t ys;
    const uint32_t *w_end;
} ts_rgb_job;

/* The layers this kernel takes (ts_conv_dsp.c dispatches them here): 3x3 over 3 channels, no dilation, at least 2
 * output channels, full-range requantization; never where the library switched it off (TINYSTUDIO_CONV_RGB,
 * mirrored by engine/codegen/kernelfiles.py dsp_paths). */
TS_ALWAYS_INLINE int ts_conv_rgb_ok(const ts_conv_params *p)
{
    return TINYSTUDIO_CONV_RGB && p->in_c == 3 && p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 &&
           p->out_c >= 2 &&
           p->act_min == -128 && p->act_max == 127 && !p->general_requant;
}

/* One channel pair's record in the prepared weights (words): 2 x bias (c0, c1), the 14 window words' weights
 * (c0, c1) each, (multiplier, rounding term, right shift) of c0 and of c1, the first channel's index. */
#define TS_RGB_REC 37
/* Window positions (row * 9 + byte) of the low and high half of each widened word (-1: a zero weight). */
static const int8_t ts_rgb_lo[14] = {0, 1, 4, 5, 9, 10, 13, 14, 18, 19, 22, 23, 8, -1};
static const int8_t ts_rgb_hi[14] = {2, 3, 6, 7, 11, 12, 15, 16, 20, 21, 24, 25, 17, 26};

/* ts_pkhtb16: the high half of hi over the high half of lo (PKHTB ... ASR #16); ts_rgb_store2: two words at
 * *dst, which then steps to the next group of 4. (The C twin of the widening below.) */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE uint32_t ts_pkhtb16(uint32_t hi, uint32_t lo) { return (hi & 0xFFFF0000u) | (lo >> 16); }
TS_ALWAYS_INLINE void ts_rgb_store2(uint32_t **dst, uint32_t a, uint32_t b)
{
    ts_write32(*dst, a); /* memcpy: the scratch is declared int16_t */
    ts_write32(*dst + 1, b);
    *dst += 4;
}
#endif

/* The windows of two pixels (row 0 at a and b, rows ra and rb bytes apart) into the block's columns at dst and
 * dst + 1, input offset added: 18 word loads, 2 PKHTB, 28 SXTAB16, 14 STRD. */
#if defined(__GNUC__) && !defined(TINYSTUDIO_EMULATE_DSP)
/* One kernel row of the two windows (pointers r1, r3; offset r5) as 4 groups at r0. */
#define TS_RGB_ROW                                                                                              \
    "ldr r6, [r1]\n\t"                                                                                          \
    "ldr r7, [r3]\n\t"                                                                                          \
    "ldr r8, [r1, #4]\n\t"                                                                                      \
    "ldr r9, [r3, #4]\n\t"                                                                                      \
    "sxtab16 r12, r5, r6\n\t"                                                                                   \
    "sxtab16 lr, r5, r7\n\t"                                                                                    \
    "strd r12, lr, [r0], #16\n\t"                                                                               \
    "sxtab16 r12, r5, r6, ror #8\n\t"                                                                           \
    "sxtab16 lr, r5, r7, ror #8\n\t"                                                                            \
    "strd r12, lr, [r0], #16\n\t"                                                                               \
    "sxtab16 r12, r5, r8\n\t"                                                                                   \
    "sxtab16 lr, r5, r9\n\t"                                                                                    \
    "strd r12, lr, [r0], #16\n\t"                                                                               \
    "sxtab16 r12, r5, r8, ror #8\n\t"                                                                           \
    "sxtab16 lr, r5, r9, ror #8\n\t"                                                                            \
    "strd r12, lr, [r0], #16\n\t"

/* Naked, straight-line: GCC's version of the C below kept ~14 instructions of spills and argument moves. */
static __attribute__((naked, noinline)) void ts_rgb_widen2(uint32_t *dst __attribute__((unused)),
                                                           const int8_t *a __attribute__((unused)),
                                                           int32_t ra __attribute__((unused)),
                                                           const int8_t *b __attribute__((unused)),
                                                           int32_t rb __attribute__((unused)),
                                                           uint32_t off __attribute__((unused)))
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldrd r4, r5, [sp, #36]\n\t"
                     "ldr r10, [r1, #5]\n\t"
                     "ldr r11, [r3, #5]\n\t" TS_RGB_ROW "add r1, r1, r2\n\t"
                     "add r3, r3, r4\n\t" TS_RGB_ROW "ldr r6, [r1, #5]\n\t"
                     "ldr r7, [r3, #5]\n\t"
                     "pkhtb r10, r6, r10, asr #16\n\t"
                     "pkhtb r11, r7, r11, asr #16\n\t"
                     "add r1, r1, r2\n\t"
                     "add r3, r3, r4\n\t" TS_RGB_ROW "sxtab16 r12, r5, r10, ror #8\n\t"
                     "sxtab16 lr, r5, r11, ror #8\n\t"
                     "strd r12, lr, [r0], #16\n\t"
                     "ldr r6, [r1, #5]\n\t"
                     "ldr r7, [r3, #5]\n\t"
                     "sxtab16 r12, r5, r6, ror #8\n\t"
                     "sxtab16 lr, r5, r7, ror #8\n\t"
                     "strd r12, lr, [r0], #16\n\t"
                     "pop {r4-r11, pc}\n\t");
}
#else
/* One kernel row of two windows (a, b) as 4 groups of the block at *dst. */
TS_ALWAYS_INLINE void ts_rgb_row2(uint32_t **dst, const int8_t *a, const int8_t *b, uint32_t off)
{
    const uint32_t a0 = ts_read32(a), b0 = ts_read32(b), a1 = ts_read32(a + 4), b1 = ts_read32(b + 4);
    ts_rgb_store2(dst, ts_sxtab16(off, a0), ts_sxtab16(off, b0));
    ts_rgb_store2(dst, ts_sxtab16_ror8(off, a0), ts_sxtab16_ror8(off, b0));
    ts_rgb_store2(dst, ts_sxtab16(off, a1), ts_sxtab16(off, b1));
    ts_rgb_store2(dst, ts_sxtab16_ror8(off, a1), ts_sxtab16_ror8(off, b1));
}

static void ts_rgb_widen2(uint32_t *dst, const int8_t *a, int32_t ra, const int8_t *b, int32_t rb, uint32_t off)
{
    const int8_t *const a1 = a + ra, *const a2 = a1 + ra, *const b1 = b + rb, *const b2 = b1 + rb;
    ts_rgb_row2(&dst, a, b, off);
    ts_rgb_row2(&dst, a1, b1, off);
    ts_rgb_row2(&dst, a2, b2, off);
    ts_rgb_store2(&dst, ts_sxtab16_ror8(off, ts_pkhtb16(ts_read32(a1 + 5), ts_read32(a + 5))),
                  ts_sxtab16_ror8(off, ts_pkhtb16(ts_read32(b1 + 5), ts_read32(b + 5))));
    ts_rgb_store2(&dst, ts_sxtab16_ror8(off, ts_read32(a2 + 5)), ts_sxtab16_ror8(off, ts_read32(b2 + 5)));
}
#endif

/* The window at (h0, w0) cut by the image's border gathered into tmp (27 bytes, rows 9 apart; the zero point
 * outside the image); a row cut only above or below is copied as two words and a byte. */
static TS_NOINLINE void ts_rgb_gather(const ts_conv_params *p, const int8_t *img, int32_t h0, int32_t w0, int8_t *tmp)
{
    const int32_t in_h = p->in_h, in_w = p->in_w;
    const int32_t lo = w0 < 0 ? -3 * w0 : 0, hi = w0 + 3 > in_w ? 3 * (in_w - w0) : 9;
    const uint32_t zp4 = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
    int32_t i, c;
    for (i = 0; i < 7; ++i) {
        ts_write32(tmp + 4 * i, zp4);
    }
    for (i = 0; i < 3; ++i) {
        const int32_t ih = h0 + i, at = (ih * in_w + w0) * 3;
        int8_t *const t = tmp + 9 * i;
        if (ih < 0 || ih >= in_h) {
            continue;
        }
        if (lo == 0 && hi == 9) {
            ts_write32(t, ts_read32(img + at));
            ts_write32(t + 4, ts_read32(img + at + 4));
            t[8] = img[at + 8];
            continue;
        }
        for (c = lo; c < hi; ++c) {
            t[c] = img[at + c];
        }
    }
}

/* Weight i (window position row * 9 + byte) of channel c: int8 weights (27 per channel), or ts_conv_s8_w16's
 * pre-widened words (14 per channel: per 4 steps the pairs (k0, k2), (k1, k3), then the tail of 3). */
TS_ALWAYS_INLINE int32_t ts_rgb_weight(const void *w, int wide, int32_t c, int32_t i)
{
    if (wide) {
        const int32_t j = i & 3, h = i < 24 ? (i & ~3) + ((j & 1) << 1 | j >> 1) : i;
        return ts_w16_half((const uint32_t *)w + 14 * c, h);
    }
    return ((const int8_t *)w)[27 * c + i];
}

/* The record of channels c0, c0 + 1 (ts_rgb_block's order): biases and int16 weights doubled (the generator keeps
 * every accumulator within 2**30, so 2x fits), the rounding term odd << (right - 1) of ts_rq_channel. */
static TS_NOINLINE void ts_rgb_prepare(uint32_t *rec, const ts_conv_params *p, const void *w, int wide,
                                       const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                       int32_t c0)
{
    const uint32_t odd = (uint32_t)(2 * p->output_offset + 1);
    int32_t j, k;
    for (j = 0; j < 2; ++j) {
        const int32_t ch = p->per_channel ? c0 + j : 0, right = -shift[ch];
        rec[j] = (uint32_t)bias[c0 + j] << 1;
        for (k = 0; k < 14; ++k) {
            const int32_t lo = ts_rgb_lo[k] < 0 ? 0 : 2 * ts_rgb_weight(w, wide, c0 + j, ts_rgb_lo[k]);
            const int32_t hi = 2 * ts_rgb_weight(w, wide, c0 + j, ts_rgb_hi[k]);
            rec[2 + 2 * k + j] = ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
        }
        rec[30 + 3 * j] = (uint32_t)multiplier[ch];
        rec[31 + 3 * j] = odd << ((right - 1) & 31);
        rec[32 + 3 * j] = (uint32_t)right;
    }
    rec[36] = (uint32_t)c0;
}

#if defined(__GNUC__) && !defined(TINYSTUDIO_EMULATE_DSP)
/* One window word k (byte offset 16 k of the block) of the four pixels times the pair's weights: accumulators
 * r0-r3 (c0, pixels 0-3) and r4-r7 (c1), weights r8 r9, window words r10 r11, block r12, records lr. */
#define TS_RGB_K(OFF0, OFF1)                                                                                    \
    "ldrd r8, r9, [lr], #8\n\t"                                                                                 \
    "ldrd r10, r11, [r12, #" OFF0 "]\n\t"                                                                       \
    "smlad r0, r10, r8, r0\n\t"                                                                                 \
    "smlad r4, r10, r9, r4\n\t"                                                                                 \
    "smlad r1, r11, r8, r1\n\t"                                                                                 \
    "smlad r5, r11, r9, r5\n\t"                                                                                 \
    "ldrd r10, r11, [r12, #" OFF1 "]\n\t"                                                                       \
    "smlad r2, r10, r8, r2\n\t"                                                                                 \
    "smlad r6, r10, r9, r6\n\t"                                                                                 \
    "smlad r3, r11, r8, r3\n\t"                                                                                 \
    "smlad r7, r11, r9, r7\n\t"
/* ts_rq_fast and SSAT of the doubled accumulator A: multiplier r8, rounding term r9, right shift r10. */
#define TS_RGB_RQ(A)                                                                                            \
    "sub r11, r9, " A ", lsr #31\n\t"                                                                           \
    "smmlar " A ", " A ", r8, r11\n\t"                                                                          \
    "asr " A ", " A ", r10\n\t"                                                                                 \
    "ssat " A ", #8, " A "\n\t"

/* The block's channel pairs, one loop turn each: the first window word starts the accumulators from the biases
 * (pixels 2, 3, then 1, 0, the bias registers last), 13 more words, the requantization, the 8 bytes stored at
 * y + c0 + pixel * ys. All 14 registers besides sp: naked, so the assembly saves what it uses itself (r7 and r9
 * included, which a build may reserve); 206 instructions per pair (the C loop of ts_conv_first_dsp.h: ~300). */
static __attribute__((naked, noinline)) void ts_rgb_block(const ts_rgb_job *job __attribute__((unused)))
{
    __asm__ volatile("push {r0, r4-r11, lr}\n\t"
                     "ldrd r12, lr, [r0]\n"
                     "1:\n\t"
                     "ldrd r0, r4, [lr], #8\n\t"
                     "ldrd r8, r9, [lr], #8\n\t"
                     "ldrd r10, r11, [r12, #8]\n\t"
                     "smlad r2, r10, r8, r0\n\t"
                     "smlad r6, r10, r9, r4\n\t"
                     "smlad r3, r11, r8, r0\n\t"
                     "smlad r7, r11, r9, r4\n\t"
                     "ldrd r10, r11, [r12]\n\t"
                     "smlad r1, r11, r8, r0\n\t"
                     "smlad r5, r11, r9, r4\n\t"
                     "smlad r0, r10, r8, r0\n\t"
                     "smlad r4, r10, r9, r4\n\t" TS_RGB_K("16", "24") TS_RGB_K("32", "40") TS_RGB_K("48", "56")
                         TS_RGB_K("64", "72") TS_RGB_K("80", "88") TS_RGB_K("96", "104") TS_RGB_K("112", "120")
                             TS_RGB_K("128", "136") TS_RGB_K("144", "152") TS_RGB_K("160", "168")
                                 TS_RGB_K("176", "184") TS_RGB_K("192", "200") TS_RGB_K("208", "216")
                     "ldm lr!, {r8, r9, r10}\n\t" TS_RGB_RQ("r0") TS_RGB_RQ("r1") TS_RGB_RQ("r2") TS_RGB_RQ("r3")
                     "ldm lr!, {r8, r9, r10}\n\t" TS_RGB_RQ("r4") TS_RGB_RQ("r5") TS_RGB_RQ("r6") TS_RGB_RQ("r7")
                     "ldr r12, [sp]\n\t"
                     "ldr r11, [lr], #4\n\t"
                     "ldrd r8, r9, [r12, #8]\n\t"
                     "add r8, r8, r11\n\t"
                     "strb r0, [r8]\n\t"
                     "strb r4, [r8, #1]\n\t"
                     "add r8, r8, r9\n\t"
                     "strb r1, [r8]\n\t"
                     "strb r5, [r8, #1]\n\t"
                     "add r8, r8, r9\n\t"
                     "strb r2, [r8]\n\t"
                     "strb r6, [r8, #1]\n\t"
                     "add r8, r8, r9\n\t"
                     "strb r3, [r8]\n\t"
                     "strb r7, [r8, #1]\n\t"
                     "ldr r9, [r12, #16]\n\t"
                     "ldr r12, [r12]\n\t"
                     "cmp lr, r9\n\t"
                     "bne 1b\n\t"
                     "pop {r0, r4-r11, pc}\n\t");
}
#else
/* The same arithmetic in C (host tests with the DSP instructions emulated, compilers without GNU asm). */
static void ts_rgb_block(const ts_rgb_job *job)
{
    const uint32_t *w = job->w;
    int32_t a[2][4], j, k, q;
    for (; w != job->w_end; w += TS_RGB_REC) {
        for (j = 0; j < 2; ++j) {
            for (q = 0; q < 4; ++q) {
                a[j][q] = (int32_t)w[j];
                for (k = 0; k < 14; ++k) {
                    a[j][q] = ts_smlad(ts_read32(job->x + 4 * k + q), w[2 + 2 * k + j], a[j][q]);
                }
            }
        }
        for (j = 0; j < 2; ++j) {
            const uint32_t *const c = w + 30 + 3 * j;
            for (q = 0; q < 4; ++q) {
                const int32_t v = a[j][q];
                const int32_t r = ts_smmlar(v, (int32_t)c[0], (int32_t)(c[1] - ((uint32_t)v >> 31))) >> c[2];
                job->y[(int32_t)w[36] + j + q * job->ys] = (int8_t)ts_ssat8(r);
            }
        }
    }
}
#endif

/* The layer: channels eight at a time (their records in the scratch after the windows, 592 bytes, so that the
 * stack stays shallow: emit_conv.RGB_SCRATCH_BYTES reserves 816 in all; an odd count's last pair overlaps
 * the one before, a last single channel its predecessor), then each output row in blocks of four pixels (the
 * last moved back to overlap the one before; rows narrower than 4 pixels: each pixel alone, four times over, ys
 * 0), so that a block never crosses a row: inside the image its windows are a fixed step apart. Needs out_c >= 2
 * and 56 + 4 x 37 words of scratch; w: int8 weights, or (wide) ts_conv_s8_w16's words. */
static TS_NOINLINE void ts_conv_rgb_dsp(const ts_conv_params *p, const int8_t *x, const void *w, int wide,
                                        const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                        int8_t *y, int16_t *scratch)
{
    /* the geometry in locals: the int8 stores of the gather could alias p */
    const int32_t in_h = p->in_h, in_w = p->in_w, out_h = p->out_h, out_w = p->out_w, sh = p->stride_h;
    const int32_t sw = p->stride_w, pt = p->pad_top, pl = p->pad_left, rw = 3 * in_w, step = 3 * sw;
    const int32_t n_out = p->out_c, alone = out_w < 4, batches = p->batches;
    const uint32_t off = ts_dup16(p->input_offset);
    uint32_t *const xb = (uint32_t *)(void *)scratch, *const recs = xb + 56;
    int8_t tmp[2][28];
    const int8_t *base[2];
    int32_t row[2], c_lo, b, oh, ow, i;
    ts_rgb_job job;
    job.x = xb;
    job.w = recs;
    job.ys = alone ? 0 : n_out;
    for (c_lo = 0; c_lo < n_out; c_lo += 8) {
        const int32_t c_first = n_out - c_lo == 1 ? c_lo - 1 : c_lo, n = n_out - c_first < 8 ? n_out - c_first : 8;
        for (i = 0; 2 * i < n; ++i) {
            ts_rgb_prepare(recs + TS_RGB_REC * i, p, w, wide, bias, multiplier, shift,
                           c_first + (2 * i + 2 <= n ? 2 * i : n - 2));
        }
        job.w_end = recs + TS_RGB_REC * i;
        for (b = 0; b < batches; ++b) {
            const int8_t *const img = x + (size_t)b * in_h * rw;
            for (oh = 0; oh < out_h; ++oh) {
                const int32_t h0 = oh * sh - pt, rows_in = h0 >= 0 && h0 + 3 <= in_h;
                const int8_t *const img_row = img + (size_t)(rows_in ? h0 : 0) * rw;
                int8_t *const y_row = y + ((size_t)b * out_h + oh) * out_w * n_out;
                for (ow = 0; ow < out_w; ow += alone ? 1 : 4) {
                    int32_t w0 = ow * sw - pl, o0;
                    /* the run of blocks whose four windows lie inside the image, step bytes apart */
                    while (!alone && rows_in && ow + 4 <= out_w && w0 >= 0 && w0 + 3 * sw + 3 <= in_w) {
                        const int8_t *const at = img_row + 3 * w0;
                        ts_rgb_widen2(xb, at, rw, at + step, rw, off);
                        ts_rgb_widen2(xb + 2, at + 2 * step, rw, at + 3 * step, rw, off);
                        job.y = y_row + (size_t)ow * n_out;
                        ts_rgb_block(&job);
                        ow += 4;
                        w0 += 4 * sw;
                    }
                    if (ow >= out_w) {
                        break;
                    }
                    /* a block with windows cut by the border (or moved back to end the row) */
                    o0 = alone || ow + 4 <= out_w ? ow : out_w - 4;
                    w0 = o0 * sw - pl;
                    job.y = y_row + (size_t)o0 * n_out;
                    for (i = 0; i < 4; ++i) {
                        const int32_t k = i & 1, wi = alone ? w0 : w0 + i * sw;
                        if (rows_in && wi >= 0 && wi + 3 <= in_w) {
                            base[k] = img_row + 3 * wi;
                            row[k] = rw;
                        } else {
                            ts_rgb_gather(p, img, h0, wi, tmp[k]);
                            base[k] = tmp[k];
                            row[k] = 9;
                        }
                        if (k) {
                            ts_rgb_widen2(xb + i - 1, base[0], row[0], base[1], row[1], off);
                        }
                    }
                    ts_rgb_block(&job);
                }
            }
        }
    }
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_CONV_RGB_DSP_H */
