"""ONNX int8 models (onnxruntime.quantization's QDQ and QOperator files) import as int8 graphs, run on the
int8 kernels within 1 LSB of onnxruntime's integer execution, and export to C bit-exact to our reference.

Why not bit-exact to onnxruntime everywhere: onnxruntime requantizes an accumulator with a float32
multiply (scale_x * scale_w / scale_y, then round half to even), TFLite and our kernels with a fixed-point
multiplier (round half away from zero, in two roundings). The two agree except when the exact value lies
within about 2^-24 relative of a rounding tie, so a single output value differs by at most 1 LSB; tests below
check <= 1 LSB per model output and bit-exactness for ops whose numerics agree (QuantizeLinear, MaxPool,
Flatten: no requantization)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.execute import run_graph
from engine.importers.onnx_import import load_onnx
from engine.int8.execute import run_int8
from engine.ir import FLOAT_DTYPES
from tests.engine.onnx_qmodels import cnn_model, mlp_model, quantize, quantize_dyn

MODELS = {"cnn": cnn_model, "mlp": mlp_model}
_CACHE: dict = {}


def qmodel(tmp_path_factory, name, fmt, per_channel, act):
    key = (name, fmt, per_channel, act)
    if key not in _CACHE:
        _CACHE[key] = quantize(MODELS[name](), tmp_path_factory.mktemp("q"), fmt=fmt, per_channel=per_channel,
                               activation=act)
    return _CACHE[key]


def lsb_diff(g, data, n=20, seed=3):
    """Per-input max |ours - onnxruntime| in steps of the output grid, over n random float inputs."""
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    core_out = next(nd.inputs[0] for nd in g.nodes if nd.outputs[0] == g.outputs[0])
    step = float(g.tensors[core_out].quant.scale[0])
    x_shape = g.tensors[g.inputs[0]].shape
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        x = rng.standard_normal(x_shape).astype(np.float32)
        want = sess.run(None, {g.inputs[0]: x})[0]
        got = run_int8(g, {g.inputs[0]: x})[g.outputs[0]]
        diffs.append(int(np.abs(np.rint((got - want) / step)).max()))
    return np.array(diffs)


def integer_core(g):
    """Every node but the float edges (QuantizeLinear first, DequantizeLinear last) reads and writes integers."""
    for nd in g.nodes:
        if nd.op in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for x in [*nd.inputs, *nd.outputs]:
            if x:
                t = g.tensors[x]
                assert t.dtype not in FLOAT_DTYPES, f"{nd.name} ({nd.op}): '{x}' is {t.dtype}"
                assert t.dtype != "uint8"
                assert t.quant is not None or t.dtype == "int32" or nd.op == "Reshape", f"{x} has no grid"
    return [nd.op for nd in g.nodes]


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_onnxruntime_quantized_model_imports_as_int8(tmp_path_factory, name, fmt, per_channel, act):
    data = qmodel(tmp_path_factory, name, fmt, per_channel, act)
    g = load_onnx(f"{name}.onnx", data=data)
    ops = integer_core(g)
    assert ops[0] == "QuantizeLinear" and ops[-1] == "DequantizeLinear"
    assert ("Conv" in ops) == (name == "cnn") and "Gemm" in ops
    w = next(g.tensors[nd.inputs[1]] for nd in g.nodes if nd.op in ("Conv", "Gemm"))
    assert w.dtype == "int8" and (w.quant.axis is not None) == per_channel
    d = lsb_diff(g, data)
    assert d.max() <= 1, f"{name} {fmt}: up to {d.max()} LSB from onnxruntime"
    assert (d == 0).mean() >= 0.6, f"only {(d == 0).mean():.0%} of inputs bit-exact to onnxruntime"


def test_uint8_and_int8_activations_give_the_same_int8_graph(tmp_path_factory):
    """uint8 activations move to int8 exactly (q - 128, zero point - 128): the outputs are identical."""
    g8 = load_onnx("a.onnx", data=qmodel(tmp_path_factory, "cnn", "qop", True, "int8"))
    gu = load_onnx("b.onnx", data=qmodel(tmp_path_factory, "cnn", "qop", True, "uint8"))
    assert "onnx_uint8" in gu.meta and "onnx_uint8" not in g8.meta
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)
    y8, yu = run_int8(g8, {"x": x})["y"], run_int8(gu, {"x": x})["y"]
    assert y8.shape == yu.shape == (1, 5)


def _single(nodes, inits, x_shape, y_shape, opset=13, domain_ms=False):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if domain_ms else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m.SerializeToString()


def test_bit_exact_where_the_numerics_agree():
    """QuantizeLinear -> MaxPool -> DequantizeLinear: no requantization, so bit-exact to onnxruntime, except
    at an exact rounding tie of the input quantization: onnxruntime rounds half to even, TFLite (and so our
    kernels and C) half away from zero: 1 LSB there."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"])]
    data = _single(nodes, {"s": np.float32(0.037), "z": np.uint8(131)}, [1, 2, 6, 6], [1, 2, 3, 3])
    g = load_onnx("m.onnx", data=data)
    assert [n.op for n in g.nodes] == ["QuantizeLinear", "MaxPool", "DequantizeLinear"]
    assert g.tensors["p"].dtype == "int8" and int(g.tensors["p"].quant.zero_point[0]) == 3
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = (rng.standard_normal((1, 2, 6, 6)) * 3).astype(np.float32)
        np.testing.assert_array_equal(run_int8(g, {"x": x})["y"], sess.run(None, {"x": x})[0])
    x = np.full((1, 2, 6, 6), -5.0, np.float32)
    x[0, 0, 0, 0] = np.float32(0.037) * np.float32(2.5)  # a tie: 2.5 steps
    diff = (run_int8(g, {"x": x})["y"] - sess.run(None, {"x": x})[0]) / np.float32(0.037)
    assert np.abs(np.rint(diff)).max() == 1 and np.count_nonzero(np.rint(diff)) == 1


