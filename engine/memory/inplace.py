"""In-place depthwise convolution (TinyEngine): a depthwise conv whose input dies at its step writes its output
over that input, channel group by channel group, through a one-group temporary buffer.

    names = inplace_candidates(graph)                              # depthwise nodes that can run in place
    rw = inplace_rewrite(graph, names, table.buffers, order, 16)   # the buffer table with them in place

Why it is exact (NHWC, batch 1): output channel c is written only at positions (h * W_out + w) * C + c of the
input buffer, which hold input channel c, and channel c is finished (its whole output sits in the temporary
"dwtmp:<node>", H_out * W_out * g bytes) before its group is scattered; the channels of later groups are never
touched. The output is never larger than the input (same C, H_out <= H, W_out <= W), so it fills a prefix of the
input's buffer (stride 2: a quarter of it). Memory: the output tensor joins the input's buffer (its size stays the
input's) and the temporary lives at that step only: the step's live bytes drop by the output minus one group.

The group size g is chosen per node: the largest of 16, 8, 4, 2, 1 dividing C that keeps the lowest peak the
rewritten table can reach (g = 1), so kernels work on as many channels per pass as memory allows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from engine.ir import Graph, Node
from engine.memory.lifetimes import Buffer, align, live_bytes
from engine.memory.schedule import Rewrite, ScheduleError
from engine.ops import get_op
from engine.validate import infer_shapes

GROUPS = (16, 8, 4, 2, 1)   # channel group sizes tried, largest (fewest kernel passes) first


@dataclass(frozen=True)
class ConvGeom:
    """A 2-D NHWC convolution's geometry (batch 1)."""

    node: str
    x: str
    y: str
    in_hwc: tuple[int, int, int]
    out_hwc: tuple[int, int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]    # top, left, bottom, right
    group: int

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.in_hwc[2]

    @property
    def eff_kh(self) -> int:
        return (self.kernel[0] - 1) * self.dilations[0] + 1

    def macs_per_row(self) -> int:
        """MACs of one output row."""
        _, wo, m = self.out_hwc
        return wo * m * self.kernel[0] * self.kernel[1] * (self.in_hwc[2] // self.group)


def shaped(graph: Graph) -> Graph:
    return graph if all(o in graph.tensors for n in graph.nodes for o in n.outputs) else infer_shapes(graph)


def conv_geom(g: Graph, node: Node) -> ConvGeom | None:
    """The geometry of a 2-D NHWC batch-1 Conv on activations, None for anything else (other ops, NCHW, 1-D,
    constant input, batch > 1, int16 activations). Float graphs qualify (memory figures "as if int8")."""
    if node.op != "Conv" or node.attrs.get("layout", "NCHW") != "NHWC" or len(node.inputs) < 2:
        return None
    x, w = g.tensors.get(node.inputs[0]), g.tensors.get(node.inputs[1])
    y = g.tensors.get(node.outputs[0]) if node.outputs else None
    if x is None or w is None or y is None or x.data is not None or w.data is None or x.dtype == "int16":
        return None   # int16 (16x8) convs have no scheduled kernels
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != 1 or len(w.shape) != 4:
        return None
    from engine.int8.readers import spatial_2d   # geometry as the int8 kernels read it
    _, _, rank, k, s, d, pads, out = spatial_2d(g, node, tuple(w.shape[1:3]))
    if rank != 2:
        return None
    return ConvGeom(node.name, x.name, y.name, tuple(x.shape[1:]), tuple(y.shape[1:]), tuple(k), tuple(s),
                    tuple(d), tuple(pads), int(node.attrs.get("group", 1)))


def consumers_of(g: Graph) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in g.nodes:
        for t in dict.fromkeys(n.inputs):
            out.setdefault(t, []).append(n)
    return out


def _only_reader(g: Graph, tensor: str, node: str, readers: dict[str, list[Node]]) -> bool:
    """`node` is the only node reading `tensor` or a view/no-op alias of it."""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in g.outputs:
            return False
        for r in readers.get(t, []):
            op = get_op(r.op)
            if op is not None and (op.is_view or op.is_noop) and r.inputs[0] == t:
                todo.extend(r.outputs)
            elif r.name != node:
                return False
    return True


def inplace_geom(g: Graph, node: Node) -> ConvGeom | None:
    """The node's geometry when it is a depthwise conv that may overwrite its input (multiplier 1, output not
    larger than the input), else None. Whether the input dies at its step is checked on the table."""
    geo = conv_geom(g, node)
    if geo is None or not geo.depthwise or geo.out_hwc[2] != geo.in_hwc[2]:
        return None
    (h, w, _), (ho, wo, _) = geo.in_hwc, geo.out_hwc
    if ho > h or wo > w or g.tensors[geo.x].nbytes < g.tensors[geo.y].nbytes:
        return None
    return geo


def inplace_candidates(graph: Graph) -> list[str]:
    """Depthwise Conv nodes that can run in place in any order: NHWC, batch 1, channel multiplier 1, output not
    larger than the input, the input an activation read by this node only and not a graph output."""
    g = shaped(graph)
    readers = consumers_of(g)
    return [n.name for n in g.nodes
            if inplace_geom(g, n) is not None and _only_reader(g, n.inputs[0], n.name, readers)]


def buffer_index(buffers: list[Buffer], tensor: str) -> int:
    for i, b in enumerate(buffers):
        if tensor in b.tensors:
            return i
    raise ScheduleError(f"tensor '{tensor}' has no buffer in the table")


def tmp_name(node: str) -> str:
    return f"dwtmp:{node}"


def _apply(g: Graph, geo: ConvGeom, group: int, buffers: list[Buffer], step: int, alignment: int) -> None:
    ix, iy = buffer_index(buffers, geo.x), buffer_index(buffers, geo.y)
    bx, by = buffers[ix], buffers[iy]
    if ix == iy:
        raise ScheduleError(f"schedule.inplace: node '{geo.node}': its output already shares its input's buffer")
    if bx.last_use != step or any(t in g.outputs for t in bx.tensors):
        raise ScheduleError(f"schedule.inplace: node '{geo.node}': its input '{geo.x}' is still needed after it "
                            "(read later or a graph output); it cannot be overwritten")
    if by.first_use != step or by.nbytes > bx.nbytes:
        raise ScheduleError(f"schedule.inplace: node '{geo.node}': its output does not fit its input's buffer")
    ho, wo, c = geo.out_hwc
    per_elem = by.nbytes / (ho * wo * c)
    nb = int(math.ceil(ho * wo * group * per_elem))
    buffers[ix] = replace(bx, last_use=by.last_use, tensors=bx.tensors + by.tensors)
    buffers[iy] = Buffer(tmp_name(geo.node), align(nb, alignment), step, step, (tmp_name(geo.node),), nb)


def _peak(buffers, n_steps: int) -> int:
    return max(live_bytes(buffers, n_steps), default=0)


def inplace_rewrite(graph: Graph, nodes: tuple[str, ...], buffers, order: list[str], alignment: int,
                    groups: dict[str, int] | None = None) -> Rewrite:
    """The buffer table with `nodes` run in place (see the module doc). `groups` fixes a node's channel group
    size; otherwise it is chosen (largest of GROUPS dividing C at the lowest peak). ScheduleError names the node
    when one cannot run in place in this order."""
    g = shaped(graph)
    by_name = {n.name: n for n in g.nodes}
    step = {name: i for i, name in enumerate(order)}
    geos = []
    for name in nodes:
        node = by_name.get(name)
        if node is None:
            raise ScheduleError(f"schedule.inplace: no node '{name}' in the graph")
        geo = inplace_geom(g, node)
        if geo is None:
            raise ScheduleError(f"schedule.inplace: node '{name}' ({node.op}) is not a depthwise NHWC batch-1 "
                                "conv with channel multiplier 1 whose output fits its input")
        geos.append(geo)
    n_steps = len(order)
    chosen = {geo.node: (groups or {}).get(geo.node, 1) for geo in geos}
    for geo in geos:
        c = geo.in_hwc[2]
        if c % chosen[geo.node] or chosen[geo.node] < 1:
            raise ScheduleError(f"schedule.inplace: node '{geo.node}': group {chosen[geo.node]} does not divide "
                                f"its {c} channels")

    def table(sel: dict[str, int]) -> list[Buffer]:
        out = list(buffers)
        for geo in geos:
            _apply(g, geo, sel[geo.node], out, step[geo.node], alignment)
        return out

    best = table(chosen)
    if groups is None or any(geo.node not in groups for geo in geos):
        floor = _peak(best, n_steps)
        for geo in geos:  # grow each group while the peak stays at the floor
            if groups and geo.node in groups:
                continue
            for gs in GROUPS:
                if geo.in_hwc[2] % gs or gs <= chosen[geo.node]:
                    continue
                trial = table({**chosen, geo.node: gs})
                if _peak(trial, n_steps) <= floor:
                    chosen[geo.node] = gs
                    best = trial
                    break
    live = live_bytes(best, n_steps)
    detail = {}
    for geo in geos:
        s = step[geo.node]
        gs = chosen[geo.node]
        detail[s] = [{"label": f"{geo.node}: in place, {geo.in_hwc[2] // gs} groups of {gs} channels",
                      "live_bytes": live[s] if s < len(live) else 0, "group": gs}]
    before = _peak(list(buffers), n_steps)
    note = (f"in-place depthwise on {len(geos)} layer{'s' if len(geos) != 1 else ''}: peak {before:,} -> "
            f"{max(live, default=0):,} B")
    return Rewrite(tuple(best), 0, detail, note)


def group_of(plan_buffers, node: str, out_hw: tuple[int, int], channels: int) -> int:
    """The channel group size a planned in-place node uses, read back from its temporary's size."""
    for b in plan_buffers:
        if b.tensors == (tmp_name(node),):
            gs = b.nbytes // (out_hw[0] * out_hw[1])
            if gs < 1 or channels % gs:
                raise ScheduleError(f"in-place node '{node}': temporary of {b.nbytes} B is not a channel group")
            return gs
    raise ScheduleError(f"in-place node '{node}': the memory plan has no '{tmp_name(node)}' buffer")


def inplace_needed(graph: Graph, nodes, buffers, order: list[str], alignment: int = 16) -> list[str]:
    """The in-place nodes the peak needs: dropping any other keeps the rewritten table's peak (each in-place node
    costs a scatter per output byte, so a node that lowers no peak is better run as a layer)."""
    keep = list(nodes)
    n_steps = len(order)
    floor = _peak(list(inplace_rewrite(graph, tuple(keep), buffers, order, alignment, {n: 1 for n in keep}).buffers),
                  n_steps)
    for name in reversed(list(nodes)):
        rest = [n for n in keep if n != name]
        rw = inplace_rewrite(graph, tuple(rest), buffers, order, alignment, {n: 1 for n in rest})
        if _peak(list(rw.buffers), n_steps) <= floor:
            keep = rest
    return keep
