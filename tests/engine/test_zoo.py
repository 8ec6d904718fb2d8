"""Model zoo: every model builds, validates and runs; MAC counts match the literature and the MLPerf Tiny files;
spec strings parse strictly; builds are deterministic; the float reference agrees with onnxruntime."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.serialize import content_hash
from engine.validate import infer_shapes, node_context
from engine.zoo import ZOO, ZooSpecError, build_zoo_model, list_zoo, parse_zoo_spec
from engine.zoo.layers import same_pads

# Models whose default (224x224) float reference is too slow for a unit test: MACs only, run small variants.
BIG = {"mobilenetv1", "mobilenetv2", "resnet18"}
# A non-default parameter set per model, touching every kind of parameter it has.
VARIANT = {
    "kws_dscnn": "frames=40&coeffs=12&classes=8&filters=32&blocks=2&bn=false&seed=3",
    "vww_mobilenetv1": "width=0.5&resolution=64&classes=3&channels=1&bn=false&seed=1",
    "ic_resnet8": "resolution=24&classes=5&channels=1&filters=8&seed=2",
    "ad_autoencoder": "inputs=128&hidden=32&bottleneck=4&layers=2&bn=false",
    "mobilenetv1": "width=0.25&resolution=64&classes=10&channels=1",
    "mobilenetv2": "width=0.35&resolution=64&classes=10&last_channels=448&bn=false",
    "resnet18": "width=0.25&resolution=64&classes=10&bn=false",
    "lenet5": "resolution=28&classes=5&channels=3&act=relu",
    "micro_speech": "frames=30&features=20&classes=6&filters=4",
    "sensor_cnn1d": "width=0.5&length=64&channels=6&classes=4&bn=false",
    "cct": "resolution=16&dim=64&depth=1&heads=4&mlp_ratio=2.0&conv_layers=1&pool=mean&classes=5",
}
# MACs counted from the real MLPerf Tiny files (README of /work/shared/data/mlperf-tiny): must match exactly.
MLPERF_MACS = {
    "kws_dscnn": (2_656_768, {"conv": 2_368_000, "dw": 288_000, "fc": 768}),
    "vww_mobilenetv1": (7_489_664, {"conv": 6_690_816, "dw": 798_336, "fc": 512}),
    "ic_resnet8": (12_501_632, {"conv": 12_500_992, "dw": 0, "fc": 640}),
    "ad_autoencoder": (264_192, {"conv": 0, "dw": 0, "fc": 264_192}),
}
# (spec, published MACs, source): within 0.2 %.
LITERATURE_MACS = [
    ("mobilenetv2", 300.77e6, "torchvision MobileNet_V2 (0.30 GFLOPS), TF-slim 300 M"),
    ("mobilenetv2?width=0.35&resolution=144&last_channels=448", 23.5e6, "MbV2 0.35 @144, last 1x1 scaled (MCUNet)"),
    ("mobilenetv1", 568.7e6, "Howard et al. 2017: 569 M mult-adds"),
    ("resnet18", 1814e6, "torchvision ResNet18 (1.81 GFLOPS)"),
    # From the published layer sizes: C1, C3, C5, F6, output.
    ("lenet5", 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10, "LeCun 1998 layer sizes"),
    # conv 8 x 10x8 on a 25x20 output grid, then FC 4000 -> 4.
    ("micro_speech", 25 * 20 * 8 * 80 + 25 * 20 * 8 * 4, "TF speech_commands tiny_conv"),
    # CCT-2/3x2: tokenizer 3->64->128 (3x3), T = 64 tokens of D = 128; per block QKV 3TD^2, scores and
    # context 2T^2D, projection TD^2, MLP (ratio 1) 2TD^2; sequence pooling 2TD; FC 10D. (Paper: 0.04 G.)
    ("cct", 32 * 32 * 64 * 27 + 16 * 16 * 128 * 576 + 2 * (6 * 64 * 128 ** 2 + 2 * 64 ** 2 * 128)
     + 2 * 64 * 128 + 1280, "CCT-2/3x2 layer sizes"),
]
MLPERF_FILES = {"kws_dscnn": "kws_ref_model.tflite", "vww_mobilenetv1": "vww_96_int8.tflite",
                "ic_resnet8": "pretrainedResnet_quant.tflite", "ad_autoencoder": "ad01_int8.tflite"}
MLPERF_DIR = Path(os.environ.get("TINYSTUDIO_MLPERF_TINY", "/work/shared/data/mlperf-tiny"))


def cost(graph):
    """(MACs, params, MACs split into conv / depthwise / fully connected) summed over the nodes' Cost."""
    macs = params = 0
    split = {"conv": 0, "dw": 0, "fc": 0}
    for node in graph.nodes:
        ctx = node_context(graph, node)
        c = ctx.op.cost(ctx)
        macs, params = macs + c.macs, params + c.params
        if node.op == "Conv":
            split["dw" if node.attrs.get("group", 1) > 1 else "conv"] += c.macs
        elif c.macs:
            split["fc"] += c.macs
    return macs, params, split


