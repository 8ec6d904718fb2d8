/* ts_conv_im2col_dsp.h - the int16 im2col blocks of the DSP regular convolution (internal to ts_conv_dsp.c):
 * four output pixels' receptive fields, input offset added, in the order the SMLAD loop reads; first layers
 * (1 or 3 input channels) expand windows inside the image straight from it one or two words per 4-step group,
 * and, on the target, their K % 4 tail runs in 8 multiplies in their own block function
 * (ts_conv_block_first_asm, ts_conv_first_dsp.h). */
#ifndef TS_CONV_IM2COL_DSP_H
#define TS_CONV_IM2COL_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* The two words of one group of the block at *dst, which then steps to the next group (16 int16 on): one STRD
 * with post-increment on the target (GCC wrote two STRs and an ADD). dst is word aligned. */
/* ts_pkhbt: the low half of lo, the high half of hi; ts_bfi8: v with byte 0 from b. One PKHBT or BFI on the
 * target (GCC wrote a mask, UXTH or BIC and ORR: the 3x3x3 window's row-crossing groups and tail). */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
TS_ALWAYS_INLINE void ts_store_group(int16_t **dst, uint32_t a, uint32_t b)
{
    ts_write32(*dst, a);
    ts_write32(*dst + 2, b);
    *dst += 16;
}
TS_ALWAYS_INLINE uint32_t ts_pkhbt(uint32_t lo, uint32_t hi) { return (lo & 0xFFFFu) | (hi & 0xFFFF0000u); }
TS_ALWAYS_INLINE uint32_t ts_bfi8(uint32_t v, uint32_t b) { return (v & ~0xFFu) | (b & 0xFFu); }
#else
TS_ALWAYS_INLINE void ts_store_group(int16_t **dst, uint32_t a, uint32_t b)
{
    __asm__("strd %2, %3, [%0], #32" : "+r"(*dst), "=m"(*(int16_t(*)[4]) * dst) : "r"(a), "r"(b));
}
TS_ALWAYS_INLINE uint32_t ts_pkhbt(uint32_t lo, uint32_t hi)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}
TS_ALWAYS_INLINE uint32_t ts_bfi8(uint32_t v, uint32_t b)
{
    __asm__("bfi %0, %1, #0, #8" : "+r"(v) : "r"(b));
    return v;
}
#endif

/* n4 groups of 4 input bytes from src, input offset added, into consecutive groups at *dst: per group
 * (x0 + o, x2 + o) then (x1 + o, x3 + o), the order in which SXTB16 of a weight word and of its ROR-8 pair up
 * with the two words (see below). */
TS_ALWAYS_INLINE void ts_expand_run(int16_t **dst, const int8_t *src, int32_t n4, uint32_t offset)
{
    const int8_t *const end = src + 4 * n4;
    while (src != end) {
        const uint32_t v = ts_read32(src);
        src += 4;
        ts_store_group(dst, ts_sxtab16(offset, v), ts_sxtab16_ror8(offset, v));
    }
}

/* First layers (in_c 1 or 3, dilation 1): a window inside the image is expanded straight from the image, one
 * or two unaligned words per 4-step group, instead of being gathered byte-wise into tmp first. The groups walk
 * the window's kernel rows (n = k_w * in_c bytes each, a row of the image apart); a group that crosses into
 * the next kernel row with m bytes left takes its low m bytes from the word at the current position and the
 * others from the word that starts m bytes before the next row (inside the image: that row is not the
 * window's first); the K % 4 tail (the end of the last kernel row) goes pixel by pixel as in the gather.
 * Returns how the layer can (0: not; in_c % 4 != 0, no dilation, kernel rows of at least a word): 3 for
 * 3x3 kernels over 3 channels (the groups at fixed places, ts_conv_direct_3x3x3), 2 for kernel rows of whole
 * words (ts_conv_direct_words), 1 for the walk of ts_conv_direct_window. No state beyond the flag (the
 * out-of-line ts_conv_direct below adds its 48-byte frame to the conv kernel's stack). */
TS_ALWAYS_INLINE int ts_conv_direct_ok(const ts_conv_params *p)
{
    const int32_t n = p->k_w * p->in_c;
    if ((p->in_c & 3) == 0 || p->dil_h != 1 || p->dil_w != 1 || n < 4) {
        return 0;
    }
    if (p->in_c == 3 && p->k_w == 3 && p->k_h == 3) {
        return 3;
    }
    return (n & 3) == 0 ? 2 : 1;
}

