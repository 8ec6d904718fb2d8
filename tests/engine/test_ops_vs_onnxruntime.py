"""Every op's float reference against onnxruntime, one node at a time.

Each case builds the same computation twice: as an IR node (engine/ops) and as a single-node ONNX model
written with onnx.helper (independent of our importer/exporter), then compares outputs and shapes.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.builder import GraphBuilder
from engine.execute import run_graph

R = np.random.default_rng(0)


def rnd(*shape, lo=-2.0, hi=2.0):
    return R.uniform(lo, hi, size=shape).astype(np.float32)


# (id, op, runtime inputs, constant inputs (ONNX initializers, also IR constants), ONNX attrs,
#  ONNX-only constant inputs (become IR attrs), IR attrs, opset, ONNX op if different)
CASES = [
    ("conv2d_pads_stride", "Conv", [rnd(1, 3, 9, 8)], [rnd(4, 3, 3, 3), rnd(4)],
     dict(pads=[1, 0, 2, 1], strides=[2, 1]), [], None, 17, None),
    ("conv2d_dilation_group", "Conv", [rnd(2, 4, 10, 10)], [rnd(6, 2, 3, 3)],
     dict(dilations=[2, 2], group=2, pads=[2, 2, 2, 2]), [], None, 17, None),
    ("conv2d_depthwise_same", "Conv", [rnd(1, 8, 7, 7)], [rnd(8, 1, 3, 3), rnd(8)],
     dict(group=8, auto_pad="SAME_UPPER", strides=[2, 2]), [], None, 17, None),
    ("conv2d_same_lower", "Conv", [rnd(1, 2, 6, 6)], [rnd(3, 2, 4, 4)],
     dict(auto_pad="SAME_LOWER", strides=[1, 1]), [], None, 17, None),
    ("conv1d", "Conv", [rnd(2, 3, 20)], [rnd(5, 3, 5), rnd(5)], dict(strides=[2], pads=[2, 1]), [], None, 17, None),
    ("conv1d_depthwise_dilated", "Conv", [rnd(1, 4, 16)], [rnd(4, 1, 3)], dict(group=4, dilations=[3]), [], None, 17, None),
    ("convtranspose", "ConvTranspose", [rnd(1, 4, 5, 5)], [rnd(4, 3, 3, 3), rnd(3)],
     dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]), [], None, 17, None),
    ("convtranspose_group_dil", "ConvTranspose", [rnd(1, 4, 4, 6)], [rnd(4, 1, 2, 3)],
     dict(group=2, dilations=[2, 1], strides=[1, 2]), [], None, 17, None),
    ("gemm", "Gemm", [rnd(3, 5)], [rnd(4, 5), rnd(4)], dict(transB=1, alpha=0.5, beta=2.0), [], None, 17, None),
    ("gemm_transA", "Gemm", [rnd(5, 3)], [rnd(5, 4)], dict(transA=1), [], None, 17, None),
    ("matmul_batched", "MatMul", [rnd(2, 3, 4, 5), rnd(1, 3, 5, 6)], [], {}, [], None, 17, None),
    ("matmul_vec", "MatMul", [rnd(7), rnd(2, 7, 3)], [], {}, [], None, 17, None),
    ("batchnorm", "BatchNormalization", [rnd(2, 3, 4, 4)], [rnd(3), rnd(3), rnd(3), rnd(3, lo=0.5, hi=2)],
     dict(epsilon=1e-3), [], None, 15, None),
    ("relu", "Relu", [rnd(3, 4)], [], {}, [], None, 17, None),
    ("clip", "Clip", [rnd(3, 4)], [], {}, [("min", np.float32(-0.5)), ("max", np.float32(1.0))],
     dict(min=-0.5, max=1.0), 13, None),
    ("relu6", "Relu6", [rnd(3, 4, lo=-8, hi=8)], [], {}, [("min", np.float32(0)), ("max", np.float32(6))],
     {}, 13, "Clip"),
    ("leakyrelu", "LeakyRelu", [rnd(3, 4)], [], dict(alpha=0.1), [], None, 17, None),
    ("prelu", "PRelu", [rnd(2, 3, 4, 4)], [rnd(3, 1, 1)], {}, [], None, 17, None),
    ("sigmoid", "Sigmoid", [rnd(3, 4, lo=-9, hi=9)], [], {}, [], None, 17, None),
    ("tanh", "Tanh", [rnd(3, 4)], [], {}, [], None, 17, None),
    ("hardswish", "HardSwish", [rnd(3, 4, lo=-5, hi=5)], [], {}, [], None, 17, None),
    ("hardsigmoid", "HardSigmoid", [rnd(3, 4, lo=-5, hi=5)], [], dict(alpha=0.3, beta=0.4), [], None, 17, None),
    ("gelu", "Gelu", [rnd(3, 4, lo=-4, hi=4)], [], {}, [], None, 20, None),
    ("gelu_tanh", "Gelu", [rnd(3, 4, lo=-4, hi=4)], [], dict(approximate="tanh"), [], None, 20, None),
    ("softmax", "Softmax", [rnd(2, 3, 5)], [], dict(axis=1), [], None, 13, None),
    ("logsoftmax", "LogSoftmax", [rnd(2, 7)], [], dict(axis=-1), [], None, 13, None),
    ("add_broadcast", "Add", [rnd(2, 3, 4), rnd(3, 1)], [], {}, [], None, 17, None),
    ("sub", "Sub", [rnd(2, 3), rnd(2, 3)], [], {}, [], None, 17, None),
    ("mul_const", "Mul", [rnd(2, 3, 4)], [rnd(4)], {}, [], None, 17, None),
    ("div", "Div", [rnd(2, 3), rnd(2, 3, lo=0.5, hi=2)], [], {}, [], None, 17, None),
    ("concat", "Concat", [rnd(1, 2, 3), rnd(1, 4, 3)], [], dict(axis=1), [], None, 17, None),
    ("split", "Split", [rnd(2, 7)], [], dict(axis=1), [("split", np.array([3, 4], np.int64))], dict(axis=1, split=[3, 4]),
     17, None),
    ("slice_steps", "Slice", [rnd(4, 10)], [], {},
     [("starts", np.array([1, -2], np.int64)), ("ends", np.array([4, -9], np.int64)),
      ("axes", np.array([0, 1], np.int64)), ("steps", np.array([2, -3], np.int64))],
     dict(starts=[1, -2], ends=[4, -9], axes=[0, 1], steps=[2, -3]), 17, None),
    ("slice_clamp", "Slice", [rnd(3, 5)], [], {},
     [("starts", np.array([0], np.int64)), ("ends", np.array([2**62], np.int64)), ("axes", np.array([1], np.int64))],
     dict(starts=[0], ends=[2**62], axes=[1]), 17, None),
    ("maxpool", "MaxPool", [rnd(1, 2, 7, 7)], [], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
     [], None, 17, None),
    ("maxpool_ceil", "MaxPool", [rnd(1, 2, 8, 8)], [], dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
     [], None, 17, None),
    ("avgpool_exclude_pad", "AveragePool", [rnd(1, 2, 6, 6)], [],
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), [], None, 17, None),
    ("avgpool_include_pad", "AveragePool", [rnd(1, 2, 6, 6)], [],
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1), [], None, 17, None),
    ("avgpool_1d", "AveragePool", [rnd(1, 3, 11)], [], dict(kernel_shape=[4], strides=[3]), [], None, 17, None),
    ("globalavgpool", "GlobalAveragePool", [rnd(2, 3, 5, 4)], [], {}, [], None, 17, None),
    ("globalmaxpool", "GlobalMaxPool", [rnd(2, 3, 5, 4)], [], {}, [], None, 17, None),
    ("reducemean", "ReduceMean", [rnd(2, 3, 4)], [], dict(keepdims=0), [("axes", np.array([1, 2], np.int64))],
     dict(axes=[1, 2], keepdims=0), 18, None),
    ("flatten", "Flatten", [rnd(2, 3, 4, 5)], [], dict(axis=2), [], None, 17, None),
    ("reshape", "Reshape", [rnd(2, 3, 4)], [], {}, [("shape", np.array([0, -1, 2], np.int64))],
     dict(shape=[0, -1, 2]), 17, None),
    ("transpose", "Transpose", [rnd(2, 3, 4)], [], dict(perm=[2, 0, 1]), [], None, 17, None),
    ("squeeze", "Squeeze", [rnd(1, 3, 1, 4)], [], {}, [("axes", np.array([2], np.int64))], dict(axes=[2]), 17, None),
    ("unsqueeze", "Unsqueeze", [rnd(3, 4)], [], {}, [("axes", np.array([0, 3], np.int64))], dict(axes=[0, 3]),
     17, None),
    ("pad_constant", "Pad", [rnd(1, 2, 3, 3)], [], {},
     [("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), ("constant_value", np.float32(0.5))],
     dict(pads=[0, 0, 1, 2, 0, 0, 2, 1], value=0.5), 17, None),
    ("pad_reflect", "Pad", [rnd(1, 2, 4, 4)], [], dict(mode="reflect"),
     [("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))], dict(pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect"),
     17, None),
    ("pad_edge", "Pad", [rnd(1, 3, 4)], [], dict(mode="edge"), [("pads", np.array([0, 1, 2, 0, 0, 3], np.int64))],
     dict(pads=[0, 1, 2, 0, 0, 3], mode="edge"), 17, None),
    ("resize_nearest", "Resize", [rnd(1, 2, 3, 4)], [], dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                                                             nearest_mode="floor"),
     [("roi", np.array([], np.float32)), ("scales", np.array([1, 1, 2, 2], np.float32))],
     dict(scales=[2.0, 2.0], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     17, None),
    ("resize_bilinear_half_pixel", "Resize", [rnd(1, 2, 4, 5)], [], dict(mode="linear"),
     [("roi", np.array([], np.float32)), ("scales", np.array([], np.float32)),
      ("sizes", np.array([1, 2, 7, 9], np.int64))], dict(sizes=[7, 9], mode="linear"), 17, None),
    ("resize_bilinear_align", "Resize", [rnd(1, 1, 3, 3)], [],
     dict(mode="linear", coordinate_transformation_mode="align_corners"),
     [("roi", np.array([], np.float32)), ("scales", np.array([1, 1, 2, 2], np.float32))],
     dict(scales=[2.0, 2.0], mode="linear", coordinate_transformation_mode="align_corners"), 17, None),
    ("layernorm", "LayerNormalization", [rnd(2, 5, 8)], [rnd(8), rnd(8)], dict(axis=-1, epsilon=1e-5), [], None, 17, None),
    ("gather_const", "Gather", [rnd(5, 4)], [np.array([[0, 4], [-1, 2]], np.int64)], dict(axis=0), [], None, 17, None),
    ("erf", "Erf", [rnd(3, 4)], [], {}, [], None, 17, None),
    ("sqrt", "Sqrt", [rnd(3, 4, lo=0.1, hi=4)], [], {}, [], None, 17, None),
    ("pow", "Pow", [rnd(3, 4, lo=0.1, hi=2), rnd(1, lo=0.5, hi=2)], [], {}, [], None, 17, None),
    ("exp", "Exp", [rnd(3, 4)], [], {}, [], None, 17, None),
    ("max", "Max", [rnd(3, 4), rnd(4)], [], {}, [], None, 17, None),
    ("reducesum", "ReduceSum", [rnd(2, 3, 4)], [], {}, [("axes", np.array([-1], np.int64))], dict(axes=[-1]), 17, None),
    # LRN: AlexNet's attributes (size 5) and a window wider than the channels; large inputs and alpha make the
    # normalization bite (onnxruntime runs 4-D LRN only; rank 3 is checked against PyTorch in test_torch_export).
    ("lrn_alexnet", "LRN", [rnd(2, 8, 5, 5, lo=-30, hi=30)], [], dict(size=5, alpha=1e-4, beta=0.75, bias=2.0), [],
     None, 13, None),
    ("lrn_wide_window", "LRN", [rnd(1, 3, 4, 4)], [], dict(size=7, alpha=0.9), [], None, 13, None),
]


def _onnx_model(op, inputs, consts, onnx_attrs, onnx_only, opset, n_out):
    names = [f"x{i}" for i in range(len(inputs))]
    inits = []
    for i, c in enumerate(consts):
        inits.append(numpy_helper.from_array(np.asarray(c), f"c{i}"))
        names.append(f"c{i}")
    for name, value in onnx_only:
        if value is None:
            names.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        names.append(name)
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **onnx_attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, x.shape) for i, x in enumerate(inputs)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _ir_graph(op, inputs, consts, attrs, n_out):
    b = GraphBuilder(op)
    names = [b.input(f"x{i}", x.shape) for i, x in enumerate(inputs)]
    names += [b.const(f"c{i}", np.asarray(c)) for i, c in enumerate(consts)]
    outs = b.node(op, names, outputs=n_out, **attrs)
    outs = outs if isinstance(outs, list) else [outs]
    b.output(*outs)
    return b.build()


def assert_close(name, ours, ref, rtol=1e-4, atol=1e-5):
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != onnxruntime {ref.shape}"
    bad = ~np.isclose(ours, ref, rtol=rtol, atol=atol)
    if bad.any():
        idx = np.argwhere(bad)[:5]
        diffs = ", ".join(f"{tuple(i)}: ours {ours[tuple(i)]:.7g} vs ort {ref[tuple(i)]:.7g}" for i in idx)
        raise AssertionError(f"{name}: {int(bad.sum())} of {bad.size} values differ; first: {diffs}")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_matches_onnxruntime(case):
    cid, op, inputs, consts, onnx_attrs, onnx_only, ir_attrs, opset, onnx_op = case
    n_out = 2 if op == "Split" else 1
    model = _onnx_model(onnx_op or op, inputs, consts, onnx_attrs, onnx_only, opset, n_out)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {f"x{i}": x for i, x in enumerate(inputs)})
    g = _ir_graph(op, inputs, consts, onnx_attrs if ir_attrs is None else ir_attrs, n_out)
    ours = run_graph(g, {f"x{i}": x for i, x in enumerate(inputs)})
    for name, r in zip(g.outputs, ref):
        assert g.tensors[name].shape == r.shape, f"{cid}: inferred shape {g.tensors[name].shape} != {r.shape}"
        assert_close(cid, ours[name], r)


def test_lrn_refuses_an_even_window_and_a_low_rank():
    from engine.errors import GraphError

    with pytest.raises(GraphError, match="'size' must be an odd number"):
        _ir_graph("LRN", [rnd(1, 6, 3, 3)], [], dict(size=4), 1)
    with pytest.raises(GraphError, match="rank >= 3"):
        _ir_graph("LRN", [rnd(2, 6)], [], dict(size=3), 1)


def test_nhwc_conv_and_pool_equal_nchw():
    """layout=NHWC (TFLite) computes the same as NCHW on transposed data and weights."""
    x, w, bias = rnd(1, 6, 9, 9), rnd(6, 1, 3, 3), rnd(6)
    for attrs in (dict(group=6, strides=[2, 2], auto_pad="SAME_UPPER"), dict(group=1, pads=[1, 0, 1, 2])):
        wi = w if attrs["group"] == 6 else rnd(4, 6, 3, 3)
        bi = bias if attrs["group"] == 6 else rnd(4)
        a = _ir_graph("Conv", [x], [wi, bi], attrs, 1)
        b = _ir_graph("Conv", [x.transpose(0, 2, 3, 1)], [wi.transpose(0, 2, 3, 1), bi],
                      {**attrs, "layout": "NHWC", "activation": "relu6"}, 1)
        ya = np.clip(run_graph(a, {"x0": x})[a.outputs[0]], 0, 6)
        yb = run_graph(b, {"x0": x.transpose(0, 2, 3, 1)})[b.outputs[0]]
        assert_close("nhwc conv", yb, ya.transpose(0, 2, 3, 1))
    p = dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    a = _ir_graph("AveragePool", [x], [], p, 1)
    b = _ir_graph("AveragePool", [x.transpose(0, 2, 3, 1)], [], {**p, "layout": "NHWC"}, 1)
    assert_close("nhwc pool", run_graph(b, {"x0": x.transpose(0, 2, 3, 1)})[b.outputs[0]],
                 run_graph(a, {"x0": x})[a.outputs[0]].transpose(0, 2, 3, 1))


def test_costs_of_known_layers():
    from engine.summary import graph_cost

    # 3x3 conv 16->32 on 8x8 output, bias: MACs = 8*8*32*16*9
    g = _ir_graph("Conv", [rnd(1, 16, 8, 8)], [rnd(32, 16, 3, 3), rnd(32)], dict(pads=[1, 1, 1, 1]), 1)
    c = graph_cost(g)
    assert c.macs == 8 * 8 * 32 * 16 * 9 and c.params == 32 * 16 * 9 + 32
    # depthwise 3x3 on 32 channels, stride 2 of 8x8 -> 4x4: MACs = 4*4*32*9
    g = _ir_graph("Conv", [rnd(1, 32, 8, 8)], [rnd(32, 1, 3, 3)], dict(group=32, strides=[2, 2], pads=[1, 1, 1, 1]), 1)
    assert graph_cost(g).macs == 4 * 4 * 32 * 9
    g = _ir_graph("Gemm", [rnd(1, 100)], [rnd(10, 100), rnd(10)], dict(transB=1), 1)
    c = graph_cost(g)
    assert (c.macs, c.params) == (1000, 1010)
    g = _ir_graph("MatMul", [rnd(2, 4, 8), rnd(2, 8, 3)], [], {}, 1)
    assert graph_cost(g).macs == 2 * 4 * 3 * 8
    # LRN size 5 over 8 channels: windows clipped at the edges hold 3, 4, 5, 5, 5, 5, 4, 3 channels = 34 squares
    # summed per position, 5x5 positions, batch 2
    g = _ir_graph("LRN", [rnd(2, 8, 5, 5)], [], dict(size=5), 1)
    assert graph_cost(g).macs == 2 * 25 * 34
