"""ONNX importer: a .onnx file -> Graph (IR). Importers only convert (DESIGN.md, example 8).

    g = load_onnx("model.onnx")                                  # inputs with fixed dims
    g = load_onnx("m.onnx", input_shapes={"x": (1, 3, 96, 96)})  # fix symbolic dims
    sniff_onnx(open("m.onnx", "rb").read())                      # -> True

Steps: parse the protobuf (external weights are read only from files inside the model's folder) -> fix the
input shapes -> ONNX shape inference (kept as a cross-check of our own inference) -> one pass over the nodes
in topological order that folds constant subgraphs and maps everything else to IR ops. A node is folded when
all its inputs are constants (evaluated by onnx.reference on that single node) or when it is a Shape/Size of
a tensor whose shape is known; because our own shapes are computed node by node during the pass, a single
pass reaches the fixed point. Constant operands that define shapes (Reshape shape, Slice starts, Pad pads,
Resize scales, Squeeze axes, Clip bounds ...) become IR attributes.

Opsets 6 (the oldest the ONNX backend test files use) to the newest this onnx package knows are accepted;
legacy forms (attribute operands, Add/Mul `broadcast`+`axis`, Softmax's coerce-to-2-D, Upsample) are mapped
to the IR's single meaning. A lone symbolic batch dim (position 0) is set to 1 and recorded in
graph.meta["assumed"]; any other unknown dim needs `input_shapes`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.errors import GraphError, ModelFormatError, UnsupportedOpError
from engine.ir import Graph, Node, Quant, Tensor, dtype_of
from engine.ops import OpContext, get_op
from engine.validate import check_structure

MIN_OPSET = 6

IR_DTYPE = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64",
            TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT16: "int16",
            TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.BOOL: "bool",
            TensorProto.INT4: "int4"}

# Ops never folded even when their inputs are constant: random ones change per run, and Q/DQ of
# constant weights must stay so the weights keep their integer type and quantization.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
            "QuantizeLinear", "DequantizeLinear", "If", "Loop", "Scan"}
# Attributes older opsets carry that change nothing at inference.
_LEGACY_IGNORED = {"consumed_inputs", "is_test"}
# First tag bytes that may follow ir_version in a serialized ModelProto (fields 2..8, 14, 20, 25, 26).
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2}


def sniff_onnx(data: bytes) -> bool:
    """True when `data` starts like a serialized ONNX ModelProto.

    Every protobuf writer emits fields in number order, so a model begins with field 1 (ir_version, a
    small varint: bytes 0x08 N) followed by the tag of a later ModelProto field.
    """
    return len(data) >= 3 and data[0] == 0x08 and 1 <= data[1] <= 30 and data[2] in _MODEL_TAGS


# ---- reading the file ----------------------------------------------------------------------------

def _parse(path: str, data: bytes | None) -> onnx.ModelProto:
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelFormatError(path, f"cannot read the file: {e.strerror}") from None
    if len(data) == 0:
        raise ModelFormatError(path, "the file is empty (0 bytes)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
        ok = model.ir_version > 0 and model.HasField("graph")
    except Exception:  # google.protobuf DecodeError; its type differs between protobuf backends
        ok = False
    if not ok:
        if not sniff_onnx(data):
            raise ModelFormatError(path, "not an ONNX model: the bytes do not start like an ONNX protobuf "
                                         "(wrong magic)")
        raise ModelFormatError(path, "corrupted or truncated ONNX file: the protobuf could not be parsed")
    return model


def _all_tensor_protos(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from a.tensors
            elif a.type == onnx.AttributeProto.GRAPH:
                yield from _all_tensor_protos(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _all_tensor_protos(g)


def _load_external_data(model: onnx.ModelProto, path: str, from_bytes: bool) -> None:
    """Read external tensor data, refusing any location that leaves the model's folder."""
    external = [t for t in _all_tensor_protos(model.graph) if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return
    if from_bytes and not os.path.exists(path):
        raise ModelFormatError(path, "the model keeps weights in external data files; open it from its folder")
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for t in external:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        parts = re.split(r"[\\/]", loc)
        if (not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", loc)
                or ".." in parts):
            raise ModelFormatError(path, f"external data location '{loc}' of tensor '{t.name}' is outside the "
                                         "model's folder; refused")
        full = os.path.realpath(os.path.join(base, loc))
        if os.path.commonpath([base, full]) != base:
            raise ModelFormatError(path, f"external data location '{loc}' of tensor '{t.name}' leads outside the "
                                         "model's folder through a symbolic link; refused")
        if not os.path.isfile(full):
            raise ModelFormatError(path, f"external data file '{loc}' of tensor '{t.name}' was not found")
        offset = int(info.get("offset", 0) or 0)
        length = info.get("length")
        with open(full, "rb") as f:
            f.seek(offset)
            raw = f.read(int(length)) if length is not None else f.read()
        n = int(np.prod(t.dims, dtype=np.int64))
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize if t.data_type != TensorProto.STRING else 0
        if t.data_type not in (TensorProto.STRING, TensorProto.INT4, TensorProto.UINT4) and len(raw) < n * itemsize:
            raise ModelFormatError(path, f"external data file '{loc}' is too short for tensor '{t.name}' "
                                         f"({len(raw)} of {n * itemsize} bytes)")
        t.raw_data = raw
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT


def _to_array(path: str, t: TensorProto) -> np.ndarray:
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise ModelFormatError(path, f"tensor '{t.name}' cannot be decoded: {e}") from None
    if arr.dtype.name in ("int4", "uint4"):  # ml_dtypes types; the IR keeps one value per byte
        arr = arr.astype(np.int8 if arr.dtype.name == "int4" else np.uint8)
    return arr


# ---- inputs --------------------------------------------------------------------------------------

def _fix_inputs(path, graph, init_names, user):
    """{input name: (shape, dtype)} with every dim fixed, plus what had to be assumed."""
    real = [vi for vi in graph.input if vi.name not in init_names]
    names = [vi.name for vi in real]
    user = dict(user or {})
    if "*" in user:  # an unnamed shape (CLI: --input-shape 1,3,224,224) is for the only input
        if len(names) != 1:
            raise ModelFormatError(path, f"the model has inputs {', '.join(names)}; name each one in the input "
                                         "shape (NAME:1,3,224,224)")
        user[names[0]] = user.pop("*")
    unknown = sorted(set(user) - set(names))
    if unknown:
        raise ModelFormatError(path, f"input shape given for unknown input(s) {', '.join(unknown)}; "
                                     f"the model's inputs are {', '.join(names)}")
    fixed, assumed = {}, {}
    for vi in real:
        if not vi.type.HasField("tensor_type"):
            raise ModelFormatError(path, f"input '{vi.name}' is not a tensor; only tensor inputs are supported")
        tt = vi.type.tensor_type
        if tt.elem_type not in IR_DTYPE:
            raise ModelFormatError(path, f"input '{vi.name}' has element type "
                                         f"{TensorProto.DataType.Name(tt.elem_type)}, which is not supported")
        declared = None
        if tt.HasField("shape"):
            declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                        for d in tt.shape.dim]
        if vi.name in user:
            shape = tuple(int(d) for d in user[vi.name])
            if declared is not None and len(declared) != len(shape):
                raise ModelFormatError(path, f"input '{vi.name}' has rank {len(declared)} {_dims(declared)} but "
                                             f"the given shape {list(shape)} has rank {len(shape)}")
            if any(d < 1 for d in shape):
                raise ModelFormatError(path, f"input '{vi.name}': given shape {list(shape)} must be positive")
        else:
            if declared is None:
                raise ModelFormatError(path, f"input '{vi.name}' has no declared shape; give a fixed shape "
                                             "with --input-shape")
            dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int)]
            if dynamic == [0] and len(declared) > 1:
                assumed[vi.name] = f"batch dim '{declared[0]}' of input '{vi.name}' set to 1"
                declared = [1] + declared[1:]
            elif dynamic:
                raise ModelFormatError(path, f"input '{vi.name}' has dynamic dims {_dims(declared)}; give a fixed "
                                             "shape with --input-shape")
            shape = tuple(declared)
        fixed[vi.name] = (shape, IR_DTYPE[tt.elem_type])
    return fixed, assumed


