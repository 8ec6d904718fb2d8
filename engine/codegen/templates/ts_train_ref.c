/* ts_train_ref.c - the float32 pieces of an on-device training step (engine/codegen/train_step.py): dequantized
 * activations, softmax cross-entropy and its gradient, the backward of a fully connected layer with its SGD
 * update applied at once (no weight-gradient buffer: MIT's operator reordering), the same for KxK and
 * depthwise convolutions, and the int8 forward of trained layers, requantizing their float weights on the fly. */
#include <math.h>
#include "ts_fixedpoint.h"
#include "ts_train.h"

void ts_train_dequant(const int8_t *q, int32_t n, float scale, int32_t zero_point, float *out)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = (float)(q[i] - zero_point) * scale;
    }
}

float ts_train_softmax_xent(const float *z, int32_t n, int32_t label, float *dz)
{
    int32_t i;
    float zmax = z[0], sum = 0.0f;
    for (i = 1; i < n; ++i) {
        zmax = z[i] > zmax ? z[i] : zmax;
    }
    for (i = 0; i < n; ++i) {
        dz[i] = expf(z[i] - zmax);
        sum += dz[i];
    }
    for (i = 0; i < n; ++i) {
        dz[i] = dz[i] / sum - (i == label ? 1.0f : 0.0f);
    }
    return logf(sum) + zmax - z[label];
}

/* A fully connected layer, or a 1x1 conv as `batches` pixels of one (NHWC). dy (batches x n) is the gradient
 * of the layer's output; with relu_zp >= -128 it is masked where the int8 output y sat at or below the zero
 * point (the fused ReLU's derivative). x is the int8 input, dequantized on the fly. dx (batches x k, may be
 * NULL): W^T dy with the weights before this step's update; w is the float copy (trained rows: the first
 * n_upd; NULL for a frozen layer, whose int8 weights wq and scales wscale give W). gw/gb (may be NULL): the
 * gradients, kept only by test builds. The update is applied at once, row by row (no dW buffer). */
void ts_train_fc_backward(int32_t batches, int32_t n, int32_t k, float *dy, const int8_t *y, int32_t relu_zp,
                          const int8_t *x, float x_scale, int32_t x_zp, float *w, const int8_t *wq,
                          const float *wscale, int32_t per_channel, float *b, int32_t n_upd, int32_t update_w,
                          float lr, float *dx, float *gw, float *gb)
{
    int32_t i, j, t;
    const size_t bn = (size_t)batches * n;
    size_t e;
    if (relu_zp >= -128) {
        for (e = 0; e < bn; ++e) {
            dy[e] = y[e] > relu_zp ? dy[e] : 0.0f;
        }
    }
    if (dx) {
        for (t = 0; t < batches; ++t) {
            float *dxt = dx + (size_t)t * k;
            const float *dyt = dy + (size_t)t * n;
            for (j = 0; j < k; ++j) {
                dxt[j] = 0.0f;
            }
            for (i = 0; i < n; ++i) {
                const float s = wscale[per_channel ? i : 0];
                for (j = 0; j < k; ++j) {
                    const float wij = (w && i < n_upd && update_w) ? w[(size_t)i * k + j]
                                                                    : (float)wq[(size_t)i * k + j] * s;
                    dxt[j] += wij * dyt[i];
                }
            }
        }
    }
    for (i = 0; i < n_upd; ++i) {
        if (update_w) {
            for (j = 0; j < k; ++j) {
                float g = 0.0f;
                for (t = 0; t < batches; ++t) {
                    g += dy[(size_t)t * n + i] * ((float)(x[(size_t)t * k + j] - x_zp) * x_scale);
                }
                if (gw) {
                    gw[(size_t)i * k + j] = g;
                }
                w[(size_t)i * k + j] -= lr * g;
            }
        }
        if (b) {
            float g = 0.0f;
            for (t = 0; t < batches; ++t) {
                g += dy[(size_t)t * n + i];
            }
            if (gb) {
                gb[i] = g;
            }
            b[i] -= lr * g;
        }
    }
}

/* Global average pooling over `pixels` (NHWC): every input pixel gets dy / pixels. */
void ts_train_gap_backward(int32_t pixels, int32_t c, const float *dy, float *dx)
{
    int32_t p, j;
    for (p = 0; p < pixels; ++p) {
        for (j = 0; j < c; ++j) {
            dx[(size_t)p * c + j] = dy[j] / (float)pixels;
        }
    }
}

