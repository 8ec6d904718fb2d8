"""Int8 element-wise kernels: ADD / SUB / MUL with numpy broadcasting, requantization, quantize and
dequantize, and the unary activations (RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH).

Multipliers are derived in double precision from the float32 scales, as the tflite-micro build used as
the oracle (0.dev20261023) does for every op here; tests/engine/test_int8.py holds scale sets on which
the older float32 derivations (still in sub/relu/leaky-relu/hard-swish sources of mid-2026) give other
bytes. Clamp bounds and AffineQuantize divide in float32, as TFLite does.

Unary kernels are written as vectorized functions of the integer input; since an int8 input has only
256 values, the executor evaluates them once per layer into a lookup table (`lookup_table`), which
gives exactly the kernel's results at the cost of one gather.
"""
from __future__ import annotations

import math

import numpy as np

from engine.int8 import fixedpoint
from engine.int8.quant_math import (INT32_MAX, calculate_input_radius, dtype_range,
                                    multiply_by_quantized_multiplier, quantize_multiplier, round_half_away,
                                    rounding_divide_by_pot, wrap32)

ADD_LEFT_SHIFT = 20  # int8 ADD/SUB lift both inputs by 2**20 before rescaling them to a common scale


def add_params(s1: float, s2: float, so: float, left_shift: int = ADD_LEFT_SHIFT) -> dict:
    """Multipliers of TFLite's quantized ADD and SUB: both inputs rescaled to twice the larger input scale
    (double arithmetic: add_common.cc, and sub_common.cc in the tflite-micro build used as the oracle)."""
    twice = 2 * float(max(np.float32(s1), np.float32(s2)))
    reals = (float(s1) / twice, float(s2) / twice, twice / ((1 << left_shift) * float(so)))
    (m1, e1), (m2, e2), (mo, eo) = (quantize_multiplier(r) for r in reals)
    return {"m1": m1, "e1": e1, "m2": m2, "e2": e2, "mo": mo, "eo": eo}


def add(a: np.ndarray, b: np.ndarray, *, zp1: int, zp2: int, zpo: int, params: dict, act_min: int,
        act_max: int, subtract: bool = False, dtype: str = "int8", left_shift: int = ADD_LEFT_SHIFT) -> np.ndarray:
    """(a - zp1) and (b - zp2) lifted by 2**20, each rescaled to twice the larger input scale, summed
    (or subtracted), rescaled to the output, offset and clamped."""
    p = params
    x1 = multiply_by_quantized_multiplier((a.astype(np.int64) - zp1) << left_shift, p["m1"], p["e1"])
    x2 = multiply_by_quantized_multiplier((b.astype(np.int64) - zp2) << left_shift, p["m2"], p["e2"])
    raw = wrap32(x1 - x2 if subtract else x1 + x2)
    y = multiply_by_quantized_multiplier(raw, p["mo"], p["eo"]) + zpo
    return np.clip(y, act_min, act_max).astype(dtype)


def mul(a: np.ndarray, b: np.ndarray, *, zp1: int, zp2: int, zpo: int, multiplier: int, shift: int,
        act_min: int, act_max: int, dtype: str = "int8") -> np.ndarray:
    prod = wrap32((a.astype(np.int64) - zp1) * (b.astype(np.int64) - zp2))
    y = multiply_by_quantized_multiplier(prod, multiplier, shift) + zpo
    return np.clip(y, act_min, act_max).astype(dtype)


def requantize(x: np.ndarray, *, zp_in: int, zp_out: int, multiplier: int, shift: int, dtype: str) -> np.ndarray:
    """reference_ops::Requantize: integer grid to integer grid (QUANTIZE int8 -> int8, RELU's rescale)."""
    lo, hi = dtype_range(dtype)
    y = multiply_by_quantized_multiplier(x.astype(np.int64) - zp_in, multiplier, shift) + zp_out
    return np.clip(y, lo, hi).astype(dtype)


