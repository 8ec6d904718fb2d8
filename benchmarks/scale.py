"""Time per stage on very wide and very deep graphs: N parallel branches into one Concat, and long chains.

Stages: import (ONNX bytes -> IR with shape inference), profile (memory plan + estimates on one MCU), save (a
new session in a fresh store: validation, metrics, serialization, hashes, the DuckDB write), export to ONNX,
and session file export + import. Target (issue 10): import + profile + save of a 4,000-branch graph and a
20,000-node graph each under 5 s.

Run: PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py [--quick]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.exporters.onnx_export import to_onnx  # noqa: E402
from engine.importers.onnx_import import load_onnx  # noqa: E402
from engine.profile import profile_graph  # noqa: E402
from store.archive import export_session_bytes, import_session_bytes  # noqa: E402
from store.db import open_store  # noqa: E402
from store.sessions import create_session  # noqa: E402

TARGET_S = 5.0


def _model(nodes, inits, x_shape, out, out_shape) -> bytes:
    g = helper.make_graph(nodes, "scale", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10).SerializeToString()


def wide_model(branches: int) -> bytes:
    """X (1, 8) -> branch i: Mul by its own constant, Relu -> one Concat of every branch: 2N + 1 nodes."""
    nodes, inits, outs = [], [], []
    for i in range(branches):
        inits.append(numpy_helper.from_array(np.full((1, 8), 0.5 + i % 7, np.float32), f"S{i}"))
        nodes += [helper.make_node("Mul", ["X", f"S{i}"], [f"m{i}"], name=f"mul{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}")]
        outs.append(f"r{i}")
    nodes.append(helper.make_node("Concat", outs, ["Y"], name="concat", axis=1))
    return _model(nodes, inits, [1, 8], "Y", [1, 8 * branches])


def chain_model(n_nodes: int) -> bytes:
    """A residual chain of n_nodes nodes: (Mul by a constant, Relu, Add the block input, Neg) repeated."""
    nodes, inits, x = [], [], "X"
    for i in range(n_nodes // 4):
        inits.append(numpy_helper.from_array(np.full((1, 8), 0.5, np.float32), f"S{i}"))
        nodes += [helper.make_node("Mul", [x, f"S{i}"], [f"c{i}"], name=f"mul{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
                  helper.make_node("Add", [x, f"r{i}"], [f"a{i}"], name=f"add{i}"),
                  helper.make_node("Neg", [f"a{i}"], [f"n{i}"], name=f"neg{i}")]
        x = f"n{i}"
    return _model(nodes, inits, [1, 8], x, [1, 8])


def stages(label: str, data: bytes, folder: str) -> tuple[dict[str, float], float]:
    """Wall seconds per stage, and the CPU seconds of import + profile + save (steadier on a busy machine)."""
    t = {}
    c0 = time.process_time()
    s = time.perf_counter()
    graph = load_onnx(f"{label}.onnx", data=data)
    t["import"] = time.perf_counter() - s
    s = time.perf_counter()
    profile_graph(graph, [("stm32f746ng", "tflm-cmsis-nn")])
    t["profile"] = time.perf_counter() - s
    store = open_store(os.path.join(folder, f"{label}.duckdb"))
    try:
        s = time.perf_counter()
        info = create_session(store, label, graph)
        t["save"] = time.perf_counter() - s
        cpu = time.process_time() - c0
        s = time.perf_counter()
        to_onnx(graph)
        t["onnx export"] = time.perf_counter() - s
        s = time.perf_counter()
        blob = export_session_bytes(store, info.id)
        import_session_bytes(store, blob)
        t["session file out+in"] = time.perf_counter() - s
    finally:
        store.close()
    t["import+profile+save"] = t["import"] + t["profile"] + t["save"]
    return t, cpu


def main() -> None:
    quick = "--quick" in sys.argv
    cases = [(f"{n:,} branches", wide_model(n)) for n in ((1000, 2000) if quick else (1000, 2000, 4000))]
    cases += [(f"{n:,}-node chain", chain_model(n)) for n in ((5000,) if quick else (5000, 20000))]
    cols = ("import", "profile", "save", "onnx export", "session file out+in", "import+profile+save")
    print(f"{'graph':<18} " + " ".join(f"{c:>14}" for c in cols) + f" {'(CPU s)':>8}  wall seconds; target "
          f"import+profile+save < {TARGET_S} s")
    with tempfile.TemporaryDirectory() as folder:
        for label, data in cases:
            t, cpu = stages(label.split()[0].replace(",", "") + "_" + label.split()[1].split("-")[0], data, folder)
            mark = "ok" if t["import+profile+save"] < TARGET_S else "OVER TARGET"
            print(f"{label:<18} " + " ".join(f"{t[c]:>14.3f}" for c in cols) + f" {cpu:>8.3f}  {mark}", flush=True)


if __name__ == "__main__":
    main()
