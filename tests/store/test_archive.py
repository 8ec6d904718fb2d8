"""Session files: export/import round trip, and every kind of broken file refused with one line, nothing written."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import store.archive as archive
from store import (SessionFileError, StoreError, add_version, branch_session, check_integrity, create_session,
                   export_session_bytes, export_session_file, get_session, import_session_bytes, import_session_file,
                   list_profiles, list_versions, open_store, profile_version, restore_version)
from tests.store.graphs import mlp


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def _tree(store, sid):
    vs = list_versions(store, sid)
    idx = {v.id: i for i, v in enumerate(vs)}
    return [(idx.get(v.parent_id), v.action, v.params, v.graph_hash, v.metrics, v.created) for v in vs]


@pytest.fixture
def session_file(store, tmp_path):
    s = create_session(store, "KWS lab", mlp((16, 32, 4), seed=1), model="zoo:kws", action="zoo")
    v1 = s.current_version_id
    v2 = add_version(store, s.id, mlp((16, 48, 4), seed=2), "set_channels", {"node": "fc1", "channels": 48})
    add_version(store, s.id, mlp((16, 8, 4), seed=3), "edit", parent_id=v1)
    restore_version(store, s.id, v2.id)
    profile_version(store, v2.id, [("stm32f746ng", "tflm-cmsis-nn")])
    path = export_session_file(store, s.id, str(tmp_path / "kws.tinystudio"))
    return s.id, path


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def _counts(store):
    with store.transaction() as con:
        return [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("sessions", "versions", "blobs", "profiles")]


def test_round_trip_into_the_same_and_a_fresh_database(store, session_file, tmp_path):
    sid, path = session_file
    assert sorted(_members(path)) == ["constants/0.npz", "constants/1.npz", "constants/2.npz", "graphs/0.json",
                                      "graphs/1.json", "graphs/2.json", "graphs/3.json", "session.json"]
    imported = import_session_file(store, path)
    assert imported.id != sid and (imported.name, imported.model, imported.version_count) == ("KWS lab", "zoo:kws", 4)
    assert _tree(store, imported.id) == _tree(store, sid)
    cur = {s.id: s.current_version_id for s in (get_session(store, sid), imported)}
    assert list_versions(store, imported.id)[-1].id == cur[imported.id]
    with open_store(str(tmp_path / "fresh.duckdb")) as other:
        again = import_session_file(other, path, name="moved")
        assert again.name == "moved"
        assert [t[3] for t in _tree(other, again.id)] == [t[3] for t in _tree(store, sid)]  # content hashes
        v2 = list_versions(other, again.id)[1]
        assert [p["mcu"] for p in list_profiles(other, v2.id)] == ["stm32f746ng"]
        assert check_integrity(other) == []
    assert check_integrity(store) == []


def test_bytes_round_trip_and_unwritable_target(store, session_file, tmp_path):
    sid, path = session_file
    data = export_session_bytes(store, sid)
    s = import_session_bytes(store, data, filename="upload.tinystudio")
    assert [t[3] for t in _tree(store, s.id)] == [t[3] for t in _tree(store, sid)]
    with pytest.raises(SessionFileError, match="^upload.tinystudio: corrupted"):
        import_session_bytes(store, data[:100], filename="upload.tinystudio")
    with pytest.raises(StoreError, match="cannot write"):
        export_session_file(store, sid, str(tmp_path / "no" / "such" / "dir" / "x.tinystudio"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tinystudio-")) == []


def test_branch_and_empty_sessions_export(store, tmp_path):
    s = create_session(store, "blank")
    p = export_session_file(store, s.id, str(tmp_path / "blank.tinystudio"))
    assert import_session_file(store, p).version_count == 0
    src = create_session(store, "src", mlp(seed=5))
    b = branch_session(store, src.current_version_id)
    b2 = import_session_file(store, export_session_file(store, b.id, str(tmp_path / "b.tinystudio")))
    assert _tree(store, b2.id) == _tree(store, b.id)


def _manifest_edit(members, fn):
    m = json.loads(members["session.json"])
    fn(m)
    members["session.json"] = json.dumps(m).encode()
    return members


def _graph_edit(members, i, fn):
    doc = json.loads(members[f"graphs/{i}.json"])
    fn(doc)
    members[f"graphs/{i}.json"] = json.dumps(doc).encode()
    return members


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _scaled(blob: bytes) -> bytes:
    """The same constants under the same keys, one value changed."""
    with np.load(io.BytesIO(blob)) as z:
        arrays = {k: z[k].copy() for k in z.files}
    first = sorted(arrays)[0]
    arrays[first].flat[0] += 1.0
    return _npz(**arrays)


def _object_npz() -> bytes:
    # an .npz whose array needs pickle to load: numpy must refuse it, nobody may unpickle it
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        arr = io.BytesIO()
        np.save(arr, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        z.writestr("t0.npy", arr.getvalue())
    return buf.getvalue()


def _huge_header_npz() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        arr = io.BytesIO()
        np.lib.format.write_array_header_1_0(arr, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20)})
        z.writestr("t0.npy", arr.getvalue() + b"\0" * 64)
    return buf.getvalue()


def _hash_consistent_dangling(members):
    # a graph whose recorded hash matches but which does not validate (a node reads a missing tensor)
    from engine.serialize import content_hash, loads
    doc = json.loads(members["graphs/0.json"])
    doc["nodes"][0]["inputs"][0] = "nowhere"
    g = loads(doc, members["constants/0.npz"])
    members["graphs/0.json"] = json.dumps(doc).encode()
    return _manifest_edit(members, lambda m: m["versions"][0].__setitem__("graph_hash", content_hash(g)))


CORRUPTIONS = {
    "not a zip": (lambda m, raw: b"PK\x03\x04 definitely not a zip" * 10, "corrupted"),
    "truncated": (lambda m, raw: raw[: len(raw) // 2], "corrupted"),
    "bit flip in constants": (None, "corrupted"),
    "path escape": (lambda m, raw: {**m, "../../evil.json": b"{}"}, "unexpected member '../../evil.json'"),
    "absolute path": (lambda m, raw: {**m, "/etc/passwd": b"x"}, "unexpected member"),
    "extra member": (lambda m, raw: {**m, "graphs/9.json": b"{}"}, "do not match"),
    "missing graph": (lambda m, raw: {k: v for k, v in m.items() if k != "graphs/1.json"}, "do not match"),
    "no manifest": (lambda m, raw: {k: v for k, v in m.items() if k != "session.json"}, "session.json is missing"),
    "manifest not json": (lambda m, raw: {**m, "session.json": b"{nope"}, "corrupted"),
    "wrong format": (lambda m, raw: _manifest_edit(m, lambda d: d.__setitem__("format", "zip")), "format"),
    "newer format": (lambda m, raw: _manifest_edit(m, lambda d: d.__setitem__("version", 99)),
                     "format version 99 is newer"),
    "parent cycle": (lambda m, raw: _manifest_edit(m, lambda d: d["versions"][1].__setitem__("parent", 3)),
                     r"versions\[1\].parent"),
    "current out of range": (lambda m, raw: _manifest_edit(m, lambda d: d.__setitem__("current", 17)), "current"),
    "bad hash field": (lambda m, raw: _manifest_edit(m, lambda d: d["versions"][0].__setitem__("graph_hash", "x")),
                       "sha256"),
    "bad timestamp": (lambda m, raw: _manifest_edit(m, lambda d: d["versions"][0].__setitem__("created", "May")),
                      "timestamp"),
    "empty name": (lambda m, raw: _manifest_edit(m, lambda d: d["session"].__setitem__("name", " ")), "empty"),
    "graph changed": (lambda m, raw: _graph_edit(m, 1, lambda d: d["nodes"][0]["attrs"].__setitem__("transB", 0)),
                      "version 1: graph content differs from its recorded hash"),
    "weights changed": (lambda m, raw: {**m, "constants/0.npz": _scaled(m["constants/0.npz"])},
                        "version 0: graph content differs from its recorded hash"),
    "constants keys changed": (lambda m, raw: {**m, "constants/0.npz": _npz(x=np.zeros(3, np.float32))},
                               "version 0: graph does not decode"),
    "pickled constants": (lambda m, raw: {**m, "constants/0.npz": _object_npz()}, "version 0"),
    "huge array header": (lambda m, raw: {**m, "constants/0.npz": _huge_header_npz()}, "declares more data"),
    "invalid graph": (lambda m, raw: _hash_consistent_dangling(m), "version 0: .*dangling"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupted_files_are_refused_and_nothing_is_written(store, session_file, tmp_path, case):
    _, path = session_file
    raw = open(path, "rb").read()
    make, match = CORRUPTIONS[case]
    bad = tmp_path / "bad.tinystudio"
    if make is None:  # flip bytes inside the stored (uncompressed) constants of version 0
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("constants/0.npz")
        off = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
        bad.write_bytes(raw[:off] + bytes(b ^ 0x55 for b in raw[off:off + 8]) + raw[off + 8:])
    else:
        out = make(_members(path), raw)
        if isinstance(out, bytes):
            bad.write_bytes(out)
        else:
            _write(bad, out)
    before = _counts(store)
    with pytest.raises(SessionFileError, match=match) as e:
        import_session_file(store, str(bad))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(bad))
    assert _counts(store) == before


def test_size_limits(store, session_file, monkeypatch):
    _, path = session_file
    monkeypatch.setattr(archive, "MAX_FILE_BYTES", 1000)
    with pytest.raises(SessionFileError, match="over the limit of 1,000"):
        import_session_file(store, path)
    monkeypatch.setattr(archive, "MAX_FILE_BYTES", 1 << 30)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 5000)
    with pytest.raises(SessionFileError, match="over the limit of 5,000"):
        import_session_file(store, path)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1 << 30)
    monkeypatch.setattr(archive, "MAX_JSON_BYTES", 100)
    with pytest.raises(SessionFileError, match="session.json is .* bytes, over the limit of 100$"):
        import_session_file(store, path)
    assert _counts(store)[0] == 1


def test_missing_file(store, tmp_path):
    with pytest.raises(SessionFileError, match="cannot read"):
        import_session_file(store, str(tmp_path / "nope.tinystudio"))
