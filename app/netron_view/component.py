"""`netron_view`: Netron inside a Streamlit page, served by the Streamlit server itself (a v1 custom component)."""
from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

from app.netron_view.assets import component_dir, component_name


_served: list[Path] = []  # the folder built by this process; built again if someone cleared the cache meanwhile


def _served_dir() -> Path:
    if not _served or not (_served[0] / "index.html").is_file():
        _served[:] = [component_dir()]
    return _served[0]


def netron_view(model_bytes: bytes, filename: str, height: int = 700, key=None) -> str | None:
    """Show a model file (ONNX, TFLite, ... as bytes) in Netron; returns Netron's error message, or None once shown.

    `filename` tells Netron the format by its extension (`lenet5.onnx`, `kws.tflite`). Every file the frame loads
    comes from this Streamlit server (under /component/...); nothing is fetched from other hosts.
    """
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)) or len(model_bytes) == 0:
        raise ValueError("netron_view: model_bytes must be the non-empty bytes of a model file")
    if not isinstance(filename, str) or not filename.strip():
        raise ValueError("netron_view: filename must name the model file, e.g. 'model.onnx'")
    if not isinstance(height, int) or height < 100:
        raise ValueError(f"netron_view: height must be an integer of at least 100 pixels, got {height!r}")
    folder = _served_dir()
    # Declared on every call: registration needs the running script's context and is a cheap dictionary update.
    component = components.declare_component(component_name(folder), path=str(folder))
    return component(model=bytes(model_bytes), filename=filename, height=height, key=key, default=None)
