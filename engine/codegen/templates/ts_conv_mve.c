/* ts_conv_mve.c - regular convolution on Helium (Cortex-M55/M85), the entry point and reductions K > 32:
 * output pixels four at a time, each output channel's weights against their receptive fields by VMLADAVA (16
 * int8 MACs per instruction), the K % 16 tail under a VCTP predicate; the sums of 32 channels are then
 * requantized four channels per vector. The receptive fields are read in place where they are contiguous runs
 * of the input (pointwise layers), else gathered as int8 into the DSP path's scratch, padded with the input
 * zero point (ts_conv_narrow_mve.c, which also takes K <= 32).
 * Called by ts_conv_s8 (ts_conv_ref.c) for groups == 1; the same bytes as ts_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* Output channels per requantization pass: the pass keeps four pixels' accumulators and each channel's start
 * value (bias + offset * sum of the weights) on the stack, 5 * 4 * TS_MVE_CH bytes. */
#define TS_MVE_CH 32

/* The four pixels' receptive fields, K contiguous int8 each: in the image (a field that is one run of the
 * input, as in pointwise layers) or gathered into the scratch. */
typedef struct {
    const int8_t *f0, *f1, *f2, *f3;
} ts_mve_fields;

#if defined(__GNUC__)
/* What the assembly loop below reads (offsets fixed in it: keep the order). */
typedef struct {
    const int8_t *f[4];
    int32_t loops, tail, n;
} ts_mve_sums_job;

/* The channel loop of ts_mve_conv_sums for K >= 16 in assembly: the compiler's version spills the four field
 * pointers and five accumulators (VMLADAVA takes even registers only) and spends some 40 instructions per
 * channel around the 11 of the dot-product loop; here 26, plus 16 for a K % 16 tail (predicated loads, whose
 * false lanes read as zero). Rows of acc are 4 * TS_MVE_CH bytes apart. */
static void ts_mve_sums_asm(ts_mve_sums_job *job, const int8_t *w, int32_t *acc)
{
    const int8_t *x0, *x1, *x2, *x3;
    int32_t a0, a1, a2, a3, ws;
    __asm__ volatile(
        "1:\n\t"
        "ldrd %[x0], %[x1], [%[job]]\n\t"
        "ldrd %[x2], %[x3], [%[job], #8]\n\t"
        "ldr lr, [%[job], #16]\n\t"
        /* the first 16 steps set the sums, the loop adds the others */
        "vldrb.8 q0, [%[w]], #16\n\t"
        "vldrb.8 q1, [%[x0]], #16\n\t"
        "vldrb.8 q2, [%[x1]], #16\n\t"
        "vmladav.s8 %[a0], q1, q0\n\t"
        "vldrb.8 q3, [%[x2]], #16\n\t"
        "vmladav.s8 %[a1], q2, q0\n\t"
        "vldrb.8 q1, [%[x3]], #16\n\t"
        "vmladav.s8 %[a2], q3, q0\n\t"
        "vmladav.s8 %[a3], q1, q0\n\t"
        "vaddv.s8 %[ws], q0\n\t"
        "subs lr, lr, #1\n\t"
        "beq 4f\n\t"
        "dls lr, lr\n"
        "2:\n\t"
        "vldrb.8 q0, [%[w]], #16\n\t"
        "vldrb.8 q1, [%[x0]], #16\n\t"
        "vldrb.8 q2, [%[x1]], #16\n\t"
        "vmladava.s8 %[a0], q1, q0\n\t"
        "vldrb.8 q3, [%[x2]], #16\n\t"
        "vmladava.s8 %[a1], q2, q0\n\t"
        "vldrb.8 q1, [%[x3]], #16\n\t"
        "vmladava.s8 %[a2], q3, q0\n\t"
        "vmladava.s8 %[a3], q1, q0\n\t"
        "vaddva.s8 %[ws], q0\n\t"
        "le lr, 2b\n"
        "4:\n\t"
        "ldr lr, [%[job], #20]\n\t"
        "cmp lr, #0\n\t"
        "beq 3f\n\t"
        "vctp.8 lr\n\t"
        "vpstttt\n\t"
        "vldrbt.8 q0, [%[w]]\n\t"
        "vldrbt.8 q1, [%[x0]]\n\t"
        "vldrbt.8 q2, [%[x1]]\n\t"
        "vldrbt.8 q3, [%[x2]]\n\t"
        "add %[w], %[w], lr\n\t"
        "vmladava.s8 %[a0], q1, q0\n\t"
        "vpst\n\t"
        "vldrbt.8 q1, [%[x3]]\n\t"
        "vmladava.s8 %[a1], q2, q0\n\t"
        "vmladava.s8 %[a2], q3, q0\n\t"
        "vmladava.s8 %[a3], q1, q0\n\t"
        "vaddva.s8 %[ws], q0\n"
        "3:\n\t"
        "str %[a1], [%[acc], #128]\n\t"
        "str %[a2], [%[acc], #256]\n\t"
        "str %[a3], [%[acc], #384]\n\t"
        "str %[ws], [%[acc], #512]\n\t"
        "str %[a0], [%[acc]], #4\n\t"
        "ldr %[a3], [%[job], #24]\n\t"
        "subs %[a3], %[a3], #1\n\t"
        "str %[a3], [%[job], #24]\n\t"
        "bne 1b\n\t"
        : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [a0] "=&Te"(a0), [a1] "=&Te"(a1),
          [a2] "=&Te"(a2), [a3] "=&Te"(a3), [ws] "=&Te"(ws), [w] "+r"(w), [acc] "+r"(acc)
        : [job] "r"(job)
        : "lr", "q0", "q1", "q2", "q3", "memory", "cc");
}
#endif

