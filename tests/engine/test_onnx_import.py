"""ONNX importer: constant folding, opset variants, dynamic dims, external data, bad files, unsupported ops,
and numerics against onnxruntime (rtol 1e-4, atol 1e-5)."""
from __future__ import annotations

import os
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.execute import run_graph
from engine.importers.onnx_import import load_onnx, sniff_onnx
from engine.validate import infer_shapes

F = TensorProto.FLOAT
# Newest opset both onnx and onnxruntime 1.31 know (ORT tops out at 26).
LATEST = min(onnx.defs.onnx_opset_version(), 26)
RNG = np.random.default_rng(0)


# ---- helpers (also used by the export and backend tests) -------------------------------------------

def make_model(nodes, inputs, outputs, inits=(), opset=13, name="g") -> onnx.ModelProto:
    """inputs/outputs: [(name, shape or None)] float tensors, or ready ValueInfoProtos."""
    def vi(x):
        return x if isinstance(x, onnx.ValueInfoProto) else helper.make_tensor_value_info(x[0], F, x[1])

    inits = [t if isinstance(t, TensorProto) else numpy_helper.from_array(np.asarray(t[1]), t[0]) for t in inits]
    g = helper.make_graph(nodes, name, [vi(x) for x in inputs], [vi(x) for x in outputs], inits)
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


def ort_run(model: onnx.ModelProto | bytes, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, feeds)


