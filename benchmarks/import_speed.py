"""Import + shape inference time: MobileNetV2 1.0 @224 (ONNX), a 1,000-node ONNX graph, the MLPerf TFLite files.

Targets (issue: model core): MobileNetV2 < 0.5 s and 1,000 nodes < 2 s on one core. Prints best of N runs and
the ratio to the target. Run: .venv/bin/python benchmarks/import_speed.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import sys
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.exporters.onnx_export import to_onnx  # noqa: E402
from engine.importers.onnx_import import load_onnx  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from engine.zoo import build_zoo_model  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"


def best_of(fn, n=5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def chain_model(n_nodes: int = 1000) -> bytes:
    """A residual chain of exactly n_nodes nodes: (Conv 1x1, Relu, Add, Mul) repeated."""
    r = np.random.default_rng(0)
    nodes, inits, x = [], [], "X"
    for i in range(n_nodes // 4):
        inits.append(numpy_helper.from_array(r.normal(size=(16, 16, 1, 1)).astype(np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(np.float32(0.5).reshape(1), f"S{i}"))
        nodes += [helper.make_node("Conv", [x, f"W{i}"], [f"c{i}"], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
                  helper.make_node("Add", [x, f"r{i}"], [f"a{i}"], name=f"add{i}"),
                  helper.make_node("Mul", [f"a{i}", f"S{i}"], [f"m{i}"], name=f"mul{i}")]
        x = f"m{i}"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 16, 8, 8])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 16, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10).SerializeToString()


def main() -> None:
    rows = []
    mnv2 = to_onnx(build_zoo_model("zoo:mobilenetv2")).SerializeToString()
    t = best_of(lambda: load_onnx("mobilenetv2.onnx", data=mnv2))
    rows.append(("MobileNetV2 1.0 @224 (ONNX)", len(load_onnx("m.onnx", data=mnv2).nodes), t, 0.5))
    chain = chain_model(1000)
    t = best_of(lambda: load_onnx("chain.onnx", data=chain), n=3)
    rows.append(("1,000-node graph (ONNX)", len(load_onnx("c.onnx", data=chain).nodes), t, 2.0))
    for f in sorted(MLPERF.glob("*.tflite")):
        data = f.read_bytes()
        t = best_of(lambda: load_tflite(str(f), data=data))
        rows.append((f"{f.name} (TFLite)", len(load_tflite(str(f), data=data).nodes), t, None))
    print(f"{'model':<40} {'nodes':>6} {'import+shapes s':>16} {'target s':>9} {'ratio':>6}")
    for name, n, t, target in rows:
        ratio = f"{t / target:.2f}" if target else "-"
        print(f"{name:<40} {n:>6} {t:>16.4f} {target if target else '-':>9} {ratio:>6}")


if __name__ == "__main__":
    main()
