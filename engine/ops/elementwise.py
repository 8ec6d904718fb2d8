"""Element-wise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Pow, Max, Min, PRelu."""
from __future__ import annotations

import numpy as np

from engine.ir import FLOAT_DTYPES
from engine.ops.base import (FUSED_ACTIVATION, Cost, OpDef, activation_flops, apply_activation,
                             broadcast_shapes, register)


class _Binary(OpDef):
    inputs = ("A", "B")
    attrs = {**FUSED_ACTIVATION}
    elementwise = "binary"
    inplace = True
    onnx_same = True

    def fn(self, a, b):
        raise NotImplementedError

    def count_params(self, ctx):
        # A constant float operand (a bias add, a scale) is a learned parameter.
        return sum(t.size for t in ctx.ins if t is not None and t.data is not None
                   and (t.dtype in FLOAT_DTYPES or t.quant is not None))

    def infer(self, ctx):
        shape = broadcast_shapes(ctx, ctx.shape(0), ctx.shape(1))
        a, b = ctx.ins[0], ctx.ins[1]
        dtype = a.dtype if a.data is None or b.data is not None else b.dtype
        return [(shape, dtype)]

    def cost(self, ctx):
        n = ctx.outs[0].size
        return Cost(0, n + activation_flops(ctx.attr("activation"), n), self.count_params(ctx))

    def run(self, ctx, xs):
        a, b = xs
        y = self.fn(a, b)
        if np.issubdtype(np.asarray(y).dtype, np.floating):
            y = apply_activation(y.astype(np.float32), ctx.attr("activation"))
        return [np.asarray(y)]


def _binary(op_name: str, fn, doc: str, **traits):
    cls = type(op_name, (_Binary,), {"name": op_name, "doc": doc, "fn": lambda self, a, b: fn(a, b), **traits})
    return register(cls)


_NO_INT8 = "no int8 lowering or C kernel yet"
_binary("Add", np.add, "A + B (TFLite ADD may fuse an activation).", fuses_activation=True)
_binary("Sub", np.subtract, "A - B.", fuses_activation=True)
_binary("Mul", np.multiply, "A * B.", fuses_activation=True)
_binary("Div", lambda a, b: np.divide(a, b) if np.issubdtype(np.asarray(a).dtype, np.floating)
        else np.trunc(np.divide(a, b)).astype(np.asarray(a).dtype), "A / B (integer division truncates).",
        float_only=_NO_INT8)
_binary("Pow", lambda a, b: np.power(a.astype(np.float32), b.astype(np.float32)), "A ** B.", float_only=_NO_INT8)
# Max / Min select one of their inputs' values: on one int8 grid they move integers.
_binary("Max", np.maximum, "Element-wise maximum.", same_grid=True, moves_values=True)
_binary("Min", np.minimum, "Element-wise minimum.", same_grid=True, moves_values=True)


@register
class PRelu(_Binary):
    name = "PRelu"
    inputs = ("X", "slope")
    attrs = {}
    param_inputs = (1,)
    float_only = _NO_INT8
    doc = "x if x >= 0 else slope * x; slope broadcasts (usually one per channel)."

    def count_params(self, ctx):
        return OpDef.count_params(self, ctx)

    def cost(self, ctx):
        return Cost(0, 2 * ctx.outs[0].size, self.count_params(ctx))

    def run(self, ctx, xs):
        x, slope = xs
        return [np.where(x >= 0, x, x * slope).astype(np.float32)]
