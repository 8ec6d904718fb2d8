"""The graph canvas widget: a Streamlit custom component (React Flow) whose built JavaScript ships in
app/canvas/frontend/dist, so it works offline with no npm and no CDN.

    from app.canvas import graph_canvas
    from app.canvas.graph_json import to_canvas, from_canvas, palette

    doc = graph_canvas(to_canvas(graph), palette(), errors, key="design", base=graph)
    if doc is not None:                     # the user clicked "Save version"
        new_graph = from_canvas(doc, graph) # GraphError names the node; pass {node: message} back as errors

Edits stay in the browser until saved. With `base` given, every edit is also validated live: the browser
sends its draft, the next script run checks it against `base` (app.canvas.graph_json.check_canvas) and the
component shows the errors on the offending nodes and the new shapes and MACs. Streamlit is imported lazily so
that graph_json (pure Python) can be imported and tested without it.
"""
from __future__ import annotations

import functools
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


def graph_canvas(graph_json: dict, palette: list[dict], errors: dict[str, str] | None = None, key: str = "canvas",
                 height: int = 600, base=None) -> dict | None:
    """Render the canvas for `graph_json` (from to_canvas). Returns the edited document once per click on
    "Save version", None otherwise. `errors` ({node id: message}) are shown on the nodes, e.g. the
    GraphError of a save that failed. `base` (the engine Graph of graph_json) turns on live validation."""
    import streamlit as st

    event = st.session_state.get(key)  # the last value the browser sent, before this run renders it again
    live = None
    if (base is not None and isinstance(event, dict) and event.get("type") == "validate"
            and event.get("revision") == graph_json.get("revision") and isinstance(event.get("doc"), dict)):
        from app.canvas.graph_json import check_canvas

        live = {"seq": event.get("seq"), **check_canvas(event["doc"], base)}
    value = _component()(doc=graph_json, palette=palette, errors=dict(errors or {}), live=live,
                         live_validation=base is not None, height=int(height), key=key, default=None)
    handled = f"{key}__saved_seq"
    if isinstance(value, dict) and value.get("type") == "save" and st.session_state.get(handled) != value.get("seq"):
        # The component keeps returning its last value on every rerun; a save is handed out once.
        st.session_state[handled] = value.get("seq")
        return value.get("doc")
    return None


def layer_table_editor(graph, key: str = "layer_table"):
    """The compact layer table of a sequential graph in st.data_editor (out_channels, kernel, stride and
    activation editable). Returns the edited graph when the user clicks "Apply table", None otherwise (an
    invalid edit is shown with st.error). Raises GraphError when the graph is not sequential."""
    import pandas as pd
    import streamlit as st

    from app.canvas.table import ACTIVATIONS, EDITABLE, apply_table, sequential_table
    from engine.errors import GraphError
    from engine.serialize import content_hash

    rows = pd.DataFrame(sequential_table(graph))
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
