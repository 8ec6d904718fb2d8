"""Patch-based execution of the memory-heavy first stage (MCUNetV2): memory rewrite, order and search.

    check_patch(graph, stage)                           # ScheduleError naming the node/field when it cannot run
    order = patch_order(graph, stage, order)            # the stage's nodes contiguous, where the first one was
    rw = patch_rewrite(graph, stage, table.buffers, order, 16)   # Rewrite: the buffer table of the patch schedule
    cands = patch_candidates(graph, 0.10)               # Schedules (kind "patch"), lowest peak first
    plan = plan_patch(graph, stage)                     # a placed plan for tests and the C generator (see below)

Memory model of a stage (its nodes run for every patch, in execution order, steps s0..s1 of the order):
- every tensor produced inside the stage but the split output exists only as a per-patch tile "tile:<tensor>"
  (size: the largest patch's), live from the step producing it to the last stage step reading it. Every patch
  repeats steps s0..s1 with the same buffers, so the layer model's step lifetimes hold inside the stage too;
- the split output is whole and alive from s0 (the first patch writes its part at s1, the next patches run s0
  again while it must stay); when the patches span the full width, the split node writes its rows straight
  into it, otherwise into "tile:<split output>" (live at s1 only), copied into place with the row stride;
- the entry tensor is whole and alive until s1. The first layer reads its input region straight from it in the
  arena: the kernels take no row stride, but a tile is read as the whole tensor with the pad that puts the
  patch's first output row/col at the right place (pad_top = P - row0 * stride, negative inside the image), so
  the taps outside the image are still exactly the skipped ones. This needs no "patchin:<tensor>" copy, which
  only adds bytes: measured on VWW's best schedule (8x8 patches up to DEPTHWISE_CONV_2D_3), a 560-byte copy of
  the input tile live at the first step raises the lower bound from 38,048 to 38,608 B (greedy arena 39,008 B).
- `input_outside_arena`: the entry is the graph input, read from the caller's buffer (the C API copies the
  input into the arena today: a generator honouring this option must pass the caller's pointer instead). Its
  bytes then leave the arena but not the device's RAM: reports must add them (see `extra["input_bytes"]`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.ir import Graph
from engine.memory.lifetimes import Buffer, align, buffer_model, buffer_table, live_bytes, lower_bound
from engine.memory.patch_overlap import OVER, merge_output_into_input, output_over_input, place_pinned
from engine.memory.planners import GreedyBySize, PlanJob, check_no_overlap
from engine.memory.receptive import STAGE_OPS, WINDOW_OPS, PatchGeometry, StageShape, stage_shape
from engine.memory.schedule import PatchStage, Rewrite, Schedule, ScheduleError
from engine.validate import infer_shapes, node_context, topological_order

MAX_GRID = 8   # patches per side the search tries (MCUNetV2 uses 2..8)


def _shaped(graph: Graph) -> Graph:
    return graph if all(o in graph.tensors for n in graph.nodes for o in n.outputs) else infer_shapes(graph)


def check_patch(graph: Graph, stage: PatchStage) -> None:
    """ScheduleError (one line, naming the node or field) when `stage` cannot run patch by patch."""
    g = _shaped(graph)
    shape = stage_shape(g, stage.nodes)
    for axis in (0, 1):
        n, size = stage.grid[axis], shape.hw[shape.split_out][axis]
        if not 1 <= n <= size:
            raise ScheduleError(f"schedule.patch.grid: {n} patches along {'HW'[axis]}, the split output "
                                f"'{shape.split_out}' has {size}")
    PatchGeometry(shape, stage.grid)


def patch_order(graph: Graph, stage: PatchStage, order: list[str]) -> list[str]:
    """`order` with the stage's nodes moved together to the place of the first one. Valid because nothing
    outside the stage reads its tensors but the split output (check_patch), which stays last."""
    inside = set(stage.nodes)
    first = min(i for i, n in enumerate(order) if n in inside)
    rest = [n for n in order if n not in inside]
    return rest[:first] + list(stage.nodes) + rest[first:]


@dataclass
class _Stage:
    shape: StageShape
    geo: PatchGeometry
    steps: dict           # node -> step
    s0: int
    s1: int


def _locate(graph: Graph, stage: PatchStage, order, shape=None) -> _Stage:
    shape = shape or stage_shape(graph, stage.nodes)
    step = {n: i for i, n in enumerate(order)}
    s = [step[n] for n in stage.nodes]
    if s != list(range(s[0], s[0] + len(s))):
        raise ScheduleError("schedule.patch: the stage's nodes are not contiguous in the execution order "
                            "(use patch_order)")
    return _Stage(shape, PatchGeometry(shape, stage.grid), step, s[0], s[-1])


def writes_split_directly(geo: PatchGeometry) -> bool:
    """The split node writes its patch rows straight into the whole output when patches span its full width."""
    return geo.grid[1] == 1


def _rewrite(graph, st: _Stage, buffers, alignment, bpe: float, input_outside_arena: bool,
             overlap: bool | None = False):
    """The rewritten table; `overlap` None: the split output over the consumed input when proved safe and it
    lowers the peak inside the stage without raising the whole table's (the peak elsewhere may be another
    kind's to lower: fused blocks after the stage), True: required (ScheduleError when unproven), False:
    separate buffers."""
    out = _rewrite_separate(graph, st, buffers, alignment, bpe, input_outside_arena)
    if overlap is False:
        return out
    merged = None
    if bpe == 1 and (overlap or _may_lower(out, st)):
        merged = merge_output_into_input(out, st.shape, st.geo, st.s1, graph.inputs, alignment)
    if merged is None:
        if overlap:
            raise ScheduleError(f"schedule.patch: the output of '{st.shape.nodes[-1].name}' cannot be proved safe "
                                f"over the stage input '{st.shape.entry}' for {st.geo.grid[0]}x{st.geo.grid[1]} "
                                "patches")
        return out
    if overlap or (_stage_peak(merged, st) < _stage_peak(out, st) and lower_bound(merged) <= lower_bound(out)):
        return merged
    return out


def _stage_peak(table, st: _Stage) -> int:
    return max(live_bytes(table, st.s1 + 1)[st.s0:st.s1 + 1])


def _may_lower(table, st: _Stage) -> bool:
    """Could the merge lower the stage's peak at all? The best case (shift 0: the output's bytes saved while both
    live) is a cheap bound; the proof over every shift runs only when it passes."""
    x, y = st.shape.entry, st.shape.split_out
    by = next((b for b in table if y in b.tensors), None)
    if by is None:
        return False
    best = [Buffer(b.name, max(0, b.size - by.size) if x in b.tensors else b.size,
                   b.first_use, b.last_use, b.tensors, b.nbytes) for b in table]
    return _stage_peak(best, st) < _stage_peak(table, st)


def _rewrite_separate(graph, st: _Stage, buffers, alignment, bpe: float, input_outside_arena: bool):
    shape, geo = st.shape, st.geo
    internal = set(shape.internal)
    x, y = shape.entry, shape.split_out
    out = []
    for b in buffers:
        keep = tuple(t for t in b.tensors if t not in internal)
        if not keep:
            continue
        first, last = b.first_use, b.last_use
        if y in keep:
            first = min(first, st.s0)
        if x in keep:
            if input_outside_arena and x in graph.inputs and last <= st.s1:
                continue
            last = max(last, st.s1)
        name = b.name if b.name in keep else keep[0]
        out.append(Buffer(name, b.size, first, last, keep, b.nbytes))
    consumers: dict[str, list[int]] = {}
    for g in shape.nodes:
        for t in g.inputs:
            consumers.setdefault(t, []).append(st.steps[g.name])
    for g in shape.nodes[:-1]:
        t = g.output
        nbytes = int(-(-geo.tile_elems(t) * bpe // 1))
        out.append(Buffer(f"tile:{t}", align(nbytes, alignment), st.steps[g.name], max(consumers[t]),
                          (f"tile:{t}",), nbytes))
    if not writes_split_directly(geo):
        nbytes = int(-(-geo.tile_elems(y) * bpe // 1))
        out.append(Buffer(f"tile:{y}", align(nbytes, alignment), st.s1, st.s1, (f"tile:{y}",), nbytes))
    return out


def _bpe(graph: Graph, buffers, shape: StageShape) -> float:
    """Bytes per element of the stage tensors, as the table was built (int8 models: 1)."""
    for b in buffers:
        if shape.entry in b.tensors:
            return b.nbytes / max(graph.tensors[shape.entry].size, 1)
    return graph.tensors[shape.entry].nbytes / max(graph.tensors[shape.entry].size, 1)


def _detail(st: _Stage, table, bpe: float, alignment: int) -> dict:
    """step -> per-patch live bytes: the whole buffers live at the step plus that patch's own tiles."""
    geo, shape = st.geo, st.shape
    tiles = {b.name: b for b in table if b.name.startswith("tile:")}
    detail = {}
    for s in range(st.s0, st.s1 + 1):
        whole = sum(b.size for b in table if b.first_use <= s <= b.last_use and not b.name.startswith("tile:"))
        rows = []
        for i, j in geo.patches:
            live = whole
            for name, b in tiles.items():
                if b.first_use <= s <= b.last_use:
                    live += align(int(-(-geo.tile_elems_at(name[5:], i, j) * bpe // 1)), alignment)
            rows.append({"label": f"patch ({i},{j})", "live_bytes": live})
        detail[s] = rows
    return detail


def patch_rewrite(graph: Graph, stage: PatchStage, buffers: tuple[Buffer, ...], order: list[str], alignment: int,
                  *, input_outside_arena: bool = False, overlap: bool | None = False) -> Rewrite:
    """The buffer table of `buffers` (layer by layer, steps = positions in `order`) with `stage` run patch by
    patch. The stage's nodes must be contiguous in `order` (patch_order). `overlap` (engine.memory.patch_overlap):
    None puts the split output over the consumed stage input when proved safe and the peak drops, True requires
    it, False (the default) never. A merged table has a head buffer "over:<e>:<entry>" and a tail
    "overtail:<entry>" that must sit right after it: place it with patch_overlap.place_pinned (the rectangle
    planners cannot keep the entry whole; patch_overlap.tensor_at refuses such a plan)."""
    g = _shaped(graph)
    check_patch(g, stage)
    st = _locate(g, stage, list(order))
    bpe = _bpe(g, buffers, st.shape)
    table = _rewrite(g, st, buffers, alignment, bpe, input_outside_arena, overlap)
    merged = any(st.shape.split_out in b.tensors and st.shape.entry in b.tensors for b in table)
    extra = st.geo.extra_macs
    total = _total_macs(g)
    pct = 100.0 * extra / total if total else 0.0
    note = (f"{stage.grid[0]}x{stage.grid[1]} patches up to {stage.split}: +{pct:.1f} % MACs"
            + (" (input read from the caller's buffer)" if input_outside_arena else "")
            + (" (output written over the consumed input)" if merged else ""))
    return Rewrite(tuple(table), extra, _detail(st, table, bpe, alignment), note)


def _total_macs(g: Graph) -> int:
    """The model's MACs as the profiler and the C header count them (each op's cost)."""
    total = 0
    for n in g.nodes:
        ctx = node_context(g, n)
        total += int(ctx.op.cost(ctx).macs)
    return total


# ---- search -----------------------------------------------------------------------------------------------

def split_points(g: Graph, order: list[str], max_lead: int = 3) -> list[tuple[str, ...]]:
    """Every run of `order` that is a valid stage (one entry tensor, only its last output leaves it), starting at
    the first node or right after one of the first `max_lead` nodes that cannot be in a stage (a QuantizeLinear
    of a float input, a Pad the stage does not take ...)."""
    ops = {n.name: n.op for n in g.nodes}
    starts = [i for i in range(min(len(order), max_lead + 1))
              if ops[order[i]] in WINDOW_OPS and (i == 0 or ops[order[i - 1]] not in STAGE_OPS)]
    out = []
    for start in starts:
        prefix: list[str] = []
        for name in order[start:]:
            prefix.append(name)
            try:
                stage_shape(g, prefix)
            except ScheduleError as e:
                if "cannot run patch by patch" in str(e) or "4-D" in str(e) or "layout" in str(e):
                    break   # every longer run holds this node too
                continue
            out.append(tuple(prefix))
    return out


def _outside_bytes(g: Graph, prefix, base, input_outside_arena: bool) -> int:
    """Bytes of the graph input the stage reads in the caller's buffer (0 when it stays in the arena)."""
    if not input_outside_arena:
        return 0
    x = stage_shape(g, prefix).entry
    return next((b.nbytes for b in base if x in b.tensors), 0) if x in g.inputs else 0


@dataclass
class PatchPlan:
    """A placed plan of a patch schedule, with what generate() reads of a MemoryPlan (order, buffers, offsets,
    arena_bytes, planner, tensor_offset). The glue until engine.memory.plan_memory(schedule=...) exists."""

    order: tuple[str, ...]
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    arena_bytes: int
    lower_bound_bytes: int
    planner: str = "greedy_by_size"
    schedule: Schedule | None = None
    macs_extra: int = 0
    schedule_detail: dict = field(default_factory=dict)
    alignment: int = 16

    def tensor_offset(self, tensor: str) -> tuple[int, int]:
        for b, o in zip(self.buffers, self.offsets):
            if tensor in b.tensors:
                return o, b.size
        raise KeyError(tensor)


def _place(buffers) -> tuple[tuple[int, ...], int]:
    buffers = list(buffers)
    if any(b.name.startswith(OVER) for b in buffers):   # an L-shaped merged region: pinned placement
        offsets, arena = place_pinned(buffers)
        check_no_overlap(buffers, list(offsets))
        return offsets, arena
    rec = GreedyBySize().place(PlanJob(buffers, lower_bound(buffers)), None)
    check_no_overlap(buffers, list(rec.offsets))
    return tuple(rec.offsets), rec.arena


def plan_patch(graph: Graph, stage: PatchStage | None, order: list[str] | None = None, alignment: int = 16,
               input_outside_arena: bool = False, bytes_per_element: float | None = None,
               overlap: bool | None = None) -> PatchPlan:
    """Plan `graph` with `stage` run patch by patch (None: layer by layer), placed by TFLM's greedy-by-size
    planner. sched's plan_memory(schedule=...) replaces this at merge; it exists so that the rewrite, the
    reference and the C generator can be tested end to end now. `overlap` None: the merged layout when it is
    proved, lowers the stage's peak and places in a smaller arena than separate buffers (patch_candidates' rule);
    the returned schedule's stage says which."""
    g = _shaped(graph)
    order = list(order or [n.name for n in topological_order(g)])
    model = buffer_model(g, bytes_per_element, True, alignment)
    if stage is None:
        table = buffer_table(model, order).buffers
        offsets, arena = _place(table)
        return PatchPlan(tuple(order), tuple(table), offsets, arena, lower_bound(table), alignment=alignment)
    order = patch_order(g, stage, order)
    table = buffer_table(model, order).buffers
    rw = patch_rewrite(g, stage, table, order, alignment, input_outside_arena=input_outside_arena, overlap=overlap)
    offsets, arena = _place(rw.buffers)
    merged = any(b.name.startswith(OVER) for b in rw.buffers)
    if merged and overlap is None:
        sep = patch_rewrite(g, stage, table, order, alignment, input_outside_arena=input_outside_arena,
                            overlap=False)
        sep_offsets, sep_arena = _place(sep.buffers)
        if sep_arena <= arena:
            rw, offsets, arena, merged = sep, sep_offsets, sep_arena, False
    stage = PatchStage(stage.nodes, stage.grid, merged)
    return PatchPlan(tuple(order), rw.buffers, offsets, arena, lower_bound(rw.buffers),
                     "pinned" if merged else "greedy_by_size", Schedule("patch", patch=stage, why=rw.note),
                     rw.extra_macs, rw.detail, alignment)


def patch_candidates(graph: Graph, max_mac_overhead: float, *, keep: int = 5, input_outside_arena: bool = False,
                     order: list[str] | None = None, alignment: int = 16,
                     bytes_per_element: float | None = None, overlap: bool | None = None,
                     by_stage: int = 0) -> list[Schedule]:
    """Patch schedules over every split point and grid (1..8 per side), lowest arena first, each within
    `max_mac_overhead` (extra MACs / the model's MACs) and below the layer-by-layer lower bound; `overlap` as in
    patch_rewrite (None: the split output over the consumed input where proved and lower; plan_patch's default). The lower bound
    of each rewritten table ranks them; the best `keep` are placed (greedy by size) and sorted by (arena, MACs).
    Empty when no split fits. `by_stage`: then the best that many by the peak inside the stage (not already
    listed): a split whose whole peak lies after it (MobileNetV2's 56x56 blocks) may be the best once other
    kinds lower that peak (engine.memory.auto combines them)."""
    g = _shaped(graph)
    order = list(order or [n.name for n in topological_order(g)])
    model = buffer_model(g, bytes_per_element, True, alignment)
    base = buffer_table(model, order).buffers
    layer_lb = lower_bound(base)
    total = _total_macs(g)
    scored = []
    for prefix in split_points(g, order):
        shape = stage_shape(g, prefix)
        step = {n: i for i, n in enumerate(order)}
        bpe = _bpe(g, base, shape)
        for r in range(1, MAX_GRID + 1):
            for c in range(1, MAX_GRID + 1):
                if (r, c) == (1, 1) or r > shape.hw[shape.split_out][0] or c > shape.hw[shape.split_out][1]:
                    continue
                try:
                    geo = PatchGeometry(shape, (r, c))
                except ScheduleError:
                    continue
                extra = geo.extra_macs
                if total and extra / total > max_mac_overhead:
                    continue
                st = _Stage(shape, geo, step, step[prefix[0]], step[prefix[-1]])
                tables = [_rewrite(g, st, base, alignment, bpe, input_outside_arena, overlap)]
                if output_over_input(tables[0], shape) and overlap is None:
                    tables.append(_rewrite(g, st, base, alignment, bpe, input_outside_arena, False))
                for table in tables:
                    live = live_bytes(table, len(order))
                    if max(live) >= layer_lb:
                        continue   # no better than layer by layer
                    stage_peak = max(live[st.s0:st.s1 + 1])
                    merged = output_over_input(table, shape)
                    scored.append((max(live), extra, prefix, (r, c), table, (stage_peak, merged)))
    # The best `keep` of each layout by lower bound: a merged head pinned at its place may leave more holes than
    # separate rectangles (VWW at 80x80: 32,000 against 26,784 B), so the placed arena decides between them.
    scored.sort(key=lambda s: (s[0], s[1], len(s[2])))
    chosen = [s for s in scored if s[5][1]][:keep] + [s for s in scored if not s[5][1]][:keep]
    ids = {id(s) for s in chosen}
    extra_by_stage = sorted((s for s in scored if id(s) not in ids), key=lambda s: (s[5][0], s[1], len(s[2])))
    best = []
    for lb, extra, prefix, grid, table, stage_peak in chosen + extra_by_stage[:by_stage]:
        _, arena = _place(table)
        best.append((arena, extra, lb, prefix, grid, stage_peak))
    n = len(chosen)
    best = sorted(best[:n], key=lambda s: (s[0], s[1], s[5][1]))[:keep] + best[n:]   # ties: separate buffers
    out = []
    for arena, extra, lb, prefix, grid, (stage_peak, merged) in best:
        pct = 100.0 * extra / total if total else 0.0
        why = (f"{grid[0]}x{grid[1]} patches up to '{prefix[-1]}' ({len(prefix)} layers): peak {arena:,} B "
               f"against the layer-by-layer bound {layer_lb:,} B, +{pct:.1f} % MACs (limit "
               f"{100 * max_mac_overhead:.0f} %)" + ("; output written over the consumed input" if merged else ""))
        extra_fig = {"peak_bytes": arena, "lower_bound": lb, "layer_lower_bound": layer_lb,
                     "mac_overhead": extra / total if total else 0.0, "extra_macs": extra, "macs": total + extra,
                     "split": prefix[-1], "grid": list(grid),
                     # live bytes inside the stage: what is left once the rest of the graph shrinks
                     "stage_peak": stage_peak, "input_outside_arena": input_outside_arena,
                     "output_over_input": merged,
                     "input_bytes": _outside_bytes(g, prefix, base, input_outside_arena)}
        out.append(Schedule("patch", patch=PatchStage(prefix, grid, bool(merged)), why=why, extra=extra_fig))
    return out
