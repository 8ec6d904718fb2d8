"""What the ONNX node pass and its op handlers share: the `Importer` state, attribute decoding, the handler table.

    imp.cin(n, 1, "shape", True)          # constant operand -> np.ndarray, or a one-line error
    imp.emit(n, "Reshape", [x], n.outs, {"shape": [1, -1]})   # one IR node, output shapes inferred now
    @HANDLERS.handles("Relu")             # registers a handler in a module's table: (imp, n, attrs) -> None

Handlers live in onnx_ops.py and onnx_shape_ops.py, each in its own HandlerTable; onnx_import joins the two.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.errors import GraphError, ModelFormatError
from engine.ir import Graph, Node, Quant, Tensor, dtype_of, unique_name
from engine.ops import OpContext, get_op

IR_DTYPE = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
            TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT16: "int16",
            TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.BOOL: "bool",
            TensorProto.INT4: "int4"}
_KNOWN_TYPES = set(TensorProto.DataType.values())
# Attributes older opsets carry that change nothing at inference.
_LEGACY_IGNORED = {"consumed_inputs", "is_test"}


def dtype_name(elem_type: int) -> str:
    """ONNX element type name, or the number itself when the file holds a value the enum lacks."""
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"{elem_type} (unknown)"


def to_array(path: str, t: TensorProto) -> np.ndarray:
    # External data was moved in (or refused) by onnx_external; numpy_helper would read a leftover entry
    # relative to the server's working folder.
    if t.data_location != TensorProto.DEFAULT:
        raise ModelFormatError(path, f"tensor '{t.name}' keeps its data outside the model; refused")
    if t.data_type not in _KNOWN_TYPES or t.data_type == TensorProto.UNDEFINED:
        raise ModelFormatError(path, f"tensor '{t.name}' has element type {dtype_name(t.data_type)}, which is not "
                                     "supported")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise ModelFormatError(path, f"tensor '{t.name}' cannot be decoded: {e}") from None
    if arr.dtype.name in ("int4", "uint4"):  # ml_dtypes types; the IR keeps one value per byte
        arr = arr.astype(np.int8 if arr.dtype.name == "int4" else np.uint8)
    return arr


@dataclass
class OnnxNode:
    """The ONNX node a handler converts: unique name, op type, inputs, outputs."""
    name: str
    op: str
    ins: list[str]
    outs: list[str]
    proto: onnx.NodeProto
    claimed: bool = False  # the first IR node emitted without a suffix takes the ONNX node's name


class Importer:
    def __init__(self, path: str, opset: int, graph: Graph, used: set[str], taken: set[str], node_names: set[str]):
        self.path, self.opset, self.g, self.used = path, opset, graph, used
        self.consts: dict[str, np.ndarray] = {}
        self.int4: set[str] = set()  # constants stored as ONNX INT4 (numpy sees them as int8)
        self.node_names = node_names
        self.onnx_shapes: dict[str, tuple[int, ...]] = {}  # ONNX's own inferred shapes, where static
        self.tensor_names = taken
        self.supported: list[str] = []  # ONNX op types this import maps, for "unsupported op" messages

    # -- names
    def fresh_tensor(self, base: str) -> str:
        return unique_name(base, self.tensor_names)

    def fresh_node(self, base: str) -> str:
        return unique_name(base, self.node_names)

    # -- errors
    def fail(self, n: OnnxNode, msg: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"node '{n.name}' ({n.op}): {msg}")

    # -- values
    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return self.g.tensors[name].shape

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def cin(self, n: OnnxNode, i: int, what: str, required: bool = False) -> np.ndarray | None:
        """Constant value of input i; None when the optional input is absent (or an empty tensor)."""
        if i >= len(n.ins) or not n.ins[i]:
            if required:
                raise self.fail(n, f"input '{what}' is required")
            return None
        if n.ins[i] not in self.consts:
            raise self.fail(n, f"input '{what}' ('{n.ins[i]}') must be a constant; it is computed at run time, "
                               "which the IR does not support")
        return self.consts[n.ins[i]]

    def cints(self, n: OnnxNode, i: int, what: str, required: bool = False) -> list[int] | None:
        """A 1-D integer constant operand (shape, split, repeats ...) as a list; None when absent."""
        v = self.cin(n, i, what, required)
        if v is None:
            return None
        if v.ndim != 1:
            raise self.fail(n, f"input '{what}' must be a 1-D tensor; it has shape {list(v.shape)}")
        return [int(x) for x in v]

    def new_const(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh_tensor(base)
        self.consts[name] = np.asarray(arr)
        return name

    def ir_tensor(self, name: str) -> Tensor:
        t = self.g.tensors.get(name)
        if t is not None:
            return t
        if name not in self.consts:
            raise ModelFormatError(self.path, f"tensor '{name}' is used before it is defined")
        arr = self.consts[name]
        try:
            dtype = dtype_of(arr)
        except ValueError:
            raise ModelFormatError(self.path, f"constant '{name}' has element type {arr.dtype}, which the IR "
                                              "does not support") from None
        t = Tensor(name, arr.shape, "int4" if name in self.int4 else dtype, data=arr)
        self.g.tensors[name] = t
        return t

    def emit(self, n: OnnxNode, op: str, inputs: list[str], outputs: list[str] | None = None,
             attrs: dict | None = None, suffix: str | None = None, quant: Quant | None = None) -> str:
        """Add one IR node (inferring its output shapes now, so later Shape nodes fold); returns output 0."""
        outputs = outputs or [self.fresh_tensor(f"{n.name}/{suffix or op}")]
        if suffix is None and not n.claimed:
            name, n.claimed = n.name, True
        else:
            name = self.fresh_node(f"{n.name}/{suffix or op}")
        node = Node(op, name, list(inputs), list(outputs), {k: v for k, v in (attrs or {}).items() if v is not None})
        if op != n.op:
            node.meta["onnx_op"] = n.op
        if node.name != n.name:
            node.meta["onnx_node"] = n.name
        opdef = get_op(op)
        ins = [self.ir_tensor(x) if x else None for x in inputs]
        ctx = OpContext(opdef, node, ins)
        try:
            opdef.check(node)
            results = opdef.infer(ctx)
        except GraphError as e:
            raise ModelFormatError(self.path, str(e)) from None
        for name, (shp, dtype) in zip(outputs, results):
            if not name:
                continue
            self.g.tensors[name] = Tensor(name, shp, dtype, quant)
        self.g.nodes.append(node)
        return outputs[0]

    def reshaped(self, n: OnnxNode, name: str, shape: tuple[int, ...]) -> str:
        if name in self.consts:
            return self.new_const(f"{name}/reshaped", self.consts[name].reshape(shape))
        return self.emit(n, "Reshape", [name], attrs={"shape": list(shape)}, suffix="Reshape")

    def attrs(self, n: OnnxNode, a: dict, keep=(), defaults: dict | None = None) -> dict:
        """IR attrs from ONNX ones: `keep` pass through, `defaults` may be dropped when they hold that value
        (None: whatever the value)."""
        out = {}
        defaults = defaults or {}
        for k, v in a.items():
            if k in keep:
                out[k] = v
            elif k in _LEGACY_IGNORED or k in defaults and (defaults[k] is None or _same(v, defaults[k])):
                continue
            elif k in defaults:
                raise self.fail(n, f"attribute {k}={v!r} is not supported (only {defaults[k]!r})")
            else:
                raise self.fail(n, f"attribute '{k}' is not supported")
        return out

    def unused_extra_outputs(self, n: OnnxNode, keep: int = 1) -> None:
        for o in n.outs[keep:]:
            if o and o in self.used:
                raise self.fail(n, f"output '{o}' is used, but only the first output is supported")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def f32(v) -> float:
    """A float32 value as the shortest decimal that rounds back to it (0.7, not 0.699999988)."""
    return float(str(np.float32(v)))


def attr_dict(proto: onnx.NodeProto) -> dict:
    out = {}
    for a in proto.attribute:
        v = helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.FLOAT:
            v = f32(v)
        elif a.type == onnx.AttributeProto.FLOATS:
            v = [f32(x) for x in v]
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


class HandlerTable(dict):
    """ONNX op type -> handler(imp, n, attrs) that emits the IR nodes. onnx_ops and onnx_shape_ops each fill
    one (`@table.handles("Relu")` or `table[op] = h`); onnx_import joins them by name, no import side effects."""

    def handles(self, *ops):
        def deco(fn):
            for op in ops:
                self[op] = fn
            return fn
        return deco