@pytest.mark.parametrize("op", ["QLinearConv", "QLinearMatMul", "QLinearAdd"])
def test_single_qlinear_op_within_one_lsb(op):
    rng = np.random.default_rng(5)
    ms = op == "QLinearAdd"
    q = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"])]
    dq = [helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    inits = {"xs": np.float32(0.02), "xz": np.int8(-5), "ys": np.float32(0.05), "yz": np.int8(3)}
    if op == "QLinearConv":
        inits |= {"w": rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
                  "ws": np.array([0.004, 0.006, 0.003, 0.005], np.float32), "wz": np.zeros(4, np.int8),
                  "b": rng.integers(-3000, 3000, 4).astype(np.int32)}
        node = helper.make_node(op, ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["yq"], pads=[1, 1, 1, 1])
        xs, ys = [1, 3, 6, 6], [1, 4, 6, 6]
    elif op == "QLinearMatMul":
        inits |= {"w": rng.integers(-127, 128, (10, 6)).astype(np.int8), "ws": np.float32(0.01),
                  "wz": np.int8(0)}
        node = helper.make_node(op, ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"])
        xs, ys = [2, 10], [2, 6]
    else:
        inits |= {"c": rng.integers(-128, 128, (1, 8)).astype(np.int8), "cs": np.float32(0.03),
                  "cz": np.int8(1)}
        node = helper.make_node(op, ["xq", "xs", "xz", "c", "cs", "cz", "ys", "yz"], ["yq"], domain="com.microsoft")
        xs, ys = [2, 8], [2, 8]
    data = _single(q + [node] + dq, inits, xs, ys, domain_ms=ms)
    g = load_onnx("m.onnx", data=data)
    integer_core(g)
    d = lsb_diff(g, data, n=20)
    assert d.max() <= 1


def test_partly_quantized_qdq_model_stays_float():
    """An op with a float output (no QuantizeLinear after it) keeps the QDQ graph (float simulation)."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Relu", ["xd"], ["y"])]
    g = load_onnx("m.onnx", data=_single(nodes, {"s": np.float32(0.1), "z": np.int8(0)}, [1, 4], [1, 4]))
    assert [n.op for n in g.nodes] == ["QuantizeLinear", "DequantizeLinear", "Relu"]


def test_bad_qoperator_files_give_clear_errors(tmp_path):
    rng = np.random.default_rng(0)
    inits = {"xs": np.float32(0.02), "xz": np.int8(0), "ys": np.float32(0.05), "yz": np.int8(0),
             "w": rng.integers(-127, 128, (10, 6)).astype(np.int8), "ws": np.float32(0.01), "wz": np.int8(0),
             "ys2": np.array([0.05, 0.06], np.float32), "yz2": np.zeros(2, np.int8)}
    q = helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"])
    dq = helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])
    # the output must be quantized per tensor
    mm = helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys2", "yz2"], ["yq"], name="mm")
    with pytest.raises(ModelFormatError, match=r"node 'mm' \(QLinearMatMul\).*output.*per tensor"):
        load_onnx("m.onnx", data=_single([q, mm, dq], inits, [2, 10], [2, 6]))
    # a com.microsoft op without a handler is an unsupported op, named with its domain
    other = helper.make_node("QLinearSigmoid", ["xq", "xs", "xz", "ys", "yz"], ["yq"], domain="com.microsoft")
    with pytest.raises(UnsupportedOpError, match="com.microsoft.QLinearSigmoid"):
        load_onnx("m.onnx", data=_single([q, other, dq], inits, [2, 10], [2, 10], domain_ms=True))
    # a lone ConvInteger / MatMulInteger (no DynamicQuantizeLinear feeding it) is an unsupported op
    mi = helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["yi"], name="mi")
    cast = helper.make_node("Cast", ["yi"], ["y"], to=TensorProto.FLOAT)
    with pytest.raises(UnsupportedOpError, match="MatMulInteger"):
        load_onnx("m.onnx", data=_single([q, mi, cast], inits, [2, 10], [2, 6]))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_dynamic_quantized_model_imports_with_int8_weights(name, tmp_path):
    """quantize_dynamic (DynamicQuantizeLinear -> MatMulInteger / ConvInteger -> Cast -> Mul): imports as the
    float model with the file's int8 weights (as TFLite dynamic-range files do). Oracle: onnxruntime on the
    float model whose weights are the file's dequantized int8 weights. onnxruntime's own dynamic execution also
    rounds each activation to 8 bits at run time; that differs by the activation rounding (measured: under
    1 % of the output range for the MLP, under 0.2 % for the CNN; tested under 2 %)."""
    float_model = MODELS[name]()
    data = quantize_dyn(float_model, tmp_path)
    g = load_onnx(f"{name}_dyn.onnx", data=data)
    ops = [n.op for n in g.nodes]
    assert not {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} & set(ops)
    weights = [g.tensors[n.inputs[1]] for n in g.nodes if n.op in ("Conv", "MatMul")]
    assert weights and all(w.dtype == "int8" and w.quant is not None and w.data is not None for w in weights)
    dq = onnx.load_from_string(data)
    init = {t.name: numpy_helper.to_array(t) for t in dq.graph.initializer}
    oracle = onnx.ModelProto()
    oracle.CopyFrom(float_model)
    for t in oracle.graph.initializer:
        if f"{t.name}_quantized" in init and t.name.startswith("w"):
            wq, ws, wz = (init[f"{t.name}{s}"] for s in ("_quantized", "_scale", "_zero_point"))
            w = (ws * (wq.astype(np.float32) - wz)).astype(np.float32)
            if list(w.shape) != list(t.dims):  # the quantizer turned Gemm(transB=1) into MatMul: W transposed
                w = w.T
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), t.name))
    x = np.random.default_rng(4).standard_normal(g.tensors["x"].shape).astype(np.float32)
    got = run_graph(g, {"x": x})["y"]
    want = ort.InferenceSession(oracle.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    dyn = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(got - dyn).max() <= 0.02 * np.abs(dyn).max()


def test_dynamic_quantized_model_exports(tmp_path):
    """`tinystudio export` of a quantize_dynamic file: PTQ from the float values of its int8 weights, then C
    bit-exact to the int8 reference (as for TFLite dynamic-range files)."""
    from engine.export.pipeline import export_model

    g = load_onnx("mlp_dyn.onnx", data=quantize_dyn(mlp_model(), tmp_path))
    res = export_model(g, "stm32f746ng", tmp_path / "dyn.zip", n_inputs=5)
    assert res.report["verify"]["bit_exact"] and res.report["verify"]["matched"] == 6
    assert any("dynamic-range" in w for w in res.report["warnings"])


def test_onnx_int8_model_exports_bit_exact(tmp_path_factory, tmp_path):
    """`tinystudio export` end to end on a channels-first QOperator CNN with uint8 activations: the C equals
    the int8 reference on every input, and the float API too."""
    from app.cli import main

    data = qmodel(tmp_path_factory, "cnn", "qdq", True, "uint8")
    src = tmp_path / "cnn_qdq.onnx"
    src.write_bytes(data)
    out = tmp_path / "b.zip"
    rc = main(["export", str(src), "--mcu", "stm32f746ng", "--out", str(out), "--inputs", "20", "--json"])
    assert rc == 0 and out.is_file()


def test_studio_path_profiles_and_saves_the_int8_graph(tmp_path_factory):
    """The studio's upload path (load_model_bytes), the int8 profile and a saved session's round trip."""
    from engine import serialize
    from engine.importers import load_model_bytes
    from engine.profile import profile_graph

    g = load_model_bytes(qmodel(tmp_path_factory, "cnn", "qop", False, "uint8"), "cnn.onnx")
    prof = profile_graph(g, [("stm32f746ng", "tinystudio-c")], precision="int8")
    assert prof.precision == "int8" and prof.targets[0].fits
    conv = next(row.to_json() for row in prof.layers if row.to_json()["op"] == "Conv")
    assert conv["weight_bytes"] == 8 * 3 * 3 * 3 + 8 * 4  # int8 weights (1 byte), int32 biases (4)
    back = serialize.loads(*serialize.dumps(g))
    x = np.random.default_rng(2).standard_normal((1, 3, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(run_int8(g, {"x": x})["y"], run_int8(back, {"x": x})["y"])


def test_zero_scale_is_refused_at_import():
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"], name="mm"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    inits = {"xs": np.float32(0.02), "xz": np.int8(0), "ys": np.float32(0.0), "yz": np.int8(0),
             "w": np.ones((4, 2), np.int8), "ws": np.float32(0.01), "wz": np.int8(0)}
    with pytest.raises(ModelFormatError, match=r"node 'mm' \(QLinearMatMul\): output scale must be positive"):
        load_onnx("m.onnx", data=_single(nodes, inits, [1, 4], [1, 2]))


def test_onnx_int8_model_runs_bit_exact_in_qemu_cortex_m4(tmp_path_factory, tmp_path):
    """The same export verified in QEMU (Cortex-M4, mps2-an386): the C on the MCU equals the int8 reference."""
    from engine.export.pipeline import export_model
    from engine.export.verify_qemu import qemu_unavailable
    from hwmodels.mcu import get_mcu

    if qemu_unavailable(get_mcu("stm32f411re")):
        pytest.skip(qemu_unavailable(get_mcu("stm32f411re")))
    g = load_onnx("cnn.onnx", data=qmodel(tmp_path_factory, "cnn", "qop", True, "uint8"))
    res = export_model(g, "stm32f411re", tmp_path / "q.zip", verify="qemu", n_inputs=20)
    v = res.report["verify"]
    assert v["mode"] == "qemu" and v["bit_exact"] and v["matched"] == v["inputs"] == 21
    assert v["float_api"]["bit_exact"]


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
def test_zoo_kws_dscnn_quantized_by_onnxruntime(fmt, tmp_path):
    """The zoo's MLPerf Tiny DS-CNN (BN folded, channels first: depthwise convs, average pool, softmax) as
    onnxruntime quantizes it, per channel. onnxruntime's softmax grid is 1/255 (the int8 kernel writes 1/256,
    then requantizes). Over 10 layers the per-layer <= 1 LSB rounding differences add up: measured at most
    2 LSB of the softmax output (QDQ), 1 (QOperator); export: C bit-exact to our int8 reference."""
    from engine.exporters.onnx_export import to_onnx
    from engine.export.pipeline import export_model
    from engine.passes.ptq import prepare_float
    from engine.zoo import build_zoo_model

    m = to_onnx(prepare_float(build_zoo_model("zoo:kws_dscnn"), layout="NCHW")[0])
    m.graph.name = "kws"
    data = quantize(m, tmp_path, fmt=fmt, per_channel=True)
    g = load_onnx("kws.onnx", data=data)
    ops = integer_core(g)
    assert ops.count("Conv") == 9 and "Softmax" in ops
    d = lsb_diff(g, data, n=10)
    assert d.max() <= 2, d
    if fmt == "qop":
        res = export_model(g, "stm32f746ng", tmp_path / "kws.zip", n_inputs=5)
        assert res.report["verify"]["bit_exact"] and res.report["verify"]["matched"] == 6
