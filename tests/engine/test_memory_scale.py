"""The memory planner on very wide and very deep graphs (issue 10): the order search stays within its work
budget (counted, not timed), tables with too many overlapping lifetimes get the O(n log n) planners, and the
near-linear pieces agree with the quadratic ones they replace."""
from __future__ import annotations

import random

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor
from engine.memory import MAX_CONFLICT_PAIRS, plan_memory
from engine.memory.lifetimes import Buffer, buffer_model, buffer_table, live_bytes
from engine.memory.order import MAX_WORK, best_order
from engine.memory.planners import (ORDERINGS, OverlapError, arena_size, check_no_overlap, conflict_pairs,
                                    conflicts, place)
from engine.memory.sweep import Sweep


def wide(branches: int, width: int = 8) -> Graph:
    """X -> branch i: Mul by its own constant, Relu -> one Concat of every branch."""
    b = GraphBuilder("wide")
    x = b.input("X", (1, width))
    outs = [b.node("Relu", [b.node("Mul", [x, b.const("S", np.full((1, width), i, np.float32))])])
            for i in range(branches)]
    b.output(b.node("Concat", outs, axis=1))
    return b.build()


def chain(n: int) -> Graph:
    b = GraphBuilder("chain")
    x = b.input("X", (1, 8))
    for _ in range(n // 2):
        x = b.node("Neg", [b.node("Relu", [x])])
    b.output(x)
    return b.build()


def _peak(model, order_idx) -> int:
    names = [model.nodes[i].name for i in order_idx]
    return max(live_bytes(buffer_table(model, names).buffers, len(names)))


@pytest.mark.parametrize("max_work", [0, 50, 5_000, 60_000])
def test_order_search_respects_its_work_budget(max_work):
    model = buffer_model(wide(300))  # 601 nodes, 300 of them ready at once: ~90,000 moves to search it all
    r = best_order(model, max_work=max_work)
    assert r.work <= max_work
    assert r.fallback > 0 and not r.exact  # the rest came in topological order
    assert sorted(r.order) == list(range(len(model.nodes)))
    assert r.peak == _peak(model, r.order)  # valid (buffer_table checks it is topological) and modelled exactly


def test_search_work_is_linear_on_chains_and_unbudgeted_below_the_limit():
    for n in (2_000, 8_000):
        model = buffer_model(chain(n))
        r = best_order(model)
        assert r.exact and r.fallback == 0 and r.work <= 3 * n
    small = buffer_model(wide(6))
    r = best_order(small)
    assert r.exact and r.fallback == 0 and r.work < MAX_WORK


def test_wide_concat_plans_with_the_sweep_planner():
    g = wide(1000)
    plan = plan_memory(g)
    assert plan.planner == "sweep" and set(plan.arena_by_planner) == {"naive", "sweep"}
    assert "only naive and sweep ran" in plan.notes["planners"]
    assert not plan.order_exact  # the order search ran out of budget (its order ties the topological one)
    check_no_overlap(plan.buffers, plan.offsets)
    assert plan.arena_bytes == plan.lower_bound_bytes  # equal 32-byte branches stack without gaps
    assert conflict_pairs(plan.buffers) > MAX_CONFLICT_PAIRS


def _random_table(rng, n):
    out = []
    for i in range(n):
        f = rng.randint(0, 15)
        out.append(Buffer(f"b{i}", rng.choice([0, 16, 32, 48, 64, 128]), f, f + rng.randint(0, 6), (f"b{i}",), 1))
    return out


def test_sweep_places_as_first_use_first_fit_and_checks_agree_with_pairwise():
    rng = random.Random(5)
    for _ in range(800):
        table = _random_table(rng, rng.randint(0, 25))
        order = sorted(range(len(table)), key=lambda i: ORDERINGS["first_use"](table[i]))
        ref, got = place(table, order, False), Sweep().plan(table)
        assert [o for o, b in zip(ref, table) if b.size] == [o for o, b in zip(got, table) if b.size]
        check_no_overlap(table, got)
        assert arena_size(table, got) == arena_size(table, [o if b.size else 0 for o, b in zip(ref, table)])
        assert conflict_pairs(table) == sum(len(c) for c in conflicts(table)) // 2
        offsets = [rng.choice([0, 16, 32, 64]) for _ in table]
        pairwise = any(offsets[i] < offsets[j] + table[j].size and offsets[j] < offsets[i] + table[i].size
                       for i, c in enumerate(conflicts(table)) for j in c.tolist())
        try:
            check_no_overlap(table, offsets)
            swept = False
        except OverlapError:
            swept = True
        assert swept == pairwise


def test_absurd_activation_is_a_graph_error():
    g = Graph("huge")
    g.tensors["X"] = Tensor("X", (1 << 31, 1 << 31), "float32")
    g.nodes.append(Node("Relu", "relu", ["X"], ["Y"], {}))
    g.inputs, g.outputs = ["X"], ["Y"]
    with pytest.raises(GraphError, match="activation 'X' needs 18,446,744,073,709,551,616 bytes, over the limit"):
        plan_memory(g)
