"""IR node -> int8 kernel with its parameters precomputed (multipliers, shifts, clamps, weight layouts).

    kernel = lower_node(graph, node)     # once per layer
    ys = kernel(xs)                      # per inference: integer arrays in, integer arrays out

Parameters follow the Prepare() functions of tflite-micro's kernels (conv_common.cc, add_common.cc,
softmax_common.cc, ...), down to which quantities are float32 and which double, so that a TFLite int8
model gives the interpreter's bytes. Ops TFLite does not have in int8 but TinyStudio's
quantized graphs need (NCHW layout, 1-D convs, count_include_pad, concat of different grids) extend
the same arithmetic. Anything else raises a GraphError naming the node and op.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.errors import GraphError
from engine.int8 import conv as conv_k
from engine.int8 import elementwise as ew
from engine.int8 import pool as pool_k
from engine.int8.quant_math import activation_range, quantize_multiplier, quantize_multipliers
from engine.int8.softmax import softmax_int8, softmax_params
from engine.ir import INT_DTYPES, Graph, Node, Tensor
from engine.ops.base import OpContext, norm_axis
from engine.ops.conv import resolve_pads, spatial_params, split_layout
from engine.validate import node_context

Kernel = Callable[[list], list]
LOWER: dict[str, Callable[[Graph, Node], Kernel]] = {}
INT8 = ("int8",)  # activation dtypes of the compute kernels (TFLite's int8 scheme)


def lowers(*ops: str):
    def deco(fn):
        for op in ops:
            LOWER[op] = fn
        return fn
    return deco


def is_quantized(t: Tensor | None) -> bool:
    return t is not None and t.quant is not None and t.dtype in INT_DTYPES


# ---- small readers that name the node in every error ----------------------------------------------

def _err(node: Node, msg: str) -> GraphError:
    return GraphError(msg, node.name, node.op)


def _tensor(g: Graph, node: Node, i: int, outputs: bool = False) -> Tensor:
    names = node.outputs if outputs else node.inputs
    if i >= len(names) or not names[i]:
        raise _err(node, f"{'output' if outputs else 'input'} {i} is missing")
    return g.tensors[names[i]]


def _grid(node: Node, t: Tensor, dtypes=INT8) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized activation of an allowed dtype."""
    if t.quant is None or t.dtype not in INT_DTYPES:
        raise _err(node, f"tensor '{t.name}' ({t.dtype}) is not quantized; the int8 kernel needs scale and zero point")
    if t.dtype not in dtypes:
        raise _err(node, f"tensor '{t.name}' is {t.dtype}; this int8 kernel takes {'/'.join(dtypes)}")
    if t.quant.scale.size != 1:
        raise _err(node, f"tensor '{t.name}' is quantized per channel; activations need one scale")
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _const(node: Node, t: Tensor, what: str) -> np.ndarray:
    if t.data is None:
        raise _err(node, f"the {what} '{t.name}' must be a constant for int8 execution")
    return t.data


def _bias(g: Graph, node: Node, i: int, m: int) -> np.ndarray | None:
    if i >= len(node.inputs) or not node.inputs[i]:
        return None
    t = g.tensors[node.inputs[i]]
    data = _const(node, t, "bias")
    if t.dtype != "int32" or data.size != m:
        raise _err(node, f"bias '{t.name}' must be {m} int32 values (TFLite int8 scheme), "
                         f"got {t.dtype} {list(t.shape)}")
    return data.reshape(-1).astype(np.int64)


