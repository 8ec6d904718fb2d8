"""`tinystudio inspect`, `run`, `profile`, `mcus`, `zoo` and `diff`: looking at a model."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from app.profile_targets import profile_targets
from engine.errors import TinyStudioError
from app.commands.common import fmt_int, load_array, load_tsgraph, model_json, open_model


def inspect_report(graph) -> dict:
    from engine.summary import layer_records, sum_records

    records = layer_records(graph)
    total = sum_records(records)
    return {
        "model": model_json(graph),
        "inputs": [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype}
                   for n in graph.inputs],
        "outputs": [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype}
                    for n in graph.outputs],
        "totals": {"macs": total.macs, "flops": total.flops, "params": total.params, "layers": len(records)},
        "layers": [r.to_json() for r in records],
    }


def print_inspect(rep: dict) -> None:
    m = rep["model"]
    print(f"model  {m['name']}  ({m['format']}{', ' + m['source'] if m['source'] and m['source'] != m['name'] else ''})")
    for io in rep["inputs"]:
        print(f"input  {io['name']}  {io['shape']}  {io['dtype']}")
    for io in rep["outputs"]:
        print(f"output {io['name']}  {io['shape']}  {io['dtype']}")
    rows = [("#", "layer", "op", "output shape", "MACs", "params")]
    for i, r in enumerate(rep["layers"]):
        rows.append((str(i), r["name"], r["op"], "x".join(map(str, r["output_shape"])) or "scalar",
                     fmt_int(r["macs"]), fmt_int(r["params"])))
    widths = [min(max(len(r[c]) for r in rows), 40) for c in range(len(rows[0]))]
    for r in rows:
        cells = [r[c][:40].ljust(widths[c]) if c < 4 else r[c].rjust(widths[c]) for c in range(len(r))]
        print("  ".join(cells))
    t = rep["totals"]
    print(f"total  {t['layers']} layers  {fmt_int(t['macs'])} MACs  {fmt_int(t['flops'])} FLOPs  {fmt_int(t['params'])} params")


def cmd_inspect(args) -> int:
    rep = inspect_report(open_model(args))
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print_inspect(rep)
    return 0


def cmd_run(args) -> int:
    from engine.execute import run_graph
    from engine.int8 import run_int8

    if args.dataset:
        return _run_sample(args)
    if not args.input:
        raise TinyStudioError("give --input X.npy (or --dataset NAME [--sample I] to try a data set sample)")
    graph = open_model(args)
    feeds: dict[str, np.ndarray] = {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        arr = load_array(path)
        if isinstance(arr, dict):
            feeds.update(arr)
        else:
            if not name:
                if len(graph.inputs) != 1:
                    raise TinyStudioError(f"the model has inputs {graph.inputs}; give --input NAME=FILE.npy for each")
                name = graph.inputs[0]
            feeds[name] = arr
    unknown = set(feeds) - set(graph.inputs)
    if unknown:
        raise TinyStudioError(f"unknown input(s) {sorted(unknown)}; the model's inputs are {graph.inputs}")
    for name in graph.inputs:
        t = graph.tensors[name]
        if name in feeds and t.quant is None and t.dtype == "float32":
            feeds[name] = feeds[name].astype(np.float32)
    quantized = any(t.quant is not None for t in graph.tensors.values())
    # Quantized graphs run the integer kernels (tflite-micro's bytes) unless --float asks for the float reference.
    integer = quantized and not args.float
    try:
        outs = run_int8(graph, feeds) if integer else run_graph(graph, feeds)
    except TinyStudioError as e:
        raise TinyStudioError(f"{e}; --float runs the float reference instead" if integer else str(e)) from None
    mode = "int8" if integer else ("float-dequantized" if quantized else "float")
    if args.output:
        if args.output.endswith(".npz"):
            np.savez(args.output, **outs)
        else:
            if len(outs) != 1:
                raise TinyStudioError(f"the model has {len(outs)} outputs; use an .npz file for --output")
            np.save(args.output, next(iter(outs.values())))
    if args.json:
        print(json.dumps({"model": model_json(graph), "mode": mode,
                          "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": v.tolist()}
                                      for k, v in outs.items()}}))
        return 0
    if integer:
        print("note: quantized model run with the int8 reference kernels (bit-exact to tflite-micro); "
              "--float runs the float reference on dequantized values", file=sys.stderr)
    elif quantized:
        print("note: quantized model run with the float reference on dequantized values (--float)", file=sys.stderr)
    for k, v in outs.items():
        flat = v.reshape(-1)
        head = ", ".join(f"{x:.6g}" for x in flat[:10]) + (", ..." if flat.size > 10 else "")
        extra = f"  argmax {int(np.argmax(v))}" if v.ndim <= 2 and v.size > 1 else ""
        print(f"{k} {list(v.shape)} {v.dtype}: [{head}]{extra}")
    if args.output:
        print(f"saved {args.output}")
    return 0


def _run_sample(args) -> int:
    """`run MODEL --dataset NAME [--sample I]`: the Train page's "Try it" on the command line."""
    from engine.data import load_dataset
    from engine.tryit import dataset_sample, try_input

    if args.input:
        raise TinyStudioError("give either --input or --dataset, not both")
    graph = load_tsgraph(args.model) if args.model.lower().endswith(".tsgraph") else open_model(args)
    data = load_dataset(args.dataset)
    x, label, index = dataset_sample(data, args.sample, seed=None if args.sample is None else 0)
    res = try_input(graph, x, data.class_names, label)
    if args.json:
        print(json.dumps({"model": model_json(graph), "dataset": data.name, "sample": index, **res}))
        return 0
    print(f"sample   {index} of {len(data.x_val)} ({data.name}, validation split), true class {res['label_class']}")
    for m in res["modes"]:
        top = ", ".join(f"{t['class']} {t['score']:.1%}" for t in m["top"][:3])
        print(f"{m['mode']:<8} predicts {m['class']} ({top})")
    return 0


