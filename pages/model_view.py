"""Model view: the file the session was created from (as uploaded: TFLite, ONNX, ...) or the version shown, in
Netron, served by the studio itself (offline)."""
from __future__ import annotations

import streamlit as st

from app.netron_view import netron_view
from app.widgets import safe_filename
from app.state import get_store, require_current, session_caption
from engine.exporters.onnx_export import to_onnx
from store import session_upload


@st.cache_resource(max_entries=16)
def _onnx_bytes(version_id: int, _graph) -> bytes:
    # Keyed by the version alone: "_graph" is not hashed (hashing MobileNetV2's weights costs 0.1 s a visit).
    return to_onnx(_graph).SerializeToString()


st.title("Model view")
s, v, graph = require_current()
session_caption(s, v)
upload = session_upload(get_store(), s.id)
choices = ["version"] + (["upload"] if upload else [])
names = {"version": f"This version ({v.label}, ONNX)", "upload": f"Uploaded file ({upload[0]})" if upload else ""}
pick = st.radio("Show", choices, format_func=names.get, horizontal=True, key="netron_source",
                help="The uploaded file is shown exactly as it was uploaded; the version is the studio's graph "
                     "written out as ONNX.") if upload else "version"
if pick == "upload":
    data, filename = upload[1], upload[0]
    st.download_button("Download the uploaded file", data=data, file_name=filename)
else:
    try:
        data = _onnx_bytes(v.id, graph)
    except Exception as e:  # the exporter refusing an exotic graph must not take the page down
        st.error(f"This version cannot be shown as ONNX: {e}")
        st.stop()
    filename = f"{safe_filename(s.name)}_{v.label}.onnx"
    st.download_button("Download ONNX", data=data, file_name=filename)
error = netron_view(data, filename, height=760, key=f"netron_{pick}_{v.id}")
if error:
    st.error(f"Netron could not open {'the uploaded file' if pick == 'upload' else 'this version'}: {error}")
