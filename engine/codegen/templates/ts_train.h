/* ts_train.h - float32 kernels of the on-device training step (ts_train_ref.c). */
#ifndef TS_TRAIN_H
#define TS_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "tinystudio_kernels.h"

void ts_train_dequant(const int8_t *q, int32_t n, float scale, int32_t zero_point, float *out);
float ts_train_softmax_xent(const float *z, int32_t n, int32_t label, float *dz);
void ts_train_fc_backward(int32_t batches, int32_t n, int32_t k, float *dy, const int8_t *y, int32_t relu_zp,
                          const int8_t *x, float x_scale, int32_t x_zp, float *w, const int8_t *wq,
                          const float *wscale, int32_t per_channel, float *b, int32_t n_upd, int32_t update_w,
                          float lr, float *dx, float *gw, float *gb);
void ts_train_gap_backward(int32_t pixels, int32_t c, const float *dy, float *dx);
void ts_train_conv_backward(const ts_conv_params *p, int32_t depthwise, float *dy, const int8_t *y, int32_t relu_lo,
                            int32_t relu_hi, const int8_t *x, float x_scale, float *w, const int8_t *wq,
                            const float *wscale, int32_t per_channel, float *b, int32_t n_upd, int32_t update_w,
                            float lr, float *dx, float *gw, float *gb);
void ts_train_forward(const ts_conv_params *p, int32_t depthwise, const int8_t *x, const int8_t *wq,
                      const int32_t *bq, const int32_t *multiplier, const int8_t *shift, const float *w,
                      const float *wscale, int32_t per_channel, const float *b, const float *bscale, int32_t n_w,
                      int32_t n_b, int8_t *row, int8_t *y);

#endif