def assert_close(got: np.ndarray, want: np.ndarray, rtol=1e-4, atol=1e-5, what=""):
    """allclose that prints the first differing values."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    bad = ~np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        idx = np.argwhere(bad)[:5]
        rows = ", ".join(f"{tuple(int(v) for v in i)}: got {got[tuple(i)]!r} want {want[tuple(i)]!r}" for i in idx)
        pytest.fail(f"{what}: {int(bad.sum())}/{bad.size} values differ (max abs "
                    f"{np.nanmax(np.abs(got.astype(np.float64) - want)):.3g}); first: {rows}")


def check_vs_ort(model: onnx.ModelProto, feeds=None, input_shapes=None, rtol=1e-4, atol=1e-5, path="m.onnx"):
    """Import `model`, run our float reference and onnxruntime on the same random inputs; return the graph."""
    data = model.SerializeToString()
    g = load_onnx(path, data, input_shapes=input_shapes)
    infer_shapes(g, check_declared=True)  # the importer's shapes are the IR's own inference
    if feeds is None:
        feeds = {n: RNG.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}
    want = ort_run(data, feeds)
    got = run_graph(g, feeds)
    assert len(g.outputs) == len(want)
    for name, w in zip(g.outputs, want):
        assert_close(got[name], w, rtol, atol, f"output '{name}'")
    return g


def ops_of(g) -> list[str]:
    return [n.op for n in g.nodes]


def mobilenet_v2_onnx(opset=13, res=224, classes=1000) -> onnx.ModelProto:
    """MobileNetV2 (width 1.0) as torch exports it with BN folded: Conv+Clip(0,6), residual Adds, the
    Shape->Gather->Unsqueeze->Concat->Reshape flatten, Gemm. Random weights, 3.5 M parameters."""
    nodes, inits = [], []
    rng = np.random.default_rng(1)
    lo = numpy_helper.from_array(np.array(0.0, np.float32), "c0")
    hi = numpy_helper.from_array(np.array(6.0, np.float32), "c6")
    inits += [lo, hi]
    count = [0]

    def conv(x, cin, cout, k, s, group=1, relu6=True):
        i = count[0] = count[0] + 1
        w = (rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / (cin // group * k * k))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"w{i}"),
                      numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), f"b{i}")])
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"conv{i}"], name=f"Conv_{i}", group=group,
                                      kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4))
        if not relu6:
            return f"conv{i}"
        nodes.append(helper.make_node("Clip", [f"conv{i}", "c0", "c6"], [f"relu{i}"], name=f"Clip_{i}"))
        return f"relu{i}"

    x = conv("input", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for j in range(n):
            stride = s if j == 0 else 1
            h = x if t == 1 else conv(x, cin, cin * t, 1, 1)
            h = conv(h, cin * t, cin * t, 3, stride, group=cin * t)
            h = conv(h, cin * t, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                nodes.append(helper.make_node("Add", [x, h], [f"{h}_add"], name=f"Add_{h}"))
                h = f"{h}_add"
            x, cin = h, c
    x = conv(x, cin, 1280, 1, 1)
    inits += [numpy_helper.from_array(np.array(0, np.int64), "i0"),
              numpy_helper.from_array(np.array([0], np.int64), "ax0"),
              numpy_helper.from_array(np.array([-1], np.int64), "m1"),
              numpy_helper.from_array((rng.standard_normal((classes, 1280)) * 0.03).astype(np.float32), "fc_w"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="GlobalAveragePool_0"),
              helper.make_node("Shape", ["gap"], ["shp"], name="Shape_0"),
              helper.make_node("Gather", ["shp", "i0"], ["n"], name="Gather_0", axis=0),
              helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"], name="Unsqueeze_0"),
              helper.make_node("Concat", ["n1", "m1"], ["newshape"], name="Concat_0", axis=0),
              helper.make_node("Reshape", ["gap", "newshape"], ["flat"], name="Reshape_0"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], name="Gemm_0", transB=1)]
    return make_model(nodes, [("input", [1, 3, res, res])], [("output", [1, classes])], inits, opset, "mobilenet_v2")


# ---- constant folding -------------------------------------------------------------------------------

def test_shape_gather_unsqueeze_concat_reshape_chain_folds():
    def c(name, v):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))

    nodes = [
        c("idx", 0), c("axes0", [0]), c("minus1", [-1]),
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        # ConstantOfShape of a folded shape, then a float Constant: a bias built at "run time"
        helper.make_node("Shape", ["flat"], ["fs"], start=1),
        helper.make_node("ConstantOfShape", ["fs"], ["ones"],
                         value=numpy_helper.from_array(np.array([1.5], np.float32))),
        helper.make_node("Constant", [], ["two"], value_float=2.0),
        helper.make_node("Mul", ["ones", "two"], ["bias"]),
        helper.make_node("Add", ["flat", "bias"], ["y"]),
    ]
    g = check_vs_ort(make_model(nodes, [("x", [2, 3, 4])], [("y", None)], opset=15))
    assert ops_of(g) == ["Reshape", "Add"], ops_of(g)
    reshape = next(n for n in g.nodes if n.op == "Reshape")
    assert reshape.attrs["shape"] == [2, -1]
    bias = g.tensors[next(n for n in g.nodes if n.op == "Add").inputs[1]]
    np.testing.assert_array_equal(bias.data, np.full((12,), 3.0, np.float32))


def test_fold_uses_reference_for_range_and_where():
    nodes = [
        helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=F),
        helper.make_node("Less", ["rf", "half"], ["mask"]),
        helper.make_node("Where", ["mask", "rf", "half"], ["w"]),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    inits = [("start", np.array(0, np.int64)), ("limit", np.array(6, np.int64)), ("delta", np.array(1, np.int64)),
             ("half", np.array(2.5, np.float32))]
    g = check_vs_ort(make_model(nodes, [("x", [3, 6])], [("y", None)], inits))
    assert ops_of(g) == ["Mul"]


@pytest.mark.parametrize("opset", [7, 9, 11, 12])
def test_old_opset_axes_attributes_fold(opset):
    """DenseNet-121 of the ONNX zoo (opset 9) failed with "node 'n2' (Unsqueeze): constant folding failed":
    the folder ran Unsqueeze-13, which takes `axes` as an input, on a node that carries it as an attribute."""
    nodes = [helper.make_node("Unsqueeze", ["c"], ["u"], axes=[0]),
             helper.make_node("Unsqueeze", ["u"], ["u2"], axes=[2, 3]),
             helper.make_node("Squeeze", ["u2"], ["s"], axes=[3]),
             helper.make_node("ReduceSum", ["s"], ["r"], axes=[2], keepdims=1),
             helper.make_node("Add", ["x", "r"], ["y"])]
    g = check_vs_ort(make_model(nodes, [("x", [1, 4, 1])], [("y", None)],
                                [("c", np.arange(4, dtype=np.float32))], opset=opset))
    assert ops_of(g) == ["Add"], ops_of(g)


# ---- opset variants ---------------------------------------------------------------------------------

def _consts(opset_uses_inputs: bool, node_inputs, attrs, values: dict):
    """Operands as attributes (old opsets) or as constant inputs (new ones)."""
    if opset_uses_inputs:
        inits = [(k, v) for k, v in values.items() if v is not None]
        return node_inputs + [k if values[k] is not None else "" for k in values], attrs, inits
    return node_inputs, {**attrs, **{k: v for k, v in values.items() if v is not None}}, []


@pytest.mark.parametrize("opset", [9, 11, 13, 17, LATEST])
@pytest.mark.parametrize("bounds", [(-0.5, 0.7), (None, 0.3), (0.1, None)])
def test_clip(opset, bounds):
    lo, hi = bounds
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        node, inits = helper.make_node("Clip", ["x"], ["y"], **attrs), []
    else:
        ins = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
        inits = [(k, np.array(v, np.float32)) for k, v in (("lo", lo), ("hi", hi)) if v is not None]
        node = helper.make_node("Clip", ins, ["y"])
    g = check_vs_ort(make_model([node], [("x", [2, 5])], [("y", None)], inits, opset))
    assert g.nodes[0].attrs == {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}


@pytest.mark.parametrize("opset", [9, 11, 13, 17, LATEST])
def test_squeeze_unsqueeze(opset):
    new = opset >= 13
    ins, attrs, inits = _consts(new, ["x"], {}, {"axes": np.array([0, 2], np.int64) if new else [0, 2]})
    sq = helper.make_node("Squeeze", ins, ["s"], **attrs)
    last = -1 if opset >= 11 else 2  # negative axes arrived in opset 11
    if new:
        ins2, attrs2, inits2 = ["s", "axes2"], {}, [("axes2", np.array([last], np.int64))]
    else:
        ins2, attrs2, inits2 = ["s"], {"axes": [last]}, []
    un = helper.make_node("Unsqueeze", ins2, ["y"], **attrs2)
    g = check_vs_ort(make_model([sq, un], [("x", [1, 3, 1, 4])], [("y", None)], inits + inits2, opset))
    assert [n.attrs["axes"] for n in g.nodes] == [[0, 2], [last]]
    assert g.tensors["y"].shape == (3, 4, 1)


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18, LATEST])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean(opset, keepdims):
    new = opset >= 18
    ins, attrs, inits = _consts(new, ["x"], {"keepdims": keepdims},
                                {"axes": np.array([1, -1], np.int64) if new else [1, -1]})
    node = helper.make_node("ReduceMean", ins, ["y"], **attrs)
    g = check_vs_ort(make_model([node], [("x", [2, 3, 4, 5])], [("y", None)], inits, opset))
    assert g.nodes[0].attrs["axes"] == [1, -1]


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18, LATEST])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(opset, mode):
    pads = [0, 1, 2, 0, 0, 2, 1, 0]
    if opset < 11:
        node, inits = helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=pads, value=1.25), []
    elif opset < 18:
        node = helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)
        inits = [("p", np.array(pads, np.int64)), ("v", np.array(1.25, np.float32))]
    else:  # pads for the listed axes only
        node = helper.make_node("Pad", ["x", "p", "v", "axes"], ["y"], mode=mode)
        inits = [("p", np.array([1, 2, 2, 1], np.int64)), ("v", np.array(1.25, np.float32)),
                 ("axes", np.array([1, 2], np.int64))]
    g = check_vs_ort(make_model([node], [("x", [1, 3, 4, 5])], [("y", None)], inits, opset))
    assert g.nodes[0].attrs["pads"] == pads


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18, LATEST])
def test_split(opset):
    if opset < 13:
        node, inits = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, split=[1, 2, 3]), []
    else:
        node = helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=1)
        inits = [("s", np.array([1, 2, 3], np.int64))]
    outs = [("a", None), ("b", None), ("c", None)]
    check_vs_ort(make_model([node], [("x", [2, 6])], outs, inits, opset))
    if opset >= 18:  # num_outputs: uneven split, ceil-sized chunks
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)
        g = check_vs_ort(make_model([node], [("x", [2, 7])], outs, [], opset))
        assert [g.tensors[o].shape[1] for o in "abc"] == [3, 3, 1]


@pytest.mark.parametrize("case", [
    (9, "Upsample", "nearest", "asymmetric", [1, 1, 2, 3]),
    (9, "Upsample", "linear", "asymmetric", [1, 1, 2, 2]),
    (10, "Resize", "nearest", "asymmetric", [1, 1, 0.5, 0.75]),
    (10, "Resize", "linear", "asymmetric", [1, 1, 1.5, 2]),
    (11, "Resize", "nearest", "half_pixel", [1, 1, 2, 2]),
    (11, "Resize", "linear", "align_corners", [1, 1, 1.5, 0.5]),
    (13, "Resize", "linear", "pytorch_half_pixel", [1, 1, 2, 3]),
    (13, "Resize", "nearest", "asymmetric", "sizes"),
    (17, "Resize", "linear", "half_pixel", "sizes"),
    (18, "Resize", "nearest", "half_pixel", "axes"),
    (LATEST, "Resize", "linear", "half_pixel", [1, 1, 2, 2]),
], ids=lambda c: "-".join(str(v) for v in c) if isinstance(c, tuple) else None)
def test_resize(case):
    opset, op, mode, ctm, scales = case
    attrs = {"mode": mode}
    if op == "Resize" and opset >= 11:
        attrs["coordinate_transformation_mode"] = ctm
    roi = [("roi", np.zeros(0, np.float32))]  # opsets 11 and 12 need an roi input even when unused
    if scales == "sizes":
        ins, inits = ["x", "roi", "", "sz"], roi + [("sz", np.array([1, 2, 7, 3], np.int64))]
    elif scales == "axes":
        ins, inits = ["x", "", "sc"], [("sc", np.array([2.0, 1.5], np.float32))]
        attrs["axes"] = [2, 3]
    elif opset >= 11:
        ins, inits = ["x", "roi", "sc"], roi + [("sc", np.array(scales, np.float32))]
    else:
        ins, inits = ["x", "sc"], [("sc", np.array(scales, np.float32))]
    node = helper.make_node(op, ins, ["y"], **attrs)
    g = check_vs_ort(make_model([node], [("x", [1, 2, 4, 6])], [("y", None)], inits, opset))
    n = g.nodes[0]
    assert n.op == "Resize" and len(n.attrs.get("scales") or n.attrs.get("sizes")) == 2


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_softmax_coerce_2d(opset):
    """axis=1 on a 4-D tensor: before opset 13 it normalizes over all of C*H*W."""
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=1), helper.make_node("LogSoftmax", ["x"], ["z"])]
    g = check_vs_ort(make_model(nodes, [("x", [2, 3, 2, 2])], [("y", None), ("z", None)], [], opset))
    if opset < 13:
        assert "Flatten" in ops_of(g) and "Reshape" in ops_of(g)
    else:
        assert ops_of(g) == ["Softmax", "LogSoftmax"]


# ---- a broad model against onnxruntime ---------------------------------------------------------------

def test_conv_net_ops():
    w = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    dw = RNG.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3
    bn = [np.abs(RNG.standard_normal(8)).astype(np.float32) + 0.5 for _ in range(4)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn"], epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.2),
        helper.make_node("Conv", ["lr", "dw"], ["c2"], group=8, strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("HardSwish", ["c2"], ["hs"]),
        helper.make_node("MaxPool", ["hs"], ["mp"], kernel_shape=[2, 2], strides=[1, 1]),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Dropout", ["ap", "ratio"], ["dr", "mask"]),
        helper.make_node("Flatten", ["dr"], ["fl"]),
        helper.make_node("MatMul", ["fl", "fc"], ["mm"]),
        helper.make_node("Sum", ["mm", "mm", "fcb"], ["sum"]),
        helper.make_node("Max", ["sum", "zero"], ["mx"]),
        helper.make_node("Gelu", ["mx"], ["ge"]),
        helper.make_node("LayerNormalization", ["ge", "lns", "lnb"], ["ln"], axis=-1),
        helper.make_node("Softmax", ["ln"], ["y"]),
    ]
    inits = [("w", w), ("dw", dw), ("s", bn[0]), ("b", bn[1]), ("m", bn[2]), ("v", bn[3]),
             ("ratio", np.array(0.3, np.float32)), ("fc", RNG.standard_normal((8 * 3 * 3, 10)).astype(np.float32)),
             ("fcb", RNG.standard_normal(10).astype(np.float32)), ("zero", np.array(0.0, np.float32)),
             ("lns", np.ones(10, np.float32) * 1.5), ("lnb", np.full(10, 0.1, np.float32))]
    g = check_vs_ort(make_model(nodes, [("x", [1, 3, 8, 8])], [("y", None)], inits, 20))
    assert g.node("conv1").op == "Conv" and "Dropout" not in ops_of(g)
    assert g.meta["source"] == {"format": "onnx", "path": "m.onnx", "opset": 20}


def test_alexnet_lrn_block():
    """AlexNet's first block (conv 11x11 s4, ReLU, LRN size 5, max pool 3x3 s2) against onnxruntime."""
    w = RNG.standard_normal((16, 3, 11, 11)).astype(np.float32) * 0.2
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[4, 4], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("LRN", ["r"], ["n"], size=5, alpha=1e-4, beta=0.75, bias=2.0, name="norm1"),
        helper.make_node("MaxPool", ["n"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ]
    # atol: each conv output sums 363 float32 products of up to ~10; their rounding (~1e-4 absolute) depends on the
    # summation order, which differs between BLAS builds and CPUs, and it survives ReLU and LRN where an output is
    # near zero (seen on an AMD EPYC: 0.0061894 vs onnxruntime's 0.0062058, both within 1e-4 of a float64 sum)
    g = check_vs_ort(make_model(nodes, [("x", [1, 3, 67, 67])], [("y", None)], [("w", w)], 13),
                     feeds={"x": RNG.uniform(0, 40, (1, 3, 67, 67)).astype(np.float32)}, atol=1e-4)
    assert g.node("norm1").op == "LRN" and g.node("norm1").attrs == {"size": 5, "alpha": 1e-4, "beta": 0.75,
                                                                      "bias": 2.0}
    bad = make_model([helper.make_node("LRN", ["x"], ["y"], size=4, name="norm2")], [("x", [1, 6, 3, 3])],
                     [("y", None)])
    with pytest.raises(ModelFormatError, match=r"norm2.*'size' must be an odd number"):
        load_onnx("lrn.onnx", bad.SerializeToString())


def test_decomposed_and_legacy_ops():
    """Ops the IR has no node for map to chains of IR ops (Elu, Selu, Softplus, InstanceNormalization,
    Expand, Tile, DepthToSpace, Mean) and 1-D ConvTranspose runs as 2-D."""
    nodes = [
        helper.make_node("Elu", ["x"], ["e"], alpha=0.7),
        helper.make_node("Selu", ["e"], ["s"]),
        helper.make_node("Softplus", ["s"], ["sp"]),
        helper.make_node("Softsign", ["sp"], ["ss"]),
        helper.make_node("InstanceNormalization", ["ss", "isc", "ib"], ["inn"], epsilon=1e-4),
        helper.make_node("DepthToSpace", ["inn"], ["d2s"], blocksize=2, mode="CRD"),
        helper.make_node("SpaceToDepth", ["d2s"], ["s2d"], blocksize=2),
        helper.make_node("Expand", ["s2d", "eshape"], ["ex"]),
        helper.make_node("Tile", ["ex", "reps"], ["ti"]),
        helper.make_node("Mean", ["ti", "ti", "ti"], ["y"]),
    ]
    inits = [("isc", RNG.standard_normal(8).astype(np.float32)), ("ib", RNG.standard_normal(8).astype(np.float32)),
             ("eshape", np.array([2, 1, 1, 1], np.int64)), ("reps", np.array([1, 1, 2, 1], np.int64))]
    check_vs_ort(make_model(nodes, [("x", [1, 8, 3, 4])], [("y", None)], inits, 13))
    ct = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2], pads=[1, 0], output_padding=[1])
    inits = [("w", RNG.standard_normal((4, 3, 3)).astype(np.float32)), ("b", RNG.standard_normal(3).astype(np.float32))]
    check_vs_ort(make_model([ct], [("x", [2, 4, 5])], [("y", None)], inits, 13))


