"""Any action after any action: data sets feed NHWC and int8 versions (layout transpose and input quantization
adapted centrally), int8 versions are worked on through their float form, and the chain quantize-int8 ->
prune-channels -> qat-int8 -> distill runs on LeNet-5 / digits, each step measured; "Try it" on one sample
(float and int8) against the executors; the CLI's `run --dataset --sample` and `train --json` provenance."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from app.cli import main
from app.workflows.train import TrainSettings, fit_to_data, per_class_accuracy, train_version
from engine.compress import compress
from engine.compress.base import float_form, is_quantized_graph
from engine.compress.measure import predict
from engine.data import load_dataset
from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.int8 import run_int8
from engine.passes.ptq import dequantize_outputs, quantize_inputs
from engine.train import adapt_zoo, evaluate, train
from engine.train.graphs import adapt_input_layout, data_mismatch, sample_shape
from engine.tryit import dataset_sample, sample_from_npy, try_input
from engine.zoo import build_zoo_model
from tests.fixtures.digits import digits_subset, trained_zoo


@pytest.fixture(scope="module")
def data():
    return digits_subset(480, 120)


@pytest.fixture(scope="module")
def lenet(data):
    return trained_zoo("zoo:lenet5", data, epochs=6)


@pytest.fixture(scope="module")
def int8(lenet, data):
    return compress(lenet, "quantize-int8", {"calibration_samples": 64}, data).graph


def test_int8_version_takes_the_channels_first_data(int8, data):
    assert int8.tensors[int8.inputs[0]].shape == (1, 8, 8, 1)  # NHWC, int8 input
    assert sample_shape(int8) == (1, 8, 8) and data_mismatch(int8, data) is None
    # evaluate() on the int8 graph = the integer executor fed transposed and quantized samples by hand.
    name, out = int8.inputs[0], int8.outputs[0]
    q = int8.meta["quantization"]["inputs"][name]
    preds = []
    for x in data.x_val[:40]:
        xq = np.clip(np.round(x.transpose(1, 2, 0)[None] / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
        preds.append(int(np.argmax(run_int8(int8, {name: xq})[out])))
    got = predict(int8, data.x_val[:40])[out].argmax(-1)
    assert got.tolist() == preds
    sub = dataclasses.replace(data, x_val=data.x_val[:40], y_val=data.y_val[:40])
    assert evaluate(int8, sub)["accuracy"] == pytest.approx(np.mean(np.array(preds) == data.y_val[:40]))


def test_float_form_is_the_dequantized_int8_graph(int8, data):
    fg = float_form(int8)
    assert not is_quantized_graph(fg) and all(t.quant is None for t in fg.tensors.values())
    assert fg.meta["input_layout"] == int8.meta["input_layout"] and "quantization" not in fg.meta
    for name, t in int8.tensors.items():
        if t.data is not None and t.quant is not None:
            np.testing.assert_array_equal(fg.tensors[name].data, t.quant.dequantize(t.data))
    # The float form computes what the int8 graph approximates: the same class on (almost) every sample.
    x = data.x_val[:60]
    a = predict(fg, x)[fg.outputs[0]].argmax(-1)
    b = predict(int8, x)[int8.outputs[0]].argmax(-1)
    assert (a == b).mean() >= 0.95


def test_chain_quantize_prune_qat_distill(lenet, int8, data):
    """Each step's input is the previous step's output; before/after are measured on the data every time."""
    acc0 = evaluate(lenet, data)["accuracy"]
    assert acc0 > 0.85
    pruned = compress(int8, "prune-channels", {"keep": 0.6, "epochs": 1}, data)
    assert any("the version is int8" in n for n in pruned.notes)
    assert pruned.before["accuracy"] is not None and pruned.after["accuracy"] is not None
    assert not is_quantized_graph(pruned.graph) and pruned.after["macs"] < pruned.before["macs"]
    qat = compress(pruned.graph, "qat-int8", {"epochs": 1, "calibration_samples": 64}, data)
    assert is_quantized_graph(qat.graph) and qat.after["accuracy"] > 0.8
    assert qat.graph.tensors[qat.graph.inputs[0]].shape == (1, 8, 8, 1)
    # distill the int8 student with the int8 version as the teacher (the studio passes the parent version).
    dist = compress(qat.graph, "distill", {"epochs": 1}, data, teacher=int8)
    assert dist.after["accuracy"] > 0.8 and dist.report["teacher_accuracy"] == pytest.approx(
        evaluate(int8, data)["accuracy"])
    # And it goes on: quantize the distilled float graph again.
    again = compress(dist.graph, "quantize-int8", {"calibration_samples": 64}, data)
    assert is_quantized_graph(again.graph) and again.after["accuracy"] > 0.8


def test_channels_last_graph_without_record_is_adapted(lenet, data):
    """An NHWC float graph that does not record its layout (as an imported TFLite model) is fed transposed data."""
    fg = float_form(compress(lenet, "quantize-int8", {"calibration_samples": 32}, data).graph)
    bare = fg.copy()
    bare.meta = {k: v for k, v in bare.meta.items() if k != "input_layout"}
    assert sample_shape(bare) == (8, 8, 1) and data_mismatch(bare, data) is None
    adapted = adapt_input_layout(bare, data.input_shape)
    assert adapted.meta["input_layout"]["input"]["perm"] == [0, 2, 3, 1] and "input_layout" not in bare.meta
    assert evaluate(bare, data)["accuracy"] == pytest.approx(evaluate(fg, data)["accuracy"])
    from engine.zoo.blank import blank_graph
    lookalike = blank_graph((1, 8, 8, 1))  # takes (8, 8, 1) but has no channels-last layer: not transposed
    assert adapt_input_layout(lookalike, data.input_shape) is lookalike
    wrong = dataclasses.replace(data, input_shape=(1, 4, 16))
    assert "takes samples of shape [8, 8, 1]" in data_mismatch(bare, wrong)


def test_try_it_float_and_int8_against_the_executors(lenet, int8, data):
    x, label, i = dataset_sample(data, 5)
    assert i == 5 and label == int(data.y_val[5])
    res = try_input(int8, x, data.class_names, label)
    assert [m["mode"] for m in res["modes"]] == ["float", "int8"] and res["int8_available"]
    name, out = int8.inputs[0], int8.outputs[0]
    ref = dequantize_outputs(int8, run_int8(int8, quantize_inputs(int8, {name: x[None]})))[out][0]
    m8 = res["modes"][1]
    assert m8["prediction"] == int(np.argmax(ref)) and np.allclose(m8["raw"], ref, atol=1e-6)
    assert sum(m8["scores"]) == pytest.approx(1.0)
    f = try_input(lenet, x, data.class_names, label)["modes"]
    ref_f = run_graph(lenet, {lenet.inputs[0]: x[None]})[lenet.outputs[0]][0]
    assert len(f) == 1 and np.allclose(f[0]["raw"], ref_f, atol=1e-5)
    with pytest.raises(TinyStudioError, match="out of range"):
        dataset_sample(data, 10_000)
    with pytest.raises(TinyStudioError, match="takes samples of shape"):
        try_input(build_zoo_model("zoo:lenet5"), x)
    import io
    buf = io.BytesIO()
    np.save(buf, np.ones((1, 8, 8), np.float32))
    got = sample_from_npy(buf.getvalue(), "one.npy", data, data.input_shape)
    assert np.allclose(got, (1.0 - np.array(data.normalization["mean"])) / np.array(data.normalization["std"]))
    with pytest.raises(TinyStudioError, match=r"bad.npy: array of shape \[2, 8, 8\]"):
        buf = io.BytesIO()
        np.save(buf, np.ones((2, 8, 8)))
        sample_from_npy(buf.getvalue(), "bad.npy", data, data.input_shape)
    with pytest.raises(TinyStudioError, match="not a readable .npy"):
        sample_from_npy(b"\x80\x04pickle", "evil.npy", data, data.input_shape)


def test_train_workflow_adapts_zoo_and_records_provenance(data):
    with pytest.raises(TinyStudioError, match="takes samples of shape"):
        fit_to_data(build_zoo_model("zoo:lenet5"), data)
    g, note = fit_to_data(build_zoo_model("zoo:lenet5"), data, zoo_spec="zoo:lenet5")
    assert "rebuilt for data set 'digits'" in note and sample_shape(g) == (1, 8, 8)
    seen = []
    res = train_version(g, data, TrainSettings(epochs=2, batch_size=32), on_epoch=seen.append, adapted=note)
    p = res.provenance
    assert [r["epoch"] for r in seen] == [1, 2] == [h["epoch"] for h in res.report.history]
    assert p["trained"] is True and p["accuracy"] == res.report.accuracy == res.graph.meta["training"]["accuracy"]
    assert p["dataset"]["source"] == "builtin:digits" and p["dataset"]["normalization"] == data.normalization
    assert (p["dataset"]["train"], p["dataset"]["val"]) == (480, 120) and p["adapted"] == note
    rows = per_class_accuracy(res.report.confusion, data.class_names)
    assert sum(r["samples"] for r in rows) == 120
    assert sum(r["correct"] for r in rows) / 120 == pytest.approx(p["accuracy"])
    with pytest.raises(TinyStudioError, match="epochs"):
        TrainSettings(epochs=0).check()


def test_cli_run_sample_and_train_provenance(tmp_path, capsys, int8):
    from engine.serialize import save
    path = tmp_path / "q.tsgraph"
    save(int8, str(path))
    assert main(["run", str(path), "--dataset", "digits", "--sample", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    full = load_dataset("digits")
    assert doc["sample"] == 3 and doc["label"] == int(full.y_val[3])
    assert [m["mode"] for m in doc["modes"]] == ["float", "int8"]
    assert main(["run", str(path), "--dataset", "digits", "--sample", "9999"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.tsgraph"), "--dataset", "digits"]) == 2
    out = tmp_path / "m.tsgraph"
    assert main(["train", "zoo:lenet5", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--json",
                 "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["provenance"]["accuracy"] == doc["accuracy"]
    assert doc["provenance"]["dataset"]["source"] == "builtin:digits"
    assert set(doc["provenance"]) >= {"trained", "accuracy", "dataset", "settings", "epochs_run"}


def test_try_it_image_maps_onto_the_data_range(lenet, data):
    """A digits sample drawn as a PNG (0..16 -> 0..255) comes back as (almost) the same normalized sample."""
    import io

    from PIL import Image

    from engine.data import normalize
    from engine.tryit import raw_range, sample_from_image
    lo, hi = raw_range(data)
    assert (lo, hi) == (0.0, 16.0)
    raw = load_dataset("digits")  # normalized; undo it to get gray levels
    x = raw.x_val[7] * np.asarray(raw.normalization["std"])[:, None, None] + np.asarray(raw.normalization["mean"])[
        :, None, None]
    buf = io.BytesIO()
    Image.fromarray(np.round(x[0] / 16 * 255).astype(np.uint8), "L").save(buf, "PNG")
    got = sample_from_image(buf.getvalue(), "seven.png", data)
    want = normalize(x[None], data.normalization)[0]
    assert got.shape == (1, 8, 8) and np.abs(got - want).max() < 0.05
    inv = sample_from_image(buf.getvalue(), "seven.png", data, invert=True)
    assert np.allclose(inv, normalize((16 - np.round(x / 16 * 255) / 255 * 16)[None], data.normalization)[0],
                       atol=1e-4)
    with pytest.raises(TinyStudioError, match="not a readable image"):
        sample_from_image(b"GIF89a-broken", "x.gif", data)
    sensor = load_dataset("synthetic-sensor")
    with pytest.raises(TinyStudioError, match="does not hold images"):
        sample_from_image(buf.getvalue(), "seven.png", sensor)


def test_training_an_int8_version_records_the_int8_accuracy(int8, data):
    res = train_version(int8, data, TrainSettings(epochs=1, batch_size=32))
    assert is_quantized_graph(res.graph)
    assert res.provenance["accuracy"] == pytest.approx(evaluate(res.graph, data)["accuracy"])
