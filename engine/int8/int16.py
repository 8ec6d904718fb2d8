"""TFLite's 16x8 scheme: int16 activations (zero point 0), int8 weights, int64 bias (tflite-micro's int16
kernels: conv.cc, depthwise_conv.cc, fully_connected.cc, transpose_conv.cc, add/sub, leaky_relu.cc).

    rec = prepare_conv16(g, node)      # the int8 records with x_dtype="int16" (engine/int8/params.py)
    y = mbqm64(acc, rec.multiplier, rec.shift)

What differs from int8: accumulators are int64 (a 16x8 product sum outgrows int32), and with an int64 bias
the requantization is the 64-bit MultiplyByQuantizedMultiplier (common.cc), which rounds the Q31
multiplier to 16 bits and shifts once; an int32 bias keeps int32 accumulators and the int8 rounding, as
tflite-micro's AccumScalar template does. ADD/SUB lift by 2**15 instead of 2**20.
"""
from __future__ import annotations

import numpy as np

from engine.int8.conv import conv2d_acc, conv_weights, fully_connected_acc
from engine.int8.params import ConvParams, FCParams, LeakyReluParams, TransposeConvParams, frozen_array
from engine.int8.quant_math import activation_range, multiply_by_quantized_multiplier, quantize_multipliers, wrap32
from engine.int8.readers import act_grid, bias_of, const_data, node_error, tensor_of, weight_grid
from engine.ir import Graph, Node

INT16 = ("int16",)
ADD16_LEFT_SHIFT = 15   # add_common.cc / sub_common.cc: left_shift = 15 when the output is int16


def is_int16(g: Graph, node: Node) -> bool:
    """The node runs tflite-micro's int16 kernel: its first input is an int16 activation."""
    return bool(node.inputs) and node.inputs[0] in g.tensors and g.tensors[node.inputs[0]].dtype == "int16"


def mbqm64(x, multiplier, shift) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(int64 x): the Q31 multiplier rounded to Q15, one rounding shift."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, dtype=np.int64)
    return (x * reduced + (np.int64(1) << (total - 1))) >> total


def requant16(acc, bias, multiplier, shift, acc64: bool, lo: int, hi: int) -> np.ndarray:
    """Accumulators (channels last) + bias -> int16: 64-bit rounding with an int64 bias, else int8's."""
    if bias is not None:
        acc = acc + bias
    y = mbqm64(acc, multiplier, shift) if acc64 else multiply_by_quantized_multiplier(wrap32(acc), multiplier, shift)
    return np.clip(y, lo, hi).astype(np.int16)


def _bias16(g: Graph, node: Node, i: int, m: int, int16_ok: bool = False) -> tuple[np.ndarray | None, bool]:
    """(bias as int64, whether accumulation is 64-bit): int64 bias (the 16x8 scheme) or int32; TRANSPOSE_CONV
    also takes an int16 bias, which tflite-micro widens to int64 (int16_ok)."""
    if i >= len(node.inputs) or not node.inputs[i]:
        return None, True
    t = g.tensors[node.inputs[i]]
    data = const_data(node, t, "bias")
    if t.dtype not in ("int64", "int32", *(("int16",) if int16_ok else ())) or data.size != m:
        raise node_error(node, f"bias '{t.name}' must be {m} int64 (or int32) values (TFLite 16x8 scheme), "
                               f"got {t.dtype} {list(t.shape)}")
    return data.reshape(-1).astype(np.int64), t.dtype != "int32"


def _grid16(node: Node, x, y) -> tuple[float, float, int, int]:
    sx, zx = act_grid(node, x, INT16)
    so, zo = act_grid(node, y, INT16)
    if zx or zo:
        raise node_error(node, f"int16 activations need zero point 0 (TFLite 16x8), '{x.name}' has {zx}, "
                               f"'{y.name}' has {zo}")
    lo, hi = activation_range(node.attrs.get("activation", "none"), so, zo, "int16", node.name, node.op)
    return sx, so, lo, hi


