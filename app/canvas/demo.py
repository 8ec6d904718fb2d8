"""A stand-alone page for the canvas component (development and browser checks, no database):

    .venv/bin/streamlit run app/canvas/demo.py -- zoo:lenet5      (or a model file: .onnx, .tflite, .pt2)

Saving keeps the versions in the browser session and shows the new version's content hash.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `streamlit run` puts only this folder on the path

import streamlit as st  # noqa: E402

from app.canvas import graph_canvas, layer_table_editor  # noqa: E402
from app.canvas.graph_json import from_canvas, palette, to_canvas  # noqa: E402
from engine.errors import GraphError  # noqa: E402
from engine.serialize import content_hash  # noqa: E402
from engine.importers import load_model  # noqa: E402

st.set_page_config(page_title="TinyStudio canvas", layout="wide")
spec = sys.argv[1] if len(sys.argv) > 1 else "zoo:lenet5"
versions = st.session_state.setdefault("versions", [load_model(spec)])
errors = st.session_state.setdefault("save_errors", {})
graph = versions[-1]

st.caption(f"version {len(versions)} · {content_hash(graph)[:12]}")
canvas_tab, table_tab = st.tabs(["Canvas", "Layer table"])
with canvas_tab:
    act = graph_canvas(to_canvas(graph), palette(), errors, key=f"canvas_{len(versions)}", height=640, base=graph)
    if act is not None and act.kind == "discard":
        st.session_state["save_errors"] = {}
        st.rerun()
    if act is not None and act.kind == "save":
        try:
            versions.append(from_canvas(act.doc, graph))
            st.session_state["save_errors"] = {}
        except GraphError as e:
            st.session_state["save_errors"] = {e.node or "__graph__": str(e)}
        st.rerun()
    if errors:
        st.error(next(iter(errors.values())))
with table_tab:
    edited = layer_table_editor(graph, key=f"table_{len(versions)}")
    if edited is not None:
        versions.append(edited)
        st.rerun()
