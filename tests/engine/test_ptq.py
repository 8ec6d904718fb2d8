"""Post-training quantization: every zoo model the int8 executor supports quantizes and runs in run_int8;
the int8 graph follows TFLite's conventions (per-channel symmetric weights, int32 biases with input x weight
scale, softmax 1/256 / -128, shared grids for pools and reshapes); int8 stays close to float on held-out
inputs; percentile calibration is exact; the QDQ ONNX export of the int8 graph agrees with run_int8 in
onnxruntime; what int8 cannot run is refused in one line."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from engine.builder import GraphBuilder
from engine.errors import GraphError, TinyStudioError
from engine.execute import run_graph
from engine.exporters.onnx_export import to_onnx
from engine.int8 import run_int8
from engine.ir import Graph, Quant
from engine.passes.calibrate import SYNTHETIC_WARNING, collect_ranges, synthetic_calibration
from engine.passes.ptq import dequantize_outputs, prepare_float, quantize_inputs, quantize_model
from engine.passes.quantize import activation_grid, quantize_int8
from engine.zoo import build_zoo_model, list_zoo
from engine.zoo.layers import same_pads

SMALL = {"mobilenetv1": "?resolution=32&width=0.25", "mobilenetv2": "?resolution=32&width=0.35",
         "resnet18": "?resolution=32&width=0.25"}
NO_INT8 = {"cct"}  # LayerNormalization, MatMul of two activations, Gelu: no int8 kernels
INT8_SPECS = [e["name"] + SMALL.get(e["name"], "") for e in list_zoo() if e["name"] not in NO_INT8]
MLPERF_SPECS = ["kws_dscnn", "ic_resnet8", "vww_mobilenetv1"]
SAME_GRID_OPS = ("MaxPool", "AveragePool", "Reshape", "Flatten")


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(10 * np.log10((ref ** 2).sum() / max(((got - ref) ** 2).sum(), 1e-30)))


def grid(t) -> tuple[float, int]:
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def check_int8_structure(prepared: Graph, qg: Graph) -> None:
    """TFLite's int8 conventions, checked tensor by tensor against the float graph that was quantized."""
    for name, t in qg.tensors.items():
        if t.data is None:
            assert t.dtype == "int8" and t.quant is not None and t.quant.axis is None, name
            s, z = grid(t)
            assert -128 <= z <= 127 and s > 0 and s * (-128 - z) <= 0 <= s * (127 - z), (name, s, z)
    for node in qg.nodes:
        if node.op in ("Conv", "Gemm"):
            w, wf = qg.tensors[node.inputs[1]], prepared.tensors[node.inputs[1]].data
            assert w.dtype == "int8" and w.quant.axis == 0 and w.quant.scale.size == w.shape[0], node.name
            assert not w.quant.zero_point.any() and np.abs(w.data.astype(int)).max() <= 127
            want = np.abs(wf.reshape(wf.shape[0], -1)).max(axis=1) / 127
            np.testing.assert_allclose(w.quant.scale, want, rtol=1e-6, err_msg=node.name)
            assert np.abs(w.quant.dequantize(w.data) - wf).max() <= w.quant.scale.max() / 2 * 1.0001
            if len(node.inputs) > 2:
                b, x = qg.tensors[node.inputs[2]], qg.tensors[node.inputs[0]]
                assert b.dtype == "int32" and not b.quant.zero_point.any(), node.name
                np.testing.assert_allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)
                bf = prepared.tensors[node.inputs[2]].data.reshape(-1)
                assert np.abs(b.quant.dequantize(b.data).reshape(-1) - bf).max() <= b.quant.scale.max()
        if node.op == "Softmax":
            assert grid(qg.tensors[node.outputs[0]]) == (1 / 256, -128)
        if node.op in SAME_GRID_OPS:
            assert grid(qg.tensors[node.inputs[0]]) == grid(qg.tensors[node.outputs[0]]), node.name


