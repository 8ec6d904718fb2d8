/* ts_conv_asm_dsp.h - the DSP regular convolution's channel loops in inline assembly (four- and eight-pixel
 * blocks, full-range requantization, per-channel constants, K % 4 == 0), internal to ts_conv_dsp.c: the block
 * functions, their state, the SMLAD group and requantization macros that ts_conv_first_dsp.h's K % 4 != 0 loop
 * shares, and the table entries ts_conv_dsp.c dispatches by (TS_CONV_BLOCKS, TS_CONV_ASM_OK, TS_CONV_BLOCK8). Kept
 * apart from the C blocks so that each file holds one job. */
#ifndef TS_CONV_ASM_DSP_H
#define TS_CONV_ASM_DSP_H

#include "ts_conv_im2col_dsp.h"

#if TINYSTUDIO_DSP

/* (Optimized builds only: an -O0 build keeps r7 for its frame pointer, and with r9 reserved too, as under
 * -frwpi, the 13 registers are not there.) */
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TINYSTUDIO_EMULATE_DSP)
/* The full-range form on the target, per-channel constants and K % 4 == 0 (every pointwise and most regular
 * convs; the others take the C blocks above): the whole channel loop is one assembly block, because GCC
 * spilled the loop state around the requantization (~65 instructions per channel besides the 24 of the four
 * outputs; here 39 in all). The 13 registers: the 4 accumulators, the block and weight pointers, the two block
 * words, the two weight words (the multiplier and the right shift during the requantization), the loop end
 * (the rounding term), y and the address of the state below, which holds what the loop reads once per
 * channel, in pairs that one LDRD loads. The per-channel arrays are indexed by y itself: their bases minus
 * y's first value (times 4 for the int32 ones), in wrapping unsigned arithmetic. The first group starts the
 * accumulators from the bias (no copies), the others go eight per loop turn (123 instructions per 128 MACs
 * with int8 weights, 126 at four per turn), entered by TBB at group 8 - (count - 1) % 8, or not at all for one
 * group (TBB reaches 510 bytes: the exit is 496 bytes after the table with int8 weights). The requantization is ts_rq_fast's: the rounding term odd << (right - 1) with right - 1 = ~shift
 * (shifts in [-30, -1] in this form). */
typedef struct {
    uintptr_t block, bias, entry, end, multiplier, shift, rq_odd, y_stride, y_end;
} ts_conv_asm_state;

/* One group of 4 reduction steps of the four pixels: the weight words in p and q (WLOAD), 4 LDRDs of the
 * block, 8 SMLADs. */
#define TS_CONV_ASM_GROUP(WLOAD)                                                                                  \
    WLOAD "ldrd %[u], %[v], [%[x]], #8\n\t"                                                                     \
          "smlad %[a0], %[u], %[p], %[a0]\n\t"                                                                  \
          "smlad %[a0], %[v], %[q], %[a0]\n\t"                                                                  \
          "ldrd %[u], %[v], [%[x]], #8\n\t"                                                                     \
          "smlad %[a1], %[u], %[p], %[a1]\n\t"                                                                  \
          "smlad %[a1], %[v], %[q], %[a1]\n\t"                                                                  \
          "ldrd %[u], %[v], [%[x]], #8\n\t"                                                                     \
          "smlad %[a2], %[u], %[p], %[a2]\n\t"                                                                  \
          "smlad %[a2], %[v], %[q], %[a2]\n\t"                                                                  \
          "ldrd %[u], %[v], [%[x]], #8\n\t"                                                                     \
          "smlad %[a3], %[u], %[p], %[a3]\n\t"                                                                  \
          "smlad %[a3], %[v], %[q], %[a3]\n\t"

