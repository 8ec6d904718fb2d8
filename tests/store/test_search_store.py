"""Studies and trials in the store: every trial kept (params, state, objectives, broken constraint, error, model),
a study outlives a restart (then shown as interrupted), belongs to its session, and goes with it."""
from __future__ import annotations

import pytest

from store import (InvalidValueError, NotFoundError, StoreError, VersionNotInSessionError, create_job,
                   create_session, create_study, delete_session, delete_study, finish_study, get_study,
                   list_studies, list_trials, open_store, record_trial, set_study_job, trial_model, update_job)
from store.search import MAX_MODEL_BYTES
from tests.store.graphs import mlp

SPEC = {"name": "s1", "space": "dscnn", "dataset": "keywords", "mcu": "nrf52840", "max_sram": 65536,
        "objectives": ["accuracy", "latency_ms"], "strategy": "tpe", "trials": 4}


def _trial(number, state, strategy="tpe", **kw):
    base = {"number": number, "state": state, "params": {"channels": 16 + number, "kernel": 3}, "accuracy": None,
            "latency_ms": None, "ram_bytes": None, "flash_bytes": None, "energy_uj": None, "macs": None,
            "broke": None, "error": None, "model_path": None, "seconds": 0.5, "strategy": strategy}
    return {**base, **kw}


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def test_study_and_trials_round_trip(store, tmp_path):
    s = create_session(store, "kws", mlp())
    job = create_job(store, s.id, "search")
    st = create_study(store, s.id, "s1", SPEC, str(tmp_path / "s1.journal"), str(tmp_path / "out"),
                      base_version_id=s.current_version_id, job_id=job.id)
    assert (st.status, st.spec, st.counts["total"], st.job_id) == ("running", SPEC, 0, job.id)
    model = tmp_path / "trial0.onnx"
    model.write_bytes(b"\x08\x07model-bytes")
    t0 = record_trial(store, st.id, _trial(0, "trained", accuracy=0.91, latency_ms=12.5, ram_bytes=40_000,
                                           flash_bytes=90_000, energy_uj=310.0, macs=1_200_000,
                                           model_path=str(model)))
    assert (t0.accuracy, t0.latency_ms, t0.ram_bytes, t0.macs, t0.has_model) == (0.91, 12.5, 40_000, 1_200_000, True)
    record_trial(store, st.id, _trial(1, "rejected", broke="ram_bytes 80,000 > max_sram 65,536", ram_bytes=80_000))
    record_trial(store, st.id, _trial(2, "pruned", accuracy=0.4))
    record_trial(store, st.id, _trial(3, "failed", error="worker died"))
    record_trial(store, st.id, _trial(0, "trained", strategy="random", accuracy=0.8))  # the baseline's own numbers
    trials = list_trials(store, st.id)
    assert [(t.strategy, t.number, t.state) for t in trials] == [
        ("random", 0, "trained"), ("tpe", 0, "trained"), ("tpe", 1, "rejected"), ("tpe", 2, "pruned"),
        ("tpe", 3, "failed")]
    assert trials[2].broke.startswith("ram_bytes") and trials[4].error == "worker died"
    assert trials[1].params == {"channels": 16, "kernel": 3}
    # The model bytes are kept even when the output folder is removed.
    model.unlink()
    assert trial_model(store, st.id, "tpe", 0) == ("trial0.onnx", b"\x08\x07model-bytes")
    with pytest.raises(StoreError, match="rejected"):
        trial_model(store, st.id, "tpe", 1)
    with pytest.raises(StoreError, match="trial 0 of study 's1'.*gone"):
        trial_model(store, st.id, "random", 0)  # trained but its file was never there
    with pytest.raises(NotFoundError, match="no tpe trial 9"):
        trial_model(store, st.id, "tpe", 9)
    done = finish_study(store, st.id, "done", "5 trials", result={"pareto": [0], "hypervolume": 0.5})
    assert done.counts == {"trained": 2, "rejected": 1, "pruned": 1, "failed": 1, "total": 5}
    assert (done.status, done.result["pareto"], done.finished) == ("done", [0], True)


def test_a_retried_trial_replaces_the_lost_one(store, tmp_path):
    s = create_session(store, "a", mlp())
    st = create_study(store, s.id, "s", SPEC, "j", "o")
    record_trial(store, st.id, _trial(4, "failed", error="worker lost"))
    record_trial(store, st.id, _trial(4, "trained", accuracy=0.7))
    [t] = list_trials(store, st.id)
    assert (t.state, t.accuracy, t.error) == ("trained", 0.7, None)


