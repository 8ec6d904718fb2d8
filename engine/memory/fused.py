"""Fused inverted-residual blocks (StreamNet / msf-CNN): expand Conv -> depthwise Conv -> 1x1 project Conv,
computed band by band of the project's output rows so the expanded tensors never exist whole.

    blocks = fused_candidates(graph, max_mac_overhead=0.10)                # [FusedBlock(nodes, band_rows), ...]
    rw = fused_rewrite(graph, tuple(blocks), table.buffers, order, 16)     # the buffer table with them fused

Per band of output rows [r0, r1): the depthwise input rows it needs (its halo) are the expanded rows
[lo, hi) = [r0*s - pad, (r1-1)*s - pad + k_eff) clipped to the image; they sit in "band:<expanded>". Rows that the
previous band already computed are kept (moved to the top of the band buffer, a rolling buffer of k_eff - s rows)
and only the new rows are expanded, so nothing is recomputed: the MAC overhead is 0 (halo_extra_macs gives what
recomputing the halos instead would cost). The depthwise band goes to "band:<depthwise out>", the projection
writes rows [r0, r1) of the whole output. The residual Add of a block runs after it, layer by layer (in place
over the project's output), so the block's input and output both exist whole, as the brief's memory model says.

The "expand" node is any group-1 Conv whose output only the depthwise reads (a 1x1 expand in MobileNetV2, also
the stem conv before a first block without expansion, or the previous pointwise conv in MobileNetV1 chains).
The whole block runs at its first node's step: band buffers live at that step only, the output from that step on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from engine.ir import Graph
from engine.memory.inplace import ConvGeom, consumers_of, buffer_index, conv_geom, shaped
from engine.memory.lifetimes import Buffer, align, buffer_model, buffer_table, live_bytes
from engine.memory.order import best_order
from engine.memory.schedule import FusedBlock, Rewrite, ScheduleError
from engine.validate import topological_order

BAND_TRIES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)   # band heights tried after 1 (plus the whole output)


@dataclass(frozen=True)
class Band:
    r0: int       # project/depthwise output rows [r0, r1)
    r1: int
    lo: int       # expanded rows held in the band buffer [lo, hi)
    hi: int
    new: int      # first expanded row computed in this band (rows [lo, new) come from the previous band)


@dataclass(frozen=True)
class BlockGeom:
    expand: ConvGeom
    dw: ConvGeom
    project: ConvGeom

    @property
    def out_h(self) -> int:
        return self.dw.out_hwc[0]

    def rows_needed(self, r0: int, r1: int) -> tuple[int, int]:
        d = self.dw
        lo = max(0, r0 * d.strides[0] - d.pads[0])
        hi = min(d.in_hwc[0], (r1 - 1) * d.strides[0] - d.pads[0] + d.eff_kh)
        return lo, max(hi, lo)

    def bands(self, band_rows: int, rolling: bool = True) -> list[Band]:
        out, prev_hi = [], 0
        for r0 in range(0, self.out_h, band_rows):
            r1 = min(r0 + band_rows, self.out_h)
            lo, hi = self.rows_needed(r0, r1)
            new = max(lo, prev_hi) if rolling else lo
            out.append(Band(r0, r1, lo, hi, new))
            prev_hi = hi
        return out

    def band_a_rows(self, band_rows: int) -> int:
        return max((b.hi - b.lo for b in self.bands(band_rows)), default=0)

    def band_bytes(self, band_rows: int, per_elem: float = 1.0) -> tuple[int, int]:
        """Bytes of the expanded band and of the depthwise band."""
        _, wa, ca = self.dw.in_hwc
        _, wo, cb = self.dw.out_hwc
        return (int(-(-self.band_a_rows(band_rows) * wa * ca * per_elem // 1)),
                int(-(-min(band_rows, self.out_h) * wo * cb * per_elem // 1)))


def band_name(tensor: str) -> str:
    return f"band:{tensor}"


def block_geom(graph: Graph, block: FusedBlock) -> BlockGeom:
    """The block's geometry; ScheduleError naming the node when the three nodes are not a fusable chain."""
    g = shaped(graph)
    nodes = {n.name: n for n in g.nodes}
    where = f"schedule.fused {list(block.nodes)}"
    geos = []
    for role, name in zip(("expand", "depthwise", "project"), block.nodes):
        if name not in nodes:
            raise ScheduleError(f"{where}: no node '{name}' in the graph")
        geo = conv_geom(g, nodes[name])
        if geo is None:
            raise ScheduleError(f"{where}: node '{name}' ({nodes[name].op}) is not an NHWC batch-1 2-D Conv "
                                f"(the {role} conv)")
        geos.append(geo)
    e, d, p = geos
    if e.group != 1:
        raise ScheduleError(f"{where}: node '{e.node}': the expand conv must be a regular conv (group 1)")
    if not d.depthwise:
        raise ScheduleError(f"{where}: node '{d.node}' is not a depthwise conv")
    if p.group != 1 or p.kernel != (1, 1) or p.strides != (1, 1) or any(p.pads):
        raise ScheduleError(f"{where}: node '{p.node}': the project conv must be 1x1, stride 1, no padding")
    readers = consumers_of(g)
    for a, b in ((e, d), (d, p)):
        rd = readers.get(a.y, [])
        if b.x != a.y or a.y in g.outputs or len(rd) != 1 or rd[0].name != b.node:
            raise ScheduleError(f"{where}: '{a.y}' (output of '{a.node}') must be read by '{b.node}' only")
    if block.band_rows < 1:
        raise ScheduleError(f"{where}: band_rows must be >= 1")
    return BlockGeom(e, d, p)