/* Channels m0 .. m0 + n of the four pixels into acc[s][m - m0] (s < 4) and the sums of their weights into
 * acc[4][m - m0]. Per 16 reduction steps: 1 weight load, 4 field loads, 4 VMLADAVA and one VADDVA (the
 * weights' sum, which carries the input offset: sum (x + off) * w = sum x * w + off * sum w, exact, padding
 * holding the zero point) give 64 MACs; the last K % 16 under a VCTP predicate. Returns the weights past
 * channel m0 + n. */
TS_ALWAYS_INLINE const int8_t *ts_mve_conv_sums(const ts_mve_fields *f, int32_t k_all, const int8_t *w, int32_t n,
                                                int32_t acc[5][TS_MVE_CH])
{
    const int32_t loops = k_all >> 4, tail = k_all & 15;
    int32_t m, k;
#if defined(__GNUC__)
    if (loops > 0) {
        ts_mve_sums_job job;
        job.f[0] = f->f0;
        job.f[1] = f->f1;
        job.f[2] = f->f2;
        job.f[3] = f->f3;
        job.loops = loops;
        job.tail = tail;
        job.n = n;
        ts_mve_sums_asm(&job, w, &acc[0][0]);
        return w + (size_t)n * k_all;
    }
#endif
    for (m = 0; m < n; ++m) {
        const int8_t *x0 = f->f0, *x1 = f->f1, *x2 = f->f2, *x3 = f->f3;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, ws = 0;
        for (k = 0; k < loops; ++k) {
            const int8x16_t wv = vldrbq_s8(w);
            w += 16;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(x0), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(x1), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(x2), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(x3), wv);
            x0 += 16;
            x1 += 16;
            x2 += 16;
            x3 += 16;
        }
        if (tail) {
            const mve_pred16_t pt = vctp8q((uint32_t)tail);
            const int8x16_t wv = vldrbq_z_s8(w, pt);
            w += tail;
            ws = vaddvaq_s8(ws, wv);
            a0 = vmladavaq_s8(a0, vldrbq_z_s8(x0, pt), wv);
            a1 = vmladavaq_s8(a1, vldrbq_z_s8(x1, pt), wv);
            a2 = vmladavaq_s8(a2, vldrbq_z_s8(x2, pt), wv);
            a3 = vmladavaq_s8(a3, vldrbq_z_s8(x3, pt), wv);
        }
        acc[0][m] = a0;
        acc[1][m] = a1;
        acc[2][m] = a2;
        acc[3][m] = a3;
        acc[4][m] = ws;
    }
    return w;
}

