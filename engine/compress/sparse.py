"""prune-magnitude: unstructured magnitude pruning of conv/FC weights, then fine-tuning with the mask held.

The smallest |w| are set to zero: `sparsity` of all weights at once (scope=global, one threshold across
layers) or of every layer (scope=layer). Exactly round(sparsity x n) weights are masked (ties broken by
position). Fine-tuning re-applies the mask after each step (engine.train's weight_mask), and the mask is
applied once more to the result, so the reported sparsity is exact.

What it buys on an MCU, honestly: nothing by itself. A dense kernel still stores and multiplies every
zero, so weight bytes, MACs and latency are unchanged; flash drops only with a sparse storage format
(the report estimates CSR and bitmap sizes, for float32 and for int8 values) and compute only with
sparse kernels (the report gives the non-zero MACs such a kernel would do, an upper bound on the saving).
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import (Action, ActionContext, CompressError, Param, is_quantized_graph, set_const,
                                  weighted_nodes)
from engine.compress.quantize import train_json
from engine.ir import Graph
from engine.summary import layer_records


def magnitude_masks(g: Graph, weights: list[str], sparsity: float, scope: str) -> dict[str, np.ndarray]:
    """{weight name: 0/1 float32 mask} masking exactly round(sparsity x n) smallest |w| (per layer or global)."""
    masks = {}
    if scope == "layer":
        for name in weights:
            w = g.tensors[name].data
            k = int(round(sparsity * w.size))
            m = np.ones(w.size, np.float32)
            m[np.argsort(np.abs(w).reshape(-1), kind="stable")[:k]] = 0.0
            masks[name] = m.reshape(w.shape)
        return masks
    flat = np.concatenate([np.abs(g.tensors[n].data).reshape(-1) for n in weights])
    k = int(round(sparsity * flat.size))
    keep = np.ones(flat.size, np.float32)
    keep[np.argsort(flat, kind="stable")[:k]] = 0.0
    at = 0
    for name in weights:
        w = g.tensors[name].data
        masks[name] = keep[at:at + w.size].reshape(w.shape)
        at += w.size
    return masks


def sparse_bytes(rows: int, cols: int, nnz: int, value_bytes: int) -> dict:
    """Storage of a (rows, cols) matrix with nnz non-zeros: dense, CSR (smallest index type), bitmap."""
    idx = 1 if cols <= 256 else 2 if cols <= 65536 else 4
    ptr = 2 if nnz < 65536 else 4
    return {"dense": rows * cols * value_bytes, "csr": nnz * (value_bytes + idx) + (rows + 1) * ptr,
            "bitmap": (rows * cols + 7) // 8 + nnz * value_bytes}


def sparsity_report(g: Graph, weights: dict[str, str]) -> dict:
    """Per-layer sparsity and what sparse storage / kernels would give; `weights` maps weight -> node name."""
    macs = {r.name: r.macs for r in layer_records(g)}
    layers, tot = [], {"float32": {"dense": 0, "csr": 0, "bitmap": 0}, "int8": {"dense": 0, "csr": 0, "bitmap": 0}}
    dense_macs = nz_macs = 0
    for wname, node in weights.items():
        w = g.tensors[wname].data
        rows = w.shape[0]
        cols = w.size // max(rows, 1)
        nnz = int(np.count_nonzero(w))
        m = macs.get(node, 0)
        dense_macs += m
        nz_macs += int(round(m * nnz / max(w.size, 1)))
        rec = {"layer": node, "weights": int(w.size), "zeros": int(w.size - nnz),
               "sparsity": float(1.0 - nnz / max(w.size, 1))}
        for dt, vb in (("float32", 4), ("int8", 1)):
            b = sparse_bytes(rows, cols, nnz, vb)
            rec[f"{dt}_bytes"] = b
            for k in b:
                tot[dt][k] += b[k]
        layers.append(rec)
    n = sum(r["weights"] for r in layers)
    zeros = sum(r["zeros"] for r in layers)
    return {"layers": layers, "weights": n, "zeros": zeros, "sparsity": zeros / max(n, 1),
            "storage_bytes": tot, "macs_dense": dense_macs, "macs_nonzero": nz_macs,
            "note": "weight_bytes and MACs are unchanged: the graph stores and multiplies every zero. Flash drops "
                    "only with a sparse format ('storage_bytes': CSR = values + column indices + row pointers, "
                    "bitmap = one bit per weight + values; the C export has neither) and compute only with sparse "
                    "kernels ('macs_nonzero' is what they would do, before their indexing overhead)."}


def run_prune_magnitude(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    if is_quantized_graph(graph):
        raise CompressError(f"graph '{graph.name}' is int8; prune the float graph, then quantize")
    nodes = [n for n in weighted_nodes(graph) if graph.tensors[n.inputs[1]].dtype == "float32"]
    weights = {}
    for n in nodes:
        weights.setdefault(n.inputs[1], n.name)
    if not weights:
        raise CompressError(f"graph '{graph.name}' has no float conv/FC weights to prune")
    masks = magnitude_masks(graph, list(weights), params["sparsity"], params["scope"])
    g = graph.copy()
    for name, m in masks.items():
        set_const(g, name, (g.tensors[name].data * m).astype(np.float32))
    report: dict = {"scope": params["scope"], "target_sparsity": params["sparsity"]}
    if params["epochs"] > 0:
        from engine.train import train
        ctx.say(0.05, "fine-tuning with the mask held")
        g, tr = train(g, ctx.data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed, weight_mask=masks,
                      progress=ctx.sub(0.05, 0.95))
        for name, m in masks.items():  # exact sparsity whatever the optimizer did in between
            set_const(g, name, (g.tensors[name].data * m).astype(np.float32))
        report["training"] = train_json(tr)
    report["masked_weights"] = int(sum(int((m == 0).sum()) for m in masks.values()))
    report.update(sparsity_report(g, weights))
    ctx.say(1.0, f"sparsity {report['sparsity']:.1%}")
    return g, report


ACTION = Action("prune-magnitude", "unstructured magnitude pruning (global or per layer) with masked "
                "fine-tuning; saves flash only with sparse storage, time only with sparse kernels", {
                    "sparsity": Param("float", 0.5, "fraction of conv/FC weights set to zero", min=0.0, max=0.999,
                                      min_open=False),
                    "scope": Param("str", "global", "global: one threshold over all layers; layer: each layer",
                                   choices=("global", "layer")),
                    "epochs": Param("int", 3, "fine-tuning epochs with the mask held", min=0, max=1000),
                    "lr": Param("float", 5e-4, "learning rate (Adam)", min=0.0, max=1.0, min_open=True)},
                run_prune_magnitude, trains=True)
