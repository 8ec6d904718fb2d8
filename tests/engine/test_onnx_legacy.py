"""Old-opset ONNX models (opsets 7..12, as the ONNX model zoo's AlexNet, GoogLeNet and DenseNet-121 files are):
axes as attributes (Unsqueeze, Squeeze, ReduceMean), constant subgraphs folded at the file's opset, LRN.
Each model is built with onnx.helper, imported, run against onnxruntime and profiled."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper

from engine.execute import run_graph
from engine.importers.onnx_import import load_onnx
from engine.profile import profile_graph
from tests.engine.test_onnx_import import check_vs_ort, make_model

RNG = np.random.default_rng(12)


def alexnet_style(opset: int) -> onnx.ModelProto:
    """Conv-Relu-LRN-MaxPool twice, a DenseNet-style constant Unsqueeze (folded), Squeeze/Unsqueeze and
    ReduceMean with axes attributes at run time, Flatten-Gemm-Softmax."""
    w = lambda *s: (RNG.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("LRN", ["r1"], ["l1"], size=5, alpha=1e-4, beta=0.75, bias=1.0),
        helper.make_node("MaxPool", ["l1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2]),
        # the bias of conv2 reaches it through a constant Unsqueeze (axes attribute): folded at import
        helper.make_node("Unsqueeze", ["b2_flat"], ["b2_4d"], axes=[0, 2, 3]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "b2_4d"], ["c2b"]),
        helper.make_node("Relu", ["c2b"], ["r2"]),
        helper.make_node("LRN", ["r2"], ["l2"], size=3, alpha=2e-4, beta=0.75, bias=2.0),
        helper.make_node("ReduceMean", ["l2"], ["m"], axes=[2, 3], keepdims=1),
        helper.make_node("Squeeze", ["m"], ["s"], axes=[2, 3]),
        helper.make_node("Unsqueeze", ["s"], ["u"], axes=[1]),
        helper.make_node("Flatten", ["u"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"]),
    ]
    inits = [("w1", w(8, 3, 3, 3)), ("b1", w(8)), ("w2", w(12, 8, 3, 3)), ("b2_flat", w(12)), ("w3", w(5, 12)),
             ("b3", w(5))]
    return make_model(nodes, [("x", [1, 3, 32, 32])], [("y", None)], inits, opset)


@pytest.mark.parametrize("opset", [7, 8, 9, 10, 11, 12])
def test_old_opset_alexnet_style_model(opset):
    m = alexnet_style(opset)
    g = check_vs_ort(m, rtol=1e-4, atol=1e-6)
    ops = [n.op for n in g.nodes]
    assert ops.count("LRN") == 2 and "Unsqueeze" in ops and "Squeeze" in ops
    assert not any(n.inputs and "b2_flat" in n.inputs for n in g.nodes)  # the constant Unsqueeze was folded
    prof = profile_graph(g, [("stm32f746ng", "tflm-reference")])
    lrn = [row.to_json() for row in prof.layers if row.to_json()["op"] == "LRN"]
    assert len(lrn) == 2 and all(r["macs"] > 0 and r["output_bytes"] == r["input_bytes"] for r in lrn)
    assert prof.targets[0].latency_ms > 0 and prof.targets[0].fits


def test_onnx_package_light_zoo_models_import():
    """The onnx package's 'light' versions of ONNX-zoo architectures (opset 9; weights built by
    ConstantOfShape): AlexNet and GoogLeNet (LRN), DenseNet-121 (the old-opset Unsqueeze of issue 12) import;
    GoogLeNet runs like onnxruntime."""
    import onnxruntime as ort

    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    for name, lrn in [("light_bvlc_alexnet", True), ("light_inception_v1", True), ("light_densenet121", False)]:
        path = os.path.join(folder, f"{name}.onnx")
        if not os.path.isfile(path):
            pytest.skip(f"{path} not in this onnx package")
        g = load_onnx(path)
        assert ("LRN" in {n.op for n in g.nodes}) == lrn
        x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
        if name != "light_inception_v1":  # at 224x224 the float reference takes seconds: one model runs
            assert g.tensors[g.outputs[0]].shape in ((1, 1000), (1, 1000, 1, 1))
            continue
        got = run_graph(g, {g.inputs[0]: x})[g.outputs[0]]
        want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {g.inputs[0]: x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