/* One group (bytes x0..x3 of v) into the block at *dst, input offset added. */
TS_ALWAYS_INLINE void ts_expand_group(int16_t **dst, uint32_t v, uint32_t offset)
{
    ts_store_group(dst, ts_sxtab16(offset, v), ts_sxtab16_ror8(offset, v));
}

/* The window of a 3x3 kernel over 3 channels (K = 27, kernel rows r0, r1, r2 of 9 bytes, `row` apart): the
 * groups 0-3, 4-7, 8 | 0-2, 3-6, 7-8 | 0-1, 2-5 of the rows, and the tail 6-8 of the last (from the word 5-8,
 * byte 5 dropped). A group across two rows takes the bytes before r1 or r2 from the word that ends there (inside
 * the image: r0 and r1 precede). */
TS_ALWAYS_INLINE void ts_conv_direct_3x3x3(const int8_t *r0, int32_t row, int16_t *dst, int16_t *tail_dst,
                                           uint32_t offset)
{
    const int8_t *const r1 = r0 + row, *const r2 = r1 + row;
    ts_expand_group(&dst, ts_read32(r0), offset);
    ts_expand_group(&dst, ts_read32(r0 + 4), offset);
    ts_expand_group(&dst, ts_bfi8(ts_read32(r1 - 1), (uint8_t)r0[8]), offset);
    ts_expand_group(&dst, ts_read32(r1 + 3), offset);
    ts_expand_group(&dst, ts_pkhbt(ts_read32(r1 + 7), ts_read32(r2 - 2)), offset);
    ts_expand_group(&dst, ts_read32(r2 + 2), offset);
    {
        /* the tail from the word ending at r2[8]: (r2[5], r2[7]) and (r2[6], r2[8]) with the offset */
        const uint32_t v = ts_read32(r2 + 5), a = ts_sxtab16(offset, v), b = ts_sxtab16_ror8(offset, v);
        ts_write32(tail_dst, ts_pkhbt(b, a));
        tail_dst[2] = (int16_t)(b >> 16);
    }
}

/* The window whose kernel rows are whole words (n = k_w * in_c, n % 4 == 0: 10x4 over 1 channel): no group
 * crosses a row, no tail. */
TS_ALWAYS_INLINE void ts_conv_direct_words(const ts_conv_params *p, const int8_t *base, int32_t row,
                                           int16_t *dst, uint32_t offset)
{
    const int32_t n4 = (p->k_w * p->in_c) >> 2;
    int32_t i;
    for (i = 0; i < p->k_h; ++i, base += row) {
        ts_expand_run(&dst, base, n4, offset);
    }
}

/* The groups of the window at `base` (ts_conv_direct_ok) into the block at dst (16 int16 apart), the tail's
 * steps into tail_dst. */
TS_ALWAYS_INLINE void ts_conv_direct_window(const ts_conv_params *p, const int8_t *base, int32_t row,
                                            int16_t *dst, int16_t *tail_dst, uint32_t offset, int32_t input_offset)
{
    const int32_t n = p->k_w * p->in_c, k_all = p->k_h * n, k4 = k_all & ~3;
    const int32_t tail = k_all - k4;
    const int16_t *const end = dst + 4 * k4;
    int32_t j = 0, k;
    for (; dst != end; dst += 16) {
        const int32_t left = n - j;
        uint32_t v = ts_read32(base + j);
        if (left > 4) {
            j += 4;
        } else if (left == 4) {
            base += row;
            j = 0;
        } else {
            const uint32_t mask = (1u << (8 * left)) - 1u;
            base += row;
            v = (v & mask) | (ts_read32(base - left) & ~mask);
            j = 4 - left;
        }
        ts_write32(dst, ts_sxtab16(offset, v));
        ts_write32(dst + 2, ts_sxtab16_ror8(offset, v));
    }
    for (k = 0; k < tail; ++k) {
        tail_dst[k] = (int16_t)(base[j + k] + input_offset);
    }
}

