"""Memory planner: execution order, activation buffers, their lifetimes and their offsets in one arena.

    plan = plan_memory(graph)                          # sizes as stored (int8 model -> int8 bytes)
    plan = plan_memory(graph, bytes_per_element=1)     # "what would this float model need in int8"
    plan.arena_bytes, plan.planner, plan.arena_by_planner, plan.lower_bound_bytes
    plan.tensor_offset("conv1_out")                    # (offset, bytes) of a tensor's buffer in the arena
    plan = plan_memory(graph, schedule=Schedule("patch", patch=PatchStage(("conv1", "dw1"), (3, 3))))
    plan.schedule, plan.macs_extra, plan.schedule_detail, plan.layer_lower_bound_bytes

The placement is the one the C code generator uses for its static arena, so it is checked for overlaps
before it is returned. Offsets and sizes are multiples of `alignment` (16 bytes, as TFLM aligns its
buffers). Modules: lifetimes (buffers, aliasing, live bytes), order (peak-minimizing execution order),
planners (naive, TFLM's greedy by size, best fit over several orderings, backtracking fit search), exact
(MILP), sweep (very wide tables), schedule (how the layers run: patch stage, in-place depthwise, fused
bands; engine.memory.rewrite applies a schedule's rewrites to the buffer table before the planners place it;
a patch stage whose output shares its input's buffer is placed pinned, engine.memory.patch_overlap). `PLANNERS` is the registry plan_memory loops over: each planner says
whether it applies to the table and returns a placement record (planners.Placement), as TFLM's
MicroMemoryPlanner lets clients swap strategies; adding a strategy is adding an entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from engine.ir import Graph
from engine.memory.lifetimes import Buffer, buffer_model, buffer_table, live_bytes
from engine.memory.order import best_order
from engine.memory.exact import Exact
from engine.memory.planners import (BestFit, FitSearch, GreedyBySize, Naive, OverlapError, Placement, Planner,
                                    PlanJob, check_no_overlap, conflict_pairs)
from engine.memory.schedule import LAYER, Schedule, ScheduleError
from engine.memory.sweep import Sweep
from engine.validate import infer_shapes, topological_order

__all__ = ["Buffer", "MemoryPlan", "OverlapError", "PLANNERS", "Placement", "PlanJob", "Schedule", "ScheduleError",
           "check_no_overlap", "plan_memory"]

# In the order plan_memory runs them: the refining planners (fit_search, exact) start from the best so far.
PLANNERS: dict[str, Callable[[], Planner]] = {
    "naive": Naive, "greedy_by_size": GreedyBySize, "best_fit": BestFit, "sweep": Sweep, "fit_search": FitSearch,
    "exact": Exact,
}

# Planner preference when arenas tie: TFLM's own choice first, so our figure is TFLM's whenever it is as good.
_PREFERENCE = ("greedy_by_size", "best_fit", "fit_search", "exact", "sweep", "naive")
# Buffer pairs alive together above which only the O(n log n) planners run: greedy_by_size, best_fit and
# fit_search list every such pair and scan it per placement (a 4,000-branch Concat has 8 million pairs).
# Every model in the zoo and the MLPerf files stays far below (MobileNetV2: a few thousand).
MAX_CONFLICT_PAIRS = 200_000


@dataclass(frozen=True)
class MemoryPlan:
    order: tuple[str, ...]                 # node names in execution order
    buffers: tuple[Buffer, ...]            # each with the tensors it holds (aliases and in-place outputs)
    offsets: tuple[int, ...]               # aligned with buffers
    arena_bytes: int                       # of the chosen planner
    planner: str
    arena_by_planner: dict[str, int]       # every planner that ran
    lower_bound_bytes: int                 # max of live_bytes: no placement for this order needs less
    live_bytes: tuple[int, ...]            # aligned with order
    peak_step: int                         # index into order of the first step at the lower bound (-1: no nodes)
    inplace_nodes: tuple[str, ...]         # nodes whose output overwrites a dying input
    optimal: bool                          # arena == lower bound, or the exact search proved it minimal
    order_exact: bool                      # the order search proved no topological order has a lower peak
    bytes_per_element: float | None
    inplace: bool
    alignment: int
    notes: dict[str, str] = field(default_factory=dict)
    # How the layers run (engine.memory.schedule); the layer schedule leaves every figure above as it was.
    schedule: Schedule = LAYER
    macs_extra: int = 0                    # MACs the schedule recomputes (patch halos, band overlaps)
    # step -> [{"label": "patch (0,1)", "live_bytes": n}, ...]: live memory inside a patch stage or band loop
    schedule_detail: dict = field(default_factory=dict)
    layer_lower_bound_bytes: int = 0       # the layer-by-layer lower bound (the "before" of a schedule)

    def tensor_offset(self, tensor: str) -> tuple[int, int]:
        """(offset, size) of the buffer holding `tensor`; KeyError for constants and unknown names."""
        for b, o in zip(self.buffers, self.offsets):
            if tensor in b.tensors:
                return o, b.size
        raise KeyError(tensor)


def plan_memory(graph: Graph, bytes_per_element: float | None = None, inplace: bool = True,
                optimize_order: bool = True, alignment: int = 16, exact_max_buffers: int = 30,
                exact_time_limit: float = 2.0, schedule: Schedule | None = None) -> MemoryPlan:
    """Plan the activation arena of `graph`. With `optimize_order` the execution order is the topological
    order with the lowest peak (the graph's own stable order when nothing is better); the smallest arena
    of all planners is chosen. fit_search runs only when the greedy planners miss the lower bound, the exact
    MILP only when fit_search misses it too and there are at most `exact_max_buffers` buffers.
    `schedule` (None: layer by layer): the buffer table after the schedule's rewrites (patch stage, then
    in-place depthwise, then fused bands; engine.memory.rewrite) is what the planners place."""
    g = graph
    if any(t not in g.tensors for n in g.nodes for t in n.outputs):
        g = infer_shapes(graph)
    model = buffer_model(g, bytes_per_element, inplace, alignment)
    n_steps = len(g.nodes)
    candidates = [("topological", [n.name for n in topological_order(g)], False)]
    if optimize_order and n_steps:
        r = best_order(model)
        optimized = [model.nodes[i].name for i in r.order]
        if optimized == candidates[0][1]:  # a chain, or nothing better: one lifetime table is enough
            candidates[0] = ("topological", optimized, r.exact)
        else:
            candidates.append(("optimized", optimized, r.exact))
    best = None
    for how, order, exact in candidates:
        table = buffer_table(model, order)
        live = live_bytes(table.buffers, n_steps)
        peak = max(live, default=sum(b.size for b in table.buffers))
        if best is None or peak < best[0]:
            best = (peak, how, order, table, live, exact)
        elif peak == best[0]:
            best = best[:5] + (best[5] or exact,)  # same peak: keep the stable order, and the proof
    lb, how, order, table, live, order_exact = best
    buffers = list(table.buffers)
    layer_lb, inplace_nodes = lb, table.inplace_nodes

    notes = {"order": how}
    if not order_exact and how == "optimized":
        notes["order"] = "optimized (search budget reached: beam search, then topological order)"
    sched, macs_extra, detail = schedule if schedule is not None else LAYER, 0, {}
    if schedule is not None and not schedule.is_layer:
        from engine.memory.rewrite import apply_schedule

        if bytes_per_element is not None:
            raise ScheduleError("a schedule plans the graph's own tensors: give no bytes_per_element with it")
        r = apply_schedule(g, model, schedule, order, alignment)
        sched, order, buffers, macs_extra, detail = schedule, r.order, list(r.buffers), r.extra_macs, r.detail
        inplace_nodes = r.inplace_nodes
        live = live_bytes(buffers, n_steps)
        lb = max(live, default=sum(b.size for b in buffers))
        notes.update(r.notes)
    placed = _place_pinned(buffers, lb, notes) if _pinned(buffers) else _place_all(
        buffers, lb, notes, exact_max_buffers, exact_time_limit)
    arena_by = {k: r.arena for k, r in placed.items()}
    ranking = [*_PREFERENCE, *(k for k in placed if k not in _PREFERENCE)]  # planners added to PLANNERS rank last
    chosen = min(ranking, key=lambda k: (arena_by.get(k, float("inf")), ranking.index(k)))
    offsets = list(placed[chosen].offsets)
    check_no_overlap(buffers, offsets)
    peak_step = live.index(lb) if live and lb in live else -1
    return MemoryPlan(tuple(order), tuple(buffers), tuple(offsets), arena_by[chosen], chosen, arena_by, lb,
                      tuple(live), peak_step, tuple(inplace_nodes), any(r.proven for r in placed.values()),
                      order_exact, bytes_per_element, inplace, alignment, notes, sched, macs_extra, detail, layer_lb)


def _pinned(buffers) -> bool:
    """A patch stage's output written over its input (engine.memory.patch_overlap): an L-shaped region."""
    from engine.memory.patch_overlap import OVER

    return any(b.name.startswith(OVER) for b in buffers)


