"""The profile of a graph: per-layer costs, the memory plan, and estimates on target MCUs.

    prof = profile_graph(graph, targets=[("stm32f746ng", "tflm-cmsis-nn")])
    prof.layers[i].live_bytes, prof.plan.arena_bytes, prof.targets[0].latency_ms
    prof.to_json()   # the `tinystudio profile --json` document
    prof = profile_graph(float_graph, targets, precision="int8")   # as deployed: BN folded, fused, int8

Per-layer records come from engine.summary, the arena from engine.memory (the planner the C export uses),
latency/energy/fit from hwmodels. Totals are sums of the per-layer records. `precision` ("as-is", "int8",
"float32") profiles the graph engine.deployed makes of it; `prof.precision` says what was profiled.

    prof = profile_graph(g, targets, precision="int8", schedule="auto", max_mac_overhead=0.10)
    prof.schedule.to_dict(), prof.totals()["mac_overhead"], prof.plan.layer_lower_bound_bytes

`schedule` (engine.memory.schedule: a kind, "auto", or a Schedule object such as one stored with a version)
says how the layers run: the arena is that schedule's plan, MACs count the recomputed ones, and latency is
estimated on the MACs actually executed (a part's recomputed MACs shared over its layers by their MACs).
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.ir import Graph
from engine.memory import MemoryPlan, plan_memory
from engine.memory.schedule import DEFAULT_MAX_MAC_OVERHEAD, LAYER, Schedule
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
    precision: str = "float32"  # what was profiled: "int8" | "float32"
    precision_requested: str = "as-is"
    precision_note: str = ""  # what the profiled graph is (as deployed, dequantized, as the version is)
    max_mac_overhead: float = DEFAULT_MAX_MAC_OVERHEAD

    @property
    def schedule(self) -> Schedule:
        return self.plan.schedule

    @property
    def base_macs(self) -> int:
        return sum(lp.record.macs for lp in self.layers)

    @property
    def mac_overhead(self) -> float:
        base = self.base_macs
        return self.plan.macs_extra / base if base else 0.0

    def schedule_json(self) -> dict:
        """What ran and why: kind, split layer, grid, fused blocks, in-place nodes, and the before/after."""
        p = self.plan
        d = p.schedule.to_dict()
        d.setdefault("why", p.schedule.why or "layer by layer")
        d.update({"max_mac_overhead": self.max_mac_overhead, "macs_extra": p.macs_extra,
                  "mac_overhead": round(self.mac_overhead, 6), "arena_bytes": p.arena_bytes,
                  "layer_lower_bound_bytes": p.layer_lower_bound_bytes,
                  "detail": {str(k): v for k, v in sorted(p.schedule_detail.items())}})
        if p.schedule.patch is not None and p.schedule.patch.overlap:
            from engine.memory.patch_overlap import overlap_summary

            d["overlap"] = overlap_summary(p.buffers)   # the split output over the consumed stage input
        for k in ("candidates", "layer_arena_bytes"):
            if k in p.schedule.extra:
                d[k] = p.schedule.extra[k]
        return d

    @property
    def weight_bytes(self) -> int:
        return sum(lp.record.weight_bytes for lp in self.layers)

    @property
    def quant_bytes(self) -> int:
        return sum(lp.record.quant_bytes for lp in self.layers)

    @property
    def state_bytes(self) -> int:
        """Variable tensors (SVDF/LSTM state): persistent RAM outside the arena, kept between invocations."""
        return sum(lp.record.state_bytes for lp in self.layers)

    @property
    def state_ops(self) -> list[str]:
        """The ops that keep that state (LSTM, SVDF ...), for saying where it comes from."""
        return sorted({lp.record.op for lp in self.layers if lp.record.state_bytes})

    def to_json(self) -> dict:
        """Fields of `inspect` plus memory and targets; per-layer estimates sit under each layer."""
        per_layer = [{le.name: le for le in t.layers} for t in self.targets]
        layers = []
        for lp in self.layers:
            d = lp.to_json()
            d["estimates"] = [{"mcu": t.mcu, "runtime": t.runtime, **_layer_est(est[lp.record.name])}
                              for t, est in zip(self.targets, per_layer)]
            layers.append(d)
        return {"precision": self.precision, "precision_requested": self.precision_requested,
                "precision_note": self.precision_note, "totals": self.totals(), "layers": layers,
                "memory": self.memory_json(), "schedule": self.schedule_json(),
                "targets": [t.to_json(layers=False) for t in self.targets]}

    def memory_json(self) -> dict:
        p = self.plan
        return {"arena_bytes": p.arena_bytes, "lower_bound_bytes": p.lower_bound_bytes, "planner": p.planner,
                "arena_by_planner": dict(p.arena_by_planner), "optimal": p.optimal, "order": list(p.order),
                "peak_step": p.peak_step, "inplace_nodes": list(p.inplace_nodes), "alignment": p.alignment,
                "buffers": [{"tensors": list(b.tensors), "offset": o, "size": b.size}
                            for b, o in zip(p.buffers, p.offsets)]}

    def totals(self) -> dict:
        recs = [lp.record for lp in self.layers]
        return {
            "macs": sum(r.macs for r in recs) + self.plan.macs_extra,  # as executed: recomputed MACs included
            "macs_extra": self.plan.macs_extra,
            "mac_overhead": round(self.mac_overhead, 6),
            "schedule": self.plan.schedule.kind,
            "flops": sum(r.flops for r in recs),
            "params": sum(r.params for r in recs),
            "layers": len(recs),
            "weight_bytes": self.weight_bytes,
            "quant_bytes": self.quant_bytes,
            "state_bytes": self.state_bytes,
            "activation_peak_bytes": self.plan.arena_bytes,
            "activation_lower_bound_bytes": self.plan.lower_bound_bytes,
            "layer_lower_bound_bytes": self.plan.layer_lower_bound_bytes,
            "planner": self.plan.planner,
            "arena_by_planner": dict(self.plan.arena_by_planner),
        }


def profile_graph(graph: Graph, targets: list[tuple[str, str]] | tuple = (), bytes_per_element: int | None = None,
                  mcu_dirs: list[str] | None = None, precision: str = "as-is",
                  schedule: str | Schedule = "layer", max_mac_overhead: float = DEFAULT_MAX_MAC_OVERHEAD) -> Profile:
    """Profile `graph`; `targets` are (mcu id, runtime id) pairs, resolved through hwmodels. `precision`:
    "as-is" (the graph as given), "int8" (as deployed: the graph the export generates C from) or "float32"
    (a float graph as is, an int8 one dequantized); see engine.deployed. `schedule`: a kind or "auto"
    (engine.memory.auto.choose_schedule, per the smallest SRAM of `targets`), or a Schedule to plan as is."""
    from engine.deployed import check_precision, graph_at_precision, precision_of

    check_precision(precision)
    resolved = []
    if targets:
        from hwmodels.mcu import get_mcu
        from hwmodels.runtime import get_runtime

        # Resolve every id first so a typo fails before any work is done (quantizing included).
        resolved = [(get_mcu(m, mcu_dirs), get_runtime(r)) for m, r in targets]
    graph, note = graph_at_precision(graph, precision)
    g = infer_shapes(graph) if not all(t in graph.tensors for n in graph.nodes for t in n.outputs) else graph
    sched = _resolve_schedule(g, schedule, max_mac_overhead, resolved)
    plan = plan_memory(g, bytes_per_element=bytes_per_element, schedule=sched)
    by_name = {r.name: r for r in layer_records(g)}
    step_of = {name: i for i, name in enumerate(plan.order)}
    layers = tuple(LayerProfile(by_name[name], step_of[name], plan.live_bytes[step_of[name]]) for name in plan.order)
    ests = []
    if resolved:
        from hwmodels.estimate import estimate_target, layer_work

        work = executed_work(layer_work(g), plan)
        flash_data = sum(r.weight_bytes + r.quant_bytes for r in by_name.values())
        for mcu, rt in resolved:
            # Graph inputs and outputs live inside the planned arena, so no separate I/O buffers are added.
            ests.append(estimate_target(g, mcu, rt, arena_bytes=plan.arena_bytes, weight_bytes=flash_data,
                                        work=work))
    return Profile(g.name, layers, plan, tuple(ests), precision_of(g), precision, note, float(max_mac_overhead))


def _resolve_schedule(g: Graph, schedule, max_mac_overhead, resolved) -> Schedule:
    from engine.memory.auto import check_overhead, choose_schedule

    check_overhead(max_mac_overhead)
    if isinstance(schedule, Schedule):
        return schedule
    if schedule in (None, "layer"):
        return LAYER
    mcu = min((m for m, _ in resolved), key=lambda m: m.sram_bytes, default=None)
    return choose_schedule(g, schedule, max_mac_overhead, sram_bytes=mcu.sram_bytes if mcu else None,
                           mcu=mcu.id if mcu else "")


def executed_work(work: list, plan: MemoryPlan) -> list:
    """The layers' work with the schedule's recomputed MACs added to the layers that recompute them (a part's
    extra MACs shared over its nodes by their MACs), so latency is estimated on the MACs actually executed."""
    import dataclasses

    s = plan.schedule
    if s.is_layer or not plan.macs_extra:
        return work
    nodes = s.scheduled_nodes() - set(s.inplace)  # in-place depthwise recomputes nothing
    macs = sum(w.macs for w in work if w.name in nodes)
    if not macs:
        return work
    out, left = [], plan.macs_extra
    last = max((i for i, w in enumerate(work) if w.name in nodes and w.macs), default=-1)
    for i, w in enumerate(work):
        if w.name in nodes and w.macs:
            add = left if i == last else plan.macs_extra * w.macs // macs
            left -= add
            w = dataclasses.replace(w, macs=w.macs + add)
        out.append(w)
    return out


def _layer_est(le) -> dict:
    d = le.to_json()
    return {k: d[k] for k in ("cycles", "latency_ms", "energy_uj", "share", "scratch_bytes")}