/* The first group, which starts the accumulators from the bias in a0 (pixels 1 to 3 first, at offsets). */
#define TS_CONV_ASM_FIRST(WLOAD)                                                                                \
    WLOAD "ldrd %[u], %[v], [%[x], #8]\n\t"                                                                    \
          "smlad %[a1], %[u], %[p], %[a0]\n\t"                                                                 \
          "smlad %[a1], %[v], %[q], %[a1]\n\t"                                                                 \
          "ldrd %[u], %[v], [%[x], #16]\n\t"                                                                   \
          "smlad %[a2], %[u], %[p], %[a0]\n\t"                                                                 \
          "smlad %[a2], %[v], %[q], %[a2]\n\t"                                                                 \
          "ldrd %[u], %[v], [%[x], #24]\n\t"                                                                   \
          "smlad %[a3], %[u], %[p], %[a0]\n\t"                                                                 \
          "smlad %[a3], %[v], %[q], %[a3]\n\t"                                                                 \
          "ldrd %[u], %[v], [%[x]], #32\n\t"                                                                   \
          "smlad %[a0], %[u], %[p], %[a0]\n\t"                                                                 \
          "smlad %[a0], %[v], %[q], %[a0]\n\t"

/* int8 weights: one word, SXTB16 of it and of its ROR 8; pre-widened ones: one LDRD. */
#define TS_CONV_ASM_W8                                                                                          \
    "ldr %[q], [%[w]], #4\n\t"                                                                                  \
    "sxtb16 %[p], %[q]\n\t"                                                                                     \
    "sxtb16 %[q], %[q], ror #8\n\t"
#define TS_CONV_ASM_W16 "ldrd %[p], %[q], [%[w]], #8\n\t"

/* ts_rq_fast and SSAT of accumulator A (u, v scratch). */
#define TS_CONV_ASM_RQ(A)                                                                                       \
    "lsl %[u], %[" A "], #1\n\t"                                                                                \
    "sub %[v], %[t], %[" A "], lsr #31\n\t"                                                                     \
    "smmlar %[" A "], %[u], %[p], %[v]\n\t"                                                                     \
    "asr %[" A "], %[" A "], %[q]\n\t"                                                                          \
    "ssat %[" A "], #8, %[" A "]\n\t"

#define TS_CONV_ASM_CHANNELS(WLOAD)                                                                             \
    __asm__ volatile("1:\n\t"                                                                                   \
                     "ldrd %[x], %[t], [%[s]]\n\t"                                                              \
                     "ldr %[a0], [%[t], %[y], lsl #2]\n\t" TS_CONV_ASM_FIRST(WLOAD)                            \
                     "ldrd %[u], %[t], [%[s], #8]\n\t"                                                          \
                     "tbb [pc, %[u]]\n"                                                                       \
                     "4:\n\t"                                                                                   \
                     ".byte (10f - 4b) / 2, (11f - 4b) / 2, (12f - 4b) / 2, (13f - 4b) / 2, (14f - 4b) / 2\n\t" \
                     ".byte (15f - 4b) / 2, (16f - 4b) / 2, (17f - 4b) / 2, (9f - 4b) / 2\n\t"                  \
                     ".p2align 1\n"                                                                             \
                     "10:\n\t" TS_CONV_ASM_GROUP(WLOAD) "11:\n\t" TS_CONV_ASM_GROUP(WLOAD)                     \
                     "12:\n\t" TS_CONV_ASM_GROUP(WLOAD) "13:\n\t" TS_CONV_ASM_GROUP(WLOAD)                     \
                     "14:\n\t" TS_CONV_ASM_GROUP(WLOAD) "15:\n\t" TS_CONV_ASM_GROUP(WLOAD)                     \
                     "16:\n\t" TS_CONV_ASM_GROUP(WLOAD) "17:\n\t" TS_CONV_ASM_GROUP(WLOAD)                     \
                     "cmp %[x], %[t]\n\t"                                                                       \
                     "bne 10b\n"                                                                               \
                     "9:\n\t"                                                                                   \
                     "ldrd %[t], %[v], [%[s], #16]\n\t"                                                         \
                     "ldr %[p], [%[t], %[y], lsl #2]\n\t"                                                       \
                     "ldrsb %[q], [%[v], %[y]]\n\t"                                                             \
                     "ldrd %[t], %[x], [%[s], #24]\n\t"                                                         \
                     "mvn %[u], %[q]\n\t"                                                                       \
                     "lsl %[t], %[t], %[u]\n\t"                                                                 \
                     "rsb %[q], %[q], #0\n\t" TS_CONV_ASM_RQ("a0") TS_CONV_ASM_RQ("a1") TS_CONV_ASM_RQ("a2")    \
                         TS_CONV_ASM_RQ("a3") "strb %[a1], [%[y], %[x]]\n\t"                                  \
                     "add %[v], %[y], %[x], lsl #1\n\t"                                                         \
                     "strb %[a2], [%[v]]\n\t"                                                                   \
                     "strb %[a3], [%[v], %[x]]\n\t"                                                             \
                     "strb %[a0], [%[y]], #1\n\t"                                                               \
                     "ldr %[u], [%[s], #32]\n\t"                                                                \
                     "cmp %[y], %[u]\n\t"                                                                       \
                     "bne 1b\n\t"                                                                               \
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "=&r"(x),         \
                       [u] "=&r"(u), [v] "=&r"(v), [p] "=&r"(pw), [q] "=&r"(qw), [t] "=&r"(t), [w] "+r"(wp), \
                       [y] "+r"(y)                                                                             \
                     : [s] "r"(&st)                                                                             \
                     : "cc", "memory")

