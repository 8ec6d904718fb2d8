"""TFLite flatbuffer -> Graph, kept in NHWC with the file's dtypes and quantization.

    graph = load_tflite("kws_ref_model.tflite")            # reads the file
    graph = load_tflite("upload.tflite", data=raw_bytes)   # the path only names the file in errors

Two phases, so that a damaged file can only fail in one place:
1. `_decode` reads the flatbuffer (the `tflite` package's generated readers) into plain records. Every
   vector length is checked against the file size before it is walked, so loops are bounded by the file
   and a truncated or corrupted file gives a ModelFormatError, never a traceback or a hang.
2. `_Builder` maps the records of the first subgraph into IR nodes, one small handler per TFLite op.
   Shape-defining constant inputs (RESHAPE's shape, PAD's paddings, MEAN's axes, ...) become attributes.
Finally `infer_shapes(check_declared=True)` recomputes every shape, so a file whose declared tensor
shapes contradict its ops is refused.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Callable

import flatbuffers
import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from engine.errors import GraphError, ModelFormatError, UnsupportedOpError
from engine.ir import DTYPES, Graph, Node, Quant, Tensor
from engine.validate import infer_shapes

MAGIC = b"TFL3"  # flatbuffer file identifier, bytes 4..8


def sniff_tflite(data: bytes) -> bool:
    return len(data) >= 8 and bytes(data[4:8]) == MAGIC


# TFLite TensorType -> IR dtype. Types the IR has no equivalent for (string, complex, resource,
# unsigned 16/32/64, bfloat16) are refused with the tensor's name.
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
           9: "int8", 10: "float64", 17: "int4"}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
# TFLite's kernels (CalculateActivationRange) clamp only for the RELU family; a fused TANH on a conv,
# FC, pool or add computes nothing there, so it maps to "none" to keep the file's results.
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "none"}
_PADDING = {0: "SAME_UPPER", 1: "VALID"}  # TFLite SAME puts the odd pad cell at the end, like SAME_UPPER

# Options each mapped op reads: op -> (options table, fields). Vector fields are read as lists.
_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "StrideH", "DilationWFactor", "DilationHFactor",
                                  "FusedActivationFunction")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideW", "StrideH", "DepthMultiplier",
                                                     "DilationWFactor", "DilationHFactor", "FusedActivationFunction")),
    "TRANSPOSE_CONV": ("TransposeConvOptions", ("Padding", "StrideW", "StrideH", "FusedActivationFunction")),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                          "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                      "FusedActivationFunction")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat", "KeepNumDims")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "SUB": ("SubOptions", ("FusedActivationFunction",)),
    "MUL": ("MulOptions", ("FusedActivationFunction",)),
    "DIV": ("DivOptions", ("FusedActivationFunction",)),
    "CONCATENATION": ("ConcatenationOptions", ("Axis", "FusedActivationFunction")),
    "RESHAPE": ("ReshapeOptions", ("NewShape",)),
    "SOFTMAX": ("SoftmaxOptions", ("Beta",)),
    "SQUEEZE": ("SqueezeOptions", ("SqueezeDims",)),
    "STRIDED_SLICE": ("StridedSliceOptions", ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask",
                                              "ShrinkAxisMask", "Offset")),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", ("AlignCorners", "HalfPixelCenters")),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", ("AlignCorners", "HalfPixelCenters")),
    "LEAKY_RELU": ("LeakyReluOptions", ("Alpha",)),
    "GELU": ("GeluOptions", ("Approximate",)),
    "MEAN": ("ReducerOptions", ("KeepDims",)),
    "SUM": ("ReducerOptions", ("KeepDims",)),
    "REDUCE_MAX": ("ReducerOptions", ("KeepDims",)),
    "REDUCE_MIN": ("ReducerOptions", ("KeepDims",)),
    "SPLIT": ("SplitOptions", ("NumSplits",)),
    "SPLIT_V": ("SplitVOptions", ("NumSplits",)),
    "GATHER": ("GatherOptions", ("Axis", "BatchDims")),
    "BATCH_MATMUL": ("BatchMatMulOptions", ("AdjX", "AdjY")),
    "MIRROR_PAD": ("MirrorPadOptions", ("Mode",)),
}
# Ops whose geometry lives only in their options: a file without them is damaged.
_NEEDS_OPTIONS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                  "CONCATENATION", "SPLIT", "STRIDED_SLICE"}
_CONTROL_FLOW = {"IF", "WHILE", "CALL", "CALL_ONCE"}


# ---- phase 1: flatbuffer -> plain records ------------------------------------------------------

@dataclass
class _TfTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None
    data: np.ndarray | None


@dataclass
class _TfOp:
    index: int
    op: str  # builtin name (CONV_2D) or "CUSTOM:<code>"
    inputs: list[int]
    outputs: list[int]
    options: dict | None  # None when the file stores no options table for the op


@dataclass
class _TfModel:
    tensors: list[_TfTensor]
    ops: list[_TfOp]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int
    version: int
    description: str


class _Corrupt(Exception):
    """Raised inside decoding for a structural inconsistency; turned into ModelFormatError."""


class _NotSupported(Exception):
    """A well-formed feature TinyStudio does not read (string tensors, sparse storage)."""


def _bounded(n: int, elem_bytes: int, data: bytes, what: str) -> int:
    # A vector cannot hold more elements than the file has bytes for; this bounds every loop below.
    if n < 0 or n * elem_bytes > len(data):
        raise _Corrupt(f"{what} claims {n} entries, more than the file can hold")
    return n


def _table(obj, data: bytes, what: str):
    """Check that a table and its vtable lie inside the file (what flatbuffers' C++ verifier checks)."""
    if obj is None:
        return None
    tab = obj if isinstance(obj, flatbuffers.table.Table) else obj._tab
    pos = tab.Pos
    if not 0 <= pos <= len(data) - 4:
        raise _Corrupt(f"{what} lies outside the file")
    vt = pos - struct.unpack_from("<i", data, pos)[0]
    if not 0 <= vt <= len(data) - 4:
        raise _Corrupt(f"{what} has its field table outside the file")
    vsize, tsize = struct.unpack_from("<HH", data, vt)
    if vsize < 4 or vt + vsize > len(data) or pos + tsize > len(data):
        raise _Corrupt(f"{what} runs past the end of the file")
    return obj


def _ints(arr) -> list[int]:
    return [] if isinstance(arr, int) else [int(v) for v in arr]


def _text(raw) -> str:
    return raw.decode("utf-8", errors="replace") if raw else ""


def _decode(path: str, data: bytes) -> _TfModel:
    where = "the model header"
    try:
        model = _table(tflite.Model.GetRootAs(data, 0), data, "the model table")
        version = int(model.Version())
        n_sub = _bounded(model.SubgraphsLength(), 4, data, "the subgraph list")
        if n_sub == 0:
            raise _Corrupt("the model has no subgraph")
        where = "the operator codes"
        codes = []
        for i in range(_bounded(model.OperatorCodesLength(), 4, data, "the operator code list")):
            oc = _table(model.OperatorCodes(i), data, f"operator code {i}")
            code = int(oc.BuiltinCode())
            if code == tflite.BuiltinOperator.CUSTOM:
                codes.append("CUSTOM:" + (_text(oc.CustomCode()) or "?"))
            else:
                codes.append(BUILTIN_OPCODE2NAME.get(code, f"BUILTIN_{code}"))
        where = "the buffer list"
        n_buf = _bounded(model.BuffersLength(), 4, data, "the buffer list")
        for i in range(n_buf):
            _table(model.Buffers(i), data, f"buffer {i}")
        for i in range(_bounded(model.MetadataLength(), 4, data, "the metadata list")):
            _table(model.Metadata(i), data, f"metadata entry {i}")
        sg = _table(model.Subgraphs(0), data, "subgraph 0")
        where = "the subgraph's tensors"
        tensors = [_decode_tensor(model, _table(sg.Tensors(j), data, f"tensor {j}"), j, n_buf, data)
                   for j in range(_bounded(sg.TensorsLength(), 4, data, "the tensor list"))]
        ops = []
        for i in range(_bounded(sg.OperatorsLength(), 4, data, "the operator list")):
            where = f"operator {i}"
            op = _table(sg.Operators(i), data, f"operator {i}")
            ci = int(op.OpcodeIndex())
            if ci >= len(codes):
                raise _Corrupt(f"operator {i} uses operator code {ci}, but the file lists {len(codes)}")
            _bounded(op.InputsLength(), 4, data, f"operator {i}'s inputs")
            _bounded(op.OutputsLength(), 4, data, f"operator {i}'s outputs")
            ins, outs = _ints(op.InputsAsNumpy()), _ints(op.OutputsAsNumpy())
            for t in ins + outs:
                if t < -1 or t >= len(tensors):
                    raise _Corrupt(f"operator {i} refers to tensor {t}, but the subgraph has {len(tensors)}")
            ops.append(_TfOp(i, codes[ci], ins, outs, _decode_options(op, codes[ci], data)))
        where = "the subgraph's inputs and outputs"
        _bounded(sg.InputsLength(), 4, data, "the input list")
        _bounded(sg.OutputsLength(), 4, data, "the output list")
        g_in, g_out = _ints(sg.InputsAsNumpy()), _ints(sg.OutputsAsNumpy())
        for t in g_in + g_out:
            if not 0 <= t < len(tensors):
                raise _Corrupt(f"the graph inputs/outputs refer to tensor {t}, but the subgraph has {len(tensors)}")
        description = _text(model.Description())
    except _NotSupported as e:
        raise ModelFormatError(path, str(e)) from None
    except _Corrupt as e:
        raise ModelFormatError(path, f"the file is truncated or corrupted: {e}") from None
    except (IndexError, struct.error, ValueError, TypeError, OverflowError, UnicodeDecodeError,
            RecursionError, MemoryError):
        # The generated readers follow offsets blindly; any failure means bytes are missing or damaged.
        raise ModelFormatError(path, f"the file is truncated or corrupted (could not read {where})") from None
    return _TfModel(tensors, ops, g_in, g_out, n_sub, version, description)


def _decode_tensor(model, t, j: int, n_buf: int, data: bytes) -> _TfTensor:
    name = _text(t.Name())
    shape = tuple(_ints(t.ShapeAsNumpy())) if _bounded(t.ShapeLength(), 4, data, f"tensor {j}'s shape") else ()
    label = f"tensor {j} ('{name}')"
    if any(d < 0 for d in shape):
        raise _Corrupt(f"{label} has a negative dimension {list(shape)}")
    ttype = int(t.Type())
    if ttype not in _DTYPES:
        raise _NotSupported(f"{label} has type {_TYPE_NAMES.get(ttype, ttype)}, which TinyStudio does not support")
    dtype = _DTYPES[ttype]
    if t.Sparsity() is not None:
        raise _NotSupported(f"{label} is stored sparse, which TinyStudio does not support")
    size = math.prod(shape)
    quant = None
    q = _table(t.Quantization(), data, f"{label}'s quantization")
    if q is not None and dtype not in ("float32", "float16", "float64", "bool"):
        n_scale = _bounded(q.ScaleLength(), 4, data, f"{label}'s scales")
        if n_scale:
            _bounded(q.ZeroPointLength(), 8, data, f"{label}'s zero points")
            scale = np.array(q.ScaleAsNumpy(), dtype=np.float32)
            zp = np.array(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength() else np.zeros(1, np.int64)
            axis = None
            if n_scale > 1:
                axis = int(q.QuantizedDimension())
                if not 0 <= axis < len(shape) or shape[axis] != n_scale:
                    raise _Corrupt(f"{label} has {n_scale} scales for axis {axis}, which does not match shape "
                                   f"{list(shape)}")
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise _Corrupt(f"{label} has a quantization scale that is not a positive number")
            if zp.size not in (1, n_scale):
                raise _Corrupt(f"{label} has {n_scale} scales but {zp.size} zero points")
            quant = Quant(scale, zp, axis)
    arr = None
    b = int(t.Buffer())
    if b >= n_buf:
        raise _Corrupt(f"{label} uses buffer {b}, but the file has {n_buf}")
    if b > 0:
        buf = model.Buffers(b)
        raw = None
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # models over 2 GB keep buffers after the flatbuffer
            start, n = int(buf.Offset()), int(buf.Size())
            if start + n > len(data):
                raise _Corrupt(f"{label}'s data lies beyond the end of the file")
            raw = bytes(data[start:start + n])
        if raw is not None:
            arr = _tensor_data(raw, shape, dtype, size, label)
    return _TfTensor(j, name, shape, dtype, quant, arr)


def _tensor_data(raw: bytes, shape, dtype: str, size: int, label: str) -> np.ndarray:
    if dtype == "int4":  # two values per byte, low nibble first
        if len(raw) != (size + 1) // 2:
            raise _Corrupt(f"{label} holds {len(raw)} bytes, but {size} int4 values need {(size + 1) // 2}")
        b = np.frombuffer(raw, np.uint8)
        lo = (b << 4).astype(np.int8) >> 4
        hi = b.astype(np.int8) >> 4
        return np.stack([lo, hi], axis=1).reshape(-1)[:size].reshape(shape).copy()
    dt = DTYPES[dtype].newbyteorder("<")
    if len(raw) != size * dt.itemsize:
        raise _Corrupt(f"{label} holds {len(raw)} bytes, but shape {list(shape)} of {dtype} needs "
                       f"{size * dt.itemsize}")
    return np.frombuffer(raw, dt).astype(DTYPES[dtype]).reshape(shape)


def _decode_options(op, name: str, data: bytes) -> dict | None:
    spec = _OPTIONS.get(name)
    if spec is None:
        return {}
    cls_name, fields = spec
    kind = int(op.BuiltinOptionsType())
    if kind == 0:
        return None
    expected = getattr(tflite.BuiltinOptions, cls_name)
    if kind != expected:
        raise _Corrupt(f"operator {op.OpcodeIndex()} ({name}) stores options of type {kind}, expected {cls_name}")
    table = _table(op.BuiltinOptions(), data, f"{name}'s options")
    if table is None:
        return None
    opts = getattr(tflite, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for f in fields:
        if hasattr(opts, f + "AsNumpy"):
            _bounded(getattr(opts, f + "Length")(), 4, data, f"{name}'s {f}")
            out[f] = _ints(getattr(opts, f + "AsNumpy")())
        else:
            out[f] = getattr(opts, f)()
    return out


# ---- phase 2: records -> IR --------------------------------------------------------------------

class _Builder:
    def __init__(self, path: str, m: _TfModel):
        self.path, self.m = path, m
        name = os.path.splitext(os.path.basename(path))[0] or "tflite_model"
        self.g = Graph(name)
        self.cache: dict[object, str] = {}  # (tensor index, variant) -> IR tensor name
        self.op: _TfOp | None = None  # the op being mapped, for error messages
        self.ignored_activation = ""  # a fused activation TFLite's kernels do not apply (noted in meta)

    # -- names and tensors
    def node_name(self) -> str:
        return f"{self.op.op}_{self.op.index}"

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.tensors:
            name, i = f"{base}_{i}", i + 1
        return name

    def tensor(self, idx: int) -> str:
        """IR name of file tensor `idx` (added on first use); "" for an absent optional input."""
        if idx < 0:
            return ""
        if idx not in self.cache:
            t = self.m.tensors[idx]
            name = self.fresh(t.name or f"tensor_{idx}")
            self.g.tensors[name] = Tensor(name, t.shape, t.dtype, t.quant, t.data, {"tflite_index": idx})
            self.cache[idx] = name
        return self.cache[idx]

    def rec(self, idx: int) -> _TfTensor:
        return self.m.tensors[idx]

    def new_tensor(self, base: str, shape, like: _TfTensor) -> str:
        """An intermediate the IR needs but the file does not have (e.g. FC's 2-D input); same dtype/quant."""
        name = self.fresh(base)
        self.g.tensors[name] = Tensor(name, tuple(shape), like.dtype, like.quant)
        return name

    def error(self, message: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"node '{self.node_name()}' ({self.op.op}): {message}")

    def input(self, i: int, what: str) -> int:
        if i >= len(self.op.inputs) or self.op.inputs[i] < 0:
            raise self.error(f"the {what} input is missing")
        return self.op.inputs[i]

    def const(self, i: int, what: str) -> np.ndarray:
        t = self.rec(self.input(i, what))
        if t.data is None:
            raise self.error(f"the {what} input '{t.name}' must be a constant (computed {what}s are not supported)")
        return t.data

    def const_ints(self, i: int, what: str) -> list[int]:
        return [int(v) for v in np.asarray(self.const(i, what)).reshape(-1)]

    def opt(self, key: str, default=None):
        o = self.op.options
        if o is None:
            if self.op.op in _NEEDS_OPTIONS:
                raise self.error("the operator has no options table (the file is damaged)")
            return default
        return o.get(key, default)

    def activation(self) -> str:
        code = int(self.opt("FusedActivationFunction", 0))
        if code not in _ACTIVATIONS:
            raise self.error(f"fused activation {code} (SIGN_BIT or unknown) is not supported")
        if code == 4:
            self.ignored_activation = "TANH"
        return _ACTIVATIONS[code]

    # -- nodes
    def add(self, op: str, inputs: list[str], outputs: list[str], suffix: str = "", **attrs) -> Node:
        name = self.node_name() + suffix
        meta = {"tflite_op": self.op.op, "tflite_index": self.op.index}
        if self.ignored_activation:
            meta["tflite_ignored_activation"] = self.ignored_activation
        node = Node(op, name, list(inputs), list(outputs), {k: v for k, v in attrs.items() if v is not None}, meta)
        self.g.nodes.append(node)
        return node

    def out(self, i: int = 0) -> str:
        if i >= len(self.op.outputs) or self.op.outputs[i] < 0:
            raise self.error(f"output {i} is missing")
        return self.tensor(self.op.outputs[i])

    def single(self, ir_op: str, n_inputs: int = 1, **attrs) -> None:
        """The common case: the op's first `n_inputs` inputs map one to one."""
        ins = [self.tensor(self.input(i, f"#{i}")) for i in range(n_inputs)]
        self.add(ir_op, ins, [self.out()], **attrs)

    def with_activation(self, ir_op: str, ins: list[str], **attrs) -> None:
        """An IR op without an `activation` attribute: a fused activation becomes its own node."""
        act = self.activation()
        out = self.out()
        if act == "none":
            self.add(ir_op, ins, [out], **attrs)
            return
        mid = self.new_tensor(out + "_pre_act", self.rec(self.op.outputs[0]).shape, self.rec(self.op.outputs[0]))
        self.add(ir_op, ins, [mid], **attrs)
        unary = {"relu": ("Relu", {}), "relu6": ("Relu6", {}), "relu_n1_to_1": ("Clip", {"min": -1.0, "max": 1.0})}[act]
        self.add(unary[0], [mid], [out], suffix="_act", **unary[1])


# ---- op handlers (TFLite op -> IR nodes) -------------------------------------------------------

def _strides_pads(b: _Builder) -> dict:
    pad = int(b.opt("Padding", 0))
    if pad not in _PADDING:
        raise b.error(f"unknown padding {pad}")
    return {"strides": [int(b.opt("StrideH")), int(b.opt("StrideW"))], "auto_pad": _PADDING[pad]}


def _dilations(b: _Builder) -> list[int]:
    return [int(b.opt("DilationHFactor", 1)), int(b.opt("DilationWFactor", 1))]


def _conv(b: _Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "filter"))
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[-1] == 0:
        raise b.error(f"expects a 4-D input and filter, got {list(x.shape)} and {list(w.shape)}")
    ins = [b.tensor(x.index), b.tensor(w.index)]
    if len(b.op.inputs) > 2 and b.op.inputs[2] >= 0:
        ins.append(b.tensor(b.op.inputs[2]))
    # Filters with fewer channels than the input make a grouped conv (TFLite >= 2.9).
    b.add("Conv", ins, [b.out()], layout="NHWC", group=max(1, x.shape[-1] // w.shape[-1]),
          dilations=_dilations(b), activation=b.activation(), **_strides_pads(b))


def _depthwise(b: _Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "filter"))
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[0] != 1:
        raise b.error(f"expects a 4-D input and a (1, kH, kW, C*mult) filter, got {list(x.shape)} and "
                      f"{list(w.shape)}")
    if w.data is None:
        raise b.error(f"the filter '{w.name}' must be a constant")
    c = x.shape[-1]
    if c == 0 or w.shape[-1] % c:
        raise b.error(f"filter {list(w.shape)} does not hold a whole multiple of the {c} input channels")
    # (1, kH, kW, C*mult) -> (C*mult, kH, kW, 1): group = C, output channel c*mult+m reads input channel c.
    perm = (3, 1, 2, 0)
    quant = w.quant
    if quant is not None and quant.axis is not None:
        quant = Quant(quant.scale, quant.zero_point, perm.index(quant.axis))
    key = (w.index, "depthwise")
    if key not in b.cache:
        name = b.fresh(w.name or f"tensor_{w.index}")
        data = np.ascontiguousarray(np.transpose(w.data, perm))
        b.g.tensors[name] = Tensor(name, data.shape, w.dtype, quant, data,
                                   {"tflite_index": w.index, "tflite_layout": "transposed from (1, kH, kW, C*mult)"})
        b.cache[key] = name
    ins = [b.tensor(x.index), b.cache[key]]
    if len(b.op.inputs) > 2 and b.op.inputs[2] >= 0:
        ins.append(b.tensor(b.op.inputs[2]))
    b.add("Conv", ins, [b.out()], layout="NHWC", group=c, dilations=_dilations(b), activation=b.activation(),
          **_strides_pads(b))


def _transpose_conv(b: _Builder) -> None:
    oshape = b.const_ints(0, "output shape")
    w, x = b.rec(b.input(1, "filter")), b.rec(b.input(2, "input"))
    if len(oshape) != 4:
        raise b.error(f"output shape {oshape} must have 4 values (N, H, W, C)")
    ins = [b.tensor(x.index), b.tensor(w.index)]
    if len(b.op.inputs) > 3 and b.op.inputs[3] >= 0:
        ins.append(b.tensor(b.op.inputs[3]))
    b.add("ConvTranspose", ins, [b.out()], layout="NHWC", output_shape=oshape[1:3], activation=b.activation(),
          **_strides_pads(b))


def _pool(ir_op: str) -> Callable[[_Builder], None]:
    def handler(b: _Builder) -> None:
        b.add(ir_op, [b.tensor(b.input(0, "input"))], [b.out()], layout="NHWC",
              kernel_shape=[int(b.opt("FilterHeight")), int(b.opt("FilterWidth"))],
              activation=b.activation(), **_strides_pads(b))
    return handler


def _fully_connected(b: _Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "weights"))
    if int(b.opt("WeightsFormat", 0)) != 0:
        raise b.error("shuffled weight formats are not supported")
    if len(w.shape) != 2 or w.shape[1] == 0:
        raise b.error(f"weights {list(w.shape)} must be 2-D (units, depth)")
    units, depth = w.shape
    size = math.prod(x.shape)
    if size % depth:
        raise b.error(f"input {list(x.shape)} does not divide into rows of {depth}")
    a = b.tensor(x.index)
    if len(x.shape) != 2 or x.shape[1] != depth:
        # TFLite flattens the input to (size / depth, depth); the IR's Gemm needs that 2-D view made explicit.
        a2 = b.new_tensor(a + "_2d", (size // depth, depth), x)
        b.add("Reshape", [a], [a2], suffix="_flatten", shape=[-1, depth])
        a = a2
    ins = [a, b.tensor(w.index)]
    if len(b.op.inputs) > 2 and b.op.inputs[2] >= 0:
        ins.append(b.tensor(b.op.inputs[2]))
    out = b.out()
    keep = bool(b.opt("KeepNumDims", False)) and len(x.shape) != 2
    if not keep:
        b.add("Gemm", ins, [out], transB=1, activation=b.activation())
        return
    y = b.rec(b.op.outputs[0])
    mid = b.new_tensor(out + "_2d", (size // depth, units), y)
    b.add("Gemm", ins, [mid], transB=1, activation=b.activation())
    b.add("Reshape", [mid], [out], suffix="_keep_dims", shape=[*x.shape[:-1], units])


def _binary(ir_op: str) -> Callable[[_Builder], None]:
    def handler(b: _Builder) -> None:
        ins = [b.tensor(b.input(0, "first")), b.tensor(b.input(1, "second"))]
        b.add(ir_op, ins, [b.out()], activation=b.activation())
    return handler


def _unary(ir_op: str, **attrs) -> Callable[[_Builder], None]:
    def handler(b: _Builder) -> None:
        b.single(ir_op, 1, **attrs)
    return handler


def _reshape(b: _Builder) -> None:
    if len(b.op.inputs) > 1 and b.op.inputs[1] >= 0 and b.rec(b.op.inputs[1]).data is not None:
        shape = b.const_ints(1, "shape")
    elif b.op.options and b.op.options.get("NewShape"):
        shape = list(b.op.options["NewShape"])
    else:  # a computed shape input: the declared output shape is the only static answer
        shape = list(b.rec(b.op.outputs[0]).shape)
    b.add("Reshape", [b.tensor(b.input(0, "input"))], [b.out()], shape=shape)


def _softmax(b: _Builder) -> None:
    b.single("Softmax", 1, axis=-1, beta=float(b.opt("Beta", 1.0)))


def _quantize(b: _Builder) -> None:
    y = b.rec(b.op.outputs[0]) if b.op.outputs else None
    if y is None or y.quant is None:
        raise b.error("the output has no quantization parameters")
    if y.dtype not in ("int8", "uint8", "int16", "int4"):
        raise b.error(f"quantizing to {y.dtype} is not supported")
    b.single("QuantizeLinear", 1, dtype=y.dtype)


def _dequantize(b: _Builder) -> None:
    x = b.rec(b.input(0, "input"))
    if x.dtype == "float16":  # float16 weights stored compactly: a cast, not a dequantization
        b.single("Cast", 1, to="float32")
    elif x.quant is None:
        raise b.error(f"input '{x.name}' has no quantization parameters")
    else:
        b.single("DequantizeLinear", 1)


def _concat(b: _Builder) -> None:
    ins = [b.tensor(i) for i in b.op.inputs if i >= 0]
    b.with_activation("Concat", ins, axis=int(b.opt("Axis")))


def _reduce(ir_op: str) -> Callable[[_Builder], None]:
    def handler(b: _Builder) -> None:
        axes = b.const_ints(1, "axes")
        b.add(ir_op, [b.tensor(b.input(0, "input"))], [b.out()], axes=axes,
              keepdims=int(bool(b.opt("KeepDims", False))))
    return handler


def _pad(b: _Builder) -> None:
    x = b.rec(b.input(0, "input"))
    p = np.asarray(b.const(1, "paddings")).reshape(-1)
    r = len(x.shape)
    if p.size != 2 * r:
        raise b.error(f"paddings hold {p.size} values, input {list(x.shape)} needs {2 * r}")
    pads = [int(v) for v in p[0::2]] + [int(v) for v in p[1::2]]  # (rank, 2) -> [begins..., ends...]
    value = 0.0
    if b.op.op == "PADV2" and len(b.op.inputs) > 2 and b.op.inputs[2] >= 0:
        v = b.rec(b.op.inputs[2])
        if v.data is None or v.data.size != 1:
            raise b.error("the constant value input must be a constant scalar")
        value = float((v.quant.dequantize(v.data) if v.quant is not None else v.data).reshape(-1)[0])
    b.add("Pad", [b.tensor(x.index)], [b.out()], pads=pads, value=value)


def _mirror_pad(b: _Builder) -> None:
    if int(b.opt("Mode", 0)) != 0:
        raise b.error("SYMMETRIC mirror padding is not supported (REFLECT is)")
    x = b.rec(b.input(0, "input"))
    p = np.asarray(b.const(1, "paddings")).reshape(-1)
    if p.size != 2 * len(x.shape):
        raise b.error(f"paddings hold {p.size} values, input {list(x.shape)} needs {2 * len(x.shape)}")
    b.add("Pad", [b.tensor(x.index)], [b.out()], pads=[int(v) for v in p[0::2]] + [int(v) for v in p[1::2]],
          mode="reflect")


def _transpose(b: _Builder) -> None:
    b.add("Transpose", [b.tensor(b.input(0, "input"))], [b.out()], perm=b.const_ints(1, "permutation"))


def _squeeze(b: _Builder) -> None:
    dims = b.opt("SqueezeDims", [])
    b.add("Squeeze", [b.tensor(b.input(0, "input"))], [b.out()], axes=list(dims) if dims else None)


def _expand_dims(b: _Builder) -> None:
    b.add("Unsqueeze", [b.tensor(b.input(0, "input"))], [b.out()], axes=b.const_ints(1, "axis")[:1])


def _strided_slice(b: _Builder) -> None:
    x = b.rec(b.input(0, "input"))
    begin, end = b.const_ints(1, "begin"), b.const_ints(2, "end")
    strides = b.const_ints(3, "strides") if len(b.op.inputs) > 3 else [1] * len(begin)
    if b.opt("EllipsisMask", 0) or b.opt("NewAxisMask", 0) or b.opt("Offset", False):
        raise b.error("ellipsis_mask, new_axis_mask and offset are not supported")
    r = len(x.shape)
    if not len(begin) == len(end) == len(strides) <= r:
        raise b.error(f"begin/end/strides ({len(begin)}, {len(end)}, {len(strides)} values) do not fit rank {r}")
    bm, em, sm = int(b.opt("BeginMask", 0)), int(b.opt("EndMask", 0)), int(b.opt("ShrinkAxisMask", 0))
    starts, ends, steps, shrink = [], [], [], []
    big = 2**31 - 1
    for i, (s, e, st) in enumerate(zip(begin, end, strides)):
        if st == 0:
            raise b.error("a stride of 0 is invalid")
        dim = x.shape[i]
        if sm >> i & 1:  # take the single element at `begin`
            s = s + dim if s < 0 else s
            starts.append(s), ends.append(s + 1), steps.append(1), shrink.append(i)
            continue
        if bm >> i & 1:
            s = 0 if st > 0 else big
        if em >> i & 1:
            e = big if st > 0 else -big
        starts.append(s), ends.append(e), steps.append(st)
    axes = list(range(len(starts)))
    if not shrink:
        b.add("Slice", [b.tensor(x.index)], [b.out()], starts=starts, ends=ends, axes=axes, steps=steps)
        return
    y = b.rec(b.op.outputs[0])
    sliced = tuple(len(range(*slice(s, e, st).indices(x.shape[i]))) for i, (s, e, st) in
                   enumerate(zip(starts, ends, steps))) + x.shape[len(starts):]
    mid = b.new_tensor(b.out() + "_unsqueezed", sliced, y)
    b.add("Slice", [b.tensor(x.index)], [mid], starts=starts, ends=ends, axes=axes, steps=steps)
    b.add("Squeeze", [mid], [b.out()], suffix="_shrink", axes=shrink)


def _slice(b: _Builder) -> None:
    x = b.rec(b.input(0, "input"))
    begin, size = b.const_ints(1, "begin"), b.const_ints(2, "size")
    if len(begin) != len(size) or len(begin) > len(x.shape):
        raise b.error(f"begin {begin} and size {size} do not fit input {list(x.shape)}")
    ends = [x.shape[i] if n == -1 else s + n for i, (s, n) in enumerate(zip(begin, size))]
    b.add("Slice", [b.tensor(x.index)], [b.out()], starts=begin, ends=ends, axes=list(range(len(begin))))


def _resize(mode: str) -> Callable[[_Builder], None]:
    def handler(b: _Builder) -> None:
        sizes = b.const_ints(1, "size")
        align, half = bool(b.opt("AlignCorners", False)), bool(b.opt("HalfPixelCenters", False))
        if align and half:
            raise b.error("align_corners together with half_pixel_centers is not supported")
        # TFLite's source coordinate rules expressed in ONNX terms (reference kernels, resize_*.h).
        ctm = "align_corners" if align else ("half_pixel" if half else "asymmetric")
        attrs = {"coordinate_transformation_mode": ctm}
        if mode == "nearest":
            attrs["nearest_mode"] = "floor" if ctm == "asymmetric" else "round_prefer_ceil"
        b.add("Resize", [b.tensor(b.input(0, "input"))], [b.out()], layout="NHWC", sizes=sizes, mode=mode,
              **attrs)
    return handler


def _split(b: _Builder) -> None:
    axis = b.const_ints(0, "axis")[0]
    x = b.rec(b.input(1, "input"))
    n = len(b.op.outputs)
    r = len(x.shape)
    if not -r <= axis < r or n < 1 or x.shape[axis % r] % n:
        raise b.error(f"cannot split {list(x.shape)} into {n} equal parts along axis {axis}")
    b.add("Split", [b.tensor(x.index)], [b.out(i) for i in range(n)], axis=axis,
          split=[x.shape[axis % r] // n] * n)


def _split_v(b: _Builder) -> None:
    x = b.rec(b.input(0, "input"))
    sizes, axis = b.const_ints(1, "size_splits"), b.const_ints(2, "axis")[0]
    r = len(x.shape)
    if not -r <= axis < r:
        raise b.error(f"axis {axis} out of range for {list(x.shape)}")
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[axis % r] - (sum(sizes) + 1)
    b.add("Split", [b.tensor(x.index)], [b.out(i) for i in range(len(b.op.outputs))], axis=axis, split=sizes)


def _gather(b: _Builder) -> None:
    if int(b.opt("BatchDims", 0)):
        raise b.error("batch_dims is not supported")
    b.single("Gather", 2, axis=int(b.opt("Axis", 0)))


def _batch_matmul(b: _Builder) -> None:
    if b.opt("AdjX", False) or b.opt("AdjY", False):
        raise b.error("adjoint operands (adj_x / adj_y) are not supported")
    b.single("MatMul", 2)


def _cast(b: _Builder) -> None:
    to = b.rec(b.op.outputs[0]).dtype if b.op.outputs else "?"
    if to not in ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"):
        raise b.error(f"casting to {to} is not supported")
    b.single("Cast", 1, to=to)


_HANDLERS: dict[str, Callable[[_Builder], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool("AveragePool"), "MAX_POOL_2D": _pool("MaxPool"),
    "ADD": _binary("Add"), "SUB": _binary("Sub"), "MUL": _binary("Mul"), "DIV": _binary("Div"),
    "MAXIMUM": lambda b: b.single("Max", 2), "MINIMUM": lambda b: b.single("Min", 2),
    "RESHAPE": _reshape, "SOFTMAX": _softmax, "LOG_SOFTMAX": _unary("LogSoftmax", axis=-1),
    "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "RELU": _unary("Relu"), "RELU6": _unary("Relu6"), "RELU_N1_TO_1": _unary("Clip", min=-1.0, max=1.0),
    "RELU_0_TO_1": _unary("Clip", min=0.0, max=1.0), "LOGISTIC": _unary("Sigmoid"), "TANH": _unary("Tanh"),
    "HARD_SWISH": _unary("HardSwish"),
    "LEAKY_RELU": lambda b: b.single("LeakyRelu", 1, alpha=float(b.opt("Alpha", 0.2))),
    "PRELU": lambda b: b.single("PRelu", 2),
    "GELU": lambda b: b.single("Gelu", 1, approximate="tanh" if b.opt("Approximate", False) else "none"),
    "EXP": _unary("Exp"), "LOG": _unary("Log"), "SQRT": _unary("Sqrt"), "ABS": _unary("Abs"),
    "NEG": _unary("Neg"), "FLOOR": _unary("Floor"), "CEIL": _unary("Ceil"),
    "CONCATENATION": _concat, "MEAN": _reduce("ReduceMean"), "SUM": _reduce("ReduceSum"),
    "REDUCE_MAX": _reduce("ReduceMax"), "REDUCE_MIN": _reduce("ReduceMin"),
    "PAD": _pad, "PADV2": _pad, "MIRROR_PAD": _mirror_pad, "TRANSPOSE": _transpose,
    "STRIDED_SLICE": _strided_slice, "SLICE": _slice, "SQUEEZE": _squeeze, "EXPAND_DIMS": _expand_dims,
    "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"), "RESIZE_BILINEAR": _resize("linear"),
    "SPLIT": _split, "SPLIT_V": _split_v, "GATHER": _gather, "BATCH_MATMUL": _batch_matmul, "CAST": _cast,
}
SUPPORTED_OPS: list[str] = sorted(_HANDLERS)


def _build(path: str, m: _TfModel) -> Graph:
    b = _Builder(path, m)
    for op in m.ops:
        b.op, b.ignored_activation = op, ""
        if op.op in _CONTROL_FLOW:
            raise ModelFormatError(path, f"node '{b.node_name()}' uses control flow ({op.op}) across the model's "
                                         f"{m.subgraphs} subgraphs; TinyStudio imports single-graph models only")
        handler = _HANDLERS.get(op.op)
        if handler is None:
            raise UnsupportedOpError(path, op.op, b.node_name(), SUPPORTED_OPS)
        if not op.outputs:
            raise b.error("the operator has no outputs")
        handler(b)
    b.op = None
    b.g.inputs = [b.tensor(i) for i in m.inputs]
    b.g.outputs = [b.tensor(i) for i in m.outputs]
    for name in b.g.inputs:
        if b.g.tensors[name].data is not None:
            raise ModelFormatError(path, f"graph input '{name}' is a constant")
    b.g.meta["source"] = {"format": "tflite", "path": path}
    b.g.meta["tflite"] = {"schema_version": m.version, "description": m.description, "subgraphs": m.subgraphs}
    return b.g


def load_tflite(path: str, data: bytes | None = None) -> Graph:
    """Import the first subgraph of a TFLite model into the IR (NHWC, file dtypes and quantization)."""
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ModelFormatError(path, "no such file") from None
        except OSError as e:
            raise ModelFormatError(path, f"cannot read file ({e.strerror or e})") from None
    data = bytes(data)
    if not data:
        raise ModelFormatError(path, "file is empty (0 bytes)")
    if not sniff_tflite(data):
        found = data[4:8] if len(data) >= 8 else data
        raise ModelFormatError(path, f"not a TFLite model: bytes 4..8 should be {MAGIC!r}, found {found!r}")
    graph = _build(path, _decode(path, data))
    try:
        return infer_shapes(graph, check_declared=True)
    except GraphError as e:
        raise ModelFormatError(path, f"the model contradicts itself: {e}") from None
