"""What an action buys and costs, measured on a graph: MACs, weight bytes, peak SRAM, accuracy.

    m = measure(graph, data)     # {"macs", "params", "weight_bytes", "activation_peak_bytes",
                                 #  "activation_peak_bytes_int8", "accuracy", "accuracy_split"}

MACs and weight bytes come from the profiler's per-layer records (engine.summary), peak SRAM is the
activation arena of the memory planner the C export uses (engine.memory), as stored: a float graph's
arena is float32; `activation_peak_bytes_int8` is the same plan with one byte per element, what the
graph needs once quantized, so float and int8 versions can be compared. Accuracy is engine.train.evaluate
on the data set's validation split (None without data).

Also the small inference helpers actions share: `predict` runs a float or int8 graph on a batch of samples,
one at a time (graphs have a fixed batch of 1), and returns every output as float values.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import is_quantized_graph
from engine.execute import run_graph
from engine.ir import Graph
from engine.memory import plan_memory
from engine.profile import profile_graph
from engine.validate import infer_shapes


def cost_figures(graph: Graph) -> dict:
    g = infer_shapes(graph)
    tot = profile_graph(g).totals()
    return {"macs": int(tot["macs"]), "params": int(tot["params"]), "weight_bytes": int(tot["weight_bytes"]),
            "activation_peak_bytes": int(tot["activation_peak_bytes"]),
            "activation_peak_bytes_int8": int(plan_memory(g, bytes_per_element=1).arena_bytes)}


def accuracy(graph: Graph, data) -> float | None:
    if data is None:
        return None
    from engine.train import evaluate
    res = evaluate(graph, data, split="val")
    return None if res.get("accuracy") is None else float(res["accuracy"])


def measure(graph: Graph, data=None) -> dict:
    m = cost_figures(graph)
    m["accuracy"] = accuracy(graph, data)
    m["accuracy_split"] = "val" if data is not None else None
    return m


# ---- inference on samples ---------------------------------------------------------------------------

def predict(graph: Graph, x: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Every sample of `x` (n, *input shape without batch) through `graph` -> {output: (n, ...) float array}.
    An int8 graph runs on the integer executor with its inputs quantized and outputs dequantized."""
    name = graph.inputs[0]
    outs = outputs or list(graph.outputs)
    rows: dict[str, list[np.ndarray]] = {o: [] for o in outs}
    if is_quantized_graph(graph):
        from engine.int8 import prepare_int8
        from engine.passes.ptq import dequantize_outputs, quantize_inputs
        plan = prepare_int8(graph)
        for s in x:
            q = quantize_inputs(graph, {name: np.asarray(s, np.float32)[None]})
            y = dequantize_outputs(graph, plan.run(q, outputs=outs))
            for o in outs:
                rows[o].append(np.asarray(y[o], np.float32)[0])
    else:
        for s in x:
            y = run_graph(graph, {name: np.asarray(s, np.float32)[None]}, outputs=outs)
            for o in outs:
                rows[o].append(np.asarray(y[o], np.float32)[0])
    return {o: np.stack(v) if v else np.zeros((0,)) for o, v in rows.items()}


def top1(graph: Graph, x: np.ndarray, y: np.ndarray, output: str | None = None) -> float:
    out = output or graph.outputs[0]
    p = predict(graph, x, [out])[out]
    return float((p.reshape(len(p), -1).argmax(-1) == np.asarray(y).reshape(-1)).mean()) if len(p) else 0.0


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(signal / noise) of `got` against `ref` (inf when equal)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    noise = float(((got - ref) ** 2).sum())
    return float("inf") if noise == 0 else 10.0 * np.log10(max(float((ref ** 2).sum()), 1e-30) / noise)
