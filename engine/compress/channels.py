"""Channel dependencies for structured pruning, and the surgery that removes channels.

Every channel of every activation gets a slot id. A conv (group 1) or FC layer creates fresh slots for
its outputs: those are the channels pruning can remove. Ops that keep channels apart carry the slots
through (BN, activations, pools, pads and resizes that leave the channel axis alone, transposes and
reshapes that only move it, Flatten which repeats each slot over the spatial positions it flattens);
a depthwise conv maps output channel j to input slot j // multiplier (pruning its input prunes it);
Concat along the channel axis concatenates the slot lists (offset mapping) and Split cuts them.
An element-wise Add/Mul/... of two activations unites their slots channel by channel (a residual sum:
the channels of both branches must go together). Anything else (a grouped conv, MatMul, Gather, a
Softmax or LayerNorm over channels, a reshape that mixes channels, the graph inputs and outputs) pins
the slots it touches: they are never removed.

    cg = analyze(graph)                       # slots, classes (union-find), prunable classes
    cg.classes()                              # {root: [(layer, output channel), ...]} prunable groups
    pruned = apply_pruning(graph, cg, removed_roots)    # a new graph; shapes re-inferred

A class is removed as a whole: the output channel of every layer in it (weight rows, bias entries, the BN
parameters after it, depthwise filters), the matching input channels of every layer that reads it (weight
columns; the flattened block of an FC input) and the entries of per-channel constants of element-wise ops.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.ir import Graph, Node
from engine.ops import ops_where
from engine.ops.base import norm_axis
from engine.validate import infer_shapes, topological_order

PASS_THROUGH = ops_where(lambda op: op.prunes_through)
BINARY = ops_where(lambda op: op.elementwise == "binary")  # per-channel constants are pruned with the data
VIEWS = ops_where(lambda op: op.is_view)
PROBABILITIES = ops_where(lambda op: op.probabilities)  # normalized along one axis


@dataclass
class Slots:
    axis: int
    ids: np.ndarray  # int64, one slot per channel along `axis`


@dataclass
class ChannelGraph:
    maps: dict[str, Slots] = field(default_factory=dict)  # tensor -> its channel slots
    parent: list[int] = field(default_factory=list)
    pinned: set[int] = field(default_factory=set)
    sources: dict[str, np.ndarray] = field(default_factory=dict)  # layer name -> slots of its output channels
    node_info: dict[str, dict] = field(default_factory=dict)  # what the surgery needs per node

    # ---- union-find over slots ------------------------------------------------------------------
    def fresh(self, n: int, pinned: bool = False) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        ids = np.arange(start, start + n, dtype=np.int64)
        if pinned:
            self.pinned.update(ids.tolist())
        return ids

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[ry] = rx

    def pin(self, ids: np.ndarray) -> None:
        self.pinned.update(int(i) for i in ids)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.find(int(i)) for i in ids], dtype=np.int64)

    def pinned_roots(self) -> set[int]:
        return {self.find(i) for i in self.pinned}

    def classes(self) -> dict[int, list[tuple[str, int]]]:
        """Prunable classes: root -> [(layer, output channel)], in a stable order."""
        bad = self.pinned_roots()
        out: dict[int, list[tuple[str, int]]] = {}
        for layer, ids in self.sources.items():
            for j, r in enumerate(self.roots(ids).tolist()):
                if r not in bad:
                    out.setdefault(r, []).append((layer, j))
        return out

    def touched(self) -> dict[int, dict[str, int]]:
        """root -> {tensor: how many of its channels (features) belong to the class}."""
        out: dict[int, dict[str, int]] = {}
        for t, s in self.maps.items():
            r, c = np.unique(self.roots(s.ids), return_counts=True)
            for ri, ci in zip(r.tolist(), c.tolist()):
                out.setdefault(ri, {})[t] = ci
        return out


# ---- analysis -----------------------------------------------------------------------------------------

def _layout_axis(node: Node, rank: int) -> int:
    return 1 if node.attrs.get("layout", "NCHW") == "NCHW" else rank - 1


def _view_axis(in_shape: tuple, out_shape: tuple, axis: int) -> int | None:
    """Where channel axis `axis` lands when a reshape only adds/removes size-1 dims (None: it mixes)."""
    a = [(i, d) for i, d in enumerate(in_shape) if d != 1]
    b = [(i, d) for i, d in enumerate(out_shape) if d != 1]
    if [d for _, d in a] != [d for _, d in b]:
        return None
    if in_shape[axis] == 1:
        return None
    k = [i for i, _ in a].index(axis)
    return b[k][0]


def analyze(graph: Graph) -> ChannelGraph:
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    cg = ChannelGraph()
    shape = lambda name: g.tensors[name].shape  # noqa: E731

    def get(name: str, axis: int) -> np.ndarray:
        """The slots of activation `name` along `axis`; pinned fresh ones when unknown or on another axis."""
        s = cg.maps.get(name)
        if s is not None and s.axis == axis:
            return s.ids
        if s is not None:
            cg.pin(s.ids)
        ids = cg.fresh(shape(name)[axis], pinned=True)
        cg.maps[name] = Slots(axis, ids) if s is None else s
        return ids

    def pin_inputs(node: Node) -> None:
        for i in node.inputs:
            if i in cg.maps:
                cg.pin(cg.maps[i].ids)

    def is_act(name: str) -> bool:
        return bool(name) and g.tensors[name].data is None

    for node in topological_order(g):
        op, ins, outs = node.op, node.inputs, node.outputs
        x = ins[0] if ins else ""
        info: dict = {"kind": "other"}
        if op == "Conv" and g.tensors[ins[1]].data is not None and is_act(x):
            r = len(shape(x))
            ax = _layout_axis(node, r)
            c, m, grp = shape(x)[ax], g.tensors[ins[1]].shape[0], int(node.attrs.get("group", 1))
            if grp == 1:
                s_in = get(x, ax)
                s_out = cg.fresh(m)
                cg.sources[node.name] = s_out
                info = {"kind": "conv", "in": s_in, "out": s_out, "axis": ax}
            elif grp == c and m % c == 0:
                s_in = get(x, ax)
                s_out = np.repeat(s_in, m // c)
                info = {"kind": "depthwise", "in": s_in, "out": s_out, "axis": ax}
            else:
                pin_inputs(node)
                s_out = cg.fresh(m, pinned=True)
            cg.maps[outs[0]] = Slots(ax, s_out)
        elif op == "Gemm" and g.tensors[ins[1]].data is not None and is_act(x) and len(shape(x)) == 2 \
                and not node.attrs.get("transA", 0):
            w = g.tensors[ins[1]]
            n_out = w.shape[0] if node.attrs.get("transB", 0) else w.shape[1]
            s_in = get(x, 1)
            s_out = cg.fresh(n_out)
            cg.sources[node.name] = s_out
            cg.maps[outs[0]] = Slots(1, s_out)
            info = {"kind": "gemm", "in": s_in, "out": s_out}
        elif op == "BatchNormalization" and is_act(x):
            ax = _layout_axis(node, len(shape(x)))
            s = get(x, ax)
            cg.maps[outs[0]] = Slots(ax, s)
            info = {"kind": "bn", "out": s}
        elif op in PASS_THROUGH and is_act(x) and x in cg.maps:
            for o in outs:
                cg.maps[o] = cg.maps[x]
        elif op == "Pad" and x in cg.maps:
            s = cg.maps[x]
            pads = list(node.attrs.get("pads", []))
            r = len(shape(x))
            if pads and (pads[s.axis] or pads[s.axis + r]):
                cg.pin(s.ids)
            else:
                cg.maps[outs[0]] = s
        elif op in BINARY:
            r = len(shape(outs[0]))
            mapped = [(i, cg.maps[i]) for i in ins if is_act(i) and i in cg.maps
                      and shape(i)[cg.maps[i].axis] > 1]
            if not mapped:
                pin_inputs(node)
            else:
                first, s0 = mapped[0]
                ax = s0.axis + r - len(shape(first))
                cout = shape(outs[0])[ax]
                ok = True
                for i in ins:
                    if not i:
                        continue
                    d = shape(i)[ax - (r - len(shape(i)))] if ax - (r - len(shape(i))) >= 0 else 1
                    if d == 1:
                        continue
                    s = cg.maps.get(i) if is_act(i) else None
                    if not is_act(i):
                        continue  # a per-channel constant: sliced by the surgery
                    if s is None or s.axis + r - len(shape(i)) != ax or len(s.ids) != cout:
                        ok = False
                        continue
                    cg.union(s0.ids, s.ids)
                if ok:
                    cg.maps[outs[0]] = Slots(ax, s0.ids)
                    info = {"kind": "binary", "out": s0.ids, "axis": ax}
                else:
                    pin_inputs(node)
        elif op == "Concat":
            r = len(shape(outs[0]))
            ax = norm_axis(node.attrs.get("axis", 1), r)
            acts = [i for i in ins if i]
            axes = {cg.maps[i].axis for i in acts if i in cg.maps}
            if all(is_act(i) for i in acts) and axes <= {ax}:
                ids = np.concatenate([get(i, ax) for i in acts])
                cg.maps[outs[0]] = Slots(ax, ids)
            elif all(is_act(i) for i in acts) and len(axes) == 1 and all(i in cg.maps for i in acts):
                s0 = cg.maps[acts[0]]
                for i in acts[1:]:
                    cg.union(s0.ids, cg.maps[i].ids)
                cg.maps[outs[0]] = s0
            else:
                pin_inputs(node)
        elif op == "Split" and x in cg.maps:
            s = cg.maps[x]
            ax = norm_axis(node.attrs.get("axis", 0), len(shape(x)))
            if ax == s.axis:
                at = 0
                for o in outs:
                    n = shape(o)[ax]
                    cg.maps[o] = Slots(ax, s.ids[at:at + n])
                    at += n
                info = {"kind": "split", "outs": [cg.maps[o].ids for o in outs]}
            else:
                for o in outs:
                    cg.maps[o] = s
        elif op in VIEWS and x in cg.maps:
            s = cg.maps[x]
            xs, ys = shape(x), shape(outs[0])
            r = len(xs)
            flat = len(ys) == 2 and ys[0] == xs[0] and (op != "Flatten" or int(node.attrs.get("axis", 1)) in (1, 1 - r))
            if s.axis != 0 and flat and s.axis == 1:
                cg.maps[outs[0]] = Slots(1, np.repeat(s.ids, int(np.prod(xs[2:], dtype=np.int64))))
                info = {"kind": "flatten"}
            elif s.axis != 0 and flat and s.axis == r - 1:
                cg.maps[outs[0]] = Slots(1, np.tile(s.ids, int(np.prod(xs[1:r - 1], dtype=np.int64))))
                info = {"kind": "flatten"}
            else:
                nax = _view_axis(xs, ys, s.axis)
                if nax is None:
                    cg.pin(s.ids)
                else:
                    cg.maps[outs[0]] = Slots(nax, s.ids)
                    info = {"kind": "view", "axis": nax}
        elif op == "Transpose" and x in cg.maps:
            s = cg.maps[x]
            perm = node.attrs.get("perm") or list(reversed(range(len(shape(x)))))
            cg.maps[outs[0]] = Slots(list(perm).index(s.axis), s.ids)
        elif op.startswith("Reduce") and x in cg.maps:
            s = cg.maps[x]
            r = len(shape(x))
            axes = node.attrs.get("axes")
            axes = list(range(r)) if axes is None else [norm_axis(a, r) for a in axes]
            if s.axis in axes:
                cg.pin(s.ids)
            else:
                keep = int(node.attrs.get("keepdims", 1))
                cg.maps[outs[0]] = Slots(s.axis if keep else s.axis - sum(a < s.axis for a in axes), s.ids)
        elif op in PROBABILITIES and x in cg.maps:
            s = cg.maps[x]
            if norm_axis(node.attrs.get("axis", -1), len(shape(x))) == s.axis:
                cg.pin(s.ids)
            else:
                cg.maps[outs[0]] = s
        else:
            pin_inputs(node)
        cg.node_info[node.name] = info
    for o in g.outputs:
        if o in cg.maps:
            cg.pin(cg.maps[o].ids)
    return cg


# ---- surgery -------------------------------------------------------------------------------------------

def _take(g: Graph, name: str, keep: np.ndarray, axis: int) -> None:
    """Slice constant `name` along `axis` (in place; the tensor is private to the node after _own)."""
    t = g.tensors[name]
    data = np.take(t.data, np.flatnonzero(keep), axis=axis)
    t.data = np.ascontiguousarray(data)
    t.shape = tuple(data.shape)


def _own(g: Graph, node: Node, i: int) -> str:
    """Give `node` its own copy of constant input i (a shared constant must not be cut for another node)."""
    from engine.passes.base import fresh_name
    name = node.inputs[i]
    users = sum(1 for n in g.nodes for x in n.inputs if x == name)
    if users > 1 or name in g.outputs:
        t = g.tensors[name]
        new = fresh_name(g, f"{name}_{node.name}")
        g.tensors[new] = type(t)(new, t.shape, t.dtype, t.quant, t.data.copy(), dict(t.meta))
        node.inputs[i] = new
        return new
    return name


def apply_pruning(graph: Graph, cg: ChannelGraph, removed: set[int]) -> Graph:
    """A copy of `graph` without the channels of the removed classes (roots of `cg`)."""
    g = graph.copy()
    if not removed:
        return infer_shapes(g)
    keep_of = lambda ids: ~np.isin(cg.roots(ids), list(removed))  # noqa: E731
    for node in g.nodes:
        info = cg.node_info.get(node.name, {"kind": "other"})
        kind = info["kind"]
        if kind in ("conv", "depthwise", "gemm"):
            ko = keep_of(info["out"])
            w = g.tensors[_own(g, node, 1)]
            if w.quant is not None:
                raise ValueError(f"node '{node.name}': prune channels of the float graph, not a quantized one")
            if kind == "gemm":
                tb = int(node.attrs.get("transB", 0))
                ki = keep_of(info["in"])
                _take(g, w.name, ko, 0 if tb else 1)
                _take(g, w.name, ki, 1 if tb else 0)
            else:
                _take(g, w.name, ko, 0)
                if kind == "conv":
                    _take(g, w.name, keep_of(info["in"]), 1 if node.attrs.get("layout", "NCHW") == "NCHW"
                          else w.data.ndim - 1)
                else:
                    node.attrs["group"] = int(keep_of(info["in"]).sum())
            if len(node.inputs) > 2 and node.inputs[2] and g.tensors[node.inputs[2]].data is not None:
                b = _own(g, node, 2)
                _take(g, b, ko, g.tensors[b].data.ndim - 1)
        elif kind == "bn":
            k = keep_of(info["out"])
            for i in range(1, 5):
                _take(g, _own(g, node, i), k, 0)
        elif kind == "binary":
            k = keep_of(info["out"])
            r = len(g.tensors[node.outputs[0]].shape)
            for i, name in enumerate(node.inputs):
                t = g.tensors.get(name) if name else None
                if t is None or t.data is None:
                    continue
                a = info["axis"] - (r - t.data.ndim)
                if a >= 0 and t.data.shape[a] == k.size and k.size > 1:
                    _take(g, _own(g, node, i), k, a)
        elif kind == "split":
            node.attrs["split"] = [int(keep_of(ids).sum()) for ids in info["outs"]]
        elif kind in ("flatten", "view") and node.op == "Reshape":
            x = g.tensors[node.inputs[0]]
            s = cg.maps[node.inputs[0]]
            kept = int(keep_of(s.ids).sum())
            new_in = list(x.shape)
            new_in[s.axis] = kept
            out = list(graph.tensors[node.outputs[0]].shape)
            if kind == "flatten":
                out[1] = int(np.prod(new_in[1:], dtype=np.int64))
            else:
                out[info["axis"]] = kept
            node.attrs["shape"] = out
    return infer_shapes(g)
