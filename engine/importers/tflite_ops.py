"""TFLite op handlers: one small function per TFLite builtin op, mapping its records into IR nodes (NHWC).

Shape-defining constant inputs (RESHAPE's shape, PAD's paddings, MEAN's axes, ...) become attributes;
a fused activation becomes the IR op's `activation`, or its own node for ops without one.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from engine.importers.tflite_builder import Builder
from engine.importers.tflite_recurrent import unidirectional_sequence_lstm
from engine.importers.tflite_stateful import svdf
from engine.ir import Quant, Tensor

_PADDING = {0: "SAME_UPPER", 1: "VALID"}  # TFLite SAME puts the odd pad cell at the end, like SAME_UPPER


def _strides_pads(b: Builder) -> dict:
    pad = int(b.opt("Padding", 0))
    if pad not in _PADDING:
        raise b.error(f"unknown padding {pad}")
    return {"strides": [int(b.opt("StrideH")), int(b.opt("StrideW"))], "auto_pad": _PADDING[pad]}


def _dilations(b: Builder) -> list[int]:
    return [int(b.opt("DilationHFactor", 1)), int(b.opt("DilationWFactor", 1))]


def _conv(b: Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "filter"))
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[-1] == 0:
        raise b.error(f"expects a 4-D input and filter, got {list(x.shape)} and {list(w.shape)}")
    ins = [b.tensor(x.index), b.tensor(w.index), *b.optional(2)]
    # Filters with fewer channels than the input make a grouped conv (TFLite >= 2.9).
    b.add("Conv", ins, [b.out()], layout="NHWC", group=max(1, x.shape[-1] // w.shape[-1]),
          dilations=_dilations(b), activation=b.activation(), **_strides_pads(b))


def _depthwise(b: Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "filter"))
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[0] != 1:
        raise b.error(f"expects a 4-D input and a (1, kH, kW, C*mult) filter, got {list(x.shape)} and "
                      f"{list(w.shape)}")
    if w.data is None:
        raise b.error(f"the filter '{w.name}' must be a constant")
    c = x.shape[-1]
    if c == 0 or w.shape[-1] % c:
        raise b.error(f"filter {list(w.shape)} does not hold a whole multiple of the {c} input channels")
    # (1, kH, kW, C*mult) -> (C*mult, kH, kW, 1): group = C, output channel c*mult+m reads input channel c.
    perm = (3, 1, 2, 0)
    quant = w.quant
    if quant is not None and quant.axis is not None:
        quant = Quant(quant.scale, quant.zero_point, perm.index(quant.axis))
    key = (w.index, "depthwise")
    if key not in b.cache:
        name = b.fresh(w.name or f"tensor_{w.index}")
        data = np.ascontiguousarray(np.transpose(w.data, perm))
        b.g.tensors[name] = Tensor(name, data.shape, w.dtype, quant, data,
                                   {"tflite_index": w.index, "tflite_layout": "transposed from (1, kH, kW, C*mult)"})
        b.cache[key] = name
    ins = [b.tensor(x.index), b.cache[key], *b.optional(2)]
    b.add("Conv", ins, [b.out()], layout="NHWC", group=c, dilations=_dilations(b), activation=b.activation(),
          **_strides_pads(b))


def _transpose_conv(b: Builder) -> None:
    shape_in = b.rec(b.input(0, "output shape"))
    if shape_in.data is None and all(d > 0 for d in b.rec(b.op.outputs[0]).shape):
        # A computed output shape (SEANet's int16 decoder feeds it as a graph input): the declared output
        # shape is the static answer, as for RESHAPE; the shape input feeds nothing and leaves the graph.
        oshape = list(b.rec(b.op.outputs[0]).shape)
        b.g.meta.setdefault("shape_only_inputs", []).append(b.tensor(b.op.inputs[0]))
    else:
        oshape = b.const_ints(0, "output shape")
    w, x = b.rec(b.input(1, "filter")), b.rec(b.input(2, "input"))
    if len(oshape) != 4:
        raise b.error(f"output shape {oshape} must have 4 values (N, H, W, C)")
    ins = [b.tensor(x.index), b.tensor(w.index), *b.optional(3)]
    b.add("ConvTranspose", ins, [b.out()], layout="NHWC", output_shape=oshape[1:3], activation=b.activation(),
          **_strides_pads(b))


def _pool(ir_op: str) -> Callable[[Builder], None]:
    def handler(b: Builder) -> None:
        b.add(ir_op, [b.tensor(b.input(0, "input"))], [b.out()], layout="NHWC",
              kernel_shape=[int(b.opt("FilterHeight")), int(b.opt("FilterWidth"))],
              activation=b.activation(), **_strides_pads(b))
    return handler


def _fully_connected(b: Builder) -> None:
    x, w = b.rec(b.input(0, "input")), b.rec(b.input(1, "weights"))
    if int(b.opt("WeightsFormat", 0)) != 0:
        raise b.error("shuffled weight formats are not supported")
    if len(w.shape) != 2 or w.shape[1] == 0:
        raise b.error(f"weights {list(w.shape)} must be 2-D (units, depth)")
    units, depth = w.shape
    size = math.prod(x.shape)
    if size % depth:
        raise b.error(f"input {list(x.shape)} does not divide into rows of {depth}")
    a = b.tensor(x.index)
    if len(x.shape) != 2 or x.shape[1] != depth:
        # TFLite flattens the input to (size / depth, depth); the IR's Gemm needs that 2-D view made explicit.
        a2 = b.new_tensor(a + "_2d", (size // depth, depth), x)
        b.add("Reshape", [a], [a2], suffix="_flatten", shape=[-1, depth])
        a = a2
    ins = [a, b.tensor(w.index), *b.optional(2)]
    out = b.out()
    keep = bool(b.opt("KeepNumDims", False)) and len(x.shape) != 2
    if not keep:
        b.add("Gemm", ins, [out], transB=1, activation=b.activation())
        return
    y = b.rec(b.op.outputs[0])
    mid = b.new_tensor(out + "_2d", (size // depth, units), y)
    b.add("Gemm", ins, [mid], transB=1, activation=b.activation())
    b.add("Reshape", [mid], [out], suffix="_keep_dims", shape=[*x.shape[:-1], units])


def _binary(ir_op: str) -> Callable[[Builder], None]:
    def handler(b: Builder) -> None:
        ins = [b.tensor(b.input(0, "first")), b.tensor(b.input(1, "second"))]
        b.add(ir_op, ins, [b.out()], activation=b.activation())
    return handler


def _unary(ir_op: str, **attrs) -> Callable[[Builder], None]:
    def handler(b: Builder) -> None:
        b.single(ir_op, 1, **attrs)
    return handler


def _reshape(b: Builder) -> None:
    if len(b.op.inputs) > 1 and b.op.inputs[1] >= 0 and b.rec(b.op.inputs[1]).data is not None:
        shape = b.const_ints(1, "shape")
    elif b.op.options and b.op.options.get("NewShape"):
        shape = list(b.op.options["NewShape"])
    else:  # a computed shape input: the declared output shape is the only static answer
        shape = list(b.rec(b.op.outputs[0]).shape)
    b.add("Reshape", [b.tensor(b.input(0, "input"))], [b.out()], shape=shape)


def _softmax(b: Builder) -> None:
    b.single("Softmax", 1, axis=-1, beta=float(b.opt("Beta", 1.0)))


def _quantize(b: Builder) -> None:
    y = b.rec(b.op.outputs[0]) if b.op.outputs else None
    if y is None or y.quant is None:
        raise b.error("the output has no quantization parameters")
    if y.dtype not in ("int8", "uint8", "int16", "int4", "int32"):  # int16 -> int32: 16x8 models' QUANTIZE
        raise b.error(f"quantizing to {y.dtype} is not supported")
    b.single("QuantizeLinear", 1, dtype=y.dtype)


def _dequantize(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    if x.dtype == "float16":  # float16 weights stored compactly: a cast, not a dequantization
        b.single("Cast", 1, to="float32")
    elif x.quant is None:
        raise b.error(f"input '{x.name}' has no quantization parameters")
    else:
        b.single("DequantizeLinear", 1)


def _concat(b: Builder) -> None:
    ins = [b.tensor(i) for i in b.op.inputs if i >= 0]
    b.with_activation("Concat", ins, axis=int(b.opt("Axis")))


def _reduce(ir_op: str) -> Callable[[Builder], None]:
    def handler(b: Builder) -> None:
        axes = b.const_ints(1, "axes")
        b.add(ir_op, [b.tensor(b.input(0, "input"))], [b.out()], axes=axes,
              keepdims=int(bool(b.opt("KeepDims", False))))
    return handler


def _paddings(b: Builder, x) -> list[int]:
    """The paddings input, (rank, 2) in the file, as the IR's [begins..., ends...]."""
    p = np.asarray(b.const(1, "paddings")).reshape(-1)
    if p.size != 2 * len(x.shape):
        raise b.error(f"paddings hold {p.size} values, input {list(x.shape)} needs {2 * len(x.shape)}")
    return [int(v) for v in p[0::2]] + [int(v) for v in p[1::2]]


