"""`tinystudio inspect`: the graph's layers, shapes, MACs and parameters."""
from __future__ import annotations

import json

from app.commands.common import fmt_int, model_json, open_model


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
