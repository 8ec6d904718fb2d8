"""mixed-precision: per-layer sensitivity analysis, then int4 weights for the least sensitive layers.

1. The float graph is put in deployment form (BN folded, activations fused) and quantized to int8 (PTQ
   calibrated on the data set).
2. Sensitivity: one layer at a time gets int4 weights (symmetric per output channel, [-7, 7], scale
   max|w| / 7, its int32 bias re-quantized on the new input x weight scale); the int8 graph runs on the
   validation samples with the integer executor and the accuracy drop and output SNR against the all-int8
   graph are recorded.
3. Choice, least sensitive first (accuracy drop, then SNR): with target=accuracy, a layer is kept in int4
   when the combined graph stays within `max_drop` accuracy points of the all-int8 graph (each addition
   is measured, not summed from the single-layer drops); with target=bytes, layers are switched until
   the weight bytes reach `keep` x the all-int8 weight bytes.
4. Optional fine-tuning (epochs > 0): the float graph is trained with the chosen layers fake-quantized to
   4 bits and the others to 8, then quantized again and the chosen layers set to int4.

int4 weights are stored in the IR as dtype "int4" (one value per byte there; Tensor.nbytes counts 4 bits,
so the profiler's weight bytes are the packed size); the integer executor computes with them as small
integers, bit-exact with the C it is compared against.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import (WEIGHTED, Action, ActionContext, CompressError, Param, is_quantized_graph,
                                  subset)
from engine.compress.measure import predict, snr_db
from engine.compress.quantize import PTQ_PARAMS, deploy_form, ptq, train_json
from engine.ir import Graph, Quant, Tensor
from engine.ops import OPS

INT4_MAX = 7


def int4_weights(qgraph: Graph, node_names: list[str]) -> Graph:
    """A copy of an int8 graph whose listed Conv/Gemm layers have int4 weights (and re-scaled int32 biases)."""
    g = qgraph.copy()
    for name in node_names:
        node = g.node(name)
        w = g.tensors[node.inputs[1]]
        if w.dtype != "int8" or w.quant is None:
            raise CompressError(f"layer '{name}': weights '{w.name}' are {w.dtype}, expected int8 to requantize")
        real = w.float_data().astype(np.float64)
        axis = OPS[node.op].weight_channel_axis(node)
        other = tuple(i for i in range(real.ndim) if i != axis)
        m = np.abs(real).max(axis=other)
        scale = np.where(m > 0, m / INT4_MAX, 1.0).astype(np.float32)
        shape = [1] * real.ndim
        shape[axis] = -1
        q = np.clip(np.rint(real / scale.astype(np.float64).reshape(shape)), -INT4_MAX, INT4_MAX).astype(np.int8)
        g.tensors[w.name] = Tensor(w.name, w.shape, "int4", Quant(scale, np.zeros(scale.shape, np.int64), axis), q,
                                   dict(w.meta))
        if len(node.inputs) > 2 and node.inputs[2]:
            b = g.tensors[node.inputs[2]]
            sx = float(g.tensors[node.inputs[0]].quant.scale[0])
            bscale = (np.float64(sx) * scale.astype(np.float64)).astype(np.float32)
            bq = np.clip(np.rint(b.float_data().astype(np.float64).reshape(-1) / bscale.astype(np.float64)),
                         -2**31, 2**31 - 1).astype(np.int32)
            g.tensors[b.name] = Tensor(b.name, bq.shape, "int32", Quant(bscale, np.zeros(bscale.shape, np.int64),
                                                                        0 if bscale.size > 1 else None),
                                       bq, dict(b.meta))
    return g


def _layers(qg: Graph) -> list[str]:
    return [n.name for n in qg.nodes if n.op in WEIGHTED and qg.tensors[n.inputs[1]].dtype == "int8"
            and qg.tensors[n.inputs[1]].data is not None]


def _score(g: Graph, x: np.ndarray, y: np.ndarray, ref: np.ndarray | None) -> tuple[float, float, np.ndarray]:
    out = g.outputs[0]
    p = predict(g, x, [out])[out]
    acc = float((p.reshape(len(p), -1).argmax(-1) == y).mean())
    return acc, (snr_db(ref, p) if ref is not None else float("inf")), p


def weight_bytes(g: Graph) -> int:
    seen, total = set(), 0
    for n in g.nodes:
        for name in n.inputs:
            t = g.tensors.get(name) if name else None
            if t is not None and t.data is not None and name not in seen:
                seen.add(name)
                total += t.nbytes
    return total


def choose(qg: Graph, layers: list[dict], params: dict, x, y, base_acc: float, base_out) -> tuple[list[str], float]:
    """Greedy choice in sensitivity order; returns (chosen layer names, accuracy of the mixed graph)."""
    chosen: list[str] = []
    acc = base_acc
    target_bytes = params["keep"] * weight_bytes(qg)
    for rec in layers:
        trial = chosen + [rec["layer"]]
        g = int4_weights(qg, trial)
        if params["target"] == "bytes":
            chosen, acc = trial, None
            if weight_bytes(g) <= target_bytes:
                break
            continue
        a, _, _ = _score(g, x, y, base_out)
        if (base_acc - a) * 100.0 <= params["max_drop"] + 1e-9:
            chosen, acc = trial, a
    if params["target"] == "bytes":
        acc = _score(int4_weights(qg, chosen), x, y, base_out)[0] if chosen else base_acc
    return chosen, acc


def c_weight_bytes(int8_graph: Graph, mixed_graph: Graph) -> dict:
    """Const bytes of the generated C (engine.codegen) for the all-int8 and the mixed graph: whether the C
    export really packs the int4 weights, measured rather than assumed."""
    from engine.codegen import generate_library
    from engine.errors import TinyStudioError
    try:
        a = generate_library(int8_graph, "int8_model").weights_bytes
        b = generate_library(mixed_graph, "mixed_model").weights_bytes
    except TinyStudioError as e:
        return {"error": f"the C generator cannot take this graph: {e}"}
    saved = a - b
    packed = saved >= (weight_bytes(int8_graph) - weight_bytes(mixed_graph)) * 0.9
    return {"int8_c_const_bytes": a, "mixed_c_const_bytes": b, "int4_packed_in_c": bool(packed and saved > 0),
            "note": ("the generated C packs int4 weights two per byte" if packed and saved > 0 else
                     "the generated C saves less than expected from int4: weights whose zero-point-shifted values "
                     "leave [-8, 7] stay one per byte; weight_bytes above counts the packed size")}


def run_mixed(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    if is_quantized_graph(graph):
        raise CompressError(f"graph '{graph.name}' is already int8; mixed precision starts from the float graph")
    data = ctx.data
    if getattr(data, "task", "classification") != "classification":
        raise CompressError("mixed-precision measures sensitivity as accuracy: it needs a classification data set")
    dep = deploy_form(graph)
    ctx.say(0.02, "int8 post-training quantization")
    qg, ptq_rep = ptq(dep, data, params, ctx.seed)
    n = params["eval_samples"] or None
    x, y = subset(data.x_val, data.y_val, n, ctx.seed)
    y = np.asarray(y).reshape(-1)
    base_acc, _, base_out = _score(qg, x, y, None)
    names = _layers(qg)
    if not names:
        raise CompressError(f"graph '{graph.name}' has no conv or fully connected layer with int8 weights")
    layers = []
    for i, name in enumerate(names):
        ctx.say(0.05 + 0.6 * i / len(names), f"sensitivity of {name} to int4 weights")
        a, s, _ = _score(int4_weights(qg, [name]), x, y, base_out)
        w = qg.tensors[qg.node(name).inputs[1]]
        layers.append({"layer": name, "op": qg.node(name).op, "weights": int(w.size), "int8_bytes": int(w.nbytes),
                       "int4_bytes": int((w.size + 1) // 2), "accuracy": a,
                       "accuracy_drop_points": round((base_acc - a) * 100.0, 3), "snr_db": s})
    order = sorted(layers, key=lambda r: (r["accuracy_drop_points"], -r["snr_db"] if np.isfinite(r["snr_db"])
                                          else -1e9, -r["weights"]))
    ctx.say(0.65, "choosing int4 layers")
    chosen, mixed_acc = choose(qg, order, params, x, y, base_acc, base_out)
    out = int4_weights(qg, chosen)
    report = {"sensitivity": layers, "int4_layers": chosen, "int8_accuracy": base_acc,
              "mixed_accuracy_before_finetune": mixed_acc, "eval_samples": int(len(x)),
              "int8_weight_bytes": weight_bytes(qg), "mixed_weight_bytes": weight_bytes(out),
              "budget": ({"target": "accuracy", "max_drop_points": params["max_drop"]} if params["target"] == "accuracy"
                         else {"target": "bytes", "keep": params["keep"]}), **ptq_rep}
    if params["epochs"] > 0 and chosen:
        from engine.train import train
        bits = {}
        for nd in dep.nodes:
            if nd.op in WEIGHTED and nd.name in names:
                bits[nd.inputs[1]] = 4 if nd.name in chosen else 8
        ctx.say(0.7, "fine-tuning with int4/int8 fake quantization")
        trained, tr = train(dep, data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed,
                            fake_quant={"bits": bits, "scheme": "per-channel"}, progress=ctx.sub(0.7, 0.95))
        qg2, ptq_rep = ptq(trained, data, params, ctx.seed)
        out = int4_weights(qg2, chosen)
        report.update(ptq_rep)
        report["training"] = train_json(tr)
    report["c_export"] = c_weight_bytes(qg if params["epochs"] == 0 or not chosen else qg2, out)
    ctx.say(1.0, f"{len(chosen)} of {len(names)} layers in int4")
    return out, report


ACTION = Action("mixed-precision", "per-layer sensitivity to int4 weights, then int4 for the least sensitive "
                "layers within an accuracy or size budget (int8 elsewhere)", {
                    "target": Param("str", "accuracy", "budget: accuracy (max_drop) or bytes (keep)",
                                    choices=("accuracy", "bytes")),
                    "max_drop": Param("float", 1.0, "accuracy points the int4 layers may cost vs all-int8",
                                      min=0.0, max=100.0),
                    "keep": Param("float", 0.75, "target=bytes: weight bytes to reach, fraction of all-int8",
                                  min=0.0, max=1.0, min_open=True),
                    "eval_samples": Param("int", 0, "validation samples for the sensitivity (0: all)", min=0,
                                          max=1000000),
                    "epochs": Param("int", 0, "fine-tuning epochs with int4/int8 fake quantization (0: none)",
                                    min=0, max=1000),
                    "lr": Param("float", 2e-4, "fine-tuning learning rate", min=0.0, max=1.0, min_open=True),
                    **PTQ_PARAMS}, run_mixed, trains=True)
