"""What the canvas can edit on a layer, beyond the op's own attributes: the layer parameters that decide its
weight shapes (out_channels, kernel, bias, ...), the form schema of every op, and the palette of layers users can
add. Fitting a node's constant inputs to its current input shape is app/canvas/weights.py.

    layer_params(graph, node)   # {"out_channels": 6, "kernel": [5, 5], "bias": True, ...} or None
    op_schema("Conv")           # form fields for the side panel
    palette()                   # layer types users can add

Weights are the node's constant inputs.
"""
from __future__ import annotations

from app.canvas.weights import channels, constant, input_slot
from engine.ir import Graph, Node
from engine.ops import OPS, get_op

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

def layer_params(graph: Graph, node: Node) -> dict | None:
    """The layer parameters of a node whose weights are constants; None when the op has none."""
    w = constant(graph, input_slot(node, 1))
    if w is None:
        return None
    x = graph.tensors.get(input_slot(node, 0))
    layout = node.attrs.get("layout", "NCHW")
    bias = bool(input_slot(node, 2))
    if node.op == "Conv" and len(w.shape) in (3, 4):
        m = w.shape[0]
        kernel = list(w.shape[2:]) if layout == "NCHW" else list(w.shape[1:-1])
        g = node.attrs.get("group", 1)
        c = channels(x.shape, layout) if x is not None and len(x.shape) == len(w.shape) else None
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
# Left out of "More ops": quantization is a pass's job (its tensors need scales), layer ops are above; SVDF's
# weights and variable state come with an imported TFLite file (the canvas makes no state tensors).
_NOT_OFFERED = {"QuantizeLinear", "DequantizeLinear", "Conv", "ConvTranspose", "Gemm", "BatchNormalization",
                "LayerNormalization", "PRelu", "SVDF"}


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