def _dims(dims) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def _onnx_shapes(path, model, fixed) -> dict[str, tuple[int, ...]]:
    """Static shapes ONNX shape inference finds for every value (used to cross-check ours).

    Large non-integer initializers are passed as typed inputs instead of data: inference only needs their
    shapes, and copying megabytes of weights through it would dominate the import time.
    """
    g = onnx.GraphProto()
    g.node.extend(model.graph.node)
    inputs = {vi.name for vi in model.graph.input}
    for vi in model.graph.input:
        if vi.name in fixed:
            shape, _ = fixed[vi.name]
            g.input.append(helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type, list(shape)))
    for t in model.graph.initializer:
        n = int(np.prod(t.dims, dtype=np.int64))
        if n > 64 and t.data_type not in (TensorProto.INT64, TensorProto.INT32):
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
            if t.name in inputs:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    g.output.extend(model.graph.output)
    m = helper.make_model(g, opset_imports=model.opset_import, ir_version=model.ir_version)
    m.functions.extend(model.functions)
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:
        raise ModelFormatError(path, f"ONNX shape inference failed: {str(e).splitlines()[0]}") from None
    out = {}
    for vi in list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            out[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
    return out


# ---- the node pass -------------------------------------------------------------------------------

@dataclass
class _N:
    """The ONNX node a handler converts: unique name, op type, inputs, outputs."""
    name: str
    op: str
    ins: list[str]
    outs: list[str]
    proto: onnx.NodeProto
    claimed: bool = False  # the first IR node emitted without a suffix takes the ONNX node's name


class _Importer:
    def __init__(self, path: str, opset: int, graph: Graph, used: set[str], taken: set[str], node_names: set[str]):
        self.path, self.opset, self.g, self.used = path, opset, graph, used
        self.consts: dict[str, np.ndarray] = {}
        self.int4: set[str] = set()  # constants stored as ONNX INT4 (numpy sees them as int8)
        self.node_names = node_names
        self.tensor_names = taken

    # -- names
    def fresh_tensor(self, base: str) -> str:
        name, i = base, 0
        while name in self.tensor_names:
            i += 1
            name = f"{base}_{i}"
        self.tensor_names.add(name)
        return name

    def fresh_node(self, base: str) -> str:
        name, i = base, 0
        while name in self.node_names:
            i += 1
            name = f"{base}_{i}"
        self.node_names.add(name)
        return name

    # -- errors
    def fail(self, n: _N, msg: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"node '{n.name}' ({n.op}): {msg}")

    # -- values
    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return self.g.tensors[name].shape

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def cin(self, n: _N, i: int, what: str, required: bool = False) -> np.ndarray | None:
        """Constant value of input i; None when the optional input is absent (or an empty tensor)."""
        if i >= len(n.ins) or not n.ins[i]:
            if required:
                raise self.fail(n, f"input '{what}' is required")
            return None
        if n.ins[i] not in self.consts:
            raise self.fail(n, f"input '{what}' ('{n.ins[i]}') must be a constant; it is computed at run time, "
                               "which the IR does not support")
        return self.consts[n.ins[i]]

    def new_const(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh_tensor(base)
        self.consts[name] = np.asarray(arr)
        return name

    def _ir_tensor(self, name: str) -> Tensor:
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

    def emit(self, n: _N, op: str, inputs: list[str], outputs: list[str] | None = None,
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
        ins = [self._ir_tensor(x) if x else None for x in inputs]
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

    def reshaped(self, n: _N, name: str, shape: tuple[int, ...]) -> str:
        if name in self.consts:
            return self.new_const(f"{name}/reshaped", self.consts[name].reshape(shape))
        return self.emit(n, "Reshape", [name], attrs={"shape": list(shape)}, suffix="Reshape")

    def attrs(self, n: _N, a: dict, keep=(), defaults: dict | None = None) -> dict:
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

    def unused_extra_outputs(self, n: _N, keep: int = 1) -> None:
        for o in n.outs[keep:]:
            if o and o in self.used:
                raise self.fail(n, f"output '{o}' is used, but only the first output is supported")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _f32(v) -> float:
    """A float32 value as the shortest decimal that rounds back to it (0.7, not 0.699999988)."""
    return float(str(np.float32(v)))


def _attr_dict(proto: onnx.NodeProto) -> dict:
    out = {}
    for a in proto.attribute:
        v = helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.FLOAT:
            v = _f32(v)
        elif a.type == onnx.AttributeProto.FLOATS:
            v = [_f32(x) for x in v]
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


# ---- op handlers ---------------------------------------------------------------------------------

HANDLERS = {}


def _handles(*ops):
    def deco(fn):
        for op in ops:
            HANDLERS[op] = fn
        return fn
    return deco


def supported_onnx_ops() -> list[str]:
    """ONNX op types this importer maps (any other op folds only when its inputs are constant)."""
    return sorted(HANDLERS)


def _direct(keep=(), defaults=None):
    def h(imp: _Importer, n: _N, a: dict):
        imp.unused_extra_outputs(n)
        imp.emit(n, n.op, n.ins, n.outs[:1], imp.attrs(n, a, keep, defaults))
    return h


for _op in ("Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Erf",
            "Identity", "HardSwish", "MatMul", "GlobalAveragePool", "GlobalMaxPool"):
    HANDLERS[_op] = _direct()
HANDLERS["LeakyRelu"] = _direct(("alpha",))
HANDLERS["HardSigmoid"] = _direct(("alpha", "beta"))
HANDLERS["Gelu"] = _direct(("approximate",))
HANDLERS["Transpose"] = _direct(("perm",))
HANDLERS["Concat"] = _direct(("axis",))
HANDLERS["Flatten"] = _direct(("axis",))
HANDLERS["Gather"] = _direct(("axis",))
# Gemm-6 `broadcast`: a model valid without broadcasting computes the same with it, so it is dropped.
HANDLERS["Gemm"] = _direct(("alpha", "beta", "transA", "transB"), {"broadcast": None})
HANDLERS["LayerNormalization"] = _direct(("axis", "epsilon"), {"stash_type": 1})


@_handles("Add", "Sub", "Mul", "Div", "Pow")
def _binary(imp, n, a):
    x, y = n.ins[:2]
    if imp.opset < 7 and a.get("broadcast", 0) and "axis" in a:
        # Legacy broadcasting: B's dims line up with A's starting at `axis`; numpy aligns from the right.
        ra, rb = imp.rank(x), imp.rank(y)
        tail = ra - (a["axis"] % ra) - rb
        if tail > 0:
            y = imp.reshaped(n, y, imp.shape(y) + (1,) * tail)
    a = {k: v for k, v in a.items() if not (imp.opset < 7 and k in ("broadcast", "axis"))}
    imp.emit(n, n.op, [x, y], n.outs, imp.attrs(n, a))


@_handles("Max", "Min", "Sum", "Mean")
def _variadic(imp, n, a):
    imp.attrs(n, a)
    ins = [x for x in n.ins if x]
    op = {"Sum": "Add", "Mean": "Add"}.get(n.op, n.op)
    if len(ins) == 1:
        imp.emit(n, "Identity", ins, n.outs)
        return
    acc = ins[0]
    for i, x in enumerate(ins[1:]):
        last = i == len(ins) - 2 and n.op != "Mean"
        acc = imp.emit(n, op, [acc, x], n.outs if last else None, suffix=None if last else f"{op}{i}")
    if n.op == "Mean":
        k = imp.new_const(f"{n.name}/inv_n", np.array(1.0 / len(ins), dtype=np.float32))
        imp.emit(n, "Mul", [acc, k], n.outs)


@_handles("PRelu")
def _prelu(imp, n, a):
    x, slope = n.ins[:2]
    s, r = imp.shape(slope), imp.rank(x)
    if imp.opset < 7 and len(s) == 1 and s[0] > 1 and r >= 2:
        slope = imp.reshaped(n, slope, (s[0],) + (1,) * (r - 2))  # opset 6: one slope per channel
    imp.emit(n, "PRelu", [x, slope], n.outs, imp.attrs(n, a))


def _elu_part(imp, n, x, alpha):
    """Relu(x) + alpha * (exp(min(x, 0)) - 1): Elu from IR ops."""
    zero = imp.new_const(f"{n.name}/zero", np.array(0.0, np.float32))
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    al = imp.new_const(f"{n.name}/alpha", np.array(alpha, np.float32))
    neg = imp.emit(n, "Min", [x, zero], suffix="Min")
    e = imp.emit(n, "Exp", [neg], suffix="Exp")
    em1 = imp.emit(n, "Sub", [e, one], suffix="Sub")
    scaled = imp.emit(n, "Mul", [em1, al], suffix="Mul")
    pos = imp.emit(n, "Relu", [x], suffix="Relu")
    return pos, scaled


@_handles("Elu")
def _elu(imp, n, a):
    pos, scaled = _elu_part(imp, n, n.ins[0], imp.attrs(n, a, ("alpha",)).get("alpha", 1.0))
    imp.emit(n, "Add", [pos, scaled], n.outs)


@_handles("Selu")
def _selu(imp, n, a):
    a = imp.attrs(n, a, ("alpha", "gamma"))
    pos, scaled = _elu_part(imp, n, n.ins[0], a.get("alpha", 1.67326319217681884765625))
    s = imp.emit(n, "Add", [pos, scaled], suffix="Add")
    g = imp.new_const(f"{n.name}/gamma", np.array(a.get("gamma", 1.05070102214813232421875), np.float32))
    imp.emit(n, "Mul", [s, g], n.outs)


@_handles("Softplus")
def _softplus(imp, n, a):
    # relu(x) + log(1 + exp(-|x|)) never overflows, unlike log(1 + exp(x)).
    imp.attrs(n, a)
    x = n.ins[0]
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    ab = imp.emit(n, "Abs", [x], suffix="Abs")
    ng = imp.emit(n, "Neg", [ab], suffix="Neg")
    e = imp.emit(n, "Exp", [ng], suffix="Exp")
    l1 = imp.emit(n, "Log", [imp.emit(n, "Add", [e, one], suffix="Add1")], suffix="Log")
    pos = imp.emit(n, "Relu", [x], suffix="Relu")
    imp.emit(n, "Add", [pos, l1], n.outs)


@_handles("Softsign")
def _softsign(imp, n, a):
    imp.attrs(n, a)
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    den = imp.emit(n, "Add", [imp.emit(n, "Abs", [n.ins[0]], suffix="Abs"), one], suffix="Add")
    imp.emit(n, "Div", [n.ins[0], den], n.outs)


@_handles("Conv")
def _conv(imp, n, a):
    r = imp.rank(n.ins[0])
    if r not in (3, 4):
        raise UnsupportedOpError(imp.path, f"Conv ({r - 2}-D)", n.name, supported_onnx_ops())
    imp.emit(n, "Conv", n.ins, n.outs, imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "group")))


@_handles("ConvTranspose")
def _conv_transpose(imp, n, a):
    keep = ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "group", "output_padding", "output_shape")
    attrs = imp.attrs(n, a, keep)
    r = imp.rank(n.ins[0])
    if r == 4:
        imp.emit(n, "ConvTranspose", n.ins, n.outs, attrs)
        return
    if r != 3:
        raise UnsupportedOpError(imp.path, f"ConvTranspose ({r - 2}-D)", n.name, supported_onnx_ops())
    # 1-D: run it as a 2-D transposed conv over a height-1 image.
    x = imp.emit(n, "Unsqueeze", [n.ins[0]], attrs={"axes": [2]}, suffix="Unsqueeze")
    w = imp.reshaped(n, n.ins[1], imp.shape(n.ins[1])[:2] + (1,) + imp.shape(n.ins[1])[2:])
    two = {}
    for k, v in attrs.items():
        if k == "pads":
            two[k] = [0, v[0], 0, v[1]]
        elif k in ("strides", "dilations", "kernel_shape"):
            two[k] = [1, v[0]]
        elif k == "output_padding":
            two[k] = [0, v[0]]
        elif k == "output_shape":
            two[k] = [1, v[-1]]
        else:
            two[k] = v
    y = imp.emit(n, "ConvTranspose", [x, w] + n.ins[2:], attrs=two, suffix="ConvTranspose")
    imp.emit(n, "Squeeze", [y], n.outs, {"axes": [2]})


