"""gemmlowp's fixed-point transcendental functions, as TFLite's int8 softmax, logistic and tanh use them.

A FixedPoint<int32, I> number is an int32 `raw` with I integer bits and 31 - I fractional bits. Here raw
values travel as int64 numpy arrays; the integer-bit count is an explicit argument. The product of two
fixed-point numbers is SaturatingRoundingDoublingHighMul (its integer bits add up), sums wrap like
int32, and Rescale/ConstantPOT follow gemmlowp's definitions so that results match bit for bit.
"""
from __future__ import annotations

import numpy as np

from engine.int8.quant_math import (INT32_MAX, rounding_divide_by_pot, saturating_left_shift,
                                    saturating_rounding_doubling_high_mul as mul, wrap32)

ONE_Q0 = INT32_MAX  # FixedPoint<int32, 0>::One() is the largest raw value, 1 - 2**-31


def rescale(raw, src_bits: int, dst_bits: int) -> np.ndarray:
    """gemmlowp Rescale<dst>(FixedPoint<src>): multiply the raw value by 2**(src - dst), rounding or saturating."""
    e = src_bits - dst_bits
    if e > 0:
        return saturating_left_shift(raw, e)
    if e < 0:
        return rounding_divide_by_pot(raw, -e)
    return np.asarray(raw, dtype=np.int64)


def _exp_quarter_interval(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor expansion around -1/8 (gemmlowp's constants)."""
    constant_term = 1895147668  # exp(-1/8)
    one_third = 715827883
    x = wrap32(a + (1 << 28))  # a + 1/8
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap32(mul(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(constant_term + mul(constant_term, wrap32(x + poly)))


# exp(-2**k) in Q0.31 for the barrel shifter, k = -2 .. 4.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given as FixedPoint<int32, integer_bits>; result in Q0.31.

    a = (a mod 1/4 - 1/4) + remainder: the first part goes through the polynomial, the remainder (a sum
    of powers of two) multiplies in the constants exp(-2**k) bit by bit.
    """
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - integer_bits
    quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_quarter = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter_interval(rescale(a_mod_quarter_minus_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for k, multiplier in _EXP_BARREL:
        if integer_bits > k:
            bit = (remainder & (1 << (frac_bits + k))) != 0
            result = np.where(bit, mul(result, multiplier), result)
    if integer_bits > 5:  # inputs below -32 underflow to 0
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, ONE_Q0, result)


def _rounding_half_sum(a, b) -> np.ndarray:
    s = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    v = s + np.where(s >= 0, 1, -1)
    return np.where(v >= 0, v // 2, -((-v) // 2))  # C division truncates toward zero


def _newton_reciprocal_half_denominator(a) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson for 1 / ((1 + a) / 2), a in Q0.31: returns x in Q2.29 (gemmlowp, 3 iterations)."""
    half_denominator = _rounding_half_sum(a, ONE_Q0)
    c48_17, cneg32_17 = 1515870810, -1010580540  # 48/17 and -32/17 in Q2.29
    one_q2 = 1 << 29
    x = wrap32(c48_17 + mul(half_denominator, cneg32_17))
    for _ in range(3):
        one_minus = wrap32(one_q2 - mul(half_denominator, x))
        x = wrap32(x + rescale(mul(x, one_minus), 4, 2))
    return x, half_denominator


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out."""
    x, _ = _newton_reciprocal_half_denominator(a)
    return rescale(x, 1, 0)  # ExactMulByPot<-1> turns Q2.29 into Q1.30 with the same raw value


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """(1 - a) / (1 + a) for a in [0, 1), Q0.31 in and out."""
    x, _ = _newton_reciprocal_half_denominator(a)
    return rescale(wrap32(x - (1 << 29)), 2, 0)


def logistic(a, integer_bits: int) -> np.ndarray:
    """1 / (1 + exp(-a)) for FixedPoint<int32, integer_bits> a; result in Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    abs_a = np.where(positive, a, wrap32(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_a), integer_bits))
    if_negative = wrap32(ONE_Q0 - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a, integer_bits: int) -> np.ndarray:
    """tanh(a) for FixedPoint<int32, integer_bits> a; result in Q0.31 (via exp(-2|a|))."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))  # -|a|
    # ExactMulByPot<1>: the same raw value read with one more integer bit is 2 * n.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))
