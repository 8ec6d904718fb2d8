"""quantize-int8 (post-training) and qat-int8 (fake-quant fine-tuning, then the same PTQ).

quantize-int8 calibrates the activation ranges on training samples of the data set and quantizes with
engine.passes.ptq.quantize_model (TFLite's int8 scheme: per-channel symmetric weights, per-tensor
activations, int32 bias); the PTQ report (top-1 agreement with float, SNR per output and per layer) is
part of the action's report, the accuracy of the int8 graph is measured with the integer executor.

qat-int8 first puts the float graph in the form PTQ quantizes (no-ops removed, BN folded, activations
fused), so the weights trained under fake quantization are the weights that get deployed; it fine-tunes
with every conv/FC weight rounded to its per-channel int8 grid in the forward pass (straight-through
gradient, engine.train's `fake_quant`), then runs the same PTQ on the trained weights. Activations are not
fake-quantized during training (the training loop quantizes weights only); their ranges are calibrated
afterwards as in PTQ.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import (Action, ActionContext, CompressError, Param, dequantize_weights,
                                  float_weight_names, is_quantized_graph, subset)
from engine.ir import Graph
from engine.passes import fold_batchnorm, fuse_activations, fuse_gemm, remove_noops
from engine.passes.base import run_passes
from engine.passes.fuse import unfuse_activations


def ptq(graph: Graph, data, params: dict, seed: int = 0) -> tuple[Graph, dict]:
    """Int8 PTQ of a float graph calibrated on training samples of `data`; (int8 graph, PTQ report JSON)."""
    from engine.passes import quantize_model
    if is_quantized_graph(graph):
        raise CompressError(f"graph '{graph.name}' is already int8 (its activations are quantized); "
                            "quantize the float version")
    g = dequantize_weights(graph)  # ternary / int4 weights of a float graph: exact on the int8 grid again
    x, y = subset(data.x_train, data.y_train, params["calibration_samples"], seed)
    labels = y if getattr(data, "task", "classification") == "classification" else None
    # One feed per sample in the data's channels-first order: a graph already in NHWC (the float form of an
    # int8 version) records its transpose in meta["input_layout"], which quantize_model applies to feeds.
    from engine.data import dataset_feeds
    qg, rep = quantize_model(g, calibration=dataset_feeds(g, np.asarray(x, np.float32)), method=params["method"],
                             percentile=params["percentile"], labels=labels, layout=params["layout"],
                             activations=params.get("activations", "int8"))
    doc = rep.to_json()
    out = {k: doc[k] for k in ("method", "percentile", "calibration", "outputs", "layers", "warnings")}
    # what quantization bent to make the model export (widened weight scales, collapsed ranges): its own list
    out["clamped"] = [w for p in rep.passes if p.name == "quantize_int8" for w in p.warnings]
    return qg, {"ptq": out}


def run_ptq(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    ctx.say(0.1, "calibrating activation ranges")
    qg, rep = ptq(graph, ctx.data, params, ctx.seed)
    ctx.say(1.0, "quantized")
    return qg, rep


def deploy_form(graph: Graph) -> Graph:
    """The float graph PTQ quantizes (NCHW kept): the weights QAT trains are then the deployed ones."""
    g, _ = run_passes(dequantize_weights(graph), [remove_noops, fuse_gemm, unfuse_activations, fold_batchnorm,
                                                  fuse_activations])
    return g


def run_qat(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    from engine.train import train
    if is_quantized_graph(graph):
        raise CompressError(f"graph '{graph.name}' is already int8; QAT fine-tunes a float graph")
    g = deploy_form(graph)
    spec = {"bits": {w: 8 for w in float_weight_names(g)}, "scheme": "per-channel"}
    ctx.say(0.0, "quantization-aware fine-tuning")
    trained, tr = train(g, ctx.data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed, fake_quant=spec,
                        progress=ctx.sub(0.0, 0.85))
    ctx.say(0.85, "post-training quantization of the QAT weights")
    qg, rep = ptq(trained, ctx.data, params, ctx.seed)
    rep["training"] = train_json(tr)
    rep["fake_quant"] = {"weights": len(spec["bits"]), "bits": 8, "scheme": "per-channel symmetric int8, "
                         "straight-through estimator; activations calibrated after training"}
    return qg, rep


def train_json(tr) -> dict:
    return {"epochs_run": tr.epochs_run, "early_stopped": tr.early_stopped, "val_accuracy": tr.accuracy,
            "seconds": round(tr.seconds, 2), "history": list(tr.history)}


PTQ_PARAMS = {
    "method": Param("str", "minmax", "activation range calibration", choices=("minmax", "percentile")),
    "percentile": Param("float", 99.99, "percentile for method=percentile", min=50.0, max=100.0, min_open=True),
    "calibration_samples": Param("int", 256, "training samples used for calibration", min=1, max=100000),
    "layout": Param("str", "NHWC", "layout of the int8 graph (NHWC: TFLite's, what the C export takes)",
                    choices=("NHWC", "NCHW")),
    "activations": Param("str", "int8", "activation precision: int8, or int16 (TFLite 16x8: int16 activations, "
                         "int8 weights, int64 bias; for accuracy-sensitive audio models)", choices=("int8", "int16")),
}

PTQ_ACTION = Action("quantize-int8", "int8 post-training quantization calibrated on the data set "
                    "(per-channel weights, per-tensor activations, TFLite scheme)", dict(PTQ_PARAMS), run_ptq)

QAT_ACTION = Action("qat-int8", "quantization-aware fine-tuning (weights fake-quantized to per-channel int8, "
                    "straight-through gradient), then int8 PTQ of the trained weights", {
                        "epochs": Param("int", 5, "fine-tuning epochs", min=0, max=1000),
                        "lr": Param("float", 5e-4, "learning rate (Adam)", min=0.0, max=1.0, min_open=True),
                        **PTQ_PARAMS}, run_qat, trains=True)