def random_feed(graph, seed=0):
    name = graph.inputs[0]
    return {name: np.random.default_rng(seed).standard_normal(graph.tensors[name].shape).astype(np.float32)}


def expected_output_shape(graph):
    _, params = parse_zoo_spec(graph.name)
    return (1, params["classes"] if "classes" in params else params["inputs"])


def check_runs(graph):
    out = run_graph(graph, random_feed(graph))[graph.outputs[0]]
    assert out.shape == expected_output_shape(graph), (graph.name, out.shape)
    assert np.all(np.isfinite(out)), f"{graph.name}: non-finite outputs {out.ravel()[:8]}"
    assert 1e-4 < float(np.abs(out).max()) < 1e3, f"{graph.name}: activations out of range, max {np.abs(out).max()}"
    return out


def test_list_zoo_covers_every_entry():
    records = list_zoo()
    assert [r["name"] for r in records] == sorted(ZOO)
    json.dumps(records)  # the CLI prints it as JSON
    for r in records:
        assert r["description"] and r["task"]
        names = [p["name"] for p in r["params"]]
        assert "seed" in names, r["name"]
        for p in r["params"]:
            assert p["help"] and p["type"] in ("int", "float", "bool", "str")
    assert set(VARIANT) == set(ZOO), "every zoo model needs a non-default parameter set in this test"


@pytest.mark.parametrize("name", sorted(ZOO))
def test_builds_validates_and_runs(name):
    g = build_zoo_model(name)
    infer_shapes(g, check_declared=True)
    assert g.name.startswith(f"zoo:{name}?") and g.meta["source"] == {"format": "zoo", "spec": g.name}
    assert all(t.dtype == "float32" for t in g.tensors.values())
    assert len({n.name for n in g.nodes}) == len(g.nodes)
    if name not in BIG:
        check_runs(g)
    v = build_zoo_model(f"zoo:{name}?{VARIANT[name]}")
    infer_shapes(v, check_declared=True)
    _, given = parse_zoo_spec(f"{name}?{VARIANT[name]}")
    _, resolved = parse_zoo_spec(v.name)
    assert all(resolved[k] == val for k, val in given.items()), (v.name, given)
    check_runs(v)
    assert content_hash(v) != content_hash(g)


@pytest.mark.parametrize("name", sorted(MLPERF_MACS))
def test_mlperf_tiny_macs_exact(name):
    macs, params, split = cost(build_zoo_model(name))
    want, want_split = MLPERF_MACS[name]
    print(f"{name}: {macs:,} MACs (conv {split['conv']:,} / dw {split['dw']:,} / fc {split['fc']:,}), "
          f"{params:,} params")
    assert macs == want and split == want_split, (name, macs, split)


@pytest.mark.parametrize("spec,want,source", LITERATURE_MACS, ids=[s for s, _, _ in LITERATURE_MACS])
def test_literature_macs(spec, want, source):
    macs, params, _ = cost(build_zoo_model(spec))
    print(f"{spec}: {macs / 1e6:.3f} M MACs ({source}: {want / 1e6:.3f} M), {params:,} params")
    assert abs(macs - want) <= 0.002 * want, (spec, macs, want)


