"""On-device training figures (issue 16): training-step memory of a VWW-class model against full backprop
(PyTorch, measured, and our planner), its sparse update under 256 KB on an STM32F746NG, and a POET energy/time
vs budget curve. Sparse vs full fine-tuning accuracy: benchmarks/ondevice_accuracy.py.

    PYTHONPATH=. .venv/bin/python benchmarks/ondevice_table.py [--quick]
"""
from __future__ import annotations

import argparse
import time

from engine.data import load_dataset
from engine.ondevice import parse_spec, resolve
from engine.ondevice.memory import training_profile
from engine.ondevice.poet import poet_curve, poet_plan, verify_poet
from engine.ondevice.sparse import plan_sparse
from engine.ondevice.torchref import torch_step_memory
from engine.zoo import build_zoo_model

MCU = "stm32f746ng"
VWW = "zoo:vww_mobilenetv1?channels=1&classes=4"   # MobileNetV1-0.25 @96x96 (the MLPerf Tiny VWW model), 1 channel


def memory_table(g, specs) -> None:
    ref = torch_step_memory(g)
    print(f"PyTorch full backprop (float32, batch 1, measured): saved activations {ref['saved_bytes']:,} B + weights "
          f"{ref['param_bytes']:,} B + gradients {ref['grad_bytes']:,} B = {ref['total_bytes']:,} B")
    print(f"{'spec':>12} {'weights':>8} {'peak SRAM B':>12} {'flash B':>10} {'step ms':>9} {'fits F746':>9} "
          f"{'vs PyTorch':>10}")
    for spec, w in specs:
        p = training_profile(g, resolve(g, parse_spec(spec)), MCU, weights=w)
        t = p.targets[0]
        print(f"{spec:>12} {w:>8} {p.peak_sram_bytes:>12,} {t['flash_bytes']:>10,} {t['step_ms']:>9.1f} "
              f"{str(t['fits']):>9} {ref['total_bytes'] / p.peak_sram_bytes:>9.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer probe steps")
    a = ap.parse_args()
    steps = 5 if a.quick else 20
    t0 = time.time()
    vww = build_zoo_model(VWW)
    print(f"== {VWW} on {MCU} (320 KB SRAM, 1 MB flash; budget 256 KB)")
    memory_table(vww, [("all", "float32"), ("last:1", "float32"), ("last:3", "float32"), ("last:3", "int8")])
    shapes = load_dataset("synthetic-shapes", resize=96)
    r = plan_sparse(vww, 256 * 1024, shapes, steps=steps, candidates=3, fractions=(0.125, 0.5), weights="int8")
    p = training_profile(vww, r.plan, MCU)  # what the exported C uses (float32 copies of the trained channels)
    t = p.targets[0]
    print(f"sparse:256K (probes int8 with QAS on synthetic-shapes @96; RAM as exported): {r.plan.to_json()}")
    print(f"  peak SRAM {p.peak_sram_bytes:,} B, flash {t['flash_bytes']:,} B, fits 256 KB + 1 MB: "
          f"{p.peak_sram_bytes <= 256 * 1024 and t['flash_bytes'] <= 1024 * 1024}; {t['step_ms']:.1f} ms/step; "
          f"predicted accuracy {r.predicted_accuracy:.3f} (classifier alone {r.baseline_accuracy:.3f})")

    kws = build_zoo_model("zoo:kws_dscnn")
    print("\n(sparse vs full fine-tuning accuracy on new keywords: benchmarks/ondevice_accuracy.py)")

    print("\n== POET: zoo:kws_dscnn, all layers, energy-minimal plan per budget on", MCU)
    prof = training_profile(kws, resolve(kws, parse_spec("all")), MCU)
    budgets = [int(prof.peak_sram_bytes * f) for f in (0.75, 0.8, 0.85, 0.9, 0.95, 1.0)]
    for row in poet_curve(prof, budgets, "energy"):
        print("  ", row)
    pl = poet_plan(prof, budgets[1], "energy")
    print("  replay of the", budgets[1], "B plan in the reference:", verify_poet(kws, prof, pl) if pl.feasible else "-")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
