"""A study started as the Search page starts it: a "search" job whose thread drives the study while the trials
run in worker processes, every trial stored as it comes back; the random baseline beside it in the same study
row; an interrupted study resumed from its journal without losing or duplicating a trial."""
from __future__ import annotations

import os
import time

import pytest
import streamlit as st

import store as db
from app.search_run import resume_search, search_spec, start_search
from engine.zoo import build_zoo_model


@pytest.fixture
def st_store(tmp_path, monkeypatch):
    from app.state import DB_ENV, get_store

    monkeypatch.setenv(DB_ENV, str(tmp_path / "studio.duckdb"))
    st.cache_resource.clear()  # store, graphs and profiles: cached per process, keyed by ids only
    yield get_store()
    st.cache_resource.clear()  # store, graphs and profiles: cached per process, keyed by ids only


def _wait(store, job_id, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = db.get_job(store, job_id)
        if job.finished:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {db.get_job(store, job_id).status} after {timeout} s")


def test_a_study_runs_in_the_background_and_resumes(st_store):
    s = db.create_session(st_store, "srch", build_zoo_model("zoo:lenet5"))
    v = db.current_version(st_store, s.id)
    spec = search_spec(name="tiny", space="dscnn", dataset="digits", mcu="nrf52840", runtime=None, trials=1,
                       epochs=1, strategy="tpe")
    job, study = start_search(st_store, s.id, v.id, spec, workers=2, baseline=True)
    assert study.job_id == job.id and study.status == "running"
    job = _wait(st_store, job.id)
    assert job.status == "done", job.message
    done = db.get_study(st_store, study.id)
    assert done.status == "done" and done.counts["total"] - done.counts["rejected"] == 2
    trials = db.list_trials(st_store, study.id)
    assert {t.strategy for t in trials} == {"tpe", "random"}  # the baseline beside, same budget
    assert set(done.result["strategies"]) == {"tpe", "random"}
    for t in trials:
        if t.state == "trained":
            assert t.has_model and os.path.dirname(t.model_path).startswith(study.out_dir)
            assert 0 <= t.accuracy <= 1 and t.latency_ms > 0 and t.ram_bytes > 0
    # The studio stopped mid-study: resuming reads the journal, runs what is missing (nothing) and keeps every trial.
    db.finish_study(st_store, study.id, "interrupted", "TinyStudio stopped while it ran")
    again = resume_search(st_store, s.id, study.id)
    assert _wait(st_store, again.id).status == "done"
    assert [(t.strategy, t.number, t.state) for t in db.list_trials(st_store, study.id)] == \
        [(t.strategy, t.number, t.state) for t in trials]
    assert db.get_study(st_store, study.id).job_id == again.id


def test_a_cancelled_study_stops_and_resumes_where_it_stopped(st_store):
    s = db.create_session(st_store, "srch", build_zoo_model("zoo:lenet5"))
    v = db.current_version(st_store, s.id)
    spec = search_spec(name="cut", space="dscnn", dataset="digits", mcu="nrf52840", runtime=None, trials=4,
                       epochs=1, strategy="random")
    job, study = start_search(st_store, s.id, v.id, spec, workers=1, baseline=False)
    deadline = time.monotonic() + 600
    while not db.list_trials(st_store, study.id) and time.monotonic() < deadline:
        time.sleep(0.5)
    db.cancel_job(st_store, job.id, "cancelled by the user")  # the page's Cancel button
    assert _wait(st_store, job.id).status == "cancelled"
    while db.get_study(st_store, study.id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)  # the job's thread stops the study: running trials are recorded, then it is marked
    cut = db.get_study(st_store, study.id)
    assert cut.status == "cancelled" and 1 <= cut.counts["total"] < 4 + cut.counts["rejected"]
    # No trial is left RUNNING in the journal: the one the cancel cut is recorded failed, in the store too.
    import optuna

    from engine.search.trial import open_storage

    journal = optuna.load_study(study_name="cut", storage=open_storage(cut.storage))
    assert not [t.number for t in journal.trials if t.state.name == "RUNNING"]
    stored = {t.number: t for t in db.list_trials(st_store, study.id)}
    for t in journal.trials:
        if "duplicate_of" not in t.user_attrs:
            assert t.number in stored, f"trial {t.number} ({t.state.name}) not in the store"
    kept = {(t.number, t.state) for t in db.list_trials(st_store, study.id) if t.state != "failed"}
    again = resume_search(st_store, s.id, study.id)
    assert _wait(st_store, again.id).status == "done"
    done = db.get_study(st_store, study.id)
    trials = db.list_trials(st_store, study.id)
    assert done.status == "done" and kept <= {(t.number, t.state) for t in trials}  # nothing finished is lost
    assert sum(t.state != "rejected" for t in trials) >= 4  # the budget was completed after the resume
