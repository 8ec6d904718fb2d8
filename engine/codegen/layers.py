"""IR node -> C for one layer: the kernel call, its constant parameters and the const arrays it needs.

    code = emit_layer(ctx, node, i)  # LayerCode: kernel, comment, C body, const arrays, scratch, arena accesses

Every parameter comes from the layer's frozen record (engine/int8/prepare.py), the one the int8 numpy
reference runs with: per-channel multipliers and shifts, clamp bounds, ADD's rescaling, softmax's Q5.26
scaling, the DSP requantization mode, unary ops' 256-entry tables. Emitters by family: emit_conv (Conv,
Gemm), emit_elementwise (Add/Sub, Mul, Max/Min, tables), emit_pool (pooling, reductions, softmax),
emit_move (Concat and data movement). Anything else raises GraphError naming the node and op.
"""
from __future__ import annotations

from engine.codegen import (emit_conv, emit_elementwise, emit_move, emit_pool,  # noqa: F401  (register emitters)
                            emit_recurrent, emit_svdf)
from engine.codegen.emit_move import index_maps
from engine.codegen.emitter import EMIT, Access, EmitContext, LayerCode, emit_error, layer_macs
from engine.ir import Node
from engine.ops import get_op


def is_view(node: Node) -> bool:
    op = get_op(node.op)
    return op is not None and (op.is_view or op.is_noop)


def emit_layer(ctx: EmitContext, node: Node, index: int) -> LayerCode:
    code = ctx.begin(index)
    fn = EMIT.get(node.op)
    if fn is None:
        raise emit_error(node, f"no C kernel for {node.op} (generated ops: {', '.join(sorted(EMIT))})")
    fn(ctx, node)
    return code


__all__ = ["Access", "EMIT", "EmitContext", "LayerCode", "emit_layer", "index_maps", "is_view", "layer_macs"]
