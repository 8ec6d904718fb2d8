"""store.schedules: the schedule chosen for a version is a new version holding it, inherited by later ones."""
from __future__ import annotations

import pytest

import store as db
from engine.zoo import build_zoo_model


@pytest.fixture
def st(tmp_path):
    return db.open_store(str(tmp_path / "s.duckdb"))


def test_set_and_inherit_schedule(st):
    g = build_zoo_model("zoo:lenet5")
    s = db.create_session(st, "a", g, model="zoo:lenet5", action="zoo")
    v1 = db.current_version(st, s.id)
    assert db.version_schedule(st, v1.id) is None
    rec = {"requested": "auto", "max_mac_overhead": 0.1, "schedule": {"kind": "inplace", "inplace": ["dw"]}}
    v2 = db.set_schedule(st, s.id, v1.id, rec)
    assert v2.action == "schedule" and v2.parent_id == v1.id and db.current_version(st, s.id).id == v2.id
    assert db.get_version(st, v2.id).graph_hash == v1.graph_hash
    assert db.version_schedule(st, v2.id) == rec
    v3 = db.add_version(st, s.id, g, "rename", {})
    assert db.version_schedule(st, v3.id) == rec          # inherited from the nearest ancestor
    assert db.version_schedule(st, v1.id) is None         # history is never rewritten


@pytest.mark.parametrize("bad, needle", [
    ({"requested": "diag", "max_mac_overhead": 0.1, "schedule": {}}, "requested"),
    ({"requested": "auto", "max_mac_overhead": "x", "schedule": {}}, "max_mac_overhead"),
    ({"requested": "auto", "max_mac_overhead": 0.1}, "schedule"),
])
def test_bad_records_are_refused(st, bad, needle):
    g = build_zoo_model("zoo:lenet5")
    s = db.create_session(st, "a", g, model="zoo:lenet5", action="zoo")
    with pytest.raises(db.InvalidValueError, match=needle):
        db.set_schedule(st, s.id, db.current_version(st, s.id).id, bad)
    assert len(db.list_versions(st, s.id)) == 1


def test_history_says_what_a_schedule_version_is():
    from app.history_view import action_words

    rec = {"requested": "auto", "max_mac_overhead": 0.1, "schedule": {"kind": "patch+inplace"}}
    assert action_words("schedule", {"schedule": rec}, {}) == "schedule patch+inplace, asked auto, MAC limit 10 %"
    assert action_words("schedule", {"schedule": "damaged"}, {}) == "schedule ?"
