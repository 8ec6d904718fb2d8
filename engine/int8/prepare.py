"""The prepare step: IR node -> its frozen parameter record (engine/int8/params.py), once per layer.

    rec = prepare_node(graph, node)     # ConvParams, AddParams, TableParams, ...

Parameters follow the Prepare() functions of tflite-micro's kernels (conv_common.cc, add_common.cc,
softmax_common.cc, ...), down to which quantities are float32 and which double, so that a TFLite int8
model gives the interpreter's bytes. Ops TFLite does not have in int8 but TinyStudio's quantized graphs
need (NCHW layout, 1-D convs, count_include_pad, concat of different grids) extend the same arithmetic.
The numpy kernels (lower.py) and the C emitter (engine/codegen) both read the record; anything without a
record raises a GraphError naming the node and op.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.int8 import elementwise as ew
from engine.int8 import int16
from engine.int8.dsp_requant import add_requant_mode, dsp_requant
from engine.int8.params import (AddParams, ConcatParams, ConvParams, CopyParams, DequantizeParams, FCParams,
                                LeakyReluParams, MeanParams, MoveParams, MulParams, Params, PoolParams,
                                QuantizeParams, RequantParams, SoftmaxParams, TableParams, TransposeConvParams,
                                frozen_array)
from engine.int8.pool import mean_multiplier
from engine.int8.quant_math import activation_range, quantize_multiplier, quantize_multipliers
from engine.int8.readers import (act_grid, bias_of, check_fixed_output, check_same_grid, clamp_range, const_data,
                                 global_axes, is_quantized, node_error, reduce_axes, spatial_2d, tensor_of,
                                 weight_grid)
from engine.int8.softmax import softmax_params
from engine.ir import INT_DTYPES, Graph, Node, Tensor
from engine.ops import ops_where
from engine.ops.base import OpContext, norm_axis
from engine.registry import registrar
from engine.validate import node_context

PREPARE: dict[str, Callable[[Graph, Node], Params]] = {}


prepares = registrar(PREPARE)   # @prepares("Conv"): PREPARE["Conv"] is the decorated record builder


def prepare_node(g: Graph, node: Node) -> Params:
    fn = PREPARE.get(node.op)
    if fn is None:
        raise node_error(node, f"no int8 kernel for {node.op} (int8 ops: {', '.join(sorted(PREPARE))})")
    return fn(g, node)


# ---- compute ops ------------------------------------------------------------------------------------

@prepares("Conv")
def _conv(g: Graph, node: Node) -> ConvParams:
    x, w, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    if x.dtype == "int16":
        return _conv16(g, node, w)
    sx, zx = act_grid(node, x)
    so, zo = act_grid(node, y)
    wdata = const_data(node, w, "filter")
    layout = node.attrs.get("layout", "NCHW")
    m = wdata.shape[0]
    if layout == "NCHW":  # (M, C/g, [kH,] kW) -> (M, kH, kW, C/g)
        w4 = wdata[:, :, None] if wdata.ndim == 3 else wdata
        w4 = w4.transpose(0, 2, 3, 1)
    else:  # (M, [kH,] kW, C/g)
        w4 = wdata[:, None] if wdata.ndim == 3 else wdata
    _, layout, rank, k, s, d, pads, out = spatial_2d(g, node, tuple(wdata.shape[2:] if layout == "NCHW"
                                                                    else wdata.shape[1:-1]))
    group = int(node.attrs.get("group", 1))
    wscale, wzp, _ = weight_grid(node, w, m, 0)
    # PopulateConvolutionQuantizationParams: one double-precision multiplier per output channel.
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in wscale])
    bias = bias_of(g, node, 2, m)
    lo, hi = clamp_range(node, y)
    centered = w4.astype(np.int64) - wzp.reshape(-1, 1, 1, 1)
    dsp = dsp_requant(centered, np.zeros(m, np.int64) if bias is None else bias, zx, mult, shift, zo, lo, hi)
    return ConvParams(layout, rank, k, s, d, pads, out, group, zx, zo, y.dtype, w.dtype, frozen_array(centered),
                      frozen_array(mult), frozen_array(shift), None if bias is None else frozen_array(bias),
                      lo, hi, dsp)


def _conv16(g: Graph, node: Node, w: Tensor) -> ConvParams:
    wdata = const_data(node, w, "filter")
    layout = node.attrs.get("layout", "NCHW")
    w4 = wdata[:, :, None] if (layout == "NCHW" and wdata.ndim == 3) else wdata
    w4 = w4.transpose(0, 2, 3, 1) if layout == "NCHW" else (wdata[:, None] if wdata.ndim == 3 else wdata)
    _, layout, rank, k, s, d, pads, out = spatial_2d(g, node, tuple(wdata.shape[2:] if layout == "NCHW"
                                                                    else wdata.shape[1:-1]))
    return int16.prepare_conv16(g, node, (layout, rank, k, s, d, pads, out, int(node.attrs.get("group", 1)), w4))


@prepares("Gemm")
def _gemm(g: Graph, node: Node) -> FCParams:
    a, w, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    if node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0:
        raise node_error(node, "int8 Gemm needs transA=0, alpha=1, beta=1 (a fully connected layer)")
    if a.dtype == "int16":
        return int16.prepare_fc16(g, node, const_data(node, w, "weights"), int(node.attrs.get("transB", 0)))
    sx, zx = act_grid(node, a)
    so, zo = act_grid(node, y)
    wdata = const_data(node, w, "weights")
    trans_b = int(node.attrs.get("transB", 0))
    units = wdata.shape[0] if trans_b else wdata.shape[1]
    wscale, wzp, per_channel = weight_grid(node, w, units, 0 if trans_b else 1)
    # One multiplier per output channel, or one for the layer (FullyConnected vs ...PerChannel).
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in (wscale if per_channel else wscale[:1])])
    bias = bias_of(g, node, 2, units)
    lo, hi = clamp_range(node, y)
    centered = (wdata if trans_b else wdata.T).astype(np.int64) - wzp.reshape(-1, 1)   # (N, K)
    # sum (x - zx) w + b = sum x w + (b - zx sum w): the C folds the input offset into the bias (exact).
    folded = (np.zeros(units, np.int64) if bias is None else bias) - zx * centered.sum(axis=1)
    dsp = dsp_requant(centered, folded, 0, mult, shift, zo, lo, hi)
    return FCParams(zx, zo, y.dtype, w.dtype, frozen_array(centered), per_channel, frozen_array(mult),
                    frozen_array(shift), None if bias is None else frozen_array(bias), lo, hi, dsp)


@prepares("Add", "Sub")
def _add(g: Graph, node: Node) -> AddParams:
    a, b, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    if y.dtype == "int16":  # add_common.cc / sub_common.cc: int16 lifts by 2**15
        dt = ("int16",)
        (s1, z1), (s2, z2), (so, zo) = act_grid(node, a, dt), act_grid(node, b, dt), act_grid(node, y, dt)
        q = ew.add_params(s1, s2, so, int16.ADD16_LEFT_SHIFT)
        lo, hi = activation_range(node.attrs.get("activation", "none"), so, zo, "int16", node.name, node.op)
        rescale = (q["m1"], q["e1"], q["m2"], q["e2"], q["mo"], q["eo"])
        return AddParams(z1, z2, zo, int16.ADD16_LEFT_SHIFT, *rescale, lo, hi, node.op == "Sub", y.dtype,
                         add_requant_mode(*rescale))
    (s1, z1), (s2, z2), (so, zo) = act_grid(node, a), act_grid(node, b), act_grid(node, y)
    q = ew.add_params(s1, s2, so)
    lo, hi = clamp_range(node, y)
    rescale = (q["m1"], q["e1"], q["m2"], q["e2"], q["mo"], q["eo"])
    return AddParams(z1, z2, zo, ew.ADD_LEFT_SHIFT, *rescale, lo, hi, node.op == "Sub", y.dtype,
                     add_requant_mode(*rescale))


@prepares("Mul")
def _mul(g: Graph, node: Node) -> MulParams:
    a, b, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    (s1, z1), (s2, z2), (so, zo) = act_grid(node, a), act_grid(node, b), act_grid(node, y)
    m, e = quantize_multiplier(s1 * s2 / so)
    lo, hi = clamp_range(node, y)
    return MulParams(z1, z2, zo, m, e, lo, hi, y.dtype)


@prepares("AveragePool", "MaxPool")
def _pool(g: Graph, node: Node) -> PoolParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    act_grid(node, x)
    check_same_grid(node, x, y, "int8 pooling does not rescale")  # pooling_common.cc requires it too
    ctx, layout, rank, k, s, d, pads, out = spatial_2d(g, node)
    lo, hi = clamp_range(node, y)
    is_max = node.op == "MaxPool"
    return PoolParams(is_max, layout, rank, k, s, d, pads, out, lo, hi,
                      not is_max and bool(ctx.attr("count_include_pad")))


def _mean(node: Node, x: Tensor, y: Tensor, axes: tuple[int, ...], keepdims: bool, compute_sum: bool) -> MeanParams:
    (sx, zx), (so, zo) = act_grid(node, x), act_grid(node, y)
    m, e = quantize_multiplier(sx / so)  # reduce_common.cc: double(input scale) / double(output scale)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if not compute_sum:
        m, e = mean_multiplier(m, e, count)
    return MeanParams(axes, keepdims, count, zx, zo, m, e, compute_sum, y.dtype)


@prepares("ReduceMean", "ReduceSum")
def _reduce(g: Graph, node: Node) -> MeanParams | CopyParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    ctx = node_context(g, node)
    axes = reduce_axes(ctx, len(x.shape))
    if axes is None:
        if ctx.attr("noop_with_empty_axes"):
            check_same_grid(node, x, y, "an empty reduction copies")
            return CopyParams()
        axes = tuple(range(len(x.shape)))
    return _mean(node, x, y, axes, bool(ctx.attr("keepdims")), node.op == "ReduceSum")


@prepares("GlobalAveragePool")
def _global_avg(g: Graph, node: Node) -> MeanParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    return _mean(node, x, y, global_axes(node, len(x.shape)), True, False)  # TFLite converts it to MEAN


@prepares("Softmax")
def _softmax(g: Graph, node: Node) -> SoftmaxParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    sx, _ = act_grid(node, x)
    so, zo = act_grid(node, y)
    if so != 1.0 / 256 or zo != -128:
        raise node_error(node, f"int8 softmax output '{y.name}' must have scale 1/256 and zero point -128 "
                               f"(tflite-micro's fixed grid), has scale {so:g}, zero point {zo}")
    try:
        q = softmax_params(float(node.attrs.get("beta", 1.0)), sx)
    except ValueError as e:
        raise node_error(node, str(e)) from None
    axis = norm_axis(int(node.attrs.get("axis", -1)), len(x.shape))
    return SoftmaxParams(axis, q["multiplier"], q["left_shift"], q["diff_min"])


# ---- unary ops as lookup tables ---------------------------------------------------------------------

def _table(node: Node, x: Tensor, y: Tensor, fn) -> TableParams:
    if x.dtype not in ("int8", "uint8"):
        raise node_error(node, f"input '{x.name}' is {x.dtype}; int8 unary kernels take 8-bit inputs")
    return TableParams(frozen_array(ew.lookup_table(fn, x.dtype).astype(y.dtype)))


_BIG = 1e30  # Clip's default bounds are +-FLT_MAX: no clamp


@prepares("Relu", "Relu6", "Clip")
def _relu(g: Graph, node: Node) -> TableParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    (sx, zx), (so, zo) = act_grid(node, x), act_grid(node, y)
    lo, hi = {"Relu": (0.0, None), "Relu6": (0.0, 6.0)}.get(node.op, (None, None))
    if node.op == "Clip":
        cmin, cmax = float(node.attrs.get("min", -3.4e38)), float(node.attrs.get("max", 3.4e38))
        lo, hi = (cmin if cmin > -_BIG else None), (cmax if cmax < _BIG else None)
    # With equal grids this is tflite-micro's RELU6 (a clamp); RELU always rescales to the output grid.
    return _table(node, x, y, ew.relu_fn(sx, so, zx, zo, lo, hi, y.dtype))


@prepares("LeakyRelu")
def _leaky(g: Graph, node: Node) -> TableParams | LeakyReluParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    if x.dtype == "int16":
        return int16.prepare_leaky16(g, node)
    (sx, zx), (so, zo) = act_grid(node, x), act_grid(node, y)
    return _table(node, x, y, ew.leaky_relu_fn(sx, so, float(node.attrs.get("alpha", 0.01)), zx, zo, y.dtype))


@prepares("Sigmoid")
def _sigmoid(g: Graph, node: Node) -> TableParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    sx, zx = act_grid(node, x)
    check_fixed_output(node, y, 1.0 / 256, -128)
    return _table(node, x, y, ew.logistic_fn(sx, zx))


@prepares("Tanh")
def _tanh(g: Graph, node: Node) -> TableParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    sx, zx = act_grid(node, x)
    check_fixed_output(node, y, 1.0 / 128, 0)
    return _table(node, x, y, ew.tanh_fn(sx, zx))


@prepares("HardSwish")
def _hard_swish(g: Graph, node: Node) -> TableParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    (sx, zx), (so, zo) = act_grid(node, x), act_grid(node, y)
    params = ew.hard_swish_params(sx, so)
    if params["e_out"] > 0:
        raise node_error(node, "input scale / output scale / 128 must be below 1 for the int8 hard swish")
    return _table(node, x, y, ew.hard_swish_fn(params, zx, zo, y.dtype))


# ---- conversions ------------------------------------------------------------------------------------

@prepares("QuantizeLinear")
def _quantize(g: Graph, node: Node) -> QuantizeParams | TableParams | RequantParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    so, zo = act_grid(node, y, ("int8", "uint8", "int16", "int32"))
    if not is_quantized(x):
        return QuantizeParams(so, zo, y.dtype)
    sx, zx = act_grid(node, x, ("int8", "uint8", "int16", "int32"))
    m, e = quantize_multiplier(sx / so)  # quantize_common.cc: requantization between integer grids
    if x.dtype in ("int8", "uint8"):
        return _table(node, x, y, lambda q: ew.requantize(q, zp_in=zx, zp_out=zo, multiplier=m, shift=e,
                                                          dtype=y.dtype))
    return RequantParams(zx, zo, m, e, y.dtype)


@prepares("DequantizeLinear")
def _dequantize(g: Graph, node: Node) -> DequantizeParams:
    x = tensor_of(g, node, 0)
    if x.quant is None:
        raise node_error(node, f"input '{x.name}' has no quantization parameters")
    q = x.quant
    if q.scale.size == 1:
        return DequantizeParams(float(q.scale[0]), int(q.zero_point[0]), q)
    return DequantizeParams(None, None, q)


# ---- data movement: integers move unchanged, so every quantized tensor must share one grid ---------

_MOVES = ops_where(lambda op: op.moves_values)


@prepares(*_MOVES)
def _move(g: Graph, node: Node) -> MoveParams:
    ctx = node_context(g, node)
    qs = [t for t in (*ctx.ins, *ctx.outs) if is_quantized(t)]
    for t in qs[1:]:
        check_same_grid(node, qs[0], t, f"{node.op} moves integers without rescaling")
    if node.op == "Resize" and ctx.attr("mode") != "nearest":
        raise node_error(node, "int8 Resize supports mode 'nearest' only")
    return MoveParams(ctx, tuple(t.dtype for t in ctx.outs), 0)


@prepares("Pad")
def _pad(g: Graph, node: Node) -> MoveParams:
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    check_same_grid(node, x, y, "int8 Pad does not rescale")
    ctx = node_context(g, node)
    fill = 0
    if ctx.attr("mode") == "constant":
        so, zo = act_grid(node, y, INT_DTYPES)
        # PAD fills with the zero point; PADV2's constant was dequantized by the importer: back to the grid.
        fill = int(ew.quantize_float(np.array([ctx.attr("value")]), so, zo, y.dtype)[0])
        node_v = Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "value": fill}, node.meta)
        ctx = OpContext(ctx.op, node_v, ctx.ins, ctx.outs)
    return MoveParams(ctx, (y.dtype,), fill)


@prepares("Concat")
def _concat(g: Graph, node: Node) -> ConcatParams:
    y = tensor_of(g, node, 0, True)
    so, zo = act_grid(node, y)
    axis = norm_axis(int(node.attrs.get("axis", 1)), len(y.shape))
    tables = []
    for i in range(len(node.inputs)):
        x = tensor_of(g, node, i)
        sx, zx = act_grid(node, x)
        if sx == so and zx == zo:
            tables.append(None)  # tflite-micro's case: a plain copy
        else:  # a different grid is requantized like QUANTIZE int8 -> int8 (tflite-micro refuses it)
            m, e = quantize_multiplier(sx / so)
            tables.append(frozen_array(ew.lookup_table(lambda q, zx=zx, m=m, e=e: ew.requantize(
                q, zp_in=zx, zp_out=zo, multiplier=m, shift=e, dtype=y.dtype), x.dtype).astype(y.dtype)))
    return ConcatParams(axis, tuple(tables))


@prepares("ConvTranspose")
def _transpose_conv(g: Graph, node: Node) -> TransposeConvParams:
    ctx = node_context(g, node)
    _, _, _, _, k, s, _, pads, _, out, _ = ctx.op.geometry(ctx)
    if ctx.attr("auto_pad") in ("SAME_UPPER", "VALID"):  # TFLite's padding: from the output size alone
        pads = int16.tflite_transpose_pads(out, k, s, ctx.attr("auto_pad"))
    return int16.prepare_transpose_conv(g, node, pads, out, s)
