"""ternary: 1.58-bit weights in {-1, 0, +1} x a scale, by quantization-aware training (BitNet b1.58 style).

BitNet b1.58 (Ma et al. 2024) quantizes W with its absolute mean: q = clip(round(W / (mean|W| + eps)), -1, 1),
real value = mean|W| x q. The "median" variant scales by median|W| instead, which keeps more weights at
zero-or-one steps when the distribution has heavy tails. The scale is per layer (as in the paper) or per
output channel. Training: the graph is put in deployment form (BN folded into the conv, so the ternary
weights are the deployed ones) and fine-tuned with the weights ternarized in the forward pass by the
same rule (straight-through gradient; a fake_quant callable for engine.train, which also covers the
per-channel scale). Training writes back the ternarized values, so the stored scale is exactly the one
trained with.

The result keeps float activations; each ternarized weight is stored as int8 values {-1, 0, 1} with the
scale in Tensor.quant (zero point 0), so every tool reads it as an ordinary quantized constant:
the float executor dequantizes it, quantize-int8 re-quantizes it exactly (+-127 at scale s / 127).
Flash: stored like this it costs a byte per weight; packed it would need 2 bits (4 per byte) or
log2(3) = 1.58 bits (5 trits per byte, 3^5 = 243 <= 256), which the report gives as the potential figure.
"""
from __future__ import annotations

import math

import numpy as np

from engine.compress.base import (Action, ActionContext, CompressError, Param, is_quantized_graph, out_axis,
                                  weighted_nodes)
from engine.compress.quantize import deploy_form, train_json
from engine.ir import Graph, Quant, Tensor

EPS = 1e-8