TS_ALWAYS_INLINE void ts_conv_asm_state_init(ts_conv_asm_state *st, const ts_conv_params *p, const int16_t *block,
                                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                             const int8_t *y, int32_t y_stride)
{
    const int32_t groups = (p->k_h * p->k_w * p->in_c) >> 2;
    const uintptr_t y0 = (uintptr_t)y;
    st->block = (uintptr_t)block;
    st->end = (uintptr_t)(block + 16 * groups);
    st->entry = (uintptr_t)(groups == 1 ? 8 : (1 - groups) & 7);
    st->bias = (uintptr_t)bias - 4u * y0;
    st->multiplier = (uintptr_t)multiplier - 4u * y0;
    st->shift = (uintptr_t)shift - y0;
    st->rq_odd = (uintptr_t)(2 * p->output_offset + 1);
    st->y_stride = (uintptr_t)y_stride;
    st->y_end = y0 + (uintptr_t)p->out_c;
}

static TS_NOINLINE void ts_conv_block_full_asm(const ts_conv_params *p, const int16_t *block, const void *w,
                                               const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                               int8_t *y, int32_t y_stride)
{
    ts_conv_asm_state st;
    const void *wp = w;
    uint32_t a0, a1, a2, a3, u, v, pw, qw, t;
    const int16_t *x;
    ts_conv_asm_state_init(&st, p, block, bias, multiplier, shift, y, y_stride);
    TS_CONV_ASM_CHANNELS(TS_CONV_ASM_W8);
}

static TS_NOINLINE void ts_conv_block_w16_full_asm(const ts_conv_params *p, const int16_t *block,
                                                   const void *w, const int32_t *bias, const int32_t *multiplier,
                                                   const int8_t *shift, int8_t *y, int32_t y_stride)
{
    ts_conv_asm_state st;
    const void *wp = w;
    uint32_t a0, a1, a2, a3, u, v, pw, qw, t;
    const int16_t *x;
    ts_conv_asm_state_init(&st, p, block, bias, multiplier, shift, y, y_stride);
    TS_CONV_ASM_CHANNELS(TS_CONV_ASM_W16);
}

