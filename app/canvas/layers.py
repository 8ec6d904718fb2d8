"""What the canvas can edit on a layer, beyond the op's own attributes: the layer parameters that decide its
weight shapes (out_channels, kernel, bias, ...), the rules that fit a node's constant inputs to its current
input shape, the form schema of every op, and the palette of layers users can add.

    layer_params(graph, node)        # {"out_channels": 6, "kernel": [5, 5], "bias": True, ...} or None
    fit_constants(graph, node, layer) # reshape/re-create the node's weights for its current input shape
    op_schema("Conv")                 # form fields for the side panel
    palette()                         # layer types users can add

Weights are the node's constant inputs. A weight keeps its data while its required shape is unchanged; when
the shape changes (a new out_channels, a new kernel, an upstream layer that now gives more channels) it is
re-created with a seeded He initialization (biases and shifts zero, scales and variances one), always float32.
A quantized layer whose weights change therefore becomes float until the graph is quantized again.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor
from engine.ops import OPS, get_op
from engine.ops.conv import split_layout

# ---- form schema -------------------------------------------------------------------------------------------

# Layer parameters per op (not IR attributes: they decide the shapes of the weight constants).
_LAYER_FIELDS = {
    "Conv": [
        {"name": "out_channels", "kind": "int", "min": 1, "hide_if": "depthwise",
         "help": "output channels (the weight's first dimension)"},
        {"name": "kernel", "kind": "ints", "min": 1, "help": "kernel size per spatial dim, e.g. 3,3"},
        {"name": "bias", "kind": "bool"},
        {"name": "depthwise", "kind": "bool", "help": "one filter group per input channel (group = C)"},
        {"name": "multiplier", "kind": "int", "min": 1, "show_if": "depthwise",
         "help": "output channels per input channel"},
    ],
    "ConvTranspose": [
        {"name": "out_channels", "kind": "int", "min": 1},
        {"name": "kernel", "kind": "ints", "min": 1},
        {"name": "bias", "kind": "bool"},
    ],
    "Gemm": [{"name": "out_features", "kind": "int", "min": 1}, {"name": "bias", "kind": "bool"}],
    "MatMul": [{"name": "out_features", "kind": "int", "min": 1}],
}
# Attributes the form does not show because a layer parameter stands for them.
_HIDDEN_ATTRS = {"Conv": {"kernel_shape"}, "ConvTranspose": {"kernel_shape"}}


def _role(op_input: str) -> str:
    return op_input.rstrip("?*")


def op_schema(op_name: str) -> dict:
    """Form fields of an op: its IR attributes (typed, with defaults and choices) and its layer parameters."""
    op = get_op(op_name)
    if op is None:
        return {"attrs": [], "layer": [], "inputs": [], "doc": "", "known": False}
    hidden = _HIDDEN_ATTRS.get(op_name, set())
    attrs = [{"name": k, "kind": a.kind, "default": a.default,
              "choices": list(a.choices) if a.choices is not None else None,
              "required": a.required, "hidden": k in hidden}
             for k, a in op.attrs.items()]
    return {"attrs": attrs, "layer": _LAYER_FIELDS.get(op_name, []), "inputs": [_role(i) for i in op.inputs],
            "doc": op.doc, "known": True}


# ---- layer parameters read off a graph ------------------------------------------------------------------------

def _const(graph: Graph, name: str) -> Tensor | None:
    t = graph.tensors.get(name) if name else None
    return t if t is not None and t.data is not None else None


def _slot(node: Node, i: int) -> str:
    return node.inputs[i] if i < len(node.inputs) else ""


def _channels(shape: tuple[int, ...], layout: str) -> int:
    return split_layout(shape, layout)[1]


def layer_params(graph: Graph, node: Node) -> dict | None:
    """The layer parameters of a node whose weights are constants; None when the op has none."""
    w = _const(graph, _slot(node, 1))
    if w is None:
        return None
    x = graph.tensors.get(_slot(node, 0))
    layout = node.attrs.get("layout", "NCHW")
    bias = bool(_slot(node, 2))
    if node.op == "Conv" and len(w.shape) in (3, 4):
        m = w.shape[0]
        kernel = list(w.shape[2:]) if layout == "NCHW" else list(w.shape[1:-1])
        g = node.attrs.get("group", 1)
        c = _channels(x.shape, layout) if x is not None and len(x.shape) == len(w.shape) else None
        depthwise = c is not None and g > 1 and g == c and m % c == 0
        return {"out_channels": m, "kernel": kernel, "bias": bias, "depthwise": depthwise,
                "multiplier": m // c if depthwise else 1}
    if node.op == "ConvTranspose" and len(w.shape) == 4:
        g = node.attrs.get("group", 1)
        m = w.shape[1] * g if layout == "NCHW" else w.shape[0]
        kernel = list(w.shape[2:]) if layout == "NCHW" else list(w.shape[1:3])
        return {"out_channels": m, "kernel": kernel, "bias": bias}
    if node.op == "Gemm" and len(w.shape) == 2:
        return {"out_features": w.shape[0] if node.attrs.get("transB", 0) else w.shape[1], "bias": bias}
    if node.op == "MatMul" and len(w.shape) == 2:
        return {"out_features": w.shape[1]}
    return None


# ---- fitting constants to the current input shape -------------------------------------------------------

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
    x = graph.tensors.get(_slot(node, 0))
    if x is None or x.data is not None:
        return
    rule = _RULES.get(node.op)
    if layer is not None and rule is not None:
        rule(fit, node, x.shape, layer)
    elif node.op == "BatchNormalization":
        # Only statistics the layer owns as constants (or a new layer's empty slots) are re-created.
        if len(x.shape) >= 2 and all(not _slot(node, i) or _const(graph, _slot(node, i)) for i in range(1, 5)):
            c = _channels(x.shape, node.attrs.get("layout", "NCHW"))
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
                t = _const(graph, node.inputs[slot])
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
    c = _channels(x, layout)
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
    if "kernel_shape" in node.attrs:
        node.attrs["kernel_shape"] = list(k)
    w = (m, c // g, *k) if layout == "NCHW" else (m, *k, c // g)
    fan_in = c // g * int(np.prod(k))
    fit.set(1, "W", w, lambda name, shape: _he(name, shape, fan_in))
    if layer.get("bias", True):
        fit.set(2, "B", (m,), _zeros)
    else:
        fit.drop(2)


def _conv_transpose(fit: _Fitter, node: Node, x: tuple[int, ...], layer: dict) -> None:
    layout = node.attrs.get("layout", "NCHW")
    if len(x) != 4:
        return
    c = _channels(x, layout)
    k = _kernel(node, layer.get("kernel"), 2)
    m = _positive(node, "out_channels", layer.get("out_channels"))
    g = node.attrs.get("group", 1)
    if not isinstance(g, int) or g < 1 or c % g or m % g:
        return
    if "kernel_shape" in node.attrs:
        node.attrs["kernel_shape"] = list(k)
    w = (c, m // g, *k) if layout == "NCHW" else (m, *k, c)
    fan_in = c // g * int(np.prod(k))
    fit.set(1, "W", w, lambda name, shape: _he(name, shape, fan_in))
    if layer.get("bias", True):
        fit.set(2, "B", (m,), _zeros)
    else:
        fit.drop(2)


def _gemm(fit: _Fitter, node: Node, a: tuple[int, ...], layer: dict) -> None:
    n = _positive(node, "out_features", layer.get("out_features"))
    if len(a) != 2:
        return  # Gemm reports "insert a Flatten"
    k = a[0] if node.attrs.get("transA", 0) else a[1]
    fit.set(1, "W", (n, k) if node.attrs.get("transB", 0) else (k, n), lambda name, shape: _he(name, shape, k))
    if layer.get("bias", True):
        old = _const(fit.g, _slot(node, 2))
        fit.set(2, "B", (1, n) if old is not None and len(old.shape) == 2 else (n,), _zeros)
    else:
        fit.drop(2)


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


# ---- the palette --------------------------------------------------------------------------------------------

def _data(n: int = 1, roles=("X",)) -> list[dict]:
    return [{"role": roles[i] if i < len(roles) else f"X{i}", "kind": "data"} for i in range(n)]


def _params(*roles: str) -> list[dict]:
    return [{"role": r, "kind": "param"} for r in roles]


def _entry(type_: str, label: str, category: str, op: str, attrs: dict | None = None, layer: dict | None = None,
           slots: list[dict] | None = None, required: tuple[str, ...] = (), outputs: int = 1) -> dict:
    return {"type": type_, "label": label, "category": category, "op": op, "attrs": attrs or {},
            "layer": layer, "slots": slots or _data(), "outputs": outputs, "required": list(required),
            "schema": op_schema(op), "doc": OPS[op].doc}


_CONV_PARAMS = ("out_channels", "kernel", "strides", "auto_pad")
_LAYERS = [
    _entry("Conv2D", "Conv 2D", "Convolution", "Conv", {"strides": [1, 1], "auto_pad": "SAME_UPPER"},
           {"out_channels": 16, "kernel": [3, 3], "bias": True, "depthwise": False, "multiplier": 1},
           _data() + _params("W", "B"), _CONV_PARAMS + ("group",)),
    _entry("DepthwiseConv2D", "Depthwise conv 2D", "Convolution", "Conv", {"strides": [1, 1], "auto_pad": "SAME_UPPER"},
           {"out_channels": 1, "kernel": [3, 3], "bias": True, "depthwise": True, "multiplier": 1},
           _data() + _params("W", "B"), ("kernel", "strides", "auto_pad", "multiplier")),
    _entry("Conv1D", "Conv 1D", "Convolution", "Conv", {"strides": [1], "auto_pad": "SAME_UPPER"},
           {"out_channels": 16, "kernel": [3], "bias": True, "depthwise": False, "multiplier": 1},
           _data() + _params("W", "B"), _CONV_PARAMS),
    _entry("ConvTranspose2D", "Transposed conv 2D", "Convolution", "ConvTranspose", {"strides": [2, 2]},
           {"out_channels": 16, "kernel": [2, 2], "bias": True}, _data() + _params("W", "B"),
           ("out_channels", "kernel", "strides")),
    _entry("Dense", "Dense (fully connected)", "Dense", "Gemm", {"transB": 1}, {"out_features": 10, "bias": True},
           _data(roles=("A",)) + _params("B", "C"), ("out_features",)),
    _entry("BatchNorm", "BatchNorm", "Normalization", "BatchNormalization", {},
           None, _data() + _params("scale", "B", "input_mean", "input_var")),
    _entry("LayerNorm", "LayerNorm", "Normalization", "LayerNormalization", {"axis": -1}, None,
           _data() + _params("Scale", "B")),
    _entry("ReLU", "ReLU", "Activation", "Relu"),
    _entry("ReLU6", "ReLU6", "Activation", "Clip", {"min": 0.0, "max": 6.0}),
    _entry("LeakyReLU", "Leaky ReLU", "Activation", "LeakyRelu", {"alpha": 0.01}),
    _entry("Sigmoid", "Sigmoid", "Activation", "Sigmoid"),
    _entry("Tanh", "Tanh", "Activation", "Tanh"),
    _entry("HardSwish", "Hard swish", "Activation", "HardSwish"),
    _entry("GELU", "GELU", "Activation", "Gelu"),
    _entry("Softmax", "Softmax", "Activation", "Softmax", {"axis": -1}),
    _entry("MaxPool2D", "Max pool 2D", "Pooling", "MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]},
           required=("kernel_shape", "strides")),
    _entry("AvgPool2D", "Average pool 2D", "Pooling", "AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]},
           required=("kernel_shape", "strides")),
    _entry("GlobalAvgPool", "Global average pool", "Pooling", "GlobalAveragePool"),
    _entry("GlobalMaxPool", "Global max pool", "Pooling", "GlobalMaxPool"),
    _entry("Flatten", "Flatten", "Shape", "Flatten", {"axis": 1}),
    _entry("Reshape", "Reshape", "Shape", "Reshape", {"shape": [1, -1]}, required=("shape",)),
    _entry("Transpose", "Transpose", "Shape", "Transpose", {"perm": [0, 2, 3, 1]}, required=("perm",)),
    _entry("Concat", "Concat (2 inputs)", "Merge", "Concat", {"axis": 1}, slots=_data(2, ("X0", "X1")),
           required=("axis",)),
    _entry("Add", "Add (2 inputs)", "Merge", "Add", slots=_data(2, ("A", "B"))),
    _entry("Mul", "Multiply (2 inputs)", "Merge", "Mul", slots=_data(2, ("A", "B"))),
    _entry("Dropout", "Dropout", "Regularization", "Dropout", {"ratio": 0.5}, slots=_data(roles=("data",))),
    _entry("Pad", "Pad", "Shape", "Pad", {"pads": [0, 0, 1, 1, 0, 0, 1, 1]}, required=("pads",)),
    _entry("Resize", "Resize (upsample)", "Shape", "Resize", {"scales": [2.0, 2.0], "mode": "nearest"},
           required=("scales",)),
]
# Left out of "More ops": quantization is a pass's job (its tensors need scales), layer ops are above.
_NOT_OFFERED = {"QuantizeLinear", "DequantizeLinear", "Conv", "ConvTranspose", "Gemm", "BatchNormalization",
                "LayerNormalization", "PRelu"}


def palette() -> list[dict]:
    """Layer types users can add: the layers above (with default attributes, the layer parameters that create
    weights, and which fields the user should set), then every other op of engine.ops with its data inputs."""
    out = [dict(e) for e in _LAYERS]
    offered = {e["op"] for e in _LAYERS}
    out.append(_entry("Input", "Input", "Graph", "Identity", slots=[]))
    out[-1].update(kind="input", shape=[1, 1, 28, 28], dtype="float32", schema={"attrs": [], "layer": []},
                   doc="A graph input: set its shape (batch first).")
    out.append(_entry("Output", "Output", "Graph", "Identity"))
    out[-1].update(kind="output", schema={"attrs": [], "layer": []}, doc="A graph output.")
    for name in sorted(OPS):
        if name in offered or name in _NOT_OFFERED:
            continue
        op = OPS[name]
        roles = [_role(r) for r in op.inputs if not r.endswith("?")]
        n = max(1, len(roles)) if not any(r.endswith("*") for r in op.inputs) else 2
        attrs = {k: a.default for k, a in op.attrs.items() if a.required and a.default is not None}
        out.append(_entry(name, name, "More ops", name, attrs, slots=_data(n, tuple(roles) or ("X",)),
                          required=tuple(k for k, a in op.attrs.items() if a.required),
                          outputs=2 if name == "Split" else 1))
    for e in out:
        e.setdefault("kind", "op")
    return out
