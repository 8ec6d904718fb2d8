"""Int8 softmax as tflite-micro computes it (reference_ops::Softmax with gemmlowp fixed point).

Per row: d = x - max(x) (<= 0); differences below `diff_min` contribute nothing. The others are scaled
by beta * input_scale into Q5.26, exponentiated with exp_on_negative_values, summed in Q12.19, and the
sum is inverted with a Newton-Raphson reciprocal. The output grid is fixed: scale 1/256, zero point -128.
"""
from __future__ import annotations

import numpy as np

from engine.int8 import fixedpoint
from engine.int8.quant_math import (calculate_input_radius, clz32, quantize_multiplier, rounding_divide_by_pot,
                                    saturating_rounding_doubling_high_mul, wrap32)

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def softmax_params(beta: float, input_scale: float) -> dict:
    """PreprocessSoftmaxScaling (double-rounding build): Q5.26 input multiplier, left shift, diff_min."""
    real = min(float(beta) * float(input_scale) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError(f"beta * input scale = {float(beta) * float(input_scale):g} is too small for the int8 softmax")
    diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift)
    return {"multiplier": multiplier, "left_shift": left_shift, "diff_min": diff_min}


def softmax_int8(x: np.ndarray, params: dict) -> np.ndarray:
    """Softmax over the last axis of an int8 array; int8 output with scale 1/256 and zero point -128."""
    diff = x.astype(np.int64) - x.max(axis=-1, keepdims=True).astype(np.int64)
    used = diff >= params["diff_min"]
    # MultiplyByQuantizedMultiplierGreaterThanOne: (d << left_shift) then the Q31 high multiply.
    scaled = saturating_rounding_doubling_high_mul(wrap32(np.where(used, diff, 0) << params["left_shift"]),
                                                   params["multiplier"])
    exps = fixedpoint.exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)  # Q0.31
    terms = np.where(used, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0)  # Rescale<12>
    total = wrap32(terms.sum(axis=-1, keepdims=True))  # Q12.19
    # GetReciprocal: normalize the sum to [1, 2), invert 1 + frac, remember the power of two.
    headroom = clz32(total)
    bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom
    shifted_minus_one = wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31))
    scale = fixedpoint.one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)
    exponent = bits_over_unit + 31 - 8
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scale, exps), exponent) - 128
    return np.where(used, np.clip(out, -128, 127), -128).astype(np.int8)
