/* tinystudio_kernels.h - int8 kernels of TinyStudio's generated C (TFLite's int8 arithmetic, bit-exact): the
 * public header, the only one the generated model includes.
 *
 * Every kernel takes a const parameter struct (made by the code generator, in flash), tensor pointers
 * and, for conv/fc, per-channel multipliers and shifts precomputed in Python: the int8 path has no
 * floating point. Activations are NHWC int8. The library is one file per kernel family and ISA level, and a
 * bundle holds only the files its layers call (with the helpers they include):
 *   ts_fixedpoint.h/.c   fixed-point helpers (requantization, saturating and wrapping ops, int4 weights);
 *   ts_<family>_ref.c    portable reference loops (the oracle, and the fallback on any C99 compiler), and the
 *                        family's entry points, which hand over to an optimized file where it is built;
 *   ts_<family>_dsp.c    the DSP path for Armv7E-M / Armv8-M mainline (__SXTB16/__SXTAB16 + __SMLAD via
 *                        <arm_acle.h>, instruction layer in ts_dsp.h), compiled when __ARM_FEATURE_DSP is
 *                        defined and TINYSTUDIO_USE_DSP is 1 (the default), empty otherwise;
 *   ts_<family>_mve.c    the Helium (MVE) path for Cortex-M55/M85 (<arm_mve.h>, layer in ts_mve.h), compiled
 *                        when integer MVE is present and TINYSTUDIO_USE_MVE is 1 (the default), on top of the DSP
 *                        path; QEMU mps3-an547 checks it (there is no host emulation);
 *   families: conv, depthwise, fc, elementwise (ts_elementwise.h), pool, softmax, movement.
 * Define TINYSTUDIO_EMULATE_DSP to compile the DSP path on any host with portable C versions of the
 * instructions, which is how the host tests check that both paths give identical bytes.
 * The DSP path assumes a little-endian target (all Cortex-M cores in practice).
 */
#ifndef TINYSTUDIO_KERNELS_H
#define TINYSTUDIO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TINYSTUDIO_USE_DSP
#define TINYSTUDIO_USE_DSP @USE_DSP_DEFAULT@
#endif

/* Whether the DSP conv links its eight-pixel pointwise block (ts_conv_dsp.c, ~1.3 KB of code): the generator
 * writes 0 here for a library without a layer that can take it. */
#ifndef TINYSTUDIO_CONV_EIGHT
#define TINYSTUDIO_CONV_EIGHT 1
#endif
/* Likewise its loops for pointwise layers with 8 or 16 input channels (ts_conv_pwnarrow_dsp.h, ~1.2 KB). */
#ifndef TINYSTUDIO_CONV_NARROW
#define TINYSTUDIO_CONV_NARROW 1
#endif
/* Likewise the 3x3-over-3-channels kernel (ts_conv_rgb_dsp.h), the old first-layer assembly for K % 4 != 0
 * (ts_conv_first_dsp.h), the small-image stride-1 depthwise (ts_depthwise_small_dsp.h, ts_depthwise_srows_dsp.h)
 * and the stride-2 depthwise (ts_depthwise_s2_dsp.h). At 0 a path's test is constant false, so the compiler
 * drops its code and its layers run the general DSP loops: a wrong 0 costs speed, never a result. */
#ifndef TINYSTUDIO_CONV_RGB
#define TINYSTUDIO_CONV_RGB 1
#endif
#ifndef TINYSTUDIO_CONV_FIRST
#define TINYSTUDIO_CONV_FIRST 1
#endif
#ifndef TINYSTUDIO_DW_SMALL
#define TINYSTUDIO_DW_SMALL 1
#endif
#ifndef TINYSTUDIO_DW_S2
#define TINYSTUDIO_DW_S2 1
#endif
/* The depthwise 4-channel blocks (ts_dw_group: ts_depthwise_blocks_dsp.h, the padded copy); at 0 the layers that
 * would take them run the per-channel loop of the last in_c % 4 channels. */
#ifndef TINYSTUDIO_DW_GROUP
#define TINYSTUDIO_DW_GROUP 1
#endif