def test_mobilenetv2_last_channel_rules():
    """Paper/torchvision rule keeps 1280 for width <= 1; TF-slim's default scales it (448 at 0.35)."""
    published = build_zoo_model("mobilenetv2?width=0.35&resolution=144")
    scaled = build_zoo_model("mobilenetv2?width=0.35&resolution=144&last_channels=448")
    assert published.tensors["conv_last_W"].shape[0] == 1280 and scaled.tensors["conv_last_W"].shape[0] == 448
    assert build_zoo_model("mobilenetv2?width=1.4&resolution=32").tensors["conv_last_W"].shape[0] == 1792
    print(f"MobileNetV2 0.35 @144: {cost(published)[0]:,} MACs (last 1280), {cost(scaled)[0]:,} MACs (last 448)")
    assert cost(published)[0] == 26_660_752 and cost(scaled)[0] == 23_499_152


# ---- the MLPerf Tiny models against the real .tflite files -------------------------------------------------
def _tflite_layers(path):
    """[(op, weight shape in IR NCHW layout or None, strides, NCHW output shape, fused act)] and the weight count."""
    tflite = pytest.importorskip("tflite")
    from tflite.BuiltinOperator import BuiltinOperator
    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sg = model.Subgraphs(0)
    shape = lambda i: tuple(int(d) for d in sg.Tensors(i).ShapeAsNumpy())  # noqa: E731
    nchw = lambda s: (s[0], s[3], s[1], s[2]) if len(s) == 4 else s  # noqa: E731
    layers, n_weights = [], 0
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        out = nchw(shape(op.Outputs(0)))
        opts = op.BuiltinOptions()
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = shape(ins[1])
            n_weights += int(np.prod(w)) + (int(np.prod(shape(ins[2]))) if len(ins) > 2 and ins[2] >= 0 else 0)
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cls = tflite.Conv2DOptions if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions
            o = cls()
            o.Init(opts.Bytes, opts.Pos)
            assert o.Padding() == tflite.Padding.SAME
            w = (w[0], w[3], w[1], w[2]) if kind == "CONV_2D" else (w[3], 1, w[1], w[2])
            layers.append(("Conv", w, (o.StrideH(), o.StrideW()), out, o.FusedActivationFunction() == 1))
        elif kind in ("FULLY_CONNECTED", "ADD"):
            o = tflite.FullyConnectedOptions() if kind == "FULLY_CONNECTED" else tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            layers.append(("Gemm" if kind == "FULLY_CONNECTED" else "Add", w if kind == "FULLY_CONNECTED" else None,
                           None, out, o.FusedActivationFunction() == 1))
        elif kind == "AVERAGE_POOL_2D":  # a window over the whole map: global average pooling
            layers.append(("GlobalAveragePool", None, None, out, False))
        elif kind == "SOFTMAX":
            layers.append(("Softmax", None, None, out, False))
        else:
            assert kind == "RESHAPE", kind
    return layers, n_weights


def _zoo_layers(g):
    """Same records from the zoo graph: BatchNorm skipped, a following Relu becomes the fused activation."""
    layers = []
    for n in g.nodes:
        if n.op == "Relu":
            layers[-1] = layers[-1][:4] + (True,)
        elif n.op in ("Conv", "Gemm", "Add", "GlobalAveragePool", "Softmax"):
            w = g.tensors[n.inputs[1]].shape if n.op in ("Conv", "Gemm") else None
            s = tuple(n.attrs["strides"]) if n.op == "Conv" else None
            out = g.tensors[n.outputs[0]].shape
            if n.op == "Conv":
                x = g.tensors[n.inputs[0]].shape
                assert n.attrs["pads"] == same_pads(x[2:], w[2:], s), (n.name, "padding is not TF SAME")
            layers.append((n.op, w, s, out, False))
        else:
            assert n.op in ("BatchNormalization", "Flatten"), n.op
    return layers


@pytest.mark.parametrize("name", sorted(MLPERF_FILES))
def test_mlperf_tiny_structure_matches_files(name):
    path = MLPERF_DIR / MLPERF_FILES[name]
    if not path.exists():
        pytest.skip(f"{path} not found (set TINYSTUDIO_MLPERF_TINY)")
    want, n_weights = _tflite_layers(path)
    g = build_zoo_model(name, bn=False)  # the folded form the files store
    got = _zoo_layers(g)
    # The file's AVERAGE_POOL_2D keeps rank 4; ours is GlobalAveragePool too, compared before the Flatten.
    assert len(got) == len(want), (len(got), len(want))
    for i, (a, b) in enumerate(zip(got, want)):
        assert a == b, f"layer {i}: zoo {a} != file {b}"
    _, params, _ = cost(g)
    _, params_bn, _ = cost(build_zoo_model(name))
    print(f"{name}: {params:,} weights+biases (file {n_weights:,}); with BatchNorm {params_bn:,}")
    assert params == n_weights


