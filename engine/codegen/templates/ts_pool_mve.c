/* ts_pool_mve.c - average and max pooling on Helium (Cortex-M55/M85), NHWC: max over 16 channels per vector
 * (VMAX.S8), averages over 4 channels per vector in int32 lanes, the division by the cell count a multiply by
 * its rounded-up reciprocal (VMULH.U32), exact for the sums a window of at most 5000 cells gives. Called by
 * ts_avg_pool_s8 / ts_max_pool_s8 (ts_pool_ref.c); the same bytes as the portable loops. */
#include "ts_mve.h"
#include "ts_pool_window.h"

#if TINYSTUDIO_MVE

/* Kernel rows / columns inside the image of a window starting at `start`: [*lo, *hi). */
static void ts_mve_taps(int32_t start, int32_t k, int32_t dil, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = k;
    while (a < b && start + a * dil < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * dil >= size) {
        --b;
    }
    *lo = a;
    *hi = b;
}

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

/* Returns 0 (computing nothing) for a window of more than 5000 cells: the portable loop takes it. */
int ts_avg_pool_s8_mve(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    const int32_t c_n = p->channels;
    const int32x4_t lo = vdupq_n_s32(p->act_min), hi = vdupq_n_s32(p->act_max);
    int32_t b, oh, ow, c, i, j;
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
                /* n / count = high word of n * ts_pool_recip(count) (n <= 129 count, count <= 5000); count 1
                 * divides by itself */
                recip = ts_pool_recip(win.count);
                for (c = 0; c < c_n; c += 4) {
                    const mve_pred16_t pr = vctp32q((uint32_t)(c_n - c));
                    const int8_t *xp = win.x0 + c;
                    int32x4_t acc = vdupq_n_s32(0), mean;
                    uint32x4_t n, q;
                    for (i = 0; i < win.rows; ++i, xp += win.row_step) {
                        for (j = 0; j < win.cols; ++j, xp += c_n) {
                            acc = vaddq_s32(acc, vldrbq_z_s32(xp, pr));
                        }
                    }
                    /* TFLite: round half away from zero (the generator checks count > 0) */
                    n = vaddq_n_u32(vreinterpretq_u32_s32(vabsq_s32(acc)), (uint32_t)(win.count / 2));
                    q = win.count > 1 ? vmulhq_u32(n, vdupq_n_u32(recip)) : n;
                    mean = vreinterpretq_s32_u32(q);
                    mean = vpselq_s32(vnegq_s32(mean), mean, vcmpltq_n_s32(acc, 0));
                    vstrbq_p_s32(y + c, vminq_s32(vmaxq_s32(mean, lo), hi), pr);
                }
            }
        }
    }
    return 1;
}

#endif /* TINYSTUDIO_MVE */