def prepare_conv16(g: Graph, node: Node, geometry) -> ConvParams:
    """Conv / depthwise on int16: geometry = (layout, rank, k, s, d, pads, out, group, w4) from prepare."""
    layout, rank, k, s, d, pads, out, group, w4 = geometry
    x, w, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    sx, so, lo, hi = _grid16(node, x, y)
    m = w4.shape[0]
    wscale, wzp, _ = weight_grid(node, w, m, 0)
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in wscale])
    bias, acc64 = _bias16(g, node, 2, m)
    centered = w4.astype(np.int64) - wzp.reshape(-1, 1, 1, 1)
    return ConvParams(layout, rank, k, s, d, pads, out, group, 0, 0, y.dtype, w.dtype, frozen_array(centered),
                      frozen_array(mult), frozen_array(shift), None if bias is None else frozen_array(bias),
                      lo, hi, None, x_dtype="int16", acc64=acc64)


def prepare_fc16(g: Graph, node: Node, wdata: np.ndarray, trans_b: int) -> FCParams:
    a, w, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    sx, so, lo, hi = _grid16(node, a, y)
    units = wdata.shape[0] if trans_b else wdata.shape[1]
    wscale, wzp, per_channel = weight_grid(node, w, units, 0 if trans_b else 1)
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in (wscale if per_channel else wscale[:1])])
    bias, acc64 = _bias16(g, node, 2, units)
    centered = (wdata if trans_b else wdata.T).astype(np.int64) - wzp.reshape(-1, 1)
    return FCParams(0, 0, y.dtype, w.dtype, frozen_array(centered), per_channel, frozen_array(mult),
                    frozen_array(shift), None if bias is None else frozen_array(bias), lo, hi, None,
                    x_dtype="int16", acc64=acc64)


def prepare_leaky16(g: Graph, node: Node) -> LeakyReluParams:
    """leaky_relu_common.cc: identity si / so and alpha si * alpha / so, then QuantizeMultiplier. In double,
    as the tflite-micro interpreter (the oracle) computes them; the SEANet goldens were made with float32
    products and differ by 1 on 6 of 222,944 values, inside the ±1 their own test allows."""
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    (sx, zx), (so, zo) = act_grid(node, x, INT16), act_grid(node, y, INT16)
    alpha = float(np.float32(node.attrs.get("alpha", 0.01)))
    (m_a,), (e_a,) = quantize_multipliers([sx * alpha / so])
    (m_i,), (e_i,) = quantize_multipliers([sx / so])
    return LeakyReluParams(zx, zo, int(m_i), int(e_i), int(m_a), int(e_a), y.dtype)


def prepare_transpose_conv(g: Graph, node: Node, pads, out_hw, strides) -> TransposeConvParams:
    """TRANSPOSE_CONV (NHWC, weights (M, kH, kW, C)) on int8 or int16 activations (transpose_conv.cc)."""
    x, w, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    int16 = x.dtype == "int16"
    (sx, zx), (so, zo) = act_grid(node, x, INT16 if int16 else ("int8",)), act_grid(node, y, (x.dtype,))
    wdata = const_data(node, w, "filter")
    if node.attrs.get("layout", "NCHW") != "NHWC" or int(node.attrs.get("group", 1)) != 1:
        raise node_error(node, "integer ConvTranspose takes TFLite's NHWC layout with group 1")
    m = wdata.shape[0]
    wscale, wzp, _ = weight_grid(node, w, m, 0)
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in wscale])
    lo, hi = activation_range(node.attrs.get("activation", "none"), so, zo, y.dtype, node.name, node.op)
    if int16:
        bias, acc64 = _bias16(g, node, 2, m, int16_ok=True)
    else:
        bias, acc64 = bias_of(g, node, 2, m), False
    centered = wdata.astype(np.int64) - wzp.reshape(-1, 1, 1, 1)
    return TransposeConvParams(x.dtype, tuple(strides), tuple(pads), tuple(out_hw), zx, zo,
                               frozen_array(centered), frozen_array(mult), frozen_array(shift),
                               None if bias is None else frozen_array(bias), lo, hi, acc64)


