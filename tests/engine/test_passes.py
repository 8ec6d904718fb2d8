"""Graph passes: the pass contract, the rewrite-rule matcher, fold_batchnorm / fuse_activations / fuse_gemm /
remove_noops preserve the function (vs engine.execute.run_graph, 1e-5), and to_nhwc gives TFLite's
channels-last form with the same outputs on every zoo model and on graphs with every axis-carrying op."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.errors import GraphError
from engine.execute import run_graph
from engine.ir import Graph, Node
from engine.passes import (fold_batchnorm, format_graph, fuse_activations, fuse_gemm, remove_noops, run_passes,
                           to_nhwc)
from engine.passes.base import PassReport
from engine.passes.pattern import apply_rules, rule
from engine.serialize import content_hash
from engine.zoo import build_zoo_model, list_zoo

SMALL = {"mobilenetv1": "?resolution=32&width=0.25", "mobilenetv2": "?resolution=32&width=0.35",
         "resnet18": "?resolution=32&width=0.25"}
ZOO_SPECS = [e["name"] + SMALL.get(e["name"], "") for e in list_zoo()]
RNG = np.random.default_rng(7)
MLPERF = Path("/work/shared/data/mlperf-tiny")


def random_feeds(g: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}


def assert_close(got: np.ndarray, want: np.ndarray, atol: float = 1e-5, what: str = "") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = np.argwhere(~np.isclose(got, want, atol=atol, rtol=1e-5))
    if bad.size:
        cells = ", ".join(f"{tuple(int(i) for i in p)}: got {got[tuple(p)]:.7g} want {want[tuple(p)]:.7g}"
                          for p in bad[:6])
        raise AssertionError(f"{what}: {len(bad)} of {want.size} values differ; first {cells}")


def assert_same_function(before: Graph, after: Graph, seed: int = 0) -> None:
    """`after` computes `before`'s outputs; inputs/outputs may be channels last (graph.meta layouts)."""
    feeds = random_feeds(before, seed)
    want = run_graph(before, feeds)
    lay_in, lay_out = after.meta.get("input_layout", {}), after.meta.get("output_layout", {})
    got = run_graph(after, {n: np.transpose(v, lay_in[n]["perm"]) if n in lay_in else v for n, v in feeds.items()})
    for n in before.outputs:
        w = np.transpose(want[n], lay_out[n]["perm"]) if n in lay_out else want[n]
        assert_close(got[n], w, what=f"{after.name} output {n}")


def ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# ---- contract and matcher -----------------------------------------------------------------------------

@pytest.mark.parametrize("p", [fold_batchnorm, fuse_activations, fuse_gemm, remove_noops, to_nhwc])
def test_pass_never_mutates_its_input_and_prints_when_verbose(p, capsys):
    g = build_zoo_model("kws_dscnn?blocks=1")
    before = content_hash(g)
    out, report = p(g, verbose=True)
    assert content_hash(g) == before
    assert isinstance(report, PassReport) and report.name == p.__name__
    printed = capsys.readouterr().out
    assert f"== after {p.__name__}" in printed and "Conv(" in printed
    assert out.inputs == g.inputs and out.outputs == g.outputs


def test_pass_rejects_an_invalid_input_graph():
    b = GraphBuilder("bad")
    x = b.input("x", (1, 4))
    b.node("Relu", ["missing"], outputs=["y"])
    b.output("y")
    with pytest.raises(GraphError, match="dangling"):
        fuse_activations(b.g)
    del x


def test_matcher_needs_single_consumer_chains():
    b = GraphBuilder("m")
    x = b.input("x", (1, 4))
    y = b.node("Relu", [x], name="r1")
    z = b.node("Sigmoid", [y], name="s1")
    b.node("Tanh", [y], name="t1", outputs=["t"])
    b.output(z, "t")
    g = b.build()

    @rule("relu_sigmoid", ("Relu",), ("Sigmoid",))
    def merge(g, r, s):
        return [Node("Sigmoid", s.name, list(r.inputs), list(s.outputs))]

    report = PassReport("t")
    apply_rules(g, [merge], report)
    assert ops(g) == ["Relu", "Sigmoid", "Tanh"] and not report.changed  # y has two readers
    g.nodes = [n for n in g.nodes if n.op != "Tanh"]
    g.outputs = [z]
    apply_rules(g, [merge], report)
    assert ops(g) == ["Sigmoid"] and report.changes == {"relu_sigmoid": 1}


