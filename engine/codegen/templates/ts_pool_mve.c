/* ts_pool_mve.c - average and max pooling on Helium (Cortex-M55/M85), NHWC: max over 16 channels per vector
 * (VMAX.S8), averages over 16 channels per pass (int16 sums, widened to int32 every 256 cells), the division by
 * the cell count a multiply by its rounded-up reciprocal (VMULH.U32), exact for the sums a window of at most
 * 5000 cells gives. Called by ts_avg_pool_s8 / ts_max_pool_s8 (ts_pool_ref.c); the same bytes as the portable
 * loops. */
#include "ts_mve.h"
#include "ts_pool_window.h"

#if TINYSTUDIO_MVE

int ts_max_pool_s8_mve(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t c_n = p->channels;
    const int8x16_t lo = vdupq_n_s8((int8_t)p->act_min), hi = vdupq_n_s8((int8_t)p->act_max);
    int32_t b, oh, ow, c, i, j;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            int32_t i_lo, i_hi;
            ts_mve_taps(h0, p->k_h, p->dil_h, p->in_h, &i_lo, &i_hi);
            for (ow = 0; ow < p->out_w; ++ow, y += c_n) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                int32_t j_lo, j_hi;
                ts_mve_taps(w0, p->k_w, p->dil_w, p->in_w, &j_lo, &j_hi);
                for (c = 0; c < c_n; c += 16) {
                    const mve_pred16_t pr = vctp8q((uint32_t)(c_n - c));
                    int8x16_t best = vdupq_n_s8(-128); /* padding never wins */
                    for (i = i_lo; i < i_hi; ++i) {
                        const int8_t *xp =
                            img + ((size_t)(h0 + i * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n + c;
                        for (j = j_lo; j < j_hi; ++j, xp += (ptrdiff_t)p->dil_w * c_n) {
                            best = vmaxq_s8(best, vldrbq_z_s8(xp, pr));
                        }
                    }
                    vstrbq_p_s8(y + c, vminq_s8(vmaxq_s8(best, lo), hi), pr);
                }
            }
        }
    }
    return 1;
}

/* TFLite's mean of four int32 sums over `count` cells (round half away from zero: the generator checks
 * count > 0): n / count is the high word of n * recip (ts_pool_recip; n <= 129 count, count <= 5000), plus n
 * itself for count 1 (recip 0; no branch: one copy of this code); then the activation clamp. */
TS_ALWAYS_INLINE int32x4_t ts_mve_pool_mean(int32x4_t acc, int32_t count, uint32_t recip, int32x4_t lo,
                                            int32x4_t hi)
{
    const uint32x4_t n = vaddq_n_u32(vreinterpretq_u32_s32(vabsq_s32(acc)), (uint32_t)(count / 2));
    int32x4_t mean = vreinterpretq_s32_u32(vmlaq_n_u32(vmulhq_u32(n, vdupq_n_u32(recip)), n, count == 1));
    mean = vpselq_s32(vnegq_s32(mean), mean, vcmpltq_n_s32(acc, 0));
    return vminq_s32(vmaxq_s32(mean, lo), hi);
}

/* Channels c .. c + 15 (fewer in the last group) of one output pixel's average: 16 bytes per load (one predicate
 * for the group), widened to int16 even and odd channels (VMOVLB / VMOVLT) and summed so over runs of at most
 * 256 cells (|sum| <= 128 * 256 fits int16), each run's sums then widened into int32 ones (channels c + 4 i + r
 * in acc[r]); the means narrowed back in channel order (VMOVNB / VMOVNT, twice) and stored with one VSTRB. */
static void ts_mve_avg16(const ts_pool_win *win, int32_t c_n, int32_t c, uint32_t recip, int32x4_t lo,
                         int32x4_t hi, int8_t *y)
{
    const mve_pred16_t pr = vctp8q((uint32_t)(c_n - c));
    const int16x8_t zero16 = vdupq_n_s16(0);
    const int8_t *xp = win->x0 + c;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    int16x8_t se = zero16, so = zero16;
    int8x16_t out;
    int32_t rows = win->rows, cols = win->cols, budget = 256, i;
    if (win->row_step == 0) { /* the window's rows are one run of the input (a global pool) */
        cols *= rows;
        rows = 1;
    }
    for (i = 0; i < rows; ++i, xp += win->row_step) {
        int32_t j = cols;
        while (j > 0) {
            int32_t n = ts_min32(j, budget);
            j -= n;
            budget -= n;
            for (; n > 0; --n, xp += c_n) {
                const int8x16_t v = vldrbq_z_s8(xp, pr);
                se = vaddq_s16(se, vmovlbq_s8(v));
                so = vaddq_s16(so, vmovltq_s8(v));
            }
            if (budget == 0) {
                a0 = vaddq_s32(a0, vmovlbq_s16(se));
                a1 = vaddq_s32(a1, vmovlbq_s16(so));
                a2 = vaddq_s32(a2, vmovltq_s16(se));
                a3 = vaddq_s32(a3, vmovltq_s16(so));
                se = so = zero16;
                budget = 256;
            }
        }
    }
    a0 = ts_mve_pool_mean(vaddq_s32(a0, vmovlbq_s16(se)), win->count, recip, lo, hi);
    a1 = ts_mve_pool_mean(vaddq_s32(a1, vmovlbq_s16(so)), win->count, recip, lo, hi);
    a2 = ts_mve_pool_mean(vaddq_s32(a2, vmovltq_s16(se)), win->count, recip, lo, hi);
    a3 = ts_mve_pool_mean(vaddq_s32(a3, vmovltq_s16(so)), win->count, recip, lo, hi);
    se = vmovntq_s32(vmovnbq_s32(zero16, a0), a2);
    so = vmovntq_s32(vmovnbq_s32(zero16, a1), a3);
    out = vmovntq_s16(vmovnbq_s16(vdupq_n_s8(0), se), so);
    vstrbq_p_s8(y + c, out, pr);
}

/* Returns 0 (computing nothing) for a window of more than 5000 cells: the portable loop takes it. */
int ts_avg_pool_s8_mve(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t c_n = p->channels;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    int32_t b, oh, ow, c;
    if (p->k_h * p->k_w > 5000) {
        return 0;
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n;
        for (oh = 0; oh < p->out_h; ++oh) {
            for (ow = 0; ow < p->out_w; ++ow, y += c_n) {
                ts_pool_win win;
                uint32_t recip;
                ts_pool_window(p, img, oh, ow, &win);
                recip = ts_pool_recip(win.count);
                for (c = 0; c < c_n; c += 16) {
                    ts_mve_avg16(&win, c_n, c, recip, lo, hi, y);
                }
            }
        }
    }
    return 1;
}

#endif /* TINYSTUDIO_MVE */
