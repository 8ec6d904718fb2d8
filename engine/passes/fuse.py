"""fuse_activations and fuse_gemm: rewrite rules that give ONNX-style graphs TFLite's shape.

fuse_activations: Conv/ConvTranspose/Gemm/Add/Sub/Mul -> Relu | Relu6 | Clip(0, 6) | Clip(-1, 1) becomes
the producer's `activation` attribute (TFLite's fused activations; int8 kernels apply them as a clamp, free).
Tanh/Sigmoid stay separate nodes: TFLite's int8 kernels have no fused form of them.

fuse_gemm: MatMul on 2-D operands with a constant B (+ Add of a constant bias) becomes a fully connected
Gemm, and every Gemm with constant weights is put in the canonical form int8 kernels and TFLite use:
transB=1 with W (out, in), alpha=1, beta=1.

    g2, report = fuse_activations(g)
    g3, report = fuse_gemm(g)
"""
from __future__ import annotations

import numpy as np

from engine.ir import Graph, Node, Tensor
from engine.ops import ops_where
from engine.passes.base import PassReport, add_const, const_data, fresh_name, graph_pass
from engine.passes.pattern import apply_rules, rule

FUSABLE = ops_where(lambda op: op.fuses_activation)
_FLT_MAX = 3.4e38


def activation_of(node: Node) -> str | None:
    """The fused-activation name a standalone activation node is equivalent to, if any."""
    if node.op == "Relu":
        return "relu"
    if node.op == "Relu6":
        return "relu6"
    if node.op == "Clip":
        lo, hi = float(node.attrs.get("min", -_FLT_MAX * 1.01)), float(node.attrs.get("max", _FLT_MAX * 1.01))
        if lo == 0.0 and hi == 6.0:
            return "relu6"
        if lo == 0.0 and hi >= _FLT_MAX:
            return "relu"
        if lo == -1.0 and hi == 1.0:
            return "relu_n1_to_1"
    return None


@rule("fuse_activation", FUSABLE, ("Relu", "Relu6", "Clip"))
def fuse_activation(g: Graph, layer: Node, act: Node) -> list[Node] | None:
    """layer -> Relu/Relu6/Clip  =>  layer with activation=relu|relu6|relu_n1_to_1."""
    name = activation_of(act)
    if name is None or layer.attrs.get("activation", "none") != "none":
        return None
    if not np.issubdtype(np.dtype(g.tensors[layer.outputs[0]].dtype), np.floating):
        return None  # integer Add/Mul (index arithmetic) has no fused activation
    return [Node(layer.op, layer.name, list(layer.inputs), list(act.outputs), {**layer.attrs, "activation": name},
                 {**layer.meta, "fused": [*layer.meta.get("fused", []), act.name]})]


def _matmul_gemm(g: Graph, mm: Node) -> tuple[str, str] | None:
    """(A, W transposed to (out, in)) when MatMul is a 2-D product with a constant B."""
    a, b = g.tensors[mm.inputs[0]], const_data(g, mm.inputs[1])
    if b is None or len(a.shape) != 2 or b.ndim != 2:
        return None
    return mm.inputs[0], add_const(g, f"{mm.name}_W", np.ascontiguousarray(b.T), g.tensors[mm.inputs[1]])


@rule("matmul_add_to_gemm", ("MatMul",), ("Add",))
def matmul_add_to_gemm(g: Graph, mm: Node, add: Node) -> list[Node] | None:
    """MatMul(A 2-D, const B) -> Add(const bias)  =>  Gemm(A, B^T, bias, transB=1)."""
    other = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
    bias = const_data(g, other)
    n = g.tensors[mm.outputs[0]].shape
    if bias is None or add.attrs.get("activation", "none") != "none":
        return None
    try:
        if np.broadcast_shapes(bias.shape, n) != tuple(n):
            return None
    except ValueError:
        return None
    ab = _matmul_gemm(g, mm)
    if ab is None:
        return None
    return [Node("Gemm", mm.name, [ab[0], ab[1], other], list(add.outputs), {"transB": 1},
                 {**mm.meta, "fused": [add.name]})]


