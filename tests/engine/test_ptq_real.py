"""PTQ of real float models always exports: weight-only (dynamic-range) quantized files, and channels whose
near-zero weights sit under a large bias (the MLPerf Tiny VWW and large ResNet float files), quantized as the
TFLite converter does; the C verifies bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.codegen import generate_library
from engine.errors import GraphError
from engine.execute import run_graph
from engine.export.verify_host import verify_host
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from engine.passes.ptq import quantize_inputs, quantize_model
from engine.passes.quantize import widen_for_bias
from tests.engine.tflite_writer import TFLiteWriter

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "mlcommons-tiny"


def _dead_channel_conv() -> bytes:
    """A first conv with 27 taps (3x3x3) whose channel 0 has weights ~1e-9 under a bias of 1.5: the int32
    bias of that channel would need 1.5 / (input scale x ~1e-11) > 2^31."""
    rng = np.random.default_rng(3)
    k = rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32)
    k[0] = rng.normal(0, 1e-9, (3, 3, 3))
    bias = rng.normal(0, 0.1, 8).astype(np.float32)
    bias[0] = 1.5
    w = TFLiteWriter()
    x = w.tensor("x", (1, 8, 8, 3))
    y = w.tensor("y", (1, 8, 8, 8))
    w.op("CONV_2D", [x, w.const("k", k), w.const("b", bias)], [y], "Conv2DOptions", Padding=0, StrideW=1,
         StrideH=1, FusedActivationFunction=1)
    return w.finish([x], [y])


def test_near_dead_channel_under_a_large_bias_exports_bit_exact(tmp_path):
    g = load_tflite("dead.tflite", data=_dead_channel_conv())
    qg, rep = quantize_model(g, synthetic_samples=8, per_layer=False)
    assert any("1 of 8 output channels have near-zero weights" in w for w in rep.warnings), rep.warnings
    lib = generate_library(qg, "dead")
    res = verify_host(qg, lib, n_random=8, workdir=tmp_path)
    assert res.bit_exact, res.first_mismatch
    # the widened channel still computes the float layer to within the output grid: relu(bias) = 1.5
    x = np.random.default_rng(9).normal(0, 1, (1, 8, 8, 3)).astype(np.float32)
    ref = run_graph(g, {g.inputs[0]: x})[g.outputs[0]]
    got8 = run_int8(qg, quantize_inputs(qg, {g.inputs[0]: x}))[qg.outputs[0]]
    y = qg.tensors[qg.outputs[0]].quant.dequantize(got8)
    step = float(qg.tensors[qg.outputs[0]].quant.scale[0])
    assert np.abs(y[..., 0] - ref[..., 0]).max() <= step, (y[..., 0].ravel()[:4], ref[..., 0].ravel()[:4])


def test_without_widening_the_generator_would_refuse(monkeypatch):
    """The failure the widening removes (so the test above cannot pass by accident)."""
    import engine.passes.quantize as qmod

    monkeypatch.setattr(qmod, "widen_for_bias", lambda *a, **k: None)
    g = load_tflite("dead.tflite", data=_dead_channel_conv())
    qg, _ = quantize_model(g, synthetic_samples=8, per_layer=False)
    with pytest.raises(GraphError, match="int32 accumulator may overflow"):
        generate_library(qg, "dead")


def test_widen_for_bias_leaves_ordinary_channels_alone():
    from engine.passes.quantize import quantize_weights

    w = np.random.default_rng(1).normal(0, 0.1, (4, 3, 3, 3))
    q, quant = quantize_weights(w, 0)
    assert widen_for_bias(w, 0, np.full(4, 2.0), 0.02, quant) is None
    w[2] *= 1e-10
    q, quant = quantize_weights(w, 0)
    q2, quant2, n = widen_for_bias(w, 0, np.full(4, 2.0), 0.02, quant)
    assert n == 1 and np.array_equal(q2[[0, 1, 3]], q[[0, 1, 3]]) and quant2.scale[2] > quant.scale[2] * 1e3
    taps = 27
    assert 2.0 / (0.02 * quant2.scale[2]) <= 2 ** 31 - 1 - 2 * taps * 127 * 256


def test_dynamic_range_kws_file_is_quantized_and_exports(tmp_path):
    """MLPerf Tiny's kws_ref_model_float32.tflite holds int8 weights with float activations; export used to
    take it for an int8 model and refuse its float input."""
    from engine.export import export_model

    path = DATA / "kws_ref_model_float32.tflite"
    g = load_tflite(path.name, data=path.read_bytes())
    res = export_model(g, "nrf52840", tmp_path / "kws.zip", n_inputs=3, name="kws")
    assert res.report["verify"]["bit_exact"], res.report["verify"]
    assert any("dynamic-range" in w for w in res.warnings), res.warnings
    assert all(t.dtype == "int8" for t in res.graph.tensors.values() if t.data is None)
