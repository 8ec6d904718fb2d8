"""ONNX LSTM / GRU / RNN: imported and run by our float reference, against onnxruntime, one node at a time."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ModelFormatError
from engine.execute import run_graph
from engine.importers.onnx_import import load_onnx
from engine.profile import profile_graph  # noqa: F401  (the profiler must import with the op registered)
from engine.validate import node_context

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _model(op, seq, batch, inp, hidden, *, direction="forward", bias=True, init=False, lens=None,
           peep=False, layout=0, seed=0, extra=None, outs=("Y", "Y_h", "Y_c"), x_input=True):
    """One recurrent node; weights as initializers, X (and optionally the initial states) as graph inputs."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inits = [numpy_helper.from_array((rng.standard_normal((dirs, g * hidden, inp)) * 0.4).astype(np.float32), "W"),
             numpy_helper.from_array((rng.standard_normal((dirs, g * hidden, hidden)) * 0.4).astype(np.float32), "R")]
    names = ["X", "W", "R", "", "", "", "", ""]
    feeds = {"X": rng.standard_normal((batch, seq, inp) if layout else (seq, batch, inp)).astype(np.float32)}
    vin = [helper.make_tensor_value_info("X", TensorProto.FLOAT, feeds["X"].shape)]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal((dirs, 2 * g * hidden)).astype(np.float32), "B"))
        names[3] = "B"
    if lens is not None:
        inits.append(numpy_helper.from_array(np.asarray(lens, np.int32), "L"))
        names[4] = "L"
    if init:
        shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
        for i, s in ((5, "H0"), (6, "C0")) if op == "LSTM" else ((5, "H0"),):
            feeds[s] = rng.standard_normal(shape).astype(np.float32)
            vin.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, shape))
            names[i] = s
    if peep:
        inits.append(numpy_helper.from_array(rng.standard_normal((dirs, 3 * hidden)).astype(np.float32), "P"))
        names[7] = "P"
    while names[-1] == "":
        names.pop()
    outs = list(outs[:3 if op == "LSTM" else 2])
    attrs = {"hidden_size": hidden, "direction": direction, **({"layout": 1} if layout else {}), **(extra or {})}
    node = helper.make_node(op, names, outs, name="rnn0", **attrs)
    graph = helper.make_graph([node], "g", vin, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                                 for o in outs if o], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), feeds


def _check(model, feeds, tmp_path, rtol=1e-4, atol=1e-5):
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(None, feeds)))
    g = load_onnx(str(path))
    ours = run_graph(g, feeds)
    for name, r in ref.items():
        got = ours[name]
        assert got.shape == r.shape, f"{name}: shape {got.shape} != onnxruntime {r.shape}"
        err = np.abs(got - r).max()
        assert np.allclose(got, r, rtol=rtol, atol=atol), f"{name}: max |diff| {err:.3g}"
    return g


