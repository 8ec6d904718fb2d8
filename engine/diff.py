"""What changed between two graphs, in words: the History page's account of an edit or a compression.

    changes = graph_changes(parent, child)   # ["added Conv conv3", "conv1: 64 → 32 output channels", ...]
    describe_changes(parent, child)          # "added Conv conv3; removed Relu r2; conv1.kernel_shape 3x3 → 5x5"

Layers are matched by name (names are stable through edits and passes; a renamed layer reads as removed and
added). Changes that touch many layers alike are folded into one phrase ("weights float32 → int8 in 5 layers")
so that a compression of a 150-layer model reads as a sentence, not a list.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from engine.ir import Graph, Node
from engine.ops import ops_where

# Attributes whose list values read best as a shape: kernel_shape [3, 3] -> 3x3.
_SHAPE_ATTRS = {"kernel_shape", "strides", "dilations", "output_padding", "output_shape"}
# Ops whose output channel count is a choice of the designer (the other ops follow their inputs).
_CHANNEL_OPS = ops_where(lambda op: op.sets_channels)
MAX_LISTED = 4  # more adds/removes of one kind than this are counted, not named


def _fmt_value(key: str, v) -> str:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        if key in _SHAPE_ATTRS and all(isinstance(x, (int, np.integer)) for x in v):
            return "x".join(str(int(x)) for x in v)
        return "[" + ", ".join(_fmt_value("", x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _io(kind: str, name: str) -> str:
    """'input X', but 'input' for a tensor named input (not 'input input')."""
    return name if name.lower().startswith(kind) else f"{kind} {name}"


def _shape(t) -> str:
    return "x".join(str(d) for d in t.shape)


def _channels(g: Graph, node: Node) -> int | None:
    """The output channel count of a conv/dense layer: axis 1 (NCHW) or the last axis (NHWC, dense)."""
    if node.op not in _CHANNEL_OPS or not node.outputs or node.outputs[0] not in g.tensors:
        return None
    shape = g.tensors[node.outputs[0]].shape
    if not shape:
        return None
    if node.op in ("Conv", "ConvTranspose") and len(shape) >= 3 and node.attrs.get("layout", "NCHW") == "NCHW":
        return int(shape[1])
    return int(shape[-1])


def _producers(g: Graph) -> dict[str, str]:
    return {t: n.name for n in g.nodes for t in n.outputs}


def _data_inputs(g: Graph, node: Node, producers: dict[str, str]) -> list[str]:
    """Where a node's non-constant inputs come from: producer node names, or graph input names."""
    out = []
    for t in node.inputs:
        if not t or (t in g.tensors and g.tensors[t].data is not None):
            continue
        out.append(producers.get(t, t))
    return out


def _consts(g: Graph, node: Node) -> list:
    return [g.tensors[t] for t in node.inputs if t and t in g.tensors and g.tensors[t].data is not None]


def _group(verb: str, nodes: list[Node]) -> list[str]:
    if not nodes:
        return []
    if len(nodes) <= MAX_LISTED:
        return [f"{verb} {n.op} {n.name}" for n in nodes]
    kinds = Counter(n.op for n in nodes)
    parts = ", ".join(f"{c} {op}" for op, c in kinds.most_common())
    return [f"{verb} {len(nodes)} layers ({parts})"]


