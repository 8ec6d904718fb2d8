"""Pooling: MaxPool, AveragePool (windowed) and GlobalAveragePool, GlobalMaxPool."""
from __future__ import annotations

import numpy as np

from engine.ops.base import (FUSED_ACTIVATION, Attr, Cost, OpDef, activation_flops, apply_activation,
                             float_out, register)
from engine.ops.conv import (LAYOUT, PAD_ATTRS, from_channels_first, join_layout, out_size, resolve_pads,
                             spatial_params, split_layout, to_channels_first, windows)


class _WindowPool(OpDef):
    """Shared geometry of windowed pooling; subclasses reduce each window."""

    attrs = {**PAD_ATTRS, "ceil_mode": Attr("int", 0, (0, 1)), **LAYOUT, **FUSED_ACTIVATION}
    # int8 pools keep the grid (tflite-micro's pooling requires it) but clamp a fused activation: own kernels.
    same_grid = prunes_through = onnx_same = True
    cost_kind = "pool"

    def geometry(self, ctx):
        layout = ctx.attr("layout")
        x = ctx.shape(0)
        if len(x) < 3:
            raise ctx.error(f"input {list(x)} must have rank >= 3 (N, C, spatial...)")
        n, c, spatial = split_layout(x, layout)
        if ctx.attr("kernel_shape") is None:
            raise ctx.error("attribute 'kernel_shape' is required")
        k, s, d = spatial_params(ctx, len(spatial))
        pads = resolve_pads(ctx, spatial, k, s, d)
        r = len(spatial)
        if any(pads[i] >= k[i] or pads[i + r] >= k[i] for i in range(r)):
            raise ctx.error(f"pads {pads} must be smaller than the kernel {list(k)}")
        out = tuple(out_size(ctx, spatial[i], k[i], s[i], d[i], pads[i], pads[i + r], bool(ctx.attr("ceil_mode")))
                    for i in range(r))
        return n, c, spatial, k, s, d, pads, out, layout

    def infer(self, ctx):
        n, c, _, _, _, _, _, out, layout = self.geometry(ctx)
        return [(join_layout(n, c, out, layout), float_out(ctx))]

    def cost(self, ctx):
        *_, k, s, d, pads, out, layout = self.geometry(ctx)
        n_out = ctx.outs[0].size
        return Cost(0, n_out * int(np.prod(k)) + activation_flops(ctx.attr("activation"), n_out), 0)

    def run(self, ctx, xs):
        n, c, spatial, k, s, d, pads, out, layout = self.geometry(ctx)
        x = to_channels_first(xs[0].astype(np.float32), layout)
        y = self.reduce(ctx, x, k, s, d, pads, out)
        y = apply_activation(y, ctx.attr("activation"))
        return [from_channels_first(np.ascontiguousarray(y, dtype=np.float32), layout)]


@register
class MaxPool(_WindowPool):
    name = "MaxPool"
    attrs = {**_WindowPool.attrs, "storage_order": Attr("int", 0, (0,))}
    doc = "Max over each window; padding never wins."

    def reduce(self, ctx, x, k, s, d, pads, out):
        v = windows(x, k, s, d, pads, out, pad_value=-np.inf)
        r = len(k)
        return v.max(axis=tuple(range(-r, 0)))


@register
class AveragePool(_WindowPool):
    name = "AveragePool"
    attrs = {**{k: v for k, v in _WindowPool.attrs.items() if k != "dilations"},
             "count_include_pad": Attr("int", 0, (0, 1))}
    doc = "Mean over each window; padded cells count only with count_include_pad=1 (TFLite: never)."

    def reduce(self, ctx, x, k, s, d, pads, out):
        r = len(k)
        axes = tuple(range(-r, 0))
        total = windows(x, k, s, d, pads, out).sum(axis=axes, dtype=np.float64)
        ones = np.ones((1, 1, *x.shape[2:]), dtype=np.float32)
        if ctx.attr("count_include_pad"):
            # Cells of the explicit padding count, cells added only by ceil_mode do not (ONNX rule).
            width = [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in range(r)]
            ones = np.pad(ones, width, constant_values=1.0)
            count = windows(ones, k, s, d, [0] * (2 * r), out).sum(axis=axes)
        else:
            count = windows(ones, k, s, d, pads, out).sum(axis=axes)
        return (total / np.maximum(count, 1)).astype(np.float32)


class _GlobalPool(OpDef):
    attrs = {**LAYOUT}
    prunes_through = onnx_same = True
    cost_kind = "pool"

    def infer(self, ctx):
        x = ctx.shape(0)
        if len(x) < 3:
            raise ctx.error(f"input {list(x)} must have rank >= 3 (N, C, spatial...)")
        n, c, spatial = split_layout(x, ctx.attr("layout"))
        return [(join_layout(n, c, (1,) * len(spatial), ctx.attr("layout")), float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, ctx.ins[0].size, 0)

    def run(self, ctx, xs):
        layout = ctx.attr("layout")
        x = to_channels_first(xs[0].astype(np.float32), layout)
        axes = tuple(range(2, x.ndim))
        return [from_channels_first(self.reduce(x, axes).astype(np.float32), layout)]


@register
class GlobalAveragePool(_GlobalPool):
    name = "GlobalAveragePool"
    doc = "Mean over all spatial positions."

    def reduce(self, x, axes):
        return x.mean(axis=axes, keepdims=True, dtype=np.float64)


@register
class GlobalMaxPool(_GlobalPool):
    name = "GlobalMaxPool"
    same_grid = moves_values = True
    doc = "Max over all spatial positions."

    def reduce(self, x, axes):
        return x.max(axis=axes, keepdims=True)
