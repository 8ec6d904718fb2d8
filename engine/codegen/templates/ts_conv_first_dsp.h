/* ts_conv_first_dsp.h - the DSP regular convolution's channel loop in assembly for reduction lengths that are not
 * a multiple of 4 (first layers: K = 27 for 3x3x3), internal to ts_conv_dsp.c: the tail of each channel runs as
 * 8 multiplies, its weights the word ending at the channel's last byte, its inputs read as the im2col
 * (ts_conv_im2col_dsp.h) left them. Kept apart from the im2col so that each file holds one job. (3x3 kernels over
 * 3 channels in the full form have a kernel of their own: ts_conv_rgb_dsp.h.) */
#ifndef TS_CONV_FIRST_DSP_H
#define TS_CONV_FIRST_DSP_H

#include "ts_conv_im2col_dsp.h"
#include "ts_conv_asm_dsp.h"

#if TINYSTUDIO_DSP

/* (Optimized target builds only, as ts_conv_dsp.c's assembly form: 13 free registers.) */
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TINYSTUDIO_EMULATE_DSP)
/* The block function of ts_conv_s8_dsp for reduction lengths K = k_h * k_w * in_c that are not a multiple of 4,
 * K > 4 (first layers: 3x3x3 = 27), full int8 range, per-channel constants: the channel loop of ts_conv_dsp.c's
 * assembly form (the same registers, state block and requantization), with the K % 4 tail in 8 multiplies instead
 * of step by step. The tail's weights are the word that ends at the channel's end (K > 4: it starts inside the
 * channel); its bytes 1-3 (w0, w1, w2) are the last 3 steps. The tail is read as the im2col left it, pixel by
 * pixel (t0, t1, t2), 6 words: (p0 t0, t1) (p0 t2, p1 t0) (p1 t1, t2) (p2 t0, t1) (p2 t2, p3 t0) (p3 t1, t2); with
 * P = (w0, w1), Q = (w1, w2), R = (w0, w2) that is SMLAD with P or Q for the whole pairs and SMLABT / SMLATB with
 * R for the split ones. A tail of 1 or 2 is widened once per block to 3 steps whose first ones are 0 (the bytes
 * the last whole group covers), in the state. Per channel besides the whole groups' 15 instructions each: about
 * 61, of which 19 the tail (the step-wise tail of the C block took about 55); K = 27: 152 for 108 MACs. The whole
 * groups after the first go four per loop turn, entered by TBB. */
typedef struct {
    uintptr_t block, bias, entry, end, multiplier, shift, rq_odd, y_stride, y_end, back, tail;
    int16_t t3[12]; /* a tail of 1 or 2 as 3 steps per pixel (0 first) */
} ts_first_asm_state;