def _place_pinned(buffers, lb: int, notes: dict) -> dict[str, Placement]:
    """The merged head at the bottom of the arena, its tail right after it, the rest greedy by size around them:
    the rectangle planners could put the tail anywhere and the stage input would no longer be whole."""
    from engine.memory.patch_overlap import place_pinned

    offsets, arena = place_pinned(buffers)
    notes["planners"] = ("the patch stage's output shares its input's buffer (an L-shaped region): placed pinned, "
                         "the rest greedy by size around it")
    return {"pinned": Placement("pinned", tuple(offsets), arena, arena <= lb)}


def _place_all(buffers, lb: int, notes: dict, exact_max_buffers: int, exact_time_limit: float
               ) -> dict[str, Placement]:
    """Every planner of PLANNERS that applies, in order, the refining ones from the best placement so far."""
    pairs = conflict_pairs(buffers)
    job = PlanJob(buffers, lb, pairs > MAX_CONFLICT_PAIRS, exact_max_buffers, exact_time_limit)
    if job.wide:
        notes["planners"] = (f"{pairs:,} buffer pairs live together > {MAX_CONFLICT_PAIRS:,}: only naive and "
                             "sweep ran")
    placed: dict[str, Placement] = {}
    incumbent = None  # the smallest placement so far (the first of equals): where refining planners start
    for make in PLANNERS.values():
        rec = make().place(job, incumbent)
        if rec.note:
            notes[rec.planner] = rec.note
        if rec.offsets is not None:
            placed[rec.planner] = rec
            if incumbent is None or rec.arena < incumbent.arena:
                incumbent = rec
    return placed
