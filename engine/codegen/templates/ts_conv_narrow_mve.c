/* ts_conv_narrow_mve.c - regular convolution on Helium (Cortex-M55/M85) for a reduction of at most 32 (first
 * layers such as 3x3x3, pointwise layers of few input channels), where ts_conv_mve.c's 32-channel passes spend
 * more on moving sums than on MACs: four output channels per vector, each pixel's four VMLADAV sums moved into
 * one vector and requantized at once. Also the receptive-field gathering both conv files use. Called by
 * ts_conv_s8_mve (ts_conv_mve.c); the same bytes as ts_conv_s8_ref. */
#include "ts_mve.h"

#if TINYSTUDIO_MVE

/* The receptive field of output pixel (oh, ow) (k_h * k_w * in_c int8, in the weights' order) into dst, taps
 * outside the image holding the input zero point. */
static void ts_mve_field(const ts_conv_params *p, const int8_t *img, int32_t oh, int32_t ow, int8_t *dst)
{
    const int32_t c_n = p->in_c;
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int32_t row = p->k_w * c_n;
    const int cols_inside = w0 >= 0 && w0 + (p->k_w - 1) * p->dil_w < p->in_w;
    int32_t i, j;
    for (i = 0; i < p->k_h; ++i, dst += row) {
        const int32_t ih = h0 + i * p->dil_h;
        if (ih < 0 || ih >= p->in_h) {
            ts_mve_put(dst, NULL, row, zp);
        } else if (cols_inside && (p->dil_w == 1 || p->k_w == 1)) {
            ts_mve_put(dst, img + ((size_t)ih * p->in_w + w0) * c_n, row, zp);
        } else {
            for (j = 0; j < p->k_w; ++j) {
                const int32_t iw = w0 + j * p->dil_w;
                const int inside = iw >= 0 && iw < p->in_w;
                ts_mve_put(dst + j * c_n, inside ? img + ((size_t)ih * p->in_w + iw) * c_n : NULL, c_n, zp);
            }
        }
    }
}

/* Output pixel (oh, ow)'s receptive field as K contiguous int8: in place where it is one run of the input
 * (1x1 kernels, 1xN rows inside the image) unless `copy`, else gathered into dst: a window inside the image
 * whose rows are runs (dilation 1 across) row by row, a row of at most 16 bytes by one predicated load and
 * store (first layers: 3x3x3 is three 9-byte rows), the others (borders) by ts_mve_field. */
TS_ALWAYS_INLINE const int8_t *ts_mve_field_get(const ts_conv_params *p, const int8_t *img, int32_t oh,
                                                int32_t ow, int8_t *dst, int copy)
{
    const int32_t c_n = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    const int32_t row = k_w * c_n, x_row = p->dil_h * p->in_w * c_n;
    const int8_t *src = img + ((size_t)h0 * p->in_w + w0) * c_n;
    int8_t *d = dst;
    int32_t i;
    if (h0 < 0 || h0 + (k_h - 1) * p->dil_h >= p->in_h || w0 < 0 || w0 + (k_w - 1) * p->dil_w >= p->in_w ||
        (p->dil_w != 1 && k_w != 1)) {
        ts_mve_field(p, img, oh, ow, dst);
        return dst;
    }
    if (k_h == 1 && !copy) {
        return src;
    }
    if (row <= 16) {
        const mve_pred16_t pr = vctp8q((uint32_t)row);
        for (i = 0; i < k_h; ++i, d += row, src += x_row) {
            vstrbq_p_s8(d, vldrbq_z_s8(src, pr), pr);
        }
    } else {
        for (i = 0; i < k_h; ++i, d += row, src += x_row) {
            ts_mve_put(d, src, row, 0);
        }
    }
    return dst;
}

const int8_t *ts_mve_conv_field_at(const ts_conv_params *p, const int8_t *img, int32_t oh, int32_t ow, int8_t *dst)
{
    return ts_mve_field_get(p, img, oh, ow, dst, 0);
}

