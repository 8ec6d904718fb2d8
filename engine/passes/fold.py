"""fold_batchnorm: inference-form BatchNormalization merged into the layer before it.

BN computes y = k * (x - mean) + beta with k = gamma / sqrt(var + eps), one k per channel. After a conv or
a fully connected layer, x = W * a + b, so y = (k W) * a + (k (b - mean) + beta): scale the weights along
the output-channel axis and rewrite the bias. A BN with no such producer (after an Add, at the graph
input, or after a layer whose output has other readers) becomes a 1x1 depthwise conv (rank 3/4) or a
diagonal fully connected layer (rank 2), the form an int8 runtime can execute.

    g2, report = fold_batchnorm(g)       # same function (float32 rounding aside), no BatchNormalization
"""
from __future__ import annotations

import numpy as np

from engine.ir import Graph, Node
from engine.passes.base import PassReport, add_const, const_data, graph_pass
from engine.passes.pattern import apply_rules, rule


def _bn_affine(g: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(k, shift) with BN(x) = k * x + shift per channel, computed in float64; None if not constant."""
    params = [const_data(g, n) for n in bn.inputs[1:5]]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    k = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return k, beta - mean * k


def _out_axis(node: Node, w: np.ndarray) -> int | None:
    """Axis of W that indexes output channels, or None when BN cannot fold into this layer."""
    if node.op == "Conv":
        return 0  # (M, C/g, k...) and (M, k..., C/g)
    if node.op == "ConvTranspose":
        if node.attrs.get("group", 1) != 1:
            return None
        return 1 if node.attrs.get("layout", "NCHW") == "NCHW" else 0  # (C, M, kH, kW) | (M, kH, kW, C)
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return None


@rule("fold_bn_into_layer", ("Conv", "ConvTranspose", "Gemm"), ("BatchNormalization",))
def fold_bn_into_layer(g: Graph, layer: Node, bn: Node) -> list[Node] | None:
    """Conv/ConvTranspose/Gemm -> BatchNormalization  =>  the layer with scaled weights and a new bias."""
    if bn.inputs[0] != layer.outputs[0] or layer.attrs.get("activation", "none") != "none":
        return None
    affine = _bn_affine(g, bn)
    w = const_data(g, layer.inputs[1])
    if affine is None or w is None or layer.attrs.get("transA", 0):
        return None
    k, shift = affine
    axis = _out_axis(layer, w)
    if axis is None or w.shape[axis] != k.size:
        return None
    shape = [1] * w.ndim
    shape[axis] = -1
    bias_name = layer.inputs[2] if len(layer.inputs) > 2 else ""
    b = const_data(g, bias_name)
    if bias_name and b is None:
        return None  # a computed bias cannot be folded
    if layer.op == "Gemm":
        alpha, beta = float(layer.attrs.get("alpha", 1.0)), float(layer.attrs.get("beta", 1.0))
        new_w = w.astype(np.float64) * alpha * k.reshape(shape)
        old_b = np.zeros(k.size) if b is None else beta * b.astype(np.float64)
        new_b = old_b * k + shift  # broadcasts (n,), (1, n) or (m, n) bias against the per-unit k
        attrs = {**layer.attrs, "alpha": 1.0, "beta": 1.0}
    else:
        new_w = w.astype(np.float64) * k.reshape(shape)
        new_b = (np.zeros(k.size) if b is None else b.astype(np.float64)) * k + shift
        attrs = dict(layer.attrs)
    wt = g.tensors[layer.inputs[1]]
    w_name = add_const(g, f"{layer.name}_W_folded", new_w.astype(np.float32), wt)
    b_name = add_const(g, f"{layer.name}_B_folded", new_b.astype(np.float32))
    return [Node(layer.op, layer.name, [layer.inputs[0], w_name, b_name], list(bn.outputs), attrs,
                 {**layer.meta, "folded": [*layer.meta.get("folded", []), bn.name]})]


@rule("bn_to_layer", ("BatchNormalization",))
def bn_to_layer(g: Graph, bn: Node) -> list[Node] | None:
    """A BatchNormalization left alone => 1x1 depthwise Conv (rank 3/4) or diagonal Gemm (rank 2)."""
    affine = _bn_affine(g, bn)
    x = g.tensors[bn.inputs[0]]
    if affine is None or len(x.shape) not in (2, 3, 4):
        return None
    k, shift = affine
    b_name = add_const(g, f"{bn.name}_B", shift.astype(np.float32))
    if len(x.shape) == 2:
        w_name = add_const(g, f"{bn.name}_W", np.diag(k).astype(np.float32))
        return [Node("Gemm", bn.name, [bn.inputs[0], w_name, b_name], list(bn.outputs), {"transB": 1}, dict(bn.meta))]
    r = len(x.shape) - 2
    layout = bn.attrs.get("layout", "NCHW")
    c = k.size
    w_shape = (c, 1, *([1] * r)) if layout == "NCHW" else (c, *([1] * r), 1)
    w_name = add_const(g, f"{bn.name}_W", k.reshape(w_shape).astype(np.float32))
    attrs = {"group": c, "kernel_shape": [1] * r, "layout": layout}
    return [Node("Conv", bn.name, [bn.inputs[0], w_name, b_name], list(bn.outputs), attrs, dict(bn.meta))]


FOLD_RULES = [fold_bn_into_layer, bn_to_layer]


@graph_pass
def fold_batchnorm(graph: Graph) -> tuple[Graph, PassReport]:
    """Fold every constant BatchNormalization into the conv/FC before it, or turn it into a 1x1 layer."""
    report = PassReport("fold_batchnorm")
    apply_rules(graph, FOLD_RULES, report)
    return graph, report
