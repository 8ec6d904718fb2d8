"""TFLite flatbuffer -> Graph, kept in NHWC with the file's dtypes and quantization.

    graph = load_tflite("kws_ref_model.tflite")            # reads the file
    graph = load_tflite("upload.tflite", data=raw_bytes)   # the path only names the file in errors

Two phases, so that a damaged file can only fail in one place:
1. `decode` (tflite_reader.py) reads the flatbuffer (the `tflite` package's generated readers) into plain
   records. Every vector length is checked against the file size before it is walked, so loops are bounded
   by the file and a truncated or corrupted file gives a ModelFormatError, never a traceback or a hang.
2. `Builder` (tflite_builder.py) maps the records of the first subgraph into IR nodes, one small handler per
   TFLite op (tflite_ops.py). Shape-defining constant inputs (RESHAPE's shape, PAD's paddings, MEAN's
   axes, ...) become attributes.
Finally `infer_shapes(check_declared=True)` recomputes every shape, so a file whose declared tensor
shapes contradict its ops is refused.
"""
from __future__ import annotations

from engine.errors import GraphError, ModelFormatError, UnsupportedOpError
from engine.importers.formats import read_model_bytes
from engine.importers.tflite_builder import Builder
from engine.importers.tflite_ops import HANDLERS, SUPPORTED_OPS
from engine.importers.tflite_reader import TfModel, decode
from engine.ir import Graph
from engine.validate import infer_shapes

MAGIC = b"TFL3"  # flatbuffer file identifier, bytes 4..8
_CONTROL_FLOW = {"IF", "WHILE", "CALL", "CALL_ONCE"}


def sniff_tflite(data: bytes) -> bool:
    return len(data) >= 8 and bytes(data[4:8]) == MAGIC


def _build(path: str, m: TfModel) -> Graph:
    b = Builder(path, m)
    for op in m.ops:
        b.op, b.ignored_activation = op, ""
        if op.op in _CONTROL_FLOW:
            raise ModelFormatError(path, f"node '{b.node_name()}' uses control flow ({op.op}) across the model's "
                                         f"{m.subgraphs} subgraphs; TinyStudio imports single-graph models only")
        handler = HANDLERS.get(op.op)
        if handler is None:
            raise UnsupportedOpError(path, op.op, b.node_name(), SUPPORTED_OPS)
        if not op.outputs:
            raise b.error("the operator has no outputs")
        handler(b)
    b.op = None
    shape_only = set(b.g.meta.pop("shape_only_inputs", []))
    b.g.inputs = [b.tensor(i) for i in m.inputs if b.tensor(i) not in shape_only]
    for name in shape_only - {n for node in b.g.nodes for n in node.inputs}:
        b.g.tensors.pop(name, None)
    b.g.outputs = [b.tensor(i) for i in m.outputs]
    for name in b.g.inputs:
        if b.g.tensors[name].data is not None:
            raise ModelFormatError(path, f"graph input '{name}' is a constant")
    b.g.meta["source"] = {"format": "tflite", "path": path}
    b.g.meta["tflite"] = {"schema_version": m.version, "description": m.description, "subgraphs": m.subgraphs}
    if shape_only:  # computed TRANSPOSE_CONV output shapes, fixed at import from the declared shapes
        b.g.meta["tflite"]["shape_only_inputs"] = sorted(shape_only)
    return b.g


def load_tflite(path: str, data: bytes | None = None) -> Graph:
    """Import the first subgraph of a TFLite model into the IR (NHWC, file dtypes and quantization)."""
    data = bytes(read_model_bytes(path) if data is None else data)
    if not data:
        raise ModelFormatError(path, "file is empty (0 bytes)")
    if not sniff_tflite(data):
        found = data[4:8] if len(data) >= 8 else data
        raise ModelFormatError(path, f"not a TFLite model: bytes 4..8 should be {MAGIC!r}, found {found!r}")
    graph = _build(path, decode(path, data))
    try:
        return infer_shapes(graph, check_declared=True)
    except GraphError as e:
        raise ModelFormatError(path, f"the model contradicts itself: {e}") from None
