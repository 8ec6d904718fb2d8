"""The sweep planner: first fit in first-use order with a free list, O(n log n + n x holes), for buffer
tables too wide for planners that list every pair of overlapping lifetimes (engine.memory.plan_memory uses
it above MAX_CONFLICT_PAIRS). A planners.Planner: `plan(buffers) -> offsets`; `place(job, best)` runs it for wide
tables only.
"""
from __future__ import annotations

import bisect
import heapq

from engine.memory.planners import Placement, Planner


class Sweep(Planner):
    """First fit in first-use order, as a malloc that frees each buffer after its last use: a free list of
    holes kept sorted and coalesced, no conflict lists. It places exactly as `place` does with the
    'first_use' ordering and first fit, in O(n log n + n x holes) instead of O(overlapping pairs), so it is
    the planner for tables too wide for the others (plan_memory's MAX_CONFLICT_PAIRS)."""

    name = "sweep"

    def place(self, job, best):
        return job.record(self.name, self.plan(job.buffers)) if job.wide else Placement(self.name)

    def plan(self, buffers):
        offsets = [0] * len(buffers)
        holes: list[list[int]] = []          # [start, end) free below `top`, sorted, never touching
        top = 0
        ending: list[tuple[int, int]] = []   # heap of (last_use, index) of placed non-empty buffers
        # planners.ORDERINGS["first_use"], ties by index as a stable sort has them
        for i in sorted(range(len(buffers)), key=lambda i: (buffers[i].first_use, -buffers[i].size, i)):
            b = buffers[i]
            while ending and ending[0][0] < b.first_use:
                j = heapq.heappop(ending)[1]
                top = _free(holes, offsets[j], offsets[j] + buffers[j].size, top)
            if b.size <= 0:
                continue
            for k, (start, end) in enumerate(holes):
                if end - start >= b.size:
                    offsets[i] = start
                    if end - start == b.size:
                        del holes[k]
                    else:
                        holes[k][0] = start + b.size
                    break
            else:  # no hole fits (holes never touch the top: _free lowers the top instead)
                offsets[i] = top
                top += b.size
            heapq.heappush(ending, (b.last_use, i))
        return offsets


def _free(holes: list[list[int]], start: int, end: int, top: int) -> int:
    """Return [start, end) to the free list, merging with neighbouring holes; the new top of the arena."""
    k = bisect.bisect_left(holes, [start, end])
    if k < len(holes) and holes[k][0] == end:
        end = holes.pop(k)[1]
    if k and holes[k - 1][1] == start:
        k -= 1
        start = holes.pop(k)[0]
    if end >= top:
        return start
    holes.insert(k, [start, end])
    return top