def quantize_float(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """AffineQuantize: round(x / scale) in float32, halves away from zero, + zero point, clamped."""
    lo, hi = dtype_range(dtype)
    q = round_half_away(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(np.clip(q, -2.0**31, 2.0**31 - 1) + zero_point, lo, hi).astype(dtype)


def dequantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Dequantize: float(double(scale) * (q - zero_point))."""
    return (float(scale) * (x.astype(np.int64) - zero_point).astype(np.float64)).astype(np.float32)


# ---- unary activations as functions of the integer input (made into lookup tables) -------------

def lookup_table(fn, dtype: str) -> np.ndarray:
    """fn evaluated on every value of an 8-bit dtype, indexed by value - min."""
    lo, hi = dtype_range(dtype)
    return np.asarray(fn(np.arange(lo, hi + 1, dtype=np.int64)))


def apply_table(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    lo = np.iinfo(x.dtype).min
    return table[x.astype(np.int64) - lo]


def relu_fn(si: float, so: float, zp_in: int, zp_out: int, lo_real: float | None, hi_real: float | None,
            dtype: str = "int8"):
    """TFLM RELU (and the RELU family as clamps): rescale to the output grid, clamp at quantized bounds.

    The multiplier is double(si) / double(so) (CalculateReluOpData); bounds are zp + roundf(bound / so).
    """
    m, e = quantize_multiplier(float(si) / float(so))
    qmin, qmax = dtype_range(dtype)
    lo = qmin if lo_real is None else max(qmin, zp_out + int(round_half_away(np.float32(lo_real) / np.float32(so))))
    hi = qmax if hi_real is None else min(qmax, zp_out + int(round_half_away(np.float32(hi_real) / np.float32(so))))

    def fn(q):
        return np.clip(multiply_by_quantized_multiplier(q - zp_in, m, e) + zp_out, lo, hi)
    return fn


def leaky_relu_fn(si: float, so: float, alpha: float, zp_in: int, zp_out: int, dtype: str = "int8"):
    """LEAKY_RELU: identity multiplier si / so, alpha multiplier si * alpha / so, in double."""
    m_id, e_id = quantize_multiplier(float(si) / float(so))
    m_a, e_a = quantize_multiplier(float(si) * float(np.float32(alpha)) / float(so))
    qmin, qmax = dtype_range(dtype)

    def fn(q):
        v = q - zp_in
        pos = multiply_by_quantized_multiplier(v, m_id, e_id)
        neg = multiply_by_quantized_multiplier(v, abs(m_a), e_a)
        neg = -neg if m_a < 0 else neg
        return np.clip(np.where(v >= 0, pos, neg) + zp_out, qmin, qmax)
    return fn


def _q4_input_params(si: float) -> tuple[int, int, int]:
    """LOGISTIC / TANH input rescaling into Q4.27: frexp of si * 2**27 without QuantizeMultiplier's fix-up."""
    q, shift = math.frexp(float(si) * float(1 << 27))
    multiplier = int(round_half_away(q * (1 << 31)))
    if multiplier >= 1 << 31:  # static_cast<int32_t> of 2**31 wraps
        multiplier -= 1 << 32
    return multiplier, shift, calculate_input_radius(4, shift, 31)


def logistic_fn(si: float, zp_in: int):
    """LOGISTIC int8: output scale 1/256, zero point -128 (gemmlowp logistic on Q4.27)."""
    m, e, radius = _q4_input_params(si)

    def fn(q):
        v = q - zp_in
        inner = np.clip(v, -radius + 1, radius - 1)  # outside the radius the result saturates anyway
        out = fixedpoint.logistic(multiply_by_quantized_multiplier(inner, m, e), 4)
        y = np.clip(rounding_divide_by_pot(out, 31 - 8) - 128, -128, 127)
        return np.where(v <= -radius, -128, np.where(v >= radius, 127, y))
    return fn


def tanh_fn(si: float, zp_in: int):
    """TANH int8: output scale 1/128, zero point 0 (gemmlowp tanh on Q4.27)."""
    m, e, radius = _q4_input_params(si)

    def fn(q):
        v = q - zp_in
        inner = np.clip(v, -radius + 1, radius - 1)
        out = fixedpoint.tanh(multiply_by_quantized_multiplier(inner, m, e), 4)
        y = np.clip(rounding_divide_by_pot(out, 31 - 7), -128, 127)
        return np.where(v <= -radius, -128, np.where(v >= radius, 127, y))
    return fn


def _srdhm16(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul for int16."""
    ab = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    high = np.where(v >= 0, v >> 15, -((-v) >> 15)).astype(np.int16).astype(np.int64)
    return np.where((np.asarray(a) == -32768) & (np.asarray(b) == -32768), 32767, high)


def _sdhm16(a, b):
    """hard_swish.h SaturatingDoublingHighMul: like SRDHM but truncating (no rounding nudge)."""
    ab = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15)).astype(np.int16).astype(np.int64)
    return np.where((np.asarray(a) == -32768) & (np.asarray(b) == -32768), 32767, high)


def _sat_shift16(x, amount: int):
    return np.clip(np.asarray(x, dtype=np.int64) * (1 << amount), -32768, 32767)


def _int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m32 >= INT32_MAX - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(si: float, so: float) -> dict:
    """The input on a 128x finer grid, rescaled to the output and to the 'reluish' grid 3/32768 (double)."""
    hires = float(np.float32(1.0 / 128.0) * np.float32(si))
    m_out, e_out = quantize_multiplier(hires / float(so))
    m_rel, e_rel = quantize_multiplier(hires / (3.0 / 32768.0))
    return {"m_out": _int16_multiplier(m_out), "e_out": e_out, "m_rel": _int16_multiplier(m_rel), "e_rel": e_rel}


def hard_swish_fn(params: dict, zp_in: int, zp_out: int, dtype: str = "int8"):
    """HARD_SWISH int8 (reference_ops::HardSwish): int16 fixed point, x * relu6(x + 3) / 6."""
    p = params

    def fn(q):
        hires = (q - zp_in) * 128
        pre_out = _srdhm16(hires, p["m_out"])
        reluish = hires
        if p["e_rel"] > 0:
            reluish = _sat_shift16(reluish, p["e_rel"] - 1)
        reluish = _srdhm16(reluish, p["m_rel"])
        if p["e_rel"] > 0:
            reluish = _sat_shift16(reluish, 1)
        if p["e_rel"] < 0:
            reluish = rounding_divide_by_pot(reluish, -p["e_rel"])
        reluish = ((reluish + (1 << 15)) >> 1).astype(np.int16).astype(np.int64)
        out = rounding_divide_by_pot(_sdhm16(reluish, pre_out), -p["e_out"])
        out = (out + zp_out).astype(np.int16).astype(np.int64)
        lo, hi = dtype_range(dtype)
        return np.clip(out, lo, hi)
    return fn
