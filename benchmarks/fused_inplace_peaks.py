"""Peak activation memory of the in-place depthwise and fused-block schedules against layer by layer.

    PYTHONPATH=. python benchmarks/fused_inplace_peaks.py [--mnv2 mobilenetv2] [--no-mnv2]

For each model: the layer-by-layer lower bound (the table plan_memory places), the lower bound and the arena
(greedy_by_size / best_fit, the smaller) of the rewritten tables: in-place alone, fused alone, both; the MACs,
the schedules' extra MACs (0: rolling halo rows) and what recomputing the halos instead would cost. In-place
runs on the depthwise convs the peak needs (engine.memory.inplace.inplace_needed).
MobileNetV2 1.0 @224 is PTQ'd to int8 with synthetic calibration (enough for memory figures).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from engine.codegen.layers import layer_macs
from engine.memory.fused import fused_candidates, fused_rewrite, halo_extra_macs, layer_table
from engine.memory.inplace import inplace_candidates, inplace_needed, inplace_rewrite
from engine.memory.lifetimes import lower_bound
from engine.memory.planners import BestFit, GreedyBySize, arena_size

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MLPERF = {"VWW": "vww_96_int8.tflite", "KWS": "kws_ref_model.tflite", "IC": "pretrainedResnet_quant.tflite"}


def arena(bufs) -> int:
    return min(arena_size(bufs, p.plan(bufs)) for p in (GreedyBySize(), BestFit()))


def row(name: str, g) -> dict:
    order, bufs = layer_table(g)
    ip_nodes = inplace_candidates(g)
    blocks = fused_candidates(g, 0.10)
    used = {n for b in blocks for n in b.nodes}
    ip_nodes = inplace_needed(g, ip_nodes, bufs, order)
    ip = inplace_rewrite(g, tuple(ip_nodes), bufs, order, 16).buffers
    fu = fused_rewrite(g, tuple(blocks), bufs, order, 16).buffers
    both_nodes = inplace_needed(g, [n for n in inplace_candidates(g) if n not in used], fu, order)
    both = inplace_rewrite(g, tuple(both_nodes), fu, order, 16).buffers
    macs = sum(layer_macs(g, n) for n in g.nodes)
    halo = sum(halo_extra_macs(g, b) for b in blocks)
    return {"model": name, "layer": lower_bound(bufs), "layer_arena": arena(list(bufs)),
            "inplace": lower_bound(ip), "inplace_arena": arena(list(ip)), "fused": lower_bound(fu),
            "fused_arena": arena(list(fu)), "both": lower_bound(both), "both_arena": arena(list(both)),
            "macs": macs, "halo_macs": halo, "n_inplace": len(ip_nodes), "n_both_inplace": len(both_nodes), "n_fused": len(blocks),
            "bands": [b.band_rows for b in blocks]}


def mobilenetv2(spec: str):
    from engine.passes.layout import to_nhwc
    from engine.passes.ptq import quantize_model
    from engine.zoo import build_zoo_model
    from engine.codegen.float_edges import split_float_edges
    qg, _ = quantize_model(build_zoo_model(spec), synthetic_samples=2)
    return split_float_edges(to_nhwc(qg)[0])[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnv2", default="mobilenetv2", help="zoo spec of the MobileNetV2 row")
    ap.add_argument("--no-mnv2", action="store_true")
    a = ap.parse_args()
    from engine.importers.tflite_import import load_tflite
    rows = [row(k, load_tflite(str(DATA / f))) for k, f in MLPERF.items() if (DATA / f).exists()]
    if not a.no_mnv2:
        rows.append(row(f"MobileNetV2 ({a.mnv2})", mobilenetv2(a.mnv2)))
    print("| model | layer LB | in-place LB (arena) | fused LB (arena) | both LB (arena) | best x | MACs | extra MACs "
          "| halo recompute instead |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        best = min(r["inplace"], r["fused"], r["both"])
        print(f"| {r['model']} | {r['layer']:,} | {r['inplace']:,} ({r['inplace_arena']:,}) | {r['fused']:,} "
              f"({r['fused_arena']:,}) | {r['both']:,} ({r['both_arena']:,}) | {r['layer'] / best:.2f} | "
              f"{r['macs']:,} | 0 | +{r['halo_macs']:,} ({100 * r['halo_macs'] / r['macs']:.1f} %) |")
    for r in rows:
        print(f"{r['model']}: {r['n_inplace']} in-place nodes the peak needs ({r['n_both_inplace']} with the fused "
              f"blocks), {r['n_fused']} fused blocks, band rows {r['bands']}")


if __name__ == "__main__":
    main()
