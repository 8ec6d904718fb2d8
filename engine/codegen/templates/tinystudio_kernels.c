/* tinystudio_kernels.c - int8 kernels of TinyStudio's generated C.
 *
 * The arithmetic is TFLite's int8 reference arithmetic, line for line with TinyStudio's numpy kernels
 * (engine/int8): int32 accumulators, MultiplyByQuantizedMultiplier in gemmlowp's double-rounding form,
 * gemmlowp fixed-point exp for softmax. Signed overflow never happens: the generator proves every conv and
 * fully connected accumulator range fits int32 (and refuses the layer otherwise); sums that TFLite lets
 * wrap are computed in uint32. No malloc, no stdio, no floating point.
 *
 * Sections: fixed point; portable conv / depthwise / fully connected (the oracle); the DSP path
 * (instruction layer with its host emulation, requantization, im2col + 4-pixel blocks, depthwise by groups
 * of 4 channels, fully connected by 4 rows); dispatch; element-wise, pooling, softmax, data movement.
 */
#include "tinystudio_kernels.h"

#include <string.h>

#if TINYSTUDIO_DSP && !defined(TINYSTUDIO_EMULATE_DSP)
#include <arm_acle.h>
#endif

static int32_t ts_min32(int32_t a, int32_t b) { return a < b ? a : b; }
static int32_t ts_max32(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t ts_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
/* int32 addition that wraps like the int32 arithmetic TFLite relies on (no undefined overflow). */
static int32_t ts_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t ts_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* ---- fixed point (gemmlowp) ------------------------------------------------------------------------ */

/* round(a * b / 2**31), the one overflow (MIN * MIN) saturating to MAX. (ab + 2**30) >> 31 equals
 * gemmlowp's nudge-and-truncate form for both signs. */
int32_t ts_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* x / 2**exponent rounded to nearest, halves away from zero; exponent in [0, 31]. */
int32_t ts_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* The same for exponents up to 62, on int64 as the reference does (softmax's output exponent). */
static int32_t ts_rounding_divide_by_pot64(int32_t x, int32_t exponent)
{
    const int64_t mask = ((int64_t)1 << exponent) - 1;
    const int64_t remainder = (int64_t)x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* TFLite MultiplyByQuantizedMultiplier: a positive shift multiplies first (wrapping like C's int32
 * x * (1 << shift) on the targets TFLite runs on), a negative one divides with rounding. shift <= 31. */
static int32_t ts_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t lifted = (int32_t)((uint32_t)x << left);
    return ts_rounding_divide_by_pot(ts_saturating_rounding_doubling_high_mul(lifted, multiplier), right);
}

int32_t ts_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    return ts_mbqm(x, multiplier, shift);
}

#define TS_MBQM ts_mbqm

static int8_t ts_requant(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset, int32_t lo,
                         int32_t hi)
{
    return (int8_t)ts_clamp(TS_MBQM(acc, multiplier, shift) + out_offset, lo, hi);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent. */
static int32_t ts_saturating_left_shift(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return x * ((int32_t)1 << exponent);
}

#define TS_SRDHM ts_saturating_rounding_doubling_high_mul

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor expansion around -1/8. */
static int32_t ts_exp_quarter_interval(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = ts_wrap_add(a, 1 << 28);
    const int32_t x2 = TS_SRDHM(x, x);
    const int32_t x3 = TS_SRDHM(x2, x);
    const int32_t x4 = TS_SRDHM(x2, x2);
    const int32_t x4_over_4 = ts_rounding_divide_by_pot(x4, 2);
    const int32_t poly = ts_rounding_divide_by_pot(
        ts_wrap_add(TS_SRDHM(ts_wrap_add(x4_over_4, x3), one_third), x2), 1);
    return ts_wrap_add(constant_term, TS_SRDHM(constant_term, ts_wrap_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26 (softmax's scaled differences); result Q0.31. */
static int32_t ts_exp_on_negative_values_q5(int32_t a)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t frac_bits = 26;
    const int32_t quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = ts_wrap_sub(a & (quarter - 1), quarter);
    int32_t result = ts_exp_quarter_interval(ts_saturating_left_shift(a_mod_quarter_minus_quarter, 5));
    const int32_t remainder = ts_wrap_sub(a_mod_quarter_minus_quarter, a);
    int32_t k;
    for (k = -2; k <= 4; ++k) { /* exp(-2**k) for each set bit of the remainder */
        if (remainder & ((int32_t)1 << (frac_bits + k))) {
            result = TS_SRDHM(result, barrel[k + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson, 3 iterations, in Q2.29). */
static int32_t ts_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540;
    int32_t x = ts_wrap_add(c48_17, TS_SRDHM(half_denominator, cneg32_17));
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ts_wrap_sub((int32_t)1 << 29, TS_SRDHM(half_denominator, x));
        x = ts_wrap_add(x, ts_saturating_left_shift(TS_SRDHM(x, one_minus), 2));
    }
    return ts_saturating_left_shift(x, 1);
}

/* Leading zero bits of a positive value; 32 for zero and negative values (as the reference). */
static int32_t ts_clz32(int32_t x)
{
    uint32_t v = (uint32_t)x;
    int32_t n = 0;
    if (x <= 0) {
        return 32;
    }
    while (!(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}

/* ---- convolution and fully connected: the portable loops --------------------------------------------------
 * Each loop is written once and instantiated for both weight storages: TS_W(w, i) reads weight i of the
 * flattened (int8-layout) array. int8 weights are read directly; int4 weights are packed two per byte, weight i
 * in the low nibble of byte i / 2 when i is even, the high nibble when odd (TFLite's int4 packing), two's
 * complement in [-8, 7]. Both builds use the int4 kernels (the DSP path has no int4 variant), so an int4 layer
 * gives the same bytes as the int8 layer holding the same weight values. */
static int32_t ts_w4(const uint8_t *w, size_t i)
{
    const int32_t v = (int32_t)((w[i >> 1] >> ((i & 1u) * 4u)) & 0x0Fu);
    return v - ((v & 8) << 1);
}

#define TS_W8(w, i) ((int32_t)(w)[i])
#define TS_W4(w, i) ts_w4((w), (i))

#define TS_CONV_LOOPS(TS_W)                                                                                  \
    const int32_t cg = p->in_c / p->groups, mg = p->out_c / p->groups;                                     \
    int32_t b, oh, ow, m, i, j, c;                                                                          \
    for (b = 0; b < p->batches; ++b) {                                                                      \
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;                                    \
        for (oh = 0; oh < p->out_h; ++oh) {                                                                 \
            for (ow = 0; ow < p->out_w; ++ow) {                                                             \
                const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;      \
                for (m = 0; m < p->out_c; ++m) {                                                            \
                    const int32_t ch = p->per_channel ? m : 0;                                              \
                    const size_t wm = (size_t)m * p->k_h * p->k_w * cg;                                     \
                    const int32_t c0 = (m / mg) * cg;                                                       \
                    int32_t acc = bias[m];                                                                  \
                    for (i = 0; i < p->k_h; ++i) {                                                          \
                        const int32_t ih = h0 + i * p->dil_h;                                               \
                        if (ih < 0 || ih >= p->in_h) {                                                      \
                            continue;                                                                       \
                        }                                                                                   \
                        for (j = 0; j < p->k_w; ++j) {                                                      \
                            const int32_t iw = w0 + j * p->dil_w;                                           \
                            const int8_t *xp;                                                               \
                            size_t wp;                                                                      \
                            if (iw < 0 || iw >= p->in_w) {                                                  \
                                continue;                                                                   \
                            }                                                                               \
                            xp = img + ((size_t)ih * p->in_w + iw) * p->in_c + c0;                          \
                            wp = wm + ((size_t)i * p->k_w + j) * cg;                                        \
                            for (c = 0; c < cg; ++c) {                                                      \
                                acc += (xp[c] + p->input_offset) * TS_W(w, wp + (size_t)c);                 \
                            }                                                                               \
                        }                                                                                   \
                    }                                                                                       \
                    *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max); \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }

#define TS_DEPTHWISE_LOOPS(TS_W)                                                                             \
    const int32_t mult = p->out_c / p->in_c;                                                                \
    int32_t b, oh, ow, m, i, j;                                                                             \
    for (b = 0; b < p->batches; ++b) {                                                                      \
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;                                    \
        for (oh = 0; oh < p->out_h; ++oh) {                                                                 \
            for (ow = 0; ow < p->out_w; ++ow) {                                                             \
                const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;      \
                for (m = 0; m < p->out_c; ++m) {                                                            \
                    const int32_t ch = p->per_channel ? m : 0;                                              \
                    int32_t acc = bias[m];                                                                  \
                    for (i = 0; i < p->k_h; ++i) {                                                          \
                        const int32_t ih = h0 + i * p->dil_h;                                               \
                        if (ih < 0 || ih >= p->in_h) {                                                      \
                            continue;                                                                       \
                        }                                                                                   \
                        for (j = 0; j < p->k_w; ++j) {                                                      \
                            const int32_t iw = w0 + j * p->dil_w;                                           \
                            if (iw < 0 || iw >= p->in_w) {                                                  \
                                continue;                                                                   \
                            }                                                                               \
                            acc += (img[((size_t)ih * p->in_w + iw) * p->in_c + m / mult] + p->input_offset) * \
                                   TS_W(w, ((size_t)i * p->k_w + j) * p->out_c + (size_t)m);                \
                        }                                                                                   \
                    }                                                                                       \
                    *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max); \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }

#define TS_FC_LOOPS(TS_W)                                                                                    \
    int32_t b, n, k;                                                                                        \
    for (b = 0; b < p->batches; ++b) {                                                                      \
        const int8_t *row = x + (size_t)b * p->in_features;                                                 \
        for (n = 0; n < p->out_features; ++n) {                                                             \
            const int32_t ch = p->per_channel ? n : 0;                                                      \
            const size_t wn = (size_t)n * p->in_features;                                                   \
            int32_t acc = bias[n];                                                                          \
            for (k = 0; k < p->in_features; ++k) {                                                          \
                acc += (row[k] + p->input_offset) * TS_W(w, wn + (size_t)k);                                \
            }                                                                                               \
            *y++ = ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);    \
        }                                                                                                   \
    }

void ts_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_CONV_LOOPS(TS_W8)
}

void ts_depthwise_conv_s8_ref(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_DEPTHWISE_LOOPS(TS_W8)
}

void ts_fully_connected_s8_ref(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_FC_LOOPS(TS_W8)
}

void ts_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_CONV_LOOPS(TS_W4)
}

void ts_depthwise_conv_s4(const ts_conv_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_DEPTHWISE_LOOPS(TS_W4)
}

void ts_fully_connected_s4(const ts_fc_params *p, const int8_t *x, const uint8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
    TS_FC_LOOPS(TS_W4)
}

/* ---- DSP instructions (Armv7E-M), or their portable emulation ------------------------------------------- */
#if TINYSTUDIO_DSP

#if defined(__GNUC__)
#define TS_NOINLINE __attribute__((noinline))
#define TS_INLINE static inline __attribute__((always_inline))
#else
#define TS_NOINLINE
#define TS_INLINE static
#endif

static uint32_t ts_read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void ts_write32(void *p, uint32_t v) { memcpy(p, &v, 4); }

static uint32_t ts_dup16(int32_t v) { return ((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16); }

#if defined(TINYSTUDIO_EMULATE_DSP)
static uint32_t ts_half(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }
static int32_t ts_lo16(uint32_t v) { return (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu); }
static int32_t ts_hi16(uint32_t v) { return (int32_t)(int16_t)(uint16_t)(v >> 16); }
static int32_t ts_byte(uint32_t v, int n) { return (int32_t)(int8_t)(uint8_t)((v >> (8 * n)) & 0xFFu); }
static uint32_t ts_ror8(uint32_t v) { return (v >> 8) | (v << 24); }
static uint32_t ts_sxtb16(uint32_t v) { return ts_half(ts_byte(v, 0), ts_byte(v, 2)); }
static uint32_t ts_sxtb16_ror8(uint32_t v) { return ts_sxtb16(ts_ror8(v)); }
static uint32_t ts_sxtab16(uint32_t a, uint32_t v) { return ts_half(ts_lo16(a) + ts_byte(v, 0), ts_hi16(a) + ts_byte(v, 2)); }
static uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v) { return ts_sxtab16(a, ts_ror8(v)); }
/* The multiply-accumulates wrap modulo 2**32 like the instructions (the Q flag is not modelled). */
static int32_t ts_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_lo16(b)) + (uint32_t)(ts_hi16(a) * ts_hi16(b)));
}
static int32_t ts_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_lo16(b)));
}
static int32_t ts_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_hi16(a) * ts_hi16(b)));
}
/* SMMLAR: acc + the high word of a * b rounded (bits 63..32 of acc * 2**32 + a * b + 2**31). */
static int32_t ts_smmlar(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b + 0x80000000LL) >> 32));
}
static int32_t ts_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
#else
static uint32_t ts_sxtb16(uint32_t v) { return (uint32_t)__sxtb16((int32_t)v); }
static uint32_t ts_sxtab16(uint32_t a, uint32_t v) { return (uint32_t)__sxtab16((int32_t)a, (int32_t)v); }
static int32_t ts_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
static int32_t ts_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static int32_t ts_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static int32_t ts_ssat8(int32_t v) { return __ssat(v, 8); }
#if defined(__GNUC__)
/* Single instructions the ACLE does not offer (SXTB16/SXTAB16 with ROR #8, SMMLAR). */
static uint32_t ts_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
static int32_t ts_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static uint32_t ts_ror8(uint32_t v) { return (v >> 8) | (v << 24); }
static uint32_t ts_sxtb16_ror8(uint32_t v) { return (uint32_t)__sxtb16((int32_t)ts_ror8(v)); }
static uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v) { return (uint32_t)__sxtab16((int32_t)a, (int32_t)ts_ror8(v)); }
static int32_t ts_smmlar(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b + 0x80000000LL) >> 32));
}
#endif
#endif

