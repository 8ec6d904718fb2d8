"""Placement of buffers in one arena: every buffer gets an offset so that buffers alive at the same step
never share a byte. All planners work on objects with `size`, `first_use`, `last_use` (lifetimes.Buffer).

    offsets = GreedyBySize().plan(buffers)        # TFLM's greedy_memory_planner
    check_no_overlap(buffers, offsets)            # raises OverlapError naming the two buffers
    arena_size(buffers, offsets)                  # bytes the arena needs

Planners: `naive` (each buffer its own space: the trivial baseline), `greedy_by_size` (TFLM: largest first,
each at the lowest offset free over its lifetime), `best_fit` (several orderings x first/best-fit gap choice,
the best kept), `fit_search` (backtracking at capacities below best_fit's arena), `exact` (engine.memory.exact:
mixed-integer program solved by HiGHS with a time limit; proves optimality when it finishes), `sweep`
(engine.memory.sweep: first fit in first-use order, for very wide tables). The arena can never be smaller than
the peak of live bytes (lifetimes.lower_bound). Each also returns a `Placement` record for plan_memory's
loop over the registry (engine.memory.PLANNERS), as TFLM's MicroMemoryPlanner lets clients swap strategies.
"""
from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from engine.memory.lifetimes import lower_bound


# Conflict count from which `place` scans gaps with numpy (per-call overhead beats Python only when many).
NUMPY_FROM = 32


class OverlapError(AssertionError):
    """Two buffers alive at the same step share bytes: a planner bug, never a user error."""


def arena_size(buffers: Sequence, offsets: Sequence[int]) -> int:
    return max((o + b.size for b, o in zip(buffers, offsets)), default=0)


def _arrays(buffers: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([b.size for b in buffers], dtype=np.int64), np.array([b.first_use for b in buffers]),
            np.array([b.last_use for b in buffers]))


def conflicts(buffers: Sequence) -> list[np.ndarray]:
    """For each buffer, the indices of the other non-empty buffers whose lifetimes intersect it. One vector
    comparison per buffer: O(n^2) element operations in numpy, ~10 ms for 1,000 buffers even when dense."""
    size, first, last = _arrays(buffers)
    nonempty = size > 0
    out = []
    for i in range(len(buffers)):
        if not nonempty[i]:
            out.append(np.empty(0, dtype=np.int64))
            continue
        mask = nonempty & (first <= last[i]) & (last >= first[i])
        mask[i] = False
        out.append(np.flatnonzero(mask))
    return out


def conflict_pairs(buffers: Sequence) -> int:
    """How many pairs of non-empty buffers are alive at a common step, without listing them: O(n log n).
    Buffer j misses buffer i exactly when it starts after i ends or ends before i starts (never both)."""
    size, first, last = _arrays(buffers)
    keep = size > 0
    first, last = first[keep], last[keep]
    n = len(first)
    if n < 2:
        return 0
    starts, ends = np.sort(first), np.sort(last)
    after = n - np.searchsorted(starts, last, side="right")    # j with first_j > last_i
    before = np.searchsorted(ends, first, side="left")           # j with last_j < first_i
    return int((n - after - before - 1).sum()) // 2


def check_no_overlap(buffers: Sequence, offsets: Sequence[int]) -> None:
    """Raise OverlapError naming two buffers alive at a common step whose byte ranges intersect.

    A sweep over the steps keeps the live buffers sorted by offset; they are disjoint as long as no error
    was raised, so a new buffer can only collide with its neighbours in that list: O(n log n) whatever the
    number of overlapping lifetimes (a 4,000-branch Concat has 8 million such pairs)."""
    if len(offsets) != len(buffers):
        raise OverlapError(f"{len(offsets)} offsets for {len(buffers)} buffers")
    for b, o in zip(buffers, offsets):
        if o < 0 or int(o) != o:
            raise OverlapError(f"buffer '{_name(b)}' has invalid offset {o}")
    order = sorted((i for i, b in enumerate(buffers) if b.size > 0), key=lambda i: (buffers[i].first_use, i))
    live: list[tuple[int, int, int]] = []   # (offset, end, index), sorted
    ending: list[tuple[int, int, int, int]] = []  # heap of (last_use, offset, end, index)
    for i in order:
        b = buffers[i]
        while ending and ending[0][0] < b.first_use:
            _, o, e, j = heapq.heappop(ending)
            del live[bisect.bisect_left(live, (o, e, j))]
        o = int(offsets[i])
        item = (o, o + b.size, i)
        k = bisect.bisect_left(live, item)
        for j in ([live[k - 1][2]] if k else []) + ([live[k][2]] if k < len(live) else []):
            oj = int(offsets[j])
            if o < oj + buffers[j].size and oj < o + b.size:
                a, oa, c, oc = (buffers[j], oj, b, o) if j < i else (b, o, buffers[j], oj)
                raise OverlapError(
                    f"buffers '{_name(a)}' [{oa}, {oa + a.size}) live {a.first_use}..{a.last_use} and "
                    f"'{_name(c)}' [{oc}, {oc + c.size}) live {c.first_use}..{c.last_use} overlap")
        live.insert(k, item)
        heapq.heappush(ending, (b.last_use, o, o + b.size, i))


