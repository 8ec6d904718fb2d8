"""TFLite flatbuffer -> plain records (TfModel, TfTensor, TfOp), read defensively.

    m = decode("kws.tflite", data)    # m.tensors[i].shape, m.ops[k].op == "CONV_2D", m.ops[k].options

The `tflite` package's generated readers follow offsets blindly, so every vector length is checked against
the file size before it is walked and every table's position is checked before it is read: loops are
bounded by the file, and a truncated or corrupted file gives a ModelFormatError, never a traceback or a hang.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from engine.errors import ModelFormatError
from engine.ir import DTYPES, Quant

# TFLite TensorType -> IR dtype. Types the IR has no equivalent for (string, complex, resource,
# unsigned 16/32/64, bfloat16) are refused with the tensor's name.
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
           9: "int8", 10: "float64", 17: "int4"}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

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
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("UnidirectionalSequenceLSTMOptions", (
        "FusedActivationFunction", "CellClip", "ProjClip", "TimeMajor", "AsymmetricQuantizeInputs",
        "DiagonalRecurrentTensors")),
    "SVDF": ("SVDFOptions", ("Rank", "FusedActivationFunction")),
}


@dataclass
class TfTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None
    data: np.ndarray | None
    variable: bool = False  # is_variable: state a stateful op (SVDF, LSTM) keeps between invocations


@dataclass
class TfOp:
    index: int
    op: str  # builtin name (CONV_2D) or "CUSTOM:<code>"
    inputs: list[int]
    outputs: list[int]
    options: dict | None  # None when the file stores no options table for the op


@dataclass
class TfModel:
    tensors: list[TfTensor]
    ops: list[TfOp]
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


def decode(path: str, data: bytes) -> TfModel:
    """Records of the first subgraph of `data`; ModelFormatError (naming `path`) for a damaged or unsupported file."""
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
            ops.append(TfOp(i, codes[ci], ins, outs, _decode_options(op, codes[ci], data)))
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
    return TfModel(tensors, ops, g_in, g_out, n_sub, version, description)


def _decode_tensor(model, t, j: int, n_buf: int, data: bytes) -> TfTensor:
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
                if len(shape) == 1 and shape[0] == n_scale:
                    # Converters copy the weights' quantized_dimension onto the bias (3 for a depthwise
                    # filter, on a 1-D bias). tflite-micro never reads a bias's own scales (it derives
                    # them from input and filter), so a 1-D tensor with one scale per element is read
                    # along its only axis, as the interpreter effectively does.
                    axis = 0
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
    return TfTensor(j, name, shape, dtype, quant, arr, bool(t.IsVariable()))


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