@_handles("MaxPool")
def _maxpool(imp, n, a):
    imp.unused_extra_outputs(n)
    a = {k: v for k, v in a.items() if k != "storage_order"}  # only affects the Indices output
    imp.emit(n, "MaxPool", n.ins, n.outs[:1], imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "ceil_mode")))


@_handles("AveragePool")
def _avgpool(imp, n, a):
    r = len(a.get("kernel_shape", []))
    imp.emit(n, "AveragePool", n.ins, n.outs, imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "kernel_shape", "ceil_mode", "count_include_pad"),
        {"dilations": [1] * r}))


@_handles("BatchNormalization")
def _batchnorm(imp, n, a):
    imp.unused_extra_outputs(n)
    imp.emit(n, "BatchNormalization", n.ins, n.outs[:1], imp.attrs(
        n, a, ("epsilon", "momentum"), {"spatial": 1, "training_mode": 0}))


@_handles("InstanceNormalization")
def _instancenorm(imp, n, a):
    a = imp.attrs(n, a, ("epsilon",))
    x, scale, bias = n.ins[:3]
    r = imp.rank(x)
    axes = list(range(2, r))
    c = imp.shape(x)[1]
    mean = imp.emit(n, "ReduceMean", [x], attrs={"axes": axes, "keepdims": 1}, suffix="mean")
    d = imp.emit(n, "Sub", [x, mean], suffix="center")
    var = imp.emit(n, "ReduceMean", [imp.emit(n, "Mul", [d, d], suffix="square")],
                   attrs={"axes": axes, "keepdims": 1}, suffix="var")
    eps = imp.new_const(f"{n.name}/epsilon", np.array(a.get("epsilon", 1e-5), np.float32))
    den = imp.emit(n, "Sqrt", [imp.emit(n, "Add", [var, eps], suffix="var_eps")], suffix="std")
    y = imp.emit(n, "Div", [d, den], suffix="normalized")
    per_channel = (c,) + (1,) * (r - 2)
    y = imp.emit(n, "Mul", [y, imp.reshaped(n, scale, per_channel)], suffix="scale")
    imp.emit(n, "Add", [y, imp.reshaped(n, bias, per_channel)], n.outs)