/* Channels m0 .. m0 + n of the four pixels requantized four channels at a time (bias, per-channel constants
 * as vectors, a predicate on the last n % 4) and stored at y[m + s * ys]. */
TS_ALWAYS_INLINE void ts_mve_conv_store(const ts_conv_params *p, int32_t acc[5][TS_MVE_CH], int32_t n,
                                        const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                        int8_t *y, int32_t ys, int general)
{
    const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max, off = p->input_offset;
    const int32_t step = p->per_channel ? 4 : 0;
    const int32x4_t zero = vdupq_n_s32(0);
    const int32_t *r = &acc[0][0], *rw = &acc[4][0];
    int32x4_t mult = vdupq_n_s32(multiplier[0]), sh = vdupq_n_s32(shift[0]);
    int32_t m;
    for (m = 0; m < n; m += 4, r += 4, rw += 4, bias += 4, multiplier += step, shift += step, y += 4) {
        const mve_pred16_t pr = vctp32q((uint32_t)(n - m));
        int32x4_t start, left, right;
        int8_t *yq = y;
        if (step) {
            mult = vldrwq_z_s32(multiplier, pr);
            sh = vldrbq_z_s32(shift, pr);
        }
        left = vmaxq_s32(sh, zero);
        right = vminq_s32(sh, zero);
        /* bias + offset * sum of the weights (sum (x + off) * w = sum x * w + off * sum w) */
        start = vmlaq_n_s32(vldrwq_z_s32(bias, pr), vldrwq_s32(rw), off);
        vstrbq_p_s32(yq, ts_mve_rq(vaddq_s32(vldrwq_s32(r), start), mult, left, right, general, out_off, lo, hi),
                     pr);
        yq += ys;
        vstrbq_p_s32(yq, ts_mve_rq(vaddq_s32(vldrwq_s32(r + TS_MVE_CH), start), mult, left, right, general,
                                   out_off, lo, hi), pr);
        yq += ys;
        vstrbq_p_s32(yq, ts_mve_rq(vaddq_s32(vldrwq_s32(r + 2 * TS_MVE_CH), start), mult, left, right, general,
                                   out_off, lo, hi), pr);
        yq += ys;
        vstrbq_p_s32(yq, ts_mve_rq(vaddq_s32(vldrwq_s32(r + 3 * TS_MVE_CH), start), mult, left, right, general,
                                   out_off, lo, hi), pr);
    }
}

/* Every output channel of four pixels (fields f, see ts_mve_fields),
 * outputs at y[m + s * ys]: TS_MVE_CH channels' sums, then their requantization, and so on. */
TS_ALWAYS_INLINE void ts_mve_conv_any(const ts_conv_params *p, const ts_mve_fields *f, int32_t k_all,
                                      const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                      const int8_t *shift, int8_t *y, int32_t ys, int general)
{
    int32_t acc[5][TS_MVE_CH];
    const int32_t step = p->per_channel ? 1 : 0;
    int32_t m0;
    for (m0 = 0; m0 < p->out_c; m0 += TS_MVE_CH) {
        const int32_t n = ts_min32(TS_MVE_CH, p->out_c - m0);
        w = ts_mve_conv_sums(f, k_all, w, n, acc);
        ts_mve_conv_store(p, acc, n, bias + m0, multiplier + m0 * step, shift + m0 * step, y + m0, ys, general);
    }
}

