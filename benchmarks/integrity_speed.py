"""check_integrity on a store with ~2,000 versions: the full (deep) check, and the check as the studio runs it at
every start (deep="changed", limit=100: what changed since the last verified state), before and after a
corruption. Before this mode existed every start would have needed the full check (~90 ms per version).

Builds (once, cached in the temp folder) 50 sessions of MLPerf Tiny and small zoo models, 40 versions each,
every version with its own weights, as a long-used lab store would hold.
Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/integrity_speed.py [--versions N] [--rebuild]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.serialize import content_hash, dumps  # noqa: E402
from engine.zoo import build_zoo_model  # noqa: E402
from store.db import open_store  # noqa: E402
from store.graphs import EncodedGraph, constants_hash, encode_graph  # noqa: E402
from store.integrity import check_integrity  # noqa: E402
from store.rows import insert_session, insert_version  # noqa: E402

MODELS = ("zoo:kws_dscnn", "zoo:ic_resnet8", "zoo:vww_mobilenetv1", "zoo:ad_autoencoder", "zoo:lenet5")


def build(path: str, versions: int, per_session: int = 40) -> None:
    store = open_store(path)
    rng = np.random.default_rng(0)
    base = {m: build_zoo_model(m) for m in MODELS}
    first = {m: encode_graph(g) for m, g in base.items()}  # metrics and layers are the same for every version
    made = 0
    try:
        while made < versions:
            m = MODELS[(made // per_session) % len(MODELS)]
            g = base[m].copy()
            with store.transaction() as con:
                sid = insert_session(con, f"lab {made // per_session}", m)
            parent = None
            for _ in range(min(per_session, versions - made)):
                w = next(t for t in g.tensors.values() if t.data is not None and t.data.size > 8)
                w.data = w.data + rng.normal(size=w.data.shape).astype(w.data.dtype) * 0.01  # an edited weight
                doc, blob = dumps(g)
                keys = doc.pop("blob_keys")
                enc = EncodedGraph(doc, keys, blob, constants_hash(g), content_hash(g), first[m].metrics,
                                   first[m].layers)
                with store.transaction() as con:
                    parent = insert_version(con, sid, parent, enc, "edit", "{}")
                made += 1
    finally:
        store.close()


def timed(fn):
    """(wall s, CPU s of every thread of this process, result): CPU time is the steadier figure on a busy machine."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=2000)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    cached = os.path.join(tempfile.gettempdir(), f"tinystudio-integrity-{args.versions}.duckdb")
    if args.rebuild or not os.path.exists(cached):
        for p in (cached, cached + ".wal"):
            if os.path.exists(p):
                os.unlink(p)
        t, _c, _ = timed(lambda: build(cached, args.versions))
        print(f"built {args.versions} versions in {t:.1f} s: {cached}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "studio.duckdb")
        shutil.copy(cached, path)
        store = open_store(path)
        try:
            with store.transaction() as con:
                n = con.execute("SELECT count(*) FROM versions").fetchone()[0]
                mb = con.execute("SELECT sum(nbytes) FROM blobs").fetchone()[0] / 1e6
            print(f"store: {n} versions, {mb:.0f} MB of constants")
            rows = [("studio start, never verified (verifies at most 100)",
                     lambda: check_integrity(store, deep="changed", limit=100)),
                    ("full check: every graph decoded and hashed", lambda: check_integrity(store)),
                    ("studio start, nothing changed", lambda: check_integrity(store, deep="changed", limit=100))]
            print(f"{'':<62} {'wall s':>8} {'CPU s':>8} {'CPU ms/version':>15}")
            for label, fn in rows:
                t, c, problems = timed(fn)
                print(f"{label:<62} {t:8.2f} {c:8.2f} {c / n * 1000:15.2f}  problems: {len(problems)}", flush=True)
            with store.transaction() as con:  # one flipped byte in one stored graph document
                vid = con.execute("SELECT max(id) FROM versions").fetchone()[0] // 2
                con.execute("UPDATE versions SET graph_doc = replace(graph_doc, '\"Conv\"', '\"Cony\"') WHERE id = ?",
                            [vid])
            t, c, problems = timed(lambda: check_integrity(store, deep="changed", limit=100))
            print(f"{'studio start after corrupting version ' + str(vid):<62} {t:8.2f} {c:8.2f} "
                  f"{c / n * 1000:15.2f}  problems: {problems[:1]}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
