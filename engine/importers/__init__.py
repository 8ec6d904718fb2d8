"""Open any model a user names: `zoo:NAME?k=v`, or a file recognized by its magic bytes and extension.

    graph = load_model("model.onnx", input_shape=(1, 3, 224, 224))
    graph = load_model("zoo:mobilenetv2?width=0.35&resolution=144")

Each importer only converts (sniff, map into the IR, raise a format-specific error). This module picks
the importer from the format registry (engine.importers.formats: one entry per format) and enforces the
size limits; formats.read_model_bytes turns OS errors into one-line messages.
"""
from __future__ import annotations

import math
import os

from engine.errors import ModelFormatError
from engine.importers.formats import (FORMATS, MAX_MODEL_BYTES, ModelFormat, extensions_text, format_of_extension,
                                      read_model_bytes, register, sniff_format)
from engine.ir import Graph

__all__ = ["FORMATS", "MAX_MODEL_BYTES", "MAX_UPLOAD_BYTES", "ModelFormat", "load_model", "load_model_bytes",
           "read_model_bytes", "register", "sniff_format"]

# Browser uploads. Streamlit counts its maxUploadSize in decimal megabytes, so the limit is 64 MB = 64e6 bytes.
MAX_UPLOAD_BYTES = 64 * 1000 * 1000
MAX_TENSOR_ELEMENTS = 1 << 48  # 8-byte elements of all tensors together still fit an int64 byte count


def load_model(model: str, input_shape: tuple[int, ...] | dict[str, tuple[int, ...]] | None = None,
               max_bytes: int = MAX_MODEL_BYTES) -> Graph:
    """Load a zoo model or a model file into the IR. `input_shape` fixes dynamic input dims."""
    if model.startswith("zoo:"):
        from engine.zoo import build_zoo_model

        return build_zoo_model(model)
    return load_model_bytes(read_model_bytes(model, max_bytes), model, input_shape,
                            folder=os.path.dirname(os.path.abspath(model)))


def load_model_bytes(data: bytes, name: str, input_shape=None, max_bytes: int = MAX_MODEL_BYTES,
                     folder: str | None = None) -> Graph:
    """Load a model from bytes (an upload); `name` gives the extension and names the file in messages.

    `name` is only a label: it never locates anything. Bytes have no folder unless the caller read them from
    one (`folder`, load_model does), so an upload that keeps weights in external files is refused instead of
    reading files next to the server.
    """
    if len(data) > max_bytes:
        raise ModelFormatError(name, f"file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    if not data:
        raise ModelFormatError(name, "file is empty (0 bytes)")
    fmt = sniff_format(data, name)
    ext = os.path.splitext(name)[1].lower()
    if fmt is None:
        expected = format_of_extension(ext)
        if expected:
            raise ModelFormatError(name, f"does not look like {expected.title} file (its first bytes do not "
                                         "match the format); the file may be corrupted or misnamed")
        raise ModelFormatError(name, f"unknown model format; TinyStudio reads {extensions_text()} files "
                                     "(or zoo:NAME, see `tinystudio zoo`)")
    named = format_of_extension(ext)
    if named is not None and named.name != fmt:
        raise ModelFormatError(name, f"has the extension {ext} but its contents are {FORMATS[fmt].title} model; "
                                     "rename it to match its contents")
    return _check_sizes(FORMATS[fmt].read(name, data, _input_shapes(input_shape), folder), name)


def _check_sizes(graph: Graph, name: str) -> Graph:
    """Refuse tensors whose byte counts would not fit the int64 arithmetic of the planner, profiler and store
    (a crafted dim of 2^40 next to others); sizes this large are far beyond any device anyway."""
    for t in graph.tensors.values():
        n = math.prod(t.shape)
        if n > MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(name, f"tensor '{t.name}' has shape {list(t.shape)} ({n:.3g} elements), over the "
                                         f"limit of {MAX_TENSOR_ELEMENTS:.3g} elements")
    return graph


def _input_shapes(input_shape) -> dict[str, tuple[int, ...]] | None:
    if input_shape is None or isinstance(input_shape, dict):
        return input_shape
    return {"*": tuple(input_shape)}  # the importer applies it to the only graph input
