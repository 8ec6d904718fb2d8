"""ONNX exporter: import -> export -> onnxruntime equals the original model in onnxruntime; NHWC graphs built
in code; QDQ export of a quantized graph. Every exported model passes onnx.checker with full_check."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper

from engine.builder import GraphBuilder
from engine.errors import GraphError
from engine.execute import run_graph
from engine.exporters.onnx_export import save_onnx, to_onnx
from engine.importers.onnx_import import load_onnx
from engine.ir import Quant, Tensor
from tests.engine.test_onnx_import import LATEST, assert_close, make_model, mobilenet_v2_onnx, ort_run

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
RNG = np.random.default_rng(3)
MAX_DIFF = 1e-4


def exported(graph, opset=17) -> onnx.ModelProto:
    model = to_onnx(graph, opset)
    onnx.checker.check_model(model, full_check=True)
    return model


def feeds_for(g):
    return {n: RNG.standard_normal(g.tensors[n].shape).astype(np.float32) for n in g.inputs}


def assert_roundtrip(original: onnx.ModelProto | str, opset=17, feeds=None):
    """import -> export; onnxruntime on both models gives the same outputs."""
    data = open(original, "rb").read() if isinstance(original, str) else original.SerializeToString()
    g = load_onnx(original if isinstance(original, str) else "m.onnx", data)
    feeds = feeds or feeds_for(g)
    want = ort_run(data, feeds)
    got = ort_run(exported(g, opset), feeds)
    for w, x, name in zip(want, got, g.outputs):
        assert_close(x, w, rtol=0, atol=MAX_DIFF, what=f"exported output '{name}'")
    return g


BACKEND = ["pytorch-converted/test_Conv2d_depthwise_padded", "pytorch-converted/test_ConvTranspose2d",
           "pytorch-converted/test_BatchNorm2d_eval", "pytorch-converted/test_PixelShuffle",
           "pytorch-converted/test_GLU_dim", "pytorch-converted/test_softmax_functional_dim3",
           "pytorch-converted/test_MaxPool2d_stride_padding_dilation", "pytorch-converted/test_AvgPool1d_stride",
           "pytorch-converted/test_Embedding", "pytorch-converted/test_Conv1d_groups",
           "pytorch-operator/test_operator_pad", "pytorch-operator/test_operator_conv",
           "pytorch-operator/test_operator_reduced_mean_keepdim", "pytorch-operator/test_operator_chunk"]


@pytest.mark.parametrize("name", BACKEND, ids=[b.split("/")[1] for b in BACKEND])
def test_backend_model_roundtrip(name):
    """On the stored inputs. Opset-6 models onnxruntime has no kernels for (BatchNormalization-6, Mul-6,
    AveragePool-1) are compared with the stored outputs instead of onnxruntime on the original."""
    folder = os.path.join(DATA, *name.split("/"))
    path = os.path.join(folder, "model.onnx")
    g = load_onnx(path)
    load = lambda kind: [onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, "test_data_set_0", f)))  # noqa: E731
                         for f in sorted(os.listdir(os.path.join(folder, "test_data_set_0"))) if f.startswith(kind)]
    feeds = dict(zip(g.inputs, load("input")))
    try:
        want = ort_run(open(path, "rb").read(), feeds)
    except Exception as e:  # onnxruntime's NotImplemented for opset-6 kernels
        assert "NOT_IMPLEMENTED" in str(e), e
        want = load("output")
    got = ort_run(exported(g), feeds)
    for w, x, out in zip(want, got, g.outputs):
        assert_close(x, w, rtol=0, atol=MAX_DIFF, what=f"exported output '{out}'")


def _op_zoo_model(opset):
    """Ops whose operands moved between attributes and inputs across opsets."""
    nodes = [
        helper.make_node("Pad", ["x", "pads", "pv"], ["p"], mode="constant"),
        helper.make_node("Resize", ["p", "", "sc"], ["r"], mode="linear"),
        helper.make_node("Clip", ["r", "lo", "hi"], ["c"]),
        helper.make_node("ReduceSum", ["c", "ax23"], ["rs"], keepdims=1),
        helper.make_node("ReduceMax", ["c", "ax23"] if opset >= 18 else ["c"], ["rm"],
                         **({} if opset >= 18 else {"axes": [2, 3]})),
        helper.make_node("Sub", ["rs", "rm"], ["d"]),
        helper.make_node("Mul", ["c", "d"], ["m"]),
        helper.make_node("Split", ["m", "sp"], ["s0", "s1"], axis=1),
        helper.make_node("Slice", ["s1", "st", "en", "ax1", "stp"], ["sl"]),
        helper.make_node("Squeeze", ["sl", "ax0"], ["sq"]),
        helper.make_node("Unsqueeze", ["sq", "ax0"], ["us"]),
        helper.make_node("Concat", ["us", "s0"], ["cat"], axis=1),
        helper.make_node("Transpose", ["cat"], ["tr"], perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["tr", "lns"], ["ln"], axis=-1),
        helper.make_node("Gelu" if opset >= 20 else "Erf", ["ln"], ["ge"]),
        helper.make_node("HardSwish", ["ge"], ["hs"]),
        helper.make_node("LogSoftmax", ["hs"], ["y"], axis=2),
    ]
    inits = [("pads", np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64)), ("pv", np.array(0.5, np.float32)),
             ("sc", np.array([1, 1, 2, 1.5], np.float32)), ("lo", np.array(-1, np.float32)),
             ("hi", np.array(1.5, np.float32)), ("ax23", np.array([2, 3], np.int64)),
             ("sp", np.array([1, 2], np.int64)), ("st", np.array([1], np.int64)), ("en", np.array([100], np.int64)),
             ("ax1", np.array([1], np.int64)), ("stp", np.array([2], np.int64)), ("ax0", np.array([0], np.int64)),
             ("lns", np.full(2, 0.7, np.float32))]
    return make_model(nodes, [("x", [1, 3, 4, 5])], [("y", None)], inits, opset)


@pytest.mark.parametrize("opset", [13, 17, 18, 21, LATEST])
def test_operand_ops_roundtrip_at_every_opset(opset):
    g = load_onnx("m.onnx", _op_zoo_model(max(opset, 17)).SerializeToString())
    if opset < 17:  # LayerNormalization arrived in opset 17
        with pytest.raises(GraphError, match="opset >= 17"):
            to_onnx(g, opset)
        g.nodes = [n for n in g.nodes if n.op != "LayerNormalization"]
        g.nodes[-3].inputs[0] = "tr"
    feeds = feeds_for(g)
    model = exported(g, opset)
    assert model.opset_import[0].version == opset
    want = run_graph(g, feeds)
    for name, x in zip(g.outputs, ort_run(model, feeds)):
        assert_close(x, want[name], rtol=0, atol=MAX_DIFF, what=name)


def test_mobilenet_v2_roundtrip():
    assert_roundtrip(mobilenet_v2_onnx(res=96, classes=10), opset=17)


def _nhwc_graph():
    b = GraphBuilder("nhwc")
    x = b.input("X", (1, 12, 12, 3))
    w1 = b.const("W", RNG.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3)  # (M, kH, kW, C)
    b1 = b.const("B", RNG.standard_normal(8).astype(np.float32))
    y = b.node("Conv", [x, w1, b1], layout="NHWC", pads=[1, 1, 1, 1], activation="relu6")
    wd = b.const("W_dw", RNG.standard_normal((8, 3, 3, 1)).astype(np.float32))  # depthwise (C, kH, kW, 1)
    y = b.node("Conv", [y, wd], layout="NHWC", group=8, strides=[2, 2], pads=[1, 1, 1, 1], activation="relu")
    y = b.node("AveragePool", [y], layout="NHWC", kernel_shape=[2, 2], strides=[2, 2])  # (1, 3, 3, 8)
    y = b.node("Reshape", [y], shape=[1, -1])
    wf = b.const("W_fc", RNG.standard_normal((10, 72)).astype(np.float32) * 0.2)
    bf = b.const("B_fc", RNG.standard_normal(10).astype(np.float32))
    y = b.node("Gemm", [y, wf, bf], transB=1, activation="tanh")
    y = b.node("Softmax", [y], beta=1.5)
    b.output(y)
    return b.build()


def test_nhwc_graph_exports():
    g = _nhwc_graph()
    feeds = feeds_for(g)
    model = exported(g)
    got = ort_run(model, feeds)[0]
    assert_close(got, run_graph(g, feeds)[g.outputs[0]], rtol=0, atol=MAX_DIFF, what="NHWC graph")
    # Transposes only at layout boundaries: graph input -> NCHW, and back to NHWC before the Reshape.
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == 2, ops
    assert ops.count("Clip") == 1 and "Relu" in ops and "Tanh" in ops


def _quantized_graph():
    """float -> Q -> Conv(NHWC, int8 per-channel weights, int32 bias, relu6) -> MaxPool -> Reshape ->
    Gemm(int8) -> DQ -> float, every activation int8 with its own scale, TFLite style."""
    b = GraphBuilder("qnet")
    x = b.input("X", (1, 8, 8, 3))
    xq = b.node("QuantizeLinear", [x], dtype="int8")
    wq = RNG.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8)
    ws = np.array([0.01, 0.02, 0.015, 0.012, 0.03, 0.008], np.float32)
    w = b.const("W", wq, Quant(ws, np.zeros(6, np.int64), axis=0))
    bias = b.const("B", RNG.integers(-500, 500, 6).astype(np.int32), Quant(ws * 0.02, np.zeros(6, np.int64), axis=0))
    c = b.node("Conv", [xq, w, bias], layout="NHWC", pads=[1, 1, 1, 1], activation="relu6")
    p = b.node("MaxPool", [c], layout="NHWC", kernel_shape=[2, 2], strides=[2, 2])
    r = b.node("Reshape", [p], shape=[1, -1])
    fw = b.const("W_fc", RNG.integers(-127, 128, (4, 96)).astype(np.int8), Quant([0.004], [0]))
    f = b.node("Gemm", [r, fw], transB=1)
    y = b.node("DequantizeLinear", [f])
    b.output(y)
    quants = {xq: Quant([0.02], [-3]), c: Quant([6 / 255], [-128]), p: Quant([6 / 255], [-128]),
              r: Quant([6 / 255], [-128]), f: Quant([0.05], [5])}
    for name, q in quants.items():  # quantized activations: int8 tensors declared before inference
        b.g.tensors[name] = Tensor(name, (), "int8", q)
    return b.build(), quants


def test_quantized_graph_exports_as_qdq():
    g, quants = _quantized_graph()
    for name, q in quants.items():
        assert g.tensors[name].dtype == "int8" and g.tensors[name].quant == q
    feeds = {"X": RNG.uniform(-2, 2, (1, 8, 8, 3)).astype(np.float32)}
    model = exported(g, 13)
    ops = [n.op_type for n in model.graph.node]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops)
    assert {t.name: t.data_type for t in model.graph.initializer}["W_nchw"] == onnx.TensorProto.INT8
    got = ort_run(model, feeds)[0]
    want = run_graph(g, feeds, simulate_quant=True)[g.outputs[0]]
    # onnxruntime fuses the QDQ pattern into integer kernels whose requantization rounds differently from the
    # float reference; allow one step of the output grid (scale 0.05).
    assert_close(got, want, rtol=0, atol=0.05 + 1e-6, what="QDQ output")
    assert np.abs(got - want).mean() < 0.01


def test_roundtrip_qdq_model_keeps_integer_weights():
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"])]
    inits = [("s", np.array(0.03, np.float32)), ("z", np.array(-2, np.int8)), ("w", w),
             ("ws", np.array([0.01, 0.02, 0.03, 0.04], np.float32))]
    g = assert_roundtrip(make_model(nodes, [("x", [1, 3, 6, 6])], [("y", None)], inits, 13), opset=13)
    model = to_onnx(g, 13)
    assert {t.name: t.data_type for t in model.graph.initializer}["w"] == onnx.TensorProto.INT8


def test_save_onnx_and_bad_opset(tmp_path):
    g = _nhwc_graph()
    path = tmp_path / "out.onnx"
    save_onnx(g, str(path))
    back = load_onnx(str(path))
    feeds = feeds_for(g)
    assert_close(run_graph(back, feeds)[back.outputs[0]], run_graph(g, feeds)[g.outputs[0]], rtol=0, atol=1e-5)
    with pytest.raises(GraphError, match="opsets 13 to"):
        to_onnx(g, 9)
