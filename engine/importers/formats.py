"""Model file formats: one registry entry per format, and the one function that reads a model file.

    register(ModelFormat("onnx", "an ONNX", (".onnx",), magic=sniff, read=reader, weak_magic=True))
    FORMATS["tflite"].read(name, data, input_shapes, folder)     # -> Graph
    sniff_format(data, "model.bin")                              # -> "tflite" | "pt2" | "onnx" | None

As Netron's `register(reader, extensions, magic)`: adding a format is one `register` call at the end of this
module (a magic test, the extensions, a reader), and load_model_bytes, the messages and the list of
extensions follow. Magic tests run in registration order, conclusive ones before weak ones; the importers
themselves are imported only when a file of their format arrives (onnx, tflite and torch are heavy).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from engine.errors import ModelFormatError, TinyStudioError
from engine.ir import Graph

MAX_MODEL_BYTES = 256 * 1024 * 1024  # larger files are refused before they are read


@dataclass(frozen=True)
class ModelFormat:
    name: str                       # "onnx"
    title: str                      # "an ONNX": how messages name a file of this format
    extensions: tuple[str, ...]     # (".onnx",)
    magic: Callable[[bytes], bool]  # True when the bytes start like a file of this format
    # read(name, data, input_shapes, folder) -> Graph; `folder`: where external data may be read from, or None
    read: Callable[..., Graph]
    weak_magic: bool = False        # the magic alone is not conclusive: it counts only with no or a matching extension


FORMATS: dict[str, ModelFormat] = {}


def register(fmt: ModelFormat) -> ModelFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def format_of_extension(ext: str) -> ModelFormat | None:
    return next((f for f in FORMATS.values() if ext.lower() in f.extensions), None)


def extensions_text() -> str:
    """".onnx, .tflite and .pt2": what messages say TinyStudio reads."""
    exts = [e for f in FORMATS.values() for e in f.extensions]
    return ", ".join(exts[:-1]) + " and " + exts[-1] if len(exts) > 1 else "".join(exts)


def sniff_format(data: bytes, path: str = "") -> str | None:
    """Format from the bytes (authoritative) with the extension as a tie-breaker; None if unknown."""
    ext = os.path.splitext(path)[1].lower()
    for f in sorted(FORMATS.values(), key=lambda f: f.weak_magic):  # conclusive magic first, in registry order
        if f.weak_magic and ext and ext not in f.extensions:
            continue
        if f.magic(data):
            return f.name
    return None


def read_model_bytes(path: str, max_bytes: int = MAX_MODEL_BYTES, missing: str = "no such file") -> bytes:
    """The bytes of the model file at `path`; a missing, unreadable, folder or too large file is one
    ModelFormatError naming it. `missing` words the missing-file reason: the ONNX and .pt2 importers, read
    directly, have always said "cannot read the file: no such file" where load_model says "no such file"."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ModelFormatError(path, missing) from None
    except OSError as e:
        raise ModelFormatError(path, f"cannot read file ({e.strerror or e})") from None
    if os.path.isdir(path):
        raise ModelFormatError(path, "is a folder, not a model file")
    if size > max_bytes:
        raise ModelFormatError(path, f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)  # a file that grew since getsize still stops past the limit
    except OSError as e:
        raise ModelFormatError(path, f"cannot read file ({e.strerror or e})") from None


# ---- the formats ------------------------------------------------------------------------------------------
# Magic tests and readers import their importer on first use.

def _sniff_tflite(data: bytes) -> bool:
    from engine.importers.tflite_import import sniff_tflite
    return sniff_tflite(data)


def _read_tflite(name: str, data: bytes, input_shapes=None, folder: str | None = None) -> Graph:
    from engine.importers.tflite_import import load_tflite
    if input_shapes:
        raise TinyStudioError(f"{name}: TFLite models have fixed input shapes; --input-shape is not used")
    return load_tflite(name, data=data)


def _sniff_pt2(data: bytes) -> bool:
    from engine.importers.torch_import import sniff_pt2
    return sniff_pt2(data)


def _read_pt2(name: str, data: bytes, input_shapes=None, folder: str | None = None) -> Graph:
    from engine.importers.torch_import import load_pt2
    return load_pt2(name, data=data)


def _sniff_onnx(data: bytes) -> bool:
    from engine.importers.onnx_import import sniff_onnx
    return sniff_onnx(data)


def _read_onnx(name: str, data: bytes, input_shapes=None, folder: str | None = None) -> Graph:
    from engine.importers.onnx_import import load_onnx
    return load_onnx(name, data=data, input_shapes=input_shapes, folder=folder)


# A protobuf start is only a few bytes: ONNX is recognized by its magic only without a conflicting extension.
register(ModelFormat("onnx", "an ONNX", (".onnx",), _sniff_onnx, _read_onnx, weak_magic=True))
register(ModelFormat("tflite", "a TFLite", (".tflite",), _sniff_tflite, _read_tflite))
register(ModelFormat("pt2", "a PyTorch .pt2", (".pt2",), _sniff_pt2, _read_pt2))
