"""check_integrity's start-up mode (deep="changed"): verified versions are not decoded again, yet any change to
the stored bytes of a version or of its constants since it was verified is still found."""
from __future__ import annotations

import pytest

import store.integrity as integrity
from store import add_version, check_integrity, create_session, delete_session, open_store, restore_version
from tests.store.graphs import mlp


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


@pytest.fixture
def hashed(monkeypatch):
    """Counts the graphs the checker hashes (its unit of work)."""
    calls = []
    real = integrity.content_hash

    def counting(graph):
        calls.append(graph.name)
        return real(graph)

    monkeypatch.setattr(integrity, "content_hash", counting)
    return calls


def _lab(store):
    a = create_session(store, "a", mlp((16, 32, 4), seed=1))
    v2 = add_version(store, a.id, mlp((16, 48, 4), seed=2), "edit")
    restore_version(store, a.id, a.current_version_id)  # shares the first version's constants
    b = create_session(store, "b", mlp((8, 8, 2), seed=3))
    return a, v2, b


def _verified(store) -> int:
    with store.transaction() as con:
        return con.execute("SELECT count(*) FROM verified").fetchone()[0]


def test_start_up_check_skips_verified_versions(store, hashed):
    a, v2, b = _lab(store)
    assert check_integrity(store, deep="changed") == []
    assert len(hashed) == 4 and _verified(store) == 4
    hashed.clear()
    assert check_integrity(store, deep="changed") == []
    assert hashed == []  # nothing decoded again
    add_version(store, b.id, mlp((8, 4, 2), seed=4), "edit")
    assert check_integrity(store, deep="changed") == [] and len(hashed) == 1  # only the new version
    delete_session(store, a.id)
    hashed.clear()
    assert check_integrity(store, deep="changed") == [] and hashed == [] and _verified(store) == 2


def test_start_up_check_still_finds_corruption(store, hashed):
    a, v2, b = _lab(store)
    assert check_integrity(store) == [] and len(hashed) == 4  # the full check verifies (and records) all
    hashed.clear()
    assert check_integrity(store, deep="changed") == [] and hashed == []
    with store.transaction() as con:  # a changed document under the same recorded hash, and changed keys
        con.execute("UPDATE versions SET graph_doc = replace(graph_doc::VARCHAR, '\"Gemm\"', '\"Relu\"')::JSON "
                    "WHERE id = ?", [v2.id])
        con.execute("UPDATE blobs SET keys = '{}' WHERE hash = (SELECT blob_hash FROM versions WHERE id = ?)",
                    [b.current_version_id])
    problems = check_integrity(store, deep="changed")
    assert len(problems) == 2 and len(hashed) <= 2, problems  # only the two changed versions were decoded
    assert problems[0].startswith(f"version {v2.id}: graph ") or problems[1].startswith(f"version {v2.id}: graph ")
    assert any(p.startswith(f"version {b.current_version_id}: graph ") for p in problems), problems
    # corrupted versions are not recorded as verified: the next start reports them again
    assert len(check_integrity(store, deep="changed")) == 2
    assert len(check_integrity(store)) == 2


def test_full_check_reads_every_constant_byte(store):
    a, v2, b = _lab(store)
    assert check_integrity(store) == [] and check_integrity(store, deep="changed") == []
    with store.transaction() as con:  # one bit flipped inside the stored weights, same length
        h, data = con.execute("SELECT b.hash, b.data FROM blobs b JOIN versions v ON v.blob_hash = b.hash "
                              "WHERE v.id = ?", [b.current_version_id]).fetchone()
        data = bytearray(data)
        data[len(data) - 200] ^= 0x01
        con.execute("UPDATE blobs SET data = ? WHERE hash = ?", [bytes(data), h])
    problems = check_integrity(store)
    assert len(problems) == 1 and problems[0].startswith(f"version {b.current_version_id}: graph "), problems


def test_limit_spreads_the_first_verification_over_starts(store, hashed):
    _lab(store)
    assert check_integrity(store, deep="changed", limit=3) == [] and len(hashed) == 3 and _verified(store) == 3
    assert check_integrity(store, deep="changed", limit=3) == [] and len(hashed) == 4 and _verified(store) == 4
    assert check_integrity(store, deep="changed", limit=3) == [] and len(hashed) == 4


def test_constants_read_in_batches(store, hashed, monkeypatch):
    a, v2, b = _lab(store)
    monkeypatch.setattr(integrity, "BATCH_BYTES", 1)  # every blob its own batch
    assert check_integrity(store) == [] and len(hashed) == 4
    with store.transaction() as con:
        con.execute("UPDATE versions SET graph_hash = ? WHERE id = ?", ["0" * 64, v2.id])
    assert check_integrity(store, deep="changed") == [f"version {v2.id}: graph content hash differs from the "
                                                      "recorded hash"]


def test_deep_modes(store):
    _lab(store)
    assert check_integrity(store, deep=False) == []
    with pytest.raises(ValueError, match="deep must be"):
        check_integrity(store, deep="sometimes")


def test_studio_start_runs_the_check(tmp_path, monkeypatch, capsys):
    import argparse

    import app.cli as cli
    import app.commands.studio as studio_cmd

    path = str(tmp_path / "lab.duckdb")
    with open_store(path) as st:
        a, v2, b = _lab(st)
        with st.transaction() as con:
            con.execute("UPDATE versions SET graph_hash = ? WHERE id = ?", ["0" * 64, v2.id])
    started = []
    monkeypatch.setattr(studio_cmd.os, "execvpe", lambda *args: started.append(args[0]))
    cli.cmd_studio(argparse.Namespace(db=path, port=8599, host="127.0.0.1"))
    err = capsys.readouterr().err
    assert started and f"warning: {path}: version {v2.id}: graph content hash differs" in err
    with open_store(path) as st, st.transaction() as con:  # everything else was verified at this start
        verified = {r[0] for r in con.execute("SELECT version_id FROM verified").fetchall()}
        every = {r[0] for r in con.execute("SELECT id FROM versions").fetchall()}
    assert len(every) == 4 and verified == every - {v2.id}