def cmd_profile(args) -> int:
    from engine.profile import profile_graph

    targets = profile_targets(args.mcu or [], args.runtime)
    graph = open_model(args)
    prof = profile_graph(graph, targets, precision=args.precision)
    if args.json:
        rep = inspect_report(graph)
        doc = prof.to_json()
        rep["precision"], rep["precision_requested"] = doc["precision"], doc["precision_requested"]
        rep["precision_note"] = doc["precision_note"]
        rep["totals"].update(doc["totals"])
        rep["layers"] = doc["layers"]
        rep["memory"] = doc["memory"]
        rep["targets"] = doc["targets"]
        print(json.dumps(rep, indent=1))
        return 0
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
    print(f"memory activation arena {fmt_int(t['activation_peak_bytes'])} B ({t['planner']}; layer-by-layer lower bound "
          f"{fmt_int(t['activation_lower_bound_bytes'])} B; planners: {planners})")
    for est in prof.targets:
        print(f"target {est.mcu} + {est.runtime} (estimate): {est.latency_ms:.2f} ms, {est.energy_uj:.0f} uJ, "
              f"RAM {fmt_int(est.ram_bytes)} B, flash {fmt_int(est.flash_bytes)} B: {est.fit_message()}")
    if not prof.targets:
        print("add --mcu ID (repeatable) for latency, energy and fit estimates; `tinystudio mcus` lists the MCUs")


def cmd_mcus(args) -> int:
    from hwmodels.mcu import load_mcus
    from hwmodels.runtime import load_runtimes

    mcus = load_mcus()
    runtimes = load_runtimes()
    if args.json:
        print(json.dumps({"mcus": [m.to_json() for m in mcus.values()],
                          "runtimes": [{"id": r.id, "name": r.name, "description": r.description,
                                        "cores": list(r.core_families)} for r in runtimes.values()]}, indent=1))
        return 0
    rows = [("id", "name", "core", "MHz", "SRAM KB", "flash KB", "FPU", "SIMD/DSP", "mW")]
    for m in mcus.values():
        rows.append((m.id, m.name, m.core, f"{m.clock_mhz:g}", f"{m.sram_kb:g}",
                     f"{m.flash_kb:g}{' ext' if m.flash_external else ''}", m.fpu,
                     m.simd if m.simd != "none" else ("dsp" if m.dsp else "-"), f"{m.active_power_mw:.0f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c]) for c in range(len(r))))
    print("runtimes: " + ", ".join(runtimes))
    return 0


def cmd_zoo(args) -> int:
    from engine.zoo import list_zoo

    entries = list_zoo()
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    for e in entries:
        print(f"zoo:{e['name']:<14} {e['description']}")
        params = "  ".join(f"{p['name']}={p['default']}" for p in e["params"])
        if params:
            print(f"    {params}")
    return 0


def cmd_diff(args) -> int:
    """What changed from MODEL to OTHER, in the words the studio's History uses (engine.diff)."""
    from engine.diff import graph_changes

    a = open_model(args)
    b = open_model(argparse.Namespace(**{**vars(args), "model": args.other}))
    changes = graph_changes(a, b)
    if args.json:
        print(json.dumps({"a": args.model, "b": args.other, "changes": changes}, indent=1))
    else:
        print("\n".join(changes) if changes else "no change to the graph")
    return 0
