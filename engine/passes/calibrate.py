"""Calibration: inputs for post-training quantization and the activation ranges they produce.

    samples = as_feeds(graph, x_batch)                   # (n, *input shape) array or list of feed dicts
    samples = synthetic_calibration(graph, n=32, seed=0) # no data: standard normal (or uniform) inputs
    ranges = collect_ranges(graph, samples, "percentile", 99.99)   # tensor -> (lo, hi) over all samples

Ranges cover every float activation (graph inputs included), from run_graph(..., keep_all=True).
"minmax" takes the extremes; "percentile" takes the p-th percentile of the values above it and the
(100 - p)-th below (numpy's linear interpolation), computed exactly over every value of every sample
while keeping only each sample's largest and smallest values (the tail a percentile can reach).
"""
from __future__ import annotations

import math

import numpy as np

from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.ir import FLOAT_DTYPES, Graph, variables

METHODS = ("minmax", "percentile")
SYNTHETIC_WARNING = "calibrated on synthetic data: accuracy unknown"


class SyntheticCalibration(list):
    """Feed dicts made up by synthetic_calibration; quantize_model warns when it calibrates on them."""

    description: str = ""


def synthetic_calibration(graph: Graph, n: int = 32, seed: int = 0, distribution: str = "normal",
                          low: float = -1.0, high: float = 1.0) -> SyntheticCalibration:
    """n feed dicts for `graph`'s float inputs: standard normal, or uniform in [low, high)."""
    if n < 1:
        raise TinyStudioError(f"synthetic calibration needs at least 1 sample, got {n}")
    if distribution not in ("normal", "uniform"):
        raise TinyStudioError(f"synthetic calibration distribution must be normal or uniform, got '{distribution}'")
    rng = np.random.default_rng(seed)
    out = SyntheticCalibration()
    for name in graph.inputs:
        if graph.tensors[name].dtype not in FLOAT_DTYPES:
            raise TinyStudioError(f"input '{name}' is {graph.tensors[name].dtype}: synthetic calibration makes float "
                                  "inputs only; give calibration data")
    for _ in range(n):
        feeds = {}
        for name in graph.inputs:
            shape = original_shape(graph, name)  # feeds are given in the original layout (see as_feeds)
            x = rng.standard_normal(shape) if distribution == "normal" else rng.uniform(low, high, shape)
            feeds[name] = x.astype(np.float32)
        out.append(feeds)
    out.description = (f"{n} samples, standard normal, seed {seed}" if distribution == "normal"
                       else f"{n} samples, uniform in [{low:g}, {high:g}), seed {seed}")
    return out


def original_shape(graph: Graph, name: str) -> tuple[int, ...]:
    """Input `name`'s shape in the layout feeds are given in: a graph already converted to NHWC (the float form
    of an int8 version) records the transpose in meta["input_layout"], and its feeds stay channels first."""
    shape = graph.tensors[name].shape
    lay = graph.meta.get("input_layout", {}).get(name)
    return tuple(shape[i] for i in np.argsort(lay["perm"])) if lay is not None else shape


def as_feeds(graph: Graph, calibration) -> list[dict[str, np.ndarray]]:
    """Calibration data as a list of feed dicts; an array is a batch of samples for a one-input graph.

    An array may be (n, *shape) (each row one full input, batch dim included) or, for batch-1 inputs,
    (n, *shape[1:]) (each row one sample without the batch dim).
    """
    if isinstance(calibration, np.ndarray) or (isinstance(calibration, list) and calibration
                                               and isinstance(calibration[0], np.ndarray)):
        if len(graph.inputs) != 1:
            raise TinyStudioError(f"calibration given as an array, but the graph has {len(graph.inputs)} inputs "
                                  f"({', '.join(graph.inputs)}); give a list of feed dicts")
        name = graph.inputs[0]
        shape = original_shape(graph, name)
        arr = np.asarray(calibration)
        if tuple(arr.shape[1:]) == shape:
            rows = [arr[i] for i in range(arr.shape[0])]
        elif shape and shape[0] == 1 and tuple(arr.shape[1:]) == shape[1:]:
            rows = [arr[i:i + 1] for i in range(arr.shape[0])]
        else:
            raise TinyStudioError(f"calibration array {list(arr.shape)} does not hold samples of input '{name}' "
                                  f"{list(shape)}: expected (n, {', '.join(map(str, shape))})")
        feeds = [{name: np.asarray(r, dtype=np.float32)} for r in rows]
    elif isinstance(calibration, (list, tuple)) and all(isinstance(f, dict) for f in calibration):
        feeds = [dict(f) for f in calibration]
    else:
        raise TinyStudioError("calibration must be an array of samples or a list of {input name: array} dicts, "
                              f"got {type(calibration).__name__}")
    if not feeds:
        raise TinyStudioError("calibration data is empty")
    for i, f in enumerate(feeds):
        for name in graph.inputs:
            if name not in f:
                raise TinyStudioError(f"calibration sample {i} has no input '{name}'")
            if tuple(np.shape(f[name])) != original_shape(graph, name):
                raise TinyStudioError(f"calibration sample {i}: input '{name}' has shape {list(np.shape(f[name]))}, "
                                      f"the model expects {list(original_shape(graph, name))}")
            if not np.all(np.isfinite(f[name])):
                raise TinyStudioError(f"calibration sample {i}: input '{name}' holds NaN or infinite values")
    return feeds


