"""`tinystudio profile`: per-layer profile, memory plan, and latency, energy and fit on MCUs."""
from __future__ import annotations

from app.commands.common import fmt_int, model_json, open_model, print_json
from app.commands.inspect import inspect_report
from app.workflows.profile import profile_targets, schedule_args, schedule_lines


def cmd_profile(args) -> int:
    from engine.profile import profile_graph

    targets = profile_targets(args.mcu or [], args.runtime)
    kind, limit = schedule_args(args.schedule, args.max_mac_overhead)
    graph = open_model(args)
    prof = profile_graph(graph, targets, precision=args.precision, schedule=kind, max_mac_overhead=limit)
    if args.json:
        rep = inspect_report(graph)
        doc = prof.to_json()
        rep["precision"], rep["precision_requested"] = doc["precision"], doc["precision_requested"]
        rep["precision_note"] = doc["precision_note"]
        rep["totals"].update(doc["totals"])
        rep["layers"] = doc["layers"]
        rep["memory"] = doc["memory"]
        rep["schedule"] = doc["schedule"]
        rep["targets"] = doc["targets"]
        return print_json(rep)
    print_profile(graph, prof)
    return 0


def print_profile(graph, prof) -> None:
    m = model_json(graph)
    print(f"model  {m['name']}  ({m['format']})")
    print(f"precision  {prof.precision}: {prof.precision_note}")
    head = ["#", "layer", "op", "output shape", "MACs", "weights B", "output B", "live B"]
    head += [f"{t.mcu} ms" for t in prof.targets]
    rows = [head]
    per = [{le.name: le for le in t.layers} for t in prof.targets]
    for lp in prof.layers:
        r = lp.record
        rows.append([str(lp.step), r.name, r.op, "x".join(map(str, r.output_shape)), fmt_int(r.macs),
                     fmt_int(r.weight_bytes), fmt_int(r.output_bytes), fmt_int(lp.live_bytes)]
                    + [f"{p[r.name].latency_ms:.3f}" for p in per])
    widths = [min(max(len(row[c]) for row in rows), 32) for c in range(len(head))]
    for row in rows:
        print("  ".join(row[c][:32].ljust(widths[c]) if c < 4 else row[c].rjust(widths[c]) for c in range(len(row))))
    t = prof.totals()
    print(f"total  {t['layers']} layers  {fmt_int(t['macs'])} MACs  {fmt_int(t['params'])} params  "
          f"weights {fmt_int(t['weight_bytes'])} B + quantization data {fmt_int(t['quant_bytes'])} B")
    planners = ", ".join(f"{k} {fmt_int(v)}" for k, v in t["arena_by_planner"].items())
    bound = "layer-by-layer lower bound" if prof.plan.schedule.is_layer else "lower bound of this schedule"
    print(f"memory activation arena {fmt_int(t['activation_peak_bytes'])} B ({t['planner']}; {bound} "
          f"{fmt_int(t['activation_lower_bound_bytes'])} B; planners: {planners})")
    for line in schedule_lines(prof):
        print(line)
    if t["state_bytes"]:
        print(f"state  {fmt_int(t['state_bytes'])} B of variable tensors kept between invocations (persistent RAM, "
              "outside the arena)")
    for est in prof.targets:
        print(f"target {est.mcu} + {est.runtime} (estimate): {est.latency_ms:.2f} ms, {est.energy_uj:.0f} uJ, "
              f"RAM {fmt_int(est.ram_bytes)} B, flash {fmt_int(est.flash_bytes)} B: {est.fit_message()}")
    if not prof.targets:
        print("add --mcu ID (repeatable) for latency, energy and fit estimates; `tinystudio mcus` lists the MCUs")
