"""Fused inverted-residual blocks (StreamNet / msf-CNN): expand Conv -> depthwise Conv -> 1x1 project Conv,
computed band by band of the project's output rows so the expanded tensors never exist whole.

    blocks = fused_candidates(graph, max_mac_overhead=0.10)                # [FusedBlock(nodes, band_rows), ...]
    rw = fused_rewrite(graph, tuple(blocks), table.buffers, order, 16)     # the buffer table with them fused

Per band of output rows [r0, r1): the depthwise input rows it needs (its halo) are the expanded rows
[lo, hi) = [r0*s - pad, (r1-1)*s - pad + k_eff) clipped to the image; they sit in "band:<expanded>". Rows that the
previous band already computed are kept (moved to the top of the band buffer, a rolling buffer of k_eff - s rows)
and only the new rows are expanded, so nothing is recomputed: the MAC overhead is 0 (halo_extra_macs gives what
recomputing the halos instead would cost). The depthwise band goes to "band:<depthwise out>", the projection
writes rows [r0, r1) of the whole output.

A block may include the residual Add that closes it (4 nodes: expand, depthwise, project, Add of the project's
output and the expand's input, same shapes): the projection then goes to a band buffer "band:<project out>" and
each band adds its rows to the block input's rows [r0, r1), writing the sum's rows [r0, r1). The project output
never exists whole. When nothing reads the block input after the block and no later band's expand reads input
rows below r1 (rolling rows, add_in_place_ok), the sum is written in place over the input rows this band has
consumed: the block's input and output share one buffer, so the block's peak is its input plus three bands.

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
class AddGeom:
    node: str
    x: str             # the block input (the expand's input)
    p: str             # the project's output
    y: str             # the sum
    p_first: bool      # the project's output is the Add's first input


@dataclass(frozen=True)
class BlockGeom:
    expand: ConvGeom
    dw: ConvGeom
    project: ConvGeom
    add: AddGeom | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        return (self.expand.node, self.dw.node, self.project.node) + ((self.add.node,) if self.add else ())

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

    def add_in_place_ok(self, band_rows: int) -> bool:
        """Whether each band's sum may overwrite the block input's rows [r0, r1): no later band's expand reads an
        input row below r1 (rolling rows: each band expands only its new rows)."""
        e, lowest = self.expand, None
        for b in reversed(self.bands(band_rows)):
            if lowest is not None and lowest < b.r1:
                return False
            if b.hi > b.new:
                x0 = max(0, b.new * e.strides[0] - e.pads[0])
                lowest = x0 if lowest is None else min(lowest, x0)
        return True

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
    if len(block.nodes) not in (3, 4):
        raise ScheduleError(f"{where}: expected 3 nodes (expand, depthwise, project) or 4 (and the residual Add)")
    geos = []
    for role, name in zip(("expand", "depthwise", "project"), block.nodes[:3]):
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
    add = _add_geom(g, nodes.get(block.nodes[3]), block.nodes[3], e, p, readers, where) if block.add else None
    return BlockGeom(e, d, p, add)


def _add_geom(g: Graph, node, name: str, e: ConvGeom, p: ConvGeom, readers, where: str) -> AddGeom:
    """The residual Add closing a block: Add(project out, block input) in either order, no broadcasting."""
    if node is None:
        raise ScheduleError(f"{where}: no node '{name}' in the graph")
    if node.op != "Add" or len(node.inputs) != 2 or sorted(node.inputs) != sorted([p.y, e.x]) or p.y == e.x:
        raise ScheduleError(f"{where}: node '{name}' ({node.op}) is not the residual Add of '{p.y}' (output of "
                            f"'{p.node}') and the block input '{e.x}'")
    rd = readers.get(p.y, [])
    if p.y in g.outputs or len(rd) != 1 or rd[0].name != name:
        raise ScheduleError(f"{where}: '{p.y}' (output of '{p.node}') must be read by '{name}' only")
    y = node.outputs[0]
    if not (tuple(g.tensors[e.x].shape) == tuple(g.tensors[p.y].shape) == tuple(g.tensors[y].shape)):
        raise ScheduleError(f"{where}: node '{name}': the block input, the project output and the sum must have "
                            "the same shape")
    return AddGeom(name, e.x, p.y, y, node.inputs[0] == p.y)


def add_in_place(graph: Graph, geo: BlockGeom, band_rows: int) -> bool:
    """Whether the block's sum may overwrite its input in any order: only the block reads the input, which is
    not a graph output, and add_in_place_ok (the memory rewrite decides on its table, with the same rows rule)."""
    if geo.add is None:
        return False
    g = shaped(graph)
    rd = {n.name for n in consumers_of(g).get(geo.expand.x, [])}
    return geo.expand.x not in g.outputs and rd <= {geo.expand.node, geo.add.node} and geo.add_in_place_ok(band_rows)


def residual_add(graph: Graph, geo: BlockGeom) -> str | None:
    """The Add node that closes the block `geo` (reads the project output, alone, and the block input), if any."""
    g = shaped(graph)
    rd = consumers_of(g).get(geo.project.y, [])
    if len(rd) == 1 and rd[0].op == "Add" and geo.expand.x in rd[0].inputs:
        return rd[0].name
    return None


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


def _rewrite_add(g: Graph, geo: BlockGeom, band_rows: int, buffers: list[Buffer], step: dict[str, int],
                 alignment: int) -> tuple[list[Buffer], bool]:
    """The residual Add run band by band at the block's step: the project output becomes "band:<p>"; the sum
    goes over the block input's buffer when add_in_place_ok and nothing reads that buffer after the block, else
    into its own buffer from the block's step on. Returns the new table and whether the sum is in place."""
    a, s = geo.add, step[geo.expand.node]
    ix, ip, iy = buffer_index(buffers, a.x), buffer_index(buffers, a.p), buffer_index(buffers, a.y)
    by, bp, bx = buffers[iy], buffers[ip], buffers[ix]
    k = by.tensors.index(a.y)
    ypre, ypost = by.tensors[:k], by.tensors[k:]   # tensors merged after the sum (in place over it) follow it
    if bp.tensors != ((a.p,) + (ypost if ip == iy else ())):
        raise ScheduleError(f"schedule.fused: '{a.p}' shares its buffer with {bp.tensors!r}")
    per_elem = bp.nbytes / max(g.tensors[a.p].size, 1)
    xt = ypre if ix == iy else bx.tensors
    readers = consumers_of(g)
    late = [step[r.name] for t in xt for r in readers.get(t, []) if r.name not in geo.nodes and step[r.name] > s]
    out = any(t in g.outputs for t in xt)
    ny = int(-(-g.tensors[a.y].size * per_elem // 1))
    in_place = not late and not out and ny <= bx.nbytes and geo.add_in_place_ok(band_rows)
    _, w, c = geo.project.out_hwc
    npb = int(-(-min(band_rows, geo.out_h) * w * c * per_elem // 1))
    band = Buffer(band_name(a.p), align(npb, alignment), s, s, (band_name(a.p),), npb)
    if in_place:
        xbuf, ybuf = [replace(bx, last_use=max(by.last_use, s), tensors=xt + ypost)], []
    else:
        xbuf = [replace(bx, last_use=bx.last_use if out else max([s] + late), tensors=xt)]
        ybuf = [Buffer(ypost[0], align(ny, alignment), s, by.last_use, ypost, ny)]
    new = []
    for i, b in enumerate(buffers):
        if i == ix:
            new += xbuf + (ybuf if iy == ix else [])
        if i == iy and iy != ix:
            new += ybuf
        if i == ip:
            new.append(band)
        if i not in (ix, ip, iy):
            new.append(b)
    return new, in_place


def _table(g, geos, rows, buffers, step, alignment, in_place: list | None = None) -> list[Buffer]:
    out = list(buffers)
    for geo, r in zip(geos, rows):
        _rewrite_one(g, geo, r, out, step[geo.expand.node], alignment)
        if geo.add is not None:
            out, placed = _rewrite_add(g, geo, r, out, step, alignment)
            if in_place is not None:
                in_place.append(placed)
    return out


def fused_rewrite(graph: Graph, blocks: tuple[FusedBlock, ...], buffers, order: list[str],
                  alignment: int) -> Rewrite:
    """The buffer table with `blocks` fused (see the module doc). ScheduleError names the block and node when a
    block cannot be fused, or its nodes are not in `order`."""
    g = shaped(graph)
    step = {name: i for i, name in enumerate(order)}
    geos = [block_geom(g, b) for b in blocks]
    for geo in geos:
        at = [step.get(n) for n in geo.nodes]
        if None in at or at != sorted(at):
            raise ScheduleError(f"schedule.fused: nodes {', '.join(repr(n) for n in geo.nodes)} are not in this "
                                "order, one after the other")
    in_place: list[bool] = []
    new = _table(g, geos, [b.band_rows for b in blocks], buffers, step, alignment, in_place)
    n_steps = len(order)
    live = live_bytes(new, n_steps)
    detail = {}
    for geo, blk in zip(geos, blocks):
        s = step[geo.expand.node]
        last = geo.add.node if geo.add else geo.project.node
        detail[s] = [{"label": f"{last} rows {bd.r0}..{bd.r1 - 1}", "live_bytes": live[s]}
                     for bd in geo.bands(blk.band_rows)]
    before = max(live_bytes(list(buffers), n_steps), default=0)
    note = (f"{len(blocks)} fused block{'s' if len(blocks) != 1 else ''} (bands of "
            f"{', '.join(str(b.band_rows) for b in blocks)} rows"
            + (f"; {len(in_place)} with the residual Add, {sum(in_place)} of them in place over the block input"
               if in_place else "")
            + f"): peak {before:,} -> {max(live, default=0):,} B, +0 MACs (rolling halo rows)")
    return Rewrite(tuple(new), 0, detail, note)


def all_blocks(graph: Graph) -> list[BlockGeom]:
    """Every chain expand Conv -> depthwise Conv -> 1x1 Conv that block_geom accepts (they may share nodes),
    with the residual Add that closes it where there is one."""
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
            geo = block_geom(g, FusedBlock((n.name, rd[0].name, rb[0].name), 1))
        except ScheduleError:
            continue
        add = residual_add(g, geo)
        if add is not None:
            try:
                geo = block_geom(g, FusedBlock(geo.nodes + (add,), 1))
            except ScheduleError:
                pass
        out.append(geo)
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
    cands = [b for b in all_blocks(g) if [step[n] for n in b.nodes] == sorted(step[n] for n in b.nodes)]
    chosen: list[BlockGeom] = []
    key = _key(buffers, n_steps)
    while True:
        used = {x for c in chosen for x in c.nodes}
        best = None
        for c in cands:
            if used & set(c.nodes):
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
    return [FusedBlock(c.nodes, r) for c, r in zip(chosen, rows)]