def test_opset6_legacy_broadcast_and_prelu():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], broadcast=1, axis=1),
             helper.make_node("PRelu", ["a", "slope"], ["y"])]
    inits = [("b", np.arange(3, dtype=np.float32)), ("slope", np.array([0.1, 0.2, 0.3], np.float32))]
    g = load_onnx("m.onnx", make_model(nodes, [("x", [2, 3, 4])], [("y", None)], inits, 6).SerializeToString())
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    a = x + np.arange(3, dtype=np.float32)[None, :, None]
    want = np.where(a >= 0, a, a * np.array([0.1, 0.2, 0.3], np.float32)[None, :, None])
    assert_close(run_graph(g, {"x": x})["y"], want)


def test_qdq_model_maps_to_quantized_tensors():
    w = RNG.integers(-127, 127, (4, 3, 3, 3)).astype(np.int8)
    wscale = np.array([0.01, 0.02, 0.015, 0.03], np.float32)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    inits = [("xs", np.array(0.05, np.float32)), ("xz", np.array(3, np.int8)), ("w", w), ("ws", wscale),
             ("wz", np.zeros(4, np.int8))]
    g = check_vs_ort(make_model(nodes, [("x", [1, 3, 5, 5])], [("y", None)], inits, 13), atol=1e-4)
    assert g.tensors["xq"].dtype == "int8" and g.tensors["xq"].quant.zero_point.tolist() == [3]
    assert g.tensors["w"].dtype == "int8" and g.tensors["w"].quant.axis == 0
    np.testing.assert_array_equal(g.tensors["w"].data, w)
    assert ops_of(g) == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"]


