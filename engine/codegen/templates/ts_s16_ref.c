/* TinyStudio kernels for TFLite's 16x8 scheme: int16 activations (zero point 0), int8 weights, int64 bias
 * (tflite-micro's int16 conv, depthwise, fully connected, transpose conv, add/sub and leaky ReLU).
 * Accumulators are int64; with an int64 bias the requantization is the 64-bit MultiplyByQuantizedMultiplier
 * (the Q31 multiplier rounded to Q15, one rounding shift), with an int32 bias the int8 kernels' one. */
#include "tinystudio_kernels.h"
#include "ts_fixedpoint.h"

/* tflite::MultiplyByQuantizedMultiplier(int64_t x, ...) of kernels/internal/common.cc. */
static int32_t ts_mbqm64(int64_t x, int32_t multiplier, int32_t shift)
{
    const int64_t reduced = multiplier < 0x7FFF0000 ? ((int64_t)multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total = 15 - shift;
    const int64_t round = (int64_t)1 << (total - 1);
    return (int32_t)((x * reduced + round) >> total);
}

static int16_t ts_requant16(int64_t acc, const ts_s16_requant *q, int32_t ch)
{
    const int32_t i = q->per_channel ? ch : 0;
    int32_t v;
    if (q->bias) {
        acc += q->bias[ch];
    }
    v = q->acc64 ? ts_mbqm64(acc, q->multiplier[i], q->shift[i])
                 : ts_mbqm(ts_wrap_add((int32_t)acc, 0), q->multiplier[i], q->shift[i]);
    return (int16_t)ts_clamp(v, q->act_min, q->act_max);
}

/* Conv (regular, grouped, depthwise with channel multiplier), NHWC; weights (M, kH, kW, C/group). */
void ts_conv_s16(const ts_conv_s16_params *p, const int16_t *x, int16_t *y)
{
    const int32_t cg = p->in_c / p->group, mg = p->out_c / p->group;
    int32_t b, oy, ox, o, ky, kx, c;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                for (o = 0; o < p->out_c; ++o) {
                    const int32_t c0 = (o / mg) * cg;
                    int64_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;
                            const int16_t *xp = x + (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c + c0;
                            const int8_t *wp = p->w + (((size_t)o * p->k_h + ky) * p->k_w + kx) * cg;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            for (c = 0; c < cg; ++c) {
                                acc += (int64_t)xp[c] * wp[c];
                            }
                        }
                    }
                    y[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c + o] = ts_requant16(acc, &p->q, o);
                }
            }
        }
    }
}

/* Fully connected: x (rows, depth), weights (units, depth). */
void ts_fc_s16(const ts_fc_s16_params *p, const int16_t *x, int16_t *y)
{
    int32_t r, u, k;
    for (r = 0; r < p->rows; ++r) {
        for (u = 0; u < p->units; ++u) {
            int64_t acc = 0;
            for (k = 0; k < p->depth; ++k) {
                acc += (int64_t)x[(size_t)r * p->depth + k] * p->w[(size_t)u * p->depth + k];
            }
            y[(size_t)r * p->units + u] = ts_requant16(acc, &p->q, u);
        }
    }
}

/* TRANSPOSE_CONV: every input pixel scatters (x + input_offset) * w into int64 scratch (one per output). */
static void ts_transpose_conv_scatter(const ts_transpose_conv_params *p, const int8_t *x8, const int16_t *x16,
                                      int64_t *scratch)
{
    const size_t n = (size_t)p->batches * p->out_h * p->out_w * p->out_c;
    int32_t b, iy, ix, c, ky, kx, o;
    size_t i;
    for (i = 0; i < n; ++i) {
        scratch[i] = 0;
    }
    for (b = 0; b < p->batches; ++b) {
        for (iy = 0; iy < p->in_h; ++iy) {
            for (ix = 0; ix < p->in_w; ++ix) {
                for (c = 0; c < p->in_c; ++c) {
                    const size_t at = (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c + c;
                    const int64_t xv = (x16 ? (int64_t)x16[at] : (int64_t)x8[at]) + p->input_offset;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t oy = iy * p->stride_h - p->pad_top + ky;
                        if (oy < 0 || oy >= p->out_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t ox = ix * p->stride_w - p->pad_left + kx;
                            int64_t *sp = scratch + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                            if (ox < 0 || ox >= p->out_w) {
                                continue;
                            }
                            for (o = 0; o < p->out_c; ++o) {
                                sp[o] += xv * p->w[(((size_t)o * p->k_h + ky) * p->k_w + kx) * p->in_c + c];
                            }
                        }
                    }
                }
            }
        }
    }
}

