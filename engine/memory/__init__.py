"""Memory planner: execution order, activation buffers, their lifetimes and their offsets in one arena.

    plan = plan_memory(graph)                          # sizes as stored (int8 model -> int8 bytes)
    plan = plan_memory(graph, bytes_per_element=1)     # "what would this float model need in int8"
    plan.arena_bytes, plan.planner, plan.arena_by_planner, plan.lower_bound_bytes
    plan.tensor_offset("conv1_out")                    # (offset, bytes) of a tensor's buffer in the arena

The placement is the one the C code generator uses for its static arena, so it is checked for overlaps
before it is returned. Offsets and sizes are multiples of `alignment` (16 bytes, as TFLM aligns its
buffers). Modules: lifetimes (buffers, aliasing, live bytes), order (peak-minimizing execution order),
planners (naive, TFLM's greedy by size, best fit over several orderings, backtracking fit search, exact MILP).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.ir import Graph
from engine.memory.lifetimes import Buffer, buffer_model, buffer_table, live_bytes
from engine.memory.order import best_order
from engine.memory.planners import (BestFit, FitSearch, GreedyBySize, Naive, OverlapError, Sweep, arena_size,
                                    check_no_overlap, conflict_pairs, exact_offsets)
from engine.validate import infer_shapes, topological_order

__all__ = ["Buffer", "MemoryPlan", "OverlapError", "check_no_overlap", "plan_memory"]

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

    def tensor_offset(self, tensor: str) -> tuple[int, int]:
        """(offset, size) of the buffer holding `tensor`; KeyError for constants and unknown names."""
        for b, o in zip(self.buffers, self.offsets):
            if tensor in b.tensors:
                return o, b.size
        raise KeyError(tensor)


def plan_memory(graph: Graph, bytes_per_element: float | None = None, inplace: bool = True,
                optimize_order: bool = True, alignment: int = 16, exact_max_buffers: int = 30,
                exact_time_limit: float = 2.0) -> MemoryPlan:
    """Plan the activation arena of `graph`. With `optimize_order` the execution order is the topological
    order with the lowest peak (the graph's own stable order when nothing is better); the smallest arena
    of all planners is chosen. fit_search runs only when the greedy planners miss the lower bound, the exact
    MILP only when fit_search misses it too and there are at most `exact_max_buffers` buffers."""
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

    notes = {"order": how}
    if not order_exact and how == "optimized":
        notes["order"] = "optimized (search budget reached: beam search, then topological order)"
    pairs = conflict_pairs(buffers)
    wide = pairs > MAX_CONFLICT_PAIRS
    offsets_by = {"naive": Naive().plan(buffers)}
    if wide:
        offsets_by["sweep"] = Sweep().plan(buffers)
        notes["planners"] = (f"{pairs:,} buffer pairs live together > {MAX_CONFLICT_PAIRS:,}: only naive and "
                             "sweep ran")
    else:
        offsets_by["greedy_by_size"] = GreedyBySize().plan(buffers)
        bf = BestFit()
        offsets_by["best_fit"] = bf.plan(buffers)
        notes["best_fit"] = bf.last_choice
    arena_by = {k: arena_size(buffers, v) for k, v in offsets_by.items()}
    proven = False
    if min(arena_by.values()) > lb and not wide:
        upper = min(offsets_by.values(), key=lambda o: arena_size(buffers, o))
        offsets_by["fit_search"] = FitSearch().plan(buffers, upper)
        arena_by["fit_search"] = arena_size(buffers, offsets_by["fit_search"])
    if min(arena_by.values()) > lb and len(buffers) <= exact_max_buffers:
        upper = min(offsets_by.values(), key=lambda o: arena_size(buffers, o))
        r = exact_offsets(buffers, upper, exact_time_limit)
        if r.proven:
            offsets_by["exact"], arena_by["exact"], proven = r.offsets, r.arena, True
            notes["exact"] = "proven optimal"
        else:  # what the solver had at the time limit depends on the machine: the C arena must not
            notes["exact"] = f"not proven within {exact_time_limit} s (had {r.arena:,} bytes); not used"
    elif min(arena_by.values()) > lb:
        notes["exact"] = f"skipped: {len(buffers)} buffers > {exact_max_buffers}"
    else:
        notes["exact"] = "not needed: a heuristic reached the lower bound"
    chosen = min(_PREFERENCE, key=lambda k: (arena_by.get(k, float("inf")), _PREFERENCE.index(k)))
    offsets = offsets_by[chosen]
    check_no_overlap(buffers, offsets)
    peak_step = live.index(lb) if live and lb in live else -1
    return MemoryPlan(tuple(order), tuple(buffers), tuple(offsets), arena_by[chosen], chosen, arena_by, lb,
                      tuple(live), peak_step, table.inplace_nodes, arena_by[chosen] == lb or proven,
                      order_exact, bytes_per_element, inplace, alignment, notes)
