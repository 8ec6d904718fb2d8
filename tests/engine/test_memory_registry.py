"""plan_memory is one loop over the planner registry (engine.memory.PLANNERS): every planner returns a
placement record, the plan's figures are those records, and a strategy added to the registry takes part
(TFLM's MicroMemoryPlanner lets clients swap strategies the same way)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.importers.tflite_import import load_tflite
from engine.memory import PLANNERS, Placement, PlanJob, plan_memory
from engine.memory.planners import GreedyBySize, Naive, Planner, arena_size, check_no_overlap
from engine.zoo import build_zoo_model

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"


def records(plan) -> dict[str, Placement]:
    """Every registry planner's record for the plan's own buffer table, as plan_memory's loop builds them."""
    buffers = list(plan.buffers)
    job = PlanJob(buffers, plan.lower_bound_bytes)
    out, best = {}, None
    for make in PLANNERS.values():
        rec = make().place(job, best)
        out[rec.planner] = rec
        if rec.offsets is not None and (best is None or rec.arena < best.arena):
            best = rec
    return out


@pytest.mark.parametrize("spec", ["zoo:lenet5", "zoo:kws_dscnn", "zoo:mobilenetv2?width=0.35&resolution=96"])
def test_plan_figures_are_the_placement_records(spec):
    plan = plan_memory(build_zoo_model(spec), bytes_per_element=1)
    recs = records(plan)
    used = {k: r for k, r in recs.items() if r.offsets is not None}
    assert plan.arena_by_planner == {k: r.arena for k, r in used.items()}
    assert plan.arena_bytes == used[plan.planner].arena == min(r.arena for r in used.values())
    assert plan.offsets == used[plan.planner].offsets
    assert plan.optimal == any(r.proven for r in used.values())
    assert plan.notes.get("best_fit") == recs["best_fit"].note and plan.notes["exact"] == recs["exact"].note
    for r in used.values():
        check_no_overlap(plan.buffers, r.offsets)
        assert r.arena == arena_size(plan.buffers, r.offsets) >= plan.lower_bound_bytes
        assert r.proven == (r.arena == plan.lower_bound_bytes) or r.planner == "exact"
    assert recs["sweep"].offsets is None  # only for tables too wide for the others


def test_refining_planners_run_only_above_the_lower_bound():
    plan = plan_memory(load_tflite(str(DATA / "vww_96_int8.tflite")), inplace=False)
    recs = records(plan)
    heuristics = min(recs[k].arena for k in ("naive", "greedy_by_size", "best_fit"))
    assert (recs["fit_search"].offsets is None) == (heuristics <= plan.lower_bound_bytes)
    assert plan.arena_by_planner == {k: r.arena for k, r in recs.items() if r.offsets is not None}


class Stacked(Planner):
    """A strategy a client adds: naive's placement, 16 bytes higher (worse, so it must not be chosen)."""

    name = "stacked"

    def plan(self, buffers):
        return [o + 16 for o in Naive().plan(buffers)]

    def place(self, job, best):
        return job.record(self.name, self.plan(job.buffers), "naive + 16")


class Client(GreedyBySize):
    """TFLM's greedy planner under another name, as a client's own strategy would come in."""

    name = "client"


def test_a_planner_added_to_the_registry_takes_part(monkeypatch):
    g = build_zoo_model("zoo:lenet5")
    before = plan_memory(g, bytes_per_element=1)
    monkeypatch.setitem(PLANNERS, "stacked", Stacked)
    plan = plan_memory(g, bytes_per_element=1)
    assert plan.arena_by_planner["stacked"] == plan.arena_by_planner["naive"] + 16
    assert plan.notes["stacked"] == "naive + 16"
    assert (plan.planner, plan.arena_bytes, plan.offsets) == (before.planner, before.arena_bytes, before.offsets)
    # Swapping strategies: a registry of naive and the client's planner; the client's (smaller) arena is chosen.
    monkeypatch.setattr("engine.memory.PLANNERS", {"naive": Naive, "client": Client})
    plan = plan_memory(g, bytes_per_element=1)
    greedy = arena_size(plan.buffers, GreedyBySize().plan(list(plan.buffers)))
    assert plan.planner == "client" and plan.arena_bytes == greedy < plan.arena_by_planner["naive"]
    assert set(plan.arena_by_planner) == {"naive", "client"} and "exact" not in plan.notes