def _pad(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    pads = _paddings(b, x)
    value = 0.0
    if b.op.op == "PADV2" and len(b.op.inputs) > 2 and b.op.inputs[2] >= 0:
        v = b.rec(b.op.inputs[2])
        if v.data is None or v.data.size != 1:
            raise b.error("the constant value input must be a constant scalar")
        value = float((v.quant.dequantize(v.data) if v.quant is not None else v.data).reshape(-1)[0])
    b.add("Pad", [b.tensor(x.index)], [b.out()], pads=pads, value=value)


def _mirror_pad(b: Builder) -> None:
    if int(b.opt("Mode", 0)) != 0:
        raise b.error("SYMMETRIC mirror padding is not supported (REFLECT is)")
    x = b.rec(b.input(0, "input"))
    b.add("Pad", [b.tensor(x.index)], [b.out()], pads=_paddings(b, x), mode="reflect")


def _transpose(b: Builder) -> None:
    b.add("Transpose", [b.tensor(b.input(0, "input"))], [b.out()], perm=b.const_ints(1, "permutation"))


def _squeeze(b: Builder) -> None:
    dims = b.opt("SqueezeDims", [])
    b.add("Squeeze", [b.tensor(b.input(0, "input"))], [b.out()], axes=list(dims) if dims else None)


def _expand_dims(b: Builder) -> None:
    b.add("Unsqueeze", [b.tensor(b.input(0, "input"))], [b.out()], axes=b.const_ints(1, "axis")[:1])


def _strided_slice(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    begin, end = b.const_ints(1, "begin"), b.const_ints(2, "end")
    strides = b.const_ints(3, "strides") if len(b.op.inputs) > 3 else [1] * len(begin)
    if b.opt("EllipsisMask", 0) or b.opt("NewAxisMask", 0) or b.opt("Offset", False):
        raise b.error("ellipsis_mask, new_axis_mask and offset are not supported")
    r = len(x.shape)
    if not len(begin) == len(end) == len(strides) <= r:
        raise b.error(f"begin/end/strides ({len(begin)}, {len(end)}, {len(strides)} values) do not fit rank {r}")
    bm, em, sm = int(b.opt("BeginMask", 0)), int(b.opt("EndMask", 0)), int(b.opt("ShrinkAxisMask", 0))
    starts, ends, steps, shrink = [], [], [], []
    big = 2**31 - 1
    for i, (s, e, st) in enumerate(zip(begin, end, strides)):
        if st == 0:
            raise b.error("a stride of 0 is invalid")
        dim = x.shape[i]
        if sm >> i & 1:  # take the single element at `begin`
            s = s + dim if s < 0 else s
            starts.append(s), ends.append(s + 1), steps.append(1), shrink.append(i)
            continue
        if bm >> i & 1:
            s = 0 if st > 0 else big
        if em >> i & 1:
            e = big if st > 0 else -big
        starts.append(s), ends.append(e), steps.append(st)
    axes = list(range(len(starts)))
    if not shrink:
        b.add("Slice", [b.tensor(x.index)], [b.out()], starts=starts, ends=ends, axes=axes, steps=steps)
        return
    y = b.rec(b.op.outputs[0])
    sliced = tuple(len(range(*slice(s, e, st).indices(x.shape[i]))) for i, (s, e, st) in
                   enumerate(zip(starts, ends, steps))) + x.shape[len(starts):]
    mid = b.new_tensor(b.out() + "_unsqueezed", sliced, y)
    b.add("Slice", [b.tensor(x.index)], [mid], starts=starts, ends=ends, axes=axes, steps=steps)
    b.add("Squeeze", [mid], [b.out()], suffix="_shrink", axes=shrink)


def _slice(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    begin, size = b.const_ints(1, "begin"), b.const_ints(2, "size")
    if len(begin) != len(size) or len(begin) > len(x.shape):
        raise b.error(f"begin {begin} and size {size} do not fit input {list(x.shape)}")
    ends = [x.shape[i] if n == -1 else s + n for i, (s, n) in enumerate(zip(begin, size))]
    b.add("Slice", [b.tensor(x.index)], [b.out()], starts=begin, ends=ends, axes=list(range(len(begin))))


def _resize(mode: str) -> Callable[[Builder], None]:
    def handler(b: Builder) -> None:
        sizes = b.const_ints(1, "size")
        align, half = bool(b.opt("AlignCorners", False)), bool(b.opt("HalfPixelCenters", False))
        if align and half:
            raise b.error("align_corners together with half_pixel_centers is not supported")
        # TFLite's source coordinate rules expressed in ONNX terms (reference kernels, resize_*.h).
        ctm = "align_corners" if align else ("half_pixel" if half else "asymmetric")
        attrs = {"coordinate_transformation_mode": ctm}
        if mode == "nearest":
            attrs["nearest_mode"] = "floor" if ctm == "asymmetric" else "round_prefer_ceil"
        b.add("Resize", [b.tensor(b.input(0, "input"))], [b.out()], layout="NHWC", sizes=sizes, mode=mode,
              **attrs)
    return handler


def _split(b: Builder) -> None:
    axis = b.const_ints(0, "axis")[0]
    x = b.rec(b.input(1, "input"))
    n = len(b.op.outputs)
    r = len(x.shape)
    if not -r <= axis < r or n < 1 or x.shape[axis % r] % n:
        raise b.error(f"cannot split {list(x.shape)} into {n} equal parts along axis {axis}")
    b.add("Split", [b.tensor(x.index)], [b.out(i) for i in range(n)], axis=axis,
          split=[x.shape[axis % r] // n] * n)


def _split_v(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    sizes, axis = b.const_ints(1, "size_splits"), b.const_ints(2, "axis")[0]
    r = len(x.shape)
    if not -r <= axis < r:
        raise b.error(f"axis {axis} out of range for {list(x.shape)}")
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[axis % r] - (sum(sizes) + 1)
    b.add("Split", [b.tensor(x.index)], [b.out(i) for i in range(len(b.op.outputs))], axis=axis, split=sizes)


def _gather(b: Builder) -> None:
    if int(b.opt("BatchDims", 0)):
        raise b.error("batch_dims is not supported")
    b.single("Gather", 2, axis=int(b.opt("Axis", 0)))


def _batch_matmul(b: Builder) -> None:
    if b.opt("AdjX", False) or b.opt("AdjY", False):
        raise b.error("adjoint operands (adj_x / adj_y) are not supported")
    b.single("MatMul", 2)


def _cast(b: Builder) -> None:
    to = b.rec(b.op.outputs[0]).dtype if b.op.outputs else "?"
    if to not in ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"):
        raise b.error(f"casting to {to} is not supported")
    b.single("Cast", 1, to=to)


HANDLERS: dict[str, Callable[[Builder], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool("AveragePool"), "MAX_POOL_2D": _pool("MaxPool"),
    "ADD": _binary("Add"), "SUB": _binary("Sub"), "MUL": _binary("Mul"), "DIV": _binary("Div"),
    "MAXIMUM": lambda b: b.single("Max", 2), "MINIMUM": lambda b: b.single("Min", 2),
    "RESHAPE": _reshape, "SOFTMAX": _softmax, "LOG_SOFTMAX": _unary("LogSoftmax", axis=-1),
    "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "RELU": _unary("Relu"), "RELU6": _unary("Relu6"), "RELU_N1_TO_1": _unary("Clip", min=-1.0, max=1.0),
    "RELU_0_TO_1": _unary("Clip", min=0.0, max=1.0), "LOGISTIC": _unary("Sigmoid"), "TANH": _unary("Tanh"),
    "HARD_SWISH": _unary("HardSwish"),
    "LEAKY_RELU": lambda b: b.single("LeakyRelu", 1, alpha=float(b.opt("Alpha", 0.2))),
    "PRELU": lambda b: b.single("PRelu", 2),
    "GELU": lambda b: b.single("Gelu", 1, approximate="tanh" if b.opt("Approximate", False) else "none"),
    "EXP": _unary("Exp"), "LOG": _unary("Log"), "SQRT": _unary("Sqrt"), "ABS": _unary("Abs"),
    "NEG": _unary("Neg"), "FLOOR": _unary("Floor"), "CEIL": _unary("Ceil"),
    "CONCATENATION": _concat, "MEAN": _reduce("ReduceMean"), "SUM": _reduce("ReduceSum"),
    "REDUCE_MAX": _reduce("ReduceMax"), "REDUCE_MIN": _reduce("ReduceMin"),
    "PAD": _pad, "PADV2": _pad, "MIRROR_PAD": _mirror_pad, "TRANSPOSE": _transpose,
    "STRIDED_SLICE": _strided_slice, "SLICE": _slice, "SQUEEZE": _squeeze, "EXPAND_DIMS": _expand_dims,
    "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"), "RESIZE_BILINEAR": _resize("linear"),
    "SPLIT": _split, "SPLIT_V": _split_v, "GATHER": _gather, "BATCH_MATMUL": _batch_matmul, "CAST": _cast,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": unidirectional_sequence_lstm,
    "SVDF": svdf,
}
SUPPORTED_OPS: list[str] = sorted(HANDLERS)