/* int16 (16x8): int64 accumulation, the 64-bit requantization with an int64 bias. */
void ts_transpose_conv_s16(const ts_transpose_conv_params *p, const int16_t *x, int16_t *y, int64_t *scratch)
{
    const size_t n = (size_t)p->batches * p->out_h * p->out_w * p->out_c;
    size_t i;
    ts_transpose_conv_scatter(p, NULL, x, scratch);
    for (i = 0; i < n; ++i) {
        y[i] = ts_requant16(scratch[i], &p->q, (int32_t)(i % (size_t)p->out_c));
    }
}

/* int8: tflite-micro's int32 scratch (the int64 sums wrap to int32 exactly as its int32 sums do). */
void ts_transpose_conv_s8(const ts_transpose_conv_params *p, const int8_t *x, int8_t *y, int64_t *scratch)
{
    const size_t n = (size_t)p->batches * p->out_h * p->out_w * p->out_c;
    size_t i;
    ts_transpose_conv_scatter(p, x, NULL, scratch);
    for (i = 0; i < n; ++i) {
        const int32_t ch = (int32_t)(i % (size_t)p->out_c), k = p->q.per_channel ? ch : 0;
        const int32_t acc = ts_wrap_add((int32_t)(uint32_t)(uint64_t)scratch[i],
                                        p->q.bias ? (int32_t)p->q.bias[ch] : 0);
        const int32_t v = ts_mbqm(acc, p->q.multiplier[k], p->q.shift[k]) + p->output_offset;
        y[i] = (int8_t)ts_clamp(v, p->q.act_min, p->q.act_max);
    }
}

/* ADD/SUB on int16 (lift 2**15), broadcasting with the int8 kernels' ts_bcast strides (in elements). */
void ts_add_s16(const ts_add_params *p, const int16_t *a, const int16_t *b, int16_t *y)
{
    const ts_bcast *it = &p->it;
    int32_t idx[TS_MAX_DIMS] = {0};
    const int32_t last = it->ndim - 1, n = it->shape[last];
    const int32_t lift = (int32_t)1 << p->left_shift;
    ptrdiff_t ao = 0, bo = 0;
    int32_t d, i;
    for (;;) {
        for (i = 0; i < n; ++i) {
            const int32_t x1 = ts_mbqm((a[ao + (ptrdiff_t)i * it->a_stride[last]] + p->a_offset) * lift,
                                       p->a_multiplier, p->a_shift);
            const int32_t x2 = ts_mbqm((b[bo + (ptrdiff_t)i * it->b_stride[last]] + p->b_offset) * lift,
                                       p->b_multiplier, p->b_shift);
            const int32_t raw = p->subtract ? ts_wrap_sub(x1, x2) : ts_wrap_add(x1, x2);
            const int32_t v = ts_mbqm(raw, p->out_multiplier, p->out_shift) + p->output_offset;
            y[i] = (int16_t)ts_clamp(v, p->act_min, p->act_max);
        }
        y += n;
        for (d = last - 1; d >= 0; --d) {
            ao += it->a_stride[d];
            bo += it->b_stride[d];
            if (++idx[d] < it->shape[d]) {
                break;
            }
            ao -= (ptrdiff_t)it->a_stride[d] * it->shape[d];
            bo -= (ptrdiff_t)it->b_stride[d] * it->shape[d];
            idx[d] = 0;
        }
        if (d < 0) {
            return;
        }
    }
}

/* LEAKY_RELU on int16: the identity multiplier for x >= 0, alpha's below (reference_ops::QuantizeLeakyRelu). */
void ts_leaky_relu_s16(const ts_leaky_s16_params *p, const int16_t *x, int16_t *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t v = x[i] - p->x_zp;
        const int32_t r = v >= 0 ? ts_mbqm(v, p->m_identity, p->e_identity) : ts_mbqm(v, p->m_alpha, p->e_alpha);
        y[i] = (int16_t)ts_clamp(r + p->y_zp, -32768, 32767);
    }
}

/* QUANTIZE between integer grids of the 16x8 scheme (int16 <-> int32, int16 -> int8): reference_ops::Requantize. */
void ts_requantize_int(const ts_requant_int_params *p, const void *x, void *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t v = p->x_bytes == 4 ? ((const int32_t *)x)[i] : (int32_t)((const int16_t *)x)[i];
        const int32_t r = ts_mbqm(ts_wrap_sub(v, p->x_zp), p->multiplier, p->shift);
        const int64_t out = (int64_t)r + p->y_zp;
        const int32_t c = (int32_t)(out < p->y_min ? p->y_min : (out > p->y_max ? p->y_max : out));
        if (p->y_bytes == 4) {
            ((int32_t *)y)[i] = c;
        } else if (p->y_bytes == 2) {
            ((int16_t *)y)[i] = (int16_t)c;
        } else {
            ((int8_t *)y)[i] = (int8_t)c;
        }
    }
}