#if defined(TINYSTUDIO_EMULATE_DSP) || (defined(__ARM_FEATURE_DSP) && TINYSTUDIO_USE_DSP)
#define TINYSTUDIO_DSP 1
#else
#define TINYSTUDIO_DSP 0
#endif

/* Helium (integer MVE: Cortex-M55/M85) kernels in ts_<family>_mve.c, on top of the DSP path (whose scratch
 * they reuse); TINYSTUDIO_USE_MVE 0 keeps such a core on the DSP kernels. */
#ifndef TINYSTUDIO_USE_MVE
#define TINYSTUDIO_USE_MVE 1
#endif
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && TINYSTUDIO_USE_MVE && TINYSTUDIO_DSP
#define TINYSTUDIO_MVE 1
#else
#define TINYSTUDIO_MVE 0
#endif
/* 0 where no layer of the library sets general_requant (the generator writes it so): the Helium kernels then
 * leave out their general-requantization copies (code text); 1, the default, keeps them for any caller. */
#ifndef TINYSTUDIO_GENERAL_REQUANT
#define TINYSTUDIO_GENERAL_REQUANT 1
#endif

#define TS_MAX_DIMS 6

/* Convolution, NHWC. Regular/grouped conv weights are (out_c, k_h, k_w, in_c / groups); depthwise
 * weights are (k_h, k_w, out_c) with out_c = in_c * multiplier. Taps outside the image are skipped
 * (TFLite), which is padding with the input zero point. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t groups;          /* 1 for a regular conv; depthwise kernels ignore it */
    int32_t input_offset;    /* -input zero point */
    int32_t output_offset;   /* output zero point */
    int32_t act_min, act_max;
    int32_t per_channel;     /* 0: multiplier[0]/shift[0] for every channel */
    int32_t general_requant; /* 1: the DSP path requantizes with the portable arithmetic (ts_dsp.h) */
} ts_conv_params;

/* Fully connected: y[b, n] = sum_k (x[b, k] + input_offset) * w[n, k] + bias[n], weights (out, in). */
typedef struct {
    int32_t batches, in_features, out_features;
    int32_t input_offset, output_offset, act_min, act_max, per_channel, general_requant;
} ts_fc_params;

/* Broadcast iteration of a binary op over `ndim` (merged) dims, innermost last; strides in elements,
 * 0 where an input is broadcast. The output is contiguous. */
typedef struct {
    int32_t ndim;
    int32_t shape[TS_MAX_DIMS];
    int32_t a_stride[TS_MAX_DIMS];
    int32_t b_stride[TS_MAX_DIMS];
} ts_bcast;

/* ADD/SUB (TFLite): both inputs lifted by 2**left_shift, rescaled to a common scale, summed, rescaled. */
typedef struct {
    ts_bcast it;
    int32_t a_offset, b_offset, left_shift;
    int32_t a_multiplier, a_shift, b_multiplier, b_shift;
    int32_t out_multiplier, out_shift, output_offset, act_min, act_max;
    int32_t subtract;
    int32_t general_requant;  /* 1: the DSP build requantizes with the portable arithmetic (ts_dsp.h) */
    /* lin_shift > 0: the int8 result is clamp((lin_c + a * lin_a + b * lin_b) >> lin_shift) for every input
     * pair, proved by the generator (engine/int8/dsp_requant.py add_linear_form); the DSP build computes that. */
    int32_t lin_a, lin_b, lin_c, lin_shift;
} ts_add_params;

typedef struct {
    ts_bcast it;
    int32_t a_offset, b_offset, multiplier, shift, output_offset, act_min, act_max;
} ts_mul_params;

typedef struct {
    ts_bcast it;
    int32_t is_min;          /* 0: maximum, 1: minimum (both inputs on one grid: integers compare) */
} ts_minmax_params;

/* Pooling, NHWC. Average: sum of in-image cells divided by the cells inside [count_*_lo, count_*_hi)
 * (the image, or the image plus explicit pads for count_include_pad), rounded half away from zero. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t count_h_lo, count_h_hi, count_w_lo, count_w_hi;
    int32_t act_min, act_max;
} ts_pool_params;

/* MEAN / SUM over the middle axis of (outer, reduce, inner): one requantization of the int32 sum. */
typedef struct {
    int32_t outer, reduce, inner;
    int32_t input_offset;    /* -input zero point, times `reduce` inside the kernel */
    int32_t multiplier, shift, output_offset;
} ts_mean_params;