# ---- every zoo model ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", INT8_SPECS)
def test_ptq_every_supported_zoo_model(spec):
    g = build_zoo_model(spec)
    qg, report = quantize_model(g, synthetic_samples=8)
    print(f"\n{spec}\n" + "\n".join(report.summary_lines()))
    check_int8_structure(prepare_float(g)[0], qg)
    assert SYNTHETIC_WARNING in report.warnings and report.calibration["source"] == "synthetic"
    assert report.layers and all(layer.snr_db > 15 for layer in report.layers), \
        [(layer.tensor, round(layer.snr_db, 1)) for layer in report.layers if layer.snr_db <= 15]
    for o in report.outputs:
        assert o.samples == 8 and o.snr_db > 20, (o.name, o.snr_db)
        assert (o.kind == "classifier") == (spec.split("?")[0] != "ad_autoencoder")
        if o.kind == "classifier":
            assert o.argmax_agreement >= 0.75
    q = quantize_inputs(qg, synthetic_calibration(g, 1, seed=5)[0])
    y = run_int8(qg, q)
    assert all(v.dtype == np.int8 for v in y.values())
    assert report.to_json()["io"]["inputs"][g.inputs[0]]["dtype"] == "int8"


@pytest.mark.parametrize("spec", MLPERF_SPECS)
def test_int8_error_is_small_on_held_out_inputs(spec):
    g = build_zoo_model(spec)
    qg, _ = quantize_model(g, synthetic_samples=16, per_layer=False)
    held_out = synthetic_calibration(g, 8, seed=1234)  # not the calibration seed
    ref = np.concatenate([run_graph(g, f)[g.outputs[0]] for f in held_out])
    got = np.concatenate([dequantize_outputs(qg, run_int8(qg, quantize_inputs(qg, f)))[g.outputs[0]]
                          for f in held_out])
    snr = snr_db(ref, got)
    print(f"\n{spec}: held-out int8 vs float SNR {snr:.1f} dB, top-1 agreement "
          f"{(ref.argmax(-1) == got.argmax(-1)).mean():.0%}")
    assert snr > 20, f"SNR {snr:.1f} dB; first values float {ref[0][:4]} int8 {got[0][:4]}"


def test_nchw_and_nhwc_int8_graphs_give_the_same_bytes():
    g = build_zoo_model("sensor_cnn1d")
    data = np.stack([f["input"] for f in synthetic_calibration(g, 6, seed=2)])
    nhwc, _ = quantize_model(g, data, per_layer=False)
    nchw, _ = quantize_model(g, data, per_layer=False, layout="NCHW")
    assert "input_layout" not in nchw.meta and nhwc.meta["input_layout"]["input"]["to"] == "NWC"
    x = {"input": data[0] * 0.7}
    a = run_int8(nhwc, quantize_inputs(nhwc, x))
    b = run_int8(nchw, quantize_inputs(nchw, x))
    np.testing.assert_array_equal(a[g.outputs[0]], b[g.outputs[0]])


# ---- conventions ----------------------------------------------------------------------------------

def test_fixed_and_shared_grids_for_tanh_and_pools():
    qg, _ = quantize_model(build_zoo_model("lenet5"), synthetic_samples=4, per_layer=False)
    by = {n.name: n for n in qg.nodes}
    assert grid(qg.tensors[by["c1_tanh"].outputs[0]]) == (1 / 128, 0)
    assert grid(qg.tensors[by["s2"].outputs[0]]) == (1 / 128, 0)  # the pool shares the tanh grid


