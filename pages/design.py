"""Design: the graph canvas and the layer table. Saving creates a new version of the session."""
from __future__ import annotations

import streamlit as st

import store as db
from app.canvas import graph_canvas, layer_table_editor
from app.canvas.graph_json import from_canvas, palette, to_canvas
from app.state import get_store, require_current, session_caption
from engine.errors import GraphError, TinyStudioError

st.title("Design")
s, v, graph = require_current()
session_caption(s, v)
errors_key = f"save_errors_{s.id}"
errors = st.session_state.setdefault(errors_key, {})


def save(new_graph, action: str, params: dict) -> None:
    db.add_version(get_store(), s.id, new_graph, action, params, parent_id=v.id)
    st.session_state[errors_key] = {}
    st.toast("Saved a new version", icon=":material/check:")
    st.rerun()


canvas_tab, table_tab = st.tabs(["Canvas", "Layer table"])
with canvas_tab:
    shown = to_canvas(graph)
    shown["name"] = f"{s.name} · {v.label}"  # the canvas title: the graph's own name can be a long zoo spec
    doc = graph_canvas(shown, palette(), errors, key=f"canvas_{s.id}_{v.id}", height=680, base=graph)
    if doc is not None:
        try:
            new_graph = from_canvas(doc, graph)
        except GraphError as e:  # shown on the node and above; nothing is saved
            st.session_state[errors_key] = {e.node or "__graph__": str(e)}
            st.rerun()
        save(new_graph, "edit", {"via": "canvas", "layers": len(new_graph.nodes)})
    if errors:
        st.error(next(iter(errors.values())), icon=":material/error:")
with table_tab:
    try:
        edited = layer_table_editor(graph, key=f"table_{s.id}_{v.id}")
    except TinyStudioError as e:
        st.info(f"The layer table edits sequential models: {e}")
        edited = None
    if edited is not None:
        save(edited, "edit", {"via": "layer table"})