/* The field always into dst (the narrow path reads fields K bytes apart). */
static void ts_mve_field_copy(const ts_conv_params *p, const int8_t *img, int32_t oh, int32_t ow, int8_t *dst)
{
    (void)ts_mve_field_get(p, img, oh, ow, dst, 1);
}

/* The fields of n consecutive output pixels from pixel q, K bytes apart at dst (the narrow path's blocks): a
 * window inside the image whose rows are runs of at most 16 bytes (first layers: 3x3x3 is three 9-byte rows)
 * by one predicated load and store per row, the geometry read once; others by ts_mve_field_copy. */
static void ts_mve_gather(const ts_conv_params *p, const int8_t *img, int32_t q, int32_t n, int8_t *dst)
{
    const int32_t c_n = p->in_c, k_h = p->k_h, k_w = p->k_w, row = k_w * c_n, k_all = k_h * row;
    const int32_t in_h = p->in_h, in_w = p->in_w, out_w = p->out_w, s_h = p->stride_h, s_w = p->stride_w;
    const int32_t pad_top = p->pad_top, pad_left = p->pad_left, x_row = p->dil_h * in_w * c_n;
    const int32_t h_last = (k_h - 1) * p->dil_h, w_last = (k_w - 1) * p->dil_w;
    const int rows_fast = row <= 16 && (p->dil_w == 1 || k_w == 1);
    const mve_pred16_t pr = vctp8q((uint32_t)ts_min32(row, 16));
    int32_t oh = q / out_w, ow = q - oh * out_w, i;
    for (; n > 0; --n, dst += k_all) {
        const int32_t h0 = oh * s_h - pad_top, w0 = ow * s_w - pad_left;
        if (rows_fast && h0 >= 0 && h0 + h_last < in_h && w0 >= 0 && w0 + w_last < in_w) {
            const int8_t *src = img + ((size_t)h0 * in_w + w0) * c_n;
            int8_t *d = dst;
            for (i = 0; i < k_h; ++i, d += row, src += x_row) {
                vstrbq_p_s8(d, vldrbq_z_s8(src, pr), pr);
            }
        } else {
            ts_mve_field_copy(p, img, oh, ow, dst);
        }
        if (++ow == out_w) {
            ow = 0;
            ++oh;
        }
    }
}

/* K <= 32 (first layers, pointwise layers of few input channels): four output channels per vector, n pixels
 * whose fields lie K bytes apart from x (pointwise layers: the image itself; others: gathered), outputs
 * ys apart from y. Per pixel: the field (one vector, or two when `two`: K > 16), four VMLADAV(A), the four sums
 * moved into one vector (ts_mve_vec4), requantized on the vector with the group's constants (`start` = bias +
 * offset * weight sum, multipliers, shifts: ts_mve_rq's short form) and stored by one VSTRB.32, the two
 * saturating narrows VQMOVNB (to int16, to int8) being the full int8 range's clamp (layers with another range
 * or the general requantization go to ts_conv_mve.c). The field's lanes past K are zero (a predicated load)
 * so the weights load unpredicated: w must have 16 (32 when `two`) readable bytes from each channel
 * (ts_mve_conv_narrow). */