# ---- spec strings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,needle", [
    ("zoo:mobilenetv9", "models: ad_autoencoder, cct,"),
    ("mobilenetv2?depth=3", "parameters: width (float"),
    ("mobilenetv2?width=abc", "parameter 'width' must be float"),
    ("mobilenetv2?width=0", "parameter 'width' must be float 0.05..4.0"),
    ("mobilenetv2?resolution=22.5", "parameter 'resolution' must be int"),
    ("mobilenetv2?bn=maybe", "must be true|false"),
    ("lenet5?act=swish", "must be tanh|relu"),
    ("lenet5?classes", "is not key=value"),
    ("lenet5?classes=3&classes=4", "given twice"),
    ("", "empty zoo spec"),
    ("cct?dim=30&heads=4", "dim 30 must be divisible by heads 4"),
])
def test_spec_errors_are_one_line(spec, needle):
    with pytest.raises(ZooSpecError) as e:
        build_zoo_model(spec)
    msg = str(e.value)
    assert isinstance(e.value, TinyStudioError) and "\n" not in msg and needle in msg, msg


def test_spec_parsing_and_overrides():
    assert parse_zoo_spec("zoo:mobilenetv2?width=0.35&resolution=144&classes=1000") == \
        ("mobilenetv2", {"width": 0.35, "resolution": 144, "classes": 1000})
    assert parse_zoo_spec("MobileNetV2?bn=0") == ("mobilenetv2", {"bn": False})
    g = build_zoo_model("lenet5?classes=3", classes=7, act="relu")
    assert g.name == "zoo:lenet5?resolution=32&classes=7&channels=1&act=relu&seed=0"
    assert g.name == build_zoo_model(g.name).name  # canonical specs are fixed points
    with pytest.raises(ZooSpecError, match="parameter 'classes' must be int"):
        build_zoo_model("lenet5", classes=2.5)
    with pytest.raises(ZooSpecError, match="has no parameter 'depth'"):
        build_zoo_model("lenet5", depth=2)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_same_spec_same_hash_seed_changes_it(name):
    spec = f"{name}?{VARIANT[name]}"
    a, b = build_zoo_model(spec), build_zoo_model(spec)
    assert content_hash(a) == content_hash(b)
    assert content_hash(build_zoo_model(spec, seed=7)) != content_hash(a)
    assert content_hash(build_zoo_model(a.name)) == content_hash(a)


# ---- float reference against onnxruntime -------------------------------------------------------------------
def _first_diffs(a, b, rtol, atol, n=5):
    bad = np.argwhere(~np.isclose(a, b, rtol=rtol, atol=atol))[:n]
    return ", ".join(f"{tuple(int(i) for i in idx)}: ours {a[tuple(idx)]:.7g} ort {b[tuple(idx)]:.7g}" for idx in bad)


@pytest.mark.parametrize("spec", [n for n in sorted(ZOO) if n not in BIG] + [f"{n}?{VARIANT[n]}" for n in sorted(ZOO)])
def test_zoo_matches_onnxruntime(spec):
    onnx_export = pytest.importorskip("engine.exporters.onnx_export")
    ort = pytest.importorskip("onnxruntime")
    g = build_zoo_model(spec)
    model = onnx_export.to_onnx(g)
    data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = random_feed(g, seed=1)
    ours = run_graph(g, feeds)[g.outputs[0]]
    theirs = sess.run(None, {sess.get_inputs()[0].name: feeds[g.inputs[0]]})[0]
    assert theirs.shape == ours.shape, (theirs.shape, ours.shape)
    rtol, atol = 1e-4, 1e-5 * max(1.0, float(np.abs(theirs).max()))
    assert np.allclose(ours, theirs, rtol=rtol, atol=atol), \
        f"{g.name}: max abs diff {np.abs(ours - theirs).max():.3g}; first differences: " \
        + _first_diffs(ours, theirs, rtol, atol)