/* Hides a value from the optimizer so that it does not turn y[s * stride] into four spilled pointers. */
#if defined(__GNUC__)
#define TS_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define TS_OPAQUE(v) ((void)0)
#endif

/* Two consecutive words of the int16 block (LDRD with post-increment on the target; word aligned). */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
static void ts_load2(const int16_t **p, uint32_t *a, uint32_t *b)
{
    *a = ts_read32(*p);
    *b = ts_read32(*p + 2);
    *p += 4;
}
#else
static void ts_load2(const int16_t **p, uint32_t *a, uint32_t *b)
{
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*a), "=&r"(*b), "+r"(*p) : "m"(*(const int16_t(*)[4]) * p));
}
#endif

/* Requantization in the DSP kernels. When the generator cleared `general_requant` (multipliers 0 or in
 * [2**30, 2**31), shifts in [-30, -1], every accumulator in [-2**30, 2**30)), TFLite's double rounding
 *     high = SaturatingRoundingDoublingHighMul(x, m) = (2x * m + 2**31) >> 32     (2x fits, no saturation)
 *     RoundingDivideByPOT(high, r) + offset = (high + 2**(r-1) - (high < 0) + offset * 2**r) >> r
 * is one SMMLAR and one shift: with m >= 2**30, high < 0 exactly when x < 0 (the one exception, x = -1
 * with m = 2**30, has high = 0 and rounds to 0 either way; m = 0 gives 0 both ways), and the generator
 * checks that the sums stay below 2**31. Otherwise the portable arithmetic runs. The host tests check
 * both paths against the numpy reference bit for bit. */
