"""A writer for the crash test, run as `python -m tests.store.crash_writer DB SEED [--hang]`.

It loops over random session actions and prints one line per action only after its transaction committed:
    S <session> <version> <hash>   created a session      V <session> <version> <hash>   added/restored a version
    B <session> <version> <hash>   branched               d <session> / D <session>      delete begun / committed
With --hang it writes half of a session (session row + first version) inside an open transaction, prints
"HALF", and waits to be killed.
"""
from __future__ import annotations

import random
import sys
import time

from store import (add_version, branch_session, create_session, delete_session, get_version, list_sessions,
                   list_versions, open_store, restore_version)
from store.graphs import encode_graph
from store.rows import insert_session, insert_version
from tests.store.graphs import mlp


def _graph(rng: random.Random):
    # 40..200 KB of constants, so some commits spill the WAL into checkpoints
    widths = (64, rng.choice((64, 96, 128, 160, 192)), rng.choice((16, 32, 48)), 8)
    return mlp(widths, seed=rng.randrange(1 << 30))


def main(path: str, seed: int, hang: bool) -> None:
    store = open_store(path)
    with store.transaction() as con:
        con.execute("SET checkpoint_threshold = '256KiB'")  # checkpoint often: kills land in checkpoints too
    rng = random.Random(seed)
    if hang:
        enc = encode_graph(_graph(rng))
        with store.transaction() as con:
            sid = insert_session(con, "half", "m")
            insert_version(con, sid, None, enc, "create", "{}")
            print("HALF", sid, flush=True)
            time.sleep(600)
    sessions = [s.id for s in list_sessions(store)]  # left by earlier (killed) writers
    n = 0
    while True:
        n += 1
        r = rng.random()
        if not sessions or r < 0.15:
            s = create_session(store, f"s{seed}-{n}", _graph(rng), action="create")
            sessions.append(s.id)
            v = add_version(store, s.id, _graph(rng), "edit", {"n": n}) if rng.random() < 0.5 else None
            print("S", s.id, s.current_version_id, _hash(store, s.current_version_id), flush=True)
            if v is not None:
                print("V", s.id, v.id, v.graph_hash, flush=True)
        elif r < 0.8:
            sid = rng.choice(sessions)
            v = add_version(store, sid, _graph(rng), "edit", {"n": n})
            print("V", sid, v.id, v.graph_hash, flush=True)
        elif r < 0.88:
            sid = rng.choice(sessions)
            old = rng.choice(list_versions(store, sid))
            v = restore_version(store, sid, old.id)
            print("V", sid, v.id, v.graph_hash, flush=True)
        elif r < 0.94:
            old = rng.choice(list_versions(store, rng.choice(sessions)))
            b = branch_session(store, old.id)
            sessions.append(b.id)
            print("B", b.id, b.current_version_id, old.graph_hash, flush=True)
        else:
            sid = sessions.pop(rng.randrange(len(sessions)))
            print("d", sid, flush=True)
            delete_session(store, sid)
            print("D", sid, flush=True)


def _hash(store, version_id: int) -> str:
    return get_version(store, version_id).graph_hash


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "--hang" in sys.argv[3:])
