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
    """Every sample of `x` (n, *sample shape, channels first like the data sets) through `graph` ->
    {output: (n, ...) float array}; `outputs` may name any activation. Float graphs run batched through
    their PyTorch form (engine.train's views), int8 graphs sample by sample on the integer executor with
    inputs quantized and outputs dequantized."""
    outs = outputs or list(graph.outputs)
    if not len(x):
        return {o: np.zeros((0, *graph.tensors[o].shape[1:]), np.float32) for o in outs}
    if not is_quantized_graph(graph):
        fast = _predict_torch(graph, x, outs)
        if fast is not None:
            return fast
    from engine.passes.ptq import dequantize_outputs, quantize_inputs, to_graph_layout
    name = graph.inputs[0]
    rows: dict[str, list[np.ndarray]] = {o: [] for o in outs}
    if is_quantized_graph(graph):
        from engine.int8 import prepare_int8
        plan = prepare_int8(graph)
        run = lambda s: dequantize_outputs(graph, plan.run(quantize_inputs(graph, {name: s}), outputs=outs))  # noqa
    else:
        run = lambda s: run_graph(graph, to_graph_layout(graph, {name: s}), outputs=outs)  # noqa: E731
    for s in x:
        y = run(np.asarray(s, np.float32)[None])
        for o in outs:
            rows[o].append(np.asarray(y[o], np.float32)[0])
    return {o: np.stack(v) for o, v in rows.items()}


def _predict_torch(graph: Graph, x: np.ndarray, outs: list[str]) -> dict[str, np.ndarray] | None:
    """Batched float inference; None when the graph cannot be re-batched (then samples run one by one)."""
    from engine.errors import TinyStudioError
    from engine.exporters.torch_export import GraphModule
    from engine.passes.base import drop_unused
    from engine.train.graphs import rebatch
    from engine.train.metrics import forward_batches, torch_threads
    view = graph.copy()
    view.outputs = list(outs)
    view = drop_unused(view)
    b = min(256, len(x))
    try:
        with torch_threads(1):
            module = GraphModule(rebatch(view, b))
            ys = forward_batches(module, view, x, b)
    except TinyStudioError:
        return None
    shapes = {o: view.tensors[o].shape[1:] for o in outs}
    return {o: y.numpy().reshape(len(x), *shapes[o]) for o, y in zip(outs, ys)}


def top1(graph: Graph, x: np.ndarray, y: np.ndarray, output: str | None = None) -> float:
    out = output or graph.outputs[0]
    p = predict(graph, x, [out])[out]
    return float((p.reshape(len(p), -1).argmax(-1) == np.asarray(y).reshape(-1)).mean()) if len(p) else 0.0


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(signal / noise) of `got` against `ref` (inf when equal)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    noise = float(((got - ref) ** 2).sum())
    return float("inf") if noise == 0 else 10.0 * np.log10(max(float((ref ** 2).sum()), 1e-30) / noise)
