"""IR -> PyTorch: the module computes what run_graph computes, trains, and writes its weights back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.builder import GraphBuilder
from engine.execute import run_graph
from engine.exporters.torch_export import exported_ops, from_torch_weights, to_torch
from engine.ir import Quant, Tensor
from engine.serialize import content_hash
from engine.ops import supported_ops
from engine.validate import infer_shapes

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(0)


def rand(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def assert_close(got, want, what=""):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
    if bad.any():
        idx = np.argwhere(bad)[:5]
        rows = ", ".join(f"{tuple(int(v) for v in i)}: torch {got[tuple(i)]:.7g} vs ref {want[tuple(i)]:.7g}"
                         for i in idx)
        pytest.fail(f"{what}: {bad.sum()} of {bad.size} values differ; first: {rows}")


def check(g, feeds, **kw):
    """to_torch(g)(inputs) == run_graph(g, inputs) for every output."""
    want = run_graph(g, feeds, **kw)
    m = to_torch(g, simulate_quant=kw.get("simulate_quant", False)).eval()
    with torch.no_grad():
        got = m(*[torch.from_numpy(np.asarray(feeds[n])) for n in g.inputs])
    got = got if isinstance(got, tuple) else (got,)
    for name, y in zip(g.outputs, got):
        assert_close(y.numpy(), want[name], f"{g.name}/{name}")
    return m


# ---- graphs covering every op ----------------------------------------------------------------------

def cnn_nchw():
    b = GraphBuilder("cnn_nchw")
    x = b.input("X", (2, 4, 9, 9))
    y = b.node("Conv", [x, b.const("W", rand(8, 2, 3, 3)), b.const("B", rand(8))], group=2, pads=[1, 0, 2, 1],
               dilations=[1, 2], activation="relu6")
    y = b.node("BatchNormalization", [y, b.const("s", rand(8, lo=0.5, hi=1.5)), b.const("b", rand(8)),
                                      b.const("m", rand(8)), b.const("v", rand(8, lo=0.5, hi=2))])
    y = b.node("Relu", [y])
    p = b.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    a = b.node("AveragePool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1,
               count_include_pad=1)
    a2 = b.node("AveragePool", [y], kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1], ceil_mode=1)
    b.output(a, a2)
    y = b.node("Add", [p, b.node("Neg", [p])], activation="relu")
    y = b.node("GlobalAveragePool", [b.node("Add", [y, p])])
    y = b.node("Flatten", [y])
    y = b.node("Gemm", [y, b.const("Wfc", rand(5, 8)), b.const("Bfc", rand(5))], transB=1, alpha=0.7, beta=1.3)
    b.output(b.node("Softmax", [y], beta=2.0))
    return b.build(), {"X": rand(2, 4, 9, 9)}


def cnn_nhwc():
    b = GraphBuilder("cnn_nhwc")
    x = b.input("X", (1, 10, 10, 3))
    y = b.node("Conv", [x, b.const("W", rand(6, 3, 3, 3)), b.const("B", rand(6))], layout="NHWC",
               auto_pad="SAME_UPPER", strides=[2, 2], activation="relu")
    y = b.node("Conv", [y, b.const("Wdw", rand(12, 3, 3, 1))], layout="NHWC", group=6, auto_pad="SAME_LOWER",
               activation="relu_n1_to_1")
    y = b.node("BatchNormalization", [y, b.const("s", rand(12)), b.const("b", rand(12)), b.const("m", rand(12)),
                                      b.const("v", rand(12, lo=0.5, hi=2))], layout="NHWC")
    y = b.node("MaxPool", [y], kernel_shape=[2, 2], strides=[1, 1], layout="NHWC", activation="tanh")
    y = b.node("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER", layout="NHWC",
               activation="sigmoid")
    y = b.node("Resize", [y], scales=[2.0, 2.0], mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor", layout="NHWC")
    g = b.node("GlobalMaxPool", [y], layout="NHWC")
    y = b.node("Reshape", [g], shape=[1, -1])
    y = b.node("Gemm", [y, b.const("Wfc", rand(12, 4))])
    b.output(b.node("LogSoftmax", [y], axis=1))
    return b.build(), {"X": rand(1, 10, 10, 3)}


def conv1d():
    b = GraphBuilder("conv1d")
    x = b.input("X", (2, 3, 16))
    y = b.node("Conv", [x, b.const("W", rand(4, 3, 5)), b.const("B", rand(4))], pads=[2, 1], strides=[2])
    y = b.node("MaxPool", [y], kernel_shape=[2], strides=[2])
    y = b.node("AveragePool", [y], kernel_shape=[2], strides=[1], pads=[1, 0])
    t = b.node("Transpose", [y], perm=[0, 2, 1])
    y = b.node("Conv", [t, b.const("W2", rand(5, 3, 4))], layout="NHWC", auto_pad="SAME_UPPER", dilations=[2])
    b.output(b.node("GlobalAveragePool", [y], layout="NHWC"))
    return b.build(), {"X": rand(2, 3, 16)}


def conv_transpose():
    b = GraphBuilder("conv_transpose")
    x = b.input("X", (1, 4, 5, 6))
    y = b.node("ConvTranspose", [x, b.const("W", rand(4, 3, 3, 2)), b.const("B", rand(6))], group=2,
               strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 2], dilations=[2, 1], activation="relu")
    t = b.node("Transpose", [y], perm=[0, 2, 3, 1])
    y = b.node("ConvTranspose", [t, b.const("W2", rand(5, 2, 2, 6)), b.const("B2", rand(5))], layout="NHWC",
               strides=[2, 2], auto_pad="SAME_UPPER")
    b.output(y)
    b.output(b.node("ConvTranspose", [x, b.const("W3", rand(4, 2, 3, 3))], strides=[2, 2],
                    output_shape=[10, 12]))
    return b.build(), {"X": rand(1, 4, 5, 6)}


def dense_and_unary():
    b = GraphBuilder("dense_unary")
    x = b.input("X", (2, 3, 8))
    y = b.node("MatMul", [x, b.const("W", rand(8, 6))])
    y = b.node("LayerNormalization", [y, b.const("g", rand(6)), b.const("beta", rand(6))], epsilon=1e-3)
    y2 = b.node("LayerNormalization", [y, b.const("g2", rand(3, 1))], axis=1)
    outs = [y2]
    for op, attrs in [("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Erf", {}), ("Exp", {}), ("Neg", {}),
                      ("Abs", {}), ("Floor", {}), ("Ceil", {}), ("Tanh", {}), ("Sigmoid", {}),
                      ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("LeakyRelu", {"alpha": 0.2}),
                      ("Clip", {"min": -0.3, "max": 0.5}), ("Relu6", {}), ("Identity", {}), ("Dropout", {"ratio": 0.3}),
                      ("Softmax", {"axis": 1}), ("LogSoftmax", {"beta": 0.5})]:
        outs.append(b.node(op, [y], **attrs))
    pos = b.node("Add", [b.node("Abs", [y]), b.const("one", np.array([1.0], np.float32))])
    outs += [b.node("Log", [pos]), b.node("Sqrt", [pos]), b.node("Reciprocal", [pos])]
    outs.append(b.node("MatMul", [y, b.node("Transpose", [y], perm=[0, 2, 1])]))  # batched, both computed
    i = b.node("Cast", [b.node("Mul", [y, b.const("ten", np.array([10.0], np.float32))])], to="int32")
    q = b.node("Div", [i, b.const("three", np.array([3], np.int32))])  # integer division truncates
    outs.append(b.node("Cast", [q], to="float32"))
    outs.append(b.node("Cast", [y], to="float16"))
    b.output(*outs)
    return b.build(), {"X": rand(2, 3, 8, lo=-3, hi=3)}


def binary():
    b = GraphBuilder("binary")
    x = b.input("X", (2, 3, 4, 4))
    x2 = b.input("X2", (3, 1, 4))
    outs = [b.node(op, [x, x2]) for op in ("Add", "Sub", "Mul", "Max", "Min")]
    outs.append(b.node("Div", [x, b.node("Add", [b.node("Abs", [x2]), b.const("c", np.array([0.5], np.float32))])]))
    outs.append(b.node("Pow", [b.node("Abs", [x]), b.const("e", np.array([1.5], np.float32))]))
    outs.append(b.node("PRelu", [x, b.const("slope", rand(3, 1, 1))]))
    outs.append(b.node("Sub", [b.const("k", rand(4)), x], activation="relu"))
    outs.append(b.node("Mul", [x, b.const("w", rand(3, 1, 1))], activation="relu6"))
    b.output(*outs)
    return b.build(), {"X": rand(2, 3, 4, 4), "X2": rand(3, 1, 4)}


def shapes():
    b = GraphBuilder("shapes")
    x = b.input("X", (2, 6, 5, 4))
    idx = b.input("I", (3,), dtype="int64")
    a, c, d = b.node("Split", [x], axis=1, split=[1, 2, 3], outputs=3)
    outs = [b.node("Concat", [d, a, c], axis=-3), b.node("Split", [x], axis=2, outputs=2)[1]]
    outs.append(b.node("Slice", [x], starts=[5, 0, -1], ends=[-100, 5, 0], axes=[1, 2, 3], steps=[-2, 2, -1]))
    outs.append(b.node("Slice", [x], starts=[1], ends=[1000], axes=[-1]))
    outs.append(b.node("Gather", [x, b.const("gi", np.array([[0, -1], [2, 3]], np.int64))], axis=1))
    outs.append(b.node("Gather", [x, idx], axis=3))
    outs.append(b.node("Gather", [b.const("emb", rand(10, 3)), b.const("tok", np.array([1, 9, 1], np.int64))]))
    for mode in ("constant", "reflect", "edge"):
        outs.append(b.node("Pad", [x], pads=[0, 1, 2, -1, 1, 0, -2, 3], mode=mode, value=0.5))
    outs.append(b.node("Transpose", [x]))
    s = b.node("Unsqueeze", [x], axes=[0, -1])
    outs.append(b.node("Squeeze", [s], axes=[0]))
    outs.append(b.node("Squeeze", [b.node("Slice", [x], starts=[0], ends=[1], axes=[1])]))
    for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
        outs.append(b.node(op, [x], axes=[1, -1], keepdims=0))
        outs.append(b.node(op, [x], axes=[2]))
    outs.append(b.node("ReduceSum", [x], keepdims=0))
    outs.append(b.node("ReduceMean", [x], noop_with_empty_axes=1))
    b.output(*outs)
    return b.build(), {"X": rand(2, 6, 5, 4), "I": np.array([3, -4, 1], np.int64)}


def resize():
    b = GraphBuilder("resize")
    x = b.input("X", (1, 2, 5, 6))
    outs = []
    for mode in ("nearest", "linear"):
        for ctm in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"):
            nms = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil") if mode == "nearest" else ("floor",)
            for nm in nms:
                for size in ({"scales": [2.0, 3.0]}, {"scales": [1.5, 0.5]}, {"sizes": [3, 1]}, {"sizes": [7, 13]}):
                    outs.append(b.node("Resize", [x], mode=mode, coordinate_transformation_mode=ctm,
                                       nearest_mode=nm, **size))
    b.output(*outs)
    return b.build(), {"X": rand(1, 2, 5, 6)}


def quantized():
    """An int8 QDQ-style graph: int8 input and per-channel int8 weights, int32 bias, quantized activations."""
    b = GraphBuilder("quantized")
    qin = Quant(np.float32(0.05), 3)
    x = b.input("X", (1, 3, 6, 6), dtype="int8", quant=qin)
    wq = Quant(rand(4, lo=0.01, hi=0.02), np.zeros(4, np.int64), axis=0)
    w = b.const("W", rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), quant=wq)
    bq = Quant(wq.scale * 0.05, np.zeros(4, np.int64), axis=0)
    bias = b.const("B", rng.integers(-500, 500, 4).astype(np.int32), quant=bq)
    y = b.node("Conv", [x, w, bias], pads=[1, 1, 1, 1], activation="relu")
    b.g.tensors[y] = Tensor(y, (1, 4, 6, 6), "int8", Quant(np.float32(0.04), -128))
    d = b.node("DequantizeLinear", [y])
    f = b.node("Mul", [d, b.const("k", rand(1, 4, 1, 1))])
    q = b.node("QuantizeLinear", [f], dtype="int8")
    b.g.tensors[q] = Tensor(q, (1, 4, 6, 6), "int8", Quant(np.float32(0.01), 5))
    b.output(b.node("DequantizeLinear", [q]))
    return b.build(), {"X": rng.integers(-128, 128, (1, 3, 6, 6)).astype(np.int8)}


def lrn():
    """LRN's float reference against torch.nn.functional.local_response_norm, 4-D (AlexNet's attributes) and 3-D."""
    b = GraphBuilder("lrn")
    x = b.input("X", (2, 8, 5, 5))
    b.output(b.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=2.0))
    b.output(b.node("LRN", [x], size=3, alpha=0.5, beta=0.6, bias=1.5))
    x1 = b.input("X1", (2, 5, 7))
    b.output(b.node("LRN", [x1], size=7, alpha=0.9, beta=1.0, bias=0.5))
    return b.build(), {"X": rand(2, 8, 5, 5) * 20, "X1": rand(2, 5, 7) * 3}


def recurrent():
    """LSTM (peepholes, initial state, sequence_lens), bidirectional GRU, reverse RNN with a Relu."""
    b = GraphBuilder("recurrent")
    x = b.input("X", (5, 2, 3))
    own = np.random.default_rng(7)  # its own generator: the module's `rng` feeds later tests' data
    w = lambda *s: own.uniform(-0.7, 0.7, s).astype(np.float32)  # noqa: E731
    lstm = b.node("LSTM", [x, b.const("W", w(1, 16, 3)), b.const("R", w(1, 16, 4)), b.const("B", w(1, 32)),
                           b.const("L", np.array([5, 3], np.int32)), b.const("H0", w(1, 2, 4)),
                           b.const("C0", w(1, 2, 4)), b.const("P", w(1, 12))], outputs=3, cell_clip=0.8)
    b.output(*lstm)
    b.output(b.node("GRU", [x, b.const("Wg", w(2, 9, 3)), b.const("Rg", w(2, 9, 3))], direction="bidirectional",
                    linear_before_reset=1))
    b.output(b.node("RNN", [x, b.const("Wr", w(1, 4, 3)), b.const("Rr", w(1, 4, 4)), b.const("Br", w(1, 8))],
                    direction="reverse", activations=["Relu"]))
    return b.build(), {"X": w(5, 2, 3)}


def svdf():
    """SVDF (rank 2, memory 4, RELU) from its initial state; test_svdf_streams_and_keeps_the_initial_state streams."""
    b = GraphBuilder("svdf")
    x = b.input("X", (2, 5))
    st = b.const("state", np.zeros((2, 6 * 4), np.float32))
    b.output(b.node("SVDF", [x, b.const("wf", rand(6, 5)), b.const("wt", rand(6, 4)), b.const("bias", rand(3)), st],
                    rank=2, activation="relu"))
    g = b.build()
    g.tensors["state"].meta["variable"] = True
    return g, {"X": rand(2, 5)}


CASES = [cnn_nchw, cnn_nhwc, conv1d, conv_transpose, dense_and_unary, binary, shapes, resize, quantized, lrn,
         recurrent, svdf]


def test_svdf_streams_and_keeps_the_initial_state():
    g, _ = svdf()
    m = to_torch(g).eval()
    state: dict = {}
    for k in range(6):
        x = rand(2, 5)
        want = run_graph(g, {"X": x}, state=state)
        with torch.no_grad():
            got = m(torch.from_numpy(x))
        assert_close(got.numpy(), want[g.outputs[0]], f"step {k}")
    assert_close(m.tensor("state").numpy(), state["state"], "state")
    back = from_torch_weights(g, m)
    assert not back.tensors["state"].data.any()   # the initial value, not the streamed state


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_matches_reference(case):
    g, feeds = case()
    check(g, feeds)


def test_every_op_is_exported_and_covered():
    assert set(exported_ops()) == set(supported_ops()), set(supported_ops()) ^ set(exported_ops())
    covered = {n.op for case in CASES for n in case()[0].nodes}
    assert covered == set(supported_ops()), f"ops without a test graph: {set(supported_ops()) - covered}"


def test_quantized_simulation_and_weights():
    g, feeds = quantized()
    check(g, feeds, simulate_quant=True)
    m = to_torch(g)
    # Integer constants became real-valued parameters; writing back restores the exact integers.
    assert m.tensor("W").dtype == torch.float32 and isinstance(m.tensor("W"), torch.nn.Parameter)
    back = from_torch_weights(g, m)
    for name in ("W", "B"):
        assert back.tensors[name].dtype == g.tensors[name].dtype
        np.testing.assert_array_equal(back.tensors[name].data, g.tensors[name].data)


def test_write_back_untrained_is_lossless():
    for case in CASES:
        g, _ = case()
        assert content_hash(from_torch_weights(g, to_torch(g))) == content_hash(g), case.__name__


def test_parameters_and_buffers():
    g, _ = cnn_nchw()
    m = to_torch(g)
    params = {n for n, k in m.tensor_keys.items() if k.startswith("params.")}
    assert params == {"W", "B", "s", "b", "Wfc", "Bfc"}
    assert {n for n, k in m.tensor_keys.items() if k.startswith("consts.")} == {"m", "v"}


def test_train_gradients_sgd_and_write_back():
    g, feeds = cnn_nchw()
    x = torch.from_numpy(rand(8, 4, 9, 9))
    target = torch.from_numpy(rng.integers(0, 5, 8))
    g = g.copy()
    g.tensors["X"].shape = (8, 4, 9, 9)
    g = infer_shapes(g)
    m = to_torch(g)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    mean0 = m.tensor("m").clone()
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(m(x)[-1] + 1e-9), target)  # last output: softmax
        loss.backward()
        assert m.tensor("W").grad is not None and m.tensor("W").grad.abs().sum() > 0
        assert m.tensor("Wfc").grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses
    # Batch-norm training updated the running mean with ONNX momentum 0.9 (torch momentum 0.1).
    assert not torch.equal(m.tensor("m"), mean0)
    m.eval()
    trained = from_torch_weights(g, m)
    assert not np.array_equal(trained.tensors["W"].data, g.tensors["W"].data)
    np.testing.assert_array_equal(trained.tensors["m"].data, m.tensor("m").detach().numpy())
    with torch.no_grad():
        want = m(x)[-1].numpy()
    assert_close(run_graph(trained, {"X": x.numpy()})[g.outputs[-1]], want, "written back")


def test_batchnorm_training_statistics():
    b = GraphBuilder("bn")
    x = b.input("X", (4, 3, 5, 5))
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    stats = [b.const("s", ones), b.const("b", zeros), b.const("m", zeros), b.const("v", ones)]
    b.output(b.node("BatchNormalization", [x, *stats], momentum=0.9))
    m = to_torch(b.build()).train()
    xv = torch.from_numpy(rand(4, 3, 5, 5) + 2.0)
    y = m(xv)
    np.testing.assert_allclose(y.mean(dim=(0, 2, 3)).detach().numpy(), 0.0, atol=1e-5)  # batch statistics used
    np.testing.assert_allclose(m.tensor("m").numpy(), 0.1 * xv.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5)


def test_dropout_drops_only_in_training():
    b = GraphBuilder("drop")
    b.output(b.node("Dropout", [b.input("X", (1000,))], ratio=0.5))
    m = to_torch(b.build())
    x = torch.ones(1000)
    assert torch.equal(m.eval()(x), x)
    y = m.train()(x)
    assert 300 < int((y == 0).sum()) < 700 and torch.allclose(y[y != 0], torch.tensor(2.0))


def test_fake_quant_gradient_is_straight_through():
    b = GraphBuilder("fq")
    x = b.input("X", (5,))
    q = b.node("QuantizeLinear", [x])
    b.g.tensors[q] = Tensor(q, (5,), "int8", Quant(np.float32(0.1), 0))
    b.output(b.node("DequantizeLinear", [q]))
    m = to_torch(b.build())
    xv = torch.tensor([0.04, 0.06, -0.33, 20.0, -20.0], requires_grad=True)
    y = m(xv)
    np.testing.assert_allclose(y.detach().numpy(), [0.0, 0.1, -0.3, 12.7, -12.8], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(xv.grad.numpy(), [1, 1, 1, 0, 0])  # clipped values get no gradient


def _zoo_names():
    try:
        from engine.zoo import ZOO
    except ImportError:  # the zoo is optional for this test file
        return []
    return sorted(ZOO)


# Small settings so every zoo model runs in well under a second; unknown keys are ignored per model.
ZOO_SMALL = {"resolution": 32, "width": 0.25, "frames": 12, "coeffs": 8, "features": 8, "length": 32,
             "inputs": 64, "hidden": 16, "dim": 16, "classes": 4, "filters": 8}


@pytest.mark.parametrize("name", _zoo_names())
def test_zoo_model_matches(name):
    from engine.zoo import ZOO, build_zoo_model
    entry = ZOO[name]
    small = {k: v for k, v in ZOO_SMALL.items() if k in entry.params
             and (entry.params[k].min is None or v >= entry.params[k].min)}
    g = build_zoo_model(name, **small)
    feeds = {n: rand(*g.tensors[n].shape) for n in g.inputs}
    m = check(g, feeds)
    # Gradients reach the learned weights (eval mode: batch 1 has no batch statistics to train BN on).
    out = m(*[torch.from_numpy(feeds[n]) for n in g.inputs])
    (out if isinstance(out, torch.Tensor) else out[0]).square().mean().backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and any(float(gr.abs().sum()) > 0 for gr in grads)


def test_training_matches_pytorch_after_import():
    """module -> IR -> to_torch trains like the original: same train-mode outputs, grads, BN running stats."""
    from torch import nn

    from engine.importers.torch_import import from_module

    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 2))
    x = torch.randn(5, 3, 6, 6)
    g = from_module(ref, (x,), via="aten")
    m = to_torch(g).train()
    ref.train()
    y_ref, y = ref(x), m(x)
    assert_close(y.detach().numpy(), y_ref.detach().numpy(), "train-mode output")
    y_ref.square().sum().backward()
    y.square().sum().backward()
    assert_close(m.tensor("0.weight").grad.numpy(), ref[0].weight.grad.numpy(), "conv weight grad")
    assert_close(m.tensor("1.running_mean").numpy(), ref[1].running_mean.numpy(), "running mean")
    assert_close(m.tensor("1.running_var").numpy(), ref[1].running_var.numpy(), "running var")


def test_binary_ops_with_learned_constant_operands_are_the_op_librarys_binary_ops():
    """torch_export counts a constant float operand of a binary op as a parameter (as the op library's
    _Binary.count_params does) by the names of its binary planners: they must be exactly the _Binary ops."""
    from engine.exporters.torch_ops_tensor import BINARY
    from engine.ops.base import OPS
    from engine.ops.elementwise import _Binary

    assert set(BINARY) == {name for name, op in OPS.items() if isinstance(op, _Binary)}


def test_fake_quant_clamps_to_each_integer_range_int4_included():
    from engine.exporters.torch_export import fake_quant
    from engine.ir import int_range

    assert int_range("int4") == (-8, 7) and int_range("int8") == (-128, 127) and int_range("uint8") == (0, 255)
    x = torch.tensor([-100.0, -0.26, 0.24, 100.0])
    q = Quant(np.float32(0.5), 0)
    np.testing.assert_allclose(fake_quant(x, q, "int4").numpy(), [-4.0, -0.5, 0.0, 3.5])
    np.testing.assert_allclose(fake_quant(x, q, "int8").numpy(), [-64.0, -0.5, 0.0, 63.5])