def test_extra_outputs_and_unsorted_nodes():
    mp = helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="pool")
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, None)
    m = make_model([mp], [("x", [1, 1, 4, 4])], [("y", None), idx])
    with pytest.raises(ModelFormatError, match=r"m\.onnx.*node 'pool' \(MaxPool\).*output 'idx'"):
        load_onnx("m.onnx", m.SerializeToString())
    # nodes listed out of order (some writers do this) are sorted; empty names get unique ones
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="Abs_2"), helper.make_node("Neg", ["x"], ["a"], name="n"),
             helper.make_node("Abs", ["y"], ["z"]), helper.make_node("Abs", ["z"], ["w"])]
    g = check_vs_ort(make_model(nodes, [("x", [3])], [("w", None)]))
    names = [n.name for n in g.nodes]
    assert len(set(names)) == 4 and {"n", "Abs_2"} <= set(names) and ops_of(g) == ["Neg", "Relu", "Abs", "Abs"]
    # repeated names (onnxruntime refuses them) are made unique too
    nodes = [helper.make_node("Neg", ["x"], ["a"], name="n"), helper.make_node("Relu", ["a"], ["y"], name="n")]
    g = load_onnx("m.onnx", make_model(nodes, [("x", [3])], [("y", None)]).SerializeToString())
    assert [n.name for n in g.nodes] == ["n", "n_1"]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_exported_model(dynamo):
    """A real exporter's output: BN folded, relu6 as Clip, bilinear interpolate, adaptive pool, flatten."""
    import io
    import warnings

    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(128, 10)

        def forward(self, x):
            y = torch.nn.functional.relu6(self.bn(self.conv(x)))
            y = torch.nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = torch.nn.functional.adaptive_avg_pool2d(y, (4, 4)).flatten(1)
            return torch.softmax(self.fc(y).mean(dim=-1, keepdim=True) * y[:, :10], -1)

    torch.manual_seed(0)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), f, dynamo=dynamo, input_names=["x"],
                          opset_version=18 if dynamo else 13, **({} if dynamo else {"dynamic_axes": {"x": {0: "N"}}}))
    g = check_vs_ort(onnx.load_from_string(f.getvalue()))
    assert {"Conv", "Clip", "Resize", "AveragePool", "Gemm", "Softmax"} <= set(ops_of(g))
    if not dynamo:
        assert g.meta["assumed"] == {"x": "batch dim 'N' of input 'x' set to 1"}


