"""Int8 convolution and fully connected kernels (TFLite reference_integer_ops ConvPerChannel,
DepthwiseConvPerChannel, FullyConnected[PerChannel]).

    acc[o] = sum_k (x[k] - x_zp) * (w[o, k] - w_zp) + bias[o]          int32, wrapping like C
    y[o]   = clamp(MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + y_zp, act_min, act_max)

Everything is integer: the products are int64 matrix products (im2col), which no int32 accumulation can
outgrow; `wrap32` then applies C's int32 wrap-around, so even an overflowing layer gives TFLite's bytes.
Taps outside the image are skipped by TFLite; padding with the input zero point makes them add 0.
Activations are NHWC; weights are (M, kH, kW, C/group) as the TFLite importer stores them.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.int8.quant_math import multiply_by_quantized_multiplier, wrap32


def windows_nhwc(x: np.ndarray, kernel, strides, dilations, pads, out_hw, fill) -> np.ndarray:
    """(N, OH, OW, C, kH, kW) strided view of x (N, H, W, C) padded with `fill`.

    pads = (top, left, bottom, right); the bottom/right side grows when the output needs more rows
    (ceil-mode pooling), shrinks away when it needs fewer.
    """
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    oh, ow = out_hw
    top, left = pads[0], pads[1]
    eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    need_h, need_w = (oh - 1) * sh + eff_h, (ow - 1) * sw + eff_w
    bottom, right = max(0, need_h - h - top), max(0, need_w - w - left)
    if top or left or bottom or right:
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    v = sliding_window_view(x, (eff_h, eff_w), axis=(1, 2))
    return v[:, :need_h - eff_h + 1:sh, :need_w - eff_w + 1:sw, :, ::dh, ::dw]


def requantize_acc(acc: np.ndarray, bias, multiplier, shift, out_zp: int, act_min: int, act_max: int,
                   dtype: str = "int8") -> np.ndarray:
    """int32 accumulators (channels last) -> output integers: + bias, rescale, + zero point, clamp."""
    if bias is not None:
        acc = acc + bias
    y = multiply_by_quantized_multiplier(wrap32(acc), multiplier, shift) + out_zp
    return np.clip(y, act_min, act_max).astype(dtype)


def conv_weights(w: np.ndarray, w_zp, group: int) -> np.ndarray:
    """Weights minus their zero point, laid out for `conv2d_acc` (computed once per layer).

    Depthwise (C/group == 1): (kH, kW, M) taps. Otherwise (group, kH*kW*C/g, M/group) matrices. int64.
    """
    m, kh, kw, cg = w.shape
    ws = w.astype(np.int64) - np.asarray(w_zp, dtype=np.int64).reshape(-1, 1, 1, 1)
    if cg == 1:
        return np.ascontiguousarray(ws[..., 0].transpose(1, 2, 0))
    return np.ascontiguousarray(ws.reshape(group, m // group, kh * kw * cg).transpose(0, 2, 1))


def conv2d_acc(x: np.ndarray, wc: np.ndarray, *, x_zp: int, kernel, strides, dilations, pads, out_hw,
               group: int) -> np.ndarray:
    """Accumulators (N, OH, OW, M) of a grouped 2-D convolution of x (N, H, W, C) with `conv_weights`."""
    n, _, _, c = x.shape
    kh, kw = kernel
    oh, ow = out_hw
    cg = c // group
    xs = x.astype(np.int64) - x_zp
    v = windows_nhwc(xs, kernel, strides, dilations, pads, out_hw, 0)  # (N, OH, OW, C, kH, kW)
    if cg == 1:
        # Depthwise (with channel multiplier): one multiply-add per tap; output o reads channel o // mult.
        m = wc.shape[-1]
        src = np.repeat(v, m // c, axis=3) if m > c else v
        acc = np.zeros((n, oh, ow, m), dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                acc += src[..., i, j] * wc[i, j]
        return acc
    p = n * oh * ow
    mg = wc.shape[-1]
    # (N, OH, OW, g, cg, kH, kW) -> (g, P, kH*kW*cg): columns ordered like the weights' (kH, kW, C/g).
    cols = v.reshape(n, oh, ow, group, cg, kh, kw).transpose(3, 0, 1, 2, 5, 6, 4).reshape(group, p, kh * kw * cg)
    acc = np.matmul(cols, wc)  # (g, P, M/g)
    return acc.transpose(1, 0, 2).reshape(n, oh, ow, group * mg)


def fc_weights(w: np.ndarray, w_zp) -> np.ndarray:
    """(K, N) int64 weights minus zero point for `fully_connected_acc`, from TFLite's (N, K)."""
    ws = w.astype(np.int64) - np.asarray(w_zp, dtype=np.int64).reshape(-1, 1)
    return np.ascontiguousarray(ws.T)


def fully_connected_acc(x: np.ndarray, wc: np.ndarray, *, x_zp: int) -> np.ndarray:
    """Accumulators (B, N) of x (B, K) with `fc_weights` (TFLite FULLY_CONNECTED / Gemm transB=1)."""
    return (x.astype(np.int64) - x_zp) @ wc