typedef struct {
    int32_t multiplier, shift, right, bias;
} ts_rq;

/* odd = 2 * output offset + 1: the folded term 2**(r-1) + offset * 2**r is odd << (r - 1). (The mask
 * keeps the shift defined for layers on the portable path, whose constants are not used.) */
TS_INLINE ts_rq ts_rq_channel(const int32_t *multiplier, const int8_t *shift, int32_t ch, int32_t odd)
{
    ts_rq q;
    q.multiplier = multiplier[ch];
    q.shift = shift[ch];
    q.right = -q.shift;
    q.bias = (int32_t)((uint32_t)odd << ((q.right - 1) & 31));
    return q;
}

/* The requantized value plus the output offset, before clamping. */
TS_INLINE int32_t ts_rq_fast(int32_t x, const ts_rq *q)
{
    return ts_smmlar(x * 2, q->multiplier, q->bias - (int32_t)((uint32_t)x >> 31)) >> q->right;
}

TS_INLINE int8_t ts_clamp8(int32_t v, int32_t lo, int32_t hi)
{
    v = ts_ssat8(v);
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

/* Four words of int16 for 4 input bytes: (x + offset) in the order [0, 2] then [1, 3] (see below). */
#define TS_EXPAND4(dst, src)                                                                        \
    do {                                                                                            \
        const uint32_t v_ = ts_read32(src);                                                         \
        ts_write32((dst), ts_sxtab16(offset, v_));                                                  \
        ts_write32((dst) + 2, ts_sxtab16_ror8(offset, v_));                                         \
    } while (0)

/* The receptive fields of output pixels q0 .. q0 + 3 (or q0 four times when `same`) as one four-pixel
 * block of int16 (input + offset; taps outside the image are 0, i.e. the zero point). Groups of 4
 * reduction steps hold all four pixels (16 int16 per group, 4 per pixel), each in the order [0, 2, 1, 3]
 * in which SXTB16 of a weight word and of its ROR-8 pair up with the two input words; the K % 4 tail
 * follows, pixel by pixel. With in_c % 4 != 0 each field is first gathered as int8 into `tmp`. */
static void ts_im2col_block(const ts_conv_params *p, const int8_t *img, int32_t q0, int same, int16_t *block,
                            int8_t *tmp)
{
    const int32_t c_n = p->in_c, k_all = p->k_h * p->k_w * c_n, k4 = k_all & ~3, tail = k_all - k4;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int8_t zero_point = (int8_t)(-p->input_offset);
    int32_t pix, i, j, c, k;
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
        p->pad_left == 0 && (c_n & 3) == 0 && p->out_w == p->in_w) {
        /* pointwise: output pixel q reads input pixel q */
        for (pix = 0; pix < 4; ++pix) {
            const int8_t *src = img + (size_t)(q0 + (same ? 0 : pix)) * c_n;
            int16_t *dst = block + 4 * pix;
            for (c = 0; c < c_n; c += 4, dst += 16) {
                TS_EXPAND4(dst, src + c);
            }
        }
        return;
    }
    for (pix = 0; pix < 4; ++pix) {
        const int32_t q = q0 + (same ? 0 : pix), oh = q / p->out_w, ow = q - oh * p->out_w;
        const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
        int16_t *dst = block + 4 * pix;
        if ((c_n & 3) == 0) {
            for (i = 0; i < p->k_h; ++i) {
                const int32_t ih = h0 + i * p->dil_h;
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) {
                        for (c = 0; c < c_n; c += 4, dst += 16) {
                            ts_write32(dst, 0);
                            ts_write32(dst + 2, 0);
                        }
                    } else {
                        const int8_t *src = img + ((size_t)ih * p->in_w + iw) * c_n;
                        for (c = 0; c < c_n; c += 4, dst += 16) {
                            TS_EXPAND4(dst, src + c);
                        }
                    }
                }
            }
            continue;
        }
        /* gather the field as int8, one kernel row at a time (a row's taps are adjacent in NHWC) */
        for (i = 0, k = 0; i < p->k_h; ++i, k += p->k_w * c_n) {
            const int32_t ih = h0 + i * p->dil_h;
            if (ih < 0 || ih >= p->in_h) {
                memset(tmp + k, zero_point, (size_t)(p->k_w * c_n));
            } else if (p->dil_w == 1 && w0 >= 0 && w0 + p->k_w <= p->in_w) {
                const int8_t *src = img + ((size_t)ih * p->in_w + w0) * c_n;
                const int32_t n = p->k_w * c_n;
                for (c = 0; c + 4 <= n; c += 4) {
                    ts_write32(tmp + k + c, ts_read32(src + c));
                }
                for (; c < n; ++c) {
                    tmp[k + c] = src[c];
                }
            } else {
                for (j = 0; j < p->k_w; ++j) {
                    const int32_t iw = w0 + j * p->dil_w;
                    const int inside = iw >= 0 && iw < p->in_w;
                    const int8_t *src = img + ((size_t)ih * p->in_w + (inside ? iw : 0)) * c_n;
                    for (c = 0; c < c_n; ++c) {
                        tmp[k + j * c_n + c] = inside ? src[c] : zero_point;
                    }
                }
            }
        }
        for (k = 0; k < k4; k += 4, dst += 16) {
            TS_EXPAND4(dst, tmp + k);
        }
        for (k = 0; k < tail; ++k) {
            block[4 * k4 + pix * tail + k] = (int16_t)(tmp[k4 + k] + p->input_offset);
        }
    }
}

/* A four-pixel block times every output channel, one channel at a time. Per group of 4 reduction steps:
 * 1 weight load, 2 sign extensions, 4 double loads of the block and 8 SMLADs give 16 MACs with 11 values
 * live; the channel's requantization constants then serve four outputs, stored at y[m + s * y_stride].
 * One function per requantization form (MODE 0: portable, 1: full int8 range, 2: clamped), so that the
 * channel loop carries no mode tests. */
