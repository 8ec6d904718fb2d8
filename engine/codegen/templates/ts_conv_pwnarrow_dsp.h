/* ts_conv_pwnarrow_dsp.h - pointwise convs with 8 or 16 input channels on the DSP path (internal to
 * ts_conv_dsp.c). With K = 8 each output is only 8 MACs, so in the eight-pixel block the per-output work
 * (requantization, store, the block's reloads of every pixel's inputs per channel) cost more than the SMLADs
 * (2.23 instructions per MAC on VWW's 8->16 layer, 1.50 on its 16->32 one). Here one pixel's K inputs stay in
 * registers, widened once, while the channels go by; each channel's weights (widened to int16 and doubled),
 * bias (doubled, the input offset folded in), multiplier, rounding term and right shift come from a table
 * built per call, in order, so that LDM loads them, 8 words at once for K = 8. The doubled accumulator is the
 * 2x that ts_rq_fast's SMMLAR takes, so the requantization is SUB, SMMLAR, ASR, SSAT: per output 4 + 4
 * instructions and a store for K = 8, about 11.3 with the pixel's and the loop's share (1.41 per MAC on
 * VWW's 8->16 layer, 1.18 on its 16->32 one, M4 in QEMU). Same bytes as
 * ts_conv_s8_ref: the accumulator is the same integer (2 * (bias + sum (x + offset) w)), formed in another
 * order, and wrapping SMLADs end exact; the generator's check that sums stay within [-2**30, 2**30) (the
 * full-range form) keeps the doubled one within int32. Linked where a layer can take it
 * (TINYSTUDIO_CONV_NARROW, tinystudio_kernels.h). */
#ifndef TS_CONV_PWNARROW_DSP_H
#define TS_CONV_PWNARROW_DSP_H

#include "ts_dsp.h"

#if TINYSTUDIO_DSP && TINYSTUDIO_CONV_NARROW

/* The table holds up to this many words (on the stack, 768 B: below the depthwise kernel's stack); more
 * channels go in chunks, each over all pixels (24 channels a chunk for K = 8, 16 for K = 16). */
#define TS_PWN_TABLE_WORDS 192

/* The assembly reads the first five fields with one LDM: keep the order. y_skip steps from a pixel's last
 * channel of the chunk to the next pixel's first; mid: the chunk's channel count is 4q + 2. */
typedef struct {
    const int8_t *x, *x_end;
    const uint32_t *table;
    int32_t y_skip;
    int8_t *y;
    int32_t mid;
} ts_pwn_state;

static inline uint32_t ts_pwn_pair(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }

/* The table entries of channels c0 .. c0 + n - 1, K / 2 + 4 words each: for K = 8 the weight words w0..w3,
 * bias, multiplier, rounding term, right shift; for K = 16 the bias first, then w0..w7 and the three (the
 * order the LDMs of the channel loop fill their registers in). Weight word j holds steps 4g + (j & 1) and
 * 4g + 2 + (j & 1), g = j / 2, as the pixel's SXTB16 / SXTB16 ROR 8 words do (ts_conv_s8_w16's words are
 * already in that order). The last channel's shift has bit 31 set: ASR reads only the low byte, the loop
 * ends on the sign. */
static void ts_pwn_table(const ts_conv_params *p, const void *w, int wide, const int32_t *bias,
                         const int32_t *multiplier, const int8_t *shift, int32_t c0, int32_t n, uint32_t *table)
{
    const int32_t k = p->in_c, words = k / 2;
    const uint32_t odd = (uint32_t)(2 * p->output_offset + 1);
    int32_t c, j;
    for (c = 0; c < n; ++c) {
        const int32_t ch = c0 + c, q = p->per_channel ? ch : 0, right = -shift[q];
        uint32_t *const e = table + c * (words + 4), *const wd = e + (k == 8 ? 0 : 1), *const rq = e + words + 1;
        uint32_t sum = 0;
        for (j = 0; j < words; ++j) {
            int32_t lo, hi;
            if (wide) {
                const uint32_t v = ((const uint32_t *)w)[ch * words + j];
                lo = (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu);
                hi = (int32_t)(int16_t)(uint16_t)(v >> 16);
            } else {
                const int8_t *const wc = (const int8_t *)w + ch * k + 4 * (j >> 1) + (j & 1);
                lo = wc[0];
                hi = wc[2];
            }
            sum += (uint32_t)(lo + hi);
            wd[j] = ts_pwn_pair(2 * lo, 2 * hi);
        }
        e[k == 8 ? 4 : 0] = 2u * ((uint32_t)bias[ch] + (uint32_t)p->input_offset * sum);
        rq[0] = (uint32_t)multiplier[q];
        rq[1] = odd << ((right - 1) & 31);
        rq[2] = (uint32_t)right | (c == n - 1 ? 0x80000000u : 0u);
    }
}