# ---- fold / fuse / noops --------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ZOO_SPECS)
def test_fold_fuse_preserve_every_zoo_model(spec):
    g = build_zoo_model(spec)
    out, reports = run_passes(g, [remove_noops, fuse_gemm, fold_batchnorm, fuse_activations])
    assert "BatchNormalization" not in ops(out)
    if "cct" not in spec:  # every Relu/Clip follows a conv, FC or add in the CNNs
        assert not {"Relu", "Clip"} & set(ops(out)), ops(out)
    assert_same_function(g, out)
    assert_same_function(g, out, seed=1)


def test_fold_batchnorm_into_conv_gemm_convtranspose_and_standalone():
    b = GraphBuilder("bn")
    c = lambda *s: RNG.standard_normal(s).astype(np.float32)  # noqa: E731
    bn = lambda x, n: b.node("BatchNormalization", [x, b.const("g", c(n) + 2), b.const("b", c(n)),  # noqa: E731
                                                      b.const("m", c(n)), b.const("v", np.abs(c(n)) + 0.5)],
                             epsilon=1e-3)
    x = b.input("x", (2, 3, 6, 6))
    y = bn(x, 3)  # at the graph input: becomes a 1x1 depthwise conv
    y = b.node("Conv", [y, b.const("w", c(4, 3, 3, 3))], pads=[1, 1, 1, 1])  # no bias
    y = bn(y, 4)
    y = b.node("ConvTranspose", [y, b.const("wt", c(4, 5, 2, 2)), b.const("bt", c(5))], strides=[2, 2])
    y = bn(y, 5)
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y])])
    y = b.node("Gemm", [y, b.const("wf", c(5, 6)), b.const("bf", c(6))], alpha=0.5, beta=2.0)
    y = bn(y, 6)
    y2 = bn(b.node("Add", [y, y]), 6)  # after an Add: a diagonal fully connected layer
    b.output(y2)
    g = b.build()
    out, report = fold_batchnorm(g)
    assert "BatchNormalization" not in ops(out)
    assert report.changes == {"fold_bn_into_layer": 3, "bn_to_layer": 2}
    assert ops(out).count("Conv") == 2 and ops(out).count("Gemm") == 2
    assert_same_function(g, out)


def test_fold_keeps_bn_when_the_conv_output_has_other_readers():
    b = GraphBuilder("shared")
    x = b.input("x", (1, 2, 4, 4))
    y = b.node("Conv", [x, b.const("w", RNG.standard_normal((2, 2, 1, 1)).astype(np.float32))])
    n = 2
    z = b.node("BatchNormalization", [y, *(b.const(k, np.full(n, v, np.float32)) for k, v in
                                           (("g", 2.0), ("b", 0.5), ("m", 0.1), ("v", 4.0)))])
    b.output(b.node("Add", [y, z]))
    g = b.build()
    out, report = fold_batchnorm(g)
    assert report.changes == {"bn_to_layer": 1}  # the conv still feeds the Add: BN cannot disappear into it
    assert_same_function(g, out)


@pytest.mark.parametrize("act,attrs,fused", [
    ("Relu", {}, "relu"), ("Relu6", {}, "relu6"), ("Clip", {"min": 0.0, "max": 6.0}, "relu6"),
    ("Clip", {"min": -1.0, "max": 1.0}, "relu_n1_to_1"), ("Clip", {"min": 0.0}, "relu"),
    ("Clip", {"min": 0.0, "max": 5.0}, None), ("Tanh", {}, None)])
def test_fuse_activations(act, attrs, fused):
    b = GraphBuilder("f")
    x = b.input("x", (1, 3, 5, 5))
    y = b.node("Conv", [x, b.const("w", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32) * 2)])
    b.output(b.node(act, [y], **attrs))
    g = b.build()
    out, report = fuse_activations(g)
    if fused:
        assert ops(out) == ["Conv"] and out.nodes[0].attrs["activation"] == fused
        assert out.nodes[0].outputs == g.outputs
    else:
        assert ops(out) == ops(g) and not report.changed
    assert_same_function(g, out)