@rule("matmul_to_gemm", ("MatMul",))
def matmul_to_gemm(g: Graph, mm: Node) -> list[Node] | None:
    """MatMul(A 2-D, const B 2-D)  =>  Gemm(A, B^T, transB=1)."""
    ab = _matmul_gemm(g, mm)
    return None if ab is None else [Node("Gemm", mm.name, list(ab), list(mm.outputs), {"transB": 1}, dict(mm.meta))]


@rule("canonical_gemm", ("Gemm",))
def canonical_gemm(g: Graph, gemm: Node) -> list[Node] | None:
    """Gemm with constant B (and C) not in the form transB=1, alpha=1, beta=1  =>  that form."""
    attrs = gemm.attrs
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    has_c = len(gemm.inputs) > 2 and bool(gemm.inputs[2])
    if attrs.get("transB", 0) == 1 and alpha == 1.0 and (beta == 1.0 or not has_c):
        return None
    w = const_data(g, gemm.inputs[1])
    c = const_data(g, gemm.inputs[2]) if has_c else None
    if w is None or (has_c and c is None and beta != 1.0) or attrs.get("transA", 0):
        return None
    w = (w if attrs.get("transB", 0) else w.T).astype(np.float64) * alpha
    ins = [gemm.inputs[0], add_const(g, f"{gemm.name}_W", w.astype(np.float32), g.tensors[gemm.inputs[1]])]
    if has_c:
        ins.append(gemm.inputs[2] if beta == 1.0 else add_const(g, f"{gemm.name}_C", (beta * c).astype(np.float32)))
    new_attrs = {k: v for k, v in attrs.items() if k not in ("alpha", "beta", "transB")}
    return [Node("Gemm", gemm.name, ins, list(gemm.outputs), {**new_attrs, "transB": 1}, dict(gemm.meta))]


@rule("split_activation", ("Conv", "ConvTranspose", "Gemm", "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool"))
def split_activation(g: Graph, layer: Node) -> list[Node] | None:
    """layer with activation=tanh|sigmoid  =>  layer, then a Tanh/Sigmoid node (int8 has no fused form)."""
    act = layer.attrs.get("activation", "none")
    if act not in ("tanh", "sigmoid"):
        return None
    mid = fresh_name(g, f"{layer.outputs[0]}_pre_{act}")
    g.tensors[mid] = Tensor(mid, g.tensors[layer.outputs[0]].shape, g.tensors[layer.outputs[0]].dtype)
    op = "Tanh" if act == "tanh" else "Sigmoid"
    attrs = {**layer.attrs, "activation": "none"}
    return [Node(layer.op, layer.name, list(layer.inputs), [mid], attrs, dict(layer.meta)),
            Node(op, fresh_name(g, f"{layer.name}_{act}"), [mid], list(layer.outputs))]


ACTIVATION_RULES = [fuse_activation]
GEMM_RULES = [matmul_add_to_gemm, matmul_to_gemm, canonical_gemm]


@graph_pass
def fuse_activations(graph: Graph) -> tuple[Graph, PassReport]:
    """Fold Relu/Relu6/Clip nodes into the conv, FC or add before them (single-consumer chains only)."""
    report = PassReport("fuse_activations")
    apply_rules(graph, ACTIVATION_RULES, report)
    return graph, report


@graph_pass
def unfuse_activations(graph: Graph) -> tuple[Graph, PassReport]:
    """Fused tanh/sigmoid (TFLite float graphs may carry them) become their own nodes."""
    report = PassReport("unfuse_activations")
    apply_rules(graph, [split_activation], report)
    return graph, report


@graph_pass
def fuse_gemm(graph: Graph) -> tuple[Graph, PassReport]:
    """MatMul(+Add) with constant 2-D weights -> Gemm; every constant-weight Gemm -> transB=1, alpha=beta=1."""
    report = PassReport("fuse_gemm")
    apply_rules(graph, GEMM_RULES, report)
    return graph, report
