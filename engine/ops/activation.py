"""Unary element-wise ops (activations and math) and Softmax / LogSoftmax.

Each unary op is one numpy function plus its FLOPs per element; shapes and dtypes pass through.
"""
from __future__ import annotations

import math

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, float_out, norm_axis, register

try:  # scipy is optional; erf is needed for exact Gelu
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy is in requirements
    _erf = np.vectorize(math.erf, otypes=[np.float64])


class _Unary(OpDef):
    flops_per_elem = 1
    elementwise = "unary"
    inplace = True
    prunes_through = True

    def fn(self, ctx, x):
        raise NotImplementedError

    def infer(self, ctx):
        return [(ctx.shape(0), float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, self.flops_per_elem * ctx.outs[0].size, 0)

    def run(self, ctx, xs):
        x = xs[0]
        if np.issubdtype(np.asarray(x).dtype, np.floating):
            x = x.astype(np.float32)
        return [np.asarray(self.fn(ctx, x)).astype(np.asarray(x).dtype)]


def _unary(op_name, fn, doc, attrs=None, flops=1, **traits):
    cls = type(op_name, (_Unary,), {"name": op_name, "doc": doc, "attrs": attrs or {}, "flops_per_elem": flops,
                                    "fn": lambda self, ctx, x: fn(ctx, x), **traits})
    return register(cls)


# int8 has kernels (clamps, lookup tables) for the activations that TFLite-converted models use; the others
# run in float only until someone writes their lowering and C emitter.
_NO_INT8 = "no int8 lowering or C kernel yet"


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


_unary("Relu", lambda c, x: np.maximum(x, 0), "max(x, 0).", onnx_same=True, int8_table=True)
_unary("Relu6", lambda c, x: np.clip(x, 0, 6), "min(max(x, 0), 6) (TFLite RELU6; ONNX exports it as Clip).",
       int8_table=True)
_unary("Clip", lambda c, x: np.clip(x, c.attr("min"), c.attr("max")),
       "min(max(x, min), max).", {"min": Attr("float", -3.4028234663852886e38),
                                  "max": Attr("float", 3.4028234663852886e38)}, int8_table=True)
_unary("LeakyRelu", lambda c, x: np.where(x >= 0, x, x * np.float32(c.attr("alpha"))),
       "x if x >= 0 else alpha * x.", {"alpha": Attr("float", 0.01)}, 2, onnx_same=True, int8_table=True)
_unary("Sigmoid", lambda c, x: _sigmoid(x), "1 / (1 + exp(-x)).", flops=4, onnx_same=True,
       fixed_grid=(1.0 / 256, -128), int8_table=True)
_unary("Tanh", lambda c, x: np.tanh(x), "tanh(x).", flops=4, onnx_same=True, fixed_grid=(1.0 / 128, 0),
       int8_table=True)
_unary("HardSigmoid", lambda c, x: np.clip(c.attr("alpha") * x + c.attr("beta"), 0, 1),
       "max(0, min(1, alpha * x + beta)).", {"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)}, 3,
       onnx_same=True, float_only=_NO_INT8)
_unary("HardSwish", lambda c, x: x * np.clip(x / 6.0 + 0.5, 0, 1), "x * max(0, min(1, x/6 + 1/2)).", flops=4,
       int8_table=True)
_unary("Gelu", lambda c, x: (0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.astype(np.float64) ** 3))))
       if c.attr("approximate") == "tanh" else 0.5 * x * (1 + _erf(x.astype(np.float64) / math.sqrt(2))),
       "x * Phi(x) (approximate='tanh' for the tanh form).", {"approximate": Attr("str", "none", ("none", "tanh"))}, 8,
       float_only=_NO_INT8)
_FLOAT_MATH = dict(onnx_same=True, float_only=_NO_INT8)
_unary("Erf", lambda c, x: _erf(x.astype(np.float64)), "Gauss error function.", flops=8, **_FLOAT_MATH)
_unary("Exp", lambda c, x: np.exp(x), "exp(x).", flops=4, **_FLOAT_MATH)
_unary("Log", lambda c, x: np.log(x), "natural log.", flops=4, **_FLOAT_MATH)
_unary("Sqrt", lambda c, x: np.sqrt(x), "square root.", flops=4, **_FLOAT_MATH)
_unary("Neg", lambda c, x: -x, "-x.", **_FLOAT_MATH)
_unary("Abs", lambda c, x: np.abs(x), "|x|.", **_FLOAT_MATH)
_unary("Reciprocal", lambda c, x: 1.0 / x, "1 / x.", **_FLOAT_MATH)
_unary("Floor", lambda c, x: np.floor(x), "floor(x).", **_FLOAT_MATH)
_unary("Ceil", lambda c, x: np.ceil(x), "ceil(x).", **_FLOAT_MATH)


@register
class Identity(_Unary):
    name = "Identity"
    is_noop = True
    inplace = False  # removed before planning; nothing to write
    same_grid = moves_values = True
    onnx_same = True
    doc = "Passes its input through."

    def fn(self, ctx, x):
        return x


@register
class Dropout(Identity):
    name = "Dropout"
    inputs = ("data", "ratio?", "training_mode?")
    attrs = {"ratio": Attr("float", 0.5), "seed": Attr("int", 0)}
    onnx_same = False  # ONNX Dropout has inputs ratio / training_mode, the IR keeps them as attributes
    doc = "Identity at inference."


@register
class Cast(_Unary):
    name = "Cast"
    attrs = {"to": Attr("str", "float32", ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"))}
    float_only = "no int8 kernel: a cast changes the element type, int8 graphs keep theirs"
    doc = "Converts the element type."

    def infer(self, ctx):
        return [(ctx.shape(0), ctx.attr("to"))]

    def run(self, ctx, xs):
        return [np.asarray(xs[0]).astype(ctx.attr("to"))]


class _SoftmaxBase(OpDef):
    attrs = {"axis": Attr("int", -1), "beta": Attr("float", 1.0)}
    cost_kind = "softmax"
    probabilities = True

    def infer(self, ctx):
        norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
        return [(ctx.shape(0), float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, 5 * ctx.outs[0].size, 0)

    @staticmethod
    def normalize(z: np.ndarray, axis: int) -> np.ndarray:
        raise NotImplementedError

    def run(self, ctx, xs):
        axis = norm_axis(ctx.attr("axis"), xs[0].ndim, ctx)
        z = xs[0].astype(np.float64) * ctx.attr("beta")
        z = z - z.max(axis=axis, keepdims=True)  # shifted: exp never overflows
        return [self.normalize(z, axis).astype(np.float32)]


@register
class Softmax(_SoftmaxBase):
    name = "Softmax"
    fixed_grid = (1.0 / 256, -128)
    doc = "exp(beta*x) normalized along `axis` (ONNX opset >= 13 semantics; TFLite beta)."

    @staticmethod
    def normalize(z, axis):
        e = np.exp(z)
        return e / e.sum(axis=axis, keepdims=True)


@register
class LogSoftmax(_SoftmaxBase):
    name = "LogSoftmax"
    float_only = "no int8 lowering or C kernel yet (int8 models end in Softmax)"
    doc = "log(softmax(x)) along `axis`."

    @staticmethod
    def normalize(z, axis):
        return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
