"""Model view: the current version in Netron, served by the studio itself (offline)."""
from __future__ import annotations

import streamlit as st

from app.netron_view import netron_view
from app.state import require_current, session_caption
from engine.exporters.onnx_export import to_onnx


@st.cache_resource(max_entries=16)
def _onnx_bytes(version_id: int, _graph) -> bytes:
    # Keyed by the version alone: "_graph" is not hashed (hashing MobileNetV2's weights costs 0.1 s a visit).
    return to_onnx(_graph).SerializeToString()


st.title("Model view")
s, v, graph = require_current()
session_caption(s, v)
try:
    data = _onnx_bytes(v.id, graph)
except Exception as e:  # the exporter refusing an exotic graph must not take the page down
    st.error(f"This version cannot be shown as ONNX: {e}")
    st.stop()
st.download_button("Download ONNX", data=data, file_name=f"version_{v.id}.onnx")
error = netron_view(data, f"version_{v.id}.onnx", height=760, key=f"netron_{v.id}")
if error:
    st.error(f"Netron could not open this version: {error}")
