"""Post-training quantization of a float graph to int8, with a report of how far int8 is from float.

    qg, report = quantize_model(g, calibration=x_batch)               # (n, *input shape) float array
    qg, report = quantize_model(g)                                    # synthetic data, with a warning
    print("\\n".join(report.summary_lines()))
    q = quantize_inputs(qg, {"input": x})                             # float, original layout -> int8
    y = dequantize_outputs(qg, run_int8(qg, q))                       # int8 -> float, original layout

Steps: remove_noops -> fuse_gemm -> unfuse_activations -> fold_batchnorm -> fuse_activations -> to_nhwc
(TFLite's layout; layout="NCHW" skips it) -> the int8 coverage check (fails before any calibration work)
-> activation ranges on the calibration set (min/max or percentile) -> quantize_int8 -> every calibration
sample through the float graph and through the integer executor (engine.int8.run_int8) to measure
agreement per output (top-1 agreement for classifiers; mean/max abs error and SNR in dB for all) and,
optionally, SNR per layer. Calibration data is given in the original graph's layout; graph.meta
["input_layout"] says how the int8 graph's inputs are laid out.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.int8 import prepare_int8
from engine.ir import Graph
from engine.ops import get_op
from engine.passes.base import PassReport, run_passes
from engine.passes.calibrate import (SYNTHETIC_WARNING, SyntheticCalibration, as_feeds, collect_ranges,
                                     synthetic_calibration)
from engine.passes.fold import fold_batchnorm
from engine.passes.fuse import fuse_activations, fuse_gemm, unfuse_activations
from engine.passes.layout import to_nhwc
from engine.passes.noops import remove_noops
from engine.passes.quantize import check_int8_support, check_int16_support, quantize_int8

LOW_SNR_DB = 15.0  # below this an output's int8 error is large enough to warn about
_CLASSIFIER_TASKS = ("classification", "keyword_spotting", "visual_wake_words")


@dataclass
class OutputAgreement:
    name: str
    kind: str  # "classifier" | "regression"
    samples: int
    snr_db: float  # 10 log10(sum float^2 / sum (int8 - float)^2) over all samples
    mean_abs_error: float
    max_abs_error: float
    argmax_agreement: float | None = None  # classifiers: fraction of samples with the same top-1 class
    float_accuracy: float | None = None  # with labels
    int8_accuracy: float | None = None


@dataclass
class LayerSNR:
    tensor: str
    op: str
    snr_db: float


@dataclass
class PTQReport:
    method: str
    percentile: float | None
    calibration: dict  # source ("data" | "synthetic"), samples, description
    outputs: list[OutputAgreement]
    layers: list[LayerSNR] = field(default_factory=list)
    passes: list[PassReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    io: dict = field(default_factory=dict)  # graph.meta["quantization"] inputs/outputs grids

    def to_json(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        return clean({"method": self.method, "percentile": self.percentile, "calibration": self.calibration,
                      "outputs": [asdict(o) for o in self.outputs], "layers": [asdict(layer) for layer in self.layers],
                      "passes": [p.to_json() for p in self.passes], "warnings": list(self.warnings), "io": self.io})

    def summary_lines(self) -> list[str]:
        how = self.method + (f" {self.percentile:g}" if self.method == "percentile" else "")
        lines = [f"int8 PTQ, {how} ranges, calibrated on {self.calibration['description']}"]
        for o in self.outputs:
            top1 = f", top-1 agreement {o.argmax_agreement:.1%}" if o.argmax_agreement is not None else ""
            acc = (f", accuracy float {o.float_accuracy:.1%} int8 {o.int8_accuracy:.1%}"
                   if o.int8_accuracy is not None else "")
            lines.append(f"  output {o.name} ({o.kind}): SNR {o.snr_db:.1f} dB, mean |err| {o.mean_abs_error:.3g}, "
                         f"max |err| {o.max_abs_error:.3g}{top1}{acc}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        return lines


# ---- layout and quantization of inputs/outputs -------------------------------------------------------

def to_graph_layout(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds in the original (e.g. NCHW) layout -> the layout of `graph`'s inputs (graph.meta["input_layout"])."""
    lay = graph.meta.get("input_layout", {})
    return {n: (np.transpose(v, lay[n]["perm"]) if n in lay else np.asarray(v)) for n, v in feeds.items()}


