/* ts_softmax_ref.c - softmax over rows (TFLite int8: gemmlowp fixed-point exp and reciprocal, output scale
 * 1/256, zero point -128): portable C, the only implementation on every build. */
#include "ts_fixedpoint.h"

/* The same as ts_rdivpot for exponents up to 62, on int64 as the reference does (softmax's output exponent). */
static int32_t ts_rounding_divide_by_pot64(int32_t x, int32_t exponent)
{
    const int64_t mask = ((int64_t)1 << exponent) - 1;
    const int64_t remainder = (int64_t)x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> exponent) + (remainder > threshold ? 1 : 0));
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

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor expansion around -1/8. */
static int32_t ts_exp_quarter_interval(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = ts_wrap_add(a, 1 << 28);
    const int32_t x2 = ts_srdhm(x, x);
    const int32_t x3 = ts_srdhm(x2, x);
    const int32_t x4 = ts_srdhm(x2, x2);
    const int32_t x4_over_4 = ts_rdivpot(x4, 2);
    const int32_t poly = ts_rdivpot(ts_wrap_add(ts_srdhm(ts_wrap_add(x4_over_4, x3), one_third), x2), 1);
    return ts_wrap_add(constant_term, ts_srdhm(constant_term, ts_wrap_add(x, poly)));
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
            result = ts_srdhm(result, barrel[k + 2]);
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
    int32_t x = ts_wrap_add(c48_17, ts_srdhm(half_denominator, cneg32_17));
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ts_wrap_sub((int32_t)1 << 29, ts_srdhm(half_denominator, x));
        x = ts_wrap_add(x, ts_saturating_left_shift(ts_srdhm(x, one_minus), 2));
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

static int32_t ts_softmax_exp(const ts_softmax_params *p, int32_t diff)
{
    const int32_t scaled = ts_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
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
                sum = ts_wrap_add(sum, ts_rdivpot(ts_softmax_exp(p, diff), 12));
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
                out = ts_rounding_divide_by_pot64(ts_srdhm(scale, ts_softmax_exp(p, diff)), exponent) - 128;
                out = ts_clamp(out, -128, 127);
            }
            yr[i] = (int8_t)out;
        }
    }
}