def test_a_study_survives_a_restart_as_interrupted(tmp_path):
    path = str(tmp_path / "studio.duckdb")
    store = open_store(path)
    s = create_session(store, "a", mlp())
    job = update_job(store, create_job(store, s.id, "search").id, 0.3, "trial 2")
    st = create_study(store, s.id, "s", SPEC, str(tmp_path / "s.journal"), str(tmp_path / "out"), job_id=job.id)
    record_trial(store, st.id, _trial(0, "trained", accuracy=0.5))
    assert list_studies(store, s.id)[0].status == "running"  # its job is still running
    store.close()
    store = open_store(path)  # the studio restarted: the job is gone, the study and its trial are not
    [again] = list_studies(store, s.id)
    assert (again.id, again.status, again.counts["trained"]) == (st.id, "interrupted", 1)
    assert "stopped" in again.message
    job2 = create_job(store, s.id, "search")
    assert set_study_job(store, st.id, job2.id).status == "running"  # resumed by a new job
    store.close()


def test_studies_belong_to_their_session_and_go_with_it(store):
    a = create_session(store, "a", mlp())
    b = create_session(store, "b", mlp(seed=1))
    st = create_study(store, a.id, "s", SPEC, "j", "o")
    record_trial(store, st.id, _trial(0, "trained", accuracy=0.5))
    other = create_study(store, b.id, "t", SPEC, "j2", "o2")
    assert [x.id for x in list_studies(store, a.id)] == [st.id]
    with pytest.raises(VersionNotInSessionError, match=f"study {st.id} belongs to session {a.id}"):
        get_study(store, st.id, session_id=b.id)
    with pytest.raises(VersionNotInSessionError):
        list_trials(store, st.id, session_id=b.id)
    with pytest.raises(VersionNotInSessionError):
        create_study(store, a.id, "x", SPEC, "j", "o", base_version_id=b.current_version_id)
    delete_session(store, a.id)
    with pytest.raises(NotFoundError, match=f"no study with id {st.id}"):
        get_study(store, st.id)
    with store.transaction() as con:
        assert con.execute("SELECT count(*) FROM trials WHERE study_id = ?", [st.id]).fetchone()[0] == 0
    delete_study(store, other.id, session_id=b.id)
    assert list_studies(store, b.id) == []


@pytest.mark.parametrize("trial, match", [
    (_trial(-1, "trained"), "trial number"),
    (_trial(True, "trained"), "trial number"),
    (_trial(0, "great"), "trial state must be one of trained, rejected, pruned, failed"),
    (_trial(0, "trained", accuracy=float("nan")), "accuracy must be a finite number"),
    (_trial(0, "trained", ram_bytes="big"), "ram_bytes must be a finite number"),
    (_trial(0, "trained", strategy=""), "trial strategy is empty"),
    ("trial", "TrialRecord or a dict"),
])
def test_bad_trials_are_refused_with_one_line(store, trial, match):
    s = create_session(store, "a", mlp())
    st = create_study(store, s.id, "s", SPEC, "j", "o")
    with pytest.raises(InvalidValueError, match=match) as e:
        record_trial(store, st.id, trial)
    assert "\n" not in str(e.value)
    assert list_trials(store, st.id) == []


def test_bad_study_input(store):
    s = create_session(store, "a", mlp())
    with pytest.raises(InvalidValueError, match="study name is empty"):
        create_study(store, s.id, "  ", SPEC, "j", "o")
    with pytest.raises(InvalidValueError, match="spec must be a dict"):
        create_study(store, s.id, "s", ["x"], "j", "o")
    with pytest.raises(NotFoundError, match="no session with id 999"):
        create_study(store, 999, "s", SPEC, "j", "o")
    st = create_study(store, s.id, "s", SPEC, "j", "o")
    with pytest.raises(InvalidValueError, match="finishes as one of"):
        finish_study(store, st.id, "running")
    with pytest.raises(NotFoundError, match="no study with id 12345"):
        record_trial(store, 12345, _trial(0, "trained"))


def test_a_huge_model_file_is_kept_by_path_only(store, tmp_path):
    s = create_session(store, "a", mlp())
    st = create_study(store, s.id, "s", SPEC, "j", "o")
    big = tmp_path / "big.onnx"
    with big.open("wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)  # sparse: no real disk use
    t = record_trial(store, st.id, _trial(0, "trained", accuracy=0.5, model_path=str(big)))
    assert (t.has_model, t.model_path) == (False, str(big))
    with pytest.raises(StoreError, match="big.onnx is over 64 MiB"):
        trial_model(store, st.id, "tpe", 0)