class _Tails:
    """Running min/max plus, for percentiles, each sample's k largest and k smallest values."""

    def __init__(self, keep: int):
        self.keep = keep
        self.lo, self.hi, self.count = math.inf, -math.inf, 0
        self.tops: list[np.ndarray] = []
        self.bottoms: list[np.ndarray] = []

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size == 0:
            return
        self.lo, self.hi, self.count = min(self.lo, float(v.min())), max(self.hi, float(v.max())), self.count + v.size
        if self.keep:
            k = min(self.keep, v.size)
            self.tops.append(np.partition(v, v.size - k)[v.size - k:])
            self.bottoms.append(np.partition(v, k - 1)[:k])

    def percentile(self, p: float) -> tuple[float, float]:
        hi = _upper_tail(np.concatenate(self.tops), self.count, p)
        lo = -_upper_tail(-np.concatenate(self.bottoms), self.count, p)
        return lo, hi


def _upper_tail(tail: np.ndarray, n: int, p: float) -> float:
    """np.percentile(all n values, p) from the largest values only (enough of them must be in `tail`)."""
    desc = np.sort(tail)[::-1]
    d = (n - 1) * (1.0 - p / 100.0)  # position counted from the top
    i = int(math.floor(d))
    frac = d - i
    a = desc[min(i, desc.size - 1)]
    b = desc[min(i + 1, desc.size - 1)]
    return float(a + (b - a) * frac)


def collect_ranges(graph: Graph, samples: list[dict[str, np.ndarray]], method: str = "minmax",
                   percentile: float = 99.99) -> dict[str, tuple[float, float]]:
    """(lo, hi) of every float activation of `graph` over the samples (feeds in `graph`'s own layout)."""
    if method not in METHODS:
        raise TinyStudioError(f"calibration method must be one of {', '.join(METHODS)}, got '{method}'")
    if method == "percentile" and not 50.0 < percentile <= 100.0:
        raise TinyStudioError(f"percentile must be in (50, 100], got {percentile}")
    # A stateful graph (SVDF) sees the samples as one stream, its state (engine/state.py) calibrated with them.
    state = {} if variables(graph) else None
    acts = ({n for n in graph.inputs} | {o for node in graph.nodes for o in node.outputs}
            | {t.name for t in variables(graph)})
    sizes = {n: graph.tensors[n].size for n in acts if n in graph.tensors}
    stats: dict[str, _Tails] = {}
    for feeds in samples:
        env = run_graph(graph, feeds, keep_all=True, state=state)
        for name, v in env.items():
            if name not in sizes or not np.issubdtype(np.asarray(v).dtype, np.floating):
                continue
            if name not in stats:
                # Values a percentile can reach: those above position (N - 1) * p / 100, N over all samples.
                total = sizes[name] * len(samples)
                keep = int(math.ceil((total - 1) * (100.0 - percentile) / 100.0)) + 2 if method == "percentile" else 0
                stats[name] = _Tails(keep)
            stats[name].add(v)
    return {n: ((s.lo, s.hi) if method == "minmax" else s.percentile(percentile)) for n, s in stats.items()}
