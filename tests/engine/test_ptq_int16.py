"""PTQ with activations="int16" (TFLite 16x8): the quantized graph, its accuracy against float and int8, the
exported C bit for bit against the int16 reference, the Compress action and the CLI option."""
from __future__ import annotations

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.codegen.generate import generate
from engine.codegen.hostbuild import compile_host, run_host
from engine.compress import compress
from engine.errors import GraphError, TinyStudioError
from engine.execute import run_graph
from engine.int8 import run_int8
from engine.ir import Tensor
from engine.passes.ptq import dequantize_outputs, quantize_inputs, quantize_model
from engine.passes.quantize import quantize_weights
from tests.fixtures.digits import digits_subset

R = np.random.default_rng(7)


def audio_like() -> object:
    """A small float conv net of the ops 16x8 runs: conv+relu, depthwise, residual add, leaky ReLU, pad, FC."""
    b = GraphBuilder("audio16")
    x = b.input("X", (1, 1, 8, 8))
    c1 = b.node("Conv", [x, b.const("W1", R.normal(0, 0.5, (6, 1, 3, 3)).astype(np.float32)),
                         b.const("B1", R.normal(0, 0.1, 6).astype(np.float32))], pads=[1, 1, 1, 1])
    r1 = b.node("Relu", [c1])
    dw = b.node("Conv", [r1, b.const("W2", R.normal(0, 0.5, (6, 1, 3, 3)).astype(np.float32)),
                         b.const("B2", R.normal(0, 0.1, 6).astype(np.float32))], pads=[1, 1, 1, 1], group=6)
    s = b.node("Add", [dw, r1])
    lk = b.node("LeakyRelu", [s], alpha=0.3)
    p = b.node("Conv", [lk, b.const("W3", R.normal(0, 0.4, (4, 6, 3, 3)).astype(np.float32)),
                        b.const("B3", R.normal(0, 0.1, 4).astype(np.float32))], strides=[2, 2], pads=[1, 1, 1, 1])
    f = b.node("Flatten", [p])
    y = b.node("Gemm", [f, b.const("W4", R.normal(0, 0.3, (10, 64)).astype(np.float32)),
                        b.const("B4", R.normal(0, 0.1, 10).astype(np.float32))], transB=1)
    b.output(y)
    return b.build()


@pytest.fixture(scope="module")
def model_and_data():
    return audio_like(), R.normal(0, 1, (48, 1, 8, 8)).astype(np.float32)


def _snr(qg, g, xs) -> float:
    sig = err = 0.0
    for x in xs:
        ref = run_graph(g, {"X": x[None]})[g.outputs[0]]
        out = dequantize_outputs(qg, run_int8(qg, quantize_inputs(qg, {"X": x[None]})))[qg.outputs[0]]
        sig, err = sig + float((ref ** 2).sum()), err + float(((out - ref) ** 2).sum())
    return 10 * np.log10(sig / err)


def test_int16_ptq_is_16x8_and_more_accurate_than_int8(model_and_data):
    g, x = model_and_data
    q16, rep16 = quantize_model(g, calibration=x, activations="int16", task="classification")
    q8, rep8 = quantize_model(g, calibration=x, task="classification")
    acts = [t for t in q16.tensors.values() if t.data is None]
    assert acts and all(t.dtype == "int16" and int(t.quant.zero_point[0]) == 0 for t in acts)
    biases = [t for t in q16.tensors.values() if t.data is not None and t.dtype == "int64"]
    assert len(biases) == 4 and "16x8" in q16.meta["quantization"]["scheme"]
    assert all(t.dtype == "int8" for t in q16.tensors.values() if t.data is not None and t.data.ndim >= 2)
    held_out = 0.8 * x[:16]   # inside the calibrated ranges: no clipping, which would hit both alike
    # Both share the int8 weights; against the float net with those weights the activation precision is
    # what differs: 8 more bits per activation, about 6 dB each.
    gw = g.copy()
    for name in ("W1", "W2", "W3", "W4"):
        q, quant = quantize_weights(gw.tensors[name].data, 0)
        gw.tensors[name] = Tensor(name, q.shape, "float32", None, quant.dequantize(q).astype(np.float32))
    s16, s8 = _snr(q16, gw, held_out), _snr(q8, gw, held_out)
    assert s16 > s8 + 30 and s8 > 20, (s16, s8)
    assert rep16.outputs[0].snr_db > rep8.outputs[0].snr_db   # vs the float weights: weight error dominates
    assert rep16.outputs[0].argmax_agreement >= rep8.outputs[0].argmax_agreement


