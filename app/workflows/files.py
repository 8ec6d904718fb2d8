"""Model and array files: writing a model (commands and the pages' background jobs), reading .npy/.npz arrays."""
from __future__ import annotations

import os

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import Graph


def write_model(graph: Graph, out: str) -> None:
    """Write .onnx or .tsgraph via a temporary file, so a failed write leaves nothing behind; an .onnx with
    int4 weights is written with opset 21 (older opsets have no INT4)."""
    from engine.exporters.onnx_export import save_onnx
    from engine.serialize import save

    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        if out.lower().endswith(".onnx"):
            int4 = any(t.dtype == "int4" for t in graph.tensors.values())
            save_onnx(graph, tmp, **({"opset": 21} if int4 else {}))
        else:
            save(graph, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
