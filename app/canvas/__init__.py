"""The graph canvas widget: a Streamlit custom component (React Flow) whose built JavaScript ships in
app/canvas/frontend/dist, so it works offline with no npm and no CDN.

    from app.canvas import graph_canvas
    from app.canvas.graph_json import to_canvas, from_canvas, palette

    act = graph_canvas(to_canvas(graph), palette(), errors, key="design_s1_v1", base=graph, guard=True)
    if act is not None and act.kind == "save":   # the user clicked "Save version"
        new_graph = from_canvas(act.doc, graph)  # GraphError names the node; pass {node: message} back as errors
        forget_draft("design_s1_v1")             # once it is stored as a version

Edits stay in the browser until saved; the page keeps the latest draft so that they survive a page switch. With `base` given, every edit is also validated live: the browser
sends its draft, the next script run checks it against `base` (app.canvas.graph_json.check_canvas) and the
component shows the errors on the offending nodes and the new shapes and MACs. Streamlit is imported lazily so
that graph_json (pure Python) can be imported and tested without it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

DIST = Path(__file__).resolve().parent / "frontend" / "dist"
COMPONENT = "tinystudio_canvas"


@functools.lru_cache(maxsize=1)
def _component():
    import streamlit.components.v1 as components

    if not (DIST / "index.html").is_file():
        raise FileNotFoundError(f"the canvas component is not built: {DIST / 'index.html'} is missing "
                                "(run scripts/build_canvas.sh)")
    return components.declare_component(COMPONENT, path=str(DIST))


@dataclass(frozen=True)
class CanvasAction:
    """What the user asked for on the canvas: "save" (doc: the edited document for from_canvas), "discard"
    (the page drops its errors of a failed save) or "leave" (switch to `then`, the unsaved edits kept). `then`: the url path of the studio page the user wanted to
    open when the canvas asked "Save / Discard / Keep editing" ("" is the default page), None otherwise."""
    kind: str
    doc: dict | None = None
    then: str | None = None


def canvas_key(session_id: int, version_id: int) -> str:
    """The Design page's canvas key for a session's version: its unsaved edits are kept under it."""
    return f"canvas_{session_id}_{version_id}"


def draft_key(key: str) -> str:
    return f"{key}__draft"


def has_draft(key: str) -> bool:
    """Whether the canvas `key` has unsaved edits the page keeps (see graph_canvas); e.g. navigation can ask
    `has_draft(canvas_key(session_id, version_id))` before it switches pages on its own."""
    import streamlit as st

    return isinstance(st.session_state.get(draft_key(key)), dict)


def forget_draft(key: str) -> None:
    """Drop the unsaved edits kept for the canvas `key` (after they were saved as a version, or discarded)."""
    import streamlit as st

    st.session_state.pop(draft_key(key), None)


def studio_page(url_path: str):
    """The studio page (app.nav.PAGES) at `url_path` ("" is the default page), for st.switch_page; None if none."""
    from app.nav import PAGES

    for page in PAGES.values():
        try:
            if page.url_path == url_path:
                return page
        except AttributeError:  # Streamlit infers some paths lazily; the file name is the path then
            if Path(str(getattr(page, "_page", ""))).stem == url_path:
                return page
    return None


def graph_canvas(graph_json: dict, palette: list[dict], errors: dict[str, str] | None = None, key: str = "canvas",
                 height: int = 600, base=None, guard: bool = False) -> CanvasAction | None:
    """Render the canvas for `graph_json` (from to_canvas). Returns a CanvasAction once per click on "Save
    version" or "Discard", None otherwise. `errors` ({node id: message}) are shown on the nodes, e.g. the
    GraphError of a save that failed. `base` (the engine Graph of graph_json) turns on live validation.

    Unsaved edits survive leaving the page: every draft the browser sends is kept in st.session_state under
    draft_key(key) (not a widget key, so Streamlit keeps it while another page runs) and handed back to a new
    component of the same revision, which restores it. Use a key per session and version. With `guard`, the
    component asks "Save / Discard / Keep editing / Leave, keep edits for later" when the user opens another studio page with unsaved edits,
    and the browser asks before a reload or closing the tab."""
    import streamlit as st

    event = st.session_state.get(key)  # the last value the browser sent, before this run renders it again
    live = None
    current = isinstance(event, dict) and event.get("revision") == graph_json.get("revision")
    if current and event.get("type") in ("validate", "leave") and isinstance(event.get("view"), dict):
        st.session_state[draft_key(key)] = {"revision": event["revision"], "view": event["view"]}
    if current and event.get("type") == "validate" and isinstance(event.get("doc"), dict):
        if base is not None:
            from app.canvas.graph_json import check_canvas

            live = {"seq": event.get("seq"), **check_canvas(event["doc"], base)}
    draft = st.session_state.get(draft_key(key))
    if not (isinstance(draft, dict) and draft.get("revision") == graph_json.get("revision")):
        draft = None
    value = _component()(doc=graph_json, palette=palette, errors=dict(errors or {}), live=live, draft=draft,
                         live_validation=base is not None, guard=bool(guard), height=int(height), key=key,
                         default=None)
    handled = f"{key}__handled_seq"
    if (isinstance(value, dict) and value.get("type") in ("save", "discard", "leave")
            and st.session_state.get(handled) != value.get("seq")):
        # The component keeps returning its last value on every rerun; an action is handed out once.
        st.session_state[handled] = value.get("seq")
        then = value.get("then") if isinstance(value.get("then"), str) else None
        if value["type"] == "discard":
            forget_draft(key)
            return CanvasAction("discard", None, then)
        if value["type"] == "leave":  # the draft is kept above; the page goes where the user asked
            return CanvasAction("leave", None, then)
        if isinstance(value.get("doc"), dict):
            return CanvasAction("save", value["doc"], then)
    return None


def layer_table_editor(graph, key: str = "layer_table"):
    """The compact layer table of a sequential graph in st.data_editor (out_channels, kernel, stride and
    activation editable). Returns the edited graph when the user clicks "Apply table", None otherwise (an
    invalid edit is shown with st.error). A graph that is not sequential gets a note saying why, and None."""
    import pandas as pd
    import streamlit as st

    from app.canvas.table import ACTIVATIONS, EDITABLE, apply_table, sequential_table
    from engine.errors import GraphError, TinyStudioError
    from engine.serialize import content_hash

    try:
        table = sequential_table(graph)
    except TinyStudioError as e:
        st.info(f"The layer table edits sequential models: {e}")
        return None
    if not table:  # a blank canvas: input -> output, no layers to edit yet
        st.info("No layers yet: add them on the Canvas tab.")
        return None
    rows = pd.DataFrame(table)
    rows["out_channels"] = rows["out_channels"].astype("Int64")  # whole numbers, blank where a layer has none
    cc = st.column_config
    config = {
        "layer": cc.TextColumn("layer"), "op": cc.TextColumn("op"),
        "out_channels": cc.NumberColumn("out channels", min_value=1, step=1, help="output channels / features"),
        "kernel": cc.TextColumn("kernel", help="e.g. 3x3 (or 3 for a square kernel)"),
        "stride": cc.TextColumn("stride", help="e.g. 2x2 (or 2)"),
        "activation": cc.SelectboxColumn("activation", options=list(ACTIVATIONS)),
        "output_shape": cc.TextColumn("output"), "params": cc.NumberColumn("params", format="localized"),
        "macs": cc.NumberColumn("MACs", format="localized"),
    }
    edited = st.data_editor(rows, column_config=config, disabled=[c for c in rows.columns if c not in EDITABLE],
                            hide_index=True, num_rows="fixed", key=key)
    if st.button("Apply table", key=f"{key}__apply", type="primary"):
        try:
            new = apply_table(graph, edited)
        except GraphError as e:  # a value the layer cannot take: say which, change nothing
            st.error(str(e))
            return None
        if content_hash(new) != content_hash(graph):
            return new
        st.info("The table has no changes to apply.")
    return None