/* A window at the image's border whose kernel rows are one word each (k_w * in_c = 4: 10x4 over 1 channel;
 * KWS has more than half of its windows there): a row above or below the image is a zero group (the zero
 * point plus the input offset); a row cut by c < 4 bytes on one side is the word at the image row's start
 * shifted up by c bytes (left) or the word at its end shifted down (right), the zero point in the cut bytes.
 * Returns 0 (the window is gathered instead) for a row cut on both sides or by a whole word, or image rows
 * narrower than a word. */
TS_ALWAYS_INLINE int ts_conv_edge_words(const ts_conv_params *p, const int8_t *img, int32_t h0, int32_t w0,
                                        int16_t *dst, uint32_t offset)
{
    const int32_t c_n = p->in_c, row = p->in_w * c_n;
    const int32_t left = w0 < 0 ? -w0 * c_n : 0, right = w0 + p->k_w > p->in_w ? (w0 + p->k_w - p->in_w) * c_n : 0;
    const uint32_t zp = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
    int32_t ih;
    if ((left && right) || left >= 4 || right >= 4 || row < 4) {
        return 0;
    }
    for (ih = h0; ih < h0 + p->k_h; ++ih) {
        const int8_t *src;
        uint32_t v;
        if (ih < 0 || ih >= p->in_h) {
            ts_store_group(&dst, 0, 0);
            continue;
        }
        src = img + (size_t)ih * row;
        if (left) {
            v = (ts_read32(src) << (8 * left)) | (zp >> (32 - 8 * left));
        } else if (right) {
            v = (ts_read32(src + row - 4) >> (8 * right)) | (zp << (32 - 8 * right));
        } else {
            v = ts_read32(src + w0 * c_n);
        }
        ts_expand_group(&dst, v, offset);
    }
    return 1;
}

/* A window expanded by the layer's `direct` kind, its kernel rows `row` bytes apart: inside the image (a row of
 * the image) or gathered into tmp (k_w * in_c). One function for the callers below: the library's code size. */
static TS_NOINLINE void ts_conv_direct(const ts_conv_params *p, const int8_t *base, int32_t row, int16_t *dst,
                                       int16_t *tail_dst, int direct, uint32_t offset)
{
    if (direct == 3) {
        ts_conv_direct_3x3x3(base, row, dst, tail_dst, offset);
    } else if (direct == 2) {
        ts_conv_direct_words(p, base, row, dst, offset);
    } else {
        ts_conv_direct_window(p, base, row, dst, tail_dst, offset, p->input_offset);
    }
}

/* A 3x3x3 window cut by the image's border: its 27 bytes gathered into tmp (the zero point outside the image),
 * then expanded as one inside an image 3 pixels wide. */
static TS_NOINLINE void ts_conv_clip_3x3x3(const ts_conv_params *p, const int8_t *img, int32_t h0, int32_t w0,
                                           int16_t *dst, int16_t *tail_dst, int8_t *tmp, uint32_t offset)
{
    const int8_t zero_point = (int8_t)(-p->input_offset);
    const uint32_t zp4 = (uint32_t)(uint8_t)zero_point * 0x01010101u;
    const int32_t lo = w0 < 0 ? -3 * w0 : 0, hi = w0 + 3 > p->in_w ? 3 * (p->in_w - w0) : 9;
    int32_t i, c;
    for (i = 0; i < 3; ++i) {
        const int32_t ih = h0 + i;
        int8_t *const t = tmp + 9 * i;
        ts_write32(t, zp4);
        ts_write32(t + 4, zp4);
        t[8] = zero_point;
        if (ih >= 0 && ih < p->in_h) {
            const int8_t *const src = img + (size_t)ih * p->in_w * 3;
            for (c = lo; c < hi; ++c) {
                t[c] = src[3 * w0 + c];
            }
        }
    }
    ts_conv_direct(p, tmp, 9, dst, tail_dst, 3, offset);
}

/* The four windows of a 3x3x3 block inside the image, the first at `base`, then `step` bytes apart: out of line,
 * so that the loop keeps its pointers in registers (inlined in ts_conv_im2col_dsp it spilled them). */
static TS_NOINLINE void ts_conv_row_3x3x3(const int8_t *base, int32_t row, int32_t step, int16_t *block,
                                          uint32_t offset)
{
    int16_t *dst = block, *tail_dst = block + 96;
    for (; dst != block + 16; dst += 4, tail_dst += 3, base += step) {
        ts_conv_direct_3x3x3(base, row, dst, tail_dst, offset);
    }
}

