"""The graph IR: a small, closed set of types that travels through the whole product.

    Graph(name, nodes, tensors, inputs, outputs, meta)
    Node(op, name, inputs, outputs, attrs, meta)
    Tensor(name, shape, dtype, quant, data, meta)

Conventions
- Shapes are concrete tuples of ints, batch included (an importer fixes symbolic dims).
- An empty string in `Node.inputs` is an absent optional input (the ONNX convention).
- Ops and attribute names follow ONNX. Spatial ops carry `layout`: "NCHW" (channels first, the ONNX
  convention, also for 1-D: NCW) or "NHWC" (channels last, as TFLite stores it). TFLite graphs keep NHWC
  so that their int8 numerics and reshapes stay exactly as in the file.
- Quantized tensors have an integer dtype plus `Quant` (real = scale * (q - zero_point)); per-channel
  when `axis` is set.
- `meta` holds annotations that do not change what the graph computes (source names, UI positions);
  they are not part of the content hash. Anything that changes results belongs in attrs, data or quant.

Graph transformations are functions over these types (see engine/passes, engine/validate), not methods.
"""
from __future__ import annotations

import math

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# IR dtype name -> numpy dtype. Names are numpy's so that arrays map back by `arr.dtype.name`.
DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "float64": np.dtype(np.float64),
    "int4": np.dtype(np.int8),  # stored one value per byte in the IR; packed only in exported code
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}
FLOAT_DTYPES = ("float32", "float16", "float64")
INT_DTYPES = ("int4", "int8", "uint8", "int16", "int32", "int64")

# Bytes per element as stored on a microcontroller (int4 packs two per byte).
DTYPE_BITS = {"float32": 32, "float16": 16, "float64": 64, "int4": 4, "int8": 8, "uint8": 8,
              "int16": 16, "int32": 32, "int64": 64, "bool": 8}
# No tensor a TinyStudio graph holds may need more bytes (1 TiB): larger ones come only from crafted
# files, and sums of a graph's sizes stay far inside int64 (numpy arrays in the planner).
MAX_TENSOR_BYTES = 1 << 40


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, else the first of `base_1`, `base_2`, ... not in `taken`; the name returned is added to `taken`."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def np_dtype(dtype: str) -> np.dtype:
    return DTYPES[dtype]


def dtype_of(arr: np.ndarray) -> str:
    name = np.asarray(arr).dtype.name
    if name == "bool":
        return "bool"
    if name not in DTYPES:
        raise ValueError(f"unsupported array dtype {name}")
    return name


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point). Per-tensor when `axis` is None."""

    scale: np.ndarray  # float32, shape (1,) or (C,)
    zero_point: np.ndarray  # int64, same shape as scale
    axis: int | None = None

    def __post_init__(self):
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.full(self.scale.shape, int(self.zero_point[0]), dtype=np.int64)
        if self.scale.shape != self.zero_point.shape:
            raise ValueError("quantization scale and zero_point must have the same length")
        if self.axis is None and self.scale.size != 1:
            raise ValueError("per-tensor quantization needs exactly one scale")

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def broadcast(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """scale and zero_point shaped to broadcast against a tensor of `shape`."""
        if self.axis is None:
            return self.scale.reshape(()), self.zero_point.reshape(())
        bshape = [1] * len(shape)
        bshape[self.axis] = -1
        return self.scale.reshape(bshape), self.zero_point.reshape(bshape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self.broadcast(q.shape)
        return (s.astype(np.float64) * (q.astype(np.int64) - z)).astype(np.float32)

    def quantize(self, x: np.ndarray, dtype: str) -> np.ndarray:
        s, z = self.broadcast(x.shape)
        info = np.iinfo(DTYPES[dtype]) if dtype != "int4" else _INT4
        q = np.rint(np.asarray(x, dtype=np.float64) / s) + z
        return np.clip(q, info.min, info.max).astype(DTYPES[dtype])

    def to_json(self) -> dict:
        return {"scale": [float(v) for v in self.scale], "zero_point": [int(v) for v in self.zero_point],
                "axis": self.axis}

    @staticmethod
    def from_json(d: dict) -> "Quant":
        return Quant(np.array(d["scale"], dtype=np.float32), np.array(d["zero_point"], dtype=np.int64),
                     d.get("axis"))

    def __eq__(self, other):
        return (isinstance(other, Quant) and self.axis == other.axis
                and np.array_equal(self.scale, other.scale) and np.array_equal(self.zero_point, other.zero_point))


class _Int4Info:
    min, max = -8, 7


_INT4 = _Int4Info()


def int_range(dtype: str) -> tuple[int, int]:
    """(min, max) of an integer dtype, int4 included: the range values are clamped to on its grid."""
    info = _INT4 if dtype == "int4" else np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


@dataclass
class Tensor:
    """A value in the graph: a graph input, an activation, or a constant (when `data` is set)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    quant: Quant | None = None
    data: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor '{self.name}': unknown dtype '{self.dtype}'")
        if self.data is not None:
            # order='C' rather than ascontiguousarray, which would turn a 0-d scalar into shape (1,).
            self.data = np.asarray(self.data, dtype=DTYPES[self.dtype], order="C")
            if tuple(self.data.shape) != self.shape:
                raise ValueError(f"tensor '{self.name}': data shape {self.data.shape} != shape {self.shape}")

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact (no int64 wrap-around) and ~10x faster than np.prod

    @property
    def nbytes(self) -> int:
        """Bytes on the target (int4 packed two per byte)."""
        return (self.size * DTYPE_BITS[self.dtype] + 7) // 8

    def float_data(self) -> np.ndarray:
        """Constant data as float32, dequantized when the tensor is quantized."""
        assert self.data is not None, f"tensor '{self.name}' has no data"
        if self.quant is not None and self.dtype in INT_DTYPES:
            return self.quant.dequantize(self.data)
        return self.data.astype(np.float32)


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> "Graph":
        """Deep copy; constant arrays are copied too so passes can never alias their input graph."""
        return copy.deepcopy(self)

    # Small read helpers; anything bigger is a function in another module.
    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def const(self, name: str) -> np.ndarray | None:
        t = self.tensors.get(name)
        return None if t is None else t.data

    def initializers(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.data is not None]


def is_variable(t: Tensor) -> bool:
    """A stateful op's state (a TFLite "variable" tensor): `data` is its initial value, the node writes it."""
    return bool(t.meta.get("variable"))


def variables(graph: Graph) -> list[Tensor]:
    """The graph's variable tensors (state carried between invocations), in tensor order."""
    return [t for t in graph.tensors.values() if is_variable(t)]
