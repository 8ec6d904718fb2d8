"""Post-training quantization of the float mnist_lstm file (engine/passes/quantize_lstm.py): tflite-micro's int8
LSTM layout, calibrated on the example's 10 sample digits; the int8 model agrees with the float one and its
generated C equals the int8 reference byte for byte."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.codegen.generate import generate
from engine.codegen.hostbuild import compile_host, run_host
from engine.errors import GraphError
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from engine.passes.ptq import quantize_model

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"


@pytest.fixture(scope="module")
def ptq():
    g = load_tflite(str(DATA / "trained_lstm.tflite"))
    samples = np.load(DATA / "mnist_lstm_samples.npz")
    imgs = samples["images"].astype(np.float32)[:, None] / 255.0   # (10, 1, 28, 28)
    q, report = quantize_model(g, imgs)
    return g, q, report, imgs, samples["labels"]


def test_ptq_lstm_agrees_with_float_on_the_sample_digits(ptq):
    g, q, report, imgs, labels = ptq
    lstm = next(n for n in q.nodes if n.op == "LSTM")
    w, c0 = q.tensors[lstm.inputs[1]], q.tensors[lstm.inputs[6]]
    assert w.dtype == "int8" and len(set(w.quant.scale.tolist())) == 4   # one scale per gate
    assert c0.dtype == "int16" and float(c0.quant.scale[0]) == 2.0 ** -11   # covers cell_clip 10
    xq = q.tensors[q.inputs[0]].quant
    float_top = [int(run_graph(g, {g.inputs[0]: x})[g.outputs[0]].argmax()) for x in imgs]
    int8_top = [int(run_int8(q, {q.inputs[0]: xq.quantize(x, "int8")})[q.outputs[0]].argmax()) for x in imgs]
    assert float_top == list(labels)
    assert int8_top == float_top
    out = report.outputs[0]
    assert out.argmax_agreement == 1.0 and out.snr_db > 30, out


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_ptq_lstm_c_equals_the_int8_reference(ptq, tmp_path):
    _, q, _, imgs, _ = ptq
    xq = q.tensors[q.inputs[0]].quant
    xs = np.stack([xq.quantize(x, "int8") for x in imgs])
    state: dict = {}
    ref = np.stack([run_int8(q, {q.inputs[0]: x}, state=state)[q.outputs[0]] for x in xs])
    lib = generate(q, "lstm_ptq")
    ys = run_host(compile_host(lib, tmp_path, sanitize=True), xs.reshape(len(xs), -1)).reshape(ref.shape)
    assert np.array_equal(ys, ref)


def test_ptq_refuses_an_onnx_style_lstm_without_state(tmp_path):
    from engine.builder import GraphBuilder

    rng = np.random.default_rng(0)
    b = GraphBuilder("onnx_lstm")
    x = b.input("X", (4, 1, 3))
    w = [b.const(n, rng.standard_normal(s).astype(np.float32)) for n, s in (("W", (1, 8, 3)), ("R", (1, 8, 2)))]
    b.output(b.node("LSTM", [x, *w], hidden_size=2))
    with pytest.raises(GraphError, match="variable tensors"):
        quantize_model(b.build(), rng.standard_normal((4, 4, 1, 3)).astype(np.float32))
