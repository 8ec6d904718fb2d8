"""Jobs (progress, transitions, cancel races), stored profiles per target, export records."""
from __future__ import annotations

import pytest

from engine.errors import TinyStudioError
from store import (InvalidValueError, JobStateError, NotFoundError, add_export, add_version, cancel_job,
                   create_job, create_session, delete_export, export_bundle, fail_job, finish_job, get_export,
                   get_job, get_profile, list_exports, list_jobs, list_profiles, open_store, profile_version,
                   save_profile, update_job)
from tests.store.graphs import mlp, mlp_macs


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def test_job_lifecycle(store):
    s = create_session(store, "a", mlp())
    j = create_job(store, s.id, "verify", {"mcu": "stm32f746ng"})
    assert (j.status, j.progress, j.message, j.result, j.params) == ("queued", 0.0, "", None, {"mcu": "stm32f746ng"})
    j = update_job(store, j.id, 0.3, "compiling")
    assert (j.status, j.progress, j.message) == ("running", 0.3, "compiling")
    j = update_job(store, j.id, message="linking")  # progress kept
    assert (j.progress, j.message) == (0.3, "linking")
    j = finish_job(store, j.id, {"flash_bytes": 123, "ok": True})
    assert (j.status, j.progress, j.result, j.finished) == ("done", 1.0, {"flash_bytes": 123, "ok": True}, True)
    assert update_job(store, j.id, 0.9).status == "done"  # a late progress report changes nothing
    with pytest.raises(JobStateError, match="already done"):
        fail_job(store, j.id, "too late")
    f = fail_job(store, create_job(store, s.id, "train").id, "loss is NaN")
    assert (f.status, f.message) == ("failed", "loss is NaN")
    assert [x.id for x in list_jobs(store, s.id)] == [f.id, j.id]
    assert [x.id for x in list_jobs(store, status="failed")] == [f.id]


def test_cancel_wins_over_a_late_finish(store):
    s = create_session(store, "a", mlp())
    j = update_job(store, create_job(store, s.id, "search").id, 0.5)
    c = cancel_job(store, j.id)
    assert c.status == "cancelled" and c.progress == 0.5
    assert update_job(store, j.id, 0.6).status == "cancelled"  # the worker sees the cancel and stops
    assert finish_job(store, j.id, {"x": 1}).status == "cancelled" and get_job(store, j.id).result is None
    done = finish_job(store, create_job(store, s.id, "x").id)
    assert cancel_job(store, done.id).status == "done"


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan"), "half", True])
def test_bad_progress_is_refused(store, progress):
    s = create_session(store, "a", mlp())
    j = create_job(store, s.id, "verify")
    with pytest.raises(InvalidValueError, match="0 to 1"):
        update_job(store, j.id, progress)
    assert get_job(store, j.id).status == "queued"


def test_job_errors(store):
    with pytest.raises(NotFoundError, match="no session with id 5"):
        create_job(store, 5, "verify")
    with pytest.raises(NotFoundError, match="no job with id 77"):
        get_job(store, 77)
    s = create_session(store, "a", mlp())
    with pytest.raises(InvalidValueError, match="job params"):
        create_job(store, s.id, "verify", {"f": object()})
    with pytest.raises(InvalidValueError, match="status"):
        list_jobs(store, status="paused")
    long = update_job(store, create_job(store, s.id, "v").id, message="x" * 5000)
    assert len(long.message) == 2000


def test_profiles_are_stored_per_target_and_reused(store):
    s = create_session(store, "a", mlp((16, 32, 4)))
    vid = s.current_version_id
    targets = [("stm32f746ng", "tflm-cmsis-nn"), ("nrf52840", "tflm-reference")]
    assert get_profile(store, vid, *targets[0]) is None
    docs = profile_version(store, vid, targets)
    assert list(docs) == targets
    for (mcu, rt), doc in docs.items():
        assert doc["target"]["mcu"] == mcu and doc["target"]["runtime"] == rt
        assert doc["totals"]["macs"] == mlp_macs((16, 32, 4))
        assert [r["name"] for r in doc["layers"]] and all("estimate" in r for r in doc["layers"])
        assert sum(r["estimate"]["latency_ms"] for r in doc["layers"]) == pytest.approx(doc["target"]["latency_ms"],
                                                                                          rel=1e-4)
        assert get_profile(store, vid, mcu, rt) == doc
    # a second request reads the stored documents (the marker shows nothing was recomputed)
    marked = dict(docs[targets[0]], marker=1)
    save_profile(store, vid, *targets[0], marked)
    assert profile_version(store, vid, targets)[targets[0]]["marker"] == 1
    assert "marker" not in profile_version(store, vid, targets, refresh=True)[targets[0]]
    assert [(p["mcu"], p["runtime"]) for p in list_profiles(store, vid)] == sorted(targets)
    v2 = add_version(store, s.id, mlp((16, 64, 4)), "edit")
    assert list_profiles(store, v2.id) == []  # a changed graph needs its own profile


def test_profile_errors(store):
    s = create_session(store, "a", mlp())
    with pytest.raises(TinyStudioError, match="unknown MCU .no-such-mcu."):
        profile_version(store, s.current_version_id, [("no-such-mcu", "tflm-cmsis-nn")])
    assert list_profiles(store, s.current_version_id) == []
    with pytest.raises(InvalidValueError, match="totals"):
        save_profile(store, s.current_version_id, "m", "r", {"layers": []})
    with pytest.raises(NotFoundError):
        save_profile(store, 404, "m", "r", {"totals": {}, "layers": []})


def test_exports(store):
    s = create_session(store, "a", mlp())
    v1 = s.current_version_id
    v2 = add_version(store, s.id, mlp(seed=4), "edit").id
    e1 = add_export(store, v1, "stm32f746ng", {"flash_bytes": 10, "measured": True}, bundle=b"\x00zip\xff",
                    options={"runtime": "tflm-cmsis-nn"})
    e2 = add_export(store, v2, "rp2040", {"flash_bytes": 12}, bundle_path="/tmp/out/bundle.zip")
    assert (e1.bundle_bytes, e1.bundle_path, e1.options) == (5, None, {"runtime": "tflm-cmsis-nn"})
    assert export_bundle(store, e1.id) == b"\x00zip\xff" and export_bundle(store, e2.id) is None
    assert get_export(store, e2.id).bundle_path == "/tmp/out/bundle.zip"
    assert [e.id for e in list_exports(store, session_id=s.id)] == [e2.id, e1.id]
    assert [e.id for e in list_exports(store, version_id=v1)] == [e1.id]
    with pytest.raises(InvalidValueError, match="either"):
        add_export(store, v1, "m", {}, bundle=b"x", bundle_path="/p")
    with pytest.raises(NotFoundError):
        add_export(store, 999, "m", {}, bundle=b"x")
    delete_export(store, e1.id)
    with pytest.raises(NotFoundError):
        get_export(store, e1.id)
