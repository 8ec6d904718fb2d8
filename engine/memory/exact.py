"""The exact planner: the minimum arena for fixed lifetimes as a mixed-integer program (HiGHS through
scipy.optimize.milp), with a time limit; proves optimality when it finishes.

    r = exact_offsets(buffers, upper=GreedyBySize().plan(buffers), time_limit=2.0)
    r.offsets, r.arena, r.proven
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.memory.lifetimes import lower_bound
from engine.memory.planners import (BestFit, OverlapError, Placement, Planner, arena_size, check_no_overlap,
                                    conflicts)


@dataclass(frozen=True)
class ExactResult:
    offsets: list[int]
    arena: int
    proven: bool   # the MILP finished: no placement of these lifetimes needs fewer bytes
    status: str


def exact_offsets(buffers: Sequence, upper: Sequence[int] | None = None, time_limit: float = 2.0) -> ExactResult:
    """Minimum arena as a MILP (HiGHS through scipy.optimize.milp):

        min M  s.t.  o_i + s_i <= M;  for each pair (i, j) alive together, with binary z_ij:
                     o_i + s_i <= o_j + U z_ij   and   o_j + s_j <= o_i + U (1 - z_ij);  0 <= o_i <= U - s_i
    U is the arena of `upper` (a heuristic placement, default best_fit's); the result is never worse than it.
    Sizes are divided by their gcd first so big-M stays small in the solver's tolerances.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    upper = BestFit().plan(buffers) if upper is None else list(upper)
    u_arena = arena_size(buffers, upper)
    sizes = [b.size for b in buffers]
    n = len(buffers)
    lb = lower_bound(buffers)
    if n == 0 or u_arena <= lb:
        return ExactResult(list(upper), u_arena, True, "heuristic reached the lower bound")
    g = 0
    for s in sizes + [u_arena]:
        g = math.gcd(g, s)
    s_ = [s // g for s in sizes]
    U = u_arena // g
    pairs = [(i, j) for i, others in enumerate(conflicts(buffers)) for j in others.tolist() if i < j]
    nv = n + 1 + len(pairs)
    rows, lo, hi = [], [], []

    def row(coefs: dict[int, float], rhs: float):
        r = np.zeros(nv)
        for k, v in coefs.items():
            r[k] += v
        rows.append(r)
        lo.append(-np.inf)
        hi.append(rhs)

    for i in range(n):
        row({i: 1, n: -1}, -s_[i])
    for p, (i, j) in enumerate(pairs):
        z = n + 1 + p
        row({i: 1, j: -1, z: -U}, -s_[i])
        row({j: 1, i: -1, z: U}, U - s_[j])
    c = np.zeros(nv)
    c[n] = 1
    lower = np.zeros(nv)
    upper_b = np.ones(nv)
    for i in range(n):
        upper_b[i] = U - s_[i]
    lower[n], upper_b[n] = -(-lb // g), U
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi) if rows else None,
               integrality=np.ones(nv), bounds=Bounds(lower, upper_b),
               options={"time_limit": time_limit, "disp": False})
    proven = res.status == 0
    if res.x is None:
        return ExactResult(list(upper), u_arena, False, res.message)
    offsets = [int(round(res.x[i])) * g for i in range(n)]
    arena = arena_size(buffers, offsets)
    try:
        check_no_overlap(buffers, offsets)
    except OverlapError:
        return ExactResult(list(upper), u_arena, False, "solver tolerance produced an overlap; kept the heuristic")
    if arena >= u_arena:
        return ExactResult(list(upper), u_arena, proven, res.message)
    return ExactResult(offsets, arena, proven, res.message)


class Exact(Planner):
    """The MILP above, for small tables (the pair variables grow quadratically)."""

    name = "exact"

    def __init__(self, time_limit: float = 2.0):
        self.time_limit = time_limit

    def plan(self, buffers):
        return exact_offsets(buffers, time_limit=self.time_limit).offsets

    def place(self, job, best):
        """From the best placement so far, when none reaches the lower bound and the table is small; used only
        when proven: what the solver has at the time limit depends on the machine, the C arena must not."""
        if best is not None and best.arena <= job.lower_bound:
            return Placement(self.name, note="not needed: a heuristic reached the lower bound")
        if len(job.buffers) > job.exact_max_buffers:
            return Placement(self.name, note=f"skipped: {len(job.buffers)} buffers > {job.exact_max_buffers}")
        r = exact_offsets(job.buffers, None if best is None else best.offsets, job.exact_time_limit)
        if r.proven:
            return Placement(self.name, tuple(r.offsets), r.arena, True, "proven optimal")
        return Placement(self.name, note=f"not proven within {job.exact_time_limit} s (had {r.arena:,} bytes); "
                                         "not used")
