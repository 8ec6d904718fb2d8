"""History: the version tree with actions and metrics; compare two versions; restore; branch."""
from __future__ import annotations

import streamlit as st

import store as db
from app import widgets
from app.history_view import layer_delta_rows, tree_rows
from app.nav import PAGES
from app.state import get_store, require_current, select_session, session_caption

st.title("History")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
versions = db.list_versions(store, s.id)
rows = tree_rows(versions, current=v.id)


def numbers(rows: list[dict]) -> dict:
    """Whole numbers with thousands separators in every numeric column."""
    whole = st.column_config.NumberColumn(format="localized")
    return {k: whole for row in rows[:1] for k, val in row.items() if isinstance(val, int) or val is None}


st.dataframe(rows, hide_index=True, width="stretch", column_config=numbers(rows))

labels = {x.id: f"v{x.id} · {x.action}" for x in versions}
st.subheader("Compare two versions")
c1, c2 = st.columns(2)
ids = [x.id for x in versions]
a = c1.selectbox("Version A", ids, index=max(0, len(ids) - 2), format_func=labels.get, key="cmp_a")
b = c2.selectbox("Version B", ids, index=len(ids) - 1, format_func=labels.get, key="cmp_b")
if a != b:
    diff = db.compare_versions(store, a, b)
    if diff["identical"]:
        st.info("The two versions compute the same graph (same content hash).")
    names = {"macs": "MACs", "flops": "FLOPs"}
    totals = [{"metric": names.get(k, k.replace("_", " ")), "A": d["a"], "B": d["b"], "B - A": d["delta"]}
              for k, d in diff["totals"].items()]
    st.dataframe(totals, hide_index=True, width="stretch", column_config=numbers(totals))
    st.caption(", ".join(f"{n} layers {k}" for k, n in diff["counts"].items()))
    layers = layer_delta_rows(diff["layers"])
    st.dataframe(layers, hide_index=True, width="stretch", column_config=numbers(layers))

st.subheader("Restore or branch")
pick = st.selectbox("Version", ids, index=len(ids) - 1, format_func=labels.get, key="pick")
c1, c2 = st.columns(2)
if c1.button("Restore as the current version", disabled=pick == v.id):
    with widgets.user_errors():
        db.restore_version(store, s.id, pick)
        st.rerun()
if c2.button("Branch into a new session"):
    with widgets.user_errors():
        new = db.branch_session(store, pick)
        select_session(new.id)
        switch_to("design")