def _name(b) -> str:
    return getattr(b, "name", repr(b))


@dataclass(frozen=True)
class Placement:
    """What one planner did for one buffer table: its offsets and arena (None when it did not run, or ran and
    must not be used), whether the arena is proven minimal for these lifetimes, and a note for the plan."""

    planner: str
    offsets: tuple[int, ...] | None = None
    arena: int | None = None
    proven: bool = False
    note: str = ""


@dataclass(frozen=True)
class PlanJob:
    """What plan_memory asks of each planner in its registry loop (engine.memory.PLANNERS)."""

    buffers: Sequence
    lower_bound: int               # peak of live bytes for this order: no arena can be smaller
    wide: bool = False             # too many overlapping pairs for the planners that list them (MAX_CONFLICT_PAIRS)
    exact_max_buffers: int = 30
    exact_time_limit: float = 2.0

    def record(self, planner: str, offsets: Sequence[int], note: str = "") -> Placement:
        arena = arena_size(self.buffers, offsets)
        return Placement(planner, tuple(offsets), arena, arena <= self.lower_bound, note)


class Planner:
    """Interface: `plan(buffers) -> offsets`, one non-negative offset per buffer, in the buffers' order;
    `place(job, best) -> Placement`, the same inside plan_memory's loop, where `best` is the smallest
    placement so far and the planner says itself whether it applies (default: every table whose overlapping
    pairs can be listed)."""

    name = ""

    def plan(self, buffers: Sequence) -> list[int]:
        raise NotImplementedError

    def place(self, job: PlanJob, best: Placement | None) -> Placement:
        return Placement(self.name) if job.wide else job.record(self.name, self.plan(job.buffers))


class Naive(Planner):
    """Every buffer its own bytes, one after the other: the sum of all sizes."""

    name = "naive"

    def place(self, job, best):
        return job.record(self.name, self.plan(job.buffers))

    def plan(self, buffers):
        offsets, top = [], 0
        for b in buffers:
            offsets.append(top)
            top += b.size
        return offsets


def place(buffers: Sequence, order: Sequence[int], best_fit: bool, conf: list[np.ndarray] | None = None
          ) -> list[int]:
    """Place buffers one by one in `order`, each below/between/above the already placed buffers that
    conflict with it: at the lowest gap that fits (first fit), or at the tightest gap that fits (best fit);
    above all of them when no gap fits. Few conflicts: a Python scan; many (wide graphs): numpy."""
    conf = conflicts(buffers) if conf is None else conf
    sizes = [b.size for b in buffers]
    offsets: list[int] = [-1] * len(buffers)
    off_arr = np.full(len(buffers), -1, dtype=np.int64)
    size_arr = np.array(sizes, dtype=np.int64)
    for i in order:
        size, c = sizes[i], conf[i]
        if len(c) < NUMPY_FROM:
            spans = sorted((offsets[j], offsets[j] + sizes[j]) for j in c.tolist() if offsets[j] >= 0)
            top, chosen, chosen_gap = 0, None, None
            for start, end in spans:
                gap = start - top
                if gap >= size and (chosen is None or gap < chosen_gap):
                    chosen, chosen_gap = top, gap
                    if not best_fit:
                        break
                top = max(top, end)
            at = top if chosen is None else chosen
        else:
            c = c[off_arr[c] >= 0]
            start = off_arr[c]
            by_start = np.argsort(start, kind="stable")
            start = start[by_start]
            end = np.maximum.accumulate(start + size_arr[c][by_start])   # highest end so far
            top = np.concatenate(([0], end[:-1]))                         # free from here up to `start`
            gap = start - top
            fits = np.flatnonzero(gap >= size)
            if not len(fits):
                at = int(end[-1]) if len(end) else 0
            else:
                at = int(top[fits[0] if not best_fit else fits[np.argmin(gap[fits])]])
        offsets[i] = at
        off_arr[i] = at
    return [max(o, 0) for o in offsets]


class GreedyBySize(Planner):
    """TFLM's greedy_memory_planner: sort by size descending, first fit at the lowest offset.

    Equal sizes are taken in reverse request order, as TFLM does (it fills its sort array from the tail and
    bubble-sorts it stably); with buffers listed by first use this reproduces TFLM's 73,728 bytes on the
    MLPerf Tiny VWW model (in request order it would find 64,512)."""

    name = "greedy_by_size"

    def plan(self, buffers):
        order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i].size)
        return place(buffers, order, best_fit=False)


def _duration(b) -> int:
    return b.last_use - b.first_use + 1