def test_fuse_skips_graph_outputs_and_shared_values():
    b = GraphBuilder("f")
    x = b.input("x", (1, 4))
    y = b.node("Gemm", [x, b.const("w", np.eye(4, dtype=np.float32))], transB=1)
    b.output(y, b.node("Relu", [y]))
    out, report = fuse_activations(b.build())
    assert not report.changed and ops(out) == ["Gemm", "Relu"]


def test_fuse_gemm_matmul_add_and_canonical_form():
    b = GraphBuilder("mm")
    x = b.input("x", (3, 5))
    y = b.node("MatMul", [x, b.const("w", RNG.standard_normal((5, 4)).astype(np.float32))])
    y = b.node("Add", [b.const("bias", RNG.standard_normal((4,)).astype(np.float32)), y])
    y = b.node("Gemm", [y, b.const("w2", RNG.standard_normal((4, 6)).astype(np.float32)),
                        b.const("c2", RNG.standard_normal((1, 6)).astype(np.float32))], alpha=0.5, beta=3.0)
    y = b.node("MatMul", [y, b.const("w3", RNG.standard_normal((6, 2)).astype(np.float32))])
    t = b.input("t", (2, 3, 5))  # batched 3-D MatMul stays
    z = b.node("MatMul", [t, b.const("w4", RNG.standard_normal((5, 2)).astype(np.float32))])
    b.output(y, z)
    g = b.build()
    out, report = fuse_gemm(g)
    assert ops(out) == ["Gemm", "Gemm", "Gemm", "MatMul"]
    for n in out.nodes[:3]:
        assert n.attrs.get("transB") == 1 and n.attrs.get("alpha", 1.0) == 1.0 and n.attrs.get("beta", 1.0) == 1.0
    assert out.tensors[out.nodes[0].inputs[1]].shape == (4, 5)  # (out, in)
    assert report.changes == {"matmul_add_to_gemm": 1, "canonical_gemm": 1, "matmul_to_gemm": 1}
    assert_same_function(g, out)


def test_remove_noops_keeps_output_names():
    b = GraphBuilder("n")
    x = b.input("x", (1, 3, 4, 4))
    y = b.node("Identity", [x])  # graph input -> Identity -> Relu
    y = b.node("Relu", [y])
    y = b.node("Dropout", [y], ratio=0.3)
    y = b.node("Transpose", [y], perm=[0, 1, 2, 3])
    y = b.node("Reshape", [y], shape=[1, 3, 4, 4])
    b.node("Identity", [y], outputs=["out"])  # a graph output produced by a no-op
    b.output("out")
    g = b.build()
    out, report = remove_noops(g)
    assert ops(out) == ["Relu"] and out.nodes[0].outputs == ["out"] and out.nodes[0].inputs == ["x"]
    assert sum(report.changes.values()) == 5
    assert_same_function(g, out)
    b2 = GraphBuilder("passthrough")
    b2.input("x", (2,))
    b2.node("Identity", ["x"], outputs=["y"])
    b2.output("y")
    out2, _ = remove_noops(b2.build())
    assert ops(out2) == ["Identity"]  # graph input straight to graph output: nothing to rewire


# ---- to_nhwc ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ZOO_SPECS)
def test_to_nhwc_preserves_every_zoo_model(spec):
    g = build_zoo_model(spec)
    folded, _ = run_passes(g, [fold_batchnorm, fuse_activations])
    out, report = to_nhwc(folded)
    assert_same_function(g, out)
    for n in out.nodes:
        if n.op in ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool"):
            assert n.attrs["layout"] == "NHWC", n.name
    x = g.tensors[g.inputs[0]]
    if len(x.shape) in (3, 4):
        assert out.meta["input_layout"][g.inputs[0]]["to"] in ("NHWC", "NWC")
    if "cct" not in spec:  # CNNs need no Transpose at all
        assert "Transpose" not in ops(out), format_graph(out)


def test_to_nhwc_weight_layouts_match_tflite_conventions():
    g = build_zoo_model("vww_mobilenetv1?bn=false&resolution=32")
    out, _ = to_nhwc(g)
    conv = {n.name: n for n in out.nodes}
    assert out.tensors[out.inputs[0]].shape == (1, 32, 32, 3)
    assert out.tensors[conv["conv1"].inputs[1]].shape == (8, 3, 3, 3)  # (M, kH, kW, C)
    dw = conv["block1_dw"]
    assert dw.attrs["group"] == 8 and out.tensors[dw.inputs[1]].shape == (8, 3, 3, 1)  # (C*mult, kH, kW, 1)
    assert out.tensors[conv["block1_pw"].inputs[1]].shape == (16, 1, 1, 8)
    fc = conv["fc"]
    assert fc.attrs["transB"] == 1 and out.tensors[fc.inputs[1]].shape == (2, 256)


