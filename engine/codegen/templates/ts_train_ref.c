/* ts_train_ref.c - the float32 pieces of an on-device training step (engine/codegen/train_step.py): dequantized
 * activations, softmax cross-entropy and its gradient, the backward of a fully connected layer with its SGD
 * update applied at once (no weight-gradient buffer: MIT's operator reordering), and the requantization of
 * the updated float weights to the int8 grid the forward runs on. */
#include <math.h>
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

/* Per-step requantization onto the fixed grid of the deployed model (scales never change, so the forward's
 * multipliers and shifts stay valid): wq = clamp(round(w / s), -127, 127), bias = round(b / (s_x * s)), and
 * the C kernels' bias with the input zero point folded in, bias - zx * sum(wq). Rows from n_upd on are frozen. */
static int32_t ts_train_round(float v, float lo, float hi)
{
    const float c = v < lo ? lo : (v > hi ? hi : v);
    return (int32_t)(c < 0.0f ? -floorf(-c + 0.5f) : floorf(c + 0.5f));
}

void ts_train_fc_requant(int32_t n_upd, int32_t k, const float *w, const float *wscale, int32_t per_channel,
                         const float *b, const float *bscale, int32_t bscale_per_channel, int32_t x_zp,
                         const int8_t *wq, int8_t *wq_out, int32_t *bias)
{
    int32_t i, j;
    for (i = 0; i < n_upd; ++i) {
        const float s = wscale[per_channel ? i : 0];
        int32_t sum = 0;
        for (j = 0; j < k; ++j) {
            if (w && wq_out) {
                wq_out[(size_t)i * k + j] = (int8_t)ts_train_round(w[(size_t)i * k + j] / s, -127.0f, 127.0f);
            }
            sum += wq[(size_t)i * k + j];
        }
        bias[i] = ts_train_round(b[i] / bscale[bscale_per_channel ? i : 0], -2147483520.0f, 2147483520.0f)
                  - x_zp * sum;
    }
}