/* Round half away from zero after clamping to [lo, hi] (the requantization rule of the trained weights). */
static int32_t ts_train_round(float v, float lo, float hi)
{
    const float c = v < lo ? lo : (v > hi ? hi : v);
    return (int32_t)(c < 0.0f ? -floorf(-c + 0.5f) : floorf(c + 0.5f));
}

/* Weight (m, i, j, c) of a conv in the int8 kernels' storage: regular/grouped (M, kH, kW, C/groups),
 * depthwise (kH, kW, M). The float32 copies of trained channels (and their gradients) are channel-major,
 * (n_upd, kH, kW, C/groups), so that they hold the trained channels only: ts_train_midx. */
static size_t ts_train_widx(const ts_conv_params *p, int32_t depthwise, int32_t m, int32_t i, int32_t j, int32_t c)
{
    if (depthwise) {
        return ((size_t)i * p->k_w + j) * p->out_c + (size_t)m;
    }
    return (((size_t)m * p->k_h + i) * p->k_w + j) * (size_t)(p->in_c / p->groups) + (size_t)c;
}

static size_t ts_train_midx(const ts_conv_params *p, int32_t depthwise, int32_t m, int32_t i, int32_t j, int32_t c)
{
    const int32_t cg = depthwise ? 1 : p->in_c / p->groups;
    return (((size_t)m * p->k_h + i) * p->k_w + j) * (size_t)cg + (size_t)c;
}

/* A KxK convolution (any stride, dilation, padding, groups; depthwise with the depthwise storage), NHWC,
 * batch p->batches. dy (out pixels x out_c) is masked where the int8 output y is outside (relu_lo, relu_hi)
 * (a fused ReLU / ReLU6; -129 and 128 for none). dx (may be NULL): the transposed convolution of dy with the
 * weights before this step's update. Then, per trained output channel m < n_upd, every weight gradient
 * (the correlation of dy with the dequantized input, padding taps skipped) is computed and applied at once,
 * and the bias gradient, the sum of dy over the pixels. gw/gb (may be NULL): kept by test builds. */