TS_ALWAYS_INLINE void ts_mve_narrow_px(const int8_t *x, int32_t k_all, int32_t n, const int8_t *w, int32x4_t start,
                                       int32x4_t mult, int32x4_t sh, const ts_conv_params *p, int8_t *y, int32_t ys,
                                       int two)
{
    const mve_pred16_t pk = vctp8q((uint32_t)(two ? k_all - 16 : k_all));
    const int32x4_t right = vminq_s32(sh, vdupq_n_s32(0));
    const int32_t out_off = p->output_offset;
    const int8_t *w1 = w + k_all, *w2 = w1 + k_all, *w3 = w2 + k_all;
    for (; n > 0; --n, x += k_all, y += ys) {
        int32x4_t v;
        if (two) {
            const int8x16_t xa = vldrbq_s8(x), xb = vldrbq_z_s8(x + 16, pk);
            int32_t a0, a1, a2, a3;
#if defined(__GNUC__)
            __asm__("" : "+r"(w), "+r"(w1), "+r"(w2), "+r"(w3)); /* weights from memory: registers for the rest */
#endif
            a0 = vmladavaq_s8(vmladavq_s8(xa, vldrbq_s8(w)), xb, vldrbq_s8(w + 16));
            a1 = vmladavaq_s8(vmladavq_s8(xa, vldrbq_s8(w1)), xb, vldrbq_s8(w1 + 16));
            a2 = vmladavaq_s8(vmladavq_s8(xa, vldrbq_s8(w2)), xb, vldrbq_s8(w2 + 16));
            a3 = vmladavaq_s8(vmladavq_s8(xa, vldrbq_s8(w3)), xb, vldrbq_s8(w3 + 16));
            v = ts_mve_vec4(a0, a1, a2, a3);
        } else {
            const int8x16_t xv = vldrbq_z_s8(x, pk);
            v = ts_mve_vec4(vmladavq_s8(xv, vldrbq_s8(w)), vmladavq_s8(xv, vldrbq_s8(w1)),
                            vmladavq_s8(xv, vldrbq_s8(w2)), vmladavq_s8(xv, vldrbq_s8(w3)));
        }
        v = vqrdmulhq_s32(vaddq_s32(v, start), mult);
        v = vaddq_n_s32(vrshlq_s32(vqaddq_s32(v, vshrq_n_s32(v, 31)), right), out_off);
#if defined(__GNUC__)
        __asm__("vqmovnb.s32 %q0, %q0\n\tvqmovnb.s16 %q0, %q0" : "+w"(v));
#else
        v = vreinterpretq_s32_s16(vqmovnbq_s32(vreinterpretq_s16_s32(v), v));
        v = vreinterpretq_s32_s8(vqmovnbq_s16(vreinterpretq_s8_s32(v), vreinterpretq_s16_s32(v)));
#endif
        vstrbq_s32(y, v);
    }
}

/* The sum of one channel's K weights (K <= 32). */
TS_ALWAYS_INLINE int32_t ts_mve_wsum(const int8_t *w, int32_t k_all, int two)
{
    if (two) {
        return vaddvaq_s8(vaddvq_s8(vldrbq_s8(w)), vldrbq_z_s8(w + 16, vctp8q((uint32_t)(k_all - 16))));
    }
    return vaddvq_s8(vldrbq_z_s8(w, vctp8q((uint32_t)k_all)));
}

/* K <= 32: n pixels (fields K bytes apart from x, outputs out_c apart from y), every output channel four at a
 * time (ts_mve_narrow_px). A group whose weight loads would read past the weights (the last ones: each channel
 * is read 16 or 32 bytes long), or of fewer than four channels, reads a zero-padded copy of its weights on the
 * stack; its missing channels repeat the last one and are not stored (VSTRB.32 under the channel predicate,
 * through a four-channel buffer). */
