"""Constant folding for the ONNX node pass: a node whose inputs are all constants becomes constants.

A node is folded when all its inputs are constants (evaluated by onnx.reference on that single node) or
when it is a Shape/Size of a tensor whose shape is known. Our own shapes are computed node by node during
the pass, so a single pass in topological order reaches the fixed point.
"""
from __future__ import annotations

import math

import numpy as np

from engine.importers.onnx_context import Importer, OnnxNode, to_array

# A folded constant larger than this is refused before it is computed (a crafted shape must not allocate
# gigabytes); the largest weight of the zoo's models holds 2.4 M elements.
MAX_FOLD_ELEMENTS = 1 << 26
# Ops never folded even when their inputs are constant: random ones change per run, and Q/DQ of
# constant weights must stay so the weights keep their integer type and quantization.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
            "QuantizeLinear", "DequantizeLinear", "If", "Loop", "Scan"}


def _constant_value(imp: Importer, n: OnnxNode, a: dict) -> np.ndarray:
    if "value" in a:
        return to_array(imp.path, a["value"])
    for k, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                  ("value_ints", np.int64)):
        if k in a:
            return np.array(a[k], dtype=dt)
    raise imp.fail(n, f"constant kind {', '.join(a) or '(none)'} is not supported")


def _elements(imp: Importer, n: OnnxNode) -> int:
    """Most elements one output of the folded node will hold, as far as it is known before evaluating it."""
    sizes = [math.prod(imp.onnx_shapes[o]) for o in n.outs if o in imp.onnx_shapes]
    feeds = [imp.consts[x] for x in n.ins if x]
    if n.op == "ConstantOfShape" and feeds:
        sizes.append(math.prod(int(v) for v in np.ravel(feeds[0])))
    elif n.op == "Range" and len(feeds) == 3:
        start, limit, delta = (float(np.ravel(v)[0]) if v.size else 0.0 for v in feeds)
        if delta and math.isfinite((limit - start) / delta):
            sizes.append(max(0, math.ceil((limit - start) / delta)))
        else:
            sizes.append(MAX_FOLD_ELEMENTS + 1)
    return max(sizes, default=0)


def _one_node_model(node, opset: int):
    """`node` alone in a model of the file's opset. Given a bare node, onnx.reference runs the newest
    version of the op whatever `opsets` says (Unsqueeze-13 reads `axes` as an input, so the attribute of an
    opset-11 Unsqueeze fails); inside a model it picks the version the model's opset import names."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([node], "fold", [helper.make_tensor_value_info(x, TensorProto.UNDEFINED, None)
                                               for x in dict.fromkeys(i for i in node.input if i)],
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                               for o in node.output if o])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _fold(imp: Importer, n: OnnxNode) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator  # imported lazily: only models with foldable nodes pay for it
    if _elements(imp, n) > MAX_FOLD_ELEMENTS:
        raise imp.fail(n, f"constant folding would create more than {MAX_FOLD_ELEMENTS:,} elements; refused")
    feeds = {x: imp.consts[x] for x in n.ins if x}
    try:
        ev = ReferenceEvaluator(_one_node_model(n.proto, imp.opset))
        return [np.asarray(v) for v in ev.run(None, feeds)]
    except Exception as e:
        raise imp.fail(n, f"constant folding failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None


def try_fold(imp: Importer, n: OnnxNode, a: dict) -> bool:
    """Fold `n` into constants when possible; True when done."""
    if n.op == "Constant":
        values = [_constant_value(imp, n, a)]
    elif n.op in ("Shape", "Size") and (n.ins[0] in imp.g.tensors or n.ins[0] in imp.consts):
        shape = imp.shape(n.ins[0])
        if n.op == "Size":
            values = [np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)]
        else:
            r = len(shape)
            start, end = a.get("start", 0), a.get("end", r)
            start, end = max(0, min(r, start + r if start < 0 else start)), max(0, min(r, end + r if end < 0 else end))
            values = [np.array(shape[start:end], dtype=np.int64)]
    elif n.op == "Identity" and n.ins[0] in imp.consts:
        values = [imp.consts[n.ins[0]]]
    elif n.op not in _NO_FOLD and all(x in imp.consts for x in n.ins if x) and any(x for x in n.ins):
        values = _fold(imp, n)
    else:
        return False
    for name, v in zip(n.outs, values):
        if name:
            imp.consts[name] = v
    return True