def test_int16_ptq_exports_c_bit_exact(model_and_data, tmp_path):
    g, x = model_and_data
    q16, _ = quantize_model(g, calibration=x, activations="int16")
    lib = generate(q16, "audio16")
    assert "ts_conv_s16" in lib.files["audio16.c"] and "ts_fc_s16" in lib.files["audio16.c"]
    assert "int16_t audio16_quantize_input(float x);" in lib.files["audio16.h"]
    exe = compile_host(lib, tmp_path, sanitize=True)
    xs = R.normal(0, 1, (20, 1, 8, 8)).astype(np.float32)
    feeds = [quantize_inputs(q16, {"X": xi[None]}) for xi in xs]
    name = q16.inputs[0]
    got = run_host(exe, np.stack([f[name].reshape(-1).view(np.int8) for f in feeds])).view(np.int16)
    for k, f in enumerate(feeds):
        want = run_int8(q16, f)[q16.outputs[0]].reshape(-1)
        assert np.array_equal(got[k], want), f"input {k}"


def test_int16_ptq_names_the_op_it_cannot_run():
    b = GraphBuilder("pool")
    x = b.input("X", (1, 1, 8, 8))
    y = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    b.output(y)
    with pytest.raises(GraphError, match="no int16 kernel for MaxPool"):
        quantize_model(b.build(), calibration=R.normal(0, 1, (4, 1, 8, 8)).astype(np.float32), activations="int16")
    with pytest.raises(TinyStudioError, match="int8 or int16"):
        quantize_model(b.build(), activations="int12")


def test_compress_action_takes_the_activations_choice(model_and_data):
    g, _ = model_and_data
    data = digits_subset(64, 16)
    res = compress(g, "quantize-int8", {"calibration_samples": 32, "activations": "int16"}, data=data)
    assert {t.dtype for t in res.graph.tensors.values() if t.data is None} == {"int16"}
    assert res.report["ptq"]["outputs"][0]["snr_db"] > 40


def test_cli_compress_with_int16_activations(model_and_data, tmp_path, capsys):
    import json

    from app.cli import main
    from app.history_view import action_words
    from app.workflows.files import write_model
    from engine.serialize import load

    g, _ = model_and_data
    src, out = tmp_path / "audio16.tsgraph", tmp_path / "q16.tsgraph"
    write_model(g, str(src))
    rc = main(["compress", str(src), "--action", "quantize-int8", "--param", "activations=int16", "--param",
               "calibration_samples=32", "--dataset", "digits", "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["params"]["activations"] == "int16"
    q = load(str(out))
    assert {t.dtype for t in q.tensors.values() if t.data is None} == {"int16"}
    assert action_words("quantize-int8", doc["params"], {}).startswith("int16x8 PTQ (int16 activations)")
    assert main(["compress", str(src), "--action", "quantize-int8", "--param", "activations=int4", "--dataset",
                 "digits", "--out", str(out)]) == 2
    assert "activations" in capsys.readouterr().err


def test_profile_counts_two_byte_activations_like_the_c(model_and_data):
    from engine.profile import profile_graph

    g, x = model_and_data
    q16, _ = quantize_model(g, calibration=x, activations="int16")
    q8, _ = quantize_model(g, calibration=x)
    p16, p8 = profile_graph(q16), profile_graph(q8)
    assert p16.plan.arena_bytes == generate(q16, "a16").arena_bytes == 2 * p8.plan.arena_bytes
    assert "int16 activations" in p16.precision_note


def test_the_compress_page_lists_the_activations_choice():
    """The Compress page draws an action's params from list_actions (a selectbox for a param with choices)."""
    from engine.compress import list_actions

    spec = next(a for a in list_actions() if a["name"] == "quantize-int8")
    p = next(p for p in spec["params"] if p["name"] == "activations")
    assert p["choices"] == ["int8", "int16"] and p["default"] == "int8"
