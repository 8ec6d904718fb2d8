"""C for data movement: Concat, Transpose, Slice, Split, Gather, Resize and Pad.

What an op does to the data is derived from what its reference does to an index tensor: a strided copy
when that is affine, an index table otherwise. Grids, Pad's fill and Concat's requantization tables come
from the layer's frozen record (engine/int8/prepare.py).
"""
from __future__ import annotations

import numpy as np

from engine.codegen.cwrite import c_struct
from engine.codegen.emitter import (MAX_DIMS, EmitContext, contiguous, emit_error, emits, int8_grid, merge_dims,
                                    pad_dims, plus, shape_text)
from engine.int8.prepare import prepare_node
from engine.int8.readers import act_grid, tensor_of
from engine.ir import Graph, Node
from engine.ops.base import OpContext
from engine.validate import node_context


def _copy_call(ctx: EmitContext, node: Node, src: str, dst: str, shape, xs, ys, table: str = "NULL",
               esize: int = 1) -> bool:
    if esize > 1:  # int16 (16x8) elements copy as esize bytes each: one more, innermost dim
        shape, xs, ys = (*shape, esize), [v * esize for v in xs] + [1], [v * esize for v in ys] + [1]
    dims, (mx, my) = merge_dims(shape, xs, ys)
    if len(dims) > MAX_DIMS:
        return False
    p = {"ndim": len(dims), "shape": pad_dims(dims, 1), "x_stride": pad_dims(mx, 0), "y_stride": pad_dims(my, 0)}
    ctx.code.body.append(f"{{ static const ts_copy_params p = {c_struct(p)}; ts_copy_s8(&p, {src}, {dst}, {table}); }}")
    return True


@emits("Concat")
def _concat(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    y = tensor_of(g, node, 0, True)
    int8_grid(node, y)
    r = prepare_node(g, node)   # ConcatParams: per input a plain copy or a requantization table
    axis = r.axis
    ys = contiguous(y.shape)
    yp = ctx.dst(y.name)
    code = ctx.code
    code.kernel = "ts_copy_s8"
    code.comment = f"{node.name}: Concat of {len(node.inputs)} along axis {axis}, out {shape_text(y)}"
    start = 0
    for i, (name, values) in enumerate(zip(node.inputs, r.tables)):
        x = g.tensors[name]
        int8_grid(node, x)
        table = "NULL"
        if values is not None:  # another grid: requantized as the int8 reference does (QUANTIZE int8 -> int8)
            table = ctx.array(f"table{i}", "int8_t", values, f"requantization of input {i}")
        if not _copy_call(ctx, node, ctx.src(node, name), plus(yp, start * ys[axis]), x.shape,
                          contiguous(x.shape), ys, table):
            raise emit_error(node, f"concatenating {len(x.shape)}-D tensors needs more than {MAX_DIMS} dims")
        start += x.shape[axis]


def index_maps(g: Graph, node: Node) -> list[np.ndarray]:
    """For each output: the flat input index each element comes from, -1 where a fill value goes.

    The op's own reference runs on a tensor holding every element's index, so the map is exactly what
    the op does (float64 indices; the float references keep integers below 2**24 exact)."""
    octx = node_context(g, node)
    x = octx.ins[0]
    if x.size >= 1 << 24:
        raise emit_error(node, f"input of {x.size:,} elements is too large for an index map")
    iota = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    xs = [iota] + [None if t is None else t.data for t in octx.ins[1:]]
    if any(t is not None and t.data is None for t in octx.ins[1:]):
        raise emit_error(node, "indices computed at run time cannot be generated; they must be constants")
    if node.op == "Pad":  # the fill marks itself as -1
        nd = Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "value": -1.0}, node.meta)
        octx = OpContext(octx.op, nd, octx.ins, octx.outs)
    return [np.rint(np.asarray(v, dtype=np.float64)).astype(np.int64) for v in octx.op.run(octx, xs)]


def _affine(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(base, strides) when idx[i] = base + sum(i_d * stride_d), else None."""
    base = int(idx.flat[0]) if idx.size else 0
    strides = []
    for dim in range(idx.ndim):
        if idx.shape[dim] > 1:
            sel = [0] * idx.ndim
            sel[dim] = 1
            strides.append(int(idx[tuple(sel)]) - base)
        else:
            strides.append(0)
    grid = np.full(idx.shape, base, dtype=np.int64)
    for dim, st in enumerate(strides):
        shape = [1] * idx.ndim
        shape[dim] = idx.shape[dim]
        grid = grid + np.arange(idx.shape[dim], dtype=np.int64).reshape(shape) * st
    return (base, strides) if np.array_equal(grid, idx) else None


def _box(inside: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the True cells, or None when there are none."""
    if not inside.any():
        return None
    box = []
    for d in range(inside.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(inside.ndim) if a != d)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


@emits("Transpose", "Slice", "Split", "Gather", "Resize", "Pad")
def _move(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x = tensor_of(g, node, 0)
    if x.dtype == "int16":   # TFLite 16x8: int16 elements move as byte pairs (zero point 0: fill 0)
        act_grid(node, x, ("int16",))
    else:
        int8_grid(node, x)
    fill = prepare_node(g, node).fill   # MoveParams: one grid, Resize only nearest; Pad's quantized fill
    es = 2 if x.dtype == "int16" else 1
    if es > 1 and fill:
        raise emit_error(node, f"int16 {node.op} with a fill of {fill}: the generated C fills int16 with 0 only")
    code = ctx.code
    code.kernel = "ts_copy_s8"
    code.comment = (f"{node.name}: {node.op} {shape_text(x)} -> "
                    + ", ".join(shape_text(g.tensors[o]) for o in node.outputs))
    src = ctx.src(node, x.name)
    for k, (out_name, idx) in enumerate(zip(node.outputs, index_maps(g, node))):
        y = g.tensors[out_name]
        if es == 1:
            int8_grid(node, y)
        yp = ctx.dst(out_name)
        ys = contiguous(y.shape)
        inside = idx >= 0
        if inside.all():
            fit = _affine(idx) if idx.size else (0, [0] * idx.ndim)
            if fit is not None and _copy_call(ctx, node, plus(src, fit[0] * es), yp, idx.shape, fit[1], ys, esize=es):
                continue
        else:  # a fill around a box of copied elements (Pad), or something irregular
            box = _box(inside)
            if box is None:
                code.body.append(f"memset({yp}, {fill}, {y.nbytes});")
                continue
            fit = _affine(idx[box]) if inside[box].all() else None
            if fit is not None:
                code.body.append(f"memset({yp}, {fill}, {y.nbytes});")
                start = sum(b.start * st for b, st in zip(box, ys))
                if _copy_call(ctx, node, plus(src, fit[0] * es), plus(yp, start * es), idx[box].shape, fit[1], ys,
                              esize=es):
                    continue
                code.body.pop()
        if es > 1:
            raise emit_error(node, f"int16 {node.op} with an irregular pattern: the generated C moves int16 by "
                                   "strided copies only")
        code.kernel = "ts_gather_s8"
        table = ctx.array(f"index{k}", "int32_t", idx.reshape(-1),
                          f"{node.name}: source element of each output element (-1: fill)")
        code.body.append(f"ts_gather_s8({src}, {table}, {y.size}, {fill}, {yp});")
