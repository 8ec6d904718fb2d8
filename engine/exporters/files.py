"""Writing a model file (.onnx or .tsgraph) atomically: the CLI, the pages' background jobs and search trials."""
from __future__ import annotations

import os

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
