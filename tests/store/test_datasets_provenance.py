"""Data sets stored with a session (migration 3) and the trained/accuracy provenance of versions."""
from __future__ import annotations

import io

import duckdb
import numpy as np
import pytest

from store import (InvalidValueError, NotFoundError, add_session_dataset, add_version, branch_session,
                   check_integrity, create_session, delete_session, delete_session_dataset, duplicate_session,
                   get_session_dataset, list_session_datasets, open_store, restore_version, session_dataset_bytes,
                   version_accuracy)
from store import datasets as ds_store
from store.schema import SCHEMA_VERSION, migrate, schema_version
from tests.store.graphs import mlp


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(40, dtype=np.float32).reshape(10, 4), y=np.arange(10) % 2)
    return buf.getvalue()


def test_v2_database_gets_the_datasets_table(tmp_path):
    path = str(tmp_path / "v2.duckdb")
    con = duckdb.connect(path)
    assert migrate(con, path, target=2) == 2
    con.close()
    with open_store(path) as store:
        s = create_session(store, "a", mlp())
        d = add_session_dataset(store, s.id, "x.npz", _npz())
        assert d.kind == "npz"
    con = duckdb.connect(path)
    try:
        assert schema_version(con) == SCHEMA_VERSION >= 3
    finally:
        con.close()


def test_add_list_read_delete_and_dedupe(store):
    s = create_session(store, "a", mlp())
    data = _npz()
    d = add_session_dataset(store, s.id, "/some/where/train.npz", data)  # only the base name is kept
    assert (d.name, d.kind, d.nbytes, d.session_id) == ("train.npz", "npz", len(data), s.id)
    assert add_session_dataset(store, s.id, "train.npz", data).id == d.id  # the same file is stored once
    e = add_session_dataset(store, s.id, "more.csv", b"a,b,label\n1,2,0\n3,4,1\n")
    assert [x.id for x in list_session_datasets(store, s.id)] == [e.id, d.id]  # newest first
    assert session_dataset_bytes(store, d.id, s.id) == data
    other = create_session(store, "b", mlp())
    with pytest.raises(NotFoundError, match="in session"):
        session_dataset_bytes(store, d.id, other.id)
    delete_session_dataset(store, e.id, s.id)
    assert [x.id for x in list_session_datasets(store, s.id)] == [d.id]
    assert get_session_dataset(store, d.id).hash == d.hash


def test_refusals_are_one_line(store, monkeypatch):
    s = create_session(store, "a", mlp())
    with pytest.raises(InvalidValueError, match=r"evil\.pkl: a data set is a \.npz, \.csv or \.zip file"):
        add_session_dataset(store, s.id, "evil.pkl", b"\x80\x04")
    with pytest.raises(InvalidValueError, match="empty"):
        add_session_dataset(store, s.id, "e.npz", b"")
    monkeypatch.setattr(ds_store, "MAX_DATASET_BYTES", 100)
    with pytest.raises(InvalidValueError, match="over the limit of 100 bytes"):
        add_session_dataset(store, s.id, "big.npz", b"x" * 101)
    monkeypatch.setattr(ds_store, "MAX_DATASET_BYTES", 10_000)
    monkeypatch.setattr(ds_store, "MAX_SESSION_DATASET_BYTES", 150)
    add_session_dataset(store, s.id, "a.npz", b"a" * 100)
    with pytest.raises(InvalidValueError, match="delete one first"):
        add_session_dataset(store, s.id, "b.npz", b"b" * 100)
    with pytest.raises(NotFoundError):
        add_session_dataset(store, 999, "a.npz", b"a")


def test_datasets_follow_duplicate_and_delete(store):
    s = create_session(store, "a", mlp())
    d = add_session_dataset(store, s.id, "train.npz", _npz())
    copy = duplicate_session(store, s.id)
    [c] = list_session_datasets(store, copy.id)
    assert c.id != d.id and c.hash == d.hash and session_dataset_bytes(store, c.id) == _npz()
    delete_session(store, s.id)
    with pytest.raises(NotFoundError):
        get_session_dataset(store, d.id)
    assert list_session_datasets(store, copy.id) == [c]
    assert check_integrity(store) == []


def test_untrained_until_trained(store):
    s = create_session(store, "zoo", mlp(), model="zoo:x", action="zoo")
    v1 = s.current_version_id
    st = version_accuracy(store, v1)
    assert st["trained"] is False and st["accuracy"] is None and "random" in st["reason"]
    # int8 PTQ of an untrained model keeps it untrained, whatever accuracy the action measured.
    q = add_version(store, s.id, mlp(seed=1), "quantize-int8", {"accuracy": 0.1, "dataset": {"source": "d"}})
    assert version_accuracy(store, q.id)["trained"] is False
    assert version_accuracy(store, q.id)["accuracy"] is None
    # A fine-tuning action with epochs on data trains it; without epochs it does not.
    p0 = add_version(store, s.id, mlp(seed=2), "prune-channels", {"epochs": 0, "accuracy": 0.2,
                                                                   "dataset": {"source": "d"}})
    assert version_accuracy(store, p0.id)["trained"] is False
    p1 = add_version(store, s.id, mlp(seed=3), "prune-channels", {"epochs": 2, "accuracy": 0.9,
                                                                   "dataset": {"source": "d"}})
    assert version_accuracy(store, p1.id) == {"trained": True, "accuracy": 0.9, "dataset": {"source": "d"},
                                              "reason": "prune-channels fine-tuned on data"}
    t = add_version(store, s.id, mlp(seed=4), "train", {"trained": True, "accuracy": 0.97,
                                                         "dataset": {"source": "builtin:digits"}},
                    parent_id=v1)
    assert version_accuracy(store, t.id)["accuracy"] == 0.97
    # Compressing the trained version keeps it trained, with the accuracy measured after the action.
    q2 = add_version(store, s.id, mlp(seed=5), "quantize-int8", {"accuracy": 0.96}, parent_id=t.id)
    assert version_accuracy(store, q2.id)["trained"] is True and version_accuracy(store, q2.id)["accuracy"] == 0.96
    # Restoring and branching copy the state of the version they copy.
    r = restore_version(store, s.id, t.id)
    assert version_accuracy(store, r.id)["accuracy"] == 0.97
    b = branch_session(store, v1)
    assert version_accuracy(store, b.current_version_id)["trained"] is False


def test_imported_files_count_as_trained_and_edits_keep_it_only_with_the_same_weights(store):
    s = create_session(store, "kws.tflite", mlp(), action="import", params={"file": "kws.tflite"})
    st = version_accuracy(store, s.current_version_id)
    assert st["trained"] is True and st["accuracy"] is None and "imported" in st["reason"]
    g = mlp()
    g.nodes[1].name = "relu_renamed"  # structure changes, constants stay
    same = add_version(store, s.id, g, "edit", {"via": "canvas"})
    assert version_accuracy(store, same.id)["trained"] is True
    changed = add_version(store, s.id, mlp((16, 8, 4)), "edit", {"via": "canvas"})
    st = version_accuracy(store, changed.id)
    assert st["trained"] is False and "edited after training" in st["reason"]
    blank = create_session(store, "blank", mlp(), action="blank")
    assert version_accuracy(store, blank.current_version_id)["trained"] is False
    with pytest.raises(NotFoundError):
        version_accuracy(store, 12345)