static TS_NOINLINE void ts_conv_block_first_asm(const ts_conv_params *p, const int16_t *block, const void *w,
                                                const int32_t *bias, const int32_t *multiplier,
                                                const int8_t *shift, int8_t *y, int32_t y_stride)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, tail = k_all & 3, groups = k_all >> 2;
    const int16_t *s = block + 4 * (k_all & ~3);
    const uintptr_t y0 = (uintptr_t)y;
    ts_first_asm_state st;
    const void *wp = w;
    uint32_t a0, a1, a2, a3, u, v, pw, qw, t;
    const int16_t *x;
    int32_t i;
    st.tail = (uintptr_t)s;
    if (tail != 3) {
        for (i = 0; i < 12; ++i) {
            const int32_t j = i % 3 - (3 - tail);
            st.t3[i] = j < 0 ? 0 : s[(i / 3) * tail + j];
        }
        st.tail = (uintptr_t)st.t3;
    }
    st.block = (uintptr_t)block;
    st.end = (uintptr_t)(block + 16 * groups);
    /* the groups after the first, four per loop turn: entered at group 4 - (count - 1) % 4, or at 9 for none */
    st.entry = (uintptr_t)(groups == 1 ? 4 : (1 - groups) & 3);
    st.bias = (uintptr_t)bias - 4u * y0;
    st.multiplier = (uintptr_t)multiplier - 4u * y0;
    st.shift = (uintptr_t)shift - y0;
    st.rq_odd = (uintptr_t)(2 * p->output_offset + 1);
    st.y_stride = (uintptr_t)y_stride;
    st.y_end = y0 + (uintptr_t)p->out_c;
    st.back = (uintptr_t)tail - 4u;
    __asm__ volatile("1:\n\t"
                     "ldrd %[x], %[t], [%[s]]\n\t"
                     "ldr %[a0], [%[t], %[y], lsl #2]\n\t" TS_CONV_ASM_W8
                     "ldrd %[u], %[v], [%[x], #8]\n\t"
                     "smlad %[a1], %[u], %[p], %[a0]\n\t"
                     "smlad %[a1], %[v], %[q], %[a1]\n\t"
                     "ldrd %[u], %[v], [%[x], #16]\n\t"
                     "smlad %[a2], %[u], %[p], %[a0]\n\t"
                     "smlad %[a2], %[v], %[q], %[a2]\n\t"
                     "ldrd %[u], %[v], [%[x], #24]\n\t"
                     "smlad %[a3], %[u], %[p], %[a0]\n\t"
                     "smlad %[a3], %[v], %[q], %[a3]\n\t"
                     "ldrd %[u], %[v], [%[x]], #32\n\t"
                     "smlad %[a0], %[u], %[p], %[a0]\n\t"
                     "smlad %[a0], %[v], %[q], %[a0]\n\t"
                     "ldrd %[u], %[t], [%[s], #8]\n\t"
                     "tbb [pc, %[u]]\n"
                     "4:\n\t"
                     ".byte (5f - 4b) / 2, (6f - 4b) / 2, (7f - 4b) / 2, (8f - 4b) / 2, (9f - 4b) / 2\n\t"
                     ".p2align 1\n"
                     "5:\n\t" TS_CONV_ASM_GROUP(TS_CONV_ASM_W8) "6:\n\t" TS_CONV_ASM_GROUP(TS_CONV_ASM_W8)
                     "7:\n\t" TS_CONV_ASM_GROUP(TS_CONV_ASM_W8) "8:\n\t" TS_CONV_ASM_GROUP(TS_CONV_ASM_W8)
                     "cmp %[x], %[t]\n\t"
                     "bne 5b\n"
                     "9:\n\t"
                     /* the tail: the weight word at w - (4 - tail), w then at the next channel; u = (x, w1),
                      * t = R, p = P, q = Q */
                     "ldr %[t], [%[s], #36]\n\t"
                     "add %[w], %[w], %[t]\n\t"
                     "ldr %[u], [%[w]], #4\n\t"
                     "sxtb16 %[t], %[u], ror #8\n\t"
                     "sxtb16 %[u], %[u]\n\t"
                     "pkhbt %[p], %[t], %[u]\n\t"
                     "pkhtb %[q], %[t], %[u], asr #16\n\t"
                     "ldr %[x], [%[s], #40]\n\t"
                     "ldrd %[u], %[v], [%[x]]\n\t"
                     "smlad %[a0], %[u], %[p], %[a0]\n\t"
                     "smlabt %[a0], %[v], %[t], %[a0]\n\t"
                     "smlatb %[a1], %[v], %[t], %[a1]\n\t"
                     "ldrd %[u], %[v], [%[x], #8]\n\t"
                     "smlad %[a1], %[u], %[q], %[a1]\n\t"
                     "smlad %[a2], %[v], %[p], %[a2]\n\t"
                     "ldrd %[u], %[v], [%[x], #16]\n\t"
                     "smlabt %[a2], %[u], %[t], %[a2]\n\t"
                     "smlatb %[a3], %[u], %[t], %[a3]\n\t"
                     "smlad %[a3], %[v], %[q], %[a3]\n\t"
                     "ldrd %[t], %[v], [%[s], #16]\n\t"
                     "ldr %[p], [%[t], %[y], lsl #2]\n\t"
                     "ldrsb %[q], [%[v], %[y]]\n\t"
                     "ldrd %[t], %[x], [%[s], #24]\n\t"
                     "mvn %[u], %[q]\n\t"
                     "lsl %[t], %[t], %[u]\n\t"
                     "rsb %[q], %[q], #0\n\t" TS_CONV_ASM_RQ("a0") TS_CONV_ASM_RQ("a1") TS_CONV_ASM_RQ("a2")
                         TS_CONV_ASM_RQ("a3") "strb %[a1], [%[y], %[x]]\n\t"
                     "add %[v], %[y], %[x], lsl #1\n\t"
                     "strb %[a2], [%[v]]\n\t"
                     "strb %[a3], [%[v], %[x]]\n\t"
                     "strb %[a0], [%[y]], #1\n\t"
                     "ldr %[u], [%[s], #32]\n\t"
                     "cmp %[y], %[u]\n\t"
                     "bne 1b\n\t"
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "=&r"(x), [u] "=&r"(u),
                       [v] "=&r"(v), [p] "=&r"(pw), [q] "=&r"(qw), [t] "=&r"(t), [w] "+r"(wp), [y] "+r"(y)
                     : [s] "r"(&st)
                     : "cc", "memory");
}
#define TS_CONV_FIRST_ASM 1
#endif

#endif /* TINYSTUDIO_DSP */

#endif /* TS_CONV_FIRST_DSP_H */
