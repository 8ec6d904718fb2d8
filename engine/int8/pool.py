"""Int8 pooling and reductions (TFLite reference_integer_ops AveragePool / MaxPool, reference_ops
QuantizedMeanOrSum). Pooling keeps the input's quantization (TFLite requires output == input grid).
"""
from __future__ import annotations

import numpy as np

from engine.int8.conv import windows_nhwc
from engine.int8.quant_math import multiply_by_quantized_multiplier, wrap32


def window_counts(hw, kernel, strides, pads, out_hw, include_pad: bool) -> np.ndarray:
    """(OH, OW) number of cells each window averages: in-image cells (TFLite), or also explicit pads."""
    ones = np.ones((1, *hw, 1), dtype=np.int64)
    if include_pad:  # ONNX count_include_pad: explicit pad cells count, ceil-mode overhang does not
        ones = np.pad(ones, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)), constant_values=1)
        pads = (0, 0, 0, 0)
    v = windows_nhwc(ones, kernel, strides, (1, 1), pads, out_hw, 0)
    return v.sum(axis=(-2, -1))[0, :, :, 0]


def average_pool(x: np.ndarray, *, kernel, strides, pads, out_hw, act_min: int, act_max: int,
                 include_pad: bool = False) -> np.ndarray:
    """NHWC average of raw int8 values, rounded half away from zero as TFLite's integer division does."""
    acc = windows_nhwc(x.astype(np.int64), kernel, strides, (1, 1), pads, out_hw, 0).sum(axis=(-2, -1))
    count = window_counts(x.shape[1:3], kernel, strides, pads, out_hw, include_pad)[None, :, :, None]
    if (count == 0).any():
        raise ValueError("a pooling window holds no input cell")
    half = count // 2
    mean = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
    return np.clip(mean, act_min, act_max).astype(x.dtype)


def max_pool(x: np.ndarray, *, kernel, strides, dilations, pads, out_hw, act_min: int, act_max: int) -> np.ndarray:
    """NHWC max over each window; padding (filled with the dtype's minimum) never wins."""
    lowest = np.iinfo(x.dtype).min
    v = windows_nhwc(x, kernel, strides, dilations, pads, out_hw, lowest)
    return np.clip(v.max(axis=(-2, -1)), act_min, act_max).astype(x.dtype)


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """Fold 1/count into a quantized multiplier the way QuantizedMeanOrSum does (int64 shift and divide)."""
    s = int(count).bit_length() - 1  # 63 - clz64(count)
    s = min(s, 32, 31 + shift)
    return int((multiplier << s) // count), shift - s


def mean_or_sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, *, x_zp: int, y_zp: int,
                multiplier: int, shift: int, dtype: str) -> np.ndarray:
    """TFLite MEAN / SUM on quantized input: int32 sum, minus zero points, one requantization. For a mean,
    multiplier and shift already hold 1 / count (`mean_multiplier`, folded once in the prepare step)."""
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = wrap32(x.astype(np.int64).sum(axis=axes, keepdims=keepdims))
    y = multiply_by_quantized_multiplier(wrap32(total - x_zp * count), multiplier, shift) + y_zp
    info = np.iinfo(np.dtype(dtype))
    return np.clip(y, info.min, info.max).astype(dtype)