# Orderings tried by BestFit. Sizes dominate DSA heuristics; lifetimes break ties and rescue the cases where a
# long-lived small buffer, placed late, lands in the middle of the space the big short-lived ones need.
ORDERINGS: dict[str, Callable] = {
    "size": lambda b: (-b.size, b.first_use),
    "breadth": lambda b: (-b.size * _duration(b), -b.size),
    "duration": lambda b: (-_duration(b), -b.size),
    "first_use": lambda b: (b.first_use, -b.size),
    "last_use": lambda b: (-b.last_use, -b.size),
}


class BestFit(Planner):
    """Every ordering in ORDERINGS with first-fit and best-fit gap choice; the smallest arena wins. Its
    placement record's note names the winner (e.g. 'breadth/best')."""

    name = "best_fit"

    def plan(self, buffers):
        return self.search(buffers)[0]

    def place(self, job, best):
        if job.wide:
            return Placement(self.name)
        offsets, choice = self.search(job.buffers)
        return job.record(self.name, offsets, choice)

    def search(self, buffers) -> tuple[list[int], str]:
        """(offsets, 'ordering/fit' that gave them)."""
        conf = conflicts(buffers)
        best, best_arena, choice = [], None, ""
        for key_name, key in ORDERINGS.items():
            order = sorted(range(len(buffers)), key=lambda i: key(buffers[i]))
            for fit in ("best", "first"):
                offsets = place(buffers, order, fit == "best", conf)
                arena = arena_size(buffers, offsets)
                if best_arena is None or arena < best_arena:
                    best, best_arena, choice = offsets, arena, f"{key_name}/{fit}"
        return best, choice


def fit_search(buffers: Sequence, capacity: int, max_nodes: int) -> list[int] | None:
    """Offsets that keep every buffer below `capacity`, or None when the search gives up.

    Buffers are placed in time order (by first use), like a malloc that knows the future: when buffer i is
    placed, exactly the earlier buffers still alive conflict with it, and it may go at either end of any
    free gap big enough (tightest gap first). A choice that leaves a later buffer no room is undone
    (depth-first backtracking), for at most `max_nodes` placements. Far stronger than one greedy pass when
    a buffer must sit at the far end of its gap to leave room for what comes next (a residual or
    concat whose output overlaps the next block's input)."""
    n = len(buffers)
    seq = sorted(range(n), key=lambda i: (buffers[i].first_use, -buffers[i].size, i))
    pos = {b: k for k, b in enumerate(seq)}
    conf = conflicts(buffers)
    earlier = [[j for j in conf[seq[k]].tolist() if pos[j] < k] for k in range(n)]
    offsets = [0] * n
    cands: list[list[int] | None] = [None] * n
    ptr = [0] * n
    k = nodes = 0
    while 0 <= k < n:
        i = seq[k]
        size = buffers[i].size
        if cands[k] is None:
            spans = sorted((offsets[j], offsets[j] + buffers[j].size) for j in earlier[k]) + [(capacity, capacity)]
            gaps, top = [], 0
            for start, end in spans:
                if start - top >= size:
                    gaps.append((start - top, top, start - size))
                top = max(top, end)
            gaps.sort()
            cands[k] = list(dict.fromkeys(o for _, lo, hi in gaps for o in (lo, hi)))
            ptr[k] = 0
        if ptr[k] < len(cands[k]):
            offsets[i] = cands[k][ptr[k]]
            ptr[k] += 1
            k += 1
            nodes += 1
            if nodes > max_nodes:
                return None
        else:
            cands[k] = None
            k -= 1
    return offsets if k == n else None


class FitSearch(Planner):
    """fit_search at the lower bound, then at a few capacities between it and best_fit's arena;
    best_fit's own placement when nothing smaller is found. Deterministic: limits count placements."""

    name = "fit_search"

    def __init__(self, nodes_per_buffer: int = 30, tries: int = 4):
        self.nodes_per_buffer = nodes_per_buffer
        self.tries = tries

    def place(self, job, best):
        """Only when no placement so far reaches the lower bound; starts from the best one."""
        if job.wide or best is None or best.arena <= job.lower_bound:
            return Placement(self.name)
        return job.record(self.name, self.plan(job.buffers, best.offsets))

    def plan(self, buffers, upper: Sequence[int] | None = None):
        upper = BestFit().plan(buffers) if upper is None else list(upper)
        best_arena = arena_size(buffers, upper)
        lb = lower_bound(buffers)
        step = 0
        for b in buffers:
            step = math.gcd(step, b.size)
        step = max(step, 1)
        budget = self.nodes_per_buffer * max(len(buffers), 1)
        gap = (best_arena - lb) // step
        capacities = sorted({lb + step * (gap * t // self.tries) for t in range(self.tries)})
        for cap in capacities:
            if cap >= best_arena:
                break
            offsets = fit_search(buffers, cap, budget)
            if offsets is not None:
                return offsets
        return upper
