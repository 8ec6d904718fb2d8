"""The Train page's moving parts: the background training job, its live curves, and Try it.

    start_training(session, version, graph, data, settings, zoo_spec)   # a "train" job; the result is a version
    live_training(session_id)        # fragment: progress and curves of a running job, polled every second
    try_it(graph, data)              # a data set sample or an uploaded .npy through the version, float and int8

A running job appends each epoch's record to LIVE (process-wide: the job's thread in this process relays them
from the worker that trains), so the
fragment draws curves while training runs; the finished job's result keeps the whole history.
"""
from __future__ import annotations

import threading
import uuid

import streamlit as st

import store as db
from app import train_charts
from app.job_executor import run_remote
from app.jobs import submit
from app.state import get_store
from app.workflows.train import TrainSettings, fit_to_data, train_version
from engine.data import Dataset
from engine.ir import Graph

LIVE: dict[str, list[dict]] = {}  # job token -> epoch records so far
_LIVE_LOCK = threading.Lock()
_LIVE_MAX = 16  # tokens kept: the latest jobs' curves


def _record(token: str, rec: dict) -> None:
    with _LIVE_LOCK:
        LIVE.setdefault(token, []).append(rec)
        for old in list(LIVE)[:-_LIVE_MAX]:
            LIVE.pop(old, None)


def start_training(session_id: int, version_id: int, graph: Graph, data: Dataset, settings: TrainSettings,
                   adapted: str | None) -> db.JobInfo:
    """Train in the background; the trained graph is saved as a new version (action "train") of the session."""
    store = get_store()
    token = uuid.uuid4().hex
    LIVE[token] = []

    def work(progress):  # the training itself runs in a worker process; its epochs come back as events
        res = run_remote(train_version, graph, data, settings, progress=progress, events=("on_epoch",),
                         on_event=lambda _name, r: _record(token, r), adapted=adapted)
        progress(1.0, "saving the trained version")
        new = db.add_version(store, session_id, res.graph, "train", res.provenance, parent_id=version_id)
        return {"version": new.id, "base": version_id, "provenance": res.provenance,
                "report": res.report.to_json(), "class_names": list(data.class_names), "task": data.task}

    params = {"version": version_id, "dataset": data.source, "live": token, **settings.__dict__}
    return submit(session_id, "train", params, work)


def latest_job(session_id: int) -> db.JobInfo | None:
    jobs = [j for j in db.list_jobs(get_store(), session_id) if j.kind == "train"]
    return jobs[0] if jobs else None


@st.fragment(run_every=1.0)
def live_training(session_id: int) -> None:
    job = latest_job(session_id)
    seen = f"_train_running_{session_id}"
    if job is None:
        return
    if job.status in ("queued", "running"):
        st.session_state[seen] = job.id
        c1, c2 = st.columns([6, 1])
        c1.progress(job.progress, text=f"train #{job.id}: {job.message or job.status}")
        if c2.button("Cancel", key=f"cancel_train_{job.id}"):
            db.cancel_job(get_store(), job.id, "cancelled by the user")
        history = list(LIVE.get((job.params or {}).get("live", ""), []))
        if history:
            st.plotly_chart(train_charts.curves(history), width="stretch", key=f"live_curves_{job.id}")
        return
    if st.session_state.get(seen) == job.id:  # it finished while we watched: show the result and new version
        st.session_state.pop(seen, None)
        st.rerun(scope="app")
    if job.status == "failed":
        st.error(f"train #{job.id}: {job.message}", icon=":material/error:")
    elif job.status == "cancelled":
        st.warning(f"train #{job.id} was cancelled; no version was saved")


def training_result(job: db.JobInfo) -> None:
    """Curves, accuracy, confusion matrix and per-class accuracy of a finished training job."""
    from app.workflows.train import per_class_accuracy

    r = job.result or {}
    rep, prov = r.get("report", {}), r.get("provenance", {})
    acc = prov.get("accuracy")
    d = prov.get("dataset") or {}
    st.subheader(f"Last training: made version {r.get('version')} from version {r.get('base')}")
    c1, c2, c3, c4 = st.columns(4)
    metric = "validation accuracy" if r.get("task", "classification") == "classification" else "validation R²"
    c1.metric(metric, "-" if acc is None else f"{acc:.2%}")
    c2.metric("epochs run", f"{rep.get('epochs_run')} (best {rep.get('best_epoch')})")
    c3.metric("data set", d.get("name", "-"), help=d.get("source"))
    c4.metric("training time", f"{rep.get('seconds', 0):.1f} s")
    if prov.get("adapted"):
        st.caption(prov["adapted"])
    st.caption(f"Trained on {d.get('train', 0):,} samples, validated on {d.get('val', 0):,} (split seed "
               f"{(d.get('split') or {}).get('seed')}, {(d.get('split') or {}).get('val_fraction', 0):.0%} held out per "
               "class); inputs normalized per channel with the training split's mean and std (stored with the "
               "version).")
    if rep.get("history"):
        st.plotly_chart(train_charts.curves(rep["history"]), width="stretch", key=f"curves_{job.id}")
    if rep.get("confusion"):
        names = r.get("class_names") or []
        a, b = st.columns(2)
        a.plotly_chart(train_charts.confusion(rep["confusion"], names), width="stretch", key=f"conf_{job.id}")
        b.plotly_chart(train_charts.per_class(per_class_accuracy(rep["confusion"], names)), width="stretch",
                       key=f"perclass_{job.id}")


def fit_for_training(graph: Graph, data: Dataset, version: db.VersionInfo, session: db.SessionInfo):
    """(graph to train, note) for the chosen data: an unchanged zoo version is rebuilt for the data's shape."""
    zoo = session.model if version.action == "zoo" and session.model.startswith("zoo:") else None
    return fit_to_data(graph, data, zoo_spec=zoo)