def test_channels_last_graph_with_fused_tanh_quantizes():
    rng = np.random.default_rng(4)
    b = GraphBuilder("tflite_float")  # what the TFLite importer gives for a float model
    x = b.input("x", (1, 6, 6, 2))
    y = b.node("Conv", [x, b.const("w", rng.standard_normal((4, 3, 3, 2)).astype(np.float32) * 0.3),
                        b.const("b", np.zeros(4, np.float32))], layout="NHWC", auto_pad="SAME_UPPER", activation="tanh")
    b.output(b.node("AveragePool", [y], layout="NHWC", kernel_shape=[2, 2], strides=[2, 2]))
    qg, report = quantize_model(b.build(), synthetic_samples=4)
    assert [n.op for n in qg.nodes] == ["Conv", "Tanh", "AveragePool"]  # int8 has no fused tanh
    assert "input_layout" not in qg.meta and qg.tensors["x"].shape == (1, 6, 6, 2)
    assert report.outputs[0].snr_db > 20 and report.outputs[0].kind == "regression"


def test_activation_grid_follows_tflite_nudging():
    assert activation_grid(0.0, 6.0) == (np.float32(6 / 255), -128)  # relu6: zero at the bottom
    s, z = activation_grid(-1.0, 3.0)
    assert s == np.float32(4 / 255) and z == round(-128 + 1 / s)
    assert activation_grid(2.0, 4.0)[1] == -128  # ranges are widened to contain 0
    assert activation_grid(-4.0, -2.0)[1] == 127
    assert activation_grid(0.0, 0.0) == (1.0, -128)


def test_percentile_ranges_are_exact_and_clip_outliers():
    b = GraphBuilder("p")
    x = b.input("x", (1, 50))
    b.output(b.node("Relu", [x]))
    g = b.build()
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 50)).astype(np.float32)} for _ in range(40)]
    samples[3]["x"][0, 7] = 80.0  # one outlier in 2000 values
    allx = np.concatenate([s["x"].ravel() for s in samples]).astype(np.float64)
    for p in (99.99, 99.9, 99.0, 97.5):
        lo, hi = collect_ranges(g, samples, "percentile", p)["x"]
        assert np.isclose(hi, np.percentile(allx, p), rtol=1e-12), (p, hi, np.percentile(allx, p))
        assert np.isclose(lo, np.percentile(allx, 100 - p), rtol=1e-12)
    assert collect_ranges(g, samples, "minmax")["x"] == (allx.min(), 80.0)
    mm, _ = quantize_model(g, samples, "minmax", per_layer=False)
    pc, report = quantize_model(g, samples, "percentile", 99.0, per_layer=False)
    assert grid(pc.tensors["x"])[0] < grid(mm.tensors["x"])[0] / 10
    assert report.method == "percentile" and report.percentile == 99.0


def test_calibration_data_array_or_feeds_and_labels():
    g = build_zoo_model("micro_speech?frames=20&features=16")
    data = np.stack([f["input"] for f in synthetic_calibration(g, 6, seed=9)])  # (6, 1, 1, 20, 16)
    qg, report = quantize_model(g, data, per_layer=False)
    assert SYNTHETIC_WARNING not in report.warnings and report.calibration == {
        "source": "data", "samples": 6, "description": "6 samples of user data"}
    _, report2 = quantize_model(g, data[:, 0], per_layer=False)  # batch dim left out
    assert report2.outputs[0].snr_db == report.outputs[0].snr_db
    labels = np.array([run_graph(g, {"input": d})[g.outputs[0]].argmax() for d in data])
    _, report3 = quantize_model(g, [{"input": d} for d in data], labels=labels, per_layer=False)
    o = report3.outputs[0]
    assert o.float_accuracy == 1.0 and o.int8_accuracy == o.argmax_agreement
    assert qg.meta["quantization"]["calibration"]["method"] == "minmax"


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 3, 3), np.float32), r"calibration array \[4, 3, 3\] does not hold samples of input 'input'"),
    ([{"x": np.zeros(1)}], "calibration sample 0 has no input 'input'"),
    ("data.npy", "calibration must be an array"),
])
def test_calibration_errors_are_one_line(bad, match):
    with pytest.raises(TinyStudioError, match=match) as e:
        quantize_model(build_zoo_model("lenet5"), bad)
    assert "\n" not in str(e.value)


# ---- what int8 cannot run -------------------------------------------------------------------------

