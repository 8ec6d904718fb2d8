"""History: the version tree with each action in words, accuracy, latency and fit; compare two versions; view,
restore or branch."""
from __future__ import annotations

import streamlit as st

import store as db
from app import widgets
from app.history_view import (FIGURES, accuracy_text, action_words, describe_action, fit_cell, label,
                              layer_delta_rows, split_rows, tree_rows)
from app.workflows.profile import profile_targets
from app.state import (changes_of, get_store, profile_of, require_current, select_session, session_caption, shown,
                       switch_to, view_version)
from engine.diff import summarize
from engine.errors import TinyStudioError

st.title("History")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
versions = db.list_versions(store, s.id)
by_id = {x.id: x for x in versions}
current = shown()[2]
labels = {x.id: x.label for x in versions}
ids_help = "Database ids: " + ", ".join(f"{x.label} = {x.id}" for x in versions)

described, accuracy, fits = {}, {}, {}
mcus = st.session_state.get("chosen_mcus") or []
runtime = st.session_state.get("chosen_runtime") or ""
with widgets.user_errors():
    targets = tuple(profile_targets(mcus, None if runtime.startswith("default") or not runtime else runtime))
for x in versions:
    try:
        changes = summarize(list(changes_of(x.parent_id, x.id))) if x.parent_id in by_id else None
    except Exception as e:  # an undecodable old graph must not take the page down: say so in its row
        changes = f"(cannot compare with its parent: {e})"
    described[x.id] = describe_action(x, labels, changes)
    accuracy[x.id] = accuracy_text(db.version_accuracy(store, x.id))
    if targets:
        try:
            try:  # as deployed, the Profile page's default: a float version's figures as its int8 export
                prof = profile_of(x.id, targets, "int8")
            except TinyStudioError:  # an op without an int8 kernel: the version as it is
                prof = profile_of(x.id, targets)
            fits[x.id] = {t.mcu: fit_cell(t) for t in prof.targets}
        except Exception as e:  # noqa: BLE001 - one version that cannot be estimated keeps its row
            fits[x.id] = {mcu: f"cannot estimate: {e}" for mcu, _ in targets}

rows = tree_rows(versions, current=current.id, shown=v.id, described=described, accuracy=accuracy, fits=fits)
what, figures = split_rows(rows)
whole = st.column_config.NumberColumn(format="localized")
marks = "● the current version, ◀ the one the pages show."
st.dataframe(what, hide_index=True, width="stretch", column_config={
    "version": st.column_config.TextColumn(help=f"Numbered per session; {marks} {ids_help}"),
    "what changed": st.column_config.TextColumn(width="large", help="The action and what it changed in the graph"),
    "accuracy": st.column_config.TextColumn(help="As measured when the version was made (training, or a "
                                                 "compression, on the dataset's validation split)")})
config = {k: whole for k in (label("macs"), label("params"), label("weight_bytes"), label("arena_bytes"))}
config[FIGURES] = st.column_config.TextColumn(help=f"{marks} {ids_help}")
for mcu, _ in targets:
    config[mcu] = st.column_config.TextColumn(help=f"Estimated latency and fit on {mcu}")
if targets:
    st.markdown("**Latency and fit** (estimates as deployed, int8, on the MCUs chosen on the Profile page) "
                "**and size** (as the version is)")
st.dataframe(figures, hide_index=True, width="stretch", column_config=config)
if not targets:
    st.caption("Choose MCUs on the Profile page to see latency and fit per version here.")

fmt = {x.id: f"{x.label} · {x.action}" for x in versions}
ids = [x.id for x in versions]
st.subheader("Compare two versions")
c1, c2 = st.columns(2)
a = c1.selectbox("Version A", ids, index=max(0, len(ids) - 2), format_func=fmt.get, key="cmp_a", help=ids_help)
b = c2.selectbox("Version B", ids, index=len(ids) - 1, format_func=fmt.get, key="cmp_b", help=ids_help)
if a != b:
    diff = db.compare_versions(store, a, b)
    if diff["identical"]:
        st.info("The two versions compute the same graph (same content hash).")
    totals = [{"figure": label(k), "A": d["a"], "B": d["b"], "B - A": d["delta"]} for k, d in diff["totals"].items()]
    st.dataframe(totals, hide_index=True, width="stretch", column_config={k: whole for k in ("A", "B", "B - A")})
    st.caption(f"Accuracy: A {accuracy[a]} · B {accuracy[b]}. "
               + ", ".join(f"{n} layers {k}" for k, n in diff["counts"].items()))
    layers = layer_delta_rows(diff["layers"])
    st.dataframe(layers, hide_index=True, width="stretch",
                 column_config={k: whole for k in (layers[0] if layers else {})
                                if k not in ("layer", "op", "status", "output A", "output B")})

st.subheader("View, restore or branch")
pick = st.selectbox("Version", ids, index=ids.index(v.id), format_func=fmt.get, key="pick", help=ids_help)
picked = by_id[pick]
with st.container(border=True):
    st.markdown(f"**{picked.label}** · {picked.action} · made {picked.created[:19].replace('T', ' ')} UTC · "
                f"accuracy: {accuracy[pick]}", help=f"database id {picked.id}")
    st.write(action_words(picked.action, picked.params, labels))
    if picked.parent_id in by_id:
        try:
            full = changes_of(picked.parent_id, pick)
        except Exception as e:  # noqa: BLE001 - shown, not raised
            full = (f"cannot compare with its parent: {e}",)
        st.markdown(f"Changes from {labels[picked.parent_id]}:\n" +
                    ("\n".join(f"- {c}" for c in full) if full else "- none to the graph"))
c1, c2, c3 = st.columns(3)
if c1.button("View this version", disabled=pick == v.id,
             help="The pages show it (read it, profile it, export it); the link names it. Saving from it starts a "
                  "new branch."):
    view_version(by_id[pick])
    st.rerun()
if c2.button("Restore as the current version", disabled=pick == current.id,
             help="Appends a copy of it as the newest version; the versions made since stay in the history."):
    with widgets.user_errors():
        db.restore_version(store, s.id, pick)
        st.rerun()
if c3.button("Branch into a new session"):
    with widgets.user_errors():
        new = db.branch_session(store, pick)
        select_session(new.id)
        switch_to("design")

studies = db.list_studies(store, s.id)
if studies:
    from app.search_charts import study_rows

    st.subheader("Search studies")
    st.dataframe(study_rows(studies), hide_index=True, width="stretch")
    st.caption("Every trial of a study is stored with the session; open it on the Search page to see its points "
               "and accept one as a version (its lineage names the study and trial).")
