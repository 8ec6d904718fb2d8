"""Many threads on one Store lose nothing; a writer killed with SIGKILL at random moments leaves the database
consistent, with every committed action present and no half-written session."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from store import (NotFoundError, add_version, check_integrity, create_session, get_session, get_version,
                   list_sessions, list_versions, open_store)
from tests.store.graphs import mlp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_threads(fn, n: int) -> None:
    errors: list[BaseException] = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


def test_eight_threads_on_eight_sessions_lose_no_version(tmp_path):
    per_thread = 6
    with open_store(str(tmp_path / "t.duckdb")) as store:
        sessions = [create_session(store, f"s{i}", mlp(seed=i)).id for i in range(8)]
        made: dict[int, list[str]] = {sid: [] for sid in sessions}

        def work(i):
            sid = sessions[i]
            for k in range(per_thread):
                v = add_version(store, sid, mlp((16, 8 + k, 4), seed=100 * i + k), "edit", {"k": k})
                made[sid].append(v.graph_hash)

        _run_threads(work, 8)
        for sid in sessions:
            vs = list_versions(store, sid)
            assert len(vs) == 1 + per_thread and get_session(store, sid).version_count == 1 + per_thread
            assert [v.graph_hash for v in vs[1:]] == made[sid]
            assert [v.parent_id for v in vs[1:]] == [v.id for v in vs[:-1]]  # one chain per session
            assert get_session(store, sid).current_version_id == vs[-1].id
        assert check_integrity(store) == []


def test_threads_on_one_session_chain_their_versions(tmp_path):
    with open_store(str(tmp_path / "t.duckdb")) as store:
        sid = create_session(store, "shared", mlp()).id
        _run_threads(lambda i: [add_version(store, sid, mlp(seed=10 * i + k), "edit") for k in range(5)], 4)
        vs = list_versions(store, sid)
        assert len(vs) == 21
        # the parent is read inside each transaction: no two saves fork from the same version
        assert sorted(v.parent_id for v in vs[1:]) == [v.id for v in vs[:-1]]
        assert check_integrity(store) == []


def _writer(path: str, seed: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.store.crash_writer", path, str(seed), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill(p: subprocess.Popen) -> list[str]:
    os.kill(p.pid, signal.SIGKILL)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    return out.splitlines()


def test_writer_killed_mid_transaction_leaves_no_half_session(tmp_path):
    path = str(tmp_path / "half.duckdb")
    with open_store(path) as store:
        keep = create_session(store, "keep", mlp()).id
    p = _writer(path, 7, "--hang")
    line = p.stdout.readline().split()
    assert line[:1] == ["HALF"], p.stderr.read() if not line else line
    half = int(line[1])
    _kill(p)
    with open_store(path) as store:
        assert [s.id for s in list_sessions(store)] == [keep]
        with pytest.raises(NotFoundError, match=f"no session with id {half}"):
            get_session(store, half)
        assert check_integrity(store) == []
        assert len(list_versions(store, keep)) == 1


def test_writer_killed_at_random_moments_leaves_a_consistent_database(tmp_path):
    path = str(tmp_path / "crash.duckdb")
    rng = random.Random(20240611)
    versions: dict[int, tuple[int, str]] = {}  # committed version -> (session, content hash)
    deleted: set[int] = set()
    maybe_deleted: set[int] = set()  # delete begun, commit not reported
    t0 = time.monotonic()
    total_lines = 0
    for round_ in range(6):
        p = _writer(path, round_)
        want = rng.randint(2, 40)
        lines = []
        while len(lines) < want:
            line = p.stdout.readline()
            assert line, f"writer died: {p.stderr.read()[-2000:]}"
            lines.append(line)
        time.sleep(rng.uniform(0, 0.05))  # let it get into the next action
        lines = [x.rstrip("\n") for x in lines] + _kill(p)
        total_lines += len(lines)
        for line in lines:
            kind, *f = line.split()
            if kind in "SVB":
                versions[int(f[1])] = (int(f[0]), f[2])
            elif kind == "d":
                maybe_deleted.add(int(f[0]))
            elif kind == "D":
                deleted.add(int(f[0]))
        with open_store(path) as store:
            assert check_integrity(store) == [], f"round {round_}"
            alive = {s.id for s in list_sessions(store)}
            deleted |= {sid for sid in maybe_deleted if sid not in alive}  # the delete had committed
            maybe_deleted.clear()
            assert not (deleted & alive)
            for vid, (sid, h) in versions.items():
                if sid in deleted:
                    continue
                v = get_version(store, vid)  # every reported commit survived the kill
                assert (v.session_id, v.graph_hash) == (sid, h), f"round {round_}, version {vid}"
    assert total_lines > 20 and len(versions) > 20
    assert time.monotonic() - t0 < 60
