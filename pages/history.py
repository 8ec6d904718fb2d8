"""History: the version tree with actions and metrics; compare two versions; restore; branch."""
from __future__ import annotations

import streamlit as st

import store as db
from app import widgets
from app.history_view import tree_rows
from app.nav import PAGES
from app.state import get_store, require_current, select_session, session_caption

st.title("History")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
versions = db.list_versions(store, s.id)
rows = tree_rows(versions, current=v.id)
st.dataframe(rows, hide_index=True, use_container_width=True)

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
    st.dataframe([{"metric": k, "A": d["a"], "B": d["b"], "B - A": d["delta"]} for k, d in diff["totals"].items()],
                 hide_index=True, use_container_width=True)
    st.caption(", ".join(f"{n} layers {k}" for k, n in diff["counts"].items()))
    st.dataframe(diff["layers"], hide_index=True, use_container_width=True)

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
        st.switch_page(PAGES["design"])
