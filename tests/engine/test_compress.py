"""Compression actions: each action's contract (input untouched, output valid, before/after measured), BN
folding equivalence, channel pruning through residual adds (shapes, MACs, and the same function as zeroing
the removed channels), low-rank reconstruction error vs rank, ternary and int4 weight values, exact
magnitude sparsity, early-exit outputs, pruned and factorized models exported to C bit-exact, and the CLI.

Small data (a slice of the real `digits` set) and one or two epochs keep the whole file fast."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.compress import ACTIONS, CompressError, compress
from engine.compress.base import is_quantized_graph
from engine.compress.channels import analyze, apply_pruning
from engine.compress.lowrank import factorize, rank_for_energy, svd_factors, tucker2, tucker2_reconstruct
from engine.compress.mixed import int4_weights
from engine.compress.ternary import ternarize
from engine.execute import run_graph
from engine.serialize import content_hash
from engine.summary import graph_cost
from engine.train import adapt_zoo, train
from engine.validate import infer_shapes
from engine.zoo import build_zoo_model
from tests.fixtures.digits import digits_subset, trained_zoo

FAST = {"epochs": 1}
PARAMS = {  # one fast setting per action
    "fold-bn": {}, "quantize-int8": {"calibration_samples": 32}, "qat-int8": {**FAST, "calibration_samples": 32},
    "mixed-precision": {"calibration_samples": 32, "eval_samples": 64}, "ternary": FAST,
    "prune-magnitude": {**FAST, "sparsity": 0.3}, "prune-channels": FAST, "low-rank": FAST,
    "distill": FAST, "early-exit": {"epochs": 3},
}


def assert_close(got, want, atol=1e-5, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = np.argwhere(~np.isclose(got, want, atol=atol, rtol=1e-4))
    assert not bad.size, f"{what}: {len(bad)} values differ, first " + ", ".join(
        f"{tuple(int(i) for i in p)}: got {got[tuple(p)]:.7g} want {want[tuple(p)]:.7g}" for p in bad[:5])


@pytest.fixture(scope="module")
def data():
    return digits_subset(320, 96)


@pytest.fixture(scope="module")
def lenet(data):
    return trained_zoo("zoo:lenet5?act=relu", data, epochs=4)


def resnet(bn=True, filters=4):
    return build_zoo_model(f"zoo:ic_resnet8?resolution=8&channels=1&filters={filters}&bn={str(bn).lower()}")


def feeds(g, seed=0):
    rng = np.random.default_rng(seed)
    return {g.inputs[0]: rng.standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)}


# ---- the contract of every action --------------------------------------------------------------------

@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_contract(action, lenet, data):
    before_hash = content_hash(lenet)
    res = compress(lenet, action, PARAMS[action], data=data)
    assert content_hash(lenet) == before_hash, f"{action} mutated its input graph"
    out = infer_shapes(res.graph)  # raises if the result is not a valid graph
    assert out.inputs == lenet.inputs and out.outputs[:1] == lenet.outputs
    for side in (res.before, res.after):
        assert {"macs", "weight_bytes", "activation_peak_bytes", "accuracy"} <= side.keys()
        assert 0.0 <= side["accuracy"] <= 1.0
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["action"] == action and doc["before"]["macs"] == graph_cost(lenet).macs
    assert res.graph.meta["compressed"][-1]["action"] == action


def test_unknown_action_and_bad_params(lenet, data):
    with pytest.raises(CompressError, match="actions: fold-bn, quantize-int8"):
        compress(lenet, "shrink", data=data)
    with pytest.raises(CompressError, match="no parameter 'sparsty'; parameters: sparsity"):
        compress(lenet, "prune-magnitude", {"sparsty": 0.5}, data=data)
    with pytest.raises(CompressError, match="'keep' must be float"):
        compress(lenet, "prune-channels", {"keep": "0"}, data=data)
    with pytest.raises(CompressError, match="needs a data set"):
        compress(lenet, "quantize-int8")
    qg = compress(lenet, "quantize-int8", PARAMS["quantize-int8"], data=data).graph
    # An int8 version is pruned through its float form, and the result says it is float again.
    res = compress(qg, "prune-channels", FAST, data=data)
    assert not is_quantized_graph(res.graph) and any("quantize it again" in n for n in res.notes)


# ---- function-preserving and structural checks -------------------------------------------------------

def test_fold_bn_preserves_function():
    g = resnet(bn=True)
    res = compress(g, "fold-bn")
    assert not any(n.op == "BatchNormalization" for n in res.graph.nodes)
    assert res.report["batchnorms_folded"] == sum(n.op == "BatchNormalization" for n in g.nodes) > 0
    assert res.after["accuracy"] is None  # no data, no accuracy
    for seed in range(3):
        f = feeds(g, seed)
        assert_close(run_graph(res.graph, f)[g.outputs[0]], run_graph(g, f)[g.outputs[0]], 1e-5, "fold-bn")


def _zero_removed(g, cg, removed):
    """The original graph with the removed classes' output channels set to zero (weights and bias) in every
    layer that produces them (convs, FCs and depthwise convs that follow their input)."""
    z = g.copy()
    for node in z.nodes:
        info = cg.node_info.get(node.name, {})
        if info.get("kind") not in ("conv", "gemm", "depthwise"):
            continue
        gone = np.isin(cg.roots(info["out"]), list(removed))
        w = z.tensors[node.inputs[1]]
        w.data = w.data.copy()
        w.data[gone] = 0.0
        if len(node.inputs) > 2 and node.inputs[2]:
            b = z.tensors[node.inputs[2]]
            b.data = b.data.copy()
            b.data[gone] = 0.0
    return z


def concat_graph():
    """Two conv branches concatenated on channels, a depthwise conv, then a conv and an FC."""
    from engine.builder import GraphBuilder
    rng = np.random.default_rng(3)
    b = GraphBuilder("concat")
    x = b.input("X", (1, 2, 6, 6))
    c = lambda name, shape: b.const(name, rng.standard_normal(shape).astype(np.float32) * 0.5)  # noqa: E731
    a = b.node("Relu", [b.node("Conv", [x, c("Wa", (3, 2, 3, 3)), c("Ba", (3,))], pads=[1, 1, 1, 1])])
    bb = b.node("Relu", [b.node("Conv", [x, c("Wb", (4, 2, 1, 1)), c("Bb", (4,))])])
    y = b.node("Concat", [a, bb], axis=1)
    y = b.node("Conv", [y, c("Wd", (7, 1, 3, 3)), c("Bd", (7,))], group=7, pads=[1, 1, 1, 1])
    y = b.node("Conv", [b.node("Relu", [y]), c("Wc", (5, 7, 1, 1)), c("Bc", (5,))])
    y = b.node("Flatten", [b.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])], axis=1)
    b.output(b.node("Gemm", [y, c("Wf", (3, 45)), c("Bf", (3,))], transB=1))
    return b.build()


def nhwc_resnet():
    from engine.passes import to_nhwc
    g, _ = to_nhwc(resnet(bn=False, filters=4))
    return g


@pytest.mark.parametrize("make", [lambda: resnet(bn=False, filters=4), concat_graph, nhwc_resnet,
                                  lambda: build_zoo_model("zoo:kws_dscnn?filters=8&blocks=2&bn=false")],
                         ids=["resnet8", "concat-depthwise", "resnet8-nhwc", "ds-cnn"])
def test_pruned_graph_computes_the_zeroed_channels_function(make):
    g = make()
    cg = analyze(g)
    classes = cg.classes()
    removed = set(list(classes)[::3])
    assert removed
    pruned = apply_pruning(g, cg, removed)
    assert graph_cost(pruned).macs < graph_cost(g).macs
    if g.name == "concat":  # channels of both concatenated branches go, and the depthwise conv follows
        cat = next(n for n in pruned.nodes if n.op == "Concat")
        assert pruned.tensors[cat.inputs[0]].shape[1] < 3 and pruned.tensors[cat.inputs[1]].shape[1] < 4
        dw = next(n for n in pruned.nodes if n.attrs.get("group", 1) > 1)
        assert dw.attrs["group"] == pruned.tensors[cat.outputs[0]].shape[1] < 7
    zeroed = _zero_removed(g, cg, removed)
    for seed in range(2):
        f = feeds(g, seed)
        assert_close(run_graph(pruned, f)[g.outputs[0]], run_graph(zeroed, f)[g.outputs[0]], 1e-4, "pruned")


def test_residual_adds_tie_channels():
    g = resnet(bn=False, filters=4)
    cg = analyze(g)
    classes = cg.classes()
    tied = [{layer for layer, _ in m} for m in classes.values() if len({layer for layer, _ in m}) > 1]
    assert tied, "the residual adds should tie the channels of both branches"
    assert {"conv1", "stack1_conv2"} in tied and {"stack2_conv2", "stack2_shortcut"} in tied
    pruned = apply_pruning(g, cg, set(list(classes)[::3]))
    for n in pruned.nodes:  # residual operands keep matching channel counts
        if n.op == "Add":
            assert pruned.tensors[n.inputs[0]].shape == pruned.tensors[n.inputs[1]].shape, n.name


def test_prune_channels_action_reaches_mac_target(data):
    g = adapt_zoo("zoo:ic_resnet8?filters=4", data)
    res = compress(g, "prune-channels", {"keep": 0.5, "epochs": 1, "criterion": "taylor", "taylor_samples": 32},
                   data=data)
    assert res.after["macs"] <= 0.5 * res.before["macs"]
    assert res.after["activation_peak_bytes"] < res.before["activation_peak_bytes"]
    assert res.after["weight_bytes"] < res.before["weight_bytes"]
    ch = res.report["channels"]
    assert ch["stack2_conv2"]["after"] == ch["stack2_shortcut"]["after"]  # pruned together across the Add
    assert ch["fc"]["after"] == ch["fc"]["before"]  # classes are never pruned


def test_lowrank_error_decreases_with_rank():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((24, 16)) @ np.diag(0.7 ** np.arange(16)) @ rng.standard_normal((16, 16))
    errs = [np.linalg.norm(np.matmul(*svd_factors(w, r)) - w) for r in range(1, 17)]
    assert all(a >= b - 1e-9 for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-9 * np.linalg.norm(w)
    s = np.linalg.svd(w, compute_uv=False)
    r = rank_for_energy(s, 0.9)
    assert (s[:r] ** 2).sum() / (s ** 2).sum() >= 0.9 > (s[:r - 1] ** 2).sum() / (s ** 2).sum()
    k = rng.standard_normal((12, 8, 3, 3))
    terr = [np.linalg.norm(tucker2_reconstruct(*tucker2(k, ro, ri)) - k)
            for ro, ri in ((1, 1), (2, 2), (4, 4), (6, 6), (8, 8), (12, 8))]
    assert all(a >= b - 1e-9 for a, b in zip(terr, terr[1:])), terr
    assert terr[-1] < 1e-9 * np.linalg.norm(k)


def test_lowrank_full_rank_keeps_function():
    g = build_zoo_model("zoo:lenet5?resolution=16&act=relu")
    f = feeds(g)
    want = run_graph(g, f)[g.outputs[0]]
    work = g.copy()
    c3 = work.tensors[work.node("c3").inputs[1]].shape
    f6 = work.tensors[work.node("f6").inputs[1]].shape
    factorize(work, {"layer": "c3", "kind": "tucker2", "ranks": (c3[0], c3[1])})
    factorize(work, {"layer": "f6", "kind": "svd", "ranks": (min(f6),)})
    assert_close(run_graph(infer_shapes(work), f)[g.outputs[0]], want, 1e-4, "full-rank factors")


def test_lowrank_action_meets_weight_target(lenet, data):
    res = compress(lenet, "low-rank", {"target": "weights", "keep": 0.5, "epochs": 1}, data=data)
    assert res.report["weights_after"] <= 0.5 * res.report["weights_before"]
    assert res.after["weight_bytes"] < 0.6 * res.before["weight_bytes"]
    assert {ly["kind"] for ly in res.report["layers"]} == {"svd", "tucker2"}


def test_ternary_weights_and_scales(lenet, data):
    for scale in ("absmean", "median"):
        res = compress(lenet, "ternary", {"epochs": 1, "scale": scale}, data=data)
        tern = [t for t in res.graph.tensors.values() if t.data is not None and t.quant is not None]
        assert len(tern) == len(res.report["layers"]) == 5
        for t in tern:
            assert t.dtype == "int8" and set(np.unique(t.data).tolist()) <= {-1, 0, 1}, t.name
            assert np.all(t.quant.zero_point == 0) and np.all(t.quant.scale > 0)
        assert res.report["storage"]["entropy_1_58_bit_bytes"] < res.report["storage"]["stored_int8_bytes"] / 5 + 1
    w = np.random.default_rng(1).standard_normal((6, 10))
    q, s = ternarize(w, 0)
    assert_close(s, np.abs(w).mean(1), 1e-6, "absmean scale")
    q2, s2 = ternarize(q * s[:, None], 0)  # already ternary (what training writes back): recovered exactly
    assert np.array_equal(q2, q) and np.allclose(s2, s)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_sparsity_is_exact(lenet, data, scope):
    res = compress(lenet, "prune-magnitude", {"sparsity": 0.3, "scope": scope, "epochs": 1}, data=data)
    rep = res.report
    ws = [res.graph.tensors[res.graph.node(ly["layer"]).inputs[1]].data for ly in rep["layers"]]
    if scope == "global":
        n = sum(w.size for w in ws)
        assert sum(int((w == 0).sum()) for w in ws) == rep["masked_weights"] == round(0.3 * n)
    else:
        for w in ws:
            assert int((w == 0).sum()) == round(0.3 * w.size)
    assert res.after["weight_bytes"] == res.before["weight_bytes"] and res.after["macs"] == res.before["macs"]
    st = rep["storage_bytes"]["float32"]
    assert st["bitmap"] < st["dense"] and rep["macs_nonzero"] < rep["macs_dense"]


def test_mixed_precision_int4(lenet, data):
    res = compress(lenet, "mixed-precision", {"target": "bytes", "keep": 0.7, "calibration_samples": 32,
                                              "eval_samples": 48}, data=data)
    g = res.graph
    assert is_quantized_graph(g)
    int4 = [t for t in g.tensors.values() if t.dtype == "int4"]
    assert int4 and len(int4) == len(res.report["int4_layers"])
    for t in int4:
        assert t.data.min() >= -7 and t.data.max() <= 7
    assert res.report["mixed_weight_bytes"] <= 0.7 * res.report["int8_weight_bytes"]
    assert res.after["weight_bytes"] < res.before["weight_bytes"] / 4
    sens = res.report["sensitivity"]
    assert len(sens) == 5 and all("accuracy_drop_points" in s for s in sens)
    assert "int4_packed_in_c" in res.report["c_export"] or "error" in res.report["c_export"]


def test_int4_requantization_keeps_bias_consistent(lenet, data):
    qg = compress(lenet, "quantize-int8", PARAMS["quantize-int8"], data=data).graph
    g4 = int4_weights(qg, ["f6"])
    node = g4.node("f6")
    w, b, x = (g4.tensors[node.inputs[i]] for i in (1, 2, 0))
    assert w.dtype == "int4"
    assert np.allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)


def test_early_exit_adds_output_and_reports_savings(data):
    g, _ = train(adapt_zoo("zoo:ic_resnet8?filters=4", data), data, epochs=2, lr=3e-3, batch_size=32)
    res = compress(g, "early-exit", {"after": "stack2_relu", "epochs": 3, "threshold": 0.5}, data=data)
    out = res.graph
    assert len(out.outputs) == 2 and out.outputs[0] == g.outputs[0]
    meta = out.meta["early_exit"]
    assert meta["output"] == out.outputs[1] and meta["threshold"] == 0.5
    assert 0 < meta["macs_to_exit"] < meta["macs_without_exit"] < meta["macs_full"]
    v = res.report["validation"]
    assert 0.0 <= v["exit_fraction"] <= 1.0
    expect = v["exit_fraction"] * meta["macs_to_exit"] + (1 - v["exit_fraction"]) * meta["macs_full"]
    assert abs(v["expected_macs"] - expect) < 1e-6
    assert res.report["expected_macs_saved"] == pytest.approx(meta["macs_without_exit"] - expect)
    y = run_graph(out, feeds(out))
    assert y[out.outputs[1]].shape == (1, data.classes)
    assert_close(y[out.outputs[0]], run_graph(g, feeds(out))[g.outputs[0]], 1e-6, "main output unchanged")


def test_distill_with_a_teacher(lenet, data):
    student = compress(lenet, "prune-channels", {"keep": 0.6, "epochs": 0}, data=data).graph
    res = compress(student, "distill", {"epochs": 1}, data=data, teacher=lenet)
    assert res.report["self_distillation"] is False and res.report["teacher"] == lenet.name
    assert res.after["macs"] == res.before["macs"]


# ---- pruned and factorized models export to C like any other ---------------------------------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (host verification)")
@pytest.mark.parametrize("action,params", [("prune-channels", {"keep": 0.5, "epochs": 1}),
                                           ("low-rank", {"target": "weights", "keep": 0.5, "epochs": 1})])
def test_compressed_models_export_bit_exact(action, params, data, tmp_path):
    from engine.export.pipeline import export_model
    g = adapt_zoo("zoo:ic_resnet8?filters=4", data) if action == "prune-channels" else \
        adapt_zoo("zoo:lenet5?act=relu", data)
    small = compress(g, action, params, data=data).graph
    qg = compress(small, "quantize-int8", PARAMS["quantize-int8"], data=data).graph
    res = export_model(qg, "stm32l4r5zi", tmp_path / "m.zip", verify="host", n_inputs=3)
    assert res.verify.bit_exact, res.verify.summary()


# ---- the command line --------------------------------------------------------------------------------

def test_cli_compress(tmp_path, capsys):
    from app.cli import main
    out = tmp_path / "folded.tsgraph"
    assert main(["compress", "zoo:ic_resnet8?resolution=8&channels=1&filters=4", "--action", "fold-bn",
                 "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["before"]["macs"] == doc["after"]["macs"] and doc["after"]["accuracy"] is None
    assert out.exists() and doc["report"]["batchnorms_folded"] > 0
    assert main(["compress", "zoo:lenet5", "--action", "squeeze", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "actions: fold-bn, quantize-int8, qat-int8" in err
    assert main(["compress", "zoo:lenet5", "--action", "low-rank", "--param", "rank=3", "--out", str(out)]) == 2
    assert "parameters: target" in capsys.readouterr().err
    assert main(["compress", "zoo:lenet5", "--action", "low-rank", "--out", str(out)]) == 2
    assert "needs --dataset" in capsys.readouterr().err
