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
    if getattr(args, "training", None):
        return cmd_profile_training(args, graph)
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


def cmd_profile_training(args, graph) -> int:
    """`--training SPEC`: the training step's memory, flash and time (engine.ondevice)."""
    from app.workflows.ondevice import probe_rows, sparse_summary, training_reports

    prof, sparse = training_reports(graph, args.training, args.mcu or [], getattr(args, "data", None))
    if args.json:
        rep = inspect_report(graph)
        rep["training"] = prof.to_json()
        if sparse is not None:
            rep["training"]["sparse"] = sparse.to_json()
        return print_json(rep)
    m = model_json(graph)
    print(f"model  {m['name']}  training {args.training}: {prof.precision_note}")
    head = ["layer", "op", "updated", "kept B", "grad B", "dW B", "RAM weights B"]
    rows = [head] + [[lt.name, lt.op, f"{lt.channel_fraction:g}" if lt.updated else ("bias" if lt.bias_only else "-"),
                      fmt_int(lt.kept_bytes), fmt_int(lt.grad_bytes), fmt_int(lt.weight_grad_bytes),
                      fmt_int(lt.ram_weight_bytes)] for lt in prof.layers]
    rows += [[f"({name})", what, "-", "0", "0", "0", fmt_int(b)] for name, b, what in prof.fixed]
    widths = [min(max(len(r[c]) for r in rows), 32) for c in range(len(head))]
    for r in rows:
        print("  ".join(r[c][:32].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c]) for c in range(len(r))))
    print(f"peak training SRAM {fmt_int(prof.peak_sram_bytes)} B = arena {fmt_int(prof.arena_bytes)} B "
          f"({prof.planner}, forward + backward) + weights in RAM {fmt_int(prof.ram_weight_bytes)} B + optimizer "
          f"{fmt_int(prof.optimizer_bytes)} B + fixed {fmt_int(prof.fixed_bytes)} B (the exported C's logits, weight "
          f"row, conv scratch; dW applied as computed) (inference arena alone "
          f"{fmt_int(prof.inference_arena_bytes)} B)")
    print(f"flash  {fmt_int(prof.flash_bytes)} B of weights")
    for t in prof.targets:
        print(f"target {t['mcu']} (estimate): {t['step_ms']:.2f} ms/step (forward {t['forward_ms']:.2f}, backward "
              f"{t['backward_ms']:.2f}), {t['energy_uj']:.0f} uJ, flash {fmt_int(t['flash_bytes'])} B: "
              f"{'fits' if t['fits'] else 'does not fit'} ({fmt_int(t['sram_bytes'])} B SRAM, "
              f"{fmt_int(t['flash_capacity_bytes'])} B flash)")
    if sparse is not None:
        print("sparse-update probes (classifier + one layer; gain over the classifier alone, z = paired noise test):")
        for r in probe_rows(sparse):
            print(f"  {r['layer'][:24]:<24} {r['channels']:>5g}  gain {r['gain']:+.4f}  z {r['z']:+.2f}  extra "
                  f"{fmt_int(r['extra SRAM B']):>9} B  gain/KB {r['gain per KB']:+.5f}  {r['chosen'] and 'chosen'}")
        print(sparse_summary(sparse))
    return 0
