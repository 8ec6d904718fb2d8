/* ts_conv_first_dsp.c - the four-pixel block function of the DSP regular convolution for reduction lengths
 * K = k_h * k_w * in_c that are not a multiple of 4 (first layers: 3x3x3 = 27), chosen by ts_conv_s8_dsp
 * (ts_conv_dsp.c). The K % 4 tail runs as one more SMLAD group instead of step by step: its weights are the
 * channel's last word shifted right so that the tail's bytes are the low ones and zeros fill the rest, and its
 * inputs, which the im2col block holds pixel by pixel after the groups, are repacked once per block into a group
 * (the zero weights meet zero inputs). The same bytes as ts_conv_s8_ref. */
#include "ts_dsp.h"

#if TINYSTUDIO_DSP

/* The accumulators of the four pixels. */
typedef struct {
    int32_t a0, a1, a2, a3;
} ts_first_acc;

/* One group of 4 reduction steps of the four pixels with the weight word wv (bytes k0..k3): 4 double loads of
 * the block, 8 SMLADs. */
TS_ALWAYS_INLINE void ts_first_group(ts_first_acc *a, const int16_t **x, uint32_t wv)
{
    const uint32_t w02 = ts_sxtb16(wv), w13 = ts_sxtb16_ror8(wv);
    uint32_t u, v;
    ts_load2(x, &u, &v);
    a->a0 = ts_smlad(v, w13, ts_smlad(u, w02, a->a0));
    ts_load2(x, &u, &v);
    a->a1 = ts_smlad(v, w13, ts_smlad(u, w02, a->a1));
    ts_load2(x, &u, &v);
    a->a2 = ts_smlad(v, w13, ts_smlad(u, w02, a->a2));
    ts_load2(x, &u, &v);
    a->a3 = ts_smlad(v, w13, ts_smlad(u, w02, a->a3));
}

/* Every output channel of the block: the whole groups two per loop turn (one more when their count is odd),
 * the tail group, then the requantization of the four outputs (the portable form, or the fast one with the
 * full int8 range or a clamp: a branch per channel, one copy of the loop for the library's code size), stored
 * at y[m + s * y_stride]. */
void ts_conv_block_first(const ts_conv_params *p, const int16_t *block, const void *wv, const int32_t *bias,
                         const int32_t *multiplier, const int8_t *shift, int8_t *y, int32_t y_stride)
{
    const int8_t *w = (const int8_t *)wv;
    const int32_t k_all = p->k_h * p->k_w * p->in_c, tail = k_all & 3, back = 4 - tail, drop = 8 * back;
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max, odd = 2 * off + 1;
    const int32_t step = p->per_channel ? 1 : 0;
    const int mode = p->general_requant ? 0 : (lo == -128 && hi == 127 ? 1 : 2);
    const int16_t *const end2 = block + 32 * (k_all >> 3), *const t = block + 4 * (k_all & ~3);
    const int odd_group = (k_all >> 2) & 1;
    int8_t *const y_end = y + p->out_c;
    /* the tail group: per pixel (x0, x2), (x1, x3) of the tail's steps (ts_conv_im2col_dsp's order), zero past
     * the tail; word aligned for LDRD */
    union {
        uint32_t align;
        int16_t v[16];
    } g;
    int32_t pix;
    for (pix = 0; pix < 4; ++pix) {
        const int16_t *s = t + pix * tail;
        g.v[4 * pix] = s[0];
        g.v[4 * pix + 1] = tail > 2 ? s[2] : 0;
        g.v[4 * pix + 2] = tail > 1 ? s[1] : 0;
        g.v[4 * pix + 3] = 0;
    }
    do {
        const int16_t *x = block, *xt = g.v;
        ts_first_acc a;
        int32_t ys = y_stride;
        a.a0 = *bias++;
        a.a1 = a.a0;
        a.a2 = a.a0;
        a.a3 = a.a0;
        while (x != end2) {
            ts_first_group(&a, &x, ts_read32(w));
            ts_first_group(&a, &x, ts_read32(w + 4));
            w += 8;
        }
        if (odd_group) {
            ts_first_group(&a, &x, ts_read32(w));
            w += 4;
        }
        /* the tail's weights: the channel's last word (K >= 4), its bytes before the tail shifted out */
        ts_first_group(&a, &xt, ts_read32(w - back) >> drop);
        w += tail;
        TS_OPAQUE(ys);
        if (mode == 0) {
            const int32_t m = *multiplier, e = *shift;
            y[0] = ts_requant(a.a0, m, e, off, lo, hi);
            y[ys] = ts_requant(a.a1, m, e, off, lo, hi);
            y[2 * ys] = ts_requant(a.a2, m, e, off, lo, hi);
            y[3 * ys] = ts_requant(a.a3, m, e, off, lo, hi);
        } else {
            const ts_rq q = ts_rq_channel(multiplier, shift, 0, odd);
            a.a0 = ts_rq_fast(a.a0, &q);
            a.a1 = ts_rq_fast(a.a1, &q);
            a.a2 = ts_rq_fast(a.a2, &q);
            a.a3 = ts_rq_fast(a.a3, &q);
            if (mode == 1) {
                y[0] = (int8_t)ts_ssat8(a.a0);
                y[ys] = (int8_t)ts_ssat8(a.a1);
                y[2 * ys] = (int8_t)ts_ssat8(a.a2);
                y[3 * ys] = (int8_t)ts_ssat8(a.a3);
            } else {
                y[0] = ts_clamp8(a.a0, lo, hi);
                y[ys] = ts_clamp8(a.a1, lo, hi);
                y[2 * ys] = ts_clamp8(a.a2, lo, hi);
                y[3 * ys] = ts_clamp8(a.a3, lo, hi);
            }
        }
        multiplier += step;
        shift += step;
    } while (++y != y_end);
}

#endif /* TINYSTUDIO_DSP */
