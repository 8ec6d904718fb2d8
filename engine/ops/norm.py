"""Normalizations: BatchNormalization (inference form), LayerNormalization and LRN."""
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


def lrn_window(size: int) -> tuple[int, int]:
    """Channels before and after c that LRN sums over (ONNX: floor((size-1)/2) and ceil((size-1)/2))."""
    before = (size - 1) // 2
    return before, size - 1 - before


@register
class LRN(OpDef):
    name = "LRN"
    # size is required (ONNX); its 5 (AlexNet, GoogLeNet) only prefills the studio's form
    attrs = {"size": Attr("int", 5, required=True), "alpha": Attr("float", 1e-4), "beta": Attr("float", 0.75),
             "bias": Attr("float", 1.0)}
    onnx_same = True
    cost_kind = "pool"  # a sliding sum over channels: one element per window tap (its MACs)
    float_only = "no int8 lowering or C kernel yet (TFLite has no int8 LOCAL_RESPONSE_NORMALIZATION either)"
    doc = ("Local response normalization across channels (AlexNet, GoogLeNet), ONNX semantics on (N, C, spatial...): "
           "x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta.")

    def infer(self, ctx):
        x = ctx.shape(0)
        if len(x) < 3:
            raise ctx.error(f"input {list(x)} must have rank >= 3 (N, C, spatial...)")
        size = ctx.attr("size")
        if size < 1 or size % 2 == 0:  # an even window is off-centre and runtimes disagree where: onnxruntime refuses it
            raise ctx.error(f"attribute 'size' must be an odd number >= 1, got {size}")
        return [(x, float_out(ctx))]

    def cost(self, ctx):
        """MACs: one multiply-accumulate of x^2 into the square sum per channel of each output's window (the
        window is clipped at the first and last channel); FLOPs: 2 per MAC, plus scale-and-bias, power and
        divide per output element."""
        x = ctx.shape(0)
        c, before, after = x[1], *lrn_window(ctx.attr("size"))
        taps = sum(min(c - 1, k + after) - max(0, k - before) + 1 for k in range(c))
        macs = taps * (int(np.prod(x)) // c)
        return Cost(macs, 2 * macs + 3 * ctx.outs[0].size, 0)

    def run(self, ctx, xs):
        x = np.asarray(xs[0], dtype=np.float64)
        size = ctx.attr("size")
        before, after = lrn_window(size)
        sq = np.pad(x * x, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
        cum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
        window_sum = cum[:, size:] - cum[:, :-size]  # (N, C, ...): sum of x^2 over each channel's window
        y = x / (ctx.attr("bias") + ctx.attr("alpha") / size * window_sum) ** ctx.attr("beta")
        return [y.astype(np.float32)]
