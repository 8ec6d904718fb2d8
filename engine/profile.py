"""The profile of a graph: per-layer costs, the memory plan, and estimates on target MCUs.

    prof = profile_graph(graph, targets=[("stm32f746ng", "tflm-cmsis-nn")])
    prof.layers[i].live_bytes, prof.plan.arena_bytes, prof.targets[0].latency_ms
    prof.to_json()   # the `tinystudio profile --json` document

Per-layer records come from engine.summary, the arena from engine.memory (the planner the C export uses),
latency/energy/fit from hwmodels. Totals are sums of the per-layer records.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.ir import Graph
from engine.memory import MemoryPlan, plan_memory
from engine.summary import LayerRecord, layer_records
from engine.validate import infer_shapes


@dataclass(frozen=True)
class LayerProfile:
    record: LayerRecord
    step: int  # position in the planned execution order
    live_bytes: int  # activation bytes alive while this layer runs (planner's view)

    def to_json(self) -> dict:
        return {**self.record.to_json(), "step": self.step, "live_bytes": self.live_bytes}


@dataclass(frozen=True)
class Profile:
    graph_name: str
    layers: tuple[LayerProfile, ...]
    plan: MemoryPlan
    targets: tuple  # hwmodels.estimate.TargetEstimate, one per (mcu, runtime)

    @property
    def weight_bytes(self) -> int:
        return sum(lp.record.weight_bytes for lp in self.layers)

    @property
    def quant_bytes(self) -> int:
        return sum(lp.record.quant_bytes for lp in self.layers)

    def totals(self) -> dict:
        recs = [lp.record for lp in self.layers]
        return {
            "macs": sum(r.macs for r in recs),
            "flops": sum(r.flops for r in recs),
            "params": sum(r.params for r in recs),
            "layers": len(recs),
            "weight_bytes": self.weight_bytes,
            "quant_bytes": self.quant_bytes,
            "activation_peak_bytes": self.plan.arena_bytes,
            "activation_lower_bound_bytes": self.plan.lower_bound_bytes,
            "planner": self.plan.planner,
            "arena_by_planner": dict(self.plan.arena_by_planner),
        }


def profile_graph(graph: Graph, targets: list[tuple[str, str]] | tuple = (), bytes_per_element: int | None = None,
                  mcu_dirs: list[str] | None = None) -> Profile:
    """Profile `graph`; `targets` are (mcu id, runtime id) pairs, resolved through hwmodels."""
    g = infer_shapes(graph) if not all(t in graph.tensors for n in graph.nodes for t in n.outputs) else graph
    plan = plan_memory(g, bytes_per_element=bytes_per_element)
    by_name = {r.name: r for r in layer_records(g)}
    step_of = {name: i for i, name in enumerate(plan.order)}
    layers = tuple(LayerProfile(by_name[name], step_of[name], plan.live_bytes[step_of[name]]) for name in plan.order)
    ests = []
    if targets:
        from hwmodels.estimate import estimate_target
        from hwmodels.mcu import get_mcu
        from hwmodels.runtime import get_runtime

        weight_bytes = sum(r.weight_bytes for r in by_name.values())
        quant_bytes = sum(r.quant_bytes for r in by_name.values())
        for mcu_id, rt_id in targets:
            ests.append(estimate_target(g, get_mcu(mcu_id, mcu_dirs), get_runtime(rt_id), arena_bytes=plan.arena_bytes,
                                        weight_bytes=weight_bytes + quant_bytes))
    return Profile(g.name, layers, plan, tuple(ests))


def target_json(est) -> dict:
    d = asdict(est)
    d.pop("layers", None)
    return d