#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TINYSTUDIO_EMULATE_DSP)
/* The channel loops: registers named, r4-r11 and lr saved by the block itself (a build may reserve r7 or r9;
 * they are restored before C sees them again), the state copied onto the stack (x, x_end, table, y_skip,
 * the loop's entry at sp). K = 8: the inputs in r0-r3, one LDM of the entry into r4-r11, y in lr, the table
 * pointer in r12. */
#define TS_PWN_CH8                                                                                              \
    "ldm r12!, {r4-r11}\n\t"                                                                                    \
    "smlad r8, r0, r4, r8\n\t"                                                                                  \
    "smlad r8, r1, r5, r8\n\t"                                                                                  \
    "smlad r8, r2, r6, r8\n\t"                                                                                  \
    "smlad r8, r3, r7, r8\n\t"                                                                                  \
    "sub r10, r10, r8, lsr #31\n\t"                                                                             \
    "smmlar r8, r8, r9, r10\n\t"                                                                                \
    "asr r8, r8, r11\n\t"                                                                                       \
    "ssat r8, #8, r8\n\t"                                                                                       \
    "strb r8, [lr], #1\n\t"

/* K = 16: the inputs in r0-r7, the entry through r8-r11 in four LDMs (bias and w0-w2, w3-w5, w6, w7 and the
 * multiplier, the rounding term and the shift). */
#define TS_PWN_CH16                                                                                             \
    "ldm r12!, {r8-r11}\n\t"                                                                                    \
    "smlad r8, r0, r9, r8\n\t"                                                                                  \
    "smlad r8, r1, r10, r8\n\t"                                                                                 \
    "smlad r8, r2, r11, r8\n\t"                                                                                 \
    "ldm r12!, {r9-r11}\n\t"                                                                                    \
    "smlad r8, r3, r9, r8\n\t"                                                                                  \
    "smlad r8, r4, r10, r8\n\t"                                                                                 \
    "smlad r8, r5, r11, r8\n\t"                                                                                 \
    "ldm r12!, {r9-r11}\n\t"                                                                                    \
    "smlad r8, r6, r9, r8\n\t"                                                                                  \
    "smlad r8, r7, r10, r8\n\t"                                                                                 \
    "ldm r12!, {r9, r10}\n\t"                                                                                   \
    "sub r9, r9, r8, lsr #31\n\t"                                                                               \
    "smmlar r8, r8, r11, r9\n\t"                                                                                \
    "asr r8, r8, r10\n\t"                                                                                       \
    "ssat r8, #8, r8\n\t"                                                                                       \
    "strb r8, [lr], #1\n\t"

/* Per pixel: its K bytes (word aligned) by one LDM, widened by SXTB16 (the offset is in the bias), the
 * table pointer back to the chunk's first entry, then into the channel loop (four channels a turn) at its
 * first channel, or at its third when the chunk has 4q + 2 (the entry's address, Thumb bit set, at sp + 16);
 * after the channels, the next pixel or the end. */
#define TS_PWN_LOOP(RAW, WIDEN, CH, LAST)                                                                       \
    __asm__ volatile("push {r4-r11, lr}\n\t"                                                                    \
                     "ldr r4, [r0, #20]\n\t"                                                                  \
                     "ldm r0, {r0-r3, lr}\n\t"                                                                \
                     "adr.w r5, 1f\n\t"                                                                       \
                     "adr.w r6, 3f\n\t"                                                                       \
                     "cmp r4, #0\n\t"                                                                         \
                     "it ne\n\t"                                                                              \
                     "movne r5, r6\n\t"                                                                       \
                     "orr r4, r5, #1\n\t"                                                                     \
                     "push {r0-r4}\n"                                                                          \
                     "2:\n\t"                                                                                 \
                     "ldm r0!, " RAW "\n\t"                                                                   \
                     "str r0, [sp]\n\t"                                                                       \
                     "mov r12, r2\n\t" WIDEN "ldr pc, [sp, #16]\n"                                          \
                     "1:\n\t" CH CH "3:\n\t" CH CH "cmp " LAST ", #0\n\t"                                \
                     "bge 1b\n\t"                                                                             \
                     "ldm sp, {r0-r3}\n\t"                                                                    \
                     "add lr, lr, r3\n\t"                                                                     \
                     "cmp r0, r1\n\t"                                                                         \
                     "bne 2b\n\t"                                                                             \
                     "add sp, sp, #20\n\t"                                                                    \
                     "pop {r4-r11, lr}\n\t"                                                                   \
                     : "+r"(s0)                                                                                 \
                     :                                                                                          \
                     : "r1", "r2", "r3", "r12", "cc", "memory")

