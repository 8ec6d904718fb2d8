"""Fitting a layer's weights to its current input shape: the canvas re-shapes (or re-creates) a node's constant
inputs when its layer parameters (app/canvas/layers.py) or an upstream layer change.

    fit_constants(graph, node, layer, shared)   # reshape/re-create the node's weights for its current input shape

A weight keeps its data while its required shape is unchanged; when the shape changes (a new out_channels, a
new kernel, an upstream layer that now gives more channels) it is re-created with a seeded He initialization
(biases and shifts zero, scales and variances one), always float32. A quantized layer whose weights change
therefore becomes float until the graph is quantized again.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor
from engine.ops.conv import split_layout


def constant(graph: Graph, name: str) -> Tensor | None:
    """The constant tensor `name` (None for an activation, a graph input or an empty slot)."""
    t = graph.tensors.get(name) if name else None
    return t if t is not None and t.data is not None else None


def input_slot(node: Node, i: int) -> str:
    """The tensor in `node`'s input slot i ("" when the slot is empty or beyond the inputs)."""
    return node.inputs[i] if i < len(node.inputs) else ""


def channels(shape: tuple[int, ...], layout: str) -> int:
    return split_layout(shape, layout)[1]


def _seeded(name: str, shape: tuple[int, ...]) -> np.random.Generator:
    # The same tensor name and shape always give the same weights, so validating twice agrees.
    return np.random.default_rng(zlib.crc32(f"{name}:{list(shape)}".encode()))