def test_unsupported_ops_are_refused_in_one_line():
    with pytest.raises(GraphError) as e:
        quantize_model(build_zoo_model("cct"))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("node 'block1_prenorm' (LayerNormalization): cannot quantize to int8")
    b = GraphBuilder("div")
    x = b.input("x", (1, 8))
    y = b.node("Gemm", [x, b.const("w", np.eye(8, dtype=np.float32))], transB=1)
    b.output(b.node("Div", [y, b.const("d", np.full((8,), 3.0, np.float32))], name="scale_down"))
    with pytest.raises(GraphError, match=r"^node 'scale_down' \(Div\): cannot quantize to int8: no int8 kernel "
                                         r"for Div \(int8 ops: .*Conv.*Gemm"):
        quantize_model(b.build())
    with pytest.raises(GraphError, match="already quantized"):
        g = build_zoo_model("lenet5")
        g.tensors[g.inputs[0]].quant = Quant(np.float32(0.1), 0)
        quantize_int8(g, {})


# ---- the QDQ ONNX export runs the same integers in onnxruntime -------------------------------------

@pytest.mark.parametrize("spec", MLPERF_SPECS + ["sensor_cnn1d", "ad_autoencoder"])
def test_qdq_export_agrees_with_run_int8_in_onnxruntime(spec):
    g = build_zoo_model(spec)
    qg, _ = quantize_model(g, synthetic_samples=8, method="percentile", per_layer=False)
    sess = ort.InferenceSession(to_onnx(qg).SerializeToString(), providers=["CPUExecutionProvider"])
    worst, differ, total = 0, 0, 0
    for f in synthetic_calibration(g, 4, seed=77):
        q = quantize_inputs(qg, f)
        ours = run_int8(qg, q)[qg.outputs[0]].astype(int)
        theirs = sess.run(None, q)[0]
        assert theirs.dtype == np.int8 and theirs.shape == ours.shape
        d = np.abs(ours - theirs.astype(int))
        worst, differ, total = max(worst, int(d.max())), differ + int((d > 0).sum()), total + d.size
    print(f"\n{spec}: onnxruntime QDQ vs run_int8: max {worst} steps, {differ} of {total} values differ")
    assert worst <= 2, f"{spec}: up to {worst} int8 steps apart"


# ---- the tflite-micro interpreter runs the PTQ graph with the same bytes ------------------------------

_ACT = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}


def _padding(n, x_shape, k, s) -> int:
    """TFLite's Padding enum (0 SAME, 1 VALID) from auto_pad (imported files) or explicit pads (zoo graphs)."""
    auto = n.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "VALID"):
        return 0 if auto == "SAME_UPPER" else 1
    pads = list(n.attrs.get("pads", [0, 0, 0, 0]))
    if not any(pads):
        return 1
    assert pads == same_pads(x_shape[1:3], k, s), "TFLite pads are SAME or VALID"
    return 0


