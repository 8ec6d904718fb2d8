"""Small float ONNX models built with onnx.helper, and their int8 versions written by onnxruntime's own
quantizer (onnxruntime.quantization.quantize_static / quantize_dynamic): the ONNX int8 files a user brings.

    f = cnn_model()                                   # float ModelProto
    q = quantize(f, tmp_path, fmt="qdq", per_channel=True, activation="int8")   # bytes of the int8 model
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _w(rng, name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inits, x_shape, y_shape, name):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def cnn_model(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-MaxPool-Conv-Relu (+ a residual Add) - GlobalAveragePool - Flatten - Gemm: a tiny image CNN."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "p1"], ["s2"], name="add2"),
        helper.make_node("GlobalAveragePool", ["s2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc"),
    ]
    inits = [_w(rng, "w1", 8, 3, 3, 3), _w(rng, "b1", 8, scale=0.1), _w(rng, "w2", 8, 8, 3, 3, scale=0.15),
             _w(rng, "b2", 8, scale=0.1), _w(rng, "w3", 5, 8), _w(rng, "b3", 5, scale=0.1)]
    return _model(nodes, inits, [1, 3, 12, 12], [1, 5], "cnn")


def mlp_model(seed: int = 1) -> onnx.ModelProto:
    """MatMul+Add-Relu-MatMul+Add: what torch writes for nn.Linear layers."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["m2", "b2"], ["y"], name="bias2"),
    ]
    inits = [_w(rng, "w1", 16, 24), _w(rng, "b1", 24, scale=0.1), _w(rng, "w2", 24, 4),
             _w(rng, "b2", 4, scale=0.1)]
    return _model(nodes, inits, [1, 16], [1, 4], "mlp")


def calibration(model: onnx.ModelProto, n: int = 16, seed: int = 7) -> list[np.ndarray]:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def quantize(model: onnx.ModelProto, tmp: Path, *, fmt: str = "qdq", per_channel: bool = False,
             activation: str = "int8", weight: str = "int8") -> bytes:
    """The int8 model onnxruntime.quantization.quantize_static writes (QDQ or QOperator format)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)

    samples = calibration(model)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{model.graph.input[0].name: s} for s in samples])

        def get_next(self):
            return next(self.it, None)

    tmp = Path(tmp)
    src, dst = tmp / f"{model.graph.name}_f.onnx", tmp / f"{model.graph.name}_{fmt}_{activation}.onnx"
    onnx.save(model, src)
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ if fmt == "qdq" else
                    QuantFormat.QOperator, per_channel=per_channel, activation_type=types[activation],
                    weight_type=types[weight])
    return dst.read_bytes()


def quantize_dyn(model: onnx.ModelProto, tmp: Path) -> bytes:
    """onnxruntime.quantization.quantize_dynamic: MatMulInteger / ConvInteger with DynamicQuantizeLinear."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = Path(tmp)
    src, dst = tmp / f"{model.graph.name}_f.onnx", tmp / f"{model.graph.name}_dyn.onnx"
    onnx.save(model, src)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst.read_bytes()