def graph_changes(a: Graph, b: Graph) -> list[str]:
    """The changes from graph `a` to graph `b`, one short phrase each, most telling first."""
    out: list[str] = []
    for name in b.inputs:
        if name in a.inputs and name in a.tensors and name in b.tensors:
            ta, tb = a.tensors[name], b.tensors[name]
            if ta.shape != tb.shape:
                out.append(f"{_io('input', name)} {_shape(ta)} → {_shape(tb)}")
            if ta.dtype != tb.dtype:
                out.append(f"{_io('input', name)} {ta.dtype} → {tb.dtype}")
    by_a = {n.name: n for n in a.nodes}
    by_b = {n.name: n for n in b.nodes}
    out += _group("added", [n for n in b.nodes if n.name not in by_a])
    out += _group("removed", [n for n in a.nodes if n.name not in by_b])

    pa, pb = _producers(a), _producers(b)
    dtype_moves: Counter = Counter()
    attr_moves: dict[tuple[str, str], list[str]] = {}  # (attribute, "a → b" phrase) -> layers
    channel_moves: dict[tuple[int, int], list[str]] = {}  # (channels before, after) -> layers
    retrained: list[str] = []
    rewired: list[str] = []
    for nb in b.nodes:
        na = by_a.get(nb.name)
        if na is None:
            continue
        if na.op != nb.op:
            out.append(f"{nb.name}: {na.op} → {nb.op}")
        ca, cb = _channels(a, na), _channels(b, nb)
        if ca is not None and cb is not None and ca != cb:
            channel_moves.setdefault((ca, cb), []).append(nb.name)
        for key in sorted(set(na.attrs) | set(nb.attrs)):
            va, vb = na.attrs.get(key), nb.attrs.get(key)
            if key == "layout" or _same(va, vb):
                continue
            if va is None:
                move = f"set to {_fmt_value(key, vb)}"
            elif vb is None:
                move = f"{_fmt_value(key, va)} removed"
            else:
                move = f"{_fmt_value(key, va)} → {_fmt_value(key, vb)}"
            attr_moves.setdefault((key, move), []).append(nb.name)
        if _data_inputs(a, na, pa) != _data_inputs(b, nb, pb) and nb.name not in rewired:
            rewired.append(nb.name)
        wa, wb = _consts(a, na), _consts(b, nb)
        if wa and wb:
            if wa[0].dtype != wb[0].dtype:
                dtype_moves[(wa[0].dtype, wb[0].dtype)] += 1
            elif len(wa) != len(wb) or any(x.shape == y.shape and not np.array_equal(x.data, y.data)
                                           for x, y in zip(wa, wb)):
                retrained.append(nb.name)
    for (ca, cb), names in channel_moves.items():  # a width change of a whole model: one phrase
        if len(names) > MAX_LISTED:
            out.append(f"{ca} → {cb} output channels in {len(names)} layers ({', '.join(names[:3])}, ...)")
        else:
            out += [f"{name}: {ca} → {cb} output channels" for name in names]
    for (key, move), names in attr_moves.items():  # a pass sets one attribute alike on many layers: one phrase
        if len(names) > 2:
            out.append(f"{key} {move} in {len(names)} layers")
        else:
            out += [f"{name}.{key} {move}" for name in names]
    for (da, db), n in dtype_moves.most_common():
        out.append(f"weights {da} → {db} in {n} layer{'s' if n != 1 else ''}")
    if rewired:
        out.append("rewired " + (", ".join(rewired) if len(rewired) <= MAX_LISTED else f"{len(rewired)} layers"))
    if retrained:
        out.append("new weight values in " + (", ".join(retrained) if len(retrained) <= MAX_LISTED
                                             else f"{len(retrained)} layers"))
    for name in b.outputs:
        if name in a.outputs and name in a.tensors and name in b.tensors \
                and a.tensors[name].shape != b.tensors[name].shape:
            out.append(f"{_io('output', name)} {_shape(a.tensors[name])} → {_shape(b.tensors[name])}")
    new_outputs = [o for o in b.outputs if o not in a.outputs]
    if new_outputs:
        out.append("new output " + ", ".join(new_outputs))
    return out


def _same(x, y) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape and bool(np.all(x == y))
    return x == y


def describe_changes(a: Graph, b: Graph, limit: int = 6) -> str:
    """graph_changes as one line: the first `limit` phrases joined by "; ", then how many more."""
    return summarize(graph_changes(a, b), limit)


def summarize(changes: list[str], limit: int = 6) -> str:
    """A list of graph_changes as one line (what describe_changes returns)."""
    if not changes:
        return "no change to the graph"
    text = "; ".join(changes[:limit])
    return text + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")