typedef struct {
    int32_t outer, reduce, inner, is_min;
} ts_reduce_params;

/* Softmax over rows of `depth` (gemmlowp fixed point, output scale 1/256, zero point -128). */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} ts_softmax_params;

/* Strided copy: y[sum i_d * y_stride_d] = x[sum i_d * x_stride_d] over `shape` (strides in elements,
 * negative allowed), optionally through a 256-entry table (requantization between grids). */
typedef struct {
    int32_t ndim;
    int32_t shape[TS_MAX_DIMS];
    int32_t x_stride[TS_MAX_DIMS];
    int32_t y_stride[TS_MAX_DIMS];
} ts_copy_params;

/* SVDF (ts_svdf_ref.c): x (batches, n_input) int8, weights_feature (filters, n_input) int8, weights_time
 * (filters, memory) and the state (batches, filters * memory) int16 (state_bits 16) or int8 (8); filters =
 * units * rank; bias (units) int32 or NULL. The state is updated in place. */
typedef struct {
    int32_t batches, n_input, filters, units, memory, rank;
    int32_t input_offset;      /* -input zero point */
    int32_t output_offset, state_zero_point, state_bits;
    int32_t multiplier1, shift1;  /* input * weights_feature -> state */
    int32_t multiplier2, shift2;  /* state * weights_time -> output */
    int32_t act_min, act_max;     /* output clamp (a fused RELU of a graph TinyStudio quantized) */
} ts_svdf_params;

/* LSTM (ts_lstm_ref.c): x (steps, batches, n_input) int8, time-major; weights (4, hidden, n_input) and
 * (4, hidden, hidden) int8 and bias (4, hidden) int32, gates i, f, c, o; state h (batches, hidden) int8 and
 * c (batches, hidden) int16, updated in place; y (steps, batches, hidden) int8. */
typedef struct {
    int32_t steps, batches, n_input, hidden;
    int32_t input_offset, hidden_offset, hidden_zp;   /* -x zero point, -h zero point, h zero point */
    int32_t fc_x_mult[4], fc_x_shift[4];   /* input FC -> Q3.12, per gate */
    int32_t fc_h_mult[4], fc_h_shift[4];   /* recurrent FC -> Q3.12, per gate */
    int32_t forget_mult, forget_shift, input_mult, input_shift, output_mult, output_shift;
    int32_t tanh_mult, tanh_shift;         /* tanh of the cell state (its scale 2^power) */
    int32_t cell_clip;                     /* quantized; 0: none */
} ts_lstm_params;

/* Fixed-point helpers (gemmlowp / TFLite MultiplyByQuantizedMultiplier, double rounding). */
int32_t ts_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t ts_rounding_divide_by_pot(int32_t x, int32_t exponent);
int32_t ts_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

void ts_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch);
/* Weights pre-widened to int16, two per word (CodegenOptions.wide_weights): faster on the DSP path. */
void ts_conv_s8_w16(const ts_conv_params *p, const int8_t *x, const int32_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch);
void ts_depthwise_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_fully_connected_s8(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y);
/* The portable kernels, callable on every build (the DSP entry points above fall back to them). */
void ts_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_depthwise_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_fully_connected_s8_ref(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y);

/* The same with int4 weights packed two per byte (low nibble first), in the int8 kernels' layouts; portable
 * loops on every build. */
void ts_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_depthwise_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_fully_connected_s4(const ts_fc_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y);
/* The portable depthwise loop on output channels [c0, c0 + cg) only, channel multiplier 1, cg channels per pixel
 * in y (x keeps all in_c channels per pixel; ts_depthwise_ref.c): one channel group of the in-place schedule. */