typedef void (*ts_mve_conv_fn)(const ts_conv_params *, const ts_mve_fields *, int32_t, const int8_t *,
                               const int32_t *, const int32_t *, const int8_t *, int8_t *, int32_t);

static TS_NOINLINE void ts_mve_conv_short(const ts_conv_params *p, const ts_mve_fields *f, int32_t k_all,
        const int8_t *w, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y, int32_t ys)
{
    ts_mve_conv_any(p, f, k_all, w, bias, multiplier, shift, y, ys, 0);
}

static TS_NOINLINE void ts_mve_conv_general(const ts_conv_params *p, const ts_mve_fields *f, int32_t k_all,
        const int8_t *w, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y, int32_t ys)
{
    ts_mve_conv_any(p, f, k_all, w, bias, multiplier, shift, y, ys, 1);
}

/* Regular conv (groups 1): pixels four at a time; with three left over, a last block moved back to overlap the
 * one before (those pixels are computed twice, same bytes); one or two left over (or fewer than four in all)
 * each as a fully connected row (ts_fc_mve.c: the weights are (out_c, K) rows, the field the input row, the
 * input offset its own; a four-pixel block would cost four pixels). Fields that are contiguous runs of the
 * input are read in place; others are gathered into the scratch (the DSP path's, emit_conv.py: 8 K bytes, of
 * which 4 K are used). K <= 32 (with the short requantization and the full int8 range) goes four channels per
 * vector (ts_conv_narrow_mve.c), others 32 channels' sums per pass (ts_mve_conv_sums). */
void ts_conv_s8_mve(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const int32_t out_w = p->out_w;
    const ts_mve_conv_fn block = TS_MVE_GENERAL(p) ? ts_mve_conv_general : ts_mve_conv_short;
    const int narrow = k_all <= 32 && !TS_MVE_GENERAL(p) && p->act_min == -128 && p->act_max == 127;
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                          p->pad_left == 0 && p->out_w == p->in_w && p->out_h == p->in_h;
    /* pixels in blocks of four: all but the one or two over (every pixel with three over) */
    const int32_t blocked = pixels < 4 ? 0 : ((pixels & 3) == 3 ? pixels : pixels & ~3);
    const ts_fc_params fc = {1, k_all, n_out, p->input_offset, p->output_offset, p->act_min, p->act_max,
                             p->per_channel, p->general_requant};
    int8_t *buf = (int8_t *)scratch;
    int32_t b, q, s;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        if (narrow) { /* four channels per vector (ts_conv_narrow_mve.c) */
            ts_conv_s8_mve_narrow(p, img, w, bias, multiplier, shift, yb, buf);
            continue;
        }
        for (q = 0; q < blocked; q += 4) {
            const int32_t q0 = q + 4 <= blocked ? q : blocked - 4;
            const int8_t *fs[4];
            ts_mve_fields f;
            if (pointwise) { /* output pixel q reads input pixel q */
                for (s = 0; s < 4; ++s) {
                    fs[s] = img + (size_t)(q0 + s) * k_all;
                }
            } else {
                int32_t oh = q0 / out_w, ow = q0 - oh * out_w;
                for (s = 0; s < 4; ++s) {
                    fs[s] = ts_mve_conv_field_at(p, img, oh, ow, buf + s * k_all);
                    if (++ow == out_w) {
                        ow = 0;
                        ++oh;
                    }
                }
            }
            f.f0 = fs[0];
            f.f1 = fs[1];
            f.f2 = fs[2];
            f.f3 = fs[3];
            block(p, &f, k_all, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
        for (q = blocked; q < pixels; ++q) {
            const int8_t *field = pointwise ? img + (size_t)q * k_all
                                            : ts_mve_conv_field_at(p, img, q / out_w, q % out_w, buf);
            ts_fully_connected_s8_mve(&fc, field, w, bias, multiplier, shift, yb + (size_t)q * n_out);
        }
    }
}

#endif /* TINYSTUDIO_MVE */