def from_graph_layout(graph: Graph, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of `graph` -> the original layout (undoing graph.meta["output_layout"])."""
    lay = graph.meta.get("output_layout", {})
    return {n: (np.transpose(v, np.argsort(lay[n]["perm"])) if n in lay else v) for n, v in outputs.items()}


def quantize_inputs(qgraph: Graph, feeds: dict[str, np.ndarray], original_layout: bool = True) -> dict:
    """Float inputs -> the int8 graph's inputs: q = clip(round(x / scale) + zero_point, -128, 127)."""
    if original_layout:
        feeds = to_graph_layout(qgraph, feeds)
    out = {}
    for name in qgraph.inputs:
        if name not in feeds:
            raise TinyStudioError(f"missing input '{name}' (graph inputs: {', '.join(qgraph.inputs)})")
        t = qgraph.tensors[name]
        out[name] = t.quant.quantize(np.asarray(feeds[name], dtype=np.float32), t.dtype) if t.quant else feeds[name]
    return out


def dequantize_outputs(qgraph: Graph, outputs: dict[str, np.ndarray], original_layout: bool = True) -> dict:
    """Integer outputs of run_int8 -> real values x = scale * (q - zero_point)."""
    out = {n: (qgraph.tensors[n].quant.dequantize(v) if qgraph.tensors[n].quant is not None else v)
           for n, v in outputs.items()}
    return from_graph_layout(qgraph, out) if original_layout else out


# ---- agreement ------------------------------------------------------------------------------------

def _snr_db(signal: float, noise: float) -> float:
    if noise <= 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def _is_classifier(graph: Graph, name: str, task: str | None) -> bool:
    t = graph.tensors[name]
    if len(t.shape) != 2 or t.shape[-1] < 2:
        return False
    if task is None:
        spec = graph.meta.get("source", {}).get("spec") if isinstance(graph.meta.get("source"), dict) else None
        if spec:
            from engine.zoo import ZOO, parse_zoo_spec
            task = ZOO[parse_zoo_spec(spec)[0]].task
    if task is not None:
        return any(k in task for k in _CLASSIFIER_TASKS)
    producer = next((n for n in graph.nodes if name in n.outputs), None)
    return producer is not None and getattr(get_op(producer.op), "probabilities", False)


def compare_int8(float_graph: Graph, qgraph: Graph, samples: list[dict[str, np.ndarray]], *,
                 labels: np.ndarray | None = None, per_layer: bool = False,
                 task: str | None = None) -> tuple[list[OutputAgreement], list[LayerSNR]]:
    """Int8 vs float on `samples` (feeds in `float_graph`'s layout, which `qgraph` shares: the prepared
    float graph quantize_model quantized). Tensor names match between the two graphs."""
    plan = prepare_int8(qgraph)
    outs = qgraph.outputs
    sig = {n: 0.0 for n in outs}
    err2 = {n: 0.0 for n in outs}
    abs_sum = {n: 0.0 for n in outs}
    count = {n: 0 for n in outs}
    max_err = {n: 0.0 for n in outs}
    top1 = {n: [] for n in outs}
    layer_sig: dict[str, float] = {}
    layer_err: dict[str, float] = {}
    for feeds in samples:
        ref = run_graph(float_graph, feeds, keep_all=per_layer)
        got = plan.run(quantize_inputs(qgraph, feeds, original_layout=False), keep_all=per_layer)
        for n in outs:
            r, y = np.asarray(ref[n], np.float64), qgraph.tensors[n].quant.dequantize(got[n]).astype(np.float64)
            d = y - r
            sig[n] += float((r * r).sum())
            err2[n] += float((d * d).sum())
            abs_sum[n] += float(np.abs(d).sum())
            count[n] += d.size
            max_err[n] = max(max_err[n], float(np.abs(d).max()) if d.size else 0.0)
            top1[n].append((r.reshape(r.shape[0], -1).argmax(-1), y.reshape(y.shape[0], -1).argmax(-1)))
        if per_layer:
            for name, v in got.items():
                t = qgraph.tensors.get(name)
                if t is None or t.quant is None or t.data is not None or name not in ref or t.dtype not in ("int8", "int16"):
                    continue
                r = np.asarray(ref[name], np.float64)
                d = t.quant.dequantize(v).astype(np.float64) - r
                layer_sig[name] = layer_sig.get(name, 0.0) + float((r * r).sum())
                layer_err[name] = layer_err.get(name, 0.0) + float((d * d).sum())
    results = []
    for n in outs:
        kind = "classifier" if _is_classifier(qgraph, n, task) else "regression"
        o = OutputAgreement(n, kind, len(samples), _snr_db(sig[n], err2[n]), abs_sum[n] / max(count[n], 1), max_err[n])
        if kind == "classifier":
            ref_cls = np.concatenate([a for a, _ in top1[n]])
            got_cls = np.concatenate([b for _, b in top1[n]])
            o.argmax_agreement = float((ref_cls == got_cls).mean())
            if labels is not None:
                lab = np.asarray(labels).reshape(-1)
                if lab.size != ref_cls.size:
                    raise TinyStudioError(f"{lab.size} labels for {ref_cls.size} calibration samples")
                o.float_accuracy = float((ref_cls == lab).mean())
                o.int8_accuracy = float((got_cls == lab).mean())
        results.append(o)
    producer = {o: node for node in qgraph.nodes for o in node.outputs}
    layers = [LayerSNR(n, producer[n].op if n in producer else "input", _snr_db(layer_sig[n], layer_err[n]))
              for n in layer_sig]
    return results, layers


# ---- the entry point ------------------------------------------------------------------------------

def prepare_float(graph: Graph, layout: str = "NHWC", verbose: bool = False) -> tuple[Graph, list[PassReport]]:
    """The float graph quantize_model quantizes: no-ops gone, FC canonical, BN folded, activations fused."""
    if layout not in ("NHWC", "NCHW"):
        raise TinyStudioError(f"layout must be NHWC or NCHW, got '{layout}'")
    passes = [remove_noops, fuse_gemm, unfuse_activations, fold_batchnorm, fuse_activations]
    if layout == "NHWC":
        passes.append(to_nhwc)
    return run_passes(graph, passes, verbose=verbose)


def quantize_model(graph: Graph, calibration: np.ndarray | list[dict] | None = None, method: str = "minmax",
                   percentile: float = 99.99, *, labels: np.ndarray | None = None, task: str | None = None,
                   synthetic_samples: int = 32, seed: int = 0, layout: str = "NHWC", per_layer: bool = True,
                   verbose: bool = False, activations: str = "int8") -> tuple[Graph, PTQReport]:
    """Float graph -> int8 graph runnable by engine.int8.run_int8, and a PTQReport.

    calibration: an (n, *input shape) float array for a one-input graph, a list of {input: array} feed dicts
    (original layout), or None for synthetic standard-normal data (the report then warns that accuracy is
    unknown). method: "minmax" or "percentile" (of `percentile`, e.g. 99.99). labels: optional class index
    per calibration sample, to report float and int8 accuracy. task: "classification" or "regression" to
    override how outputs are judged (zoo graphs and Softmax outputs are recognized). activations: "int8", or
    "int16" for TFLite's 16x8 scheme (int16 activations, int8 weights, int64 bias: accuracy-sensitive audio).
    """
    if method not in ("minmax", "percentile"):
        raise TinyStudioError(f"calibration method must be minmax or percentile, got '{method}'")
    if method == "percentile" and not 50.0 < percentile <= 100.0:
        raise TinyStudioError(f"percentile must be in (50, 100], got {percentile}")
    prepared, reports = prepare_float(graph, layout, verbose)
    if activations not in ("int8", "int16"):
        raise TinyStudioError(f"activations must be int8 or int16, got '{activations}'")
    # before any calibration work: unsupported ops fail in a second
    if activations == "int16":
        check_int16_support(prepared)
    else:
        check_int8_support(prepared)
    warnings: list[str] = []
    if calibration is None:
        calibration = synthetic_calibration(graph, synthetic_samples, seed)
    samples = as_feeds(graph, calibration)
    if isinstance(calibration, SyntheticCalibration):
        warnings.append(SYNTHETIC_WARNING)
        source = {"source": "synthetic", "samples": len(samples),
                  "description": "synthetic data: " + calibration.description}
    else:
        source = {"source": "data", "samples": len(samples), "description": f"{len(samples)} samples of user data"}
    feeds = [to_graph_layout(prepared, f) for f in samples]
    ranges = collect_ranges(prepared, feeds, method, percentile)
    qgraph, qreport = quantize_int8(prepared, ranges, activations, verbose=verbose)
    reports.append(qreport)
    qgraph.meta["quantization"]["calibration"] = {"method": method, "percentile": percentile if method == "percentile"
                                                  else None, **source}
    outputs, layers = compare_int8(prepared, qgraph, feeds, labels=labels, per_layer=per_layer, task=task)
    for o in outputs:
        if o.snr_db < LOW_SNR_DB:
            warnings.append(f"output '{o.name}': int8 differs from float by SNR {o.snr_db:.1f} dB on the calibration "
                            "set; try method='percentile', more representative data, or keep the layer in float")
    for r in reports:
        warnings.extend(r.warnings)
    report = PTQReport(method, percentile if method == "percentile" else None, source, outputs, layers, reports,
                       warnings, {k: qgraph.meta["quantization"][k] for k in ("inputs", "outputs")})
    return qgraph, report