def _he(name: str, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    std = math.sqrt(2.0 / max(1, fan_in))
    return _seeded(name, shape).normal(0.0, std, size=shape).astype(np.float32)


class _Fitter:
    """Sets a node's constant input slots to given shapes, keeping data whose shape already matches."""

    def __init__(self, graph: Graph, node: Node, shared: set[str]):
        self.g, self.node, self.shared = graph, node, shared

    def set(self, slot: int, role: str, shape: tuple[int, ...], make) -> None:
        while len(self.node.inputs) <= slot:
            self.node.inputs.append("")
        name = self.node.inputs[slot]
        old = self.g.tensors.get(name) if name else None
        if old is not None and old.data is not None and old.shape == tuple(shape):
            return
        if not name or name in self.shared or (old is not None and old.data is None):
            name = fresh_name(self.g, f"{self.node.name}_{role}")
        self.node.inputs[slot] = name
        meta = dict(old.meta) if old is not None and old.data is not None else {}
        self.g.tensors[name] = Tensor(name, tuple(shape), "float32", None, make(name, tuple(shape)), meta)

    def drop(self, slot: int) -> None:
        if slot < len(self.node.inputs):
            self.node.inputs[slot] = ""
        while self.node.inputs and self.node.inputs[-1] == "":
            self.node.inputs.pop()


def fresh_name(graph: Graph, base: str) -> str:
    taken = graph.tensors.keys()
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _zeros(name, shape):
    return np.zeros(shape, np.float32)


def _ones(name, shape):
    return np.ones(shape, np.float32)


def _positive(node: Node, field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GraphError(f"{field} must be a positive integer, got {value!r}", node.name, node.op)
    return int(value)


def _kernel(node: Node, value, rank: int) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * rank
    if (not isinstance(value, (list, tuple)) or len(value) != rank
            or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in value)):
        raise GraphError(f"kernel {value!r} must be {rank} positive integer size{'s' if rank > 1 else ''}",
                         node.name, node.op)
    return tuple(int(k) for k in value)


def fit_constants(graph: Graph, node: Node, layer: dict | None, shared: set[str]) -> None:
    """Give `node`'s constant inputs the shapes its current input shape and `layer` parameters need.

    `graph` holds the shapes of everything upstream already; `shared` names constants other nodes read too
    (those are never overwritten in place). Raises GraphError for invalid layer parameters; shape problems
    that the op itself reports (a rank it cannot take, a group that does not divide) are left to its infer.
    """
    fit = _Fitter(graph, node, shared)
    if node.op in _FOLLOW:
        _follow_operand(fit, graph, node)
        return
    x = graph.tensors.get(input_slot(node, 0))
    if x is None or x.data is not None:
        return
    rule = _RULES.get(node.op)
    if layer is not None and rule is not None:
        rule(fit, node, x.shape, layer)
    elif node.op == "BatchNormalization":
        # Only statistics the layer owns as constants (or a new layer's empty slots) are re-created.
        owned = all(not input_slot(node, i) or constant(graph, input_slot(node, i)) for i in range(1, 5))
        if len(x.shape) >= 2 and owned:
            c = channels(x.shape, node.attrs.get("layout", "NCHW"))
            for slot, (role, make) in enumerate((("scale", _ones), ("B", _zeros), ("mean", _zeros),
                                                 ("var", _ones)), start=1):
                fit.set(slot, role, (c,), make)
    elif node.op == "LayerNormalization":
        axis = node.attrs.get("axis", -1)
        if -len(x.shape) <= axis < len(x.shape):
            norm = tuple(x.shape[axis:])
            for slot, role, make in ((1, "Scale", _ones), (2, "B", _zeros)):
                if slot >= len(node.inputs):
                    continue
                t = constant(graph, node.inputs[slot])
                if t is None and node.inputs[slot]:
                    continue  # an activation, not ours to shape
                try:
                    ok = t is not None and np.broadcast_shapes(t.shape, norm) == norm
                except ValueError:
                    ok = False
                if not ok:
                    fit.set(slot, role, norm, make)


def _conv(fit: _Fitter, node: Node, x: tuple[int, ...], layer: dict) -> None:
    layout = node.attrs.get("layout", "NCHW")
    if len(x) not in (3, 4):
        return
    r = len(x) - 2
    c = channels(x, layout)
    k = _kernel(node, layer.get("kernel"), r)
    if layer.get("depthwise"):
        g = c
        m = c * _positive(node, "multiplier", layer.get("multiplier", 1))
        if node.attrs.get("group", 1) != g:
            node.attrs["group"] = g
    else:
        g = node.attrs.get("group", 1)
        m = _positive(node, "out_channels", layer.get("out_channels"))
    if not isinstance(g, int) or g < 1 or c % g:
        return  # the op reports the bad group
    _kernel_and_bias(fit, node, layer, k, (m, c // g, *k) if layout == "NCHW" else (m, *k, c // g), c // g, m)


def _conv_transpose(fit: _Fitter, node: Node, x: tuple[int, ...], layer: dict) -> None:
    layout = node.attrs.get("layout", "NCHW")
    if len(x) != 4:
        return
    c = channels(x, layout)
    k = _kernel(node, layer.get("kernel"), 2)
    m = _positive(node, "out_channels", layer.get("out_channels"))
    g = node.attrs.get("group", 1)
    if not isinstance(g, int) or g < 1 or c % g or m % g:
        return
    _kernel_and_bias(fit, node, layer, k, (c, m // g, *k) if layout == "NCHW" else (m, *k, c), c // g, m)


def _kernel_and_bias(fit: _Fitter, node: Node, layer: dict, k: tuple[int, ...], w: tuple[int, ...],
                     c_per_group: int, m: int) -> None:
    """A convolution's weights `w` (He-initialized over its c_per_group * kernel inputs) and its bias (m,)."""
    if "kernel_shape" in node.attrs:
        node.attrs["kernel_shape"] = list(k)
    fan_in = c_per_group * int(np.prod(k))
    fit.set(1, "W", w, lambda name, shape: _he(name, shape, fan_in))
    _bias(fit, layer, (m,))


def _bias(fit: _Fitter, layer: dict, shape: tuple[int, ...]) -> None:
    """The bias in slot 2 with `shape`, or none when the layer says bias: false."""
    if layer.get("bias", True):
        fit.set(2, "B", shape, _zeros)
    else:
        fit.drop(2)


def _gemm(fit: _Fitter, node: Node, a: tuple[int, ...], layer: dict) -> None:
    n = _positive(node, "out_features", layer.get("out_features"))
    if len(a) != 2:
        return  # Gemm reports "insert a Flatten"
    k = a[0] if node.attrs.get("transA", 0) else a[1]
    fit.set(1, "W", (n, k) if node.attrs.get("transB", 0) else (k, n), lambda name, shape: _he(name, shape, k))
    old = constant(fit.g, input_slot(node, 2))
    _bias(fit, layer, (1, n) if old is not None and len(old.shape) == 2 else (n,))


def _matmul(fit: _Fitter, node: Node, a: tuple[int, ...], layer: dict) -> None:
    n = _positive(node, "out_features", layer.get("out_features"))
    if a:
        fit.set(1, "W", (a[-1], n), lambda name, shape: _he(name, shape, a[-1]))


_RULES = {"Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul}
# Element-wise ops whose constant operand (a bias add, a scale, a PReLU slope) follows the data operand.
_FOLLOW = {"Add": _zeros, "Sub": _zeros, "Mul": _ones, "Div": _ones,
           "PRelu": lambda name, shape: np.full(shape, 0.25, np.float32)}


def _follow_operand(fit: _Fitter, graph: Graph, node: Node) -> None:
    """A constant operand that no longer broadcasts to the data operand's shape takes the data's size in
    each of its non-1 dims (aligned from the right): a bias (C,) -> (C',), a per-channel (C, 1, 1) -> (C', 1, 1)."""
    if len(node.inputs) != 2:
        return
    ts = [graph.tensors.get(t) for t in node.inputs]
    if any(t is None for t in ts) or (ts[0].data is None) == (ts[1].data is None):
        return
    ci = 0 if ts[0].data is not None else 1
    const, data = ts[ci], ts[1 - ci]
    try:
        if np.broadcast_shapes(const.shape, data.shape) == data.shape:
            return
    except ValueError:
        pass
    if len(const.shape) > len(data.shape):
        return
    aligned = data.shape[len(data.shape) - len(const.shape):]
    shape = tuple(1 if d == 1 else a for d, a in zip(const.shape, aligned))
    fit.set(ci, "B" if node.op in ("Add", "Sub") else "scale", shape, _FOLLOW[node.op])