@_handles("Softmax", "LogSoftmax")
def _softmax(imp, n, a):
    a = imp.attrs(n, a, ("axis",))
    x = n.ins[0]
    r = imp.rank(x)
    axis = a.get("axis", 1 if imp.opset < 13 else -1)
    if not -r <= axis < max(r, 1):
        raise imp.fail(n, f"axis {axis} out of range for rank {r}")
    if imp.opset >= 13 or axis % r == r - 1:
        imp.emit(n, n.op, [x], n.outs, {"axis": axis if imp.opset >= 13 else -1})
        return
    # Before opset 13 the op flattens to 2-D at `axis` and normalizes each row; do exactly that.
    flat = imp.emit(n, "Flatten", [x], attrs={"axis": axis % r}, suffix="Flatten")
    y = imp.emit(n, n.op, [flat], attrs={"axis": -1}, suffix=n.op)
    imp.emit(n, "Reshape", [y], n.outs, {"shape": list(imp.shape(x))})


@_handles("Reshape")
def _reshape(imp, n, a):
    if imp.opset < 5:
        shape = a.pop("shape")
    else:
        shape = imp.cin(n, 1, "shape", True)
    imp.emit(n, "Reshape", n.ins[:1], n.outs, {"shape": [int(v) for v in np.ravel(shape)],
                                               **imp.attrs(n, a, ("allowzero",))})


