"""Sessions: the list, and new sessions from the zoo, an upload or a blank canvas."""
from __future__ import annotations

import streamlit as st

import store as db
from app import widgets
from app.auth import owner_names
from app.state import current_label, get_store, select_session, session_id, switch_to
from engine.importers import MAX_UPLOAD_BYTES, load_model_bytes
from engine.zoo import build_zoo_model, list_zoo
from engine.zoo.blank import blank_graph

st.title("Sessions")
store = get_store()

sessions = db.list_sessions(store)
# A returning user sees their sessions first; a first visit starts with creating one.
if sessions:
    list_tab, new_tab = st.tabs(["All sessions", "New session"])
else:
    new_tab, list_tab = st.tabs(["New session", "All sessions"])

with new_tab:
    zoo_t, upload_t, blank_t, import_t = st.tabs(["From the zoo", "Upload a model", "Blank canvas",
                                                  "Import a session file"])
    with zoo_t:
        entries = {e["name"]: e for e in list_zoo()}
        name = st.selectbox("Model", list(entries), index=list(entries).index("kws_dscnn"),
                            format_func=lambda n: f"{n} — {entries[n]['description'].split(';')[0]}")
        with st.form("zoo_form"):
            values = widgets.zoo_param_inputs(entries[name]["params"], model=name)
            title = st.text_input("Session name", value=name)
            if st.form_submit_button("Create session", type="primary"):
                spec = "zoo:" + name + ("?" + "&".join(f"{k}={v}" for k, v in values.items()) if values else "")
                with widgets.user_errors():
                    graph = build_zoo_model(spec)
                    s = db.create_session(store, title, graph, model=spec, action="zoo",
                                          params={"spec": graph.name})
                    select_session(s.id)
                    switch_to("design")
    with upload_t:
        limit = f"{MAX_UPLOAD_BYTES // 10**6} MB"
        up = st.file_uploader("ONNX, TFLite or PyTorch .pt2 file", type=["onnx", "tflite", "pt2"],
                              help=f"Up to {limit}. Files are read in memory, never unpickled.")
        # A refused file (too large, wrong type) only turns red in the uploader; say so where it can be seen.
        st.caption(f"Up to {limit} per file. A file marked red was refused by the uploader: point at it to see why.")
        shape = st.text_input("Input shape for dynamic dims (optional)", placeholder="1,3,224,224")
        if up is not None and st.button("Create session from upload", type="primary"):
            with widgets.user_errors():
                input_shape = widgets.parse_shape_text(shape)
                # The browser's file name only labels the bytes: an upload has no folder (no external data).
                graph = load_model_bytes(up.getvalue(), up.name, input_shape, max_bytes=MAX_UPLOAD_BYTES)
                s = db.create_session(store, up.name, graph, model=up.name, action="import",
                                      params={"file": up.name, "bytes": up.size}, upload=up.getvalue())
                select_session(s.id)
                switch_to("design")
    with blank_t:
        with st.form("blank_form"):
            title = st.text_input("Session name", value="my model")
            shape = st.text_input("Input shape (N,C,H,W or N,C,L)", value="1,1,28,28")
            if st.form_submit_button("Create blank session", type="primary"):
                with widgets.user_errors():
                    graph = blank_graph(widgets.parse_shape_text(shape, required=True))
                    s = db.create_session(store, title, graph, model="blank", action="blank",
                                          params={"input_shape": list(graph.tensors[graph.inputs[0]].shape)})
                    select_session(s.id)
                    switch_to("design")
    with import_t:
        up = st.file_uploader("A .tinystudio session file", type=["tinystudio"], key="import_session")
        if up is not None and st.button("Import session", type="primary"):
            with widgets.user_errors():
                s = db.import_session_bytes(store, up.getvalue(), filename=up.name)
                select_session(s.id)
                st.success(f"Imported **{s.name}** with {s.version_count} versions.")

with list_tab:
    if not sessions:
        st.info("No sessions yet: create one from the zoo, an upload or a blank canvas.")
    else:
        owners = owner_names()  # an instructor sees their students' sessions too: say whose
        rows = [{"id": s.id, "name": s.name, "model": s.model, "versions": s.version_count,
                 "current": current_label(s), "last change": s.updated[:19].replace("T", " "),
                 **({"owner": owners.get(s.owner_id, "-")} if owners else {})} for s in sessions]
        picked = st.dataframe(rows, hide_index=True, on_select="rerun", selection_mode="single-row",
                              key="session_table", width="stretch",
                              column_config={"current": st.column_config.TextColumn(
                                  help="The current version, numbered per session (v1, v2, ...)")})
        chosen = picked.selection.rows
        target = sessions[chosen[0]] if chosen else next((s for s in sessions if s.id == session_id()), None)
        if target is not None:
            st.subheader(target.name)
            c1, c2, c3, c4 = st.columns(4)
            if c1.button("Open", type="primary", key=f"open_{target.id}"):
                select_session(target.id)
                switch_to("design")
            if c2.button("Duplicate", key=f"dup_{target.id}"):
                with widgets.user_errors():
                    s = db.duplicate_session(store, target.id)
                    st.toast(f"Duplicated as {s.name}")
                    st.rerun()
            c3.download_button("Export to file", data=db.export_session_bytes(store, target.id),
                               file_name=f"{widgets.safe_filename(target.name)}.tinystudio",
                               key=f"exp_{target.id}")
            with c4.popover("Delete"):
                st.write(f"Delete **{target.name}** and its {target.version_count} versions? This cannot be undone.")
                if st.button("Yes, delete", type="primary", key=f"del_{target.id}"):
                    db.delete_session(store, target.id)
                    if session_id() == target.id:
                        select_session(None)
                    st.rerun()
            with st.form(f"rename_{target.id}"):
                new_name = st.text_input("Rename", value=target.name)
                if st.form_submit_button("Rename"):
                    with widgets.user_errors():
                        db.rename_session(store, target.id, new_name)
                        st.rerun()
