"""Shared by the `tinystudio` commands: model arguments, input shapes, model JSON, --out checks, progress."""
from __future__ import annotations

import json
import os
import sys

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


def check_out(out: str) -> None:
    """--out of a command that writes a model: a .onnx or .tsgraph file in a folder that exists."""
    if not out.lower().endswith((".onnx", ".tsgraph")):
        raise TinyStudioError(f"--out {out}: write a .onnx or .tsgraph file")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise TinyStudioError(f"--out {out}: folder {folder} does not exist")


def model_for_data(args, data):
    """MODEL for `train` and `compress` with a data set: a zoo spec sized for the data set, a .tsgraph, or any
    importable model file."""
    from engine.train import adapt_zoo

    if args.model.strip().lower().startswith("zoo:"):
        return adapt_zoo(args.model, data, seed=args.seed)
    if args.model.lower().endswith(".tsgraph"):
        return load_tsgraph(args.model)
    return open_model(args)


def progress_log(quiet: bool):
    """Progress lines "[ 50%] message" on stderr, or None when quiet."""
    return None if quiet else (lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr))


def print_json(doc) -> int:
    """--json: the document on stdout (indented by one space); the command's exit status, 0."""
    print(json.dumps(doc, indent=1))
    return 0


def fmt_int(n: int) -> str:
    return f"{n:,}"
