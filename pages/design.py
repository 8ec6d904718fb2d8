"""Design: the graph canvas and the layer table. Saving creates a new version of the session."""
from __future__ import annotations

import streamlit as st

import store as db
from app.canvas import canvas_key, forget_draft, graph_canvas, layer_table_editor, studio_page
from app.canvas.graph_json import from_canvas, palette, to_canvas
from app.state import get_store, require_current, session_caption
from engine.errors import GraphError

st.title("Design")
s, v, graph = require_current()
session_caption(s, v)
key = canvas_key(s.id, v.id)  # unsaved edits are kept per session and version (see graph_canvas)
errors_key = f"save_errors_{s.id}_{v.id}"
errors = st.session_state.setdefault(errors_key, {})


def leave_for(then: str | None) -> None:
    """Go on to the page the user asked for when the canvas stopped them (after Save or Discard), else stay."""
    page = studio_page(then) if then is not None else None
    if page is not None:
        st.switch_page(page)
    st.rerun()


def save(new_graph, action: str, params: dict, then: str | None = None) -> None:
    db.add_version(get_store(), s.id, new_graph, action, params, parent_id=v.id)
    st.session_state.pop(errors_key, None)
    forget_draft(key)
    st.toast("Saved a new version", icon=":material/check:")
    leave_for(then)


canvas_tab, table_tab = st.tabs(["Canvas", "Layer table"])
with canvas_tab:
    shown = to_canvas(graph)
    shown["name"] = f"{s.name} · {v.label}"  # the canvas title: the graph's own name can be a long zoo spec
    act = graph_canvas(shown, palette(), errors, key=key, height=680, base=graph, guard=True)
    if act is not None and act.kind == "discard":  # every error goes with the edits
        st.session_state[errors_key] = {}
        leave_for(act.then)
    if act is not None and act.kind == "leave":  # the unsaved edits wait in this tab's state (graph_canvas)
        leave_for(act.then)
    if act is not None and act.kind == "save":
        try:
            new_graph = from_canvas(act.doc, graph)
        except GraphError as e:  # shown on the node and above; nothing is saved, the user stays
            st.session_state[errors_key] = {e.node or "__graph__": str(e)}
            st.rerun()
        save(new_graph, "edit", {"via": "canvas", "layers": len(new_graph.nodes)}, act.then)
    if errors:
        st.error(next(iter(errors.values())), icon=":material/error:")
with table_tab:
    edited = layer_table_editor(graph, key=f"table_{s.id}_{v.id}")
    if edited is not None:
        save(edited, "edit", {"via": "layer table"})
