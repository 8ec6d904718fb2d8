"""Compress: choose an action and its parameters, run it in the background, compare, accept or discard."""
from __future__ import annotations

import os

import streamlit as st

import store as db
from app import widgets
from app.workflows.profile import profile_as_deployed, profile_targets
from app.data_panel import data_panel
from app.jobs import job_panel, submit
from app.labels import web_message
from app.units import figure_rows, fmt_pct
from app.workflows.compress import (NO_TRAINING_NEEDED, accepted_params, compress_job, predict_effect,
                                    result_trained, without_untrained_accuracy)
from app.state import get_store, graph_of, require_current, session_caption
from engine.compress import list_actions
from engine.compress.base import report_warnings
from engine.errors import TinyStudioError
from engine.train.graphs import data_mismatch
from engine.serialize import load as load_graph

st.title("Compress")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
trained = db.version_accuracy(store, v.id)  # zoo, blank and canvas versions are untrained until trained
if not trained["trained"]:
    st.warning(f"Version {v.label} is **untrained** ({trained['reason']}): accuracy figures would mean nothing. "
               "Train it on the Train page first.", icon=":material/warning:")

with st.expander("Data", expanded=True):
    with widgets.user_errors():
        data = data_panel(f"data_{s.id}", s.id, prefer=(trained["dataset"] or {}).get("source"))

actions = {a["name"]: a for a in list_actions()}
name = st.selectbox("Action", list(actions), key="action",
                    format_func=lambda n: f"{n} — {actions[n]['description'][:90]}")
spec = actions[name]
st.caption(spec["description"])
with st.form(f"action_{name}"):
    params = widgets.zoo_param_inputs([p for p in spec["params"] if p["type"] != "model"], model=f"act_{name}")
    run_untrained = trained["trained"] or name in NO_TRAINING_NEEDED or st.checkbox(
        "Run on the untrained model anyway", key=f"untrained_ok_{name}",
        help="Quantization, pruning, QAT and distillation keep what the weights learned; on random weights their "
             "accuracy figures mean nothing.")
    b1, b2 = st.columns([1, 3])
    go = b1.form_submit_button("Run in the background", type="primary")
    predict = b2.form_submit_button("Predict the effect (no fine-tuning)")

mismatch = data_mismatch(graph, data) if data is not None else None  # layout and int8 input are adapted
if mismatch:
    st.warning(f"{mismatch}: accuracy cannot be measured on it.")
    data = None
if not trained["trained"]:
    if name not in NO_TRAINING_NEEDED and go and not run_untrained:
        st.error(f"'{name}' works on what the weights learned: tick 'Run on the untrained model anyway' or train "
                 "the version first.")
        st.stop()

if (go or predict) and spec["needs_data"] and data is None:
    st.error(f"'{name}' needs data that matches the model's input: pick or upload a matching dataset above.")
    st.stop()

if predict:
    with st.spinner(f"Running {name} without fine-tuning..."), widgets.user_errors():
        teacher = graph_of(v.parent_id) if name == "distill" and v.parent_id else None
        pred = predict_effect(graph, name, params, data, teacher=teacher)
    st.subheader("Predicted effect (before fine-tuning)")
    st.dataframe(without_untrained_accuracy(figure_rows(pred["before"], pred["after"], pred["delta"],
                                                        ("now", "predicted")), trained["trained"]),
                 hide_index=True, width="stretch", column_order=("figure", "now", "predicted", "change"))
    if not trained["trained"]:
        st.caption("accuracy: untrained model (not shown)")
    for note in pred.get("notes", []):
        st.info(note)

if go:
    if spec["needs_data"] and data is None:
        st.error(f"'{name}' needs data that matches the model's input: pick or upload a matching dataset above.")
        st.stop()
    teacher_id = v.parent_id if name == "distill" else None
    work = compress_job(graph_of, v.id, teacher_id, name, params, data)
    submit(s.id, "compress", {"action": name, "params": params, "version": v.id}, work)

job_panel(s.id, kind="compress")

done = [j for j in db.list_jobs(store, s.id) if j.kind == "compress" and j.status == "done"
        and isinstance(j.result, dict) and os.path.exists(j.result.get("candidate", ""))]
if done:
    job = done[0]
    r = job.result
    st.subheader(f"Result of {r['action']} on {db.get_version(store, r['version']).label} (not saved yet)",
                 help=f"database id {r['version']}")
    rows = figure_rows(r["before"], r["after"], r["delta"])
    base_trained = db.version_accuracy(store, r["version"])["trained"]
    st.dataframe(without_untrained_accuracy(rows, base_trained and result_trained(True, r["action"], r["params"])),
                 hide_index=True, width="stretch", column_order=("figure", "before", "after", "change"))
    if not base_trained:
        st.caption("accuracy: the version was untrained" + (", the result was fine-tuned on the data: "
                   f"{fmt_pct(r['after'].get('accuracy'))}" if result_trained(False, r["action"], r["params"])
                   and r["after"].get("accuracy") is not None else " (not shown)"))
    for note in r.get("notes", []):
        st.info(note)
    for warning in report_warnings(r.get("report", {})):  # PTQ: what was clamped or widened to export
        st.warning(warning, icon=":material/warning:")
    mcu_ids, runtime = widgets.mcu_picker()
    with widgets.user_errors():
        targets = profile_targets(mcu_ids, runtime)
        cand = load_graph(r["candidate"])
        (before, why_b), (after, why_a) = (profile_as_deployed(graph_of(r["version"]), targets),
                                           profile_as_deployed(cand, targets))
    st.caption("Fit as deployed: the export quantizes a float version to int8 (BN folded, activations fused), so "
               "both sides are shown as the int8 graph the C is generated from.")
    for why in {why_b, why_a} - {None}:
        st.warning(f"{why}; that side shows the version as it is.", icon=":material/warning:")
    c1, c2 = st.columns(2)
    c1.markdown(f"**Before** ({before.precision})")
    c2.markdown(f"**After** ({after.precision})")
    for tb, ta in zip(before.targets, after.targets):  # one row per MCU: before | after
        c1, c2 = st.columns(2)
        with c1:
            widgets.fit_card(tb, "fit_before")
        with c2:
            widgets.fit_card(ta, "fit_after")
    with st.expander("Action report"):
        st.json(r.get("report", {}), expanded=False)
    a, b = st.columns(2)
    if a.button("Accept as a new version", type="primary"):
        try:
            db.add_version(store, s.id, cand, r["action"], accepted_params(r), parent_id=r["version"])
        except TinyStudioError as e:
            st.error(web_message(str(e)))
            st.stop()
        os.remove(r["candidate"])
        st.rerun()
    if b.button("Discard"):
        os.remove(r["candidate"])
        st.rerun()
