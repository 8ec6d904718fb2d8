"""Seed model files the fuzzer mutates: the four MLPerf Tiny .tflite files, ONNX files exported from zoo
models and test fixtures (float and QDQ int8), and generated huge, deep and wide graphs.

    seeds = load_seeds()          # [Seed(name, fmt, data)], built once per run (about 2 s)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
TFLITE_FILES = ("kws_ref_model.tflite", "vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite")
ZOO_SPECS = ("zoo:lenet5", "zoo:sensor_cnn1d", "zoo:micro_speech", "zoo:ad_autoencoder", "zoo:kws_dscnn")


@dataclass(frozen=True)
class Seed:
    name: str  # file name the mutants get (extension picks the importer, as for an upload)
    fmt: str  # "onnx" or "tflite"
    data: bytes


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def op_mix() -> onnx.ModelProto:
    """Small graph touching the handlers whose constant operands become attributes (Reshape, Split, Slice,
    Pad, Resize, Clip, Squeeze, Expand, Tile, Cast, Gemm ...), the ops the fuzz table found crashes in."""
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant", name="pad"),
        helper.make_node("Resize", ["p", "", "sc"], ["r"], mode="nearest", name="resize"),
        helper.make_node("Clip", ["r", "lo", "hi"], ["c"], name="clip"),
        helper.make_node("Split", ["c", "sp"], ["s0", "s1"], axis=1, name="split"),
        helper.make_node("Slice", ["s1", "st", "en", "ax1"], ["sl"], name="slice"),
        helper.make_node("Concat", ["s0", "sl"], ["cat"], axis=1, name="concat"),
        helper.make_node("Reshape", ["cat", "shape"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "W", "B"], ["g"], transB=1, name="gemm"),
        helper.make_node("Cast", ["g"], ["gc"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Unsqueeze", ["gc", "ax0"], ["u"], name="unsqueeze"),
        helper.make_node("Squeeze", ["u", "ax0"], ["sq"], name="squeeze"),
        helper.make_node("Expand", ["sq", "eshape"], ["e"], name="expand"),
        helper.make_node("Tile", ["e", "reps"], ["t"], name="tile"),
        helper.make_node("Add", ["t", "t"], ["a"], name="add"),
        helper.make_node("Softmax", ["a"], ["y"], axis=-1, name="softmax"),
    ]
    inits = [_init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), _init("sc", np.array([1, 1, 2, 2], np.float32)),
             _init("lo", np.array(-1, np.float32)), _init("hi", np.array(1, np.float32)),
             _init("sp", np.array([1, 2], np.int64)), _init("st", np.array([0], np.int64)),
             _init("en", np.array([1], np.int64)), _init("ax1", np.array([1], np.int64)),
             _init("shape", np.array([1, -1], np.int64)), _init("W", np.ones((4, 2 * 12 * 12), np.float32) * 0.01),
             _init("B", np.zeros(4, np.float32)), _init("ax0", np.array([0], np.int64)),
             _init("eshape", np.array([2, 4], np.int64)), _init("reps", np.array([1, 2], np.int64))]
    return _model(nodes, [_vi("x", [1, 3, 4, 4])], [_vi("y", None)], inits)


def deep_chain(n: int = 1000) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"], name=f"n{i}")
             for i in range(n)]
    return _model(nodes, [_vi("t0", [1, 8])], [_vi(f"t{n}", [1, 8])])


def wide_concat(n: int = 200) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], [f"b{i}"], name=f"branch{i}") for i in range(n)]
    nodes.append(helper.make_node("Concat", [f"b{i}" for i in range(n)], ["y"], axis=1, name="cat"))
    return _model(nodes, [_vi("x", [1, 4])], [_vi("y", [1, 4 * n])])


def huge_dims(fold: int = 1 << 18) -> onnx.ModelProto:
    """Declared sizes far beyond memory: an input of 2^40 elements and a ConstantOfShape that would fold to
    fold^2 floats. Each must end in a clean error or in figures, never in an allocation."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill"),
             helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Add", ["y", "big"], ["z"], name="add")]
    return _model(nodes, [_vi("x", [1 << 18, 1 << 18, 16])], [_vi("z", None)],
                  [_init("shape", np.array([fold, 1 << 10 if fold > 1 else 16], np.int64))])


def _zoo_onnx(spec: str) -> bytes:
    from engine.exporters.onnx_export import to_onnx
    from engine.zoo import build_zoo_model

    return to_onnx(build_zoo_model(spec)).SerializeToString()


def _qdq_onnx(tflite: bytes) -> bytes:
    from engine.exporters.onnx_export import to_onnx
    from engine.importers import load_model_bytes

    return to_onnx(load_model_bytes(tflite, "kws.tflite")).SerializeToString()


def _onnxruntime_int8() -> list[Seed]:
    """int8 files as onnxruntime.quantization writes them: QOperator (QLinearConv, com.microsoft QLinearAdd ...)
    with uint8 activations, and QDQ."""
    import tempfile

    from tests.engine.onnx_qmodels import cnn_model, mlp_model, quantize

    with tempfile.TemporaryDirectory() as td:
        return [Seed("cnn_qop_ort.onnx", "onnx", quantize(cnn_model(), td, fmt="qop", per_channel=True,
                                                           activation="uint8")),
                Seed("mlp_qdq_ort.onnx", "onnx", quantize(mlp_model(), td, fmt="qdq"))]


def load_seeds(include_large: bool = True) -> list[Seed]:
    from tests.fixtures.malformed import valid_onnx

    seeds = [Seed(f, "tflite", (MLPERF / f).read_bytes()) for f in TFLITE_FILES
             if include_large or f == "kws_ref_model.tflite"]
    seeds.append(Seed("fixture_conv.onnx", "onnx", valid_onnx().SerializeToString()))
    seeds.append(Seed("op_mix.onnx", "onnx", op_mix().SerializeToString()))
    seeds.append(Seed("huge.onnx", "onnx", huge_dims().SerializeToString()))
    seeds.append(Seed("huge_input.onnx", "onnx", huge_dims(1).SerializeToString()))
    for spec in ZOO_SPECS:
        seeds.append(Seed(spec[4:].split("?")[0] + ".onnx", "onnx", _zoo_onnx(spec)))
    seeds.append(Seed("kws_qdq.onnx", "onnx", _qdq_onnx((MLPERF / TFLITE_FILES[0]).read_bytes())))
    seeds += _onnxruntime_int8()
    if include_large:
        seeds.append(Seed("deep.onnx", "onnx", deep_chain().SerializeToString()))
        seeds.append(Seed("wide.onnx", "onnx", wide_concat().SerializeToString()))
    return seeds