/* (Linked where the library has a layer that can take it: TINYSTUDIO_CONV_EIGHT, tinystudio_kernels.h.) */
#if TINYSTUDIO_CONV_EIGHT
/* Pointwise layers (1x1, stride 1, no padding, K = in_c % 4 == 0, K <= 128) take eight-pixel blocks: per group
 * of 4 reduction steps 1 weight load, 2 SXTB16 (or one LDRD of wide weights), 8 LDRDs of the block and 16
 * SMLADs, i.e. 27 instructions per 32 MACs instead of 31 with four pixels. The loop needs 14 registers: the 8
 * accumulators, the block and weight pointers, two block words and two weight words. A build may reserve r7
 * (-fno-omit-frame-pointer) or r9 (-ffixed-r9), so the operands are pinned to the 12 others and the block words
 * are r7 and r9 themselves, saved and restored by the block; the per-channel state (ts_conv_asm8_state, same
 * order) is copied onto the stack below them and read sp-relative, the loop end into a weight register after
 * its group; sixteen groups per loop turn, entered at group 16 - (count - 1) % 16 by LDR PC of the entry's
 * address, which the block finds once in its table of halfword offsets (one instruction per channel, TBH two;
 * one loop test per 432 instructions: K = 128 has up to 31 groups; ~870 bytes more code than 8). The
 * 8 x K int16 block: K <= 128 keeps the library's extra scratch within 1 KB (engine/codegen/emit_conv.py
 * im2col_scratch_bytes sizes it; K = 256 measured 0.95 instructions per MAC on VWW's last layer against 1.03 in
 * four-pixel blocks, for twice VWW's scratch, 4 KB). The four-pixel block's arithmetic on twice the sums: ts_conv_expand8 leaves 2 (x + offset) in the
 * block (one SXTAB16 more per half word, once per pixel) and the bias is doubled, so that the accumulators hold
 * the 2x ts_rq_fast multiplies (|x| < 2**30 in this form: no overflow; SMLAD's partial sums wrap exactly) and
 * the requantization is 4 instructions per output instead of 5. */
typedef struct {
    uintptr_t block, entry, end, bias, y, multiplier, shift, rq_odd, y_stride, y_end;
} ts_conv_asm8_state;

/* One group of the eight pixels, or the first one, which starts the accumulators from the bias in a0. */
#define TS_CONV_ASM8_PIX(A, OFF)                                                                                \
    "ldrd r7, r9, [%[x], #" OFF "]\n\t"                                                                        \
    "smlad %[" A "], r7, %[p], %[" A "]\n\t"                                                                   \
    "smlad %[" A "], r9, %[q], %[" A "]\n\t"
#define TS_CONV_ASM8_PIX0(A, OFF)                                                                               \
    "ldrd r7, r9, [%[x], #" OFF "]\n\t"                                                                        \
    "smlad %[" A "], r7, %[p], %[a0]\n\t"                                                                      \
    "smlad %[" A "], r9, %[q], %[" A "]\n\t"
#define TS_CONV_ASM8_GROUP(WLOAD, PIX)                                                                          \
    WLOAD PIX("a1", "8") PIX("a2", "16") PIX("a3", "24") PIX("a4", "32") PIX("a5", "40") PIX("a6", "48")          \
        PIX("a7", "56") "ldrd r7, r9, [%[x]], #64\n\t"                                                         \
                        "smlad %[a0], r7, %[p], %[a0]\n\t"                                                     \
                        "smlad %[a0], r9, %[q], %[a0]\n\t"

/* ts_rq_fast and SSAT of accumulator A, which holds 2x already: multiplier p, right shift q, rounding term in x,
 * r9 scratch (y stays in r7 for the stores; y_stride and y_end come with one LDRD after). */
#define TS_CONV_ASM8_RQ(A)                                                                                      \
    "sub r9, %[x], %[" A "], lsr #31\n\t"                                                                       \
    "smmlar %[" A "], %[" A "], %[p], r9\n\t"                                                                   \
    "asr %[" A "], %[" A "], %[q]\n\t"                                                                          \
    "ssat %[" A "], #8, %[" A "]\n\t"

