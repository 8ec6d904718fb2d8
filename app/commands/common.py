"""Shared by the `tinystudio` commands: model arguments, input shapes, model JSON, graph files."""
from __future__ import annotations

import os

import numpy as np

from engine.errors import TinyStudioError


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """'1,3,224,224' or 'input:1,3,224,224' -> (name or None, shape)."""
    name, _, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise TinyStudioError(f"--input-shape '{text}': expected comma-separated integers like 1,3,224,224") from None
    if not shape or min(shape) < 1:
        raise TinyStudioError(f"--input-shape '{text}': every dimension must be a positive integer")
    return (name or None), shape


def input_shapes(args) -> dict[str, tuple[int, ...]] | None:
    if not args.input_shape:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for text in args.input_shape:
        name, shape = parse_shape(text)
        key = name or "*"
        if key in shapes:
            raise TinyStudioError(f"--input-shape given twice for {'the input' if key == '*' else key!r}")
        shapes[key] = shape
    if "*" in shapes and len(shapes) > 1:
        raise TinyStudioError("--input-shape: name every input (NAME:1,3,224,224) when the model has several")
    return shapes


def open_model(args):
    from engine.importers import load_model

    return load_model(args.model, input_shape=input_shapes(args))


def model_json(graph) -> dict:
    from engine.serialize import content_hash

    src = graph.meta.get("source", {})
    return {"name": graph.name, "source": src.get("spec") or src.get("path") or "", "format": src.get("format", ""),
            "hash": content_hash(graph)}


def load_tsgraph(path: str):
    from engine.serialize import load

    if not os.path.isfile(path):
        raise TinyStudioError(f"{path}: no such file")
    return load(path)


def save_model(graph, out: str) -> None:
    """Write .onnx or .tsgraph via a temporary file, so a failed write leaves nothing behind."""
    from engine.exporters.onnx_export import save_onnx
    from engine.serialize import save

    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        (save_onnx if out.lower().endswith(".onnx") else save)(graph, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fmt_int(n: int) -> str:
    return f"{n:,}"


def load_array(path: str) -> dict[str, np.ndarray] | np.ndarray:
    if not os.path.isfile(path):
        raise TinyStudioError(f"{path}: no such input file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise TinyStudioError(f"{path}: not a readable .npy/.npz array file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data