# ---- inputs with dynamic dims ----------------------------------------------------------------------

def _dynamic_model(dims):
    x = helper.make_tensor_value_info("x", F, dims)
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [x], [("y", None)])


def test_symbolic_dims_need_a_shape():
    data = _dynamic_model(["N", 3, "H", "W"]).SerializeToString()
    with pytest.raises(ModelFormatError, match=r"net\.onnx: input 'x' has dynamic dims \[N,3,H,W\]; give a fixed "
                                               r"shape with --input-shape"):
        load_onnx("net.onnx", data)
    g = load_onnx("net.onnx", data, input_shapes={"x": (2, 3, 8, 8)})
    assert g.tensors["x"].shape == (2, 3, 8, 8) and g.tensors["y"].shape == (2, 3, 8, 8)
    assert "assumed" not in g.meta
    with pytest.raises(ModelFormatError, match="unknown input"):
        load_onnx("net.onnx", data, input_shapes={"z": (1,)})
    with pytest.raises(ModelFormatError, match="rank 4"):
        load_onnx("net.onnx", data, input_shapes={"x": (1, 3)})


def test_symbolic_batch_defaults_to_one_and_is_recorded():
    g = load_onnx("net.onnx", _dynamic_model(["batch", 3, 8, 8]).SerializeToString())
    assert g.tensors["x"].shape == (1, 3, 8, 8)
    assert "batch" in g.meta["assumed"]["x"]
    g = load_onnx("net.onnx", _dynamic_model(["batch", 3, 8, 8]).SerializeToString(), {"x": (4, 3, 8, 8)})
    assert g.tensors["x"].shape == (4, 3, 8, 8) and "assumed" not in g.meta