CASES = [
    # (id, op, seq, batch, input, hidden, kwargs)
    ("lstm-h20", "LSTM", 5, 1, 7, 20, {}),
    ("lstm-h3-nobias", "LSTM", 4, 2, 3, 3, {"bias": False}),
    ("lstm-init-state", "LSTM", 6, 3, 5, 8, {"init": True}),
    ("lstm-peephole", "LSTM", 4, 2, 5, 6, {"peep": True, "init": True}),
    ("lstm-seqlens", "LSTM", 6, 3, 4, 5, {"lens": [6, 3, 1]}),
    ("lstm-reverse", "LSTM", 5, 2, 4, 6, {"direction": "reverse", "lens": [5, 2]}),
    ("lstm-bidirectional", "LSTM", 5, 2, 4, 6, {"direction": "bidirectional", "init": True}),
    ("lstm-clip", "LSTM", 5, 2, 4, 6, {"extra": {"clip": 0.5}}),
    ("lstm-input-forget", "LSTM", 5, 2, 4, 6, {"extra": {"input_forget": 1}}),
    ("lstm-activations", "LSTM", 4, 2, 3, 5, {"extra": {"activations": ["HardSigmoid", "Relu", "Tanh"],
                                                        "activation_alpha": [0.3], "activation_beta": [0.4]}}),
    ("lstm-only-y", "LSTM", 4, 1, 3, 5, {"outs": ("Y",)}),
    ("lstm-only-yh", "LSTM", 4, 1, 3, 5, {"outs": ("", "Y_h")}),
    ("gru-h16", "GRU", 5, 1, 7, 16, {}),
    ("gru-nobias-init", "GRU", 4, 2, 3, 4, {"bias": False, "init": True}),
    ("gru-linear-before-reset", "GRU", 5, 2, 4, 6, {"extra": {"linear_before_reset": 1}, "lens": [5, 2]}),
    ("gru-bidirectional", "GRU", 4, 2, 3, 5, {"direction": "bidirectional"}),
    ("rnn-h10", "RNN", 6, 1, 4, 10, {}),
    ("rnn-relu-reverse", "RNN", 5, 2, 3, 4, {"direction": "reverse", "extra": {"activations": ["Relu"]}}),
    ("rnn-bidirectional-init", "RNN", 4, 2, 3, 5, {"direction": "bidirectional", "init": True, "lens": [4, 1]}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recurrent_matches_onnxruntime(case, tmp_path):
    _, op, seq, batch, inp, hidden, kw = case
    model, feeds = _model(op, seq, batch, inp, hidden, **kw)
    _check(model, feeds, tmp_path)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_batch_major_layout_equals_time_major(op, tmp_path):
    """onnxruntime refuses layout=1, so its oracle is the same node at layout=0 on transposed values."""
    model1, feeds1 = _model(op, 5, 3, 4, 6, layout=1, init=True, direction="bidirectional")
    model0, _ = _model(op, 5, 3, 4, 6, layout=0, init=True, direction="bidirectional")
    feeds0 = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in feeds1.items()}
    sess = ort.InferenceSession(model0.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds0)))
    path = tmp_path / "m1.onnx"
    path.write_bytes(model1.SerializeToString())
    ours = run_graph(load_onnx(str(path)), feeds1)
    np.testing.assert_allclose(ours["Y"], np.transpose(ref["Y"], (2, 0, 1, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["Y_h"], np.swapaxes(ref["Y_h"], 0, 1), rtol=1e-4, atol=1e-5)
    if op == "LSTM":
        np.testing.assert_allclose(ours["Y_c"], np.swapaxes(ref["Y_c"], 0, 1), rtol=1e-4, atol=1e-5)


def test_macs_follow_the_standard_count(tmp_path):
    for op, g in GATES.items():
        model, feeds = _model(op, 7, 1, 5, 6, direction="bidirectional")
        path = tmp_path / f"{op}.onnx"
        path.write_bytes(model.SerializeToString())
        graph = load_onnx(str(path))
        node = next(n for n in graph.nodes if n.op == op)
        ctx = node_context(graph, node)
        # seq * batch * dirs * G * H * (input + H)
        assert ctx.op.cost(ctx).macs == 7 * 1 * 2 * g * 6 * (5 + 6)


@pytest.mark.parametrize("extra,needle", [
    ({"activations": ["Sigmoid", "Gelu", "Tanh"]}, "'activations'"),
    ({"activations": ["Sigmoid", "Tanh"]}, "'activations' needs 3"),
    ({"direction": "sideways"}, "direction"),
    ({"layout": 2}, "layout"),
])
def test_unsupported_attributes_name_node_and_attribute(extra, needle, tmp_path):
    model, _ = _model("LSTM", 3, 1, 2, 3)
    node = model.graph.node[0]
    for k, v in extra.items():
        node.attribute.append(helper.make_attribute(k, v))
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFormatError) as e:
        load_onnx(str(path))
    msg = str(e.value)
    assert "rnn0" in msg and needle in msg and "\n" not in msg.strip()


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_onnx_round_trip_through_our_exporter(op, tmp_path):
    """Import -> export -> onnxruntime gives the original model's outputs (bidirectional, initial state)."""
    from engine.exporters.onnx_export import save_onnx

    model, feeds = _model(op, 5, 2, 4, 6, direction="bidirectional", init=True, lens=[5, 3])
    g = _check(model, feeds, tmp_path)
    out = tmp_path / "again.onnx"
    save_onnx(g, str(out))
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    again = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(again, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _onnx_node_cases():
    """The ONNX backend node tests for the recurrent ops, generated by the onnx package's own case code (the
    package here ships no node/ data directory): 6 LSTM, 6 GRU, 6 RNN with their expected outputs."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [c for c in collect_testcases(None) if any(k in c.name for k in ("_lstm", "_gru", "_rnn"))]


NODE_CASES = _onnx_node_cases()


def test_onnx_backend_node_cases_are_all_there():
    assert len(NODE_CASES) == 18, [c.name for c in NODE_CASES]


@pytest.mark.parametrize("case", NODE_CASES, ids=[c.name for c in NODE_CASES])
def test_onnx_backend_node_case(case, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(case.model.SerializeToString())
    g = load_onnx(str(path))
    for ins, outs in case.data_sets:
        got = run_graph(g, {i.name: v for i, v in zip(case.model.graph.input, ins)})
        for o, want in zip(case.model.graph.output, outs):
            np.testing.assert_allclose(got[o.name], want, rtol=1e-4, atol=1e-6, err_msg=f"{case.name}/{o.name}")
