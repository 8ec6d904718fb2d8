"""Training through PyTorch: accuracy on real digits, determinism, early stopping, masks, freezing,
distillation, fake quantization, int8 evaluation, adapt_zoo, and the `tinystudio train` command."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from app.cli import main as cli
from engine.builder import GraphBuilder
from engine.data import load_dataset, make_dataset
from engine.errors import GraphError, TinyStudioError
from engine.execute import run_graph
from engine.serialize import content_hash
from engine.train import adapt_zoo, evaluate, train

LENET = dict(epochs=15, lr=3e-3, batch_size=32, patience=5)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def lenet(digits):
    """LeNet-5 (tanh, as published) trained on the real digits: the teacher and reference of later tests."""
    g = adapt_zoo("zoo:lenet5", digits)
    t = time.perf_counter()
    trained, rep = train(g, digits, seed=0, **LENET)
    print(f"\nlenet5 on digits: val accuracy {rep.accuracy:.2%} after {rep.epochs_run} epochs "
          f"(best {rep.best_epoch}) in {time.perf_counter() - t:.1f} s")
    return g, trained, rep


def weights(g, name):
    return g.tensors[name].data


# ---- accuracy and the report -----------------------------------------------------------------------

def test_lenet5_on_digits_reaches_95_percent(digits, lenet):
    g, trained, rep = lenet
    assert rep.accuracy >= 0.95, [round(h["val_accuracy"], 3) for h in rep.history]
    assert rep.seconds < 60
    assert rep.history[0]["epoch"] == 1 and len(rep.history) == rep.epochs_run
    assert set(rep.history[0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy"}
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]
    conf = np.asarray(rep.confusion)
    assert conf.shape == (10, 10) and conf.sum() == len(digits.x_val)
    assert np.trace(conf) / conf.sum() == pytest.approx(rep.accuracy)
    # The graph keeps its structure; only constants changed.
    assert [n.op for n in trained.nodes] == [n.op for n in g.nodes]
    assert not np.array_equal(weights(trained, "c1_W"), weights(g, "c1_W"))


def test_evaluate_matches_report_and_reference_executor(digits, lenet):
    _, trained, rep = lenet
    ev = evaluate(trained, digits)
    assert ev["accuracy"] == pytest.approx(rep.accuracy) and ev["confusion"] == rep.confusion
    assert ev["loss"] == pytest.approx(rep.loss, rel=1e-5) and ev["samples"] == 359 and not ev["int8"]
    # The batched PyTorch evaluation predicts what the numpy reference executor predicts.
    ref = np.concatenate([run_graph(trained, {"input": digits.x_val[i:i + 1]})[trained.outputs[0]]
                          for i in range(40)])
    ys = np.argmax(ref, axis=1)
    assert (ys == digits.y_val[:40]).mean() >= 0.9
    assert evaluate(trained, digits, split="train")["accuracy"] >= rep.accuracy - 0.02


def test_int8_evaluation_after_ptq(digits, lenet):
    from engine.data import dataset_feeds
    from engine.passes.ptq import quantize_model

    _, trained, rep = lenet
    q, _ = quantize_model(trained, dataset_feeds(trained, digits.x_train, limit=200))
    ev = evaluate(q, digits)
    print(f"\nint8 PTQ accuracy {ev['accuracy']:.2%} vs float {rep.accuracy:.2%}")
    assert ev["int8"] and ev["samples"] == 359
    assert ev["accuracy"] >= rep.accuracy - 0.02


def test_same_seed_same_weights(digits):
    g = adapt_zoo("zoo:lenet5", digits)
    kw = dict(epochs=2, lr=3e-3, batch_size=64)
    a, ra = train(g, digits, seed=7, **kw)
    b, rb = train(g, digits, seed=7, **kw)
    c, _ = train(g, digits, seed=8, **kw)
    assert content_hash(a) == content_hash(b) and ra.history[-1]["val_loss"] == rb.history[-1]["val_loss"]
    assert content_hash(a) != content_hash(c)


def test_progress_reaches_one(digits):
    seen = []
    train(adapt_zoo("zoo:lenet5", digits), digits, epochs=2, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert "epoch 2/2" in seen[-1][1] and "val accuracy" in seen[-1][1]


def test_progress_can_cancel(digits):
    def stop(f, m):
        if f > 0.4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(adapt_zoo("zoo:lenet5", digits), digits, epochs=3, progress=stop)


# ---- early stopping --------------------------------------------------------------------------------

def test_early_stopping_keeps_the_best_epoch():
    # Random labels: the model can only memorize, so validation loss rises after the first epochs.
    rng = np.random.default_rng(0)
    ds = make_dataset("noise", rng.normal(size=(300, 1, 8, 8)), rng.integers(0, 4, 300), seed=0)
    g = adapt_zoo("zoo:lenet5", ds)
    trained, rep = train(g, ds, epochs=40, lr=1e-2, batch_size=32, patience=2)
    assert rep.early_stopped and rep.epochs_run < 40
    assert rep.best_epoch == rep.epochs_run - 2
    best = rep.history[rep.best_epoch - 1]
    assert all(h["val_loss"] >= best["val_loss"] for h in rep.history)
    assert evaluate(trained, ds)["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
    _, rep = train(g, ds, epochs=6, lr=1e-2, batch_size=32, patience=0)
    assert not rep.early_stopped and rep.epochs_run == 6


# ---- pruning masks, freezing, distillation, fake quantization ---------------------------------------

def test_weight_mask_keeps_zeros_zero(digits, lenet):
    _, trained, _ = lenet
    rng = np.random.default_rng(1)
    masks = {n: (rng.random(trained.tensors[n].shape) > 0.5).astype(np.float32) for n in ("c1_W", "f6_W")}
    out, rep = train(trained, digits, epochs=2, lr=1e-3, weight_mask=masks)
    for name, m in masks.items():
        w = weights(out, name)
        assert np.all(w[m == 0] == 0), f"{name}: {np.count_nonzero(w[m == 0])} masked weights revived"
        assert np.count_nonzero(w[m == 1]) == np.count_nonzero(m)
    assert not np.array_equal(weights(out, "c1_W")[masks["c1_W"] == 1], weights(trained, "c1_W")[masks["c1_W"] == 1])
    with pytest.raises(TinyStudioError) as e:
        train(trained, digits, epochs=1, weight_mask={"c1_W": np.ones(3)})
    assert "shape" in str(e.value)


def test_freeze_by_node_name(digits, lenet):
    _, trained, _ = lenet
    out, _ = train(trained, digits, epochs=1, freeze=["c1", "c3_W"])
    for name in ("c1_W", "c1_B", "c3_W"):
        np.testing.assert_array_equal(weights(out, name), weights(trained, name))
    assert not np.array_equal(weights(out, "c5_W"), weights(trained, "c5_W"))
    with pytest.raises(TinyStudioError) as e:
        train(trained, digits, epochs=1, freeze=["nope"])
    assert "'nope'" in str(e.value)


def test_distillation_from_a_trained_teacher(digits, lenet):
    _, teacher, trep = lenet
    student = adapt_zoo("zoo:lenet5?act=relu", digits, seed=3)
    # alpha = 1: the hard labels are ignored, so everything the student learns comes from the teacher.
    out, rep = train(student, digits, epochs=6, lr=3e-3, batch_size=32, teacher=teacher, distill_alpha=1.0)
    print(f"\ndistilled student {rep.accuracy:.2%} (teacher {trep.accuracy:.2%})")
    assert rep.accuracy >= 0.85
    untrained = evaluate(student, digits)["accuracy"]
    assert untrained < 0.5


def test_fake_quant_hook_is_called_and_its_weights_are_written(digits, lenet):
    _, trained, _ = lenet
    calls: dict[str, int] = {}

    def hook(name, w):
        calls[name] = calls.get(name, 0) + 1
        return w

    train(trained, digits, epochs=1, fake_quant=hook)
    steps = len(digits.x_train) // 64
    assert calls["c1_W"] >= steps and calls["output_W"] >= steps, calls
    out, rep = train(trained, digits, epochs=2, lr=1e-3, fake_quant={"bits": 4, "scheme": "per-channel"})
    w = weights(out, "c1_W")
    for ch in w:
        assert len(np.unique(ch)) <= 15, np.unique(ch)  # 4-bit symmetric grid: -7..7
    assert len(np.unique(weights(out, "c1_B"))) > 3  # biases stay float
    assert rep.accuracy >= 0.9
    out, rep = train(trained, digits, epochs=2, lr=1e-3, fake_quant={"scheme": "ternary"})
    for name in ("c1_W", "c3_W", "c5_W", "f6_W", "output_W"):
        vals = np.unique(weights(out, name))
        assert len(vals) <= 3 and 0.0 in vals, (name, vals)
    print(f"\nternary QAT (2 epochs from the float model): {rep.accuracy:.2%}")
    assert rep.accuracy >= 0.8


# ---- graphs: Softmax outputs, fixed reshapes, regression, shape checks --------------------------------

def mlp(classes=10, softmax=True, features=64, reshape_batch=True):
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp")
    x = b.input("x", (1, 1, 8, 8) if features == 64 else (1, features))
    if features == 64:
        # A Reshape that spells out the batch of 1, as converters write it: training must re-batch it.
        x = b.node("Reshape", [x], shape=[1, -1] if reshape_batch else [-1, 64])
    h = b.node("Gemm", [x, b.const("W1", rng.normal(0, 0.2, (32, features)).astype(np.float32)),
                        b.const("B1", np.zeros(32, np.float32))], transB=1)
    h = b.node("Relu", [h])
    y = b.node("Gemm", [h, b.const("W2", rng.normal(0, 0.2, (classes, 32)).astype(np.float32)),
                        b.const("B2", np.zeros(classes, np.float32))], transB=1)
    b.output(b.node("Softmax", [y], axis=-1) if softmax else y)
    return b.build()


def test_softmax_graph_trains_on_logits_and_keeps_its_softmax(digits):
    g = mlp()
    out, rep = train(g, digits, epochs=5, lr=3e-3)
    assert rep.accuracy >= 0.9
    assert out.nodes[-1].op == "Softmax" and out.outputs == g.outputs
    probs = run_graph(out, {"x": digits.x_val[:1]})[out.outputs[0]]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert evaluate(out, digits)["accuracy"] == pytest.approx(rep.accuracy)


def test_regression_reports_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    ds = make_dataset("lin", x, x @ rng.normal(size=8) + 0.1 * rng.normal(size=400), task="regression")
    out, rep = train(mlp(classes=1, softmax=False, features=8), ds, epochs=30, lr=1e-2, batch_size=32)
    print(f"\nregression R^2 {rep.accuracy:.3f}")
    assert rep.confusion is None and rep.accuracy > 0.9
    assert evaluate(out, ds)["accuracy"] == pytest.approx(rep.accuracy, abs=1e-6)


def test_shape_mismatches_are_one_line_errors(digits):
    with pytest.raises(GraphError) as e:
        train(mlp(classes=7), digits, epochs=1)
    assert "10 classes" in str(e.value) and "[1, 7]" in str(e.value)
    with pytest.raises(GraphError) as e:
        train(adapt_zoo("zoo:sensor_cnn1d", load_dataset("synthetic-sensor")), digits, epochs=1)
    assert "[3, 128]" in str(e.value) and "[1, 8, 8]" in str(e.value)
    with pytest.raises(TinyStudioError):
        train(mlp(), digits, epochs=0)


def test_divergence_is_reported(digits):
    with pytest.raises(TinyStudioError) as e:
        train(mlp(), digits, epochs=2, fake_quant=lambda name, w: w * float("nan") if name == "W2" else w)
    assert "diverged in epoch 1" in str(e.value) and "learning rate" in str(e.value)


# ---- adapt_zoo ---------------------------------------------------------------------------------------

def test_adapt_zoo_sizes_models_for_the_data(digits):
    g = adapt_zoo("zoo:lenet5", digits)
    assert g.tensors["input"].shape == (1, 1, 8, 8)
    assert g.nodes[0].op == "Resize" and g.nodes[0].attrs["sizes"] == [16, 16]  # LeNet-5 needs >= 16x16
    assert g.tensors[g.outputs[0]].shape == (1, 10)
    assert adapt_zoo("zoo:lenet5?resolution=32", digits).nodes[0].attrs["sizes"] == [32, 32]
    sensor = load_dataset("synthetic-sensor")
    s = adapt_zoo("zoo:sensor_cnn1d?width=0.5", sensor)
    assert s.tensors["input"].shape == (1, 3, 128) and s.tensors[s.outputs[0]].shape == (1, 6)
    assert all(n.op != "Resize" for n in s.nodes)
    shapes = adapt_zoo("zoo:ic_resnet8", load_dataset("synthetic-shapes"))
    assert shapes.tensors["input"].shape == (1, 1, 16, 16) and "resolution=16" in shapes.name


@pytest.mark.parametrize("spec,words", [
    ("zoo:lenet5?classes=5", ["classes=5", "contradicts"]),
    ("zoo:micro_speech", ["frames", "8"]),
    ("zoo:sensor_cnn1d", ["time series"]),
    ("zoo:ad_autoencoder", ["feature vectors"]),
    ("zoo:nope", ["nope"]),
])
def test_adapt_zoo_errors(digits, spec, words):
    with pytest.raises(TinyStudioError) as e:
        adapt_zoo(spec, digits)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


# ---- the command line --------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = cli(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_writes_a_model_that_reimports_with_the_same_accuracy(tmp_path, capsys, digits):
    from engine.importers import load_model

    out = tmp_path / "m.onnx"
    code, stdout, err = run_cli(capsys, "train", "zoo:lenet5", "--dataset", "digits", "--epochs", "12",
                                "--out", str(out), "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert set(res) >= {"model", "dataset", "accuracy", "epochs_run", "history", "out"}
    assert res["dataset"] == "digits" and res["model"].startswith("zoo:lenet5?resolution=16")
    assert res["accuracy"] >= 0.95 and len(res["history"]) == res["epochs_run"]
    assert "epoch 1/12" in err  # progress on stderr
    g = load_model(str(out))
    assert evaluate(g, digits)["accuracy"] == pytest.approx(res["accuracy"])
    ts = tmp_path / "m.tsgraph"
    code, stdout, err = run_cli(capsys, "train", str(out), "--dataset", "digits", "--epochs", "1", "--lr", "1e-4",
                                "--out", str(ts), "--quiet")
    assert code == 0 and err == "" and "accuracy" in stdout
    from engine.serialize import load

    assert evaluate(load(str(ts)), digits)["accuracy"] >= 0.9


def test_cli_bad_data_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    x = np.ones((10, 1, 8, 8), np.float32)
    x[4, 0, 0, 0] = np.nan
    np.savez(bad, x=x, y=np.arange(10) % 2)
    out = tmp_path / "m.onnx"
    code, stdout, err = run_cli(capsys, "train", "zoo:lenet5", "--dataset", str(bad), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "sample 4" in err and "NaN" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    code, _, err = run_cli(capsys, "train", "zoo:lenet5", "--dataset", "digits", "--out", str(tmp_path / "m.h5"))
    assert code == 2 and ".onnx or .tsgraph" in err


def test_cli_datasets(capsys):
    code, stdout, _ = run_cli(capsys, "datasets", "--json")
    assert code == 0 and "digits" in {e["name"] for e in json.loads(stdout)}
    code, stdout, _ = run_cli(capsys, "datasets")
    assert code == 0 and stdout.startswith("digits")