/* The four windows of a 3x3x3 layer's output pixels q0 .. q0 + 3 when they lie in one output row (the common
 * case of first layers, which have few output channels to spread the block's cost over): one division, then
 * four windows inside the image in one call (ts_conv_row_3x3x3), or else window by window, those cut by the
 * border gathered into tmp first. Returns whether it applied. Out of line, called before the general
 * expansion's prologue (ts_conv_im2col_dsp). */
static TS_NOINLINE int ts_conv_direct_row3(const ts_conv_params *p, const int8_t *img, int32_t q0, int16_t *block,
                                           int8_t *tmp)
{
    const uint32_t offset = ts_dup16(p->input_offset);
    const int32_t oh = q0 / p->out_w, ow = q0 - oh * p->out_w, row = p->in_w * 3;
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int rows_in = h0 >= 0 && h0 + 3 <= p->in_h;
    int32_t pix, w = w0;
    if (ow + 3 >= p->out_w) {
        return 0;
    }
    if (rows_in && w0 >= 0 && w0 + 3 * p->stride_w + 3 <= p->in_w) {
        ts_conv_row_3x3x3(img + ((size_t)h0 * p->in_w + w0) * 3, row, 3 * p->stride_w, block, offset);
        return 1;
    }
    for (pix = 0; pix < 4; ++pix, w += p->stride_w) {
        int16_t *const dst = block + 4 * pix, *const tail_dst = block + 96 + 3 * pix;
        if (rows_in && w >= 0 && w + 3 <= p->in_w) {
            ts_conv_direct(p, img + ((size_t)h0 * p->in_w + w) * 3, row, dst, tail_dst, 3, offset);
        } else {
            ts_conv_clip_3x3x3(p, img, h0, w, dst, tail_dst, tmp, offset);
        }
    }
    return 1;
}

/* The four windows of output pixels q0 .. q0 + 3 of the other direct kinds (1, 2) when they lie in one output
 * row and inside the image: one division, then window after window stride_w pixels apart. Returns whether it
 * applied. */
TS_ALWAYS_INLINE int ts_conv_direct_row(const ts_conv_params *p, const int8_t *img, int32_t q0, int16_t *block,
                                        int direct, uint32_t offset)
{
    const int32_t c_n = p->in_c, k_all = p->k_h * p->k_w * c_n, k4 = k_all & ~3, tail = k_all - k4;
    const int32_t oh = q0 / p->out_w, ow = q0 - oh * p->out_w;
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int32_t step = p->stride_w * c_n;
    const int8_t *base;
    int32_t pix;
    if (ow + 3 >= p->out_w || h0 < 0 || h0 + p->k_h > p->in_h || w0 < 0 ||
        w0 + 3 * p->stride_w + p->k_w > p->in_w) {
        return 0;
    }
    base = img + ((size_t)h0 * p->in_w + w0) * c_n;
    for (pix = 0; pix < 4; ++pix, base += step) {
        ts_conv_direct(p, base, p->in_w * c_n, block + 4 * pix, block + 4 * k4 + pix * tail, direct, offset);
    }
    return 1;
}

/* The receptive fields of output pixels q0 .. q0 + 3 (or q0 four times when `same`) as one four-pixel
 * block of int16 (input + offset; taps outside the image are 0, i.e. the zero point). Groups of 4
 * reduction steps hold all four pixels (16 int16 per group, 4 per pixel), each in the order [0, 2, 1, 3]
 * in which SXTB16 of a weight word and of its ROR-8 pair up with the two input words; the K % 4 tail
 * follows, pixel by pixel. With in_c % 4 != 0 each field is first gathered as int8 into `tmp` (or, inside
 * the image, expanded directly: ts_conv_direct_window). */