def halo_extra_macs(graph: Graph, block: FusedBlock) -> int:
    """MACs the expand conv would recompute if each band recomputed its halo instead of keeping the rolling rows."""
    geo = block_geom(graph, block)
    return sum((b.new - b.lo) for b in geo.bands(block.band_rows)) * geo.expand.macs_per_row()


def _rewrite_one(g: Graph, geo: BlockGeom, band_rows: int, buffers: list[Buffer], step: int,
                 alignment: int) -> None:
    ia, ib = buffer_index(buffers, geo.expand.y), buffer_index(buffers, geo.dw.y)
    for i, t in ((ia, geo.expand.y), (ib, geo.dw.y)):
        if set(buffers[i].tensors) - {t}:
            raise ScheduleError(f"schedule.fused: '{t}' shares its buffer with {buffers[i].tensors[1]!r}")
    a, b = buffers[ia], buffers[ib]
    per_elem = a.nbytes / max(g.tensors[geo.expand.y].size, 1)
    na, nb = geo.band_bytes(band_rows, per_elem)
    ix, iy = buffer_index(buffers, geo.expand.x), buffer_index(buffers, geo.project.y)
    buffers[ix] = replace(buffers[ix], last_use=max(buffers[ix].last_use, step))
    buffers[iy] = replace(buffers[iy], first_use=min(buffers[iy].first_use, step))
    buffers[ia] = Buffer(band_name(geo.expand.y), align(na, alignment), step, step, (band_name(geo.expand.y),), na)
    buffers[ib] = Buffer(band_name(geo.dw.y), align(nb, alignment), step, step, (band_name(geo.dw.y),), nb)


def _table(g, geos, rows, buffers, step, alignment) -> list[Buffer]:
    out = list(buffers)
    for geo, r in zip(geos, rows):
        _rewrite_one(g, geo, r, out, step[geo.expand.node], alignment)
    return out


def fused_rewrite(graph: Graph, blocks: tuple[FusedBlock, ...], buffers, order: list[str],
                  alignment: int) -> Rewrite:
    """The buffer table with `blocks` fused (see the module doc). ScheduleError names the block and node when a
    block cannot be fused, or its nodes are not in `order`."""
    g = shaped(graph)
    step = {name: i for i, name in enumerate(order)}
    geos = [block_geom(g, b) for b in blocks]
    for geo in geos:
        e, d, p = (step.get(n.node) for n in (geo.expand, geo.dw, geo.project))
        if None in (e, d, p) or not e < d < p:
            raise ScheduleError(f"schedule.fused: nodes '{geo.expand.node}', '{geo.dw.node}', '{geo.project.node}' "
                                "are not in this order, one after the other")
    new = _table(g, geos, [b.band_rows for b in blocks], buffers, step, alignment)
    n_steps = len(order)
    live = live_bytes(new, n_steps)
    detail = {}
    for geo, blk in zip(geos, blocks):
        s = step[geo.expand.node]
        detail[s] = [{"label": f"{geo.project.node} rows {bd.r0}..{bd.r1 - 1}", "live_bytes": live[s]}
                     for bd in geo.bands(blk.band_rows)]
    before = max(live_bytes(list(buffers), n_steps), default=0)
    note = (f"{len(blocks)} fused block{'s' if len(blocks) != 1 else ''} (bands of "
            f"{', '.join(str(b.band_rows) for b in blocks)} rows): peak {before:,} -> {max(live, default=0):,} B, "
            "+0 MACs (rolling halo rows)")
    return Rewrite(tuple(new), 0, detail, note)


