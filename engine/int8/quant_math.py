"""Fixed-point arithmetic of TFLite's int8 specification, vectorized over numpy int64 arrays.

Values that are int32 in the C kernels are held in int64 arrays so that products never overflow in
numpy; `wrap32` re-applies C's 32-bit wrap-around where the C code would wrap.

    m, s = quantize_multiplier(0.0123)                  # real multiplier -> (Q31 significand, shift)
    y = multiply_by_quantized_multiplier(acc, m, s)     # round(acc * 0.0123), TFLite's way

Rounding variant. TFLite has two MultiplyByQuantizedMultiplier implementations: the gemmlowp
"double rounding" one (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT) and a "single
rounding" one compiled in with TFLITE_SINGLE_ROUNDING=1. tflite-micro's builds, including the pip
package used as the oracle, leave the flag unset, so double rounding is what the interpreter computes
(tests/engine/test_int8.py checks this on a tie case where the two differ). The single-rounding form
is kept here for the exporters of runtimes that enable it.
"""
from __future__ import annotations

import math

import numpy as np

from engine.errors import GraphError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
_ACT_NAMES = ("none", "relu", "relu6", "relu_n1_to_1")


def wrap32(x) -> np.ndarray:
    """C's int32 wrap-around of int64 values (two's complement)."""
    return np.asarray(x, dtype=np.int64).astype(np.int32).astype(np.int64)


def round_half_away(x):
    """std::round: halves go away from zero (numpy's rint would go to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, np.floor(x + 0.5), -np.floor(0.5 - x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= significand * 2**(shift - 31), significand in [2**30, 2**31).

    frexp splits the double into q in [0.5, 1) and an exponent; q is rounded to Q31 with std::round.
    A q that rounds up to 2**31 is halved (shift + 1); multipliers below 2**-31 flush to zero.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):  # a NaN, infinite or zero scale in the file or from NaN weights
        raise GraphError(f"requantization multiplier {real} is not finite (a quantization scale is zero, "
                         "infinite or NaN)")
    q, shift = math.frexp(real)
    fixed = int(round_half_away(q * (1 << 31)))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier over an array (per-channel scales): (significands, shifts) as int64 arrays."""
    pairs = [quantize_multiplier(r) for r in np.asarray(reals, dtype=np.float64).reshape(-1)]
    return (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64))


def _trunc_div_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """C integer division by 2**exponent (rounds toward zero, unlike >>)."""
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SRDHM for int32: round(a * b / 2**31), the one overflow (MIN * MIN) saturating to MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_div_pot(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded to nearest, halves away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_left_shift(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent: x << e clamped to int32."""
    x = np.asarray(x, dtype=np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier(int32 x), double-rounding form (tflite-micro's build).

    A positive shift multiplies x first (wrapping like C's int32 `x * (1 << shift)`); a negative one
    divides the Q31 product with round-half-away-from-zero. `multiplier`/`shift` broadcast against x
    (per-channel along the last axis).
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap32(x << left), multiplier), right)


def multiply_by_quantized_multiplier_single_round(x, multiplier, shift) -> np.ndarray:
    """The TFLITE_SINGLE_ROUNDING=1 form: (x * m + 2**(30 - shift)) >> (31 - shift), halves toward +inf."""
    x = np.asarray(x, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    # |x * m| < 2**62 and the rounding term is at most 2**61, so int64 holds the sum.
    return (x * np.asarray(multiplier, dtype=np.int64) + (np.int64(1) << (total - 1))) >> total


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """Largest |input difference| whose rescaled value still fits (softmax, logistic, tanh)."""
    top = ((1 << integer_bits) - 1) * (1 << (total_signed_bits - integer_bits))
    return int(math.floor(top / 2.0 ** left_shift))


def quantize_scalar(value: float, scale: float, zero_point: int) -> int:
    """kernel_util's Quantize(): zero_point + round(value / scale) in float32, as activation bounds are made."""
    return int(zero_point) + int(round_half_away(np.float32(value) / np.float32(scale)))


def dtype_range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def activation_range(activation: str, scale: float, zero_point: int, dtype: str = "int8",
                     node: str | None = None, op: str | None = None) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp bounds of a fused activation on the output grid."""
    qmin, qmax = dtype_range(dtype)
    if activation == "none":
        return qmin, qmax
    if activation not in _ACT_NAMES:
        raise GraphError(f"fused activation '{activation}' has no int8 form (TFLite clamps only for the RELU "
                         "family)", node, op)
    lo = {"relu": 0.0, "relu6": 0.0, "relu_n1_to_1": -1.0}[activation]
    hi = {"relu": None, "relu6": 6.0, "relu_n1_to_1": 1.0}[activation]
    a = max(qmin, quantize_scalar(lo, scale, zero_point))
    b = qmax if hi is None else min(qmax, quantize_scalar(hi, scale, zero_point))
    return a, b


def clz32(x) -> np.ndarray:
    """Leading zero bits of positive int32 values."""
    x = np.asarray(x, dtype=np.int64)
    _, exp = np.frexp(x.astype(np.float64))  # exact: x < 2**53, and frexp's exponent is the bit length
    return np.where(x > 0, 32 - exp, 32)
