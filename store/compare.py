"""Compare two versions layer by layer (matched by layer name) from the rows saved with each version.

    d = compare_versions(store, old_id, new_id)
    d["totals"]["macs"]          # {"a": 336000, "b": 672000, "delta": 336000}
    d["layers"][0]               # {"name", "status": same|changed|added|removed, "op", "a", "b", "delta"}

Layers keep the order of the newer graph with removed layers where they stood in the older one.
"""
from __future__ import annotations

import difflib

from store.access import actor
from store.db import Store
from store.graphs import METRIC_KEYS
from store.records import load_json
from store.rows import check_id, version_row

LAYER_FIELDS = ("op", "macs", "params", "weight_bytes", "output_shape", "output_dtype")
DELTA_FIELDS = ("macs", "params", "weight_bytes")


def _load(con, version_id: int, user) -> tuple[dict, list[dict], str]:
    v = version_row(con, version_id, user=user)
    layers = load_json(con.execute("SELECT layers FROM versions WHERE id = ?", [version_id]).fetchone()[0])
    return v.metrics, layers, v.graph_hash


def _merged_names(a: list[str], b: list[str]) -> list[str]:
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out += b[j1:j2]
        else:
            out += a[i1:i2] + b[j1:j2]  # removed before added at the same place
    seen: set[str] = set()
    return [n for n in out if not (n in seen or seen.add(n))]  # a moved layer is listed once


def layer_deltas(layers_a: list[dict], layers_b: list[dict]) -> list[dict]:
    by_a = {r["name"]: r for r in layers_a}
    by_b = {r["name"]: r for r in layers_b}
    rows = []
    for name in _merged_names([r["name"] for r in layers_a], [r["name"] for r in layers_b]):
        ra, rb = by_a.get(name), by_b.get(name)
        a = {k: ra[k] for k in LAYER_FIELDS} if ra else None
        b = {k: rb[k] for k in LAYER_FIELDS} if rb else None
        status = "added" if a is None else "removed" if b is None else "same" if a == b else "changed"
        rows.append({"name": name, "status": status, "op": (rb or ra)["op"], "a": a, "b": b,
                     "delta": {k: (b[k] if b else 0) - (a[k] if a else 0) for k in DELTA_FIELDS},
                     "output_shape_changed": bool(a and b and a["output_shape"] != b["output_shape"])})
    return rows


def compare_versions(store: Store, a_id: int, b_id: int, *, user=None) -> dict:
    """Per-layer and total deltas b - a. Versions may come from different sessions (a branch and its source);
    `user` must be allowed to see both (store.access)."""
    a_id = check_id(a_id, "version id")
    b_id = check_id(b_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        ma, la, ha = _load(con, a_id, user)
        mb, lb, hb = _load(con, b_id, user)
    layers = layer_deltas(la, lb)
    keys = METRIC_KEYS + ("arena_bytes",)
    totals = {k: {"a": ma.get(k, 0), "b": mb.get(k, 0), "delta": mb.get(k, 0) - ma.get(k, 0)} for k in keys}
    counts = {s: sum(r["status"] == s for r in layers) for s in ("same", "changed", "added", "removed")}
    return {"a": a_id, "b": b_id, "identical": ha == hb, "totals": totals, "counts": counts, "layers": layers}
