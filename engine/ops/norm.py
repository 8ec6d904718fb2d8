"""Normalizations: BatchNormalization (inference form) and LayerNormalization."""
from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, float_out, norm_axis, register
from engine.ops.conv import LAYOUT, split_layout


@register
class BatchNormalization(OpDef):
    name = "BatchNormalization"
    inputs = ("X", "scale", "B", "input_mean", "input_var")
    attrs = {"epsilon": Attr("float", 1e-5), "momentum": Attr("float", 0.9), **LAYOUT}
    param_inputs = (1, 2, 3, 4)
    inplace = onnx_same = True
    float_only = "folded into the preceding Conv / Gemm before int8 (passes/fold.py); no standalone int8 kernel"
    doc = "Inference form: scale * (x - mean) / sqrt(var + epsilon) + B, per channel."

    def infer(self, ctx):
        n, c, _ = split_layout(ctx.shape(0), ctx.attr("layout")) if len(ctx.shape(0)) > 1 else (1, ctx.shape(0)[0], ())
        for i in range(1, 5):
            if ctx.shape(i) != (c,):
                raise ctx.error(f"{self.inputs[i]} {list(ctx.shape(i))} must have shape [{c}] (one per channel)")
        return [(ctx.shape(0), float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, 2 * ctx.outs[0].size, self.count_params(ctx))

    def run(self, ctx, xs):
        x, scale, b, mean, var = (np.asarray(v, dtype=np.float32) for v in xs)
        shape = [1] * x.ndim
        shape[1 if ctx.attr("layout") == "NCHW" else -1] = -1
        k = scale / np.sqrt(var + np.float32(ctx.attr("epsilon")))
        return [((x - mean.reshape(shape)) * k.reshape(shape) + b.reshape(shape)).astype(np.float32)]


@register
class LayerNormalization(OpDef):
    name = "LayerNormalization"
    inputs = ("X", "Scale", "B?")
    attrs = {"axis": Attr("int", -1), "epsilon": Attr("float", 1e-5)}
    param_inputs = (1, 2)
    float_only = "no int8 lowering or C kernel yet"
    doc = "Normalizes over the dims from `axis` on, then scale and shift."

    def infer(self, ctx):
        x = ctx.shape(0)
        axis = norm_axis(ctx.attr("axis"), len(x), ctx)
        norm_shape = x[axis:]
        for i in (1, 2):
            if ctx.has(i):
                try:
                    np.broadcast_shapes(ctx.shape(i), norm_shape)
                except ValueError:
                    raise ctx.error(f"{self.inputs[i]} {list(ctx.shape(i))} does not match normalized dims {list(norm_shape)}")
        return [(x, float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, 8 * ctx.outs[0].size, self.count_params(ctx))

    def run(self, ctx, xs):
        x = xs[0].astype(np.float64)
        axis = norm_axis(ctx.attr("axis"), x.ndim)
        axes = tuple(range(axis, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(var + ctx.attr("epsilon")) * xs[1]
        if len(xs) > 2 and xs[2] is not None:
            y = y + xs[2]
        return [y.astype(np.float32)]
