"""C for pooling, reductions (MEAN / SUM / MAX / MIN) and softmax, from the layer's frozen record."""
from __future__ import annotations

import numpy as np

from engine.codegen.emitter import (ACC_LIMIT, EmitContext, check_shift, copy_whole, emit_error, emits, int8_grid,
                                    shape_text, struct_call)
from engine.int8.params import CopyParams, MeanParams
from engine.int8.pool import window_counts
from engine.int8.prepare import prepare_node
from engine.int8.readers import global_axes, reduce_axes, tensor_of
from engine.ir import Node, Tensor


@emits("AveragePool", "MaxPool")
def _pool(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    int8_grid(node, x)
    int8_grid(node, y)
    r = prepare_node(g, node)  # PoolParams: input and output on one grid
    if node.attrs.get("layout", "NCHW") != "NHWC":
        raise emit_error(node, "the C generator takes NHWC pooling (the TFLite form)")
    k, s, d, pads, out, include = r.kernel, r.strides, r.dilations, r.pads, r.out_hw, r.include_pad
    xs = x.shape if r.rank == 2 else (x.shape[0], 1, *x.shape[1:])
    n, h, wi, c = xs
    if not r.is_max:
        counts = window_counts((h, wi), k, s, pads, out, include)
        if (counts == 0).any():
            raise emit_error(node, "a pooling window holds no input cell")
    top, left, bottom, right = pads
    p = {"batches": n, "in_h": h, "in_w": wi, "channels": c, "out_h": out[0], "out_w": out[1], "k_h": k[0],
         "k_w": k[1], "stride_h": s[0], "stride_w": s[1], "dil_h": d[0], "dil_w": d[1], "pad_top": top,
         "pad_left": left, "count_h_lo": -top if include else 0, "count_h_hi": h + bottom if include else h,
         "count_w_lo": -left if include else 0, "count_w_hi": wi + right if include else wi,
         "act_min": r.act_min, "act_max": r.act_max}
    struct_call(ctx, "ts_max_pool_s8" if r.is_max else "ts_avg_pool_s8", "ts_pool_params", p,
                f"{node.name}: {node.op} {k[0]}x{k[1]}, stride {s[0]}x{s[1]}, out {shape_text(y)}",
                ctx.src(node, x.name), ctx.dst(y.name))


def _outer_reduce_inner(node: Node, shape, axes) -> tuple[int, int, int]:
    """(outer, reduce, inner) for axes that form one block (size-1 dims may sit on either side)."""
    kinds = [("r" if i in axes else "k") for i, d in enumerate(shape) if d != 1]
    sizes = [d for d in shape if d != 1]
    text = "".join(kinds)
    if "r" in text and "k" in text[text.index("r"):text.rindex("r")]:
        raise emit_error(node, f"reducing axes {sorted(axes)} of {list(shape)}: the C kernel needs them adjacent")
    first = text.find("r")
    if first < 0:
        return int(np.prod(sizes, dtype=np.int64)), 1, 1
    last = text.rindex("r")
    outer = int(np.prod(sizes[:first], dtype=np.int64))
    red = int(np.prod(sizes[first:last + 1], dtype=np.int64))
    return outer, red, int(np.prod(sizes[last + 1:], dtype=np.int64))


def _mean(ctx: EmitContext, node: Node, x: Tensor, y: Tensor, r: MeanParams) -> None:
    int8_grid(node, x)
    int8_grid(node, y)
    outer, red, inner = _outer_reduce_inner(node, x.shape, r.axes)
    if r.count * 256 > ACC_LIMIT:
        raise emit_error(node, f"a sum over {r.count:,} values may overflow int32")
    check_shift(node, [r.shift])
    p = {"outer": outer, "reduce": red, "inner": inner, "input_offset": -r.x_zp, "multiplier": r.multiplier,
         "shift": r.shift, "output_offset": r.y_zp}
    struct_call(ctx, "ts_mean_s8", "ts_mean_params", p,
                f"{node.name}: {'sum' if r.compute_sum else 'mean'} over axes {sorted(r.axes)} of {shape_text(x)}",
                ctx.src(node, x.name), ctx.dst(y.name))


@emits("ReduceMean", "ReduceSum", "GlobalAveragePool")
def _reduce_mean(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)   # MeanParams, or CopyParams for empty axes with noop_with_empty_axes
    if isinstance(r, CopyParams):
        copy_whole(ctx, node, x.name, y)
        return
    _mean(ctx, node, x, y, r)


@emits("ReduceMax", "ReduceMin", "GlobalMaxPool")
def _reduce_minmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)   # MoveParams: one grid, so integers compare
    int8_grid(node, x)
    int8_grid(node, y)
    rank = len(x.shape)
    if node.op == "GlobalMaxPool":
        axes = global_axes(node, rank)
    else:
        axes = reduce_axes(r.ctx, rank) or tuple(range(rank))
    outer, red, inner = _outer_reduce_inner(node, x.shape, axes)
    p = {"outer": outer, "reduce": red, "inner": inner, "is_min": int(node.op == "ReduceMin")}
    struct_call(ctx, "ts_reduce_minmax_s8", "ts_reduce_params", p,
                f"{node.name}: {node.op} over axes {list(axes)} of {shape_text(x)}", ctx.src(node, x.name),
                ctx.dst(y.name))


@emits("Softmax")
def _softmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    int8_grid(node, x)
    int8_grid(node, y)
    r = prepare_node(g, node)  # SoftmaxParams: output grid 1/256, -128; beta * scale large enough
    check_shift(node, [r.left_shift])
    axis = r.axis
    if any(d != 1 for d in x.shape[axis + 1:]):
        raise emit_error(node, f"softmax over axis {axis} of {list(x.shape)}: the C kernel needs the last non-unit "
                               "axis")
    depth = x.shape[axis]
    p = {"rows": x.size // max(depth, 1), "depth": depth, "input_multiplier": r.multiplier,
         "input_left_shift": r.left_shift, "diff_min": r.diff_min}
    struct_call(ctx, "ts_softmax_s8", "ts_softmax_params", p,
                f"{node.name}: Softmax over {depth} values, {p['rows']} rows", ctx.src(node, x.name),
                ctx.dst(y.name))
