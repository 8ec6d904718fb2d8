"""Execution order that minimizes the peak of live activation bytes (among the graph's topological orders).

    result = best_order(model)        # model = lifetimes.buffer_model(graph, ...)
    result.order, result.peak, result.exact

The bytes live after running a set D of nodes depend on D only (buffers written by D that a node outside D
still reads, plus graph outputs), and so does the extra memory of running node n next (its new outputs,
less one buffer when n can write over an input that dies now). So the best order is a shortest path over
the "down-sets" D where the path cost is the max of its step peaks: a dynamic program layer by layer
(every down-set of k nodes), keeping per down-set only the lowest peak so far. A chain has one down-set per
layer, a fork-join region of branches with lengths a and b about (a+1)(b+1). When a layer would exceed
`beam` states, or its successors would cost more than the per-layer share of `budget` evaluations, the
best states by (peak so far, bytes live) are kept: the result is then a beam-search order, still valid,
and `exact` is False.

Work (moves evaluated + ready-list entries built) is also capped for the whole search by `max_work`: a layer
whose moves would exceed it is not searched; the best down-set reached so far is completed in the graph's
stable topological order instead (near-linear). Very wide graphs (thousands of branches into one Concat,
where every layer has thousands of ready nodes) get there; chains and CNNs never come near it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from engine.memory.lifetimes import BufferModel

# States' successors built per search (~0.3 s of Python). Moves evaluated stay below BUDGET + nodes x widest
# ready set: ~1 s for 1,000 nodes all ready at once (a 1,000-way fan-out), milliseconds for CNNs.
BUDGET = 300_000
# Total work of one search (~0.5 s of Python); beyond it the rest of the order is the stable topological one.
MAX_WORK = 400_000


@dataclass(frozen=True)
class OrderResult:
    order: tuple[int, ...]     # node indices into model.nodes
    peak: int                  # the peak of live bytes of that order, as the search models it
    exact: bool                # nothing was pruned: no topological order has a lower peak
    states: int                # down-sets kept over all layers
    work: int = 0              # moves evaluated + ready entries built (never above max_work)
    fallback: int = 0          # nodes placed in plain topological order after the work budget ran out


def best_order(model: BufferModel, beam: int = 4096, budget: int = BUDGET, max_work: int = MAX_WORK) -> OrderResult:
    nodes = model.nodes
    n_nodes = len(nodes)
    n_groups = len(model.members)
    size = model.size
    is_output = model.is_output

    # Node-level dependency facts (a view node's output is produced by the view, not by the group root).
    made_by: dict[str, int] = {t: i for i, nd in enumerate(nodes) for t in nd.outputs}
    pred_mask = [0] * n_nodes
    users: list[set[int]] = [set() for _ in range(n_nodes)]
    for i, nd in enumerate(nodes):
        for t in nd.inputs:
            p = made_by.get(t)
            if p is not None and p != i:
                pred_mask[i] |= 1 << p
                users[p].add(i)
    users_sorted = [sorted(u) for u in users]
    cons_mask = [0] * n_groups
    for g, cs in enumerate(model.consumers):
        for c in cs:
            cons_mask[g] |= 1 << c
    alloc = [0] * n_nodes     # bytes of the groups a node writes first
    dead = [0] * n_nodes      # of which nobody reads (freed right after the step)
    for g in range(n_groups):
        p = model.producer[g]
        if p >= 0:
            alloc[p] += size[g]
            if not model.consumers[g] and not is_output[g]:
                dead[p] += size[g]
    in_groups = [tuple(dict.fromkeys(model.group_of[t] for t in nd.inputs if t in model.group_of))
                 for nd in nodes]
    inplace = [tuple((gi, size[go]) for gi, go in model.inplace[i] if size[gi] == size[go]) for i in range(n_nodes)]
    # Graph inputs are written before step 0; one that nothing reads is freed after step 0 (as lifetimes has it).
    inputs = [g for g in range(n_groups) if model.producer[g] < 0]
    mem0 = sum(size[g] for g in inputs)
    idle0 = sum(size[g] for g in inputs if not model.consumers[g] and not is_output[g])

    per_layer = max(budget // max(n_nodes, 1), 1)
    ready0 = tuple(i for i in range(n_nodes) if pred_mask[i] == 0)
    layer: dict[int, tuple] = {0: (mem0 if n_nodes == 0 else 0, mem0, ready0, None)}
    exact, states, work = True, 1, 0
    for k in range(n_nodes):
        layer_moves = sum(len(st[2]) for st in layer.values())
        if work + layer_moves > max_work:
            return _finish_topologically(model, layer, k, pred_mask, users_sorted, alloc, dead,
                                         in_groups, inplace, idle0, states, work)
        work += layer_moves
        # Evaluate every move; only the surviving successors get their ready list built.
        moves: dict[int, tuple] = {}  # new down-set -> (peak, bytes live, old down-set, node)
        for d, (peak, mem, ready, _) in layer.items():
            for n in ready:
                d2 = d | (1 << n)
                notdone = ~d2
                save = 0
                for gi, s in inplace[n]:
                    if not (cons_mask[gi] & notdone) and not is_output[gi]:
                        save = s
                        break
                step_peak = mem + alloc[n] - save
                p2 = peak if peak >= step_peak else step_peak
                old = moves.get(d2)
                if old is not None and old[0] <= p2:
                    continue
                freed = dead[n] + (idle0 if k == 0 else 0)
                for g in in_groups[n]:
                    if not (cons_mask[g] & notdone) and not is_output[g]:
                        freed += size[g]
                moves[d2] = (p2, mem + alloc[n] - freed, d, n)
        ranked = sorted(moves.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
        new: dict[int, tuple] = {}
        cost, exhausted = 0, False
        for d2, (p2, mem2, d, n) in ranked:
            if new and (len(new) >= beam or cost >= per_layer):
                exact = False
                break
            ready = layer[d][2]
            notdone = ~d2
            ready2 = tuple(sorted([r for r in ready if r != n]
                                  + [u for u in users_sorted[n] if not (pred_mask[u] & notdone)]))
            if work + len(ready2) > max_work:  # the rest of the budget is spent: no more successors
                exhausted, exact = True, False
                break
            new[d2] = (p2, mem2, ready2, (n, layer[d][3]))
            cost += len(ready2)
            work += len(ready2)
        if not new:
            return _finish_topologically(model, layer, k, pred_mask, users_sorted, alloc, dead,
                                         in_groups, inplace, idle0, states, work)
        states += len(new)
        layer = new
        if exhausted and k + 1 < n_nodes:
            return _finish_topologically(model, layer, k + 1, pred_mask, users_sorted, alloc, dead,
                                         in_groups, inplace, idle0, states, work)
    peak, _, _, path = next(iter(layer.values()))  # the one down-set holding every node
    return OrderResult(_path(path), peak, exact, states, work)


def _path(path) -> tuple[int, ...]:
    order = []
    while path is not None:
        order.append(path[0])
        path = path[1]
    order.reverse()
    return tuple(order)


def _finish_topologically(model, layer, k, pred_mask, users_sorted, alloc, dead, in_groups, inplace,
                          idle0, states, work) -> OrderResult:
    """Complete the best down-set of `layer` (k nodes done) with the remaining nodes in the stable
    topological order (Kahn's, lowest index first), tracking the peak as the search models it."""
    d, (peak, mem, ready, path) = min(layer.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
    is_output, size = model.is_output, model.size
    order = list(_path(path))
    n_nodes = len(model.nodes)
    missing = [bin(pred_mask[i] & ~d).count("1") for i in range(n_nodes)]
    heap = list(ready)
    heapq.heapify(heap)
    done = [bool(d >> i & 1) for i in range(n_nodes)]
    # Remaining reads per group, so "dies now" is a counter test rather than a mask over all nodes.
    reads_left = [0] * len(size)
    for g in range(len(size)):
        reads_left[g] = sum(1 for c in model.consumers[g] if not done[c])
    placed = 0
    while heap:
        n = heapq.heappop(heap)
        step = k + placed
        save = 0
        for gi, s in inplace[n]:
            if reads_left[gi] == 1 and not is_output[gi]:
                save = s
                break
        step_peak = mem + alloc[n] - save
        peak = max(peak, step_peak)
        freed = dead[n] + (idle0 if step == 0 else 0)
        for g in in_groups[n]:
            reads_left[g] -= 1
            if reads_left[g] == 0 and not is_output[g]:
                freed += size[g]
        mem += alloc[n] - freed
        order.append(n)
        placed += 1
        for u in users_sorted[n]:
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(heap, u)
    return OrderResult(tuple(order), peak, False, states, work, placed)