/* The state's fields at sp + 4 * index while the block runs (the copy), r7 and r9 saved above them. */
#define TS_CONV_ASM8_CHANNELS(WLOAD)                                                                            \
    __asm__ volatile("push {r7, r9}\n\t"                                                                        \
                     "ldm %[x], {r0-r6, r8, r11, r12}\n\t"                                                      \
                     "push {r0-r6, r8, r11, r12}\n\t"                                                           \
                     "adr.w r7, 4f\n\t" /* the entry's address (Thumb bit set) in place of its index */           \
                     "ldrh r9, [r7, r1, lsl #1]\n\t"                                                            \
                     "add r7, r7, r9, lsl #1\n\t"                                                               \
                     "orr r7, r7, #1\n\t"                                                                       \
                     "str r7, [sp, #4]\n"                                                                       \
                     "1:\n\t"                                                                                   \
                     "ldrd r9, r7, [sp, #12]\n\t"                                                               \
                     "ldr %[a0], [r9, r7, lsl #2]\n\t"                                                          \
                     "lsl %[a0], %[a0], #1\n\t"                                                                 \
                     "ldr %[x], [sp]\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX0)                          \
                     "ldr pc, [sp, #4]\n"                                                                       \
                     "4:\n\t"                                                                                   \
                     ".hword (20f - 4b) / 2, (21f - 4b) / 2, (22f - 4b) / 2, (23f - 4b) / 2\n"                  \
                     ".hword (24f - 4b) / 2, (25f - 4b) / 2, (26f - 4b) / 2, (27f - 4b) / 2\n"                  \
                     ".hword (28f - 4b) / 2, (29f - 4b) / 2, (30f - 4b) / 2, (31f - 4b) / 2\n"                  \
                     ".hword (32f - 4b) / 2, (33f - 4b) / 2, (34f - 4b) / 2, (35f - 4b) / 2, (9f - 4b) / 2\n"   \
                     "20:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "21:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "22:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "23:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "24:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "25:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "26:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "27:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "28:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "29:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "30:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "31:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "32:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "33:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "34:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "35:\n\t" TS_CONV_ASM8_GROUP(WLOAD, TS_CONV_ASM8_PIX)                                      \
                     "ldr %[p], [sp, #8]\n\t"                                                                   \
                     "cmp %[x], %[p]\n\t"                                                                       \
                     "bne 20b\n"                                                                               \
                     "9:\n\t"                                                                                   \
                     "ldrd r7, r9, [sp, #16]\n\t"                                                               \
                     "ldr %[p], [r9, r7, lsl #2]\n\t"                                                           \
                     "ldrd r9, %[x], [sp, #24]\n\t"                                                             \
                     "ldrsb %[q], [r9, r7]\n\t"                                                                 \
                     "mvn r9, %[q]\n\t" /* y stays in r7 until the stores */                                    \
                     "lsl %[x], %[x], r9\n\t"                                                                   \
                     "rsb %[q], %[q], #0\n\t" TS_CONV_ASM8_RQ("a0") TS_CONV_ASM8_RQ("a1") TS_CONV_ASM8_RQ("a2") \
                         TS_CONV_ASM8_RQ("a3") TS_CONV_ASM8_RQ("a4") TS_CONV_ASM8_RQ("a5")                      \
                             TS_CONV_ASM8_RQ("a6") TS_CONV_ASM8_RQ("a7") "ldrd r9, %[p], [sp, #32]\n\t"     \
                     "strb %[a1], [r7, r9]\n\t"                                                                 \
                     "add %[q], r7, r9, lsl #1\n\t"                                                             \
                     "strb %[a2], [%[q]]\n\t"                                                                   \
                     "strb %[a3], [%[q], r9]\n\t"                                                               \
                     "add %[q], %[q], r9, lsl #1\n\t"                                                           \
                     "strb %[a4], [%[q]]\n\t"                                                                   \
                     "strb %[a5], [%[q], r9]\n\t"                                                               \
                     "add %[q], %[q], r9, lsl #1\n\t"                                                           \
                     "strb %[a6], [%[q]]\n\t"                                                                   \
                     "strb %[a7], [%[q], r9]\n\t"                                                               \
                     "strb %[a0], [r7], #1\n\t"                                                                 \
                     "str r7, [sp, #16]\n\t"                                                                    \
                     "cmp r7, %[p]\n\t"                                                                         \
                     "bne 1b\n\t"                                                                               \
                     "add sp, sp, #40\n\t"                                                                      \
                     "pop {r7, r9}\n\t"                                                                         \
                     : [a0] "=r"(a0), [a1] "=r"(a1), [a2] "=r"(a2), [a3] "=r"(a3), [a4] "=r"(a4),             \
                       [a5] "=r"(a5), [a6] "=r"(a6), [a7] "=r"(a7), [x] "+r"(x), [p] "=r"(pw), [q] "=r"(qw),    \
                       [w] "+r"(wp)                                                                            \
                     :                                                                                          \
                     : "cc", "memory")

/* The operands pinned (see above): ldm/push name r0-r6, r8, r11, r12 as the state's registers, in order. */
#define TS_CONV_ASM8_REGS                                                                                       \
    register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"), a3 __asm__("r3");                   \
    register uint32_t a4 __asm__("r4"), a5 __asm__("r5"), a6 __asm__("r6"), a7 __asm__("r8");                   \
    register uint32_t pw __asm__("r11"), qw __asm__("r12");                                                     \
    register const void *wp __asm__("lr") = w;                                                                  \
    register ts_conv_asm8_state *x __asm__("r10") = &st

/* One word of four int8 inputs into the block: its two halves as 2 (x + offset), o = 2 offset, at d (then
 * d += 64). */
#define TS_CONV_ASM_EXPAND1                                                                                     \
    "ldr %[u], [%[s]], #4\n\t"                                                                                 \
    "sxtab16 %[a], %[o], %[u]\n\t"                                                                             \
    "sxtab16 %[a], %[a], %[u]\n\t"                                                                             \
    "sxtab16 %[b], %[o], %[u], ror #8\n\t"                                                                     \
    "sxtab16 %[b], %[b], %[u], ror #8\n\t"                                                                     \
    "strd %[a], %[b], [%[d]], #64\n\t"

/* The eight pixels from `src` on (pointwise: consecutive input pixels of c_n bytes, c_n % 4 == 0) into the
 * block, each group's 32 int16 in the order of the four-pixel blocks: pixel i's group g at
 * block + 32 g + 4 i, as 2 (x + offset) with `offset` the doubled one (the block's sums are doubled). Four
 * words per loop turn (LDR: the input may be unaligned; one STRD with post-increment per word), the c_n % 16
 * bytes one word a turn first: 6.5 instructions a word (GCC's C loop took 8 without the doubling). */
static TS_NOINLINE void ts_conv_expand8(const int8_t *src, int32_t c_n, int16_t *block, uint32_t offset)
{
    const int8_t *s = src, *e = src, *t;
    const int8_t *const s_end = src + 8 * c_n;
    int16_t *d = block;
    const int32_t back = 16 * c_n - 8; /* from a pixel's last group + 1 to the next pixel's first */
    uint32_t u, a, b;
    __asm__ volatile("1:\n\t"
                     "add %[e], %[e], %[k]\n\t"
                     "ands %[t], %[k], #12\n\t"
                     "beq 2f\n\t"
                     "add %[t], %[t], %[s]\n"
                     "5:\n\t" TS_CONV_ASM_EXPAND1
                     "cmp %[s], %[t]\n\t"
                     "bne 5b\n\t"
                     "cmp %[s], %[e]\n\t"
                     "beq 3f\n"
                     "2:\n\t" TS_CONV_ASM_EXPAND1 TS_CONV_ASM_EXPAND1 TS_CONV_ASM_EXPAND1 TS_CONV_ASM_EXPAND1
                     "cmp %[s], %[e]\n\t"
                     "bne 2b\n"
                     "3:\n\t"
                     "sub %[d], %[d], %[back]\n\t"
                     "cmp %[s], %[end]\n\t"
                     "bne 1b\n\t"
                     : [s] "+&r"(s), [e] "+&r"(e), [t] "=&r"(t), [d] "+&r"(d), [u] "=&r"(u), [a] "=&r"(a),
                       [b] "=&r"(b)
                     : [k] "r"(c_n), [o] "r"(offset), [back] "r"(back), [end] "r"(s_end)
                     : "cc", "memory");
}

/* All the eight-pixel blocks of one image (pixels - q > 5 from q = 0; a rest of 6 or 7 as one more block moved
 * back to overlap the one before), the state set up once and per block only its y-dependent fields; returns
 * the first pixel left for the four-pixel blocks and rows. `wide` a constant in each caller below. */
TS_ALWAYS_INLINE int32_t ts_conv_run8(const ts_conv_params *p, const int8_t *img, int16_t *block, const void *w,
                                      const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                      int8_t *yb, int wide)
{
    const int32_t pixels = p->out_h * p->out_w, k_n = p->in_c, n_out = p->out_c;
    const uint32_t offset2 = ts_dup16(2 * p->input_offset);
    const int32_t groups = k_n >> 2;
    ts_conv_asm8_state st;
    int32_t q;
    st.block = (uintptr_t)block;
    st.end = (uintptr_t)(block + 32 * groups);
    st.entry = (uintptr_t)(groups == 1 ? 16 : (1 - groups) & 15);
    st.rq_odd = (uintptr_t)(2 * p->output_offset + 1);
    st.y_stride = (uintptr_t)n_out;
    for (q = 0; pixels - q > 5; q += 8) {
        const int32_t q0 = q + 8 <= pixels ? q : pixels - 8;
        const uintptr_t y0 = (uintptr_t)(yb + (size_t)q0 * n_out);
        ts_conv_expand8(img + (size_t)q0 * k_n, k_n, block, offset2);
        st.bias = (uintptr_t)bias - 4u * y0;
        st.y = y0;
        st.multiplier = (uintptr_t)multiplier - 4u * y0;
        st.shift = (uintptr_t)shift - y0;
        st.y_end = y0 + (uintptr_t)n_out;
        {
            TS_CONV_ASM8_REGS;
            if (wide) {
                TS_CONV_ASM8_CHANNELS(TS_CONV_ASM_W16);
            } else {
                TS_CONV_ASM8_CHANNELS(TS_CONV_ASM_W8);
            }
        }
    }
    return q;
}

static TS_NOINLINE int32_t ts_conv_run8_asm(const ts_conv_params *p, const int8_t *img, int16_t *block,
                                            const void *w, const int32_t *bias, const int32_t *multiplier,
                                            const int8_t *shift, int8_t *yb)
{
    return ts_conv_run8(p, img, block, w, bias, multiplier, shift, yb, 0);
}

static TS_NOINLINE int32_t ts_conv_run8_w16_asm(const ts_conv_params *p, const int8_t *img, int16_t *block,
                                                const void *w, const int32_t *bias, const int32_t *multiplier,
                                                const int8_t *shift, int8_t *yb)
{
    return ts_conv_run8(p, img, block, w, bias, multiplier, shift, yb, 1);
}

#define TS_CONV_BLOCK8(run8) run8
#else
#define TS_CONV_BLOCK8(run8) 0
#endif

/* The block functions by form: general, full, clamp, and on the target the full form in assembly, which the
 * full-range layers with per-channel constants and K % 4 == 0 take. */
#define TS_CONV_BLOCKS(general, full, clamp, full_asm) {general, full, clamp, full_asm}
#define TS_CONV_ASM_OK(p, k_all) ((p)->per_channel && ((k_all)&3) == 0)
#else
#define TS_CONV_BLOCKS(general, full, clamp, full_asm) {general, full, clamp, full}
#define TS_CONV_ASM_OK(p, k_all) 0
#define TS_CONV_BLOCK8(run8) 0
#endif

#endif /* TINYSTUDIO_DSP */

#endif /* TS_CONV_ASM_DSP_H */
