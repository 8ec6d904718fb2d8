"""The version tree as table rows (pure, testable): depth-first from the roots, children indented."""
from __future__ import annotations


def tree_rows(versions, current: int | None = None) -> list[dict]:
    children: dict[int | None, list] = {}
    ids = {v.id for v in versions}
    for v in versions:
        parent = v.parent_id if v.parent_id in ids else None
        children.setdefault(parent, []).append(v)
    rows: list[dict] = []

    def walk(parent, depth):
        for v in sorted(children.get(parent, []), key=lambda x: x.id):
            m = v.metrics or {}
            rows.append({"version": f"{'  ' * depth}{'└ ' if depth else ''}v{v.id}" + (" ●" if v.id == current else ""),
                         "action": v.action,
                         "params": ", ".join(f"{k}={val}" for k, val in (v.params or {}).items())[:80],
                         "MACs": m.get("macs"), "params count": m.get("params"),
                         "weight bytes": m.get("weight_bytes"), "arena bytes": m.get("arena_bytes"),
                         "created": v.created[:19].replace("T", " ")})
            walk(v.id, depth + 1)

    walk(None, 0)
    return rows


def layer_delta_rows(layers: list[dict]) -> list[dict]:
    """compare_versions' per-layer records as flat table rows: A, B and B - A side by side per figure."""
    def shape(rec):
        return "×".join(map(str, rec["output_shape"])) if rec and rec.get("output_shape") is not None else ""

    rows = []
    for r in layers:
        a, b = r["a"] or {}, r["b"] or {}
        row = {"layer": r["name"], "op": r["op"], "status": r["status"]}
        for key, label in (("macs", "MACs"), ("params", "params"), ("weight_bytes", "weight bytes")):
            row[f"{label} A"], row[f"{label} B"], row[f"Δ {label}"] = a.get(key), b.get(key), r["delta"][key]
        row["output A"], row["output B"] = shape(r["a"]), shape(r["b"])
        rows.append(row)
    return rows