void ts_train_conv_backward(const ts_conv_params *p, int32_t depthwise, float *dy, const int8_t *y, int32_t relu_lo,
                            int32_t relu_hi, const int8_t *x, float x_scale, float *w, const int8_t *wq,
                            const float *wscale, int32_t per_channel, float *b, int32_t n_upd, int32_t update_w,
                            float lr, float *dx, float *gw, float *gb)
{
    const int32_t cg = depthwise ? 1 : p->in_c / p->groups, mg = depthwise ? p->out_c / p->in_c : p->out_c / p->groups;
    const int32_t x_zp = -p->input_offset;
    const size_t out_px = (size_t)p->batches * p->out_h * p->out_w, in_img = (size_t)p->in_h * p->in_w * p->in_c;
    int32_t bt, oh, ow, m, i, j, c;
    size_t e;
    if (relu_lo >= -128 || relu_hi <= 127) {
        for (e = 0; e < out_px * (size_t)p->out_c; ++e) {
            dy[e] = (y[e] > relu_lo && y[e] < relu_hi) ? dy[e] : 0.0f;
        }
    }
    if (dx) {
        for (e = 0; e < (size_t)p->batches * in_img; ++e) {
            dx[e] = 0.0f;
        }
        for (bt = 0; bt < p->batches; ++bt) {
            for (oh = 0; oh < p->out_h; ++oh) {
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                    const float *dyp = dy + (((size_t)bt * p->out_h + oh) * p->out_w + ow) * p->out_c;
                    for (m = 0; m < p->out_c; ++m) {
                        const float s = wscale[per_channel ? m : 0], d = dyp[m];
                        const int32_t c0 = (m / mg) * cg;
                        const int32_t trained = w && update_w && m < n_upd;
                        if (d == 0.0f) {
                            continue;
                        }
                        for (i = 0; i < p->k_h; ++i) {
                            const int32_t ih = h0 + i * p->dil_h;
                            if (ih < 0 || ih >= p->in_h) {
                                continue;
                            }
                            for (j = 0; j < p->k_w; ++j) {
                                const int32_t iw = w0 + j * p->dil_w;
                                float *dxp;
                                if (iw < 0 || iw >= p->in_w) {
                                    continue;
                                }
                                dxp = dx + (size_t)bt * in_img + ((size_t)ih * p->in_w + iw) * p->in_c + c0;
                                for (c = 0; c < cg; ++c) {
                                    dxp[c] += (trained ? w[ts_train_midx(p, depthwise, m, i, j, c)]
                                                       : (float)wq[ts_train_widx(p, depthwise, m, i, j, c)] * s) * d;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for (m = 0; m < n_upd; ++m) {
        const int32_t c0 = (m / mg) * cg;
        if (update_w) {
            for (i = 0; i < p->k_h; ++i) {
                for (j = 0; j < p->k_w; ++j) {
                    for (c = 0; c < cg; ++c) {
                        const size_t k = ts_train_midx(p, depthwise, m, i, j, c);
                        float g = 0.0f;
                        for (bt = 0; bt < p->batches; ++bt) {
                            for (oh = 0; oh < p->out_h; ++oh) {
                                const int32_t ih = oh * p->stride_h - p->pad_top + i * p->dil_h;
                                if (ih < 0 || ih >= p->in_h) {
                                    continue;
                                }
                                for (ow = 0; ow < p->out_w; ++ow) {
                                    const int32_t iw = ow * p->stride_w - p->pad_left + j * p->dil_w;
                                    if (iw < 0 || iw >= p->in_w) {
                                        continue;
                                    }
                                    g += dy[(((size_t)bt * p->out_h + oh) * p->out_w + ow) * p->out_c + m]
                                         * ((float)(x[(size_t)bt * in_img + ((size_t)ih * p->in_w + iw) * p->in_c
                                                      + c0 + c] - x_zp) * x_scale);
                                }
                            }
                        }
                        if (gw) {
                            gw[k] = g;
                        }
                        w[k] -= lr * g;
                    }
                }
            }
        }
        if (b) {
            float g = 0.0f;
            for (e = 0; e < out_px; ++e) {
                g += dy[e * p->out_c + m];
            }
            if (gb) {
                gb[m] = g;
            }
            b[m] -= lr * g;
        }
    }
}

/* The int8 forward of a layer with trained channels, the same integer arithmetic as ts_conv_s8_ref /
 * ts_depthwise_conv_s8_ref (a fully connected layer is a 1x1 conv over its rows) on weights requantized on the
 * fly from the float32 copies onto the deployed grid (the scales never change, so the multipliers and shifts
 * stay valid): wq = clamp(round(w / s_w), -127, 127), bias = round(b / s_b), half away from zero. Channels
 * from n_w on take the int8 weights wq, from n_b on the int32 bias bq, both as deployed (flash). One output
 * channel at a time: its weights are requantized once into `row` (kH * kW * C/groups bytes), then every pixel
 * is computed; no int8 copy of the trained weights is kept. */
void ts_train_forward(const ts_conv_params *p, int32_t depthwise, const int8_t *x, const int8_t *wq,
                      const int32_t *bq, const int32_t *multiplier, const int8_t *shift, const float *w,
                      const float *wscale, int32_t per_channel, const float *b, const float *bscale, int32_t n_w,
                      int32_t n_b, int8_t *row, int8_t *y)
{
    const int32_t cg = depthwise ? 1 : p->in_c / p->groups, mg = depthwise ? p->out_c / p->in_c : p->out_c / p->groups;
    int32_t bt, oh, ow, m, i, j, c;
    for (m = 0; m < p->out_c; ++m) {
        const int32_t ch = p->per_channel ? m : 0, c0 = (m / mg) * cg;
        const float s = wscale[per_channel ? m : 0];
        const int32_t bias = m < n_b ? ts_train_round(b[m] / bscale[m], -2147483520.0f, 2147483520.0f) : bq[m];
        for (i = 0; i < p->k_h; ++i) {
            for (j = 0; j < p->k_w; ++j) {
                for (c = 0; c < cg; ++c) {
                    const size_t r = ((size_t)i * p->k_w + j) * (size_t)cg + (size_t)c;
                    row[r] = m < n_w ? (int8_t)ts_train_round(w[ts_train_midx(p, depthwise, m, i, j, c)] / s, -127.0f,
                                                              127.0f)
                                     : wq[ts_train_widx(p, depthwise, m, i, j, c)];
                }
            }
        }
        for (bt = 0; bt < p->batches; ++bt) {
            const int8_t *img = x + (size_t)bt * p->in_h * p->in_w * p->in_c;
            for (oh = 0; oh < p->out_h; ++oh) {
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                    int32_t acc = bias;
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            const int8_t *xp, *rp;
                            if (iw < 0 || iw >= p->in_w) {
                                continue;
                            }
                            xp = img + ((size_t)ih * p->in_w + iw) * p->in_c + c0;
                            rp = row + ((size_t)i * p->k_w + j) * (size_t)cg;
                            for (c = 0; c < cg; ++c) {
                                acc += (xp[c] + p->input_offset) * rp[c];
                            }
                        }
                    }
                    y[(((size_t)bt * p->out_h + oh) * p->out_w + ow) * p->out_c + m] =
                        ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
