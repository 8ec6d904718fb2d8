"""Small readers of a node's tensors for the int8 prepare step; every error names the node and op.

    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, outputs=True)
    sx, zx = act_grid(node, x)                 # (scale, zero point) of a per-tensor int8 activation
    lo, hi = clamp_range(node, y)              # the fused activation's clamp on the output grid
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError
from engine.int8.quant_math import activation_range
from engine.ir import INT_DTYPES, Graph, Node, Tensor
from engine.ops.base import OpContext, norm_axis
from engine.ops.conv import resolve_pads, spatial_params, split_layout
from engine.validate import node_context

INT8 = ("int8",)  # activation dtypes of the compute kernels (TFLite's int8 scheme)


def node_error(node: Node, msg: str) -> GraphError:
    return GraphError(msg, node.name, node.op)


def is_quantized(t: Tensor | None) -> bool:
    return t is not None and t.quant is not None and t.dtype in INT_DTYPES


def tensor_of(g: Graph, node: Node, i: int, outputs: bool = False) -> Tensor:
    names = node.outputs if outputs else node.inputs
    if i >= len(names) or not names[i]:
        raise node_error(node, f"{'output' if outputs else 'input'} {i} is missing")
    return g.tensors[names[i]]


def act_grid(node: Node, t: Tensor, dtypes=INT8) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized activation of an allowed dtype."""
    if t.quant is None or t.dtype not in INT_DTYPES:
        raise node_error(node, f"tensor '{t.name}' ({t.dtype}) is not quantized; the int8 kernel needs scale and "
                               "zero point")
    if t.dtype not in dtypes:
        raise node_error(node, f"tensor '{t.name}' is {t.dtype}; this int8 kernel takes {'/'.join(dtypes)}")
    if t.quant.scale.size != 1:
        raise node_error(node, f"tensor '{t.name}' is quantized per channel; activations need one scale")
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def const_data(node: Node, t: Tensor, what: str) -> np.ndarray:
    if t.data is None:
        raise node_error(node, f"the {what} '{t.name}' must be a constant for int8 execution")
    return t.data


def bias_of(g: Graph, node: Node, i: int, m: int) -> np.ndarray | None:
    if i >= len(node.inputs) or not node.inputs[i]:
        return None
    t = g.tensors[node.inputs[i]]
    data = const_data(node, t, "bias")
    if t.dtype != "int32" or data.size != m:
        raise node_error(node, f"bias '{t.name}' must be {m} int32 values (TFLite int8 scheme), "
                               f"got {t.dtype} {list(t.shape)}")
    return data.reshape(-1).astype(np.int64)


def weight_grid(node: Node, t: Tensor, channels: int, axis: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-output-channel weight scales and zero points, and whether the file had one scale per channel."""
    q = t.quant
    if q is None or t.dtype not in ("int8", "int4"):
        raise node_error(node, f"weights '{t.name}' must be int8 (or int4) with quantization, got {t.dtype}")
    if q.scale.size == 1:
        return np.full(channels, q.scale[0], np.float32), np.full(channels, q.zero_point[0], np.int64), False
    if q.axis != axis or q.scale.size != channels:
        raise node_error(node, f"weights '{t.name}' have {q.scale.size} scales on axis {q.axis}; expected "
                               f"{channels} on the output-channel axis {axis}")
    return q.scale.astype(np.float32), q.zero_point.astype(np.int64), True


def clamp_range(node: Node, y: Tensor) -> tuple[int, int]:
    s, z = act_grid(node, y)
    return activation_range(node.attrs.get("activation", "none"), s, z, y.dtype, node.name, node.op)


def check_same_grid(node: Node, x: Tensor, y: Tensor, why: str) -> None:
    (sx, zx), (sy, zy) = act_grid(node, x, INT_DTYPES), act_grid(node, y, INT_DTYPES)
    if abs(sx - sy) > 1e-6 or zx != zy or x.dtype != y.dtype:
        raise node_error(node, f"{why}: input '{x.name}' ({x.dtype}, scale {sx:g}, zero point {zx}) and output "
                               f"'{y.name}' ({y.dtype}, scale {sy:g}, zero point {zy}) must share one grid")


def check_fixed_output(node: Node, y: Tensor, scale: float, zp: int) -> None:
    so, zo = act_grid(node, y)
    if so != scale or zo != zp:
        raise node_error(node, f"int8 {node.op} output '{y.name}' must have scale 1/{round(1 / scale)} and zero "
                               f"point {zp} (TFLite's fixed grid), has scale {so:g}, zero point {zo}")


def reduce_axes(ctx: OpContext, rank: int) -> tuple[int, ...] | None:
    """The sorted, normalized `axes` attribute; None when it is empty."""
    axes = ctx.attr("axes")
    if not axes:
        return None
    return tuple(sorted({norm_axis(a, rank, ctx) for a in axes}))


def global_axes(node: Node, rank: int) -> tuple[int, ...]:
    """The spatial axes a global pooling reduces (TFLite converts global pooling to MEAN / REDUCE_MAX)."""
    return tuple(range(2, rank)) if node.attrs.get("layout", "NCHW") == "NCHW" else tuple(range(1, rank - 1))


def spatial_2d(g: Graph, node: Node, kernel=None):
    """(ctx, layout, rank, kernel, strides, dilations, pads[t, l, b, r], out_hw) lifted to 2-D."""
    ctx = node_context(g, node)
    layout = ctx.attr("layout")
    x, y = ctx.ins[0], ctx.outs[0]
    _, _, spatial = split_layout(x.shape, layout)
    _, _, out = split_layout(y.shape, layout)
    r = len(spatial)
    if r not in (1, 2):
        raise node_error(node, f"int8 kernels handle 1-D and 2-D spatial ops, got {r}-D")
    k, s, d = spatial_params(ctx, r, kernel)
    pads = resolve_pads(ctx, spatial, k, s, d)
    if r == 1:
        return ctx, layout, r, (1, k[0]), (1, s[0]), (1, d[0]), (0, pads[0], 0, pads[1]), (1, out[0])
    return ctx, layout, r, tuple(k), tuple(s), tuple(d), (pads[0], pads[1], pads[2], pads[3]), tuple(out)
