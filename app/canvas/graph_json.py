"""The graph canvas's document: an IR graph as nodes and edges for the browser, and the edited document back.

    doc = to_canvas(graph)                 # JSON-ready: op nodes, graph input/output nodes, edges, schemas
    graph2 = from_canvas(doc, graph)       # apply the edit; raises GraphError naming the node
    validate_canvas(doc, graph)            # {node id: message} for live error badges
    palette()                              # layer types users can add (see app/canvas/layers.py)
    sequential_table(graph) / apply_table(graph, rows)   # the compact layer table (app/canvas/table.py)

Document nodes: {"kind": "input"} per graph input (its tensor's shape is editable), {"kind": "output"} per graph
output, and {"kind": "op"} per IR node with its explicit attributes, its layer parameters (out_channels,
kernel, ... see layers.py) and its input slots. A slot is "data" (an edge arrives at handle "in<i>"), "param"
(a constant: shown with its shape, never a node) or "absent" (an omitted optional input). Sources are handle
"out<j>" of a node. Nodes added in the browser carry "new": true and empty param slots that from_canvas fills.
Pure Python: no streamlit here, so the round trip is tested directly.
"""
from __future__ import annotations

import hashlib
import json

from app.canvas.apply import FORMAT, GRAPH_KEY, VERSION, Build, position_of
from app.canvas.layers import layer_params, op_schema
from engine.errors import GraphError
from engine.ir import Graph
from engine.ops import get_op
from engine.serialize import jsonable
from engine.summary import layer_records
from engine.validate import infer_shapes, topological_order

COL_W, ROW_H = 240, 120  # spacing of the layered placement hint (the browser's dagre layout replaces it)


# ---- graph -> document -------------------------------------------------------------------------------------

def _io_ids(graph: Graph) -> tuple[dict[str, str], dict[str, str]]:
    names = {n.name for n in graph.nodes}

    def unique(base: str) -> str:
        while base in names:
            base += "'"
        names.add(base)
        return base
    return ({t: unique(f"input:{t}") for t in graph.inputs}, {t: unique(f"output:{t}") for t in graph.outputs})


def _placement(graph: Graph, in_ids: dict, out_ids: dict) -> dict[str, dict]:
    """Layered placement hint: rank = longest path from an input, spread left to right within a rank."""
    rank: dict[str, int] = {t: 0 for t in graph.inputs}
    where: dict[str, tuple[int, int]] = {}
    per_rank: dict[int, int] = {}

    def place(key: str, r: int) -> None:
        col = per_rank.get(r, 0)
        per_rank[r] = col + 1
        where[key] = (r, col)

    for t in graph.inputs:
        place(in_ids[t], 0)
    for n in topological_order(graph):
        r = 1 + max((rank.get(t, 0) for t in n.inputs if t), default=0)
        for t in n.outputs:
            rank[t] = r
        place(n.name, r)
    for t in graph.outputs:
        place(out_ids[t], rank.get(t, 0) + 1)
    return {k: {"x": float(c * COL_W), "y": float(r * ROW_H)} for k, (r, c) in where.items()}


def _dominant_layout(graph: Graph) -> str:
    layouts = [n.attrs.get("layout", "NCHW") for n in graph.nodes if get_op(n.op) and "layout" in get_op(n.op).attrs]
    return "NHWC" if layouts and layouts.count("NHWC") * 2 > len(layouts) else "NCHW"


