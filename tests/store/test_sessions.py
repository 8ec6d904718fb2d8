"""Sessions and versions: create, list, rename, duplicate, branch, delete, add, restore, compare, errors."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import GraphError, TinyStudioError
from engine.ir import Node
from engine.serialize import content_hash
from store import (InvalidValueError, NotFoundError, VersionNotInSessionError, add_export, add_version,
                   branch_session, check_integrity, compare_versions, create_job, create_session, current_graph,
                   current_version, delete_session, duplicate_session, get_graph, get_session, get_version,
                   list_exports, list_jobs, list_sessions, list_versions, open_store, profile_version,
                   rename_session, restore_version, save_profile, version_layers)
from tests.store.graphs import mlp, mlp_macs


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def _count(store, table: str) -> int:
    with store.transaction() as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_create_list_rename(store):
    a = create_session(store, "  KWS lab ", mlp((16, 32, 4)), model="zoo:kws", action="zoo", params={"seed": 0})
    assert (a.name, a.model, a.version_count) == ("KWS lab", "zoo:kws", 1)
    v = get_version(store, a.current_version_id)
    assert (v.action, v.params, v.parent_id, v.session_id) == ("zoo", {"seed": 0}, None, a.id)
    assert v.metrics["macs"] == mlp_macs((16, 32, 4)) and v.metrics["params"] == 16 * 32 + 32 + 32 * 4 + 4
    assert v.metrics["arena_bytes"] > 0 and v.metrics["inputs"] == [{"name": "X", "shape": [1, 16],
                                                                     "dtype": "float32"}]
    blank = create_session(store, "blank canvas")
    assert blank.version_count == 0 and blank.current_version_id is None and current_version(store, blank.id) is None
    with pytest.raises(NotFoundError, match="no saved graph"):
        current_graph(store, blank.id)
    add_version(store, a.id, mlp((16, 8, 4)), "edit")
    listed = list_sessions(store)
    assert [s.id for s in listed] == [a.id, blank.id]  # last change first
    assert listed[0].version_count == 2 and listed[0].updated > listed[0].created
    r = rename_session(store, blank.id, "renamed")
    assert r.name == "renamed" and list_sessions(store)[0].id == blank.id


def test_duplicate_names_are_allowed_and_told_apart_by_id(store):
    a = create_session(store, "same", mlp())
    b = create_session(store, "same", mlp())
    assert a.id != b.id
    assert sorted(s.id for s in list_sessions(store) if s.name == "same") == sorted([a.id, b.id])


@pytest.mark.parametrize("name, match", [("", "empty"), ("   ", "empty"), ("x" * 201, "longer than 200"),
                                         ("a\nb", "control"), (7, "must be text")])
def test_bad_names_are_refused_without_writing(store, name, match):
    with pytest.raises(InvalidValueError, match=match):
        create_session(store, name, mlp())
    assert _count(store, "sessions") == 0 and _count(store, "versions") == 0


def test_unknown_ids_and_foreign_versions(store):
    a = create_session(store, "a", mlp())
    b = create_session(store, "b", mlp(seed=1))
    for call in (lambda: get_session(store, 999), lambda: rename_session(store, 999, "x"),
                 lambda: add_version(store, 999, mlp(), "edit"), lambda: delete_session(store, 999),
                 lambda: get_version(store, 999), lambda: get_graph(store, 999), lambda: branch_session(store, 999)):
        with pytest.raises(NotFoundError) as e:
            call()
        assert "999" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VersionNotInSessionError, match=f"belongs to session {b.id}, not to session {a.id}"):
        restore_version(store, a.id, b.current_version_id)
    with pytest.raises(VersionNotInSessionError):
        add_version(store, a.id, mlp(), "edit", parent_id=b.current_version_id)
    with pytest.raises(InvalidValueError, match="integer id"):
        get_session(store, "1")
    # ids picked from a dataframe arrive as numpy integers
    assert get_session(store, np.int64(a.id)).id == a.id
    assert add_version(store, np.int32(a.id), mlp(seed=3), "edit", parent_id=np.int64(a.current_version_id)).id
    assert list_versions(store, a.id)[0].id == a.current_version_id


def test_invalid_graph_writes_nothing(store):
    a = create_session(store, "a", mlp())
    bad = mlp()
    bad.nodes.append(Node("Relu", "dangling", ["nowhere"], ["y2"], {}))
    with pytest.raises(GraphError, match="dangling") as e:
        add_version(store, a.id, bad, "edit")
    assert isinstance(e.value, TinyStudioError)
    assert get_session(store, a.id).version_count == 1 and _count(store, "versions") == 1


def test_versions_chain_restore_and_history(store):
    widths = [(16, 32, 4), (16, 64, 4), (16, 8, 4)]
    s = create_session(store, "h", mlp(widths[0]))
    v1 = s.current_version_id
    v2 = add_version(store, s.id, mlp(widths[1]), "set_channels", {"node": "fc1", "channels": 64})
    v3 = add_version(store, s.id, mlp(widths[2]), "set_channels", {"node": "fc1", "channels": 8})
    assert (v2.parent_id, v3.parent_id) == (v1, v2.id)
    side = add_version(store, s.id, mlp((16, 12, 4)), "edit", parent_id=v1)  # a fork inside the session
    assert side.parent_id == v1 and get_session(store, s.id).current_version_id == side.id
    r = restore_version(store, s.id, v2.id)
    assert (r.action, r.params, r.parent_id) == ("restore", {"version_id": v2.id}, side.id)
    assert r.graph_hash == v2.graph_hash and r.metrics == v2.metrics
    assert content_hash(current_graph(store, s.id)) == v2.graph_hash
    history = list_versions(store, s.id)
    assert [v.id for v in history] == [v1, v2.id, v3.id, side.id, r.id]  # nothing rewritten
    assert [v.parent_id for v in history] == [None, v1, v2.id, v1, side.id]
    assert _count(store, "blobs") == 4  # the restore shares v2's constants
    assert check_integrity(store) == []


def test_identical_constants_are_stored_once(store):
    s = create_session(store, "a", mlp(seed=3))
    g = mlp(seed=3)
    g.meta["layout_positions"] = {"fc1": [10, 20]}  # meta differs, content does not
    v = add_version(store, s.id, g, "move_nodes")
    assert v.graph_hash == get_version(store, s.current_version_id).graph_hash
    assert _count(store, "blobs") == 1 and _count(store, "versions") == 2
    assert get_graph(store, v.id).meta["layout_positions"] == {"fc1": [10, 20]}


def test_compare_versions(store):
    s = create_session(store, "c", mlp((16, 32, 4)))
    a = s.current_version_id
    g = mlp((16, 64, 4))
    b = add_version(store, s.id, g, "set_channels").id
    d = compare_versions(store, a, b)
    assert not d["identical"]
    assert d["totals"]["macs"] == {"a": 640, "b": 1280, "delta": 640}
    rows = {r["name"]: r for r in d["layers"]}
    assert [r["name"] for r in d["layers"]] == ["fc1", "relu1", "fc2"]
    assert rows["fc1"]["status"] == "changed" and rows["fc1"]["output_shape_changed"]
    assert rows["fc1"]["a"]["output_shape"] == [1, 32] and rows["fc1"]["b"]["output_shape"] == [1, 64]
    assert rows["fc1"]["delta"] == {"macs": 16 * 32, "params": 16 * 32 + 32, "weight_bytes": 4 * (16 * 32 + 32)}
    assert rows["fc2"]["delta"]["macs"] == 4 * 32
    # a layer added and one removed: a deeper MLP against the first
    c = add_version(store, s.id, mlp((16, 32, 8, 4)), "add_layer").id
    d2 = compare_versions(store, a, c)
    assert d2["counts"] == {"same": 2, "changed": 1, "added": 2, "removed": 0}
    assert [(r["name"], r["status"]) for r in d2["layers"]] == [
        ("fc1", "same"), ("relu1", "same"), ("fc2", "changed"), ("relu2", "added"), ("fc3", "added")]
    added = {r["name"]: r for r in d2["layers"]}["fc3"]
    assert added["a"] is None and added["delta"]["macs"] == 8 * 4
    back = compare_versions(store, c, a)
    assert {r["name"]: r["status"] for r in back["layers"]}["fc3"] == "removed"
    assert back["totals"]["macs"]["delta"] == -d2["totals"]["macs"]["delta"]
    assert compare_versions(store, a, restore_version(store, s.id, a).id)["identical"]
    assert version_layers(store, a)[0]["name"] == "fc1"


def test_branch_from_any_version(store):
    create_session(store, "other", mlp((16, 8, 4)))  # so that database ids and per-session numbers differ
    s = create_session(store, "src", mlp((16, 32, 4)), model="m")
    v2 = add_version(store, s.id, mlp((16, 48, 4)), "edit")
    add_version(store, s.id, mlp((16, 40, 4)), "edit")
    b = branch_session(store, v2.id)  # the middle version
    assert (b.name, b.model, b.version_count, b.source_version_id) == ("src (branch of v2)", "m", 1, v2.id)
    first = get_version(store, b.current_version_id)
    assert first.action == "branch" and first.params == {"session_id": s.id, "version_id": v2.id}
    assert first.parent_id is None and first.graph_hash == v2.graph_hash
    add_version(store, b.id, mlp((16, 50, 4)), "edit")
    assert get_session(store, s.id).version_count == 3  # the source is untouched
    named = branch_session(store, v2.id, name="experiment")
    assert named.name == "experiment"


def test_duplicate_copies_the_whole_tree(store):
    s = create_session(store, "orig", mlp((16, 32, 4)))
    v1 = s.current_version_id
    add_version(store, s.id, mlp((16, 8, 4)), "edit")
    add_version(store, s.id, mlp((16, 12, 4)), "edit", parent_id=v1)
    save_profile(store, v1, "mcu", "rt", {"totals": {"macs": 1}, "layers": []})
    d = duplicate_session(store, s.id)
    assert d.name == "orig (copy)" and d.version_count == 3 and d.id != s.id
    old, new = list_versions(store, s.id), list_versions(store, d.id)
    assert [v.graph_hash for v in new] == [v.graph_hash for v in old]
    assert [v.action for v in new] == [v.action for v in old] and [v.created for v in new] == [v.created for v in old]
    idx = {v.id: i for i, v in enumerate(new)}
    assert [idx.get(v.parent_id) for v in new] == [None, 0, 0]
    assert new[-1].id == d.current_version_id
    assert _count(store, "profiles") == 2 and _count(store, "blobs") == 3
    rename_session(store, d.id, "copy renamed")
    assert get_session(store, s.id).name == "orig"


def test_delete_cascades_and_keeps_shared_constants(store):
    a = create_session(store, "a", mlp(seed=1))
    v2 = add_version(store, a.id, mlp(seed=2), "edit")
    target = ("stm32f746ng", "tflm-cmsis-nn")
    profile_version(store, v2.id, [target])
    b = branch_session(store, v2.id)  # shares the seed=2 constants and copies the profile
    create_job(store, a.id, "verify")
    add_export(store, v2.id, "stm32f746ng", {"ok": True}, bundle=b"bytes")
    delete_session(store, a.id)
    with pytest.raises(NotFoundError):
        get_session(store, a.id)
    assert _count(store, "versions") == 1 and _count(store, "blobs") == 1  # seed=1 constants are gone
    assert list_jobs(store) == [] and list_exports(store) == []
    assert _count(store, "profiles") == 1  # the branch's copy of the profile stays
    left = get_session(store, b.id)
    assert left.source_version_id is None  # its source was deleted with the session
    assert content_hash(current_graph(store, b.id)) == content_hash(mlp(seed=2))
    assert check_integrity(store) == []
    delete_session(store, b.id)
    assert [_count(store, t) for t in ("sessions", "versions", "blobs", "profiles")] == [0, 0, 0, 0]


def test_failed_action_rolls_back_everything(store):
    s = create_session(store, "a", mlp())
    with pytest.raises(RuntimeError):
        with store.transaction():
            add_version(store, s.id, mlp(seed=9), "edit")  # joins the outer transaction
            create_session(store, "b", mlp(seed=10))
            raise RuntimeError("the action failed after writing")
    assert [x.name for x in list_sessions(store)] == ["a"] and _count(store, "versions") == 1
    assert _count(store, "blobs") == 1


def test_integrity_check_reports_damage(store):
    # the crash test relies on this checker: it must see each kind of damage
    a = create_session(store, "a", mlp(seed=1))
    b = create_session(store, "b", mlp(seed=2))
    c = create_session(store, "c", mlp(seed=3))
    assert check_integrity(store) == []
    with store.transaction() as con:
        con.execute("UPDATE versions SET graph_hash = ? WHERE id = ?", ["0" * 64, a.current_version_id])
        con.execute("UPDATE sessions SET current_version_id = 999 WHERE id = ?", [b.id])
        con.execute("DELETE FROM blobs WHERE hash = (SELECT blob_hash FROM versions WHERE id = ?)",
                    [c.current_version_id])
        con.execute("INSERT INTO versions SELECT 500, 77, 499, graph_doc, blob_hash, graph_hash, action, params, "
                    "metrics, layers, created FROM versions WHERE id = ?", [a.current_version_id])
    problems = check_integrity(store)
    assert f"version {a.current_version_id}: graph content hash differs from the recorded hash" in problems
    assert f"session {b.id}: current version 999 is missing or in another session" in problems
    assert any(p.startswith(f"version {c.current_version_id}: constants ") for p in problems)
    assert "version 500: session 77 is missing" in problems
    assert "version 500: parent 499 is missing, in another session or newer" in problems


def test_versions_are_numbered_per_session(store):
    """v1, v2, ... per session whatever the database ids (sessions interleave), kept by every way to read a
    version, by restore, duplicate and branch."""
    a = create_session(store, "a", mlp((16, 32, 4)))
    b = create_session(store, "b", mlp((16, 8, 4)))
    a2 = add_version(store, a.id, mlp((16, 48, 4)), "edit")
    b2 = add_version(store, b.id, mlp((16, 12, 4)), "edit")
    a3 = restore_version(store, a.id, a.current_version_id)  # back to v1
    assert [(v.id, v.number) for v in list_versions(store, a.id)] == [(1, 1), (a2.id, 2), (a3.id, 3)]
    assert [v.number for v in list_versions(store, b.id)] == [1, 2] and b2.id == 4 and b2.label == "v2"
    assert (a2.number, a3.number, get_version(store, a3.id).number, current_version(store, a.id).number) == (2, 3, 3, 3)
    assert get_version(store, a3.id).to_json()["number"] == 3
    d = duplicate_session(store, a.id)
    assert [v.number for v in list_versions(store, d.id)] == [1, 2, 3]
    br = branch_session(store, a2.id)
    assert br.name == "a (branch of v2)" and [v.number for v in list_versions(store, br.id)] == [1]


def test_the_uploaded_file_is_kept_with_the_session(store):
    """The bytes of the uploaded file come back as uploaded, for the session, its duplicates and branches;
    stored once per content; kept while a session names them, collected after; no integrity finding."""
    from store import session_upload

    data = b"TFL3" + bytes(range(256)) * 40
    a = create_session(store, "kws.tflite", mlp((16, 32, 4)), action="import", params={"file": "kws.tflite"},
                       upload=data)
    assert session_upload(store, a.id) == ("kws.tflite", data)
    assert get_version(store, a.current_version_id).params["upload"].startswith("upload:")
    add_version(store, a.id, mlp((16, 48, 4)), "edit")
    b = create_session(store, "again", mlp((16, 8, 4)), action="import", params={"file": "same.tflite"}, upload=data)
    assert _count(store, "blobs") == 4  # three graphs' constants + one upload
    assert session_upload(store, duplicate_session(store, a.id).id) == ("kws.tflite", data)
    br = branch_session(store, get_version(store, a.current_version_id).id)
    assert session_upload(store, br.id) == ("kws.tflite", data)
    assert session_upload(store, create_session(store, "zoo", mlp((16, 4))).id) is None
    assert check_integrity(store) == []
    delete_session(store, a.id)
    assert session_upload(store, b.id) == ("same.tflite", data)  # still named by b (and the duplicate)
    for s in list_sessions(store):
        delete_session(store, s.id)
    assert _count(store, "blobs") == 0 and check_integrity(store) == []
