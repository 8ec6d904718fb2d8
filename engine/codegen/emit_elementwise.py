"""C for element-wise layers: ADD/SUB, MUL, MAX/MIN with broadcasting, and unary ops as 256-entry tables.

Tables are the record's own (engine/int8/prepare.py evaluates the int8 reference kernel on every input
value), so the C table is the reference by construction.
"""
from __future__ import annotations

import numpy as np

from engine.codegen import emit_s16
from engine.codegen.emitter import (MAX_DIMS, EmitContext, check_shift, contiguous, copy_whole, emit_error, emits,
                                    int8_grid, merge_dims, pad_dims, shape_text, struct_call)
from engine.int8.dsp_requant import REQUANT_FIELD, add_linear_fields
from engine.int8.prepare import prepare_node
from engine.int8.readers import is_quantized, tensor_of
from engine.ir import Node, Tensor
from engine.ops import ops_where


def _bcast(node: Node, out_shape, a_shape, b_shape) -> dict:
    r = len(out_shape)

    def strides(shape):
        shape = (1,) * (r - len(shape)) + tuple(shape)
        st = contiguous(shape)
        return [0 if shape[i] == 1 else st[i] for i in range(r)]

    shape, (sa, sb) = merge_dims(out_shape, strides(a_shape), strides(b_shape))
    if len(shape) > MAX_DIMS:
        raise emit_error(node, f"broadcasting over {len(shape)} dims; the C kernel handles {MAX_DIMS}")
    return {"ndim": len(shape), "shape": pad_dims(shape, 1), "a_stride": pad_dims(sa, 0),
            "b_stride": pad_dims(sb, 0)}


def _binary_srcs(ctx: EmitContext, node: Node, y: Tensor) -> tuple[str, str]:
    """Input pointers; an input the size of the output may share its buffer (the planner's in-place)."""
    g = ctx.graph
    ptrs = []
    for name in node.inputs[:2]:
        same = g.tensors[name].size == y.size
        ptrs.append(ctx.src(node, name, strict=not same))
    return ptrs[0], ptrs[1]


@emits("Add", "Sub")
def _add(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, b, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    grid = emit_s16.int16_grid if y.dtype == "int16" else int8_grid   # TFLite 16x8: ts_add_s16
    grid(node, a), grid(node, b), grid(node, y)
    r = prepare_node(g, node)
    check_shift(node, [r.e1, r.e2, r.eo])
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "a_offset": -r.a_zp, "b_offset": -r.b_zp,
         "left_shift": r.left_shift, "a_multiplier": r.m1, "a_shift": r.e1, "b_multiplier": r.m2,
         "b_shift": r.e2, "out_multiplier": r.mo, "out_shift": r.eo, "output_offset": r.y_zp,
         "act_min": r.act_min, "act_max": r.act_max, "subtract": int(r.subtract), REQUANT_FIELD: int(r.mode)}
    ap, bp = _binary_srcs(ctx, node, y)
    if y.dtype == "int16":
        return emit_s16.add(ctx, node, p, ap, bp)
    p.update(add_linear_fields(r))
    struct_call(ctx, "ts_add_s8", "ts_add_params", p,
                f"{node.name}: {node.op} {shape_text(a)} {'+' if node.op == 'Add' else '-'} {shape_text(b)}, "
                f"out {shape_text(y)}", ap, bp, ctx.dst(y.name))


@emits("Mul")
def _mul(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, b, y = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True)
    int8_grid(node, a), int8_grid(node, b), int8_grid(node, y)
    r = prepare_node(g, node)
    check_shift(node, [r.shift])
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "a_offset": -r.a_zp, "b_offset": -r.b_zp,
         "multiplier": r.multiplier, "shift": r.shift, "output_offset": r.y_zp, "act_min": r.act_min,
         "act_max": r.act_max}
    ap, bp = _binary_srcs(ctx, node, y)
    struct_call(ctx, "ts_mul_s8", "ts_mul_params", p,
                f"{node.name}: Mul {shape_text(a)} * {shape_text(b)}, out {shape_text(y)}", ap, bp, ctx.dst(y.name))


@emits("Max", "Min")
def _minmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    prepare_node(g, node)  # its record (MoveParams) exists only when every tensor is on one grid
    y = tensor_of(g, node, 0, True)
    int8_grid(node, y)
    ins = [n for n in node.inputs if n]
    if len(ins) == 1:
        copy_whole(ctx, node, ins[0], y)
        return
    if len(ins) != 2:
        raise emit_error(node, f"{node.op} of {len(ins)} inputs: the C kernel takes 2 (chain them)")
    a, b = g.tensors[ins[0]], g.tensors[ins[1]]
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "is_min": int(node.op == "Min")}
    ap, bp = _binary_srcs(ctx, node, y)
    struct_call(ctx, "ts_minmax_s8", "ts_minmax_params", p,
                f"{node.name}: {node.op} {shape_text(a)}, {shape_text(b)}, out {shape_text(y)}", ap, bp,
                ctx.dst(y.name))


@emits(*sorted(ops_where(lambda op: op.int8_table)), "QuantizeLinear")  # QuantizeLinear int8 -> int8 too
def _table(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    if node.op == "LeakyRelu" and x.dtype == "int16":   # TFLite 16x8: no table, the kernel computes it
        return emit_s16.leaky_relu(ctx, node)
    if node.op == "QuantizeLinear" and x.dtype in ("int16", "int32") and is_quantized(x):
        return emit_s16.requantize(ctx, node)
    if not is_quantized(x):
        raise emit_error(node, f"input '{x.name}' is {x.dtype}: the generated C runs the int8 part of a model "
                               "(quantize before the first layer)")
    int8_grid(node, x)
    int8_grid(node, y)
    r = prepare_node(g, node)   # TableParams: the op on every int8 input value, indexed by value + 128
    table = np.asarray(r.table).astype(np.int64)
    name = ctx.array("table", "int8_t", table, f"{node.name}: {node.op} of every int8 input value")
    code = ctx.code
    code.kernel = "ts_lut_s8"
    code.comment = f"{node.name}: {node.op} (table), {shape_text(y)}"
    code.body.append(f"ts_lut_s8({ctx.src(node, x.name, strict=False)}, {ctx.dst(y.name)}, {y.size}, {name});")
