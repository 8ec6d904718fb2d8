"""Opening databases: creation, migrations (empty file, v1 -> current), refusals, locks, restart persistence."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

from engine.errors import TinyStudioError
from store import (SCHEMA_VERSION, SchemaTooNewError, StoreError, StoreLockedError, add_version, branch_session,
                   check_integrity, create_job, create_session, get_graph, get_job, get_session, list_sessions,
                   list_versions, open_store, profile_version, update_job)
from store.db import default_db_path
from store.graphs import encode_graph
from store.schema import MIGRATIONS, migrate, schema_version
from tests.store.graphs import mlp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _versions_applied(path: str) -> list[int]:
    con = duckdb.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    finally:
        con.close()


def test_first_open_creates_folders_file_and_schema(tmp_path):
    path = tmp_path / "deep" / "er" / "studio.duckdb"
    with open_store(str(path)) as store:
        assert list_sessions(store) == []
    assert path.is_file()
    assert _versions_applied(str(path)) == list(range(1, SCHEMA_VERSION + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_default_path_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == str(tmp_path / "tinystudio" / "studio.duckdb")
    with open_store() as store:
        assert store.path == str(tmp_path / "tinystudio" / "studio.duckdb")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_db_path().endswith(os.path.join(".local", "share", "tinystudio", "studio.duckdb"))


def test_empty_file_is_migrated_from_scratch(tmp_path):
    path = tmp_path / "studio.duckdb"
    path.write_bytes(b"")
    with open_store(str(path)) as store:
        s = create_session(store, "a", mlp())
        assert get_session(store, s.id).version_count == 1
    assert _versions_applied(str(path)) == list(range(1, SCHEMA_VERSION + 1))


def test_v1_database_is_migrated_with_its_data(tmp_path):
    path = str(tmp_path / "v1.duckdb")
    graph = mlp((8, 12, 3), seed=5)
    enc = encode_graph(graph)
    con = duckdb.connect(path)
    assert migrate(con, path, target=1) == 1
    assert schema_version(con) == 1
    # A session written by a v1 TinyStudio: the columns v1 had, ids from its sequences.
    con.execute("INSERT INTO sessions VALUES (nextval('session_ids'), 'old', 'mlp', 1, "
                "TIMESTAMP '2024-05-01 10:00:00', TIMESTAMP '2024-05-01 10:00:00')")
    con.execute("INSERT INTO blobs VALUES (?, ?, ?, ?)",
                [enc.blob_hash, json.dumps(enc.keys), enc.blob, len(enc.blob)])
    con.execute("INSERT INTO versions VALUES (nextval('version_ids'), 1, NULL, ?, ?, ?, 'import', '{}', ?, ?, "
                "TIMESTAMP '2024-05-01 10:00:00')",
                [json.dumps(enc.doc), enc.blob_hash, enc.graph_hash, json.dumps(enc.metrics), json.dumps(enc.layers)])
    con.close()

    with open_store(path) as store:
        s = get_session(store, 1)
        assert (s.name, s.model, s.version_count, s.source_version_id) == ("old", "mlp", 1, None)
        assert s.created == "2024-05-01T10:00:00.000000Z"
        from engine.serialize import content_hash
        assert content_hash(get_graph(store, 1)) == enc.graph_hash
        # What v2 added works on the migrated data.
        b = branch_session(store, 1)
        assert b.source_version_id == 1
        job = update_job(store, create_job(store, 1, "verify").id, 0.25)
        assert job.status == "running"
        v = add_version(store, 1, mlp((8, 16, 3)), "edit")
        assert v.parent_id == 1
        assert check_integrity(store) == []
    assert _versions_applied(path) == list(range(1, SCHEMA_VERSION + 1))


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = str(tmp_path / "new.duckdb")
    open_store(path).close()
    con = duckdb.connect(path)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', TIMESTAMP '2030-01-01 00:00:00')",
                [SCHEMA_VERSION + 7])
    con.close()
    with pytest.raises(SchemaTooNewError) as e:
        open_store(path)
    msg = str(e.value)
    assert "\n" not in msg and str(SCHEMA_VERSION + 7) in msg and "newer" in msg and path in msg
    assert _versions_applied(path)[-1] == SCHEMA_VERSION + 7
    open_store(str(tmp_path / "other.duckdb")).close()  # the failed open left no registry entry behind


def test_foreign_and_garbage_files_are_refused(tmp_path):
    foreign = str(tmp_path / "foreign.duckdb")
    con = duckdb.connect(foreign)
    con.execute("CREATE TABLE sales (x INT)")
    con.close()
    with pytest.raises(StoreError, match="not a TinyStudio database.*sales"):
        open_store(foreign)
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="not a TinyStudio database") as e:
        open_store(str(garbage))
    assert "\n" not in str(e.value)
    assert garbage.read_bytes() == b"this is not a database at all" * 200


def test_file_held_by_another_process_gives_a_clear_error(tmp_path):
    path = str(tmp_path / "held.duckdb")
    code = ("import sys; from store import open_store; s = open_store(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, path], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as e:
            open_store(path)
        msg = str(e.value)
        assert f"process {p.pid}" in msg and "--db" in msg and "\n" not in msg
        assert isinstance(e.value, TinyStudioError)
    finally:
        p.stdin.close()
        p.wait(timeout=20)
    open_store(path).close()  # free again once the other process is gone


def test_same_path_in_one_process_shares_one_store(tmp_path):
    path = str(tmp_path / "s.duckdb")
    a = open_store(path)
    b = open_store(os.path.join(str(tmp_path), ".", "s.duckdb"))
    assert a is b
    a.close()
    assert not b.closed and list_sessions(b) == []
    b.close()
    assert b.closed
    with pytest.raises(StoreError, match="closed"):
        list_sessions(b)


def test_everything_is_back_after_a_restart(tmp_path):
    path = str(tmp_path / "restart.duckdb")
    target = ("stm32f746ng", "tflm-cmsis-nn")
    with open_store(path) as store:
        s = create_session(store, "KWS lab", mlp((10, 20, 4)), model="mlp-10", action="zoo", params={"w": 1})
        v2 = add_version(store, s.id, mlp((10, 30, 4)), "set_channels", {"node": "fc1", "channels": 30})
        prof = profile_version(store, v2.id, [target])[target]
        running = update_job(store, create_job(store, s.id, "train", {"epochs": 3}).id, 0.4, "epoch 2")
        before_sessions = list_sessions(store)
        before_versions = list_versions(store, s.id)
        before_graphs = [encode_graph(get_graph(store, v.id)).graph_hash for v in before_versions]
    with open_store(path) as store:
        assert list_sessions(store) == before_sessions
        assert list_versions(store, s.id) == before_versions
        assert [encode_graph(get_graph(store, v.id)).graph_hash for v in before_versions] == before_graphs
        assert before_graphs == [v.graph_hash for v in before_versions]
        assert profile_version(store, v2.id, [target])[target] == json.loads(json.dumps(prof))
        job = get_job(store, running.id)
        # the process that ran it is gone: marked failed, with a reason, instead of spinning forever
        assert job.status == "failed" and "interrupted" in job.message and job.progress == pytest.approx(0.4)
        assert check_integrity(store) == []