def all_blocks(graph: Graph) -> list[BlockGeom]:
    """Every chain expand Conv -> depthwise Conv -> 1x1 Conv that block_geom accepts (they may share nodes)."""
    g = shaped(graph)
    readers = consumers_of(g)
    out = []
    for n in g.nodes:
        a = n.outputs[0] if n.op == "Conv" and n.outputs else None
        rd = readers.get(a, []) if a else []
        if len(rd) != 1:
            continue
        rb = readers.get(rd[0].outputs[0], []) if rd[0].outputs else []
        if len(rb) != 1:
            continue
        try:
            out.append(block_geom(g, FusedBlock((n.name, rd[0].name, rb[0].name), 1)))
        except ScheduleError:
            continue
    return out


def layer_table(graph: Graph, alignment: int = 16) -> tuple[list[str], list[Buffer]]:
    """The layer-by-layer order and buffer table plan_memory uses (the lower of the topological and the
    optimized order's peaks)."""
    g = shaped(graph)
    model = buffer_model(g, None, True, alignment)
    orders = [[n.name for n in topological_order(g)]]
    if g.nodes:
        r = best_order(model)
        orders.append([model.nodes[i].name for i in r.order])
    best = None
    for order in orders:
        bufs = list(buffer_table(model, order).buffers)
        peak = max(live_bytes(bufs, len(order)), default=0)
        if best is None or peak < best[0]:
            best = (peak, order, bufs)
    return best[1], best[2]


def _key(buffers, n_steps) -> tuple[int, int]:
    live = live_bytes(buffers, n_steps)
    peak = max(live, default=0)
    return peak, live.count(peak)


def fused_candidates(graph: Graph, max_mac_overhead: float = 0.10, order: list[str] | None = None,
                     buffers=None, alignment: int = 16) -> list[FusedBlock]:
    """The blocks to fuse and their band heights: greedily the block that lowers the peak (then the number of
    steps at the peak) most, while one does; blocks the final peak does not need are dropped (a graph whose peak
    no block lowers gets none); then each block's band grows to the tallest of BAND_TRIES (or the
    whole output) that keeps that peak, for fewer kernel calls. Rolling halos recompute nothing, so every band
    height is within any `max_mac_overhead` >= 0. `order`/`buffers`: the table to improve (default: the
    layer-by-layer one)."""
    if not max_mac_overhead >= 0:
        raise ScheduleError(f"max_mac_overhead must be >= 0, got {max_mac_overhead}")
    g = shaped(graph)
    if order is None or buffers is None:
        order, buffers = layer_table(g, alignment)
    step = {name: i for i, name in enumerate(order)}
    n_steps = len(order)
    cands = [b for b in all_blocks(g)
             if step[b.expand.node] < step[b.dw.node] < step[b.project.node]]
    chosen: list[BlockGeom] = []
    key = _key(buffers, n_steps)
    while True:
        used = {x.node for c in chosen for x in (c.expand, c.dw, c.project)}
        best = None
        for c in cands:
            if used & {c.expand.node, c.dw.node, c.project.node}:
                continue
            k = _key(_table(g, chosen + [c], [1] * (len(chosen) + 1), buffers, step, alignment), n_steps)
            if k < key and (best is None or k < best[0]):
                best = (k, c)
        if best is None:
            break
        key = best[0]
        chosen.append(best[1])
    floor = key[0]
    for c in list(reversed(chosen)):   # a block the final peak does not need only costs band loops: dropped
        rest = [x for x in chosen if x is not c]
        if _key(_table(g, rest, [1] * len(rest), buffers, step, alignment), n_steps)[0] <= floor:
            chosen = rest
    chosen.sort(key=lambda c: step[c.expand.node])
    rows = [1] * len(chosen)
    for i, c in enumerate(chosen):
        for r in sorted({*BAND_TRIES, c.out_h}, reverse=True):
            if r <= 1 or r > c.out_h:
                continue
            trial = rows[:i] + [r] + rows[i + 1:]
            if _key(_table(g, chosen, trial, buffers, step, alignment), n_steps)[0] <= floor:
                rows[i] = r
                break
    return [FusedBlock((c.expand.node, c.dw.node, c.project.node), r) for c, r in zip(chosen, rows)]
