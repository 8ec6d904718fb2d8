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

The search runs segment by segment between nodes every order runs at the same step (a chain's nodes, a
residual block's output): masks are as wide as a segment, so deep graphs cost linear time. Work (moves
evaluated + ready-list entries built) is capped for the whole search by `max_work`: a layer whose moves would
exceed it is not searched; the best down-set reached so far is completed in the graph's stable topological
order instead (near-linear). Very wide graphs (thousands of branches into one Concat, where every layer has
thousands of ready nodes) get there; chains and CNNs never come near it.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.memory.lifetimes import BufferModel
from engine.validate import kahn_order

# States' successors built per search (~0.3 s of Python), shared out per layer (the beam's width).
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
    preds: list[set[int]] = [set() for _ in range(n_nodes)]
    users: list[set[int]] = [set() for _ in range(n_nodes)]
    for i, nd in enumerate(nodes):
        for t in nd.inputs:
            p = made_by.get(t)
            if p is not None and p != i:
                preds[i].add(p)
                users[p].add(i)
    users_sorted = [sorted(u) for u in users]
    alloc = [0] * n_nodes     # bytes of the groups a node writes first
    dead = [0] * n_nodes      # of which nobody reads (freed right after the step)
    for g in range(n_groups):
        p = model.producer[g]
        if p >= 0:
            alloc[p] += size[g]
            if not model.consumers[g] and not is_output[g]:
                dead[p] += size[g]
    group_of = model.group_of
    in_groups = [tuple(dict.fromkeys([group_of[t] for t in nd.inputs if t in group_of])) for nd in nodes]
    inplace = [tuple((gi, size[go]) for gi, go in model.inplace[i] if size[gi] == size[go]) for i in range(n_nodes)]
    # Graph inputs are written before step 0; one that nothing reads is freed after step 0 (as lifetimes has it).
    inputs = [g for g in range(n_groups) if model.producer[g] < 0]
    mem0 = sum(size[g] for g in inputs)
    idle0 = sum(size[g] for g in inputs if not model.consumers[g] and not is_output[g])

    sim = _Simulator(model, alloc, dead, in_groups, inplace, idle0, mem0)
    per_layer = max(budget // max(n_nodes, 1), 1)
    order: list[int] = []
    exact, states, work = True, 1, 0
    topo = kahn_order(preds)[0]  # lowest index first: the graph's own stable order
    segments = _segments(topo, preds, users)
    for si, seg in enumerate(segments):
        if len(seg) > 1:
            r = _search(seg, preds, users_sorted, sim, beam, per_layer, max_work - work)
            work += r.work
            states += r.states
            exact = exact and r.exact
            searched = list(r.order)
        else:
            searched = seg
        for n in searched:
            sim.step(n)
        order += searched
        if len(searched) < len(seg):  # the work budget ran out: the rest in stable topological order
            taken = set(searched)
            rest = [n for n in seg if n not in taken] + [n for later in segments[si + 1:] for n in later]
            for n in rest:
                sim.step(n)
            return OrderResult(tuple(order + rest), sim.peak, False, states, work, len(rest))
    return OrderResult(tuple(order), sim.peak, exact, states, work)


class _Simulator:
    """Live bytes along a fixed order, with per-group read counters: O(edges) for a whole order."""

    def __init__(self, model: BufferModel, alloc, dead, in_groups, inplace, idle0: int, mem0: int):
        self.size, self.is_output = model.size, model.is_output
        self.alloc, self.dead, self.in_groups, self.inplace, self.idle0 = alloc, dead, in_groups, inplace, idle0
        self.reads_left = [len(c) for c in model.consumers]
        self.mem = mem0
        self.peak = mem0 if not model.nodes else 0
        self.steps = 0

    def step(self, n: int) -> None:
        save = 0
        for gi, s in self.inplace[n]:
            if self.reads_left[gi] == 1 and not self.is_output[gi]:
                save = s
                break
        self.peak = max(self.peak, self.mem + self.alloc[n] - save)
        freed = self.dead[n] + (self.idle0 if self.steps == 0 else 0)
        for g in self.in_groups[n]:
            self.reads_left[g] -= 1
            if self.reads_left[g] == 0 and not self.is_output[g]:
                freed += self.size[g]
        self.mem += self.alloc[n] - freed
        self.steps += 1


def _segments(topo: list[int], preds: list[set[int]], users: list[set[int]]) -> list[list[int]]:
    """Split the order at nodes that every topological order runs at the same step (each node before is an
    ancestor, each node after a descendant): the search runs per segment, with masks as wide as a segment
    instead of the whole graph, so a deep graph costs linear time. A node at position i is such a cut when
    no edge jumps over i, no node before i is a sink and no node after i a source (a path from any earlier
    node must then run forward until it reaches i)."""
    n = len(topo)
    pos = [0] * n
    for i, v in enumerate(topo):
        pos[v] = i
    span = [0] * (n + 1)
    for v in range(n):
        for u in users[v]:
            if pos[u] > pos[v] + 1:
                span[pos[v] + 1] += 1
                span[pos[u]] -= 1
    sources_after = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        sources_after[i] = sources_after[i + 1] + (not preds[topo[i]])
    segments: list[list[int]] = []
    current: list[int] = []
    spanning = sinks_before = 0
    for i, v in enumerate(topo):
        spanning += span[i]
        if spanning == 0 and sinks_before == 0 and sources_after[i + 1] == 0:
            if current:
                segments.append(current)
                current = []
            segments.append([v])
        else:
            current.append(v)
        sinks_before += not users[v]
    if current:
        segments.append(current)
    return segments


def _search(seg: list[int], preds, users_sorted, sim: _Simulator, beam: int, per_layer: int,
            max_work: int) -> OrderResult:
    """The down-set search over one segment, from the simulator's state before it (nodes before the segment
    are done, nodes after it are not). Bits are local to the segment. Stops early (a shorter order) when the
    next layer would exceed `max_work`."""
    local = {n: i for i, n in enumerate(seg)}
    m = len(seg)
    size, is_output, alloc, dead = sim.size, sim.is_output, sim.alloc, sim.dead
    pred_mask = [0] * m
    users_local = [[] for _ in range(m)]
    for i, n in enumerate(seg):
        for p in preds[n]:
            if p in local:
                pred_mask[i] |= 1 << local[p]
        users_local[i] = [local[u] for u in users_sorted[n] if u in local]
    # A group dies when its reads inside the segment are done and nothing after the segment reads it.
    cons_mask: dict[int, int] = {}
    for i, n in enumerate(seg):
        for g in sim.in_groups[n]:
            cons_mask[g] = cons_mask.get(g, 0) | (1 << i)
    keeps = {g: is_output[g] or sim.reads_left[g] > bin(mk).count("1") for g, mk in cons_mask.items()}
    in_groups = [sim.in_groups[n] for n in seg]
    inplace = [sim.inplace[n] for n in seg]
    first = sim.steps == 0
    idle0 = sim.idle0
    ready0 = tuple(i for i in range(m) if pred_mask[i] == 0)
    layer: dict[int, tuple] = {0: (sim.peak, sim.mem, ready0, None)}
    exact, states, work = True, 0, 0
    for k in range(m):
        layer_moves = sum(len(st[2]) for st in layer.values())
        if work + layer_moves > max_work:
            return _partial(seg, layer, states, work)
        work += layer_moves
        # Evaluate every move; only the surviving successors get their ready list built.
        moves: dict[int, tuple] = {}  # new down-set -> (peak, bytes live, old down-set, node)
        for d, (peak, mem, ready, _) in layer.items():
            for n in ready:
                d2 = d | (1 << n)
                notdone = ~d2
                save = 0
                for gi, s in inplace[n]:
                    if not (cons_mask[gi] & notdone) and not keeps[gi]:
                        save = s
                        break
                step_peak = mem + alloc[seg[n]] - save
                p2 = peak if peak >= step_peak else step_peak
                old = moves.get(d2)
                if old is not None and old[0] <= p2:
                    continue
                freed = dead[seg[n]] + (idle0 if first and k == 0 else 0)
                for g in in_groups[n]:
                    if not (cons_mask[g] & notdone) and not keeps[g]:
                        freed += size[g]
                moves[d2] = (p2, mem + alloc[seg[n]] - freed, d, n)
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
                                  + [u for u in users_local[n] if not (pred_mask[u] & notdone)]))
            if work + len(ready2) > max_work:  # the rest of the budget is spent: no more successors
                exhausted, exact = True, False
                break
            new[d2] = (p2, mem2, ready2, (n, layer[d][3]))
            cost += len(ready2)
            work += len(ready2)
        if not new:
            return _partial(seg, layer, states, work)
        states += len(new)
        layer = new
        if exhausted and k + 1 < m:
            return _partial(seg, layer, states, work)
    peak, _, _, path = next(iter(layer.values()))  # the one down-set holding every node
    return OrderResult(tuple(seg[i] for i in _path(path)), peak, exact, states, work)


def _partial(seg, layer, states, work) -> OrderResult:
    """The best down-set reached when the budget ran out (its order only covers part of the segment)."""
    _d, (peak, _mem, _ready, path) = min(layer.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
    return OrderResult(tuple(seg[i] for i in _path(path)), peak, False, states, work)


def _path(path) -> tuple[int, ...]:
    order = []
    while path is not None:
        order.append(path[0])
        path = path[1]
    order.reverse()
    return tuple(order)