def to_canvas(graph: Graph, positions: dict | None = None) -> dict:
    """The canvas document of `graph`. Positions come from `positions` (doc id -> (x, y)), else from
    node.meta["pos"] (graph.meta["canvas_pos"] for input/output nodes), else a layered hint, and then
    "needs_layout" asks the browser to run its auto-layout once."""
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    positions = positions or {}
    io_pos = g.meta.get("canvas_pos", {}) if isinstance(g.meta.get("canvas_pos"), dict) else {}
    in_ids, out_ids = _io_ids(g)
    hint = _placement(g, in_ids, out_ids)
    records = {r.name: r for r in layer_records(g)}
    produced = {t: (n.name, j) for n in g.nodes for j, t in enumerate(n.outputs)}
    produced.update({t: (in_ids[t], 0) for t in g.inputs})
    needs_layout = False

    def position(key: str, stored) -> dict:
        nonlocal needs_layout
        p = position_of(positions.get(key)) or position_of(stored)
        if p is None:
            needs_layout = True
            p = hint[key]
        return p

    def tensor_json(name: str) -> dict:
        t = g.tensors.get(name)
        return {"tensor": name, "shape": list(t.shape) if t else None, "dtype": t.dtype if t else None}

    nodes: list[dict] = []
    edges: list[dict] = []
    for t in g.inputs:
        nodes.append({"id": in_ids[t], "kind": "input", "label": t, **tensor_json(t),
                      "position": position(in_ids[t], io_pos.get(in_ids[t]))})
    for n in g.nodes:
        slots = []
        for i, t in enumerate(n.inputs):
            op = get_op(n.op)
            roles = op.inputs if op else ()
            role = roles[min(i, len(roles) - 1)].rstrip("?*") if roles else f"in{i}"
            if roles and roles[min(i, len(roles) - 1)].endswith("*"):
                role = f"{role}{i}"
            if not t:
                slots.append({"role": role, "kind": "absent"})
                continue
            const = g.tensors[t].data is not None and t not in g.inputs
            slots.append({"role": role, "kind": "param" if const else "data", **tensor_json(t)})
            if not const:
                src, j = produced[t]
                edges.append({"id": f"{src}:{j}->{n.name}:{i}", "source": src, "sourceHandle": f"out{j}",
                              "target": n.name, "targetHandle": f"in{i}"})
        rec = records.get(n.name)
        nodes.append({"id": n.name, "kind": "op", "op": n.op, "label": n.name,
                      "attrs": jsonable(dict(n.attrs)), "layer": layer_params(g, n), "slots": slots,
                      "outputs": [tensor_json(t) for t in n.outputs],
                      "macs": rec.macs if rec else 0, "params": rec.params if rec else 0,
                      "weight_bytes": rec.weight_bytes if rec else 0,
                      "position": position(n.name, n.meta.get("pos"))})
    for t in g.outputs:
        oid = out_ids[t]
        nodes.append({"id": oid, "kind": "output", "label": t, **tensor_json(t),
                      "position": position(oid, io_pos.get(oid))})
        if t in produced:
            src, j = produced[t]
            edges.append({"id": f"{src}:{j}->{oid}:0", "source": src, "sourceHandle": f"out{j}",
                          "target": oid, "targetHandle": "in0"})
    doc = {"format": FORMAT, "version": VERSION, "name": g.name, "layout": _dominant_layout(g),
           "nodes": nodes, "edges": edges, "schemas": {op: op_schema(op) for op in sorted({n.op for n in g.nodes})},
           "needs_layout": needs_layout,
           "totals": {"macs": sum(r.macs for r in records.values()), "params": sum(r.params for r in records.values())}}
    # The browser reloads its local state only when this changes (a new version, another graph).
    doc["revision"] = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return doc


# ---- document -> graph (app/canvas/apply.py) ---------------------------------------------------------------

def check_canvas(doc: dict, base: Graph) -> dict:
    """Live feedback for the browser: {"errors": {node id: message}, "nodes": {node id: shapes, MACs, params}}."""
    try:
        b = Build(doc, base)
    except GraphError as e:
        return {"errors": {GRAPH_KEY: str(e)}, "nodes": {}}
    return {"errors": dict(b.errors), "nodes": b.node_info()}


def validate_canvas(doc: dict, base: Graph) -> dict[str, str]:
    """{node id: message} for every node the edit breaks (the first cause, not its downstream echoes);
    GRAPH_KEY holds errors that belong to no node. Empty when `from_canvas` would succeed."""
    return check_canvas(doc, base)["errors"]


def from_canvas(doc: dict, base: Graph) -> Graph:
    """Apply the edited document to `base` and return the new, shape-inferred graph.

    New and deleted nodes, rewired edges and changed attributes are applied; a layer whose weight shapes
    change gets seeded He-initialized weights, every other constant is kept bit for bit. Positions go to
    node.meta["pos"]. Raises GraphError naming the first node the edit breaks.
    """
    b = Build(doc, base)
    if b.errors:
        key, message = next(iter(b.errors.items()))
        if key == GRAPH_KEY:
            raise GraphError(message)
        raise GraphError(message, node=key, op=b.ops.get(key))
    return infer_shapes(b.g)


# The palette and the layer table live in their own modules; they are part of this API.
from app.canvas.layers import palette  # noqa: E402,F401
from app.canvas.table import apply_table, sequential_table  # noqa: E402,F401