static TS_NOINLINE void ts_pwn_run(const ts_pwn_state *s, int32_t k)
{
    register const ts_pwn_state *s0 __asm__("r0") = s;
    if (k == 8) {
        TS_PWN_LOOP("{r8, r9}",
                    "sxtb16 r0, r8\n\tsxtb16 r1, r8, ror #8\n\tsxtb16 r2, r9\n\tsxtb16 r3, r9, ror #8\n",
                    TS_PWN_CH8, "r11");
    } else {
        TS_PWN_LOOP("{r8-r11}",
                    "sxtb16 r0, r8\n\tsxtb16 r1, r8, ror #8\n\tsxtb16 r2, r9\n\tsxtb16 r3, r9, ror #8\n\t"
                    "sxtb16 r4, r10\n\tsxtb16 r5, r10, ror #8\n\tsxtb16 r6, r11\n\tsxtb16 r7, r11, ror #8\n",
                    TS_PWN_CH16, "r10");
    }
}
#else
/* The same loop in C (host tests with the instructions emulated, other compilers). */
static void ts_pwn_run(const ts_pwn_state *s, int32_t k)
{
    const int8_t *x = s->x;
    int8_t *y = s->y;
    const int32_t words = k / 2;
    while (x != s->x_end) {
        uint32_t in[8];
        const uint32_t *e = s->table;
        int32_t j, last;
        for (j = 0; j < k / 4; ++j) {
            const uint32_t v = ts_read32(x + 4 * j);
            in[2 * j] = ts_sxtb16(v);
            in[2 * j + 1] = ts_sxtb16_ror8(v);
        }
        x += k;
        do {
            const uint32_t *const wd = e + (k == 8 ? 0 : 1), *const rq = e + words + 1;
            int32_t a = (int32_t)e[k == 8 ? 4 : 0];
            for (j = 0; j < words; ++j) {
                a = ts_smlad(in[j], wd[j], a);
            }
            a = ts_smmlar(a, (int32_t)rq[0], (int32_t)(rq[1] - ((uint32_t)a >> 31))) >> (rq[2] & 31u);
            *y++ = (int8_t)ts_ssat8(a);
            last = (rq[2] >> 31) != 0;
            e += words + 4;
        } while (!last);
        y += s->y_skip;
    }
}
#endif

/* The layers it takes: 1x1, stride 1, no padding, the output the input's size (all batches one run of
 * pixels), K = in_c of 8 or 16, an even channel count (channels go in pairs), the full-range form (ts_rq_fast,
 * SSAT only) and the input word aligned (LDM). Returns whether it ran the layer. Not inlined: the table's
 * 768 B stay off the stack of the other conv paths. */
static TS_NOINLINE int ts_conv_pwnarrow(const ts_conv_params *p, const int8_t *x, const void *w, int wide,
                                        const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                        int8_t *y)
{
    const int32_t k = p->in_c, n_out = p->out_c, most = (TS_PWN_TABLE_WORDS / (k / 2 + 4)) & ~1;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    uint32_t table[TS_PWN_TABLE_WORDS];
    ts_pwn_state s;
    int32_t c0, n;
    if ((k != 8 && k != 16) || (n_out & 1) || n_out <= 0 || pixels <= 0 || p->k_h != 1 || p->k_w != 1 ||
        p->stride_h != 1 || p->stride_w != 1 || p->pad_top != 0 || p->pad_left != 0 || p->out_h != p->in_h ||
        p->out_w != p->in_w || p->general_requant || p->act_min != -128 || p->act_max != 127 ||
        ((uintptr_t)x & 3u) != 0) {
        return 0;
    }
    for (c0 = 0; c0 < n_out; c0 += n) {
        n = n_out - c0 < most ? n_out - c0 : most;
        ts_pwn_table(p, w, wide, bias, multiplier, shift, c0, n, table);
        s.x = x;
        s.x_end = x + (size_t)pixels * k;
        s.table = table;
        s.y_skip = n_out - n;
        s.y = y + c0;
        s.mid = (n & 2) != 0;
        ts_pwn_run(&s, k);
    }
    return 1;
}

#endif /* TINYSTUDIO_DSP && TINYSTUDIO_CONV_NARROW */

#endif /* TS_CONV_PWNARROW_DSP_H */
