"""ONNX exporter: Graph (IR) -> onnx.ModelProto that onnxruntime runs and onnx.checker accepts.

    model = to_onnx(graph, opset=17)      # onnx.ModelProto
    save_onnx(graph, "model.onnx")

- IR attributes that ONNX takes as operands (Reshape shape, Slice starts, Pad pads, Resize scales, Squeeze
  axes, Clip bounds, Reduce axes) become int64/float initializers.
- Fused `activation` attributes become separate Relu / Clip / Tanh / Sigmoid nodes; Relu6 becomes Clip(0, 6).
- NHWC spatial ops (TFLite graphs) run as their NCHW ONNX op: weights are transposed once into new
  initializers, and activations get a Transpose only where the layout changes (a chain of NHWC ops reuses
  the channels-first value; Transposes nobody reads are dropped).
- Quantized graphs export as QDQ: an integer tensor with `quant` is stored as an integer initializer or
  value plus a DequantizeLinear in front of every float consumer, and an op producing a quantized tensor is
  followed by a QuantizeLinear. onnxruntime fuses these back into integer kernels where it can.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.errors import GraphError
from engine.ir import FLOAT_DTYPES, Graph, Node, Tensor, unique_name
from engine.ops import get_op, ops_where
from engine.validate import infer_shapes, topological_order

MIN_OPSET = 13

ONNX_DTYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE,
              "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
              "int32": TensorProto.INT32, "int64": TensorProto.INT64, "bool": TensorProto.BOOL,
              "int4": TensorProto.INT4}
_TO_NCHW = {3: [0, 2, 1], 4: [0, 3, 1, 2], 5: [0, 4, 1, 2, 3]}
_TO_NHWC = {3: [0, 2, 1], 4: [0, 2, 3, 1], 5: [0, 2, 3, 4, 1]}
_LAYOUT_OPS = ops_where(lambda op: op.has_layout)
_SAME_NAME = ops_where(lambda op: op.onnx_same)


def _quantized(t: Tensor) -> bool:
    return t.quant is not None and t.dtype not in FLOAT_DTYPES


class _Exporter:
    def __init__(self, graph: Graph, opset: int):
        self.g, self.opset = graph, opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, TensorProto] = {}
        self.names: set[str] = set(graph.tensors) | {n.name for n in graph.nodes}
        self.dq: dict[str, str] = {}  # IR tensor -> its DequantizeLinear output
        self.nchw: dict[str, str] = {}  # value name -> its channels-first copy
        self.inserted_transposes: set[str] = set()

    # -- building blocks
    def fresh(self, base: str) -> str:
        return unique_name(base, self.names)

    def emit(self, op: str, inputs: list[str], outputs: list[str] | None = None, name: str | None = None,
             **attrs) -> str:
        outputs = outputs or [self.fresh(f"{name or op}_out")]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(name or op),
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outputs[0]

    def const(self, base: str, arr: np.ndarray, dtype: str | None = None) -> str:
        name = self.fresh(base)
        self._init(name, np.asarray(arr), dtype)
        return name

    def _init(self, name: str, arr: np.ndarray, dtype: str | None = None) -> None:
        if dtype == "int4":
            self._need(21, "int4 tensors")
            values = arr.astype(np.int8).ravel().tolist()
            self.inits[name] = helper.make_tensor(name, TensorProto.INT4, arr.shape, values)
        else:
            self.inits[name] = numpy_helper.from_array(np.asarray(arr, order="C"), name)  # keeps 0-d scalars

    def _need(self, opset: int, what: str, node: Node | None = None) -> None:
        if self.opset < opset:
            raise GraphError(f"{what} need ONNX opset >= {opset} (exporting opset {self.opset})",
                             node.name if node else None, node.op if node else None)

    def ints(self, base: str, values) -> str:
        return self.const(base, np.array([int(v) for v in values], dtype=np.int64))

    def scalar_like(self, base: str, value: float, ref: str) -> str:
        dtype = self.g.tensors[ref].dtype if ref in self.g.tensors and not _quantized(self.g.tensors[ref]) \
            else "float32"
        dt = np.dtype(dtype if dtype != "bool" else "float32")
        if dt.kind in "iu":  # Clip's default bounds are float extremes; keep them inside the integer range
            value = min(max(value, np.iinfo(dt).min), np.iinfo(dt).max)
        return self.const(base, np.array(value, dtype=dt))

    # -- reading IR tensors
    def raw(self, name: str) -> str:
        """The ONNX value holding the IR tensor as stored (integer for quantized tensors)."""
        t = self.g.tensors[name]
        if t.data is not None and name not in self.inits:
            self._init(name, t.data, t.dtype)
        return name

    def qparams(self, t: Tensor, perm: list[int] | None = None) -> tuple[str, str, int | None]:
        """Scale and zero-point initializers and the axis for Q/DQ of `t` (its axes reordered by `perm`).

        A single scale is written as a scalar even when the IR names an axis: onnxruntime fuses QDQ into
        QLinear* kernels only for scalar per-tensor parameters.
        """
        q = t.quant
        per_channel = q.scale.size > 1
        scale = q.scale if per_channel else q.scale.reshape(())
        zp = (q.zero_point if per_channel else q.zero_point.reshape(())).astype(
            np.int8 if t.dtype == "int4" else np.dtype(t.dtype))
        if t.dtype in ("int16", "int4"):
            self._need(21, f"{t.dtype} quantization")
        axis = None if not per_channel else (q.axis if perm is None else perm.index(q.axis))
        return (self.const(f"{t.name}_scale", scale.astype(np.float32)),
                self.const(f"{t.name}_zero_point", zp, t.dtype), axis)

    def value(self, name: str) -> str:
        """The ONNX value a float op reads for an IR tensor: dequantized when the tensor is quantized."""
        if not name:
            return ""
        t = self.g.tensors[name]
        if not _quantized(t):
            return self.raw(name)
        if name not in self.dq:
            s, z, axis = self.qparams(t)
            self.dq[name] = self.emit("DequantizeLinear", [self.raw(name), s, z], [self.fresh(f"{name}_dq")],
                                      name=f"{name}/DequantizeLinear", axis=axis)
        return self.dq[name]

    def value_nchw(self, name: str, layout: str) -> str:
        v = self.value(name)
        if layout == "NCHW":
            return v
        if v not in self.nchw:
            t = self.g.tensors[name]
            perm = _TO_NCHW[len(t.shape)]
            if t.data is not None and not _quantized(t):
                self.nchw[v] = self.const(f"{name}_nchw", np.transpose(t.data, perm), t.dtype)
            else:
                self.nchw[v] = self.emit("Transpose", [v], [self.fresh(f"{name}_nchw")], name=f"{name}/to_NCHW",
                                         perm=perm)
        return self.nchw[v]

    def weight(self, name: str, perm: list[int]) -> str:
        """A weight in another axis order: transposed once into a new initializer when constant."""
        t = self.g.tensors[name]
        if t.data is None:
            return self.emit("Transpose", [self.value(name)], name=f"{name}/Transpose", perm=perm)
        data = np.transpose(t.data, perm)
        if not _quantized(t):
            return self.const(f"{name}_nchw", data, t.dtype)
        raw = self.const(f"{name}_nchw", data, t.dtype)
        s, z, axis = self.qparams(t, perm)
        return self.emit("DequantizeLinear", [raw, s, z], [self.fresh(f"{name}_nchw_dq")],
                         name=f"{name}/DequantizeLinear", axis=axis)

    # -- writing IR tensors
    def finish(self, node: Node, computed: str, out: str, layout: str = "NCHW", activation: str = "none") -> None:
        """computed (float, node layout in NCHW) -> activation -> NHWC transpose -> QuantizeLinear -> out."""
        t = self.g.tensors[out]
        steps = []
        if activation != "none":
            steps.append("act")
        if layout == "NHWC":
            steps.append("transpose")
        if _quantized(t):
            steps.append("quantize")
        cur = computed
        for i, step in enumerate(steps):
            dst = out if i == len(steps) - 1 else self.fresh(f"{out}_{step}")
            if step == "act":
                cur = self._activation(node, cur, activation, dst, "float32" if _quantized(t) else t.dtype)
                if layout == "NHWC" and not _quantized(t):
                    self.nchw[out] = cur
            elif step == "transpose":
                cur = self.emit("Transpose", [cur], [dst], name=f"{node.name}/to_NHWC", perm=_TO_NHWC[len(t.shape)])
                self.inserted_transposes.add(cur)
            else:
                s, z, axis = self.qparams(t)
                cur = self.emit("QuantizeLinear", [cur, s, z], [dst], name=f"{node.name}/QuantizeLinear", axis=axis)

    def out_name(self, node: Node, i: int, layout: str = "NCHW", activation: str = "none") -> str:
        """Name the ONNX op should write output i to (the IR name when nothing follows it)."""
        out = node.outputs[i]
        t = self.g.tensors[out]
        if activation == "none" and layout == "NCHW" and not _quantized(t):
            return out
        name = self.fresh(f"{out}_{'nchw' if layout == 'NHWC' else 'pre'}")
        if layout == "NHWC" and activation == "none" and not _quantized(t):
            self.nchw[out] = name
        return name

    def _activation(self, node: Node, x: str, act: str, dst: str, dtype: str) -> str:
        nm = f"{node.name}/{act}"
        if act == "relu":
            return self.emit("Relu", [x], [dst], name=nm)
        if act in ("relu6", "relu_n1_to_1"):
            lo, hi = (0.0, 6.0) if act == "relu6" else (-1.0, 1.0)
            return self.emit("Clip", [x, self.const(f"{nm}_min", np.array(lo, dtype)),
                                      self.const(f"{nm}_max", np.array(hi, dtype))], [dst], name=nm)
        if act in ("tanh", "sigmoid"):
            return self.emit(act.capitalize(), [x], [dst], name=nm)
        raise GraphError(f"unknown fused activation '{act}'", node.name, node.op)


def _attr(node: Node, name: str):
    if name in node.attrs:
        return node.attrs[name]
    spec = get_op(node.op).attrs.get(name)
    return None if spec is None else spec.default


# ---- per-op conversion -----------------------------------------------------------------------------

def _convert(ex: _Exporter, node: Node) -> None:
    op = node.op
    layout = _attr(node, "layout") if op in _LAYOUT_OPS else "NCHW"
    act = _attr(node, "activation") if "activation" in get_op(op).attrs else "none"
    skip = {"layout", "activation", "storage_order"}
    if op == "QuantizeLinear":
        t = ex.g.tensors[node.outputs[0]]
        if t.dtype == "int4":
            ex._need(21, "int4 quantization", node)
        s, z, axis = ex.qparams(t)
        ex.emit("QuantizeLinear", [ex.value(node.inputs[0]), s, z], [t.name], name=node.name, axis=axis)
        return
    if op == "DequantizeLinear":
        t = ex.g.tensors[node.inputs[0]]
        s, z, axis = ex.qparams(t)
        ex.emit("DequantizeLinear", [ex.raw(t.name), s, z], node.outputs[:1], name=node.name, axis=axis)
        return
    if op in _LAYOUT_OPS:
        ins = [ex.value_nchw(node.inputs[0], layout)] + [ex.value(x) for x in node.inputs[1:]]
        if layout == "NHWC" and op == "Conv":
            ins[1] = ex.weight(node.inputs[1], _TO_NCHW[len(ex.g.tensors[node.inputs[1]].shape)])
        elif layout == "NHWC" and op == "ConvTranspose":
            ins[1] = ex.weight(node.inputs[1], [3, 0, 1, 2])
    else:
        ins = [ex.value(x) for x in node.inputs]
    outs = [ex.out_name(node, i, layout, act) for i in range(len(node.outputs))]
    attrs = {k: v for k, v in node.attrs.items() if k not in skip and v is not None}
    name = node.name
    if op in ("LSTM", "GRU", "RNN"):  # hidden_size: optional in the IR, onnxruntime needs it; cell_clip: TFLite's
        attrs.setdefault("hidden_size", int(ex.g.tensors[node.inputs[2]].shape[-1]))
        if attrs.pop("cell_clip", 0.0):
            raise GraphError("cell_clip (a TFLite LSTM option) has no ONNX counterpart", node.name, op)

    if op in ("Relu6", "Clip"):
        lo, hi = (0.0, 6.0) if op == "Relu6" else (_attr(node, "min"), _attr(node, "max"))
        ex.emit("Clip", [ins[0], ex.scalar_like(f"{name}_min", lo, node.inputs[0]),
                         ex.scalar_like(f"{name}_max", hi, node.inputs[0])], outs, name=name)
    elif op == "Dropout":
        ex.emit("Identity", ins[:1], outs, name=name)
    elif op == "HardSwish":
        if ex.opset >= 14:
            ex.emit("HardSwish", ins, outs, name=name)
        else:
            hs = ex.emit("HardSigmoid", ins, name=f"{name}/HardSigmoid", alpha=1 / 6, beta=0.5)
            ex.emit("Mul", [ins[0], hs], outs, name=name)
    elif op == "Gelu":
        _gelu(ex, node, ins[0], outs[0])
    elif op == "Cast":
        ex.emit("Cast", ins, outs, name=name, to=ONNX_DTYPE[_attr(node, "to")])
    elif op in ("Softmax", "LogSoftmax"):
        x = ins[0]
        if _attr(node, "beta") != 1.0:
            x = ex.emit("Mul", [x, ex.const(f"{name}_beta", np.array(_attr(node, "beta"), np.float32))],
                        name=f"{name}/beta")
        ex.emit(op, [x], outs, name=name, axis=_attr(node, "axis"))
    elif op == "LayerNormalization":
        ex._need(17, "LayerNormalization", node)
        ex.emit(op, ins, outs, name=name, **attrs)
    elif op == "Reshape":
        if _attr(node, "allowzero"):
            ex._need(14, "Reshape with allowzero", node)
        ex.emit("Reshape", [ins[0], ex.ints(f"{name}_shape", _attr(node, "shape"))], outs, name=name,
                allowzero=1 if _attr(node, "allowzero") else None)
    elif op in ("Squeeze", "Unsqueeze"):
        axes = _attr(node, "axes")
        extra = [] if axes is None else [ex.ints(f"{name}_axes", axes)]
        ex.emit(op, ins[:1] + extra, outs, name=name)
    elif op == "Split":
        axis = _attr(node, "axis")
        sizes = [ex.g.tensors[o].shape[axis] for o in node.outputs]
        ex.emit("Split", [ins[0], ex.ints(f"{name}_split", sizes)], outs, name=name, axis=axis)
    elif op == "Slice":
        k = len(_attr(node, "starts"))
        extra = [ex.ints(f"{name}_{key}", _attr(node, key) or default) for key, default in
                 (("starts", None), ("ends", None), ("axes", range(k)), ("steps", [1] * k))]
        ex.emit("Slice", ins[:1] + extra, outs, name=name)
    elif op == "Pad":
        mode = _attr(node, "mode")
        extra = [ex.ints(f"{name}_pads", _attr(node, "pads"))]
        if mode == "constant":
            extra.append(ex.scalar_like(f"{name}_value", _attr(node, "value"), node.inputs[0]))
        ex.emit("Pad", ins[:1] + extra, outs, name=name, mode=mode)
    elif op == "Resize":
        x = ex.g.tensors[node.inputs[0]]
        n_, c_ = (x.shape[0], x.shape[1]) if layout == "NCHW" else (x.shape[0], x.shape[-1])
        if _attr(node, "scales") is not None:
            extra = ["", ex.const(f"{name}_scales", np.array([1.0, 1.0, *_attr(node, "scales")], np.float32))]
        else:
            extra = ["", "", ex.ints(f"{name}_sizes", [n_, c_, *_attr(node, "sizes")])]
        ex.emit("Resize", ins[:1] + extra, outs, name=name, mode=_attr(node, "mode"),
                coordinate_transformation_mode=_attr(node, "coordinate_transformation_mode"),
                nearest_mode=_attr(node, "nearest_mode"))
    elif op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
        axes = _attr(node, "axes")
        as_input = op == "ReduceSum" or ex.opset >= 18
        noop = _attr(node, "noop_with_empty_axes")
        if noop:
            ex._need(13 if op == "ReduceSum" else 18, f"{op} with noop_with_empty_axes", node)
        extra = [ex.ints(f"{name}_axes", axes)] if as_input and axes else []
        ex.emit(op, ins[:1] + extra, outs, name=name, keepdims=_attr(node, "keepdims"),
                axes=None if as_input or not axes else list(axes), noop_with_empty_axes=noop or None)
    elif op == "ConvTranspose":
        if attrs.get("output_shape") is not None:
            attrs["output_shape"] = list(attrs["output_shape"])[-2:]
        ex.emit(op, ins, outs, name=name, **attrs)
    elif op in _SAME_NAME:
        ex.emit(op, ins, outs, name=name, **attrs)
    else:
        raise GraphError(f"the ONNX exporter does not handle op '{op}'", node.name, op)
    for i, out in enumerate(node.outputs):
        if outs[i] != out:
            ex.finish(node, outs[i], out, layout, act)


def _gelu(ex: _Exporter, node: Node, x: str, out: str) -> None:
    approx = _attr(node, "approximate")
    if ex.opset >= 20:
        ex.emit("Gelu", [x], [out], name=node.name, approximate=approx)
        return
    c = lambda tag, v: ex.const(f"{node.name}_{tag}", np.array(v, np.float32))  # noqa: E731
    nm = node.name
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = ex.emit("Mul", [ex.emit("Mul", [x, x], name=f"{nm}/x2"), x], name=f"{nm}/x3")
        inner = ex.emit("Add", [x, ex.emit("Mul", [x3, c("k", 0.044715)], name=f"{nm}/kx3")], name=f"{nm}/inner")
        t = ex.emit("Tanh", [ex.emit("Mul", [inner, c("s", math.sqrt(2 / math.pi))], name=f"{nm}/scaled")],
                    name=f"{nm}/Tanh")
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = ex.emit("Erf", [ex.emit("Div", [x, c("sqrt2", math.sqrt(2))], name=f"{nm}/div")], name=f"{nm}/Erf")
    half = ex.emit("Mul", [x, c("half", 0.5)], name=f"{nm}/half")
    ex.emit("Mul", [half, ex.emit("Add", [t, c("one", 1.0)], name=f"{nm}/plus1")], [out], name=nm)


def _value_info(t: Tensor) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(t.name, ONNX_DTYPE[t.dtype], list(t.shape))


def to_onnx(graph: Graph, opset: int = 17) -> onnx.ModelProto:
    """Convert `graph` to an ONNX model of the given opset (13 .. newest onnx knows)."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise GraphError(f"ONNX export supports opsets {MIN_OPSET} to {newest}, not {opset}")
    if not all(o in graph.tensors for n in graph.nodes for o in n.outputs):
        graph = infer_shapes(graph)
    for node in graph.nodes:  # state kept between invocations (engine/state.py) has no ONNX form
        op_def = get_op(node.op)
        held = [node.inputs[i] for i in (op_def.state_inputs if op_def else ()) if i < len(node.inputs)]
        if any(graph.tensors[n].meta.get("variable") for n in held if n):  # not an ONNX LSTM's initial state
            raise GraphError(f"{node.op} keeps a state between invocations; ONNX has no such op", node.name, node.op)
    ex = _Exporter(graph, opset)
    for name in graph.inputs:
        ex.names.add(name)
    for node in topological_order(graph):
        _convert(ex, node)
    outputs = []
    for name in graph.outputs:
        t = graph.tensors[name]
        if t.data is not None:  # a constant output: initializers cannot be graph outputs in every runtime
            src = ex.const(f"{name}_value", t.data, t.dtype)
            ex.emit("Identity", [src], [name], name=f"{name}/Identity")
        outputs.append(_value_info(t))
    _drop_unused_transposes(ex, set(graph.outputs))
    used = {x for n in ex.nodes for x in n.input}
    inits = [t for name, t in ex.inits.items() if name in used]
    g = helper.make_graph(ex.nodes, graph.name or "graph", [_value_info(graph.tensors[n]) for n in graph.inputs],
                          outputs, inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(g, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="TinyStudio")
    return model


def _drop_unused_transposes(ex: _Exporter, outputs: set[str]) -> None:
    """NHWC outputs that every consumer read in channels-first form need no Transpose back."""
    used = {x for n in ex.nodes for x in n.input} | outputs
    ex.nodes = [n for n in ex.nodes if not (n.op_type == "Transpose" and n.output[0] in ex.inserted_transposes
                                            and n.output[0] not in used)]


def save_onnx(graph: Graph, path: str, opset: int = 17) -> None:
    onnx.save_model(to_onnx(graph, opset), str(path))
