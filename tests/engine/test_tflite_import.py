"""TFLite importer: the four MLPerf Tiny int8 models, float models written by tests/engine/tflite_writer.py,
and damaged files. The oracle is the tflite-micro interpreter running the same bytes.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tflite
from tflite_micro.python.tflite_micro import runtime

from engine.errors import ModelFormatError, UnsupportedOpError
from engine.execute import run_graph
from engine.importers.tflite_import import SUPPORTED_OPS, load_tflite, sniff_tflite
from engine.summary import graph_cost
from engine.validate import node_context
from tests.engine.tflite_writer import TFLiteWriter

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlperf-tiny"
# From DATA/README.md: MACs (conv / depthwise / FC) and constant bytes counted from the files.
MLPERF = {
    "kws": ("kws_ref_model.tflite", 2_656_768, (2_368_000, 288_000, 768), 24_376),
    "vww": ("vww_96_int8.tflite", 7_489_664, (6_690_816, 798_336, 512), 219_072),
    "ic": ("pretrainedResnet_quant.tflite", 12_501_632, (12_500_992, 0, 640), 78_752),
    "ad": ("ad01_int8.tflite", 264_192, (0, 0, 264_192), 270_880),
}
# The CNNs' RESHAPE reads its new shape from an int32[2] constant (8 bytes); the IR folds it into the
# Reshape's `shape` attribute, so those bytes are no longer a constant tensor.
FOLDED_SHAPE_BYTES = {"kws": 8, "vww": 8, "ic": 8, "ad": 0}

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")


def mlperf(key: str) -> Path:
    return DATA / MLPERF[key][0]


def mac_split(graph) -> tuple[int, int, int]:
    """(conv, depthwise, FC) MACs; depthwise = Conv whose group equals its input channels (> 1)."""
    conv = dw = fc = 0
    for node in graph.nodes:
        ctx = node_context(graph, node)
        macs = ctx.op.cost(ctx).macs
        if node.op == "Conv":
            x = ctx.ins[0].shape
            c = x[-1] if node.attrs.get("layout") == "NHWC" else x[1]
            if node.attrs.get("group", 1) == c > 1:
                dw += macs
            else:
                conv += macs
        elif node.op in ("Gemm", "MatMul"):
            fc += macs
        else:
            assert macs == 0, (node.name, node.op, macs)
    return conv, dw, fc


def tflm_run(interp, x: np.ndarray) -> np.ndarray:
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0).copy()


# ---- 1. the MLPerf Tiny models import with the README's figures -----------------------------------

@needs_data
@pytest.mark.parametrize("key", list(MLPERF))
def test_mlperf_imports_with_readme_macs(key):
    path = mlperf(key)
    g = load_tflite(str(path))
    _, macs, split, const_bytes = MLPERF[key]
    assert graph_cost(g).macs == macs
    assert mac_split(g) == split
    assert sum(t.nbytes for t in g.initializers()) + FOLDED_SHAPE_BYTES[key] == const_bytes
    assert g.meta["source"] == {"format": "tflite", "path": str(path)}
    assert all(n.attrs.get("layout") == "NHWC" for n in g.nodes if n.op in ("Conv", "AveragePool"))
    assert len({n.name for n in g.nodes}) == len(g.nodes)
    # Same bytes given directly: `path` only names the file.
    g2 = load_tflite("upload.tflite", data=path.read_bytes())
    assert [n.op for n in g2.nodes] == [n.op for n in g.nodes]


# ---- 2. dequantized execution agrees with tflite-micro ---------------------------------------------

N_INPUTS = 100


@needs_data
@pytest.mark.parametrize("key", list(MLPERF))
def test_mlperf_float_execution_matches_tflm(key):
    """Classifiers: the class our dequantized run picks must be one of tflite-micro's top classes (ties
    in int8 softmax outputs are real ties) on >= 90 % of 100 random int8 inputs. The autoencoder (AD):
    reconstruction correlation > 0.999 and mean |difference| < 0.5 int8 steps. The float run rounds every
    activation to its int8 grid (simulate_quant) but does not replicate TFLite's fixed-point
    requantization, so a few outputs differ by a step or more; the maximum is printed."""
    path = mlperf(key)
    g = load_tflite(str(path))
    interp = runtime.Interpreter.from_bytes(path.read_bytes())
    x_name, y_name = g.inputs[0], g.outputs[0]
    xt, yt = g.tensors[x_name], g.tensors[y_name]
    xs = np.random.default_rng(7).integers(-128, 128, size=(N_INPUTS, *xt.shape), dtype=np.int8)

    t0 = time.perf_counter()
    ref = np.stack([tflm_run(interp, x) for x in xs]).reshape(N_INPUTS, -1)
    t1 = time.perf_counter()
    ours = np.stack([run_graph(g, {x_name: x}, simulate_quant=True)[y_name] for x in xs]).reshape(N_INPUTS, -1)
    t2 = time.perf_counter()

    q = yt.quant
    ours_q = np.rint(ours / q.scale[0]) + q.zero_point[0]  # back to the output's int8 grid
    steps = np.abs(ours_q - ref.astype(np.int64))
    ref_real = q.dequantize(ref)
    corr = float(np.corrcoef(ref_real.ravel(), ours.ravel())[0, 1])
    pick = ours.argmax(axis=1)
    strict = float(np.mean(pick == ref.argmax(axis=1)))
    tie_ok = float(np.mean(ref[np.arange(N_INPUTS), pick] == ref.max(axis=1)))
    agreement = "" if key == "ad" else f"argmax agreement {strict:.0%} (ties counted: {tie_ok:.0%}); "
    print(f"\n{key}: tflite-micro {t1 - t0:.2f} s, ours {t2 - t1:.2f} s for {N_INPUTS} inputs; {agreement}"
          f"output diff max {steps.max():.0f} / mean {steps.mean():.3f} int8 steps; correlation {corr:.5f}")
    assert t2 - t0 < 60, f"{key}: {N_INPUTS} inputs took {t2 - t0:.1f} s"
    if key == "ad":
        assert corr > 0.999 and steps.mean() < 0.5, (
            f"first differing outputs: ours {ours_q[0][:8]} tflm {ref[0][:8]}")
    else:
        bad = np.flatnonzero(pick != ref.argmax(axis=1))
        first = f"; first: ours {ours_q[bad[0]]} tflm {ref[bad[0]]}" if bad.size else ""
        assert strict >= 0.9 and tie_ok >= 0.9, f"disagreements at inputs {bad[:5]}{first}"


# ---- 3. quantization is kept ---------------------------------------------------------------------------

@needs_data
def test_kws_quantization_kept():
    path = mlperf("kws")
    g = load_tflite(str(path))
    interp = runtime.Interpreter.from_bytes(path.read_bytes())
    for t, details in ((g.tensors[g.inputs[0]], interp.get_input_details(0)),
                       (g.tensors[g.outputs[0]], interp.get_output_details(0))):
        qp = details["quantization_parameters"]
        assert t.dtype == "int8" and t.quant.axis is None
        assert t.shape == tuple(details["shape"])
        np.testing.assert_array_equal(t.quant.scale, qp["scales"])  # input: 0.5847029, zero point 83
        np.testing.assert_array_equal(t.quant.zero_point, qp["zero_points"])

    conv = g.nodes[0]
    assert conv.op == "Conv" and conv.attrs["layout"] == "NHWC" and conv.attrs["activation"] == "relu"
    w = g.tensors[conv.inputs[1]]
    assert w.dtype == "int8" and w.shape == (64, 10, 4, 1)
    assert w.quant.axis == 0 and w.quant.scale.shape == (64,) and not w.quant.zero_point.any()
    b = g.tensors[conv.inputs[2]]
    assert b.dtype == "int32" and b.quant.scale.shape == (64,)
    x_scale = g.tensors[conv.inputs[0]].quant.scale[0]
    np.testing.assert_allclose(b.quant.scale, x_scale * w.quant.scale, rtol=1e-6)  # TFLite's bias rule

    dw = g.nodes[1]
    assert dw.op == "Conv" and dw.attrs["group"] == 64
    wd = g.tensors[dw.inputs[1]]
    # (1, 3, 3, 64) per-channel on axis 3 in the file -> (64, 3, 3, 1) per-channel on axis 0.
    assert wd.shape == (64, 3, 3, 1) and wd.quant.axis == 0 and wd.quant.scale.shape == (64,)
    # The raw file weights, read independently through the tflite package.
    m = tflite.Model.GetRootAs(path.read_bytes(), 0)
    sg = m.Subgraphs(0)
    raw_t = sg.Tensors(int(sg.Operators(1).Inputs(1)))
    raw = m.Buffers(raw_t.Buffer()).DataAsNumpy().view(np.int8).reshape(1, 3, 3, 64)
    np.testing.assert_array_equal(wd.data, np.transpose(raw, (3, 1, 2, 0)))
    np.testing.assert_array_equal(wd.quant.scale, raw_t.Quantization().ScaleAsNumpy())


# ---- 4. float models written with the test writer, checked against tflite-micro --------------------

R = np.random.default_rng(3)


def rnd(*shape, scale=1.0):
    return (R.normal(size=shape) * scale).astype(np.float32)


def float_model() -> tuple[bytes, tuple[int, ...]]:
    """conv 3x3 SAME + relu6 -> depthwise 3x3 s2 (multiplier 2) + relu -> avgpool 2x2 -> reshape -> FC -> softmax."""
    w = TFLiteWriter()
    x = w.tensor("input", (1, 9, 9, 3))
    c1 = w.tensor("conv/out", (1, 9, 9, 8))
    w.op("CONV_2D", [x, w.const("conv/w", rnd(8, 3, 3, 3, scale=0.3)), w.const("conv/b", rnd(8, scale=0.1))], [c1],
         "Conv2DOptions", Padding=0, StrideW=1, StrideH=1, DilationWFactor=1, DilationHFactor=1,
         FusedActivationFunction=3)
    c2 = w.tensor("dw/out", (1, 5, 5, 16))
    w.op("DEPTHWISE_CONV_2D", [c1, w.const("dw/w", rnd(1, 3, 3, 16, scale=0.3)), w.const("dw/b", rnd(16, scale=0.1))],
         [c2], "DepthwiseConv2DOptions", Padding=0, StrideW=2, StrideH=2, DepthMultiplier=2, DilationWFactor=1,
         DilationHFactor=1, FusedActivationFunction=1)
    p = w.tensor("pool/out", (1, 2, 2, 16))
    w.op("AVERAGE_POOL_2D", [c2], [p], "Pool2DOptions", Padding=1, StrideW=2, StrideH=2, FilterWidth=2,
         FilterHeight=2)
    f = w.tensor("flatten", (1, 64))
    w.op("RESHAPE", [p, w.const("flatten/shape", np.array([1, 64], np.int32))], [f])
    d = w.tensor("dense", (1, 10))
    w.op("FULLY_CONNECTED", [f, w.const("dense/w", rnd(10, 64, scale=0.2)), w.const("dense/b", rnd(10, scale=0.1))],
         [d], "FullyConnectedOptions")
    y = w.tensor("probs", (1, 10))
    w.op("SOFTMAX", [d], [y], "SoftmaxOptions", Beta=1.0)
    return w.finish([x], [y]), (1, 9, 9, 3)


def compare_with_tflm(data: bytes, feeds: list[np.ndarray], name: str = "model"):
    g = load_tflite(f"{name}.tflite", data=data)
    interp = runtime.Interpreter.from_bytes(data)
    for i, x in enumerate(feeds):
        interp.set_input(x, i)
    interp.invoke()
    ref = interp.get_output(0)
    ours = run_graph(g, dict(zip(g.inputs, feeds)))[g.outputs[0]]
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    bad = np.flatnonzero(~np.isclose(ours, ref, rtol=1e-4, atol=1e-5))
    assert bad.size == 0, (f"{name}: {bad.size} values differ, first at flat index {bad[:5]}: "
                           f"ours {ours.ravel()[bad[:5]]} tflm {ref.ravel()[bad[:5]]}")
    return g


def test_float_model_matches_tflm():
    data, shape = float_model()
    for seed in range(3):
        g = compare_with_tflm(data, [np.random.default_rng(seed).normal(size=shape).astype(np.float32)])
    assert [n.op for n in g.nodes] == ["Conv", "Conv", "AveragePool", "Reshape", "Gemm", "Softmax"]
    assert g.nodes[0].attrs["activation"] == "relu6" and g.nodes[0].attrs["auto_pad"] == "SAME_UPPER"
    assert g.nodes[1].attrs["group"] == 8 and g.tensors[g.nodes[1].inputs[1]].shape == (16, 3, 3, 1)
    assert all(t.dtype == "float32" and t.quant is None for t in g.tensors.values() if t.data is not None)


def one_op(op, inputs, out_shape, options=None, extra_out=(), **fields):
    """A model with one op. `inputs`: shapes (runtime inputs) or arrays (constants)."""
    w = TFLiteWriter()
    ins, feeds, graph_ins = [], [], []
    for i, v in enumerate(inputs):
        if isinstance(v, tuple):
            idx = w.tensor(f"x{i}", v)
            ins.append(idx)
            graph_ins.append(idx)
            feeds.append(rnd(*v))
        elif v is None:
            ins.append(-1)
        else:
            ins.append(w.const(f"c{i}", v))
    outs = [w.tensor("y", out_shape)] + [w.tensor(f"y{j + 1}", s) for j, s in enumerate(extra_out)]
    w.op(op, ins, outs, options, **fields)
    return w.finish(graph_ins, outs[:1] if not extra_out else outs), feeds


CONV = dict(DilationWFactor=1, DilationHFactor=1)
# Ops tflite-micro does not implement (RELU_N1_TO_1, GELU, ...) are mapped but have no oracle here.
ONE_OP_CASES = {
    "conv_valid_s2": lambda: one_op("CONV_2D", [(1, 9, 8, 3), rnd(4, 3, 3, 3), rnd(4)], (1, 4, 3, 4),
                                    "Conv2DOptions", Padding=1, StrideW=2, StrideH=2, **CONV),
    # TFLite's conv kernel applies no fused TANH; the importer must not either.
    "conv_same_dilated_fused_tanh": lambda: one_op("CONV_2D", [(1, 7, 7, 2), rnd(3, 3, 3, 2), None], (1, 7, 7, 3),
                                                   "Conv2DOptions", Padding=0, StrideW=1, StrideH=1, DilationWFactor=2,
                                                   DilationHFactor=2, FusedActivationFunction=4),
    "depthwise_valid": lambda: one_op("DEPTHWISE_CONV_2D", [(1, 6, 6, 4), rnd(1, 3, 3, 4), rnd(4)], (1, 4, 4, 4),
                                      "DepthwiseConv2DOptions", Padding=1, StrideW=1, StrideH=1, DepthMultiplier=1,
                                      FusedActivationFunction=2, **CONV),
    "maxpool_same_s2": lambda: one_op("MAX_POOL_2D", [(1, 7, 7, 3)], (1, 4, 4, 3), "Pool2DOptions", Padding=0,
                                      StrideW=2, StrideH=2, FilterWidth=3, FilterHeight=3),
    "avgpool_same_s2": lambda: one_op("AVERAGE_POOL_2D", [(1, 7, 6, 3)], (1, 4, 3, 3), "Pool2DOptions", Padding=0,
                                      StrideW=2, StrideH=2, FilterWidth=3, FilterHeight=3, FusedActivationFunction=1),
    "fc_4d_input": lambda: one_op("FULLY_CONNECTED", [(1, 2, 2, 6), rnd(5, 12), rnd(5)], (2, 5),
                                  "FullyConnectedOptions", FusedActivationFunction=1),
    "fc_keep_num_dims": lambda: one_op("FULLY_CONNECTED", [(1, 3, 6), rnd(4, 6), None], (1, 3, 4),
                                       "FullyConnectedOptions", KeepNumDims=True),
    "add_relu_broadcast": lambda: one_op("ADD", [(1, 4, 4, 3), rnd(3)], (1, 4, 4, 3), "AddOptions",
                                         FusedActivationFunction=1),
    "sub": lambda: one_op("SUB", [(1, 4, 3), (1, 4, 3)], (1, 4, 3), "SubOptions"),
    "mul_relu6": lambda: one_op("MUL", [(2, 5), rnd(2, 5, scale=4)], (2, 5), "MulOptions", FusedActivationFunction=3),
    "concat": lambda: one_op("CONCATENATION", [(1, 3, 3, 2), (1, 3, 3, 4)], (1, 3, 3, 6), "ConcatenationOptions",
                             Axis=-1),
    "mean_keepdims": lambda: one_op("MEAN", [(1, 5, 4, 3), np.array([1, 2], np.int32)], (1, 1, 1, 3),
                                    "ReducerOptions", KeepDims=True),
    "pad": lambda: one_op("PAD", [(1, 3, 3, 2), np.array([[0, 0], [1, 2], [2, 0], [0, 1]], np.int32)], (1, 6, 5, 3)),
    "transpose": lambda: one_op("TRANSPOSE", [(2, 3, 4), np.array([2, 0, 1], np.int32)], (4, 2, 3)),
    "strided_slice_masks": lambda: one_op("STRIDED_SLICE", [(1, 6, 7, 4), np.array([0, 1, -1, 2], np.int32),
                                                            np.array([1, 6, 0, 3], np.int32),
                                                            np.array([1, 2, -2, 1], np.int32)], (1, 3, 4),
                                          "StridedSliceOptions", BeginMask=0, EndMask=4, ShrinkAxisMask=8),
    "squeeze": lambda: one_op("SQUEEZE", [(1, 1, 5, 1)], (1, 5), "SqueezeOptions", SqueezeDims=[0, 3]),
    "reshape_options": lambda: one_op("RESHAPE", [(2, 6)], (3, 4), "ReshapeOptions", NewShape=[3, -1]),
    "resize_nearest": lambda: one_op("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 5, 2), np.array([7, 4], np.int32)],
                                     (1, 7, 4, 2), "ResizeNearestNeighborOptions"),
    "resize_nearest_half_pixel": lambda: one_op("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 5, 2), np.array([7, 8], np.int32)],
                                                (1, 7, 8, 2), "ResizeNearestNeighborOptions", HalfPixelCenters=True),
    "resize_nearest_align": lambda: one_op("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 5, 2), np.array([7, 8], np.int32)],
                                           (1, 7, 8, 2), "ResizeNearestNeighborOptions", AlignCorners=True),
    "resize_bilinear": lambda: one_op("RESIZE_BILINEAR", [(1, 3, 4, 2), np.array([7, 6], np.int32)], (1, 7, 6, 2),
                                      "ResizeBilinearOptions"),
    "resize_bilinear_half_pixel": lambda: one_op("RESIZE_BILINEAR", [(1, 3, 4, 2), np.array([6, 9], np.int32)],
                                                 (1, 6, 9, 2), "ResizeBilinearOptions", HalfPixelCenters=True),
    "resize_bilinear_align": lambda: one_op("RESIZE_BILINEAR", [(1, 3, 4, 2), np.array([6, 9], np.int32)],
                                            (1, 6, 9, 2), "ResizeBilinearOptions", AlignCorners=True),
    "transpose_conv_same_s2": lambda: one_op("TRANSPOSE_CONV", [np.array([1, 8, 6, 3], np.int32), rnd(3, 3, 3, 4),
                                                                (1, 4, 3, 4)], (1, 8, 6, 3),
                                             "TransposeConvOptions", Padding=0, StrideW=2, StrideH=2),
    "relu": lambda: one_op("RELU", [(2, 7)], (2, 7)),
    "relu6": lambda: one_op("RELU6", [(2, 7)], (2, 7)),
    "logistic": lambda: one_op("LOGISTIC", [(2, 7)], (2, 7)),
    "tanh": lambda: one_op("TANH", [(2, 7)], (2, 7)),
    "hard_swish": lambda: one_op("HARD_SWISH", [(2, 7)], (2, 7)),
    "leaky_relu": lambda: one_op("LEAKY_RELU", [(2, 7)], (2, 7), "LeakyReluOptions", Alpha=0.3),
    "prelu": lambda: one_op("PRELU", [(1, 3, 3, 4), rnd(1, 1, 4)], (1, 3, 3, 4)),
    "softmax_beta": lambda: one_op("SOFTMAX", [(2, 6)], (2, 6), "SoftmaxOptions", Beta=0.5),
    "log_softmax": lambda: one_op("LOG_SOFTMAX", [(2, 6)], (2, 6)),
    "exp": lambda: one_op("EXP", [(2, 7)], (2, 7)),
    "abs": lambda: one_op("ABS", [(2, 7)], (2, 7)),
    "neg": lambda: one_op("NEG", [(2, 7)], (2, 7)),
    "div_relu": lambda: one_op("DIV", [(2, 7), rnd(2, 7) + 3.0], (2, 7), "DivOptions", FusedActivationFunction=1),
    "maximum": lambda: one_op("MAXIMUM", [(2, 7), (2, 7)], (2, 7)),
    "minimum": lambda: one_op("MINIMUM", [(2, 7), rnd(7)], (2, 7)),
    "sum": lambda: one_op("SUM", [(2, 3, 4), np.array([1], np.int32)], (2, 4), "ReducerOptions", KeepDims=False),
    "reduce_max": lambda: one_op("REDUCE_MAX", [(2, 3, 4), np.array([-1], np.int32)], (2, 3, 1), "ReducerOptions",
                                 KeepDims=True),
    "padv2": lambda: one_op("PADV2", [(1, 3, 2), np.array([[0, 0], [2, 1], [0, 3]], np.int32),
                                      np.array(1.5, np.float32)], (1, 6, 5)),
    "mirror_pad_reflect": lambda: one_op("MIRROR_PAD", [(1, 4, 5, 1), np.array([[0, 0], [2, 1], [1, 3], [0, 0]],
                                                                               np.int32)], (1, 7, 9, 1),
                                         "MirrorPadOptions", Mode=0),
    "slice": lambda: one_op("SLICE", [(2, 5, 6), np.array([1, 1, 2], np.int32), np.array([1, -1, 3], np.int32)],
                            (1, 4, 3)),
    "expand_dims": lambda: one_op("EXPAND_DIMS", [(3, 4), np.array([-1], np.int32)], (3, 4, 1)),
    "split": lambda: one_op("SPLIT", [np.array(1, np.int32), (2, 6, 3)], (2, 2, 3), "SplitOptions", NumSplits=3,
                            extra_out=[(2, 2, 3), (2, 2, 3)]),
    "split_v": lambda: one_op("SPLIT_V", [(2, 7), np.array([2, -1, 1], np.int32), np.array(1, np.int32)], (2, 2),
                              "SplitVOptions", NumSplits=3, extra_out=[(2, 4), (2, 1)]),
    "gather": lambda: one_op("GATHER", [(5, 3), np.array([4, 0, 2, 2], np.int32)], (4, 3), "GatherOptions", Axis=0),
    "batch_matmul": lambda: one_op("BATCH_MATMUL", [(2, 3, 4), (2, 4, 5)], (2, 3, 5), "BatchMatMulOptions"),
}


@pytest.mark.parametrize("case", list(ONE_OP_CASES))
def test_single_op_matches_tflm(case):
    data, feeds = ONE_OP_CASES[case]()
    compare_with_tflm(data, feeds, case)


# ---- 5. damaged and unsupported files ------------------------------------------------------------

def _kws_or_float_bytes() -> bytes:
    return mlperf("kws").read_bytes() if DATA.is_dir() else float_model()[0]


def test_sniff():
    data = float_model()[0]
    assert sniff_tflite(data)
    assert not sniff_tflite(b"") and not sniff_tflite(b"\x08\x00\x00\x00ONNX") and not sniff_tflite(data[:7])


def test_empty_and_missing_file(tmp_path):
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    with pytest.raises(ModelFormatError, match=r"empty\.tflite: .*empty"):
        load_tflite(str(p))
    with pytest.raises(ModelFormatError, match=r"nothere\.tflite: no such file"):
        load_tflite(str(tmp_path / "nothere.tflite"))


def test_wrong_magic():
    data = bytearray(float_model()[0])
    data[4:8] = b"ONNX"
    with pytest.raises(ModelFormatError, match=r"^bad\.tflite: not a TFLite model"):
        load_tflite("bad.tflite", data=bytes(data))


@pytest.mark.parametrize("which", ["float", "kws"])
def test_truncated_files(which):
    data = float_model()[0] if which == "float" else _kws_or_float_bytes()
    cuts = [10, 100, len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data) - 16, len(data) - 1]
    for cut in cuts:
        t0 = time.perf_counter()
        with pytest.raises(ModelFormatError, match=r"^cut\.tflite: ") as err:
            load_tflite("cut.tflite", data=data[:cut])
        assert time.perf_counter() - t0 < 2, f"cut at {cut} took too long"
        assert "\n" not in str(err.value)


def test_random_bytes_with_magic():
    rng = np.random.default_rng(11)
    for i in range(200):
        raw = bytearray(rng.integers(0, 256, size=int(rng.integers(8, 4000)), dtype=np.uint8).tobytes())
        raw[4:8] = b"TFL3"
        with pytest.raises(ModelFormatError, match=r"^noise\.tflite: "):
            load_tflite("noise.tflite", data=bytes(raw))


def test_corrupted_bytes_never_crash():
    """Random byte damage to a real file: either it still imports (the damage hit weight values) or a
    ModelFormatError comes out; never another exception, never a hang."""
    data = _kws_or_float_bytes()
    rng = np.random.default_rng(5)
    failed = 0
    t0 = time.perf_counter()
    for _ in range(150):
        raw = bytearray(data)
        for pos in rng.integers(0, len(raw), size=int(rng.integers(1, 20))):
            raw[pos] = int(rng.integers(0, 256))
        try:
            load_tflite("damaged.tflite", data=bytes(raw))
        except ModelFormatError:
            failed += 1
    assert failed > 0 and time.perf_counter() - t0 < 30


def test_contradicting_shapes():
    w = TFLiteWriter()
    x = w.tensor("x", (1, 8, 8, 3))
    y = w.tensor("y", (1, 8, 8, 5))  # the filter makes 4 channels
    w.op("CONV_2D", [x, w.const("k", rnd(4, 3, 3, 3))], [y], "Conv2DOptions", Padding=0, StrideW=1, StrideH=1)
    with pytest.raises(ModelFormatError, match=r"m\.tflite: the model contradicts itself: node 'CONV_2D_0'"):
        load_tflite("m.tflite", data=w.finish([x], [y]))


def test_quantize_dequantize_matches_tflm():
    w = TFLiteWriter()
    x = w.tensor("x", (2, 16))
    q = w.tensor("q", (2, 16), "int8", scale=0.05, zero_point=3)
    y = w.tensor("y", (2, 16))
    w.op("QUANTIZE", [x], [q])
    w.op("DEQUANTIZE", [q], [y])
    feed = rnd(2, 16, scale=3.0)  # reaches past the int8 range, so saturation is checked too
    g = compare_with_tflm(w.finish([x], [y]), [feed], "qdq")
    assert [n.op for n in g.nodes] == ["QuantizeLinear", "DequantizeLinear"]
    assert g.tensors["q"].dtype == "int8" and g.tensors["q"].quant.zero_point[0] == 3


def _with_op(op: str, **kw) -> bytes:
    w = TFLiteWriter()
    x = w.tensor("x", (1, 4))
    r = w.tensor("r", (1, 4))
    w.op("RELU", [x], [r])
    y = w.tensor("y", (1, 4))
    w.op(op, [r], [y], **kw)
    return w.finish([x], [y])


def test_unsupported_builtin():
    with pytest.raises(UnsupportedOpError) as err:
        load_tflite("u.tflite", data=_with_op("L2_NORMALIZATION"))
    e = err.value
    assert e.op == "L2_NORMALIZATION" and e.node == "L2_NORMALIZATION_1" and e.path == "u.tflite"
    assert str(e).startswith("u.tflite: unsupported op 'L2_NORMALIZATION' at node 'L2_NORMALIZATION_1'")
    assert "CONV_2D" in str(e) and "DEPTHWISE_CONV_2D" in str(e)


def test_custom_op():
    with pytest.raises(UnsupportedOpError, match=r"^c\.tflite: unsupported op 'CUSTOM:MyFancyOp' at node "
                                                 r"'CUSTOM:MyFancyOp_1'"):
        load_tflite("c.tflite", data=_with_op("CUSTOM", custom_code="MyFancyOp"))


def test_control_flow_is_refused():
    w = TFLiteWriter()
    x = w.tensor("x", (1, 4))
    y = w.tensor("y", (1, 4))
    w.op("WHILE", [x], [y], "WhileOptions", CondSubgraphIndex=1, BodySubgraphIndex=2)
    w.extra_subgraphs = 2
    with pytest.raises(ModelFormatError, match=r"^cf\.tflite: node 'WHILE_0' uses control flow \(WHILE\) across the "
                                               r"model's 3 subgraphs"):
        load_tflite("cf.tflite", data=w.finish([x], [y]))


def test_duplicate_tensor_names_made_unique():
    w = TFLiteWriter()
    x = w.tensor("t", (2, 3))
    y = w.tensor("t", (2, 3))
    w.op("RELU", [x], [y])
    g = load_tflite("d.tflite", data=w.finish([x], [y]))
    assert g.inputs == ["t"] and g.outputs == ["t_1"]


def test_supported_list_names_the_mapped_ops():
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
               "SUB", "MUL", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "MEAN", "PAD", "TRANSPOSE",
               "STRIDED_SLICE", "SQUEEZE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "TRANSPOSE_CONV"):
        assert op in SUPPORTED_OPS