# ---- external data -----------------------------------------------------------------------------------

def _external_model(tmp_path, location):
    w = RNG.standard_normal((64, 32)).astype(np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [2, 64])], [("y", None)], [("w", w)])
    path = tmp_path / "model.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    if location != "weights.bin":
        m = onnx.load_model(str(path), load_external_data=False)
        for t in m.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = location
        onnx.save_model(m, str(path))
    return str(path), w


def test_external_data_inside_the_folder_loads(tmp_path):
    path, w = _external_model(tmp_path, "weights.bin")
    g = load_onnx(path)
    np.testing.assert_array_equal(g.tensors["w"].data, w)
    x = RNG.standard_normal((2, 64)).astype(np.float32)
    assert_close(run_graph(g, {"x": x})["y"], x @ w)
    (tmp_path / "sub").mkdir()
    os.replace(tmp_path / "weights.bin", tmp_path / "sub" / "weights.bin")
    path, _ = _external_model(tmp_path, "sub/weights.bin")
    os.replace(tmp_path / "weights.bin", tmp_path / "sub" / "weights.bin")
    assert load_onnx(path).tensors["w"].shape == (64, 32)


@pytest.mark.parametrize("location", ["../x.bin", "/etc/passwd", "sub/../../x.bin", "C:\\x.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location):
    path, _ = _external_model(tmp_path, location)
    with pytest.raises(ModelFormatError) as e:
        load_onnx(path)
    assert path in str(e.value) and location in str(e.value) and "refused" in str(e.value)


def test_external_data_symlink_leaving_the_folder_is_refused(tmp_path):
    inner = tmp_path / "model_dir"
    inner.mkdir()
    path, _ = _external_model(inner, "link.bin")
    os.replace(inner / "weights.bin", tmp_path / "outside.bin")
    os.symlink(tmp_path / "outside.bin", inner / "link.bin")
    with pytest.raises(ModelFormatError, match="symbolic link; refused"):
        load_onnx(path)


def test_external_data_missing_file(tmp_path):
    path, _ = _external_model(tmp_path, "weights.bin")
    os.remove(tmp_path / "weights.bin")
    with pytest.raises(ModelFormatError, match="'weights.bin'.*not found"):
        load_onnx(path)


# ---- broken files ------------------------------------------------------------------------------------

def test_bad_files(tmp_path):
    good = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", None)]).SerializeToString()
    assert sniff_onnx(good) and not sniff_onnx(b"") and not sniff_onnx(b"\x18\x00\x00\x00TFL3")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match=r"empty\.onnx: the file is empty"):
        load_onnx(str(empty))
    with pytest.raises(ModelFormatError, match=r"x\.onnx: not an ONNX model.*wrong magic"):
        load_onnx("x.onnx", b"\x18\x00\x00\x00TFL3" + bytes(200))
    with pytest.raises(ModelFormatError, match="not an ONNX model"):
        load_onnx("x.onnx", b"hello, this is a text file\n")
    for cut in (len(good) // 2, len(good) - 3):
        with pytest.raises(ModelFormatError, match=r"t\.onnx: corrupted or truncated"):
            load_onnx("t.onnx", good[:cut])
    with pytest.raises(ModelFormatError, match=r"missing\.onnx: cannot read the file"):
        load_onnx(str(tmp_path / "missing.onnx"))


@pytest.mark.parametrize("op,domain", [("Einsum", ""), ("FusedConv", "com.acme")])
def test_unsupported_op_is_named(op, domain):
    node = helper.make_node(op, ["x", "x"], ["y"], name="the_node", domain=domain, **({"equation": "ij,jk->ik"} if
                                                                                         op == "Einsum" else {}))
    m = make_model([node], [("x", [2, 2])], [("y", None)])
    if domain:
        m.opset_import.append(helper.make_opsetid(domain, 1))
    with pytest.raises(UnsupportedOpError) as e:
        load_onnx("net.onnx", m.SerializeToString())
    msg = str(e.value)
    assert msg.startswith("net.onnx: unsupported op") and "'the_node'" in msg and op in msg and "Conv" in msg
    assert e.value.node == "the_node"


@pytest.mark.parametrize("node,inits,match", [
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], name="n"), [],
     r"attribute dilations=\[2, 2\] is not supported"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic", name="n"),
     [("s", np.array([1, 1, 2, 2], np.float32))], "mode 'cubic' is not supported"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], name="n"),
     [("s", np.array([1, 2, 2, 2], np.float32))], "batch or channel dims"),
    (helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="n"),
     [("r", np.array(0.5, np.float32)), ("t", np.array(True))], "training_mode=true"),
    (helper.make_node("LpNormalization", ["x"], ["y"], name="n"), [], "unsupported op 'LpNormalization'"),
    (helper.make_node("Relu", ["x"], ["y"], name="n", alpha=1.0), [], "attribute 'alpha' is not supported"),
], ids=["pool-dilations", "cubic", "resize-channels", "dropout-training", "unknown-op", "unknown-attr"])
def test_attributes_the_ir_cannot_express_are_errors(node, inits, match):
    m = make_model([node], [("x", [1, 2, 4, 4])], [("y", None)], inits, 17)
    with pytest.raises(ModelFormatError, match=r"m\.onnx: .*'n'.*" + match if "unsupported op" not in match
                       else r"m\.onnx: " + match + ".* at node 'n'"):
        load_onnx("m.onnx", m.SerializeToString())