def _groups(w: np.ndarray, axis: int | None) -> np.ndarray:
    """w as (groups, n): one row per output channel along `axis`, or a single row."""
    return w.reshape(1, -1) if axis is None else np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def ternarize(w: np.ndarray, axis: int | None, scale: str = "absmean") -> tuple[np.ndarray, np.ndarray]:
    """(q in {-1, 0, 1} as int8, scale per channel along `axis`, or one when axis is None).

    Weights already ternary (each group holds only 0 and +-a, what fake-quantized training writes back)
    give q = sign(w) and scale a exactly; others follow the rule q = clip(round(w / s), -1, 1) with
    s = mean|w| (absmean) or median|w| of the group."""
    w = np.asarray(w, np.float64)
    rows = _groups(w, axis)
    q = np.zeros(rows.shape, np.int8)
    s = np.ones(rows.shape[0], np.float64)
    for i, r in enumerate(rows):
        a = np.abs(r)
        nz = a[a > 0]
        if nz.size and np.allclose(nz, nz.max(), rtol=1e-5, atol=0.0):
            s[i], q[i] = float(nz.max()), np.sign(r).astype(np.int8)
            continue
        # torch's median (the lower middle value), so training and the stored weights use one rule
        si = float(np.sort(a)[(a.size - 1) // 2] if scale == "median" else a.mean())
        s[i] = si if si > EPS else 1.0  # an all-zero channel: any scale; 1 keeps q = 0
        q[i] = np.clip(np.rint(r / s[i]), -1, 1).astype(np.int8)
    if axis is None:
        return q.reshape(w.shape), s.astype(np.float32)
    moved = (w.shape[axis],) + tuple(d for i, d in enumerate(w.shape) if i != axis)
    return np.moveaxis(q.reshape(moved), 0, axis), s.astype(np.float32)


def fake_ternary(axes: dict[str, int | None], scale: str):
    """engine.train fake_quant callable: the same rule as `ternarize` in torch, straight-through gradient."""
    import torch

    def fn(name: str, w):
        if name not in axes:
            return w
        axis = axes[name]
        a = w.detach().abs()
        rows = a.reshape(1, -1) if axis is None else a.movedim(axis, 0).reshape(w.shape[axis], -1)
        s = rows.median(dim=1).values if scale == "median" else rows.mean(dim=1)
        s = torch.where(s > EPS, s, torch.ones_like(s))
        shape = [1] * w.dim()
        if axis is not None:
            shape[axis] = -1
        s = s.reshape(shape) if axis is not None else s.reshape(())
        q = torch.clamp(torch.round(w / s), -1, 1) * s
        return w + (q - w).detach()
    return fn


def ternary_layers(g: Graph, which: str) -> list[str]:
    """Node names of the layers to ternarize: all conv/FC layers, or all but the first and the last."""
    nodes = [n for n in weighted_nodes(g) if g.tensors[n.inputs[1]].dtype == "float32"]
    if which == "inner":
        nodes = nodes[1:-1]
    return [n.name for n in nodes]


def apply_ternary(g: Graph, layers: list[str], scale: str, per_channel: bool) -> tuple[Graph, list[dict]]:
    """A copy with those layers' weights stored as ternary int8 + scale; per-layer records."""
    out = g.copy()
    records = []
    for name in layers:
        node = out.node(name)
        t = out.tensors[node.inputs[1]]
        axis = out_axis(node) if per_channel else None
        q, s = ternarize(t.data, axis, scale)
        quant = Quant(s, np.zeros(s.shape, np.int64), axis)
        out.tensors[t.name] = Tensor(t.name, t.shape, "int8", quant, q, dict(t.meta))
        records.append({"layer": name, "weights": int(q.size), "zeros": float((q == 0).mean()),
                        "plus_one": float((q == 1).mean()), "minus_one": float((q == -1).mean()),
                        "scales": int(s.size), "mean_scale": float(s.mean())})
    return out, records


def storage(n: int, scales: int) -> dict:
    """Bytes of n ternary weights as stored here (int8), packed 2-bit, and packed 1.58-bit (5 trits per byte)."""
    return {"stored_int8_bytes": n, "packed_2bit_bytes": (n + 3) // 4, "packed_5_trits_per_byte": (n + 4) // 5,
            "entropy_1_58_bit_bytes": int(math.ceil(n * math.log2(3) / 8)), "scale_bytes": 4 * scales}


def run_ternary(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    from engine.train import train
    if is_quantized_graph(graph):
        raise CompressError(f"graph '{graph.name}' is already int8; ternary QAT starts from a float graph")
    dep = deploy_form(graph)
    layers = ternary_layers(dep, params["layers"])
    if not layers:
        raise CompressError(f"graph '{graph.name}' has no float conv/FC layer to ternarize "
                            f"(layers={params['layers']})")
    axes = {dep.node(n).inputs[1]: (out_axis(dep.node(n)) if params["per_channel"] else None) for n in layers}
    spec = fake_ternary(axes, params["scale"])
    report: dict = {}
    if params["epochs"] > 0:
        ctx.say(0.0, "ternary quantization-aware training")
        dep, tr = train(dep, ctx.data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed, fake_quant=spec,
                        progress=ctx.sub(0.0, 0.95))
        report["training"] = train_json(tr)
    out, records = apply_ternary(dep, layers, params["scale"], params["per_channel"])
    n = sum(r["weights"] for r in records)
    report.update({"layers": records, "ternary_weights": n, "scale": params["scale"],
                   "per_channel": params["per_channel"],
                   "float_layers_kept": [nd.name for nd in weighted_nodes(out) if nd.name not in layers],
                   "storage": storage(n, sum(r["scales"] for r in records)),
                   "flash_note": "weight_bytes counts the ternary weights as int8 (1 byte each, as the IR and the "
                                 "int8 C kernels store them); 'storage' gives what 2-bit or 1.58-bit packing "
                                 "would need, which needs a ternary kernel the C export does not have"})
    ctx.say(1.0, f"{len(layers)} layers ternary")
    return out, report


ACTION = Action("ternary", "1.58-bit weights {-1, 0, +1} x scale by quantization-aware training "
                "(BitNet b1.58 absmean scale, or the median variant)", {
                    "epochs": Param("int", 10, "quantization-aware training epochs", min=0, max=1000),
                    "lr": Param("float", 1e-3, "learning rate (Adam)", min=0.0, max=1.0, min_open=True),
                    "scale": Param("str", "absmean", "scale: mean |W| (BitNet b1.58) or median |W|",
                                   choices=("absmean", "median")),
                    "per_channel": Param("bool", True, "one scale per output channel (false: per layer)"),
                    "layers": Param("str", "all", "all conv/FC layers, or inner (first and last stay float)",
                                    choices=("all", "inner"))}, run_ternary, trains=True)