def _weight_grid(node: Node, t: Tensor, channels: int, axis: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-output-channel weight scales and zero points, and whether the file had one scale per channel."""
    q = t.quant
    if q is None or t.dtype not in ("int8", "int4"):
        raise _err(node, f"weights '{t.name}' must be int8 (or int4) with quantization, got {t.dtype}")
    if q.scale.size == 1:
        return np.full(channels, q.scale[0], np.float32), np.full(channels, q.zero_point[0], np.int64), False
    if q.axis != axis or q.scale.size != channels:
        raise _err(node, f"weights '{t.name}' have {q.scale.size} scales on axis {q.axis}; expected {channels} on "
                         f"the output-channel axis {axis}")
    return q.scale.astype(np.float32), q.zero_point.astype(np.int64), True


def _clamp(node: Node, y: Tensor) -> tuple[int, int]:
    s, z = _grid(node, y)
    return activation_range(node.attrs.get("activation", "none"), s, z, y.dtype, node.name, node.op)


# ---- layouts: every spatial kernel runs NHWC 2-D; NCHW and 1-D are views around it ------------------

def _spatial(g: Graph, node: Node, kernel=None):
    """(ctx, layout, rank, kernel, strides, dilations, pads[t, l, b, r], out_hw) lifted to 2-D."""
    ctx = node_context(g, node)
    layout = ctx.attr("layout")
    x, y = ctx.ins[0], ctx.outs[0]
    _, _, spatial = split_layout(x.shape, layout)
    _, _, out = split_layout(y.shape, layout)
    r = len(spatial)
    if r not in (1, 2):
        raise _err(node, f"int8 kernels handle 1-D and 2-D spatial ops, got {r}-D")
    k, s, d = spatial_params(ctx, r, kernel)
    pads = resolve_pads(ctx, spatial, k, s, d)
    if r == 1:
        return ctx, layout, r, (1, k[0]), (1, s[0]), (1, d[0]), (0, pads[0], 0, pads[1]), (1, out[0])
    return ctx, layout, r, tuple(k), tuple(s), tuple(d), (pads[0], pads[1], pads[2], pads[3]), tuple(out)


def _to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NCHW":
        x = np.moveaxis(x, 1, -1)
    return x[:, None] if x.ndim == 3 else x


def _from_nhwc(y: np.ndarray, layout: str, rank: int) -> np.ndarray:
    if rank == 1:
        y = y[:, 0]
    if layout == "NCHW":
        y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y)


# ---- compute ops ------------------------------------------------------------------------------------

@lowers("Conv")
def _conv(g: Graph, node: Node) -> Kernel:
    x, w, y = _tensor(g, node, 0), _tensor(g, node, 1), _tensor(g, node, 0, True)
    sx, zx = _grid(node, x)
    so, zo = _grid(node, y)
    wdata = _const(node, w, "filter")
    layout = node.attrs.get("layout", "NCHW")
    m = wdata.shape[0]
    if layout == "NCHW":  # (M, C/g, [kH,] kW) -> (M, kH, kW, C/g)
        w4 = wdata[:, :, None] if wdata.ndim == 3 else wdata
        w4 = w4.transpose(0, 2, 3, 1)
    else:  # (M, [kH,] kW, C/g)
        w4 = wdata[:, None] if wdata.ndim == 3 else wdata
    ctx, layout, rank, k, s, d, pads, out = _spatial(g, node, tuple(wdata.shape[2:] if layout == "NCHW"
                                                                   else wdata.shape[1:-1]))
    group = int(node.attrs.get("group", 1))
    wscale, wzp, _ = _weight_grid(node, w, m, 0)
    # PopulateConvolutionQuantizationParams: one double-precision multiplier per output channel.
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in wscale])
    bias = _bias(g, node, 2, m)
    lo, hi = _clamp(node, y)
    wc = conv_k.conv_weights(w4, wzp, group)

    def run(xs):
        acc = conv_k.conv2d_acc(_to_nhwc(xs[0], layout), wc, x_zp=zx, kernel=k, strides=s, dilations=d,
                                pads=pads, out_hw=out, group=group)
        return [_from_nhwc(conv_k.requantize_acc(acc, bias, mult, shift, zo, lo, hi, y.dtype), layout, rank)]
    return run


@lowers("Gemm")
def _gemm(g: Graph, node: Node) -> Kernel:
    a, w, y = _tensor(g, node, 0), _tensor(g, node, 1), _tensor(g, node, 0, True)
    if node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0:
        raise _err(node, "int8 Gemm needs transA=0, alpha=1, beta=1 (a fully connected layer)")
    sx, zx = _grid(node, a)
    so, zo = _grid(node, y)
    wdata = _const(node, w, "weights")
    trans_b = int(node.attrs.get("transB", 0))
    units = wdata.shape[0] if trans_b else wdata.shape[1]
    wscale, wzp, per_channel = _weight_grid(node, w, units, 0 if trans_b else 1)
    # One multiplier per output channel, or one for the layer (kept scalar: FullyConnected vs ...PerChannel).
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in (wscale if per_channel else wscale[:1])])
    if not per_channel:
        mult, shift = mult[0], shift[0]
    bias = _bias(g, node, 2, units)
    lo, hi = _clamp(node, y)
    wc = conv_k.fc_weights(wdata if trans_b else wdata.T, wzp)

    def run(xs):
        acc = conv_k.fully_connected_acc(xs[0], wc, x_zp=zx)
        return [conv_k.requantize_acc(acc, bias, mult, shift, zo, lo, hi, y.dtype)]
    return run


@lowers("Add", "Sub")
def _add(g: Graph, node: Node) -> Kernel:
    a, b, y = _tensor(g, node, 0), _tensor(g, node, 1), _tensor(g, node, 0, True)
    (s1, z1), (s2, z2), (so, zo) = _grid(node, a), _grid(node, b), _grid(node, y)
    sub = node.op == "Sub"
    params = ew.add_params(s1, s2, so)
    lo, hi = _clamp(node, y)
    return lambda xs: [ew.add(xs[0], xs[1], zp1=z1, zp2=z2, zpo=zo, params=params, act_min=lo, act_max=hi,
                              subtract=sub, dtype=y.dtype)]


@lowers("Mul")
def _mul(g: Graph, node: Node) -> Kernel:
    a, b, y = _tensor(g, node, 0), _tensor(g, node, 1), _tensor(g, node, 0, True)
    (s1, z1), (s2, z2), (so, zo) = _grid(node, a), _grid(node, b), _grid(node, y)
    m, e = quantize_multiplier(s1 * s2 / so)
    lo, hi = _clamp(node, y)
    return lambda xs: [ew.mul(xs[0], xs[1], zp1=z1, zp2=z2, zpo=zo, multiplier=m, shift=e, act_min=lo,
                              act_max=hi, dtype=y.dtype)]


def _same_grid(node: Node, x: Tensor, y: Tensor, why: str) -> None:
    (sx, zx), (sy, zy) = _grid(node, x, INT_DTYPES), _grid(node, y, INT_DTYPES)
    if abs(sx - sy) > 1e-6 or zx != zy or x.dtype != y.dtype:
        raise _err(node, f"{why}: input '{x.name}' ({x.dtype}, scale {sx:g}, zero point {zx}) and output "
                         f"'{y.name}' ({y.dtype}, scale {sy:g}, zero point {zy}) must share one grid")


@lowers("AveragePool", "MaxPool")
def _pool(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    _grid(node, x)
    _same_grid(node, x, y, "int8 pooling does not rescale")  # pooling_common.cc requires it too
    ctx, layout, rank, k, s, d, pads, out = _spatial(g, node)
    lo, hi = _clamp(node, y)
    if node.op == "MaxPool":
        def run(xs):
            v = pool_k.max_pool(_to_nhwc(xs[0], layout), kernel=k, strides=s, dilations=d, pads=pads, out_hw=out,
                                act_min=lo, act_max=hi)
            return [_from_nhwc(v, layout, rank)]
        return run
    include = bool(ctx.attr("count_include_pad"))

    def run_avg(xs):
        v = pool_k.average_pool(_to_nhwc(xs[0], layout), kernel=k, strides=s, pads=pads, out_hw=out, act_min=lo,
                                act_max=hi, include_pad=include)
        return [_from_nhwc(v, layout, rank)]
    return run_avg


def _mean(node: Node, x: Tensor, y: Tensor, axes: tuple[int, ...], keepdims: bool, compute_sum: bool) -> Kernel:
    (sx, zx), (so, zo) = _grid(node, x), _grid(node, y)
    m, e = quantize_multiplier(sx / so)  # reduce_common.cc: double(input scale) / double(output scale)
    return lambda xs: [pool_k.mean_or_sum(xs[0], axes, keepdims, x_zp=zx, y_zp=zo, multiplier=m, shift=e,
                                          dtype=y.dtype, compute_sum=compute_sum)]


@lowers("ReduceMean", "ReduceSum")
def _reduce(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    ctx = node_context(g, node)
    axes = ctx.attr("axes")
    if not axes:
        if ctx.attr("noop_with_empty_axes"):
            _same_grid(node, x, y, "an empty reduction copies")
            return lambda xs: [xs[0].copy()]
        axes = range(len(x.shape))
    axes = tuple(sorted({norm_axis(a, len(x.shape), ctx) for a in axes}))
    return _mean(node, x, y, axes, bool(ctx.attr("keepdims")), node.op == "ReduceSum")


@lowers("GlobalAveragePool")
def _global_avg(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    layout = node.attrs.get("layout", "NCHW")
    r = len(x.shape)
    axes = tuple(range(2, r)) if layout == "NCHW" else tuple(range(1, r - 1))
    return _mean(node, x, y, axes, True, False)  # TFLite converts global pooling to MEAN


@lowers("Softmax")
def _softmax(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    sx, _ = _grid(node, x)
    so, zo = _grid(node, y)
    if so != 1.0 / 256 or zo != -128:
        raise _err(node, f"int8 softmax output '{y.name}' must have scale 1/256 and zero point -128 "
                         f"(tflite-micro's fixed grid), has scale {so:g}, zero point {zo}")
    try:
        params = softmax_params(float(node.attrs.get("beta", 1.0)), sx)
    except ValueError as e:
        raise _err(node, str(e)) from None
    axis = norm_axis(int(node.attrs.get("axis", -1)), len(x.shape))
    last = len(x.shape) - 1

    def run(xs):
        v = np.moveaxis(xs[0], axis, -1) if axis != last else xs[0]
        out = softmax_int8(v, params)
        return [np.ascontiguousarray(np.moveaxis(out, -1, axis) if axis != last else out)]
    return run


# ---- unary ops as lookup tables ---------------------------------------------------------------------

def _table_kernel(node: Node, x: Tensor, y: Tensor, fn) -> Kernel:
    if x.dtype not in ("int8", "uint8"):
        raise _err(node, f"input '{x.name}' is {x.dtype}; int8 unary kernels take 8-bit inputs")
    table = ew.lookup_table(fn, x.dtype).astype(y.dtype)
    return lambda xs: [ew.apply_table(xs[0], table)]


_BIG = 1e30  # Clip's default bounds are +-FLT_MAX: no clamp


@lowers("Relu", "Relu6", "Clip")
def _relu(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    (sx, zx), (so, zo) = _grid(node, x), _grid(node, y)
    lo, hi = {"Relu": (0.0, None), "Relu6": (0.0, 6.0)}.get(node.op, (None, None))
    if node.op == "Clip":
        cmin, cmax = float(node.attrs.get("min", -3.4e38)), float(node.attrs.get("max", 3.4e38))
        lo, hi = (cmin if cmin > -_BIG else None), (cmax if cmax < _BIG else None)
    # With equal grids this is tflite-micro's RELU6 (a clamp); RELU always rescales to the output grid.
    return _table_kernel(node, x, y, ew.relu_fn(sx, so, zx, zo, lo, hi, y.dtype))


@lowers("LeakyRelu")
def _leaky(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    (sx, zx), (so, zo) = _grid(node, x), _grid(node, y)
    return _table_kernel(node, x, y, ew.leaky_relu_fn(sx, so, float(node.attrs.get("alpha", 0.01)), zx, zo, y.dtype))


def _fixed_output(node: Node, y: Tensor, scale: float, zp: int) -> None:
    so, zo = _grid(node, y)
    if so != scale or zo != zp:
        raise _err(node, f"int8 {node.op} output '{y.name}' must have scale 1/{round(1 / scale)} and zero point {zp} "
                         f"(TFLite's fixed grid), has scale {so:g}, zero point {zo}")


@lowers("Sigmoid")
def _sigmoid(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    sx, zx = _grid(node, x)
    _fixed_output(node, y, 1.0 / 256, -128)
    return _table_kernel(node, x, y, ew.logistic_fn(sx, zx))


@lowers("Tanh")
def _tanh(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    sx, zx = _grid(node, x)
    _fixed_output(node, y, 1.0 / 128, 0)
    return _table_kernel(node, x, y, ew.tanh_fn(sx, zx))


@lowers("HardSwish")
def _hard_swish(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    (sx, zx), (so, zo) = _grid(node, x), _grid(node, y)
    params = ew.hard_swish_params(sx, so)
    if params["e_out"] > 0:
        raise _err(node, "input scale / output scale / 128 must be below 1 for the int8 hard swish")
    return _table_kernel(node, x, y, ew.hard_swish_fn(params, zx, zo, y.dtype))


# ---- conversions ------------------------------------------------------------------------------------

@lowers("QuantizeLinear")
def _quantize(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    so, zo = _grid(node, y, ("int8", "uint8", "int16"))
    if not is_quantized(x):
        return lambda xs: [ew.quantize_float(xs[0], so, zo, y.dtype)]
    sx, zx = _grid(node, x, ("int8", "uint8", "int16", "int32"))
    m, e = quantize_multiplier(sx / so)  # quantize_common.cc: requantization between integer grids
    if x.dtype in ("int8", "uint8"):
        return _table_kernel(node, x, y, lambda q: ew.requantize(q, zp_in=zx, zp_out=zo, multiplier=m, shift=e,
                                                                 dtype=y.dtype))
    return lambda xs: [ew.requantize(xs[0], zp_in=zx, zp_out=zo, multiplier=m, shift=e, dtype=y.dtype)]


@lowers("DequantizeLinear")
def _dequantize(g: Graph, node: Node) -> Kernel:
    x = _tensor(g, node, 0)
    if x.quant is None:
        raise _err(node, f"input '{x.name}' has no quantization parameters")
    q = x.quant
    if q.scale.size == 1:
        s, z = float(q.scale[0]), int(q.zero_point[0])
        return lambda xs: [ew.dequantize(xs[0], s, z)]
    return lambda xs: [q.dequantize(xs[0])]


# ---- data movement: integers move unchanged, so every quantized tensor must share one grid ---------

from engine.ops import ops_where  # noqa: E402  (kept beside _MOVES: the rest of this module is int8rec's)
_MOVES = ops_where(lambda op: op.moves_values)


@lowers(*_MOVES)
def _move(g: Graph, node: Node) -> Kernel:
    ctx = node_context(g, node)
    qs = [t for t in (*ctx.ins, *ctx.outs) if is_quantized(t)]
    for t in qs[1:]:
        _same_grid(node, qs[0], t, f"{node.op} moves integers without rescaling")
    if node.op == "Resize" and ctx.attr("mode") != "nearest":
        raise _err(node, "int8 Resize supports mode 'nearest' only")
    dtypes = [t.dtype for t in ctx.outs]
    return lambda xs: [np.asarray(v).astype(dt, copy=False) for v, dt in zip(ctx.op.run(ctx, xs), dtypes)]


@lowers("Pad")
def _pad(g: Graph, node: Node) -> Kernel:
    x, y = _tensor(g, node, 0), _tensor(g, node, 0, True)
    _same_grid(node, x, y, "int8 Pad does not rescale")
    ctx = node_context(g, node)
    if ctx.attr("mode") == "constant":
        so, zo = _grid(node, y, INT_DTYPES)
        # PAD fills with the zero point; PADV2's constant was dequantized by the importer: back to the grid.
        fill = ew.quantize_float(np.array([ctx.attr("value")]), so, zo, y.dtype)[0]
        node_v = Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "value": int(fill)}, node.meta)
        ctx = OpContext(ctx.op, node_v, ctx.ins, ctx.outs)
    return lambda xs: [ctx.op.run(ctx, xs)[0].astype(y.dtype, copy=False)]


@lowers("Concat")
def _concat(g: Graph, node: Node) -> Kernel:
    y = _tensor(g, node, 0, True)
    so, zo = _grid(node, y)
    axis = norm_axis(int(node.attrs.get("axis", 1)), len(y.shape))
    parts = []
    for i in range(len(node.inputs)):
        x = _tensor(g, node, i)
        sx, zx = _grid(node, x)
        if sx == so and zx == zo:
            parts.append(None)  # tflite-micro's case: a plain copy
        else:  # a different grid is requantized like QUANTIZE int8 -> int8 (tflite-micro refuses it)
            m, e = quantize_multiplier(sx / so)
            parts.append(ew.lookup_table(lambda q, zx=zx, m=m, e=e: ew.requantize(
                q, zp_in=zx, zp_out=zo, multiplier=m, shift=e, dtype=y.dtype), x.dtype).astype(y.dtype))

    def run(xs):
        return [np.concatenate([v if t is None else ew.apply_table(v, t) for v, t in zip(xs, parts)], axis=axis)]
    return run


def lower_node(g: Graph, node: Node) -> Kernel:
    fn = LOWER.get(node.op)
    if fn is None:
        raise _err(node, f"no int8 kernel for {node.op} (int8 ops: {', '.join(sorted(LOWER))})")
    return fn(g, node)