TS_ALWAYS_INLINE void ts_mve_conv_narrow(const ts_conv_params *p, const int8_t *x, int32_t n, int32_t k_all,
                                         const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                         const int8_t *shift, int8_t *y, int two)
{
    const int32_t n_out = p->out_c, last = n_out - 1, off = p->input_offset, step = p->per_channel ? 4 : 0;
    const int32_t reach = two ? 32 : 16;
    int32x4_t mult = vdupq_n_s32(multiplier[0]), sh = vdupq_n_s32(shift[0]);
    int8_t wl[4 * 32 + 32];
    int32_t m, j;
    for (m = 0; m < n_out; m += 4, multiplier += step, shift += step) {
        const int8_t *wg = w + (size_t)m * k_all;
        int32x4_t start;
        if (m + 4 > n_out || (m + 3) * k_all + reach > n_out * k_all) {
            int8_t *d = wl;
            ts_mve_put(wl, NULL, (int32_t)sizeof wl, 0);
            for (j = 0; j < 4; ++j, d += k_all) {
                ts_mve_put(d, w + (size_t)ts_min32(m + j, last) * k_all, k_all, 0);
            }
            wg = wl;
        }
        if (step) {
            const mve_pred16_t pr = vctp32q((uint32_t)(n_out - m));
            mult = vldrwq_z_s32(multiplier, pr);
            sh = vldrbq_z_s32(shift, pr);
        }
        /* bias + offset * sum of the weights (sum (x + off) * w = sum x * w + off * sum w) */
        start = vmlaq_n_s32(vldrwq_z_s32(bias + m, vctp32q((uint32_t)(n_out - m))),
                            ts_mve_vec4(ts_mve_wsum(wg, k_all, two), ts_mve_wsum(wg + k_all, k_all, two),
                                        ts_mve_wsum(wg + 2 * k_all, k_all, two),
                                        ts_mve_wsum(wg + 3 * k_all, k_all, two)), off);
        if (m + 4 <= n_out) {
            ts_mve_narrow_px(x, k_all, n, wg, start, mult, sh, p, y + m, n_out, two);
        } else { /* the last channels, pixel by pixel into a 4-byte buffer, of which n_out - m bytes are copied */
            const int8_t *xq = x;
            int8_t tmp[4], *yq = y + m;
            int32_t q;
            for (q = 0; q < n; ++q, xq += k_all, yq += n_out) {
                ts_mve_narrow_px(xq, k_all, 1, wg, start, mult, sh, p, tmp, 0, two);
                for (j = 0; j < n_out - m; ++j) {
                    yq[j] = tmp[j];
                }
            }
        }
    }
}

typedef void (*ts_mve_narrow_fn)(const ts_conv_params *, const int8_t *, int32_t, int32_t, const int8_t *,
                                 const int32_t *, const int32_t *, const int8_t *, int8_t *);

static TS_NOINLINE void ts_mve_narrow1(const ts_conv_params *p, const int8_t *x, int32_t n, int32_t k_all,
        const int8_t *w, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_mve_conv_narrow(p, x, n, k_all, w, bias, multiplier, shift, y, 0);
}

static TS_NOINLINE void ts_mve_narrow2(const ts_conv_params *p, const int8_t *x, int32_t n, int32_t k_all,
        const int8_t *w, const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    ts_mve_conv_narrow(p, x, n, k_all, w, bias, multiplier, shift, y, 1);
}

/* The pixels per gathered block of the narrow path: the scratch holds 8 fields (emit_conv.py: 8 K bytes). */
#define TS_MVE_NARROW_PX 8

/* One image of a conv with K <= 32, the short requantization and the full int8 range (ts_conv_s8_mve):
 * pointwise layers in one pass (field q is input pixel q), others in blocks of TS_MVE_NARROW_PX consecutive
 * pixels whose fields are gathered into buf. */
void ts_conv_s8_mve_narrow(const ts_conv_params *p, const int8_t *img, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *yb, int8_t *buf)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const ts_mve_narrow_fn narrow = k_all <= 16 ? ts_mve_narrow1 : ts_mve_narrow2;
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                          p->pad_left == 0 && p->out_w == p->in_w && p->out_h == p->in_h;
    int32_t q;
    if (pointwise) {
        narrow(p, img, pixels, k_all, w, bias, multiplier, shift, yb);
        return;
    }
    for (q = 0; q < pixels; q += TS_MVE_NARROW_PX) {
        const int32_t n = ts_min32(TS_MVE_NARROW_PX, pixels - q);
        ts_mve_gather(p, img, q, n, buf);
        narrow(p, buf, n, k_all, w, bias, multiplier, shift, yb + (size_t)q * n_out);
    }
}

#endif /* TINYSTUDIO_MVE */