@pytest.mark.skipif(not (MLPERF / "kws_ref_model.tflite").is_file(), reason="MLPerf Tiny files not present")
def test_to_nhwc_kws_matches_the_tflite_import_of_the_reference_model():
    from engine.importers.tflite_import import load_tflite
    ref = load_tflite(str(MLPERF / "kws_ref_model.tflite"))
    ours, _ = to_nhwc(build_zoo_model("kws_dscnn?bn=false"))

    def layers(g):
        return [(n.op, n.attrs.get("layout"), n.attrs.get("group", 1), g.tensors[n.inputs[1]].shape)
                for n in g.nodes if n.op in ("Conv", "Gemm")]
    assert layers(ours) == layers(ref)
    assert ours.tensors[ours.inputs[0]].shape == ref.tensors[ref.inputs[0]].shape == (1, 49, 10, 1)


def _axis_ops_graph() -> Graph:
    """Every op with an axis or a layout, on channels-first tensors."""
    c = lambda *s: RNG.standard_normal(s).astype(np.float32)  # noqa: E731
    b = GraphBuilder("axes")
    x = b.input("x", (1, 2, 8, 8))
    c1 = b.node("Conv", [x, b.const("w1", c(8, 2, 3, 3)), b.const("b1", c(8))], pads=[1, 1, 1, 1])
    c1 = b.node("LeakyRelu", [c1], alpha=0.1)
    dw = b.node("Conv", [c1, b.const("wd", c(16, 1, 3, 3))], group=8, pads=[1, 0, 1, 2], strides=[2, 2])  # (1,16,4,4)
    mp = b.node("MaxPool", [dw], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1])  # (1,16,4,4)
    rs = b.node("Resize", [mp], scales=[2.0, 2.0], mode="nearest")  # (1,16,8,8)
    cat = b.node("Concat", [c1, rs], axis=1)  # (1,24,8,8)
    sm = b.node("Softmax", [cat], axis=1)
    add = b.node("Add", [sm, b.const("k", c(24, 1, 1))])
    pad = b.node("Pad", [add], pads=[0, 0, 1, 0, 0, 0, 0, 1])  # (1,24,9,9)
    sl = b.node("Slice", [pad], starts=[1, 0], ends=[9, 8], axes=[2, 1])  # (1,8,8,9)
    s0, s1 = b.node("Split", [sl], axis=1, split=[3, 5], outputs=2)  # (1,3,8,9) (1,5,8,9)
    rm = b.node("ReduceMean", [s0], axes=[2, 3], keepdims=1)  # (1,3,1,1)
    sq = b.node("Squeeze", [rm], axes=[2, 3])  # (1,3)
    r2 = b.node("ReduceSum", [s1], axes=[-2], keepdims=0)  # (1,5,9)
    mx = b.node("ReduceMax", [s1], axes=[1], keepdims=1)  # (1,1,8,9)
    ct = b.node("ConvTranspose", [s0, b.const("wt", c(3, 4, 2, 2)), b.const("bt", c(4))], strides=[2, 2])
    bn = b.node("BatchNormalization", [ct, *(b.const(k, np.abs(c(4)) + 0.5) for k in ("g", "be", "m", "v"))])
    fc = b.node("Gemm", [b.node("Flatten", [b.node("GlobalAveragePool", [bn])]), b.const("wf", c(5, 4))], transB=1)
    fc2 = b.node("Gemm", [b.node("Flatten", [s0]), b.const("wf2", c(216, 7))])  # flatten of (1,3,8,9)
    tr = b.node("Transpose", [s1], perm=[0, 2, 3, 1])
    rsh = b.node("Reshape", [s1], shape=[1, 5, -1])  # a real reshape: needs channels first
    ga = b.node("Gather", [cat, b.const("idx", np.array([0, 5, 23]))], axis=1)
    g1 = b.node("Gather", [cat, b.const("i1", np.array(2))], axis=1)  # scalar index drops the axis
    ap = b.node("AveragePool", [ga], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    b.output(sq, r2, mx, fc, fc2, tr, rsh, ap, g1)
    return b.build()


def test_to_nhwc_remaps_every_axis_op():
    g = _axis_ops_graph()
    out, report = to_nhwc(g)
    assert_same_function(g, out)
    assert_same_function(g, out, seed=3)
    assert report.changes["fc_weights_permuted"] == 1
    by = {n.name: n for n in out.nodes}
    assert by["Concat"].attrs["axis"] == 3 and by["Softmax"].attrs["axis"] == 3 and by["Split"].attrs["axis"] == 3
    assert by["ReduceMean"].attrs["axes"] == [1, 2] and by["ReduceMax"].attrs["axes"] == [3]
    assert by["Pad"].attrs["pads"] == [0, 1, 0, 0, 0, 0, 1, 0]
    assert out.tensors[by["ConvTranspose"].inputs[1]].shape == (4, 2, 2, 3)  # (M, kH, kW, C)
    # Only the real Reshape to (1, 5, 72) needs the channels-first tensor back.
    transposes = [n for n in out.nodes if n.op == "Transpose" and n.name != "Transpose"]
    assert len(transposes) == 1 and transposes[0].outputs[0] in by["Reshape"].inputs
    # Outputs in channels-last order stay so and say so (the (1, 5, 9) sum over H is (1, 9, 5) "NWC");
    # others are in their original layout.
    assert set(out.meta["output_layout"]) == {"ReduceMax_out", "AveragePool_out", "ReduceSum_out"}
    assert out.meta["output_layout"]["ReduceSum_out"] == {"from": "NCW", "to": "NWC", "perm": [0, 2, 1]}
    assert out.tensors["Gather_1_out"].shape == (1, 8, 8)


def test_to_nhwc_1d_convolutions():
    c = lambda *s: RNG.standard_normal(s).astype(np.float32)  # noqa: E731
    b = GraphBuilder("conv1d")
    x = b.input("x", (2, 4, 16))  # (N, C, W)
    y = b.node("Conv", [x, b.const("w", c(8, 4, 3)), b.const("b", c(8))], pads=[1, 1])
    y = b.node("MaxPool", [b.node("Relu", [y])], kernel_shape=[2], strides=[2])
    y = b.node("Conv", [y, b.const("wd", c(8, 1, 5))], group=8, pads=[2, 2])
    y = b.node("AveragePool", [y], kernel_shape=[2], strides=[2])
    y = b.node("Softmax", [y], axis=1)
    b.output(b.node("Gemm", [b.node("Flatten", [y]), b.const("wf", c(3, 32))], transB=1))
    g = b.build()
    out, report = to_nhwc(g)
    assert out.tensors["x"].shape == (2, 16, 4) and out.meta["input_layout"]["x"]["to"] == "NWC"
    assert out.tensors[out.nodes[0].inputs[1]].shape == (8, 3, 4)  # (M, kW, C)
    assert report.changes["fc_weights_permuted"] == 1 and "Transpose" not in ops(out)
    assert_same_function(g, out)


def test_to_nhwc_is_a_no_op_on_channels_last_graphs():
    g = build_zoo_model("lenet5")
    once, _ = to_nhwc(g)
    twice, report = to_nhwc(once)
    assert not report.changed and content_hash(once) == content_hash(twice)


def test_rewrites_of_independent_branches_share_a_sweep(monkeypatch):
    """4,000 branches X -> Mul -> Relu fuse in a few sweeps over the graph, not one sweep per rewrite (which made
    the C export of wide graphs quadratic). Counts work, not time."""
    from benchmarks.scale import wide_model
    from engine.importers import load_model_bytes
    from engine.passes import pattern
    from engine.passes.fuse import fuse_activations

    sweeps = []
    real = pattern._sweep
    monkeypatch.setattr(pattern, "_sweep", lambda g, r, rep: sweeps.append(r.name) or real(g, r, rep))
    g = load_model_bytes(wide_model(400), "wide.onnx")
    out = fuse_activations(g)
    out = out[0] if isinstance(out, tuple) else out
    assert sum(n.op == "Relu" for n in out.nodes) == 0 and sum(n.op == "Mul" for n in out.nodes) == 400
    assert len(sweeps) <= 3 * len(set(sweeps)) + 3, len(sweeps)