def tflite_transpose_pads(out, k, s, auto_pad: str) -> tuple[int, int, int, int]:
    """transpose_conv.cc: ComputePaddingHeightWidth on the *output* size, as if it were a conv's input; a
    file whose input size disagrees with that (VALID with a cropped output) is padded tflite-micro's way."""
    pads = []
    for size, kk, ss in zip(out, k, s):
        o = (size + ss - 1) // ss if auto_pad == "SAME_UPPER" else (size - kk + ss) // ss
        pads.append(max((o - 1) * ss + kk - size, 0) // 2)
    return pads[0], pads[1], pads[0], pads[1]


# ---- numpy kernels ------------------------------------------------------------------------------------

def conv16(p: ConvParams, x: np.ndarray) -> np.ndarray:
    """x (N, H, W, C) int16 -> (N, OH, OW, M) int16."""
    wc = conv_weights(p.centered, 0, p.group)
    acc = conv2d_acc(x, wc, x_zp=0, kernel=p.kernel, strides=p.strides, dilations=p.dilations, pads=p.pads,
                     out_hw=p.out_hw, group=p.group)
    return requant16(acc, p.bias, p.multiplier, p.shift, p.acc64, p.act_min, p.act_max)


def fc16(p: FCParams, x: np.ndarray) -> np.ndarray:
    acc = fully_connected_acc(x, np.ascontiguousarray(p.centered.T), x_zp=0)
    mult, shift = (p.multiplier, p.shift) if p.per_channel else (p.multiplier[0], p.shift[0])
    return requant16(acc, p.bias, mult, shift, p.acc64, p.act_min, p.act_max)


def leaky16(p: LeakyReluParams, x: np.ndarray) -> np.ndarray:
    """reference_ops::QuantizeLeakyRelu: identity or alpha multiplier by sign, int32 rounding, clamp."""
    v = x.astype(np.int64) - p.x_zp
    pos = multiply_by_quantized_multiplier(v, p.m_identity, p.e_identity)
    neg = multiply_by_quantized_multiplier(v, p.m_alpha, p.e_alpha)
    info = np.iinfo(np.dtype(p.y_dtype))
    return np.clip(np.where(v >= 0, pos, neg) + p.y_zp, info.min, info.max).astype(p.y_dtype)


def transpose_conv(p: TransposeConvParams, x: np.ndarray) -> np.ndarray:
    """reference_integer_ops::TransposeConv: each input pixel scatters x * w into the output (int64
    scratch for int16, int32 for int8), then + bias, requantize, clamp."""
    n, h, wd, c = x.shape
    m, kh, kw, _ = p.centered.shape
    (sh, sw), (pt, pl) = p.strides, p.pads[:2]
    oh, ow = p.out_hw
    # Full scatter canvas, then crop the padding: out[y, x] += in[i, j] * w[y - i*sh + pt, ...].
    full = np.zeros((n, (h - 1) * sh + kh, (wd - 1) * sw + kw, m), np.int64)
    xs = x.astype(np.int64) - p.x_zp
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + (h - 1) * sh + 1:sh, j:j + (wd - 1) * sw + 1:sw, :] += xs @ p.centered[:, i, j, :].T
    acc = np.zeros((n, oh, ow, m), np.int64)
    hh, ww = min(oh, full.shape[1] - pt), min(ow, full.shape[2] - pl)
    acc[:, :hh, :ww] = full[:, pt:pt + hh, pl:pl + ww]
    if p.x_dtype == "int16":
        return requant16(acc, p.bias, p.multiplier, p.shift, p.acc64, p.act_min, p.act_max)
    if p.bias is not None:
        acc = acc + p.bias
    y = multiply_by_quantized_multiplier(wrap32(acc), p.multiplier, p.shift) + p.y_zp
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)