def _axes_operand(imp, n, a, i, since):
    if imp.opset >= since:
        v = imp.cin(n, i, "axes")
        a = dict(a)
        return (None if v is None or v.size == 0 else [int(x) for x in np.ravel(v)]), a
    a = dict(a)
    axes = a.pop("axes", None)
    return (None if axes is None else list(axes)), a


@_handles("Squeeze", "Unsqueeze")
def _squeeze(imp, n, a):
    axes, a = _axes_operand(imp, n, a, 1, 13)
    if n.op == "Unsqueeze" and axes is None:
        raise imp.fail(n, "needs axes")
    imp.emit(n, n.op, n.ins[:1], n.outs, {"axes": axes, **imp.attrs(n, a)})


@_handles("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(imp, n, a):
    axes, a = _axes_operand(imp, n, a, 1, 13 if n.op == "ReduceSum" else 18)
    imp.emit(n, n.op, n.ins[:1], n.outs, {"axes": axes, **imp.attrs(n, a, ("keepdims", "noop_with_empty_axes"))})


@_handles("Split")
def _split(imp, n, a):
    a = dict(a)
    if imp.opset < 13:
        split = a.pop("split", None)
    else:
        v = imp.cin(n, 1, "split")
        split = None if v is None or v.size == 0 else [int(x) for x in v]
    a.pop("num_outputs", None)  # the IR's default split (ceil-sized chunks) is opset 18's num_outputs rule
    attrs = imp.attrs(n, a, ("axis",))
    outs = [o if o else imp.fresh_tensor(f"{n.name}/unused{i}") for i, o in enumerate(n.outs)]
    imp.emit(n, "Split", n.ins[:1], outs, {"split": None if split is None else list(split), **attrs})


@_handles("Slice")
def _slice(imp, n, a):
    if imp.opset < 10:
        attrs = imp.attrs(n, a, ("starts", "ends", "axes"))
    else:
        imp.attrs(n, a)
        attrs = {}
        for i, k in enumerate(("starts", "ends", "axes", "steps"), start=1):
            v = imp.cin(n, i, k, i <= 2)
            if v is not None:
                attrs[k] = [int(x) for x in np.ravel(v)]
    imp.emit(n, "Slice", n.ins[:1], n.outs, attrs)


@_handles("Pad")
def _pad(imp, n, a):
    a = dict(a)
    if imp.opset < 11:
        pads = a.pop("pads", a.pop("paddings", None))
        value = a.pop("value", 0.0)
        axes = None
    else:
        pads = imp.cin(n, 1, "pads", True)
        v = imp.cin(n, 2, "constant_value")
        value = 0.0 if v is None or v.size == 0 else _f32(np.ravel(v)[0])
        axes = imp.cin(n, 3, "axes")
    pads = [int(p) for p in np.ravel(pads)]
    r = imp.rank(n.ins[0])
    if axes is not None:  # opset 18: pads only for the listed axes
        full = [0] * (2 * r)
        k = len(axes)
        for j, ax in enumerate(np.ravel(axes)):
            full[int(ax) % r], full[int(ax) % r + r] = pads[j], pads[j + k]
        pads = full
    mode = a.pop("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise imp.fail(n, f"mode '{mode}' is not supported (constant, reflect, edge)")
    imp.attrs(n, a)
    imp.emit(n, "Pad", n.ins[:1], n.outs, {"pads": pads, "mode": mode, "value": value})


@_handles("Resize", "Upsample")
def _resize(imp, n, a):
    a = dict(a)
    x = n.ins[0]
    shape = imp.shape(x)
    r = len(shape)
    mode = a.pop("mode", "nearest")
    mode = "linear" if mode == "bilinear" else mode
    scales = sizes = None
    if n.op == "Upsample" or imp.opset < 11:
        # Upsample and Resize-10 use asymmetric coordinates; onnxruntime rounds nearest indices down on
        # axes it enlarges and up on axes it shrinks. The IR has one rounding for all axes, which is exact
        # for mixed scales only when every shrinking axis samples exact integer positions (1/scale = 2^k).
        scales = a.pop("scales") if "scales" in a else imp.cin(n, 1, "scales", True)
        scales = [_f32(s) for s in np.ravel(scales)]
        ctm = "asymmetric"
        down = [s for s in scales if s < 1]
        nearest = "floor" if not down else "ceil" if all(s <= 1 for s in scales) else None
        if nearest is None and mode == "nearest":
            if not all(math.log2(1 / s).is_integer() for s in down):
                raise imp.fail(n, f"nearest resize that enlarges some axes and shrinks others by {down} is not "
                                  "supported before opset 11")
        nearest = nearest or "floor"
    else:
        ctm = a.pop("coordinate_transformation_mode", "half_pixel")
        nearest = a.pop("nearest_mode", "round_prefer_floor")
        s = imp.cin(n, 2, "scales")
        z = imp.cin(n, 3, "sizes")
        scales = None if s is None or s.size == 0 else [_f32(v) for v in np.ravel(s)]
        sizes = None if z is None or z.size == 0 else [int(v) for v in np.ravel(z)]
        axes = a.pop("axes", None)
        if axes is not None:
            axes = [ax % r for ax in axes]
            if scales is not None:
                scales = [scales[axes.index(i)] if i in axes else 1.0 for i in range(r)]
            if sizes is not None:
                sizes = [sizes[axes.index(i)] if i in axes else shape[i] for i in range(r)]
        if sizes is not None and a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise imp.fail(n, f"keep_aspect_ratio_policy '{a['keep_aspect_ratio_policy']}' is not supported")
        a.pop("keep_aspect_ratio_policy", None)
        a.pop("cubic_coeff_a", None)  # cubic only
        a.pop("extrapolation_value", None)  # tf_crop_and_resize only
    imp.attrs(n, a, (), {"exclude_outside": 0, "antialias": 0})
    if mode not in ("nearest", "linear"):
        raise imp.fail(n, f"mode '{mode}' is not supported (nearest, linear)")
    if ctm not in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"):
        raise imp.fail(n, f"coordinate_transformation_mode '{ctm}' is not supported")
    if r < 3:
        raise imp.fail(n, f"input {list(shape)} must have batch, channel and spatial dims")
    if scales is not None and len(scales) != r or sizes is not None and len(sizes) != r:
        raise imp.fail(n, f"scales/sizes must have {r} values")
    if scales is not None and scales[:2] != [1.0, 1.0] or sizes is not None and list(sizes[:2]) != list(shape[:2]):
        raise imp.fail(n, "resizing the batch or channel dims is not supported (spatial dims only)")
    imp.emit(n, "Resize", [x], n.outs, {
        "scales": None if scales is None else scales[2:], "sizes": None if sizes is None else sizes[2:],
        "mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nearest})


@_handles("Clip")
def _clip(imp, n, a):
    if imp.opset < 11:
        attrs = imp.attrs(n, a, ("min", "max"))
    else:
        imp.attrs(n, a)
        attrs = {}
        for i, k in ((1, "min"), (2, "max")):
            v = imp.cin(n, i, k)
            if v is not None:
                attrs[k] = _f32(np.ravel(v)[0])
    imp.emit(n, "Clip", n.ins[:1], n.outs, attrs)


@_handles("Cast")
def _cast(imp, n, a):
    a = dict(a)
    to = IR_DTYPE.get(a.pop("to"))
    a.pop("saturate", None)  # float8 targets only
    choices = get_op("Cast").attrs["to"].choices
    if to not in choices:
        raise imp.fail(n, f"cast target type is not supported (supported: {', '.join(choices)})")
    imp.emit(n, "Cast", n.ins[:1], n.outs, {"to": to, **imp.attrs(n, a)})


@_handles("Dropout")
def _dropout(imp, n, a):
    imp.unused_extra_outputs(n)
    training = imp.cin(n, 2, "training_mode") if imp.opset >= 12 else None
    if training is not None and bool(np.ravel(training)[0]):
        raise imp.fail(n, "training_mode=true is not supported (inference only)")
    imp.emit(n, "Identity", n.ins[:1], n.outs[:1])


@_handles("Expand")
def _expand(imp, n, a):
    imp.attrs(n, a)
    shape = tuple(int(v) for v in imp.cin(n, 1, "shape", True))
    x = n.ins[0]
    dt = imp.g.tensors[x].dtype
    # Expand is numpy broadcasting against `shape`: multiply by ones (add zeros for integers).
    if dt in ("float32", "float16", "float64"):
        k = imp.new_const(f"{n.name}/ones", np.ones(shape, dtype=dt))
        imp.emit(n, "Mul", [x, k], n.outs)
    else:
        k = imp.new_const(f"{n.name}/zeros", np.zeros(shape, dtype=dt))
        imp.emit(n, "Add", [x, k], n.outs)


@_handles("Tile")
def _tile(imp, n, a):
    imp.attrs(n, a)
    reps = [int(v) for v in imp.cin(n, 1, "repeats", True)]
    axes = [i for i, k in enumerate(reps) if k > 1]
    x = n.ins[0]
    if not axes:
        imp.emit(n, "Identity", [x], n.outs)
    for j, ax in enumerate(axes):
        last = j == len(axes) - 1
        x = imp.emit(n, "Concat", [x] * reps[ax], n.outs if last else None, {"axis": ax},
                     suffix=None if last else f"Concat{ax}")


@_handles("DepthToSpace", "SpaceToDepth")
def _depth_space(imp, n, a):
    a = imp.attrs(n, a, ("blocksize", "mode"))
    b, c, h, w = imp.shape(n.ins[0])
    bs = a["blocksize"]
    if n.op == "SpaceToDepth":
        mid, perm, out = [b, c, h // bs, bs, w // bs, bs], [0, 3, 5, 1, 2, 4], [b, c * bs * bs, h // bs, w // bs]
    elif a.get("mode", "DCR") == "DCR":
        mid, perm, out = [b, bs, bs, c // bs ** 2, h, w], [0, 3, 4, 1, 5, 2], [b, c // bs ** 2, h * bs, w * bs]
    else:
        mid, perm, out = [b, c // bs ** 2, bs, bs, h, w], [0, 1, 4, 2, 5, 3], [b, c // bs ** 2, h * bs, w * bs]
    y = imp.emit(n, "Reshape", n.ins[:1], attrs={"shape": mid}, suffix="Reshape")
    y = imp.emit(n, "Transpose", [y], attrs={"perm": perm}, suffix="Transpose")
    imp.emit(n, "Reshape", [y], n.outs, {"shape": out})


def _qparams(imp, n, a, rank):
    a = dict(a)
    scale = imp.cin(n, 1, "scale", True)
    zp = imp.cin(n, 2, "zero_point")
    axis = a.pop("axis", 1)
    if a.pop("block_size", 0):
        raise imp.fail(n, "blocked quantization (block_size) is not supported")
    out_dtype = a.pop("output_dtype", 0)
    a.pop("saturate", None)
    imp.attrs(n, a)
    if zp is not None:
        dtype = dtype_of(zp) if zp.dtype.name in ("int8", "uint8", "int16", "int32") else None
        if n.ins[2] in imp.int4:
            dtype = "int4"
    elif n.op == "DequantizeLinear":  # no zero point: zero of the input's type
        dtype = imp._ir_tensor(n.ins[0]).dtype
    else:
        dtype = IR_DTYPE.get(out_dtype, "uint8") if out_dtype else "uint8"
    if dtype is None:
        raise imp.fail(n, f"zero point type {zp.dtype} is not supported (int8, uint8, int16, int32)")
    scale = np.ravel(scale).astype(np.float32)
    zpv = np.zeros(scale.shape, np.int64) if zp is None else np.ravel(zp).astype(np.int64)
    if scale.size > 1:
        return Quant(scale, zpv, axis % rank), dtype
    return Quant(scale, zpv), dtype


@_handles("QuantizeLinear")
def _quantize(imp, n, a):
    q, dtype = _qparams(imp, n, a, imp.rank(n.ins[0]))
    if dtype not in get_op("QuantizeLinear").attrs["dtype"].choices:
        raise imp.fail(n, f"quantizing to {dtype} is not supported")
    imp.emit(n, "QuantizeLinear", n.ins[:1], n.outs, {"dtype": dtype}, quant=q)


@_handles("DequantizeLinear")
def _dequantize(imp, n, a):
    x = n.ins[0]
    q, dtype = _qparams(imp, n, a, imp.rank(x))
    t = imp._ir_tensor(x)
    if t.quant is not None and t.quant != q:
        if t.data is None:
            raise imp.fail(n, f"input '{x}' is dequantized with a scale/zero point other than it was quantized with")
        x = imp.new_const(x, t.data)  # the same integer constant read with two quantizations
        t = imp._ir_tensor(x)
    if t.dtype != dtype and not (t.dtype == "int8" and dtype == "int4"):
        raise imp.fail(n, f"input '{x}' is {t.dtype} but the zero point is {dtype}")
    t.quant = q
    imp.emit(n, "DequantizeLinear", [x], n.outs)


# ---- constant folding -----------------------------------------------------------------------------

def _constant_value(imp: _Importer, n: _N, a: dict) -> np.ndarray:
    if "value" in a:
        return _to_array(imp.path, a["value"])
    for k, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                  ("value_ints", np.int64)):
        if k in a:
            return np.array(a[k], dtype=dt)
    raise imp.fail(n, f"constant kind {', '.join(a) or '(none)'} is not supported")


def _fold(imp: _Importer, n: _N) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator  # imported lazily: only models with foldable nodes pay for it
    feeds = {x: imp.consts[x] for x in n.ins if x}
    try:
        ev = ReferenceEvaluator(n.proto, opsets={"": imp.opset})
        return [np.asarray(v) for v in ev.run(None, feeds)]
    except Exception as e:
        raise imp.fail(n, f"constant folding failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None


def _try_fold(imp: _Importer, n: _N, a: dict) -> bool:
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


# ---- the entry point ------------------------------------------------------------------------------

def _opset(path, model) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelFormatError(path, "the model declares no opset for the default ONNX domain (truncated file?)")
    v, newest = versions[0], onnx.defs.onnx_opset_version()
    if v < MIN_OPSET or v > newest:
        raise ModelFormatError(path, f"opset {v} is not supported (opsets {MIN_OPSET} to {newest})")
    return v


def _topological(path, nodes, known: set[str]) -> list:
    """ONNX requires sorted nodes, but some writers do not comply; sort (stably) when needed."""
    defined = set(known)
    ok = True
    for nd in nodes:
        if any(x and x not in defined for x in nd.input):
            ok = False
            break
        defined.update(nd.output)
    if ok:
        return list(nodes)
    producer = {o: i for i, nd in enumerate(nodes) for o in nd.output if o}
    import heapq
    deps, users = [0] * len(nodes), [[] for _ in nodes]
    for i, nd in enumerate(nodes):
        srcs = set()
        for x in nd.input:
            if not x or x in known:
                continue
            if x not in producer:
                raise ModelFormatError(path, f"node '{nd.name or nd.op_type}' ({nd.op_type}) reads '{x}', which no "
                                             "node produces (corrupted or truncated file?)")
            srcs.add(producer[x])
        deps[i] = len(srcs)
        for s in srcs:
            users[s].append(i)
    ready = [i for i, d in enumerate(deps) if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            deps[u] -= 1
            if deps[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise ModelFormatError(path, "the graph has a cycle")
    return order


def load_onnx(path: str, data: bytes | None = None,
              input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Read an ONNX model (from `path`, or from `data` with `path` naming it) into a Graph."""
    path = str(path)
    model = _parse(path, data)
    opset = _opset(path, model)
    _load_external_data(model, path, data is not None)
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    fixed, assumed = _fix_inputs(path, graph, init_names, input_shapes)
    onnx_shapes = _onnx_shapes(path, model, fixed)

    g = Graph(graph.name or os.path.splitext(os.path.basename(path))[0])
    used = {x for nd in graph.node for x in nd.input if x} | {o.name for o in graph.output}
    taken = set(used) | {o for nd in graph.node for o in nd.output} | set(fixed) | init_names
    onnx_names = [nd.name for nd in graph.node]
    imp = _Importer(path, opset, g, used, taken, {x for x in onnx_names if x})
    for t in graph.initializer:
        imp.consts[t.name] = _to_array(path, t)
        if t.data_type == TensorProto.INT4:
            imp.int4.add(t.name)
    for name, (shape, dtype) in fixed.items():
        g.tensors[name] = Tensor(name, shape, dtype)
        g.inputs.append(name)

    supported = supported_onnx_ops()
    nodes = _topological(path, graph.node, set(fixed) | init_names)
    first_use: set[str] = set()
    for i, proto in enumerate(nodes):
        # Keep ONNX names; a missing or repeated one gets a fresh name that no other node uses.
        if proto.name and proto.name not in first_use:
            name = proto.name
            first_use.add(name)
        else:
            name = imp.fresh_node(proto.name or f"{proto.op_type}_{i}")
        n = _N(name, proto.op_type, list(proto.input), list(proto.output), proto)
        if proto.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(path, f"{proto.domain}.{proto.op_type}", n.name, supported)
        for x in n.ins:
            if x and x not in imp.consts and x not in g.tensors:
                raise ModelFormatError(path, f"node '{n.name}' ({n.op}) reads '{x}', which is not defined "
                                             "(corrupted or truncated file?)")
        a = _attr_dict(proto)
        if not _try_fold(imp, n, a):
            handler = HANDLERS.get(n.op)
            if handler is None:
                raise UnsupportedOpError(path, n.op, n.name, supported)
            handler(imp, n, a)
        for o in n.outs:
            want = onnx_shapes.get(o)
            got = imp.shape(o) if (o in g.tensors or o in imp.consts) else None
            if want is not None and got is not None and tuple(want) != tuple(got):
                raise imp.fail(n, f"output '{o}' has shape {list(got)} here but ONNX shape inference gives "
                                  f"{list(want)}")

    for vo in graph.output:
        if vo.name not in g.tensors:
            if vo.name not in imp.consts:
                raise ModelFormatError(path, f"graph output '{vo.name}' is not produced by any node")
            imp._ir_tensor(vo.name)
        g.outputs.append(vo.name)
    g.meta["source"] = {"format": "onnx", "path": path, "opset": opset}
    if assumed:
        g.meta["assumed"] = assumed
    try:
        check_structure(g)
    except GraphError as e:
        raise ModelFormatError(path, str(e)) from None
    return g
