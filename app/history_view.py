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
