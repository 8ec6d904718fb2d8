"""Per-layer profiles of a version, one per (MCU, runtime), kept so that pages show them without recomputing.

    docs = profile_version(store, version_id, [("stm32f746ng", "tflm-cmsis-nn"), ("nrf52840", "tflm-cmsis-nn")])
    docs[("nrf52840", "tflm-cmsis-nn")]["target"]["latency_ms"]
    get_profile(store, version_id, mcu, runtime)      # None when not profiled yet

A stored document is Profile.to_json() narrowed to one target: totals, layers (each with its one estimate
under "estimate"), memory, and target (that target's fit, latency, energy).
Every function takes `user` (store.access) and needs only the right to see the version: a profile is a cache
of what the engine computes from the version's graph, so an instructor looking at a student's version may
store the profiles the page computed.
"""
from __future__ import annotations

from engine import __version__
from engine.profile import profile_graph
from store.access import actor
from store.clock import iso, utcnow
from store.db import Store
from store.errors import InvalidValueError
from store.records import dump_json, load_json
from store.rows import check_id, check_name, version_row
from store.versions import get_graph


def split_targets(doc: dict) -> dict[tuple[str, str], dict]:
    """Profile.to_json() of several targets -> one document per (mcu, runtime)."""
    out = {}
    for i, t in enumerate(doc["targets"]):
        layers = []
        for layer in doc["layers"]:
            row = {k: v for k, v in layer.items() if k != "estimates"}
            row["estimate"] = {k: v for k, v in layer["estimates"][i].items() if k not in ("mcu", "runtime")}
            layers.append(row)
        out[(t["mcu"], t["runtime"])] = {"totals": doc["totals"], "layers": layers, "memory": doc["memory"],
                                         "target": t}
    return out


def save_profile(store: Store, version_id: int, mcu: str, runtime: str, doc: dict, *, user=None) -> None:
    """Store (or replace) the profile of one target; `doc` holds at least totals and layers."""
    version_id = check_id(version_id, "version id")
    mcu, runtime = check_name(mcu, "MCU id"), check_name(runtime, "runtime id")
    if not isinstance(doc, dict) or not isinstance(doc.get("totals"), dict) or not isinstance(doc.get("layers"), list):
        raise InvalidValueError("a profile document needs 'totals' (object) and 'layers' (list)")
    row = [dump_json(doc["totals"], "profile totals"), dump_json(doc["layers"], "profile layers"),
           dump_json(doc, "profile"), __version__, utcnow()]
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)
        con.execute("INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                    "totals = excluded.totals, layers = excluded.layers, doc = excluded.doc, "
                    "tool_version = excluded.tool_version, created = excluded.created",
                    [version_id, mcu, runtime, *row])


def get_profile(store: Store, version_id: int, mcu: str, runtime: str, *, user=None) -> dict | None:
    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)
        r = con.execute("SELECT doc FROM profiles WHERE version_id = ? AND mcu = ? AND runtime = ?",
                        [version_id, mcu, runtime]).fetchone()
    return None if r is None else load_json(r[0])


def list_profiles(store: Store, version_id: int, *, user=None) -> list[dict]:
    """[{mcu, runtime, totals, tool_version, created}] of the targets profiled for this version."""
    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)
        rows = con.execute("SELECT mcu, runtime, totals, tool_version, created FROM profiles WHERE version_id = ? "
                           "ORDER BY mcu, runtime", [version_id]).fetchall()
    return [{"mcu": m, "runtime": r, "totals": load_json(t), "tool_version": tv, "created": iso(c)}
            for m, r, t, tv, c in rows]


def profile_version(store: Store, version_id: int, targets: list[tuple[str, str]],
                    refresh: bool = False, *, user=None) -> dict[tuple[str, str], dict]:
    """The profile of each target: stored ones when computed by this engine version, the rest computed
    (outside the lock) and stored. Unknown MCU or runtime ids raise hwmodels' one-line errors."""
    version_id = check_id(version_id, "version id")
    targets = [(m, r) for m, r in dict.fromkeys(tuple(t) for t in targets)]
    out: dict[tuple[str, str], dict] = {}
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)  # refused before any work
    if not refresh:
        with store.transaction() as con:
            for m, r in targets:
                row = con.execute("SELECT doc FROM profiles WHERE version_id = ? AND mcu = ? AND runtime = ? "
                                  "AND tool_version = ?", [version_id, m, r, __version__]).fetchone()
                if row is not None:
                    out[(m, r)] = load_json(row[0])
    missing = [t for t in targets if t not in out]
    if missing:
        docs = split_targets(profile_graph(get_graph(store, version_id, user=user), missing).to_json())
        with store.transaction():  # all targets or none
            for (m, r), doc in docs.items():
                save_profile(store, version_id, m, r, doc, user=user)
        out.update(docs)
    return {t: out[t] for t in targets}