def test_dynamic_shape_operand_is_an_error():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")]
    m = make_model(nodes, [("x", [2, 3]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])], [("y", None)])
    with pytest.raises(ModelFormatError, match=r"node 'rs' \(Reshape\): input 'shape' \('s'\) must be a constant"):
        load_onnx("m.onnx", m.SerializeToString())


# ---- speed -------------------------------------------------------------------------------------------

def _best_time(fn, n=2):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def test_thousand_node_graph_imports_fast():
    """1,001 nodes, 572 of them a torch-style Shape->Gather->Unsqueeze->Concat->Reshape chain per block, so
    folding (onnx.reference on single nodes) is part of what is timed."""
    nodes = []
    inits = [("i1", np.array(1, np.int64)), ("ax0", np.array([0], np.int64)), ("minus1", np.array([-1], np.int64))]
    x = "x"
    for i in range(143):  # 7 nodes per block
        inits.append((f"w{i}", (RNG.standard_normal((16, 16)) * 0.25).astype(np.float32)))
        inits.append((f"b{i}", RNG.standard_normal(16).astype(np.float32)))
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Shape", [f"a{i}"], [f"s{i}"]),
                  helper.make_node("Gather", [f"s{i}", "i1"], [f"g{i}"], axis=0),
                  helper.make_node("Unsqueeze", [f"g{i}", "ax0"], [f"u{i}"]),
                  helper.make_node("Concat", ["minus1", f"u{i}"], [f"c{i}"], axis=0),
                  helper.make_node("Reshape", [f"a{i}", f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    data = make_model(nodes, [("x", [4, 16])], [(x, None)], inits).SerializeToString()
    assert len(nodes) == 1001
    t = _best_time(lambda: load_onnx("big.onnx", data))
    g = load_onnx("big.onnx", data)
    assert ops_of(g) == ["MatMul", "Add", "Reshape"] * 143
    print(f"1,001-node graph imported in {t * 1e3:.0f} ms")
    assert t < 2.0


def test_mobilenet_v2_imports_fast():
    data = mobilenet_v2_onnx().SerializeToString()
    t = _best_time(lambda: load_onnx("mobilenet_v2.onnx", data))
    g = load_onnx("mobilenet_v2.onnx", data)
    print(f"MobileNetV2 ({len(g.nodes)} nodes) imported in {t * 1e3:.0f} ms")
    assert t < 0.5
    assert "Shape" not in ops_of(g) and g.tensors["output"].shape == (1, 1000)


def test_mobilenet_v2_matches_onnxruntime():
    check_vs_ort(mobilenet_v2_onnx(res=96, classes=10))
