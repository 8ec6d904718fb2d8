"""The workflows the pages and the CLI share (app/workflows/): one compress workflow whose CLI output and page job
store the same provenance, the page's candidate file, predictions without fine-tuning, and model files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from app.workflows.compress import accepted_params, compress_job, compress_version, predict_effect
from app.workflows.files import write_model
from app.workflows.train import dataset_record
from engine.data import load_dataset
from engine.serialize import content_hash, load
from engine.train import adapt_zoo
from tests.fixtures.digits import digits_subset


@pytest.fixture(scope="module")
def digits():
    return digits_subset(300)


@pytest.fixture(scope="module")
def lenet(digits):
    return adapt_zoo("zoo:lenet5", digits)


def test_the_page_job_stores_what_the_cli_prints_as_provenance(digits, lenet, tmp_path, capsys):
    params = {"sparsity": 0.5, "epochs": 0}
    out = compress_version(lenet, "prune-magnitude", params, digits)
    assert out.pretrained is None and out.result.params["sparsity"] == 0.5
    assert out.provenance["dataset"] == dataset_record(digits, 0)  # the record a trained version carries
    assert out.provenance["accuracy"] == out.result.after["accuracy"] and out.provenance["sparsity"] == 0.5

    job = compress_job(lambda vid: {7: lenet}[vid], 7, None, "prune-magnitude", params, digits)(lambda f, m: None)
    try:
        assert job["version"] == 7 and accepted_params(job) == out.provenance
        assert job["dataset"] == out.provenance["dataset"] and json.loads(json.dumps(job)) == job
        assert content_hash(load(job["candidate"])) == content_hash(out.result.graph)
    finally:
        import os

        os.remove(job["candidate"])

    g = tmp_path / "lenet.tsgraph"
    write_model(lenet, str(g))
    rc = main(["compress", str(g), "--action", "prune-magnitude", "--param", "sparsity=0.5", "--param", "epochs=0",
               "--dataset", "digits", "--out", str(tmp_path / "p.tsgraph"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["pretrained"] is None
    full = load_dataset("digits")  # the CLI loads the whole data set: its record, split and normalization
    assert doc["provenance"] == {**out.provenance, "accuracy": doc["after"]["accuracy"],
                                 "dataset": dataset_record(full, 0)}


def test_a_zoo_model_is_trained_first_with_the_train_pages_settings(digits):
    from engine.train import train

    g = adapt_zoo("zoo:lenet5", digits)
    out = compress_version(g, "fold-bn", {}, digits, pretrain=("zoo:lenet5", 1))
    want, rep = train(g, digits, epochs=1, lr=3e-3, batch_size=32, seed=0, patience=5)
    assert out.pretrained["epochs_run"] == 1 and out.pretrained["accuracy"] == rep.accuracy
    assert "zoo:lenet5 is randomly initialized: trained on digits for 1 epochs" in out.pretrained["note"]
    assert content_hash(out.result.graph) == content_hash(want)  # fold-bn on a graph without BN: unchanged
    assert compress_version(g, "fold-bn", {}, None, pretrain=("zoo:lenet5", 1)).pretrained is None  # no data


def test_prediction_switches_fine_tuning_off_and_old_jobs_keep_their_fields(digits, lenet):
    pred = predict_effect(lenet, "prune-magnitude", {"sparsity": 0.5, "epochs": 3}, digits)
    assert pred["params"]["epochs"] == 0 and pred["params"]["sparsity"] == 0.5
    assert predict_effect(lenet, "fold-bn", {}, None)["params"] == compress_version(lenet, "fold-bn", {}, None) \
        .result.to_json()["params"]
    old = {"params": {"sparsity": 0.5}, "after": {"accuracy": 0.9}, "dataset": {"source": "builtin:digits"}}
    assert accepted_params(old) == {"sparsity": 0.5, "accuracy": 0.9, "dataset": {"source": "builtin:digits"}}


def test_write_model_writes_int4_onnx_with_opset_21_and_leaves_nothing_on_failure(digits, lenet, tmp_path):
    import onnx

    from engine.compress import compress
    from engine.compress.mixed import int4_weights

    qg = compress(lenet, "quantize-int8", {"calibration_samples": 32}, digits).graph
    gemm = next(n.name for n in qg.nodes if n.op in ("Gemm", "FullyConnected", "MatMul", "Conv"))
    g4 = int4_weights(qg, [gemm])
    assert any(t.dtype == "int4" for t in g4.tensors.values())
    write_model(g4, str(tmp_path / "m.onnx"))
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 21  # older opsets have no INT4
    write_model(lenet, str(tmp_path / "f.onnx"))
    assert onnx.load(str(tmp_path / "f.onnx")).opset_import[0].version < 21
    write_model(g4, str(tmp_path / "m.tsgraph"))
    assert content_hash(load(str(tmp_path / "m.tsgraph"))) == content_hash(g4)
    with pytest.raises(Exception):
        write_model(lenet, str(tmp_path / "no-such-folder" / "x.tsgraph"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.onnx", "m.onnx", "m.tsgraph"]  # no temporary left