static void ts_conv_im2col_fields(const ts_conv_params *p, const int8_t *img, int32_t q0, int same, int16_t *block,
                                  int8_t *tmp, int direct)
{
    const int32_t c_n = p->in_c, k_all = p->k_h * p->k_w * c_n, k4 = k_all & ~3, tail = k_all - k4;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int8_t zero_point = (int8_t)(-p->input_offset);
    int32_t pix, i, j, c, k;
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
        p->pad_left == 0 && (c_n & 3) == 0 && p->out_w == p->in_w) {
        /* pointwise: output pixel q reads input pixel q */
        for (pix = 0; pix < 4; ++pix) {
            int16_t *dst = block + 4 * pix;
            ts_expand_run(&dst, img + (size_t)(q0 + (same ? 0 : pix)) * c_n, c_n >> 2, offset);
        }
        return;
    }
    if ((direct == 1 || direct == 2) && !same && ts_conv_direct_row(p, img, q0, block, direct, offset)) {
        return;
    }
    for (pix = 0; pix < 4; ++pix) {
        const int32_t q = q0 + (same ? 0 : pix), oh = q / p->out_w, ow = q - oh * p->out_w;
        const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
        int16_t *dst = block + 4 * pix;
        if ((c_n & 3) == 0) {
            for (i = 0; i < p->k_h; ++i) {
                const int32_t ih = h0 + i * p->dil_h;
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) {
                        for (c = 0; c < c_n; c += 4) {
                            ts_store_group(&dst, 0, 0);
                        }
                    } else {
                        ts_expand_run(&dst, img + ((size_t)ih * p->in_w + iw) * c_n, c_n >> 2, offset);
                    }
                }
            }
            continue;
        }
        if (direct && h0 >= 0 && h0 + p->k_h <= p->in_h && w0 >= 0 && w0 + p->k_w <= p->in_w) {
            ts_conv_direct(p, img + ((size_t)h0 * p->in_w + w0) * c_n, p->in_w * c_n, dst,
                           block + 4 * k4 + pix * tail, direct, offset);
            continue;
        }
        if (direct == 2 && p->k_w * c_n == 4 && ts_conv_edge_words(p, img, h0, w0, dst, offset)) {
            continue;
        }
        /* gather the field as int8, one kernel row at a time (a row's taps are adjacent in NHWC) */
        for (i = 0, k = 0; i < p->k_h; ++i, k += p->k_w * c_n) {
            const int32_t ih = h0 + i * p->dil_h;
            if (ih < 0 || ih >= p->in_h) {
                memset(tmp + k, zero_point, (size_t)(p->k_w * c_n));
            } else if (p->dil_w == 1 && w0 >= 0 && w0 + p->k_w <= p->in_w) {
                const int8_t *src = img + ((size_t)ih * p->in_w + w0) * c_n;
                const int32_t n = p->k_w * c_n;
                for (c = 0; c + 4 <= n; c += 4) {
                    ts_write32(tmp + k + c, ts_read32(src + c));
                }
                for (; c < n; ++c) {
                    tmp[k + c] = src[c];
                }
            } else {
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    const int inside = iw >= 0 && iw < p->in_w;
                    const int8_t *src = img + ((size_t)ih * p->in_w + (inside ? iw : 0)) * c_n;
                    for (c = 0; c < c_n; ++c) {
                        tmp[k + j * c_n + c] = inside ? src[c] : zero_point;
                    }
                }
            }
        }
        ts_expand_run(&dst, tmp, k4 >> 2, offset);
        for (k = 0; k < tail; ++k) {
            block[4 * k4 + pix * tail + k] = (int16_t)(tmp[k4 + k] + p->input_offset);
        }
    }
}

/* The block of output pixels q0 .. q0 + 3 (or q0 four times when `same`): a 3x3x3 layer's row of four windows
 * (ts_conv_direct_row3) without the prologue of the general expansion (ts_conv_im2col_fields), which it calls
 * only when that does not apply. Out of line: inlined into ts_conv_any_dsp, it cost the other layers' blocks
 * about 11 instructions each there (GCC 12, M4). */
static TS_NOINLINE void ts_conv_im2col_dsp(const ts_conv_params *p, const int8_t *img, int32_t q0, int same,
                                           int16_t *block, int8_t *tmp, int direct)
{
    if (direct == 3 && !same && ts_conv_direct_row3(p, img, q0, block, tmp)) {
        return;
    }
    ts_conv_im2col_fields(p, img, q0, same, block, tmp, direct);
}

#endif /* TINYSTUDIO_DSP */

#endif /* TS_CONV_IM2COL_DSP_H */