def to_tflite(qg: Graph) -> bytes:
    """A test-only TFLite writer for the ops of the MLPerf CNNs, straight from the int8 graph's tensors."""
    from tests.engine.tflite_writer import TFLiteWriter
    w = TFLiteWriter()
    idx: dict[str, int] = {}

    def tensor(name: str, data=None, shape=None, axis=0) -> int:
        if name not in idx:
            t = qg.tensors[name]
            d = t.data if data is None else data
            zps = [int(v) for v in t.quant.zero_point]
            idx[name] = w.tensor(name, shape or t.shape, t.dtype, d, scale=t.quant.scale, zero_point=zps, axis=axis)
        return idx[name]

    for n in qg.nodes:
        y = tensor(n.outputs[0])
        if n.op == "Conv":
            x, wt = qg.tensors[n.inputs[0]], qg.tensors[n.inputs[1]]
            k, s = wt.shape[1:3], n.attrs.get("strides", [1, 1])
            geo = dict(Padding=_padding(n, x.shape, k, s), StrideH=s[0], StrideW=s[1], DilationHFactor=1, DilationWFactor=1,
                       FusedActivationFunction=_ACT[n.attrs.get("activation", "none")])
            if n.attrs.get("group", 1) == 1:
                ins = [tensor(n.inputs[0]), tensor(n.inputs[1]), tensor(n.inputs[2])]
                w.op("CONV_2D", ins, [y], "Conv2DOptions", **geo)
            else:  # (C, kH, kW, 1) -> TFLite's (1, kH, kW, C), quantized along axis 3
                dw = np.ascontiguousarray(wt.data.transpose(3, 1, 2, 0))
                ins = [tensor(n.inputs[0]), tensor(n.inputs[1], dw, dw.shape, axis=3), tensor(n.inputs[2])]
                w.op("DEPTHWISE_CONV_2D", ins, [y], "DepthwiseConv2DOptions", DepthMultiplier=1, **geo)
        elif n.op == "Add":
            w.op("ADD", [tensor(i) for i in n.inputs], [y], "AddOptions",
                 FusedActivationFunction=_ACT[n.attrs.get("activation", "none")])
        elif n.op in ("AveragePool", "MaxPool"):  # VALID (no pads) or SAME, as TFLite pads
            k, s = n.attrs["kernel_shape"], n.attrs.get("strides", [1, 1])
            pad = _padding(n, qg.tensors[n.inputs[0]].shape, k, s)
            w.op("AVERAGE_POOL_2D" if n.op == "AveragePool" else "MAX_POOL_2D", [tensor(n.inputs[0])], [y],
                 "Pool2DOptions", Padding=pad, StrideW=s[1], StrideH=s[0], FilterWidth=k[1],
                 FilterHeight=k[0], FusedActivationFunction=_ACT[n.attrs.get("activation", "none")])
        elif n.op == "GlobalAveragePool":
            axes = w.const(f"{n.name}_axes", np.array([1, 2], np.int32))
            w.op("MEAN", [tensor(n.inputs[0]), axes], [y], "ReducerOptions", KeepDims=True)
        elif n.op == "Reshape":
            shape = w.const(f"{n.name}_shape", np.array(qg.tensors[n.outputs[0]].shape, np.int32))
            w.op("RESHAPE", [tensor(n.inputs[0]), shape], [y])
        elif n.op == "Gemm":
            w.op("FULLY_CONNECTED", [tensor(i) for i in n.inputs], [y], "FullyConnectedOptions",
                 FusedActivationFunction=_ACT[n.attrs.get("activation", "none")])
        elif n.op == "Softmax":
            w.op("SOFTMAX", [tensor(n.inputs[0])], [y], "SoftmaxOptions", Beta=float(n.attrs.get("beta", 1.0)))
        else:
            raise AssertionError(f"no TFLite mapping for {n.op} in this test")
    return w.finish([idx[qg.inputs[0]]], [idx[qg.outputs[0]]])


@pytest.mark.parametrize("spec", ["kws_dscnn", "ic_resnet8", "vww_mobilenetv1?resolution=48"])
def test_tflite_micro_runs_the_ptq_graph_with_the_same_bytes(spec):
    from tflite_micro.python.tflite_micro import runtime
    g = build_zoo_model(spec)
    qg, _ = quantize_model(g, synthetic_samples=8, per_layer=False)
    data = to_tflite(qg)
    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 21)
    for f in synthetic_calibration(g, 6, seed=31):
        q = quantize_inputs(qg, f)[qg.inputs[0]]
        interp.set_input(q, 0)
        interp.invoke()
        want = interp.get_output(0)
        got = run_int8(qg, {qg.inputs[0]: q})[qg.outputs[0]]
        diff = np.argwhere(got != want)
        assert not diff.size, f"{len(diff)} bytes differ; first at {diff[0]}: ours {got[tuple(diff[0])]} " \
                              f"tflm {want[tuple(diff[0])]}"