void ts_depthwise_channels_s8(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const int8_t *w,
                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_depthwise_channels_s4(const ts_conv_params *p, int32_t c0, int32_t cg, const int8_t *x, const uint8_t *w,
                              const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y);
/* In-place depthwise conv (batch 1, multiplier 1; ts_schedule_ref.c): the output written over its input xy,
 * `group` channels at a time through tmp (out_h * out_w * group bytes). */
void ts_depthwise_inplace_s8(const ts_conv_params *p, int32_t group, int8_t *xy, const int8_t *w,
                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp);
void ts_depthwise_inplace_s4(const ts_conv_params *p, int32_t group, int8_t *xy, const uint8_t *w,
                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *tmp);

void ts_add_s8(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y);
void ts_mul_s8(const ts_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y);
void ts_minmax_s8(const ts_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *y);
void ts_avg_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y);
void ts_avg_pool_s8_ref(const ts_pool_params *p, const int8_t *x, int8_t *y);
void ts_max_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y);
void ts_mean_s8(const ts_mean_params *p, const int8_t *x, int8_t *y);
void ts_reduce_minmax_s8(const ts_reduce_params *p, const int8_t *x, int8_t *y);
void ts_softmax_s8(const ts_softmax_params *p, const int8_t *x, int8_t *y);
/* y[i] = table[x[i] + 128]: unary activations and int8 -> int8 requantization (tables made in Python). */
void ts_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table);
void ts_lstm_s8(const ts_lstm_params *p, const int8_t *x, const int8_t *w_x, const int8_t *w_h,
                const int32_t *bias, int8_t *h, int16_t *c, int8_t *y, int16_t *buf);
void ts_svdf_s8(const ts_svdf_params *p, const int8_t *x, const int8_t *wf, const void *wt, const int32_t *bias,
                void *state, int8_t *y);
void ts_copy_s8(const ts_copy_params *p, const int8_t *x, int8_t *y, const int8_t *table);
/* y[i] = index[i] < 0 ? fill : x[index[i]]: data movement with an irregular pattern (Gather, Resize, Pad). */
void ts_gather_s8(const int8_t *x, const int32_t *index, int32_t n, int32_t fill, int8_t *y);

/* ---- 16x8 kernels (ts_s16_ref.c): int16 activations, int8 weights, int64 (or int32) bias ---- */
typedef struct {
    const int64_t *bias;          /* NULL: no bias */
    const int32_t *multiplier;    /* Q31, one per channel or one */
    const int32_t *shift;
    int32_t per_channel, acc64, act_min, act_max;
} ts_s16_requant;

typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, group;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    const int8_t *w;              /* (M, kH, kW, C/group) minus zero points */
    ts_s16_requant q;
} ts_conv_s16_params;

typedef struct {
    int32_t rows, depth, units;
    const int8_t *w;              /* (units, depth) */
    ts_s16_requant q;
} ts_fc_s16_params;

typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left, input_offset, output_offset;
    const int8_t *w;              /* (M, kH, kW, C) minus zero points */
    ts_s16_requant q;             /* int8: bias values within int32, acc64 0 */
} ts_transpose_conv_params;

typedef struct {
    int32_t x_zp, y_zp, m_identity, e_identity, m_alpha, e_alpha;
} ts_leaky_s16_params;

void ts_conv_s16(const ts_conv_s16_params *p, const int16_t *x, int16_t *y);
void ts_fc_s16(const ts_fc_s16_params *p, const int16_t *x, int16_t *y);
/* TRANSPOSE_CONV, int16 and int8; scratch: one int64 per output element */
void ts_transpose_conv_s16(const ts_transpose_conv_params *p, const int16_t *x, int16_t *y, int64_t *scratch);
void ts_transpose_conv_s8(const ts_transpose_conv_params *p, const int8_t *x, int8_t *y, int64_t *scratch);
void ts_add_s16(const ts_add_params *p, const int16_t *a, const int16_t *b, int16_t *y);
void ts_leaky_relu_s16(const ts_leaky_s16_params *p, const int16_t *x, int16_t *y, int32_t n);

typedef struct {
    int32_t x_bytes, y_bytes;     /* 2 or 4; 1, 2 or 4 */
    int32_t x_zp, y_zp, multiplier, shift, y_min, y_max;
} ts_requant_int_params;

void ts_requantize_int(const ts_requant_int_params *p, const void *x, void *y, int32_t n);

#ifdef __cplusplus
}
#endif

#endif /* TINYSTUDIO_KERNELS_H */
