"""Speed of the int8 reference executor (numpy, bit-exact to tflite-micro): prepare + 100 inferences of each
MLPerf Tiny model on random int8 inputs (target: VWW under 30 s on one core of this 2-core machine).

Run: .venv/bin/python benchmarks/int8_speed.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.importers.tflite_import import load_tflite  # noqa: E402
from engine.int8 import prepare_int8  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}


def main(n: int = 100) -> None:
    rng = np.random.default_rng(9)
    print(f"{'model':<6}{'prepare + ' + str(n) + ' inferences':>28}{'per inference':>16}")
    for name, file in MODELS.items():
        g = load_tflite(str(DATA / file))
        xs = [rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8) for _ in range(n)]
        t0 = time.perf_counter()
        plan = prepare_int8(g)
        for x in xs:
            plan.run({g.inputs[0]: x})
        took = time.perf_counter() - t0
        print(f"{name:<6}{took:>26.2f} s{1000 * took / n:>13.1f} ms")


if __name__ == "__main__":
    main()
