"""The sparse-update planner (MIT's "On-Device Training Under 256KB Memory", section 3.2): which layers, and
what fraction of their output channels, to update under a training-SRAM budget.

    r = plan_sparse(graph, budget_bytes=256 * 1024, data=load_dataset("keywords"))
    r.plan                  # UpdatePlan: the classifier plus the layers with the most accuracy gain per byte
    r.probes                # one Probe per (layer, fraction): measured gain and extra peak SRAM
    r.peak_sram_bytes, r.baseline_accuracy, r.predicted_accuracy

Contribution analysis as the paper does it: every probe fine-tunes the classifier (the last weighted layer,
always updated) plus one layer at one channel fraction (1/8 .. 1) for a few SGD steps from the same start on
the data set; its gain is its validation accuracy minus that of the classifier alone. Its cost is the extra
peak training SRAM (engine.ondevice.memory) over the classifier alone. Selection is greedy by gain per byte,
one fraction per layer, keeping the plan's peak within the budget (re-profiled at each addition). The
predicted accuracy adds the chosen probes' gains to the baseline (the paper's additive assumption).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.ondevice.memory import training_profile
from engine.ondevice.spec import UpdatePlan, weighted_layers

FRACTIONS = (0.125, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Probe:
    layer: str
    fraction: float
    accuracy: float
    gain: float         # accuracy - baseline (classifier alone)
    extra_bytes: int    # peak SRAM of classifier + this, minus the classifier's alone

    def to_json(self) -> dict:
        return {"layer": self.layer, "fraction": self.fraction, "accuracy": round(self.accuracy, 6),
                "gain": round(self.gain, 6), "extra_bytes": self.extra_bytes}


@dataclass(frozen=True)
class SparseResult:
    plan: UpdatePlan
    probes: tuple[Probe, ...]
    budget_bytes: int
    peak_sram_bytes: int
    baseline_accuracy: float   # the classifier alone, after the probe's fine-tuning
    predicted_accuracy: float

    def to_json(self) -> dict:
        return {"plan": self.plan.to_json(), "budget_bytes": self.budget_bytes, "peak_sram_bytes": self.peak_sram_bytes,
                "baseline_accuracy": self.baseline_accuracy, "predicted_accuracy": self.predicted_accuracy,
                "probes": [p.to_json() for p in self.probes]}


class Finetuner:
    """SGD fine-tuning of `graph` (float) with only some weights (and channel fractions) trainable, always from
    the same start, on a fixed subsample of `data`: the probe and the sparse-vs-full comparison."""

    def __init__(self, graph: Graph, data, steps: int = 40, batch: int = 32, lr: float = 0.05, seed: int = 0,
                 max_val: int = 512):
        from engine.exporters.torch_export import GraphModule
        from engine.train.fakequant import weight_axes
        from engine.train.graphs import adapt_input_layout, data_mismatch, logits_view, rebatch

        why = data_mismatch(graph, data)
        if why:
            raise TinyStudioError(f"sparse-update probes on data set '{data.name}': {why}")
        if data.task != "classification":
            raise TinyStudioError(f"sparse-update probes need a classification data set; '{data.name}' is {data.task}")
        g = adapt_input_layout(graph, data.input_shape)
        self.view = rebatch(logits_view(g), batch)
        self.vview = rebatch(logits_view(g), 1)
        self.module = GraphModule(self.view)
        self.start = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.axes = weight_axes(self.view)
        self.nodes = {n.name: n for n in self.view.nodes}
        self.data, self.steps, self.batch, self.lr = data, steps, batch, lr
        rng = np.random.default_rng(seed)
        self.order = rng.integers(0, len(data.x_train), size=steps * batch)
        vi = rng.permutation(len(data.x_val))[:max_val]
        self.xv, self.yv = data.x_val[vi], data.y_val[vi]

    def _params(self, layers: dict[str, float]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        out = []
        for layer, frac in layers.items():
            n = self.nodes.get(layer)
            if n is None:
                continue  # a layer only the deployed graph has
            for j, t in enumerate(n.inputs[1:3]):
                if not t or t not in self.module.tensor_keys or not self.module.tensor_keys[t].startswith("params."):
                    continue
                p = self.module.tensor(t)
                mask = None
                if frac < 1.0:
                    axis = self.axes.get(t, 0) if j == 0 else 0
                    keep = max(1, math.ceil(p.shape[axis] * frac))
                    mask = torch.zeros_like(p)
                    mask.narrow(axis, 0, keep).fill_(1.0)
                out.append((p, mask))
        return out

    def run(self, layers: dict[str, float]) -> float:
        """Validation accuracy after fine-tuning only `layers` (name -> channel fraction)."""
        from engine.train.graphs import to_layout

        self.module.load_state_dict(self.start)
        for p in self.module.parameters():
            p.requires_grad_(False)
        params = self._params(layers)
        for p, _ in params:
            p.requires_grad_(True)
        opt = torch.optim.SGD([p for p, _ in params], lr=self.lr, momentum=0.9)
        y = torch.from_numpy(self.data.y_train).long()
        for s in range(self.steps):
            idx = self.order[s * self.batch:(s + 1) * self.batch]
            out = self.module(to_layout(self.view, torch.from_numpy(self.data.x_train[idx])))
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = torch.nn.functional.cross_entropy(out.reshape(self.batch, -1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p, m in params:
                if m is not None and p.grad is not None:
                    p.grad.mul_(m)
            opt.step()
        return self.accuracy()

    @torch.no_grad()
    def accuracy(self) -> float:
        from engine.train.graphs import to_layout

        hits, n = 0, 0
        for i in range(0, len(self.xv) - self.batch + 1, self.batch):
            out = self.module(to_layout(self.view, torch.from_numpy(self.xv[i:i + self.batch])))
            out = out[0] if isinstance(out, (tuple, list)) else out
            hits += int((out.reshape(self.batch, -1).argmax(1).numpy() == self.yv[i:i + self.batch]).sum())
            n += self.batch
        return hits / max(n, 1)


def plan_sparse(graph: Graph, budget_bytes: int, data, *, fractions=(0.25, 0.5, 1.0), steps: int = 20,
                candidates: int | None = 4, weights: str = "float32", seed: int = 0) -> SparseResult:
    """The sparse update under `budget_bytes` of peak training SRAM (see the module docstring). `candidates`
    limits the probed layers to the last ones (None: all); the defaults keep the CLI at a dozen short probes
    (the paper probes every layer; pass candidates=None, fractions=FRACTIONS for that). weights="int8":
    updated weights kept in RAM as int8 (quantization-aware scaling), as the paper does."""
    from engine.ondevice.memory import deployed

    if data is None:
        raise TinyStudioError("sparse:BYTES needs a data set for its fine-tuning probes (--data NAME)")
    dg = deployed(graph)[0]
    layers = weighted_layers(dg)
    head = layers[-1]
    base_plan = UpdatePlan((head,), {head: 1.0})
    base_peak = training_profile(dg, base_plan, as_deployed=False, weights=weights).peak_sram_bytes
    if base_peak > budget_bytes:
        raise TinyStudioError(f"training budget {budget_bytes:,} B is below the {base_peak:,} B that updating the "
                              f"classifier '{head}' alone needs")
    torch.manual_seed(seed)
    ft = Finetuner(graph, data, steps=steps, seed=seed)
    base_acc = ft.run({head: 1.0})
    pool = layers[:-1] if candidates is None else layers[:-1][-candidates:]
    probes = []
    for layer in pool:
        for f in fractions:
            plan = UpdatePlan((layer, head), {layer: f, head: 1.0})
            extra = training_profile(dg, plan, as_deployed=False, weights=weights).peak_sram_bytes - base_peak
            acc = ft.run({head: 1.0, layer: f})
            probes.append(Probe(layer, f, acc, acc - base_acc, max(extra, 0)))
    chosen: dict[str, float] = {head: 1.0}
    gain_sum = 0.0
    ranked = sorted((p for p in probes if p.gain > 0), key=lambda p: -p.gain / max(p.extra_bytes, 1))
    peak = base_peak
    for p in ranked:
        if p.layer in chosen:
            continue
        trial = {**chosen, p.layer: p.fraction}
        names = tuple(k for k in layers if k in trial)
        cand = UpdatePlan(names, {k: trial[k] for k in names})
        cpeak = training_profile(dg, cand, as_deployed=False, weights=weights).peak_sram_bytes
        if cpeak <= budget_bytes:
            chosen, peak, gain_sum = trial, cpeak, gain_sum + p.gain
    names = tuple(k for k in layers if k in chosen)
    final = UpdatePlan(names, {k: chosen[k] for k in names})
    return SparseResult(final, tuple(probes), budget_bytes, peak, base_acc, min(1.0, base_acc + gain_sum))
