"""The sparse-update planner (MIT's "On-Device Training Under 256KB Memory", section 3.2): which layers, and
what fraction of their output channels, to update under a training-SRAM budget.

    r = plan_sparse(graph, budget_bytes=256 * 1024, data=load_dataset("keywords"))
    r.plan                  # UpdatePlan: the classifier plus the layers with the most accuracy gain per byte
    r.probes                # one Probe per (layer, fraction): measured gain and extra peak SRAM
    r.peak_sram_bytes, r.baseline_accuracy, r.predicted_accuracy

Contribution analysis as the paper does it: every probe fine-tunes the classifier (the last weighted layer,
always updated) plus one layer at one channel fraction (1/8 .. 1) for a short budget of SGD steps
(engine.ondevice.finetune: BN folded as deployed, same start and seeded sample order for every probe) on the
training split; its gain is its accuracy on the held-out validation split minus that of the classifier alone.
Noise: the probes and the baseline are scored on the same samples, so a gain is tested pairwise (McNemar):
z = (b - c) / sqrt(b + c), b (c) the samples the probe gets right (wrong) and the baseline wrong (right); only
probes with z >= min_z (default 1: one standard error) count. Its cost is the extra peak training SRAM
(engine.ondevice.memory) over the classifier alone. Selection is greedy by gain per byte, one fraction per
layer, keeping the plan's peak within the budget (re-profiled at each addition). The predicted accuracy adds
the chosen probes' gains to the baseline (the paper's additive assumption).

Probes do not depend on the budget: they are cached on disk (~/.cache/tinystudio/probes/) per model weights,
data set samples, probe options, candidate layers and fractions, so a second budget costs no fine-tuning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.ondevice.finetune import FinetuneOptions, Finetuner
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
    z: float = 0.0      # paired noise test of the gain (see the module docstring)
    significant: bool = False  # z >= the planner's min_z: the gain counts

    @property
    def gain_per_kb(self) -> float:
        return self.gain / max(self.extra_bytes, 1) * 1024

    def to_json(self) -> dict:
        return {"layer": self.layer, "fraction": self.fraction, "accuracy": round(self.accuracy, 6),
                "gain": round(self.gain, 6), "z": round(self.z, 3), "significant": self.significant,
                "extra_bytes": self.extra_bytes, "gain_per_kb": round(self.gain_per_kb, 6)}


@dataclass(frozen=True)
class SparseResult:
    plan: UpdatePlan
    probes: tuple[Probe, ...]
    budget_bytes: int
    peak_sram_bytes: int
    baseline_accuracy: float   # the classifier alone, after the probe's fine-tuning
    predicted_accuracy: float
    start_accuracy: float = 0.0    # before any fine-tuning
    probe_steps: int = 0
    cached: bool = False           # the probes came from the cache

    @property
    def predicted_gain(self) -> float:
        return self.predicted_accuracy - self.baseline_accuracy

    def to_json(self) -> dict:
        return {"plan": self.plan.to_json(), "budget_bytes": self.budget_bytes, "peak_sram_bytes": self.peak_sram_bytes,
                "start_accuracy": self.start_accuracy, "baseline_accuracy": self.baseline_accuracy,
                "predicted_accuracy": self.predicted_accuracy, "predicted_gain": round(self.predicted_gain, 6),
                "probe_steps": self.probe_steps, "probes": [p.to_json() for p in self.probes]}


def mcnemar_z(pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray) -> float:
    """z of "b is more accurate than a" on the same samples: (wins - losses) / sqrt(wins + losses)."""
    ra, rb = pred_a == y, pred_b == y
    wins, losses = int((rb & ~ra).sum()), int((ra & ~rb).sum())
    return (wins - losses) / np.sqrt(wins + losses) if wins + losses else 0.0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinystudio" / "probes"


def _cache_key(graph: Graph, data, opt: FinetuneOptions, pool, fractions, head: str) -> str:
    from engine.serialize import content_hash

    h = hashlib.sha256()
    h.update(json.dumps([content_hash(graph), data.name, opt.key(), list(pool), list(fractions), head]).encode())
    for a in (data.x_train, data.y_train, data.x_val, data.y_val):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:24]


def _load_cached(path: Path):
    try:
        doc = json.loads(path.read_text())
        return doc["start"], doc["baseline"], [(r[0], float(r[1]), float(r[2]), float(r[3])) for r in doc["probes"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # missing or unreadable: probe again


def _store(path: Path, start: float, baseline: float, rows) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"start": start, "baseline": baseline, "probes": rows}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next run its probes


def run_probes(graph: Graph, data, pool, fractions, head: str, opt: FinetuneOptions, cache: bool = True):
    """(start accuracy, baseline accuracy, [(layer, fraction, accuracy, z)], cached): the fine-tuning probes."""
    path = cache_dir() / f"{_cache_key(graph, data, opt, pool, fractions, head)}.json"
    got = _load_cached(path) if cache else None
    if got is not None:
        return (*got, True)
    ft = Finetuner(graph, data, opt)
    start = ft.accuracy()
    baseline = ft.run({head: 1.0})
    base_pred = ft.last_predictions.copy()
    rows = []
    for layer in pool:
        for f in fractions:
            acc = ft.run({head: 1.0, layer: f})
            rows.append((layer, f, acc, float(mcnemar_z(base_pred, ft.last_predictions, ft.yv))))
    if cache:
        _store(path, start, baseline, rows)
    return start, baseline, rows, False


def plan_sparse(graph: Graph, budget_bytes: int, data, *, fractions=(0.25, 0.5, 1.0), steps: int | None = None,
                candidates: int | None = 4, weights: str = "float32", seed: int = 0,
                options: FinetuneOptions | None = None, min_z: float = 1.0, cache: bool = True) -> SparseResult:
    """The sparse update under `budget_bytes` of peak training SRAM (see the module docstring). `candidates`
    limits the probed layers to the last ones (None: all); the defaults keep the CLI at a dozen probes (the
    paper probes every layer; pass candidates=None, fractions=FRACTIONS for that). weights="int8": the probes
    fine-tune in the int8 domain with quantization-aware scaling, as the paper does. The budget is always
    checked against the exported C's RAM (training_profile's default: float32 copies of the trained channels,
    no dW buffer, the C's fixed buffers), whatever `weights` says, so a plan fits what the export uses.
    `options`: the probes' fine-tuning (default FinetuneOptions: 60 SGD steps of 32 samples); `steps`
    overrides its steps."""
    from engine.ondevice.memory import deployed

    if data is None:
        raise TinyStudioError("sparse:BYTES needs a data set for its fine-tuning probes (--data NAME)")
    dg = deployed(graph)[0]
    layers = weighted_layers(dg)
    head = layers[-1]
    base_plan = UpdatePlan((head,), {head: 1.0})
    base_peak = training_profile(dg, base_plan, as_deployed=False).peak_sram_bytes
    if base_peak > budget_bytes:
        raise TinyStudioError(f"training budget {budget_bytes:,} B is below the {base_peak:,} B that updating the "
                              f"classifier '{head}' alone needs")
    opt = options or FinetuneOptions(seed=seed, weights=weights, qas=True)
    if steps is not None:
        opt = dataclasses.replace(opt, steps=steps)
    pool = layers[:-1] if candidates is None else layers[:-1][-candidates:] if candidates > 0 else []
    start_acc, base_acc, rows, cached = run_probes(graph, data, pool, fractions, head, opt, cache)
    probes = []
    for layer, f, acc, z in rows:
        plan = UpdatePlan((layer, head), {layer: f, head: 1.0})
        extra = training_profile(dg, plan, as_deployed=False).peak_sram_bytes - base_peak
        probes.append(Probe(layer, f, acc, acc - base_acc, max(extra, 0), z, acc > base_acc and z >= min_z))
    chosen: dict[str, float] = {head: 1.0}
    gain_sum = 0.0
    ranked = sorted((p for p in probes if p.significant), key=lambda p: -p.gain / max(p.extra_bytes, 1))
    peak = base_peak
    for p in ranked:
        if p.layer in chosen:
            continue
        trial = {**chosen, p.layer: p.fraction}
        names = tuple(k for k in layers if k in trial)
        cand = UpdatePlan(names, {k: trial[k] for k in names})
        cpeak = training_profile(dg, cand, as_deployed=False).peak_sram_bytes
        if cpeak <= budget_bytes:
            chosen, peak, gain_sum = trial, cpeak, gain_sum + p.gain
    names = tuple(k for k in layers if k in chosen)
    final = UpdatePlan(names, {k: chosen[k] for k in names})
    return SparseResult(final, tuple(probes), budget_bytes, peak, base_acc, min(1.0, base_acc + gain_sum),
                        start_acc, opt.steps, cached)
