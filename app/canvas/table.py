"""The compact layer table for sequential models: one row per layer (a conv or dense layer with its
BatchNorm and activation, a pool, a flatten ...), editable out_channels / kernel / stride / activation.

    rows = sequential_table(graph)     # [{"layer": "c1", "op": "Conv", "out_channels": 6, "kernel": "5x5",
                                       #   "stride": "1x1", "activation": "tanh", "output_shape": "1x6x28x28", ...}]
    graph2 = apply_table(graph, rows)  # the edit goes through the canvas document, so weights are
                                       # re-initialized exactly as a canvas edit would do it

st.data_editor shows the rows; columns other than the four editable ones are read-only information.
"""
from __future__ import annotations

import math

from app.canvas.layers import layer_params
from engine.errors import GraphError
from engine.ir import Graph, Node
from engine.ops import get_op, ops_where
from engine.summary import layer_records
from engine.validate import infer_shapes, topological_order

EDITABLE = ("out_channels", "kernel", "stride", "activation")
ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid")
# A separate activation node per name, as ONNX graphs write them (ReLU6 is Clip(0, 6)).
_ACT_NODE = {"relu": ("Relu", {}), "relu6": ("Clip", {"min": 0.0, "max": 6.0}),
             "relu_n1_to_1": ("Clip", {"min": -1.0, "max": 1.0}), "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {})}
_WEIGHTED = ops_where(lambda op: op.sets_channels)
_WINDOWED = ops_where(lambda op: op.windowed)


def _activation_of(node: Node) -> str | None:
    """The activation a standalone node computes, or None when it is not a plain activation."""
    if node.op in ("Relu", "Tanh", "Sigmoid"):
        return node.op.lower()
    if node.op == "Relu6":
        return "relu6"
    if node.op == "Clip":
        lo, hi = float(node.attrs.get("min", -math.inf)), float(node.attrs.get("max", math.inf))
        return {(0.0, 6.0): "relu6", (-1.0, 1.0): "relu_n1_to_1"}.get((lo, hi))
    return None


def _groups(graph: Graph) -> list[tuple[Node, Node | None, Node | None]]:
    """(main, batchnorm, activation) per layer of a sequential graph; raises GraphError when not sequential."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise GraphError(f"the layer table needs one input and one output (this graph has {len(graph.inputs)} "
                         f"and {len(graph.outputs)}); use the canvas")
    data = set(graph.inputs) | {t for n in graph.nodes for t in n.outputs}
    readers: dict[str, int] = {}
    for n in graph.nodes:
        ins = [t for t in n.inputs if t in data]
        if len(ins) != 1:
            raise GraphError(f"the graph is not sequential ({len(ins)} data inputs); use the canvas", n.name, n.op)
        readers[ins[0]] = readers.get(ins[0], 0) + 1
    for t, k in readers.items():
        if k > 1:
            raise GraphError(f"the graph is not sequential: tensor '{t}' feeds {k} layers; use the canvas")
    order = topological_order(graph)
    groups, i = [], 0
    while i < len(order):
        main, bn, act = order[i], None, None
        i += 1
        if main.op in _WEIGHTED and i < len(order) and order[i].op == "BatchNormalization":
            bn, i = order[i], i + 1
        if _activation_of(main) is None and i < len(order) and _activation_of(order[i]) is not None:
            act, i = order[i], i + 1
        groups.append((main, bn, act))
    return groups


def _dims(values) -> str:
    return "x".join(str(int(v)) for v in values) if values else ""


def sequential_table(graph: Graph) -> list[dict]:
    """One row per layer of a sequential graph (see the module docstring)."""
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    records = {r.name: r for r in layer_records(g)}
    rows = []
    for main, bn, act in _groups(g):
        lp = layer_params(g, main)
        r = len(g.tensors[main.inputs[0]].shape) - 2 if main.inputs and main.inputs[0] in g.tensors else 0
        kernel = stride = ""
        if main.op in ("Conv", "ConvTranspose") and lp:
            kernel = _dims(lp["kernel"])
        elif main.op in ("MaxPool", "AveragePool"):
            kernel = _dims(main.attrs.get("kernel_shape"))
        if main.op in _WINDOWED and r > 0:
            stride = _dims(main.attrs.get("strides") or [1] * r)
        activation = "none"
        if act is not None:
            activation = _activation_of(act)
        elif "activation" in main.attrs or (bn is None and "activation" in (get_op(main.op).attrs if get_op(main.op) else {})):
            activation = (bn or main).attrs.get("activation", "none")
        members = [n for n in (main, bn, act) if n is not None]
        op = main.op + (" (depthwise)" if lp and lp.get("depthwise") else "") + (" + BN" if bn else "")
        rows.append({"layer": main.name, "op": op,
                     "out_channels": (lp.get("out_channels", lp.get("out_features")) if lp else None),
                     "kernel": kernel, "stride": stride, "activation": activation,
                     "output_shape": _dims(g.tensors[members[-1].outputs[0]].shape),
                     "params": sum(records[n.name].params for n in members),
                     "macs": sum(records[n.name].macs for n in members)})
    return rows


# ---- applying an edited table -----------------------------------------------------------------------------

def _blank(v) -> bool:
    return (v is None or type(v).__name__ == "NAType" or (isinstance(v, float) and math.isnan(v))
            or (isinstance(v, str) and not v.strip()))


def _ints(layer: str, field: str, value, rank: int) -> list[int]:
    text = str(value).replace("x", ",").replace("×", ",").replace(" ", ",")
    try:
        vals = [int(float(p)) for p in text.split(",") if p]
    except ValueError:
        raise GraphError(f"{field} {value!r} must be integers such as 3 or 3x3", layer) from None
    if len(vals) == 1 and rank > 1:
        vals = vals * rank
    if len(vals) != rank:
        raise GraphError(f"{field} {value!r} needs {rank} values", layer)
    return vals


def _rewire(doc: dict, old_src: tuple[str, str], new_src: tuple[str, str]) -> None:
    for e in doc["edges"]:
        if (e["source"], e["sourceHandle"]) == old_src:
            e["source"], e["sourceHandle"] = new_src
            e["id"] = f"{e['source']}:{e['sourceHandle']}->{e['target']}:{e['targetHandle']}"


def _set_activation(doc: dict, nodes: dict, group: tuple, value: str) -> None:
    main, bn, act = group
    tail = nodes[(bn or main).name]
    tail_op = get_op(tail["op"])
    if act is not None:
        if value == "none":  # drop the node; its readers read the layer directly
            doc["edges"] = [e for e in doc["edges"] if e["target"] != act.name]
            _rewire(doc, (act.name, "out0"), (tail["id"], "out0"))
            doc["nodes"] = [n for n in doc["nodes"] if n["id"] != act.name]
        else:
            nodes[act.name]["op"], nodes[act.name]["attrs"] = _ACT_NODE[value][0], dict(_ACT_NODE[value][1])
        return
    fused_in_use = tail["attrs"].get("activation", "none") != "none"
    if tail_op is not None and "activation" in tail_op.attrs and (fused_in_use or doc["layout"] == "NHWC"):
        tail["attrs"]["activation"] = value  # TFLite layers fuse their activation
        return
    if value == "none":
        return
    ids = {n["id"] for n in doc["nodes"]}
    nid, k = f"{tail['id']}_{value}", 1
    while nid in ids:
        nid, k = f"{tail['id']}_{value}_{k}", k + 1
    op, attrs = _ACT_NODE[value]
    _rewire(doc, (tail["id"], "out0"), (nid, "out0"))
    doc["edges"].append({"id": f"{tail['id']}:0->{nid}:0", "source": tail["id"], "sourceHandle": "out0",
                         "target": nid, "targetHandle": "in0"})
    at = doc["nodes"].index(tail) + 1
    doc["nodes"].insert(at, {"id": nid, "kind": "op", "op": op, "attrs": dict(attrs), "layer": None, "new": True,
                             "slots": [{"role": "X", "kind": "data"}], "n_outputs": 1,
                             "position": {"x": tail["position"]["x"], "y": tail["position"]["y"] + 60}})


def apply_table(graph: Graph, rows) -> Graph:
    """The graph with the table's edits applied (rows as sequential_table gives them, or a DataFrame of them).
    Only changed cells act; raises GraphError naming the layer for a value it cannot take."""
    from app.canvas.graph_json import from_canvas, to_canvas  # graph_json re-exports this module

    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    current = {r["layer"]: r for r in sequential_table(g)}
    groups = {grp[0].name: grp for grp in _groups(g)}
    doc = to_canvas(g)
    nodes = {n["id"]: n for n in doc["nodes"]}
    for row in rows:
        name = row.get("layer")
        if name not in current:
            raise GraphError(f"layer table: no layer named {name!r}")
        cur, node, main = current[name], nodes[name], groups[name][0]
        rank = max(1, len(g.tensors[main.inputs[0]].shape) - 2)
        for field in EDITABLE:
            new = row.get(field, cur[field])
            if _blank(new) and _blank(cur[field]):
                continue
            if field in ("kernel", "stride"):
                if not _blank(new) and not _blank(cur[field]) and _ints(name, field, new, rank) == _ints(name, field, cur[field], rank):
                    continue
            elif new == cur[field]:
                continue
            if _blank(cur[field]) or _blank(new):
                raise GraphError(f"{field} cannot be set on a {main.op} layer", name, main.op)
            if field == "out_channels":
                _set_channels(g, main, node, new)
            elif field == "kernel":
                k = _ints(name, field, new, rank)
                if main.op in ("Conv", "ConvTranspose"):
                    node["layer"]["kernel"] = k
                else:
                    node["attrs"]["kernel_shape"] = k
            elif field == "stride":
                node["attrs"]["strides"] = _ints(name, field, new, rank)
            else:
                if new not in ACTIVATIONS:
                    raise GraphError(f"activation {new!r} must be one of {', '.join(ACTIVATIONS)}", name, main.op)
                _set_activation(doc, nodes, groups[name], new)
    return from_canvas(doc, g)


def _set_channels(g: Graph, main: Node, node: dict, value) -> None:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise GraphError(f"out_channels {value!r} must be a positive integer", main.name, main.op) from None
    if v < 1 or v != float(value):
        raise GraphError(f"out_channels {value!r} must be a positive integer", main.name, main.op)
    layer = node["layer"]
    if "out_features" in layer:
        layer["out_features"] = v
    elif layer.get("depthwise"):
        c = layer["out_channels"] // layer["multiplier"]
        if v % c:
            raise GraphError(f"a depthwise layer's out_channels must be a multiple of its {c} input channels",
                             main.name, main.op)
        layer["multiplier"] = v // c
    else:
        layer["out_channels"] = v
