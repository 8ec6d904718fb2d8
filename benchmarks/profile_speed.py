"""Profiling speed: MobileNetV2 1.0 @224 on 3 MCUs (target < 100 ms), MobileNetV2 0.35 @144 as deployed (int8:
the export's quantization on the first call, target < 3 s; cached afterwards, < 100 ms) and a 1,000-node graph
(target < 1 s).

Profiling = per-layer records + memory plan (order search, all planners) + estimates per target.
Run: .venv/bin/python benchmarks/profile_speed.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.import_speed import best_of, chain_model  # noqa: E402
from engine.importers.onnx_import import load_onnx  # noqa: E402
from engine.profile import profile_graph  # noqa: E402
from engine.zoo import build_zoo_model  # noqa: E402

TARGETS = [("stm32h743zi", "tflm-cmsis-nn"), ("nrf5340", "tflm-cmsis-nn"), ("esp32s3", "esp-nn")]


def main() -> None:
    rows = []
    mnv2 = build_zoo_model("zoo:mobilenetv2")
    rows.append(("MobileNetV2 1.0 @224, 3 MCUs", len(mnv2.nodes), best_of(lambda: profile_graph(mnv2, TARGETS)), 0.1))
    # As deployed: the export's PTQ (BN folded, fused, int8) once per graph, then cached by content hash.
    small = build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=144")
    t0 = time.perf_counter()
    profile_graph(small, TARGETS, precision="int8")
    rows.append(("MobileNetV2 0.35 @144 int8, first", len(small.nodes), time.perf_counter() - t0, 3.0))
    rows.append(("MobileNetV2 0.35 @144 int8, cached", len(small.nodes),
                 best_of(lambda: profile_graph(small, TARGETS, precision="int8")), 0.1))
    chain = load_onnx("chain.onnx", data=chain_model(1000))
    rows.append(("1,000-node graph, 3 MCUs", len(chain.nodes), best_of(lambda: profile_graph(chain, TARGETS), 3), 1.0))
    print(f"{'graph':<34} {'nodes':>6} {'profile s':>10} {'target s':>9} {'ratio':>6}")
    for name, n, t, target in rows:
        print(f"{name:<34} {n:>6} {t:>10.4f} {target:>9} {t / target:>6.2f}")


if __name__ == "__main__":
    main()