#define TS_CONV_BLOCK(NAME, MODE)                                                                   \
    static TS_NOINLINE void NAME(const ts_conv_params *p, const int16_t *block, const int8_t *w,    \
                                 const int32_t *bias, const int32_t *multiplier, const int8_t *shift, \
                                 int8_t *y, int32_t y_stride)                                       \
    {                                                                                               \
        const int32_t k_all = p->k_h * p->k_w * p->in_c, tail = k_all & 3;                         \
        const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;                     \
        const int32_t step = p->per_channel ? 1 : 0;                                                \
        const int16_t *end = block + 16 * (k_all >> 2);                                             \
        int8_t *const y_end = y + p->out_c;                                                         \
        int32_t t, ys;                                                                              \
        (void)lo;                                                                                   \
        (void)hi;                                                                                   \
        for (; y != y_end; ++y, multiplier += step, shift += step) {                                \
            const int16_t *x = block;                                                               \
            int32_t a0 = *bias++, a1 = a0, a2 = a0, a3 = a0;                                        \
            while (x != end) {                                                                      \
                const uint32_t wv = ts_read32(w), w02 = ts_sxtb16(wv), w13 = ts_sxtb16_ror8(wv);    \
                uint32_t u, v;                                                                      \
                ts_load2(&x, &u, &v);                                                               \
                a0 = ts_smlad(v, w13, ts_smlad(u, w02, a0));                                        \
                ts_load2(&x, &u, &v);                                                               \
                a1 = ts_smlad(v, w13, ts_smlad(u, w02, a1));                                        \
                ts_load2(&x, &u, &v);                                                               \
                a2 = ts_smlad(v, w13, ts_smlad(u, w02, a2));                                        \
                ts_load2(&x, &u, &v);                                                               \
                a3 = ts_smlad(v, w13, ts_smlad(u, w02, a3));                                        \
                w += 4;                                                                             \
            }                                                                                       \
            for (t = 0; t < tail; ++t) {                                                            \
                const int32_t wt = w[t];                                                            \
                a0 += x[t] * wt;                                                                    \
                a1 += x[tail + t] * wt;                                                             \
                a2 += x[2 * tail + t] * wt;                                                         \
                a3 += x[3 * tail + t] * wt;                                                         \
            }                                                                                       \
            w += tail;                                                                              \
            ys = y_stride;                                                                          \
            TS_OPAQUE(ys);                                                                          \
            if (MODE == 0) {                                                                        \
                y[0] = ts_requant(a0, *multiplier, *shift, off, lo, hi);                            \
                y[ys] = ts_requant(a1, *multiplier, *shift, off, lo, hi);                           \
                y[2 * ys] = ts_requant(a2, *multiplier, *shift, off, lo, hi);                       \
                y[3 * ys] = ts_requant(a3, *multiplier, *shift, off, lo, hi);                       \
            } else {                                                                                \
                const ts_rq q = ts_rq_channel(multiplier, shift, 0, 2 * off + 1);                           \
                a0 = ts_rq_fast(a0, &q);                                                            \
                a1 = ts_rq_fast(a1, &q);                                                            \
                a2 = ts_rq_fast(a2, &q);                                                            \
                a3 = ts_rq_fast(a3, &q);                                                            \
                if (MODE == 1) {                                                                    \
                    y[0] = (int8_t)ts_ssat8(a0);                                                    \
                    y[ys] = (int8_t)ts_ssat8(a1);                                                   \
                    y[2 * ys] = (int8_t)ts_ssat8(a2);                                               \
                    y[3 * ys] = (int8_t)ts_ssat8(a3);                                               \
                } else {                                                                            \
                    y[0] = ts_clamp8(a0, lo, hi);                                                   \
                    y[ys] = ts_clamp8(a1, lo, hi);                                                  \
                    y[2 * ys] = ts_clamp8(a2, lo, hi);                                              \
                    y[3 * ys] = ts_clamp8(a3, lo, hi);                                              \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

TS_CONV_BLOCK(ts_conv_block_general, 0)
TS_CONV_BLOCK(ts_conv_block_full, 1)
TS_CONV_BLOCK(ts_conv_block_clamp, 2)

typedef void (*ts_conv_block_fn)(const ts_conv_params *, const int16_t *, const int8_t *, const int32_t *,
                                 const int32_t *, const int8_t *, int8_t *, int32_t);

/* Regular conv: output pixels four at a time are expanded into `scratch`, then ts_conv_block_dsp. A last
 * partial block is moved back to overlap the one before (those pixels are computed twice, same bytes);
 * fewer than 4 pixels in all go one at a time (stride 0). scratch: 4 * k_h * k_w * in_c int16 (word
 * aligned), plus k_h * k_w * in_c bytes when in_c % 4 != 0. */
static void ts_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
    const int32_t k_all = p->k_h * p->k_w * p->in_c, pixels = p->out_h * p->out_w, n_out = p->out_c;
    const ts_conv_block_fn ts_conv_block_dsp = p->general_requant ? ts_conv_block_general
                                               : (p->act_min == -128 && p->act_max == 127 ? ts_conv_block_full
                                                                                         : ts_conv_block_clamp);
    int8_t *tmp = (int8_t *)(scratch + 4 * k_all);
    int32_t b, q;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->in_c;
        int8_t *yb = y + (size_t)b * pixels * n_out;
        if (pixels < 4) {
            for (q = 0; q < pixels; ++q) {
                ts_im2col_block(p, img, q, 1, scratch, tmp);
                ts_conv_block_dsp(p, scratch, w, bias, multiplier, shift, yb + (size_t)q * n_out, 0);
            }
            continue;
        }
        for (q = 0; q < pixels; q += 4) {
            const int32_t q0 = q + 4 <= pixels ? q : pixels - 4;
            ts_im2col_block(p, img, q0, 0, scratch, tmp);
            ts_conv_block_dsp(p, scratch, w, bias, multiplier, shift, yb + (size_t)q0 * n_out, n_out);
        }
    }
}

/* One depthwise tap for 4 channels: one 32-bit load of inputs and one of weights; SMLABB/SMLATT keep the
 * channels apart (a0: channel c, a1: c + 1, a2: c + 2, a3: c + 3). */
#define TS_DW_TAP(xq, wq)                                                                           \
    do {                                                                                            \
        const uint32_t xv_ = ts_read32(xq), wv_ = ts_read32(wq);                                    \
        const uint32_t x02_ = ts_sxtab16(offset, xv_), x13_ = ts_sxtab16_ror8(offset, xv_);        \
        const uint32_t w02_ = ts_sxtb16(wv_), w13_ = ts_sxtb16_ror8(wv_);                           \
        a0 = ts_smlabb(x02_, w02_, a0);                                                             \
        a1 = ts_smlabb(x13_, w13_, a1);                                                             \
        a2 = ts_smlatt(x02_, w02_, a2);                                                             \
        a3 = ts_smlatt(x13_, w13_, a3);                                                             \
    } while (0)

/* The taps of a rows x cols window for 4 channels with weights read from the kernel (border pixels). */
#define TS_DW_WINDOW(xr, wr, rows, cols)                                                            \
    do {                                                                                            \
        const int8_t *xi_ = (xr), *wi_ = (wr);                                                      \
        int32_t i_, j_;                                                                             \
        for (i_ = 0; i_ < (rows); ++i_, xi_ += x_row, wi_ += w_row) {                               \
            const int8_t *xq = xi_, *wq = wi_;                                                      \
            for (j_ = 0; j_ < (cols); ++j_, xq += x_col, wq += c_n) {                               \
                TS_DW_TAP(xq, wq);                                                                  \
            }                                                                                       \
        }                                                                                           \
    } while (0)

/* One tap of a 3x3 window with the weights already sign-extended (wx[t]: the two words, one LDRD). */
#define TS_DW_TAPX(xq, t)                                                                           \
    do {                                                                                            \
        const uint32_t xv_ = ts_read32(xq);                                                         \
        const uint32_t x02_ = ts_sxtab16(offset, xv_), x13_ = ts_sxtab16_ror8(offset, xv_);        \
        const uint64_t wp_ = wx[t];                                                                 \
        const uint32_t w02_ = (uint32_t)wp_, w13_ = (uint32_t)(wp_ >> 32);                          \
        a0 = ts_smlabb(x02_, w02_, a0);                                                             \
        a1 = ts_smlabb(x13_, w13_, a1);                                                             \
        a2 = ts_smlatt(x02_, w02_, a2);                                                             \
        a3 = ts_smlatt(x13_, w13_, a3);                                                             \
    } while (0)

/* The same for a border pixel: tap (i, j) only when bit 3i + j of `valid` is set (xo: the offset of the
 * window's top-left tap, which may lie outside the image; only inside taps are addressed). */
#define TS_DW_TAPM(i, j)                                                                            \
    do {                                                                                            \
        if (valid & (1u << (3 * (i) + (j)))) {                                                      \
            TS_DW_TAPX(img + xo + (i) * x_row + (j) * x_col, 3 * (i) + (j));                       \
        }                                                                                           \
    } while (0)

/* Requantizes a0 .. a3 (channels c .. c + 3) into yr[0 .. 3]. */
#define TS_DW_STORE4(yr)                                                                            \
    do {                                                                                            \
        if (general) {                                                                              \
            (yr)[0] = ts_requant(a0, multiplier[c * step], shift[c * step], off, lo, hi);           \
            (yr)[1] = ts_requant(a1, multiplier[(c + 1) * step], shift[(c + 1) * step], off, lo, hi); \
            (yr)[2] = ts_requant(a2, multiplier[(c + 2) * step], shift[(c + 2) * step], off, lo, hi); \
            (yr)[3] = ts_requant(a3, multiplier[(c + 3) * step], shift[(c + 3) * step], off, lo, hi); \
        } else if (full) {                                                                          \
            (yr)[0] = (int8_t)ts_ssat8(ts_rq_fast(a0, &q[0]));                                      \
            (yr)[1] = (int8_t)ts_ssat8(ts_rq_fast(a1, &q[1]));                                      \
            (yr)[2] = (int8_t)ts_ssat8(ts_rq_fast(a2, &q[2]));                                      \
            (yr)[3] = (int8_t)ts_ssat8(ts_rq_fast(a3, &q[3]));                                      \
        } else {                                                                                    \
            (yr)[0] = ts_clamp8(ts_rq_fast(a0, &q[0]), lo, hi);                                     \
            (yr)[1] = ts_clamp8(ts_rq_fast(a1, &q[1]), lo, hi);                                     \
            (yr)[2] = ts_clamp8(ts_rq_fast(a2, &q[2]), lo, hi);                                     \
            (yr)[3] = ts_clamp8(ts_rq_fast(a3, &q[3]), lo, hi);                                     \
        }                                                                                           \
    } while (0)

/* Channels c .. c + 3 of a depthwise conv (multiplier 1) over the whole output: the group's requantization
 * constants, and for a 3x3 kernel its sign-extended weights, are made once. Each output row runs as a
 * left border, an interior whose 3x3 windows lie inside the image (straight-line taps, pointers stepping
 * by the stride) and a right border; border pixels take their part of the window. */
#define TS_DW_GROUP(NAME, MODE)                                                                                \
static TS_NOINLINE void NAME(const ts_conv_params *p, const int8_t *x, const int8_t *w, int32_t c,             \
                             const int32_t *bias, const int32_t *multiplier, const int8_t *shift, int8_t *y)  \
{                                                                                                              \
    const int32_t c_n = p->in_c, off = p->output_offset, lo = p->act_min, hi = p->act_max;                     \
    const int32_t step = p->per_channel ? 1 : 0, general = MODE == 0;                                          \
    const int full = MODE == 1, k3 = p->k_h == 3 && p->k_w == 3;                                               \
    const uint32_t offset = ts_dup16(p->input_offset);                                                         \
    const int32_t x_row = p->dil_h * p->in_w * c_n, x_col = p->dil_w * c_n, w_row = p->k_w * c_n;              \
    const int32_t x_step = p->stride_w * c_n;                                                                  \
    const int32_t b0 = bias[c], b1 = bias[c + 1], b2 = bias[c + 2], b3 = bias[c + 3];                          \
    /* output columns whose window lies inside the image: [ow_lo, ow_hi) (3x3 kernels only) */                 \
    int32_t ow_lo = (p->pad_left + p->stride_w - 1) / p->stride_w;                                             \
    int32_t ow_hi = (p->in_w - 1 - (p->k_w - 1) * p->dil_w + p->pad_left) / p->stride_w + 1;                   \
    uint64_t wx[9];                                                                                            \
    ts_rq q[4];                                                                                                \
    int32_t t, b, oh, ow;                                                                                      \
    ow_hi = ow_hi < p->out_w ? ow_hi : p->out_w;                                                               \
    if (!k3 || ow_lo > ow_hi) {                                                                                \
        ow_lo = ow_hi = p->out_w;                                                                              \
    }                                                                                                          \
    for (t = 0; t < 4; ++t) {                                                                                  \
        q[t] = ts_rq_channel(multiplier, shift, (c + t) * step, 2 * off + 1);                                  \
    }                                                                                                          \
    for (t = 0; k3 && t < 9; ++t) {                                                                            \
        const uint32_t v = ts_read32(w + (size_t)t * c_n + c);                                                 \
        wx[t] = ts_sxtb16(v) | (uint64_t)ts_sxtb16_ror8(v) << 32;                                              \
    }                                                                                                          \
    for (b = 0; b < p->batches; ++b) {                                                                         \
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n + c;                                       \
        for (oh = 0; oh < p->out_h; ++oh) {                                                                    \
            const int32_t h0 = oh * p->stride_h - p->pad_top;                                                  \
            int32_t i_lo = 0, i_hi = p->k_h; /* kernel rows inside the image: [i_lo, i_hi) */                  \
            int8_t *yr = y + ((size_t)(b * p->out_h + oh) * p->out_w) * c_n + c;                               \
            while (i_lo < i_hi && h0 + i_lo * p->dil_h < 0) {                                                  \
                ++i_lo;                                                                                        \
            }                                                                                                  \
            while (i_hi > i_lo && h0 + (i_hi - 1) * p->dil_h >= p->in_h) {                                     \
                --i_hi;                                                                                        \
            }                                                                                                  \
            for (ow = 0; ow < p->out_w; ++ow, yr += c_n) {                                                     \
                const int32_t w0 = ow * p->stride_w - p->pad_left;                                             \
                int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3, j_lo = 0, j_hi = p->k_w;                           \
                if (ow == ow_lo && i_lo == 0 && i_hi == 3) { /* the interior run */                            \
                    const int8_t *xq0 = img + ((size_t)h0 * p->in_w + w0) * c_n;                               \
                    for (; ow < ow_hi; ++ow, yr += c_n, xq0 += x_step) {                                       \
                        const int8_t *xq = xq0;                                                                \
                        int32_t xc = x_col;                                                                    \
                        TS_OPAQUE(xq);                                                                         \
                        TS_OPAQUE(xc);                                                                         \
                        a0 = b0;                                                                               \
                        a1 = b1;                                                                               \
                        a2 = b2;                                                                               \
                        a3 = b3;                                                                               \
                        TS_DW_TAPX(xq, 0);                                                                     \
                        TS_DW_TAPX(xq + xc, 1);                                                                \
                        TS_DW_TAPX(xq + 2 * xc, 2);                                                            \
                        xq += x_row;                                                                           \
                        TS_DW_TAPX(xq, 3);                                                                     \
                        TS_DW_TAPX(xq + xc, 4);                                                                \
                        TS_DW_TAPX(xq + 2 * xc, 5);                                                            \
                        xq += x_row;                                                                           \
                        TS_DW_TAPX(xq, 6);                                                                     \
                        TS_DW_TAPX(xq + xc, 7);                                                                \
                        TS_DW_TAPX(xq + 2 * xc, 8);                                                            \
                        TS_DW_STORE4(yr);                                                                      \
                    }                                                                                          \
                    --ow; /* the for loop steps past the run */                                                \
                    yr -= c_n;                                                                                 \
                    continue;                                                                                  \
                }                                                                                              \
                if (k3) { /* a 3x3 window cut by the border: the valid taps, pre-extended weights */           \
                    const ptrdiff_t xo = ((ptrdiff_t)h0 * p->in_w + w0) * c_n;                                 \
                    uint32_t valid = 0, cols = 0;                                                              \
                    int32_t i;                                                                                 \
                    for (i = 0; i < 3; ++i) {                                                                  \
                        const int32_t iw = w0 + i * p->dil_w;                                                  \
                        cols |= (uint32_t)(iw >= 0 && iw < p->in_w) << i;                                      \
                    }                                                                                          \
                    for (i = i_lo; i < i_hi; ++i) {                                                            \
                        valid |= cols << (3 * i);                                                              \
                    }                                                                                          \
                    TS_DW_TAPM(0, 0);                                                                          \
                    TS_DW_TAPM(0, 1);                                                                          \
                    TS_DW_TAPM(0, 2);                                                                          \
                    TS_DW_TAPM(1, 0);                                                                          \
                    TS_DW_TAPM(1, 1);                                                                          \
                    TS_DW_TAPM(1, 2);                                                                          \
                    TS_DW_TAPM(2, 0);                                                                          \
                    TS_DW_TAPM(2, 1);                                                                          \
                    TS_DW_TAPM(2, 2);                                                                          \
                } else {                                                                                       \
                    while (j_lo < j_hi && w0 + j_lo * p->dil_w < 0) {                                          \
                        ++j_lo;                                                                                \
                    }                                                                                          \
                    while (j_hi > j_lo && w0 + (j_hi - 1) * p->dil_w >= p->in_w) {                             \
                        --j_hi;                                                                                \
                    }                                                                                          \
                    TS_DW_WINDOW(img + ((size_t)(h0 + i_lo * p->dil_h) * p->in_w + (w0 + j_lo * p->dil_w)) * c_n, \
                                 w + ((size_t)i_lo * p->k_w + j_lo) * c_n + c, i_hi - i_lo, j_hi - j_lo);      \
                }                                                                                              \
                TS_DW_STORE4(yr);                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
}

TS_DW_GROUP(ts_dw_group_general, 0)
TS_DW_GROUP(ts_dw_group_full, 1)
TS_DW_GROUP(ts_dw_group_clamp, 2)

/* Depthwise with multiplier 1: groups of 4 channels on the DSP path, the last in_c % 4 channels portably. */
static void ts_depthwise_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w,
                                     const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                     int8_t *y)
{
    const int32_t c_n = p->in_c, c4 = c_n & ~3;
    int32_t c, b, oh, ow, m, i, j;
    for (c = 0; c < c4; c += 4) {
        if (p->general_requant) {
            ts_dw_group_general(p, x, w, c, bias, multiplier, shift, y);
        } else if (p->act_min == -128 && p->act_max == 127) {
            ts_dw_group_full(p, x, w, c, bias, multiplier, shift, y);
        } else {
            ts_dw_group_clamp(p, x, w, c, bias, multiplier, shift, y);
        }
    }
    for (m = c4; m < c_n; ++m) {
        const int32_t ch = p->per_channel ? m : 0;
        for (b = 0; b < p->batches; ++b) {
            const int8_t *img = x + (size_t)b * p->in_h * p->in_w * c_n;
            for (oh = 0; oh < p->out_h; ++oh) {
                for (ow = 0; ow < p->out_w; ++ow) {
                    const int32_t h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
                    int32_t acc = bias[m];
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            if (ih >= 0 && ih < p->in_h && iw >= 0 && iw < p->in_w) {
                                acc += (img[((size_t)ih * p->in_w + iw) * c_n + m] + p->input_offset) *
                                       w[((size_t)i * p->k_w + j) * c_n + m];
                            }
                        }
                    }
                    y[(((size_t)b * p->out_h + oh) * p->out_w + ow) * c_n + m] =
                        ts_requant(acc, multiplier[ch], shift[ch], p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

/* Four weight rows against one input row. The generator folds the input offset into the bias
 * (-zero_point * sum(w), exact), so the rows run without it (13 values live); with an offset SXTAB16 adds it. */
#define TS_FC_ROWS4(NAME, X02, X13)                                                                 \
    static TS_NOINLINE void NAME(const int8_t *x, const int8_t *w, int32_t k_n, uint32_t offset, int32_t *acc) \
    {                                                                                               \
        const int8_t *end = x + (k_n & ~3), *w1 = w + k_n, *w2 = w1 + k_n, *w3 = w2 + k_n;          \
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];                                 \
        (void)offset;                                                                               \
        while (x != end) {                                                                          \
            const uint32_t xv = ts_read32(x), x02 = X02, x13 = X13;                                 \
            uint32_t wv = ts_read32(w);                                                             \
            a0 = ts_smlad(x02, ts_sxtb16(wv), a0);                                                  \
            a0 = ts_smlad(x13, ts_sxtb16_ror8(wv), a0);                                             \
            wv = ts_read32(w1);                                                                     \
            a1 = ts_smlad(x02, ts_sxtb16(wv), a1);                                                  \
            a1 = ts_smlad(x13, ts_sxtb16_ror8(wv), a1);                                             \
            wv = ts_read32(w2);                                                                     \
            a2 = ts_smlad(x02, ts_sxtb16(wv), a2);                                                  \
            a2 = ts_smlad(x13, ts_sxtb16_ror8(wv), a2);                                             \
            wv = ts_read32(w3);                                                                     \
            a3 = ts_smlad(x02, ts_sxtb16(wv), a3);                                                  \
            a3 = ts_smlad(x13, ts_sxtb16_ror8(wv), a3);                                             \
            x += 4;                                                                                 \
            w += 4;                                                                                 \
            w1 += 4;                                                                                \
            w2 += 4;                                                                                \
            w3 += 4;                                                                                \
        }                                                                                           \
        acc[0] = a0;                                                                                \
        acc[1] = a1;                                                                                \
        acc[2] = a2;                                                                                \
        acc[3] = a3;                                                                                \
    }

TS_FC_ROWS4(ts_fc_rows4, ts_sxtb16(xv), ts_sxtb16_ror8(xv))
TS_FC_ROWS4(ts_fc_rows4_offset, ts_sxtab16(offset, xv), ts_sxtab16_ror8(offset, xv))

static void ts_fully_connected_s8_dsp(const ts_fc_params *p, const int8_t *x, const int8_t *w,
                                      const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                                      int8_t *y)
{
    const int32_t k_n = p->in_features, k4 = k_n & ~3;
    const uint32_t offset = ts_dup16(p->input_offset);
    const int32_t off = p->output_offset, lo = p->act_min, hi = p->act_max;
    int32_t b, n, k, t;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *row = x + (size_t)b * k_n;
        for (n = 0; n < p->out_features; n += 4) {
            const int32_t rows = p->out_features - n < 4 ? p->out_features - n : 4;
            int32_t acc[4] = {0, 0, 0, 0};
            if (rows == 4) {
                (p->input_offset ? ts_fc_rows4_offset : ts_fc_rows4)(row, w + (size_t)n * k_n, k_n, offset, acc);
            }
            for (t = 0; t < rows; ++t) {
                const int8_t *wn = w + (size_t)(n + t) * k_n;
                const int32_t ch = p->per_channel ? n + t : 0;
                acc[t] += bias[n + t];
                for (k = rows == 4 ? k4 : 0; k < k_n; ++k) { /* the k % 4 tail, or a last group of < 4 rows */
                    acc[t] += (row[k] + p->input_offset) * wn[k];
                }
                if (p->general_requant) {
                    y[n + t] = ts_requant(acc[t], multiplier[ch], shift[ch], off, lo, hi);
                } else {
                    const ts_rq q = ts_rq_channel(multiplier, shift, ch, 2 * off + 1);
                    y[n + t] = ts_clamp8(ts_rq_fast(acc[t], &q), lo, hi);
                }
            }
        }
        y += p->out_features;
    }
}

#endif /* TINYSTUDIO_DSP */

void ts_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch)
{
#if TINYSTUDIO_DSP
    if (p->groups == 1 && scratch != NULL) {
        ts_conv_s8_dsp(p, x, w, bias, multiplier, shift, y, scratch);
        return;
    }
#else
    (void)scratch;
#endif
    ts_conv_s8_ref(p, x, w, bias, multiplier, shift, y);
}

void ts_depthwise_conv_s8(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                          const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
#if TINYSTUDIO_DSP
    if (p->out_c == p->in_c) {
        ts_depthwise_conv_s8_dsp(p, x, w, bias, multiplier, shift, y);
        return;
    }
#endif
    ts_depthwise_conv_s8_ref(p, x, w, bias, multiplier, shift, y);
}

void ts_fully_connected_s8(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int8_t *shift, int8_t *y)
{
#if TINYSTUDIO_DSP
    ts_fully_connected_s8_dsp(p, x, w, bias, multiplier, shift, y);
#else
    ts_fully_connected_s8_ref(p, x, w, bias, multiplier, shift, y);
#endif
}

/* ---- element-wise binary ops with broadcasting ------------------------------------------------------------- */

/* Calls row(ctx, a, a_step, b, b_step, y, n) for every innermost row of the broadcast iteration. Each
 * element is read before it is written, so y may be a when a is not broadcast (in-place). */
typedef void (*ts_row_fn)(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                          int32_t n);

static void ts_broadcast(const ts_bcast *it, const void *ctx, ts_row_fn row, const int8_t *a, const int8_t *b,
                         int8_t *y)
{
    int32_t idx[TS_MAX_DIMS] = {0};
    const int32_t last = it->ndim - 1, n = it->shape[last];
    ptrdiff_t ao = 0, bo = 0;
    int32_t d;
    for (;;) {
        row(ctx, a + ao, it->a_stride[last], b + bo, it->b_stride[last], y, n);
        y += n;
        for (d = last - 1; d >= 0; --d) { /* odometer over the outer dims */
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

static void ts_add_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                       int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t lift = (int32_t)1 << p->left_shift;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x1 = TS_MBQM((a[i * as] + p->a_offset) * lift, p->a_multiplier, p->a_shift);
        const int32_t x2 = TS_MBQM((b[i * bs] + p->b_offset) * lift, p->b_multiplier, p->b_shift);
        const int32_t raw = p->subtract ? ts_wrap_sub(x1, x2) : ts_wrap_add(x1, x2);
        y[i] = ts_requant(raw, p->out_multiplier, p->out_shift, p->output_offset, p->act_min, p->act_max);
    }
}

static void ts_mul_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                       int32_t n)
{
    const ts_mul_params *p = (const ts_mul_params *)ctx;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t prod = (a[i * as] + p->a_offset) * (b[i * bs] + p->b_offset);
        y[i] = ts_requant(prod, p->multiplier, p->shift, p->output_offset, p->act_min, p->act_max);
    }
}

static void ts_minmax_row(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                          int32_t n)
{
    const ts_minmax_params *p = (const ts_minmax_params *)ctx;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int8_t u = a[i * as], v = b[i * bs];
        y[i] = p->is_min ? (u < v ? u : v) : (u > v ? u : v);
    }
}

#if TINYSTUDIO_DSP
/* ADD/SUB with the DSP build's requantization (tinystudio_kernels.c, above): for the input rescalings
 * ((x + offset) << 20, below 2**28, multipliers in [2**30, 2**31), shifts in [-30, 0]) and the output one
 * (shift in [-23, -1]), which the generator checks (general_requant = 0), each MultiplyByQuantizedMultiplier
 * is one SMMLAR and a shift; the rounding term of a zero shift is 0 (the sign bit of x & shift). */
static void ts_add_row_dsp(const void *ctx, const int8_t *a, int32_t as, const int8_t *b, int32_t bs, int8_t *y,
                           int32_t n)
{
    const ts_add_params *p = (const ts_add_params *)ctx;
    const int32_t r1 = -p->a_shift, r2 = -p->b_shift, ro = -p->out_shift;
    const int32_t h1 = (int32_t)(((uint32_t)1 << r1) >> 1), h2 = (int32_t)(((uint32_t)1 << r2) >> 1);
    const int32_t fold = (int32_t)((uint32_t)(2 * p->output_offset + 1) << (ro - 1));
    const int32_t lift = (int32_t)1 << (p->left_shift + 1), lo = p->act_min, hi = p->act_max;
    const int32_t ao = p->a_offset, bo = p->b_offset, am = p->a_multiplier, bm = p->b_multiplier;
    const int32_t ae = p->a_shift, be = p->b_shift, om = p->out_multiplier, sign = p->subtract ? -1 : 1;
    int32_t i;
    for (i = 0; i < n; ++i) { /* the parameters in locals: stores through y may not alias them */
        const int32_t v1 = (a[i * as] + ao) * lift, v2 = (b[i * bs] + bo) * lift;
        const int32_t x1 = ts_smmlar(v1, am, h1 - (int32_t)((uint32_t)(v1 & ae) >> 31)) >> r1;
        const int32_t x2 = ts_smmlar(v2, bm, h2 - (int32_t)((uint32_t)(v2 & be) >> 31)) >> r2;
        const int32_t raw = x1 + sign * x2;
        const int32_t v = ts_smmlar(raw * 2, om, fold - (int32_t)((uint32_t)raw >> 31)) >> ro;
        y[i] = ts_clamp8(v, lo, hi);
    }
}
#endif

void ts_add_s8(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
#if TINYSTUDIO_DSP
    if (!p->general_requant) {
        ts_broadcast(&p->it, p, ts_add_row_dsp, a, b, y);
        return;
    }
#endif
    ts_broadcast(&p->it, p, ts_add_row, a, b, y);
}

void ts_mul_s8(const ts_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_mul_row, a, b, y);
}

void ts_minmax_s8(const ts_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    ts_broadcast(&p->it, p, ts_minmax_row, a, b, y);
}

/* ---- pooling and reductions -------------------------------------------------------------------------------- */

void ts_avg_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t b, oh, ow, c, i, j;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            const int32_t i_lo = ts_max32(0, -h0), i_hi = ts_min32(p->k_h, p->in_h - h0);
            const int32_t rows = ts_max32(0, ts_min32(p->count_h_hi, h0 + p->k_h) - ts_max32(p->count_h_lo, h0));
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                const int32_t j_lo = ts_max32(0, -w0), j_hi = ts_min32(p->k_w, p->in_w - w0);
                const int32_t count =
                    rows * ts_max32(0, ts_min32(p->count_w_hi, w0 + p->k_w) - ts_max32(p->count_w_lo, w0));
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = 0, mean;
                    for (i = i_lo; i < i_hi; ++i) {
                        const int8_t *xp = img + ((size_t)(h0 + i) * p->in_w + (w0 + j_lo)) * p->channels + c;
                        for (j = j_lo; j < j_hi; ++j) {
                            acc += xp[(size_t)(j - j_lo) * p->channels];
                        }
                    }
                    /* TFLite: round half away from zero (the generator checks count > 0) */
                    mean = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    *y++ = (int8_t)ts_clamp(mean, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_max_pool_s8(const ts_pool_params *p, const int8_t *x, int8_t *y)
{
    int32_t b, oh, ow, c, i, j;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *img = x + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t h0 = oh * p->stride_h - p->pad_top;
            for (ow = 0; ow < p->out_w; ++ow) {
                const int32_t w0 = ow * p->stride_w - p->pad_left;
                for (c = 0; c < p->channels; ++c) {
                    int32_t best = -128; /* padding never wins */
                    for (i = 0; i < p->k_h; ++i) {
                        const int32_t ih = h0 + i * p->dil_h;
                        if (ih < 0 || ih >= p->in_h) {
                            continue;
                        }
                        for (j = 0; j < p->k_w; ++j) {
                            const int32_t iw = w0 + j * p->dil_w;
                            if (iw >= 0 && iw < p->in_w) {
                                best = ts_max32(best, img[((size_t)ih * p->in_w + iw) * p->channels + c]);
                            }
                        }
                    }
                    *y++ = (int8_t)ts_clamp(best, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ts_mean_s8(const ts_mean_params *p, const int8_t *x, int8_t *y)
{
    const int32_t bias = p->input_offset * p->reduce;
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *xo = x + (size_t)o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int32_t total = 0;
            for (r = 0; r < p->reduce; ++r) {
                total += xo[(size_t)r * p->inner + i];
            }
            *y++ = ts_requant(ts_wrap_add(total, bias), p->multiplier, p->shift, p->output_offset, -128, 127);
        }
    }
}

void ts_reduce_minmax_s8(const ts_reduce_params *p, const int8_t *x, int8_t *y)
{
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *xo = x + (size_t)o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int8_t best = xo[i];
            for (r = 1; r < p->reduce; ++r) {
                const int8_t v = xo[(size_t)r * p->inner + i];
                best = p->is_min ? (v < best ? v : best) : (v > best ? v : best);
            }
            *y++ = best;
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------------------------------- */

static int32_t ts_softmax_exp(const ts_softmax_params *p, int32_t diff)
{
    const int32_t scaled = TS_SRDHM((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    return ts_exp_on_negative_values_q5(scaled);
}

void ts_softmax_s8(const ts_softmax_params *p, const int8_t *x, int8_t *y)
{
    int32_t r, i;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *xr = x + (size_t)r * p->depth;
        int8_t *yr = y + (size_t)r * p->depth;
        int32_t max = -128, sum = 0, headroom, shifted_minus_one, scale, exponent;
        for (i = 0; i < p->depth; ++i) {
            max = ts_max32(max, xr[i]);
        }
        for (i = 0; i < p->depth; ++i) { /* sum of exp in Q12.19 */
            const int32_t diff = xr[i] - max;
            if (diff >= p->diff_min) {
                sum = ts_wrap_add(sum, ts_rounding_divide_by_pot(ts_softmax_exp(p, diff), 12));
            }
        }
        /* the reciprocal of the sum: normalized to [1, 2), 1 / (1 + fraction), and a power of two */
        headroom = ts_clz32(sum);
        shifted_minus_one = (int32_t)((headroom < 32 ? (uint32_t)sum << headroom : 0u) - 0x80000000u);
        scale = ts_one_over_one_plus_x_for_x_in_0_1(shifted_minus_one);
        exponent = (12 - headroom) + 31 - 8;
        for (i = 0; i < p->depth; ++i) {
            const int32_t diff = xr[i] - max;
            int32_t out = -128;
            if (diff >= p->diff_min) {
                out = ts_rounding_divide_by_pot64(TS_SRDHM(scale, ts_softmax_exp(p, diff)), exponent) - 128;
                out = ts_clamp(out, -128, 127);
            }
            yr[i] = (int8_t)out;
        }
    }
}

/* ---- data movement ---------------------------------------------------------------------------------------------- */

void ts_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = table[x[i] + 128];
    }
}

void ts_copy_s8(const ts_copy_params *p, const int8_t *x, int8_t *y, const int8_t *table)
{
    int32_t idx[TS_MAX_DIMS] = {0};
    const int32_t last = p->ndim - 1, n = p->shape[last], xs = p->x_stride[last], ys = p->y_stride[last];
    ptrdiff_t xo = 0, yo = 0;
    int32_t d, i;
    for (;;) {
        const int8_t *xr = x + xo;
        int8_t *yr = y + yo;
        if (table) {
            for (i = 0; i < n; ++i) {
                yr[i * ys] = table[xr[i * xs] + 128];
            }
        } else if (xs == 1 && ys == 1) {
            memcpy(yr, xr, (size_t)n);
        } else {
            for (i = 0; i < n; ++i) {
                yr[i * ys] = xr[i * xs];
            }
        }
        for (d = last - 1; d >= 0; --d) {
            xo += p->x_stride[d];
            yo += p->y_stride[d];
            if (++idx[d] < p->shape[d]) {
                break;
            }
            xo -= (ptrdiff_t)p->x_stride[d] * p->shape[d];
            yo -= (ptrdiff_t)p->y_stride[d] * p->shape[d];
            idx[d] = 0;
        }
        if (d < 0) {
            return;
        }
    }
}

void ts_gather_s8(const int8_t *x, const int32_t *index, int32_t n, int32_t fill, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = index[i] < 0 ? (int8_t)fill : x[index[i]];
    }
}
