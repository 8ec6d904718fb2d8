"""Spatial filters: Conv (1-D and 2-D, groups, depthwise) and ConvTranspose (2-D).

Weights follow the node's layout:  NCHW -> W (M, C/group, kH, kW)  (ONNX)
                                   NHWC -> W (M, kH, kW, C/group)  (TFLite CONV_2D; depthwise is
                                   imported as group = C with W (C*mult, kH, kW, 1))
1-D convs drop the H axis: NCW / NWC with W (M, C/g, kW) or (M, kW, C/g).
The reference computes in NCHW; NHWC inputs are transposed in and out.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.ops.base import (FUSED_ACTIVATION, Attr, Cost, OpContext, OpDef, activation_flops,
                             apply_activation, float_out, register)

LAYOUT = {"layout": Attr("str", "NCHW", ("NCHW", "NHWC"))}
PAD_ATTRS = {
    "auto_pad": Attr("str", "NOTSET", ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")),
    "pads": Attr("ints", None),
    "strides": Attr("ints", None),
    "dilations": Attr("ints", None),
    "kernel_shape": Attr("ints", None),
}


def to_channels_first(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "NCHW" else np.moveaxis(x, -1, 1)


def from_channels_first(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "NCHW" else np.moveaxis(x, 1, -1)


def split_layout(shape: tuple[int, ...], layout: str) -> tuple[int, int, tuple[int, ...]]:
    """(N, C, spatial dims) of an activation shape in either layout."""
    if layout == "NCHW":
        return shape[0], shape[1], tuple(shape[2:])
    return shape[0], shape[-1], tuple(shape[1:-1])


def join_layout(n: int, c: int, spatial: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return (n, c, *spatial) if layout == "NCHW" else (n, *spatial, c)


def resolve_pads(ctx: OpContext, spatial: tuple[int, ...], kernel: tuple[int, ...],
                 strides: tuple[int, ...], dilations: tuple[int, ...]) -> list[int]:
    """Explicit ONNX-style pads [b1, b2, ..., e1, e2, ...] for any auto_pad setting."""
    auto = ctx.attr("auto_pad")
    r = len(spatial)
    if auto == "VALID":
        return [0] * (2 * r)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(r):
            out = math.ceil(spatial[i] / strides[i])
            eff_k = (kernel[i] - 1) * dilations[i] + 1
            total = max(0, (out - 1) * strides[i] + eff_k - spatial[i])
            small, big = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        return begins + ends
    pads = ctx.attr("pads")
    if pads is None:
        return [0] * (2 * r)
    if len(pads) != 2 * r or any(p < 0 for p in pads):
        raise ctx.error(f"pads {list(pads)} must be {2 * r} non-negative values")
    return list(pads)


def spatial_params(ctx: OpContext, r: int, kernel: tuple[int, ...] | None = None):
    k = tuple(ctx.attr("kernel_shape") or kernel or ())
    if len(k) != r:
        raise ctx.error(f"kernel_shape {list(k)} does not match {r} spatial dims")
    if min(k, default=1) < 1:
        raise ctx.error(f"kernel_shape {list(k)} must be positive")
    s = tuple(ctx.attr("strides") or [1] * r)
    d = tuple(ctx.attr("dilations") or [1] * r) if "dilations" in ctx.op.attrs else (1,) * r
    if len(s) != r or len(d) != r or min(s) < 1 or min(d) < 1:
        raise ctx.error(f"strides {list(s)} / dilations {list(d)} must be {r} positive values")
    return k, s, d


def out_size(ctx, size, k, s, d, pb, pe, ceil_mode=False):
    eff = (k - 1) * d + 1
    span = size + pb + pe - eff
    if span < 0:
        raise ctx.error(f"kernel {k} (dilation {d}) is larger than the padded input {size + pb + pe}")
    o = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= size + pb:  # last window must start inside input or left pad
        o -= 1
    return o


def windows(x: np.ndarray, kernel, strides, dilations, pads, out_spatial, pad_value=0.0):
    """(N, C, *out, *k) strided view of x (N, C, *spatial) padded with `pad_value`."""
    r = len(kernel)
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in range(r)]
    # Extra right padding so ceil-mode windows never read past the end.
    for i in range(r):
        need = (out_spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        have = x.shape[2 + i] + pads[i] + pads[i + r]
        if need > have:
            width[2 + i] = (width[2 + i][0], width[2 + i][1] + need - have)
    xp = np.pad(x, width, constant_values=pad_value) if any(w != (0, 0) for w in width) else x
    eff = [(kernel[i] - 1) * dilations[i] + 1 for i in range(r)]
    v = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + r)))
    sl = [slice(None), slice(None)]
    sl += [slice(0, (out_spatial[i] - 1) * strides[i] + 1, strides[i]) for i in range(r)]
    sl += [slice(None, None, dilations[i]) for i in range(r)]
    return v[tuple(sl)]


@register
class Conv(OpDef):
    name = "Conv"
    inputs = ("X", "W", "B?")
    attrs = {**PAD_ATTRS, "group": Attr("int", 1), **LAYOUT, **FUSED_ACTIVATION}
    param_inputs = (1, 2)
    weighted = sets_channels = fuses_activation = onnx_same = True
    cost_kind = "conv"
    doc = "N-d convolution (1-D and 2-D), grouped and depthwise, optional fused activation."

    def weight_channel_axis(self, node):
        return 0  # (M, C/group, k...) and NHWC's (M, k..., C/group)

    def cost_kind_of(self, ctx: OpContext) -> str:
        """depthwise (one filter per input channel), pointwise (1x1, ungrouped) or conv."""
        layout = ctx.attr("layout")
        x, w = ctx.shape(0), ctx.shape(1)
        cin, group = (x[1] if layout == "NCHW" else x[-1]), int(ctx.attr("group"))
        kshape = w[2:] if layout == "NCHW" else w[1:-1]
        taps = int(np.prod(kshape)) if len(kshape) else 1
        if group == cin and cin > 1:
            return "depthwise"
        return "pointwise" if taps == 1 and group == 1 else "conv"

    def geometry(self, ctx: OpContext):
        layout = ctx.attr("layout")
        x, w = ctx.shape(0), ctx.shape(1)
        if len(x) not in (3, 4) or len(w) != len(x):
            raise ctx.error(f"expects 1-D or 2-D conv: X {list(x)} and W {list(w)} must both be rank 3 or 4")
        n, c, spatial = split_layout(x, layout)
        m = w[0]
        wk = tuple(w[2:]) if layout == "NCHW" else tuple(w[1:-1])
        wc = w[1] if layout == "NCHW" else w[-1]
        g = ctx.attr("group")
        if g < 1 or c % g or m % g:
            raise ctx.error(f"group {g} must divide input channels {c} and output channels {m}")
        if wc * g != c:
            raise ctx.error(f"W {list(w)} expects {wc * g} input channels, X {list(x)} has {c}")
        if ctx.has(2) and ctx.shape(2) != (m,):
            raise ctx.error(f"bias B {list(ctx.shape(2))} must have shape [{m}]")
        k, s, d = spatial_params(ctx, len(spatial), wk)
        if k != wk:
            raise ctx.error(f"kernel_shape {list(k)} does not match W {list(w)}")
        pads = resolve_pads(ctx, spatial, k, s, d)
        r = len(spatial)
        out = tuple(out_size(ctx, spatial[i], k[i], s[i], d[i], pads[i], pads[i + r]) for i in range(r))
        return n, c, m, g, k, s, d, pads, out, layout

    def infer(self, ctx):
        n, c, m, g, k, s, d, pads, out, layout = self.geometry(ctx)
        return [(join_layout(n, m, out, layout), float_out(ctx))]

    def cost(self, ctx):
        n, c, m, g, k, *_ = self.geometry(ctx)
        out_elems = ctx.outs[0].size
        macs = out_elems * (c // g) * int(np.prod(k))
        flops = 2 * macs + (out_elems if ctx.has(2) else 0) + activation_flops(ctx.attr("activation"), out_elems)
        return Cost(macs, flops, self.count_params(ctx))

    def run(self, ctx, xs):
        n, c, m, g, k, s, d, pads, out, layout = self.geometry(ctx)
        x, w, b = xs[0], xs[1], xs[2] if len(xs) > 2 else None
        x = to_channels_first(x, layout)
        if layout == "NHWC":
            w = np.moveaxis(w, -1, 1)  # (M, kH, kW, C/g) -> (M, C/g, kH, kW)
        v = windows(x.astype(np.float32), k, s, d, pads, out)  # (N, C, *out, *k)
        r = len(k)
        cg, mg = c // g, m // g
        v = v.reshape(n, g, cg, *out, *k)
        wg = w.astype(np.float32).reshape(g, mg, cg, *k)
        sp = "hw"[:r] if r == 2 else "w"
        kk = "ij"[:r]
        y = np.einsum(f"ngc{sp}{kk},gmc{kk}->ngm{sp}", v, wg, optimize=True).reshape(n, m, *out)
        if b is not None:
            y = y + b.astype(np.float32).reshape(1, m, *([1] * r))
        y = apply_activation(y, ctx.attr("activation"))
        return [from_channels_first(y.astype(np.float32), layout)]


@register
class ConvTranspose(OpDef):
    name = "ConvTranspose"
    inputs = ("X", "W", "B?")
    attrs = {**PAD_ATTRS, "group": Attr("int", 1), "output_padding": Attr("ints", None),
             "output_shape": Attr("ints", None), **LAYOUT, **FUSED_ACTIVATION}
    param_inputs = (1, 2)
    sets_channels = fuses_activation = onnx_same = True
    cost_kind = "conv"
    doc = "2-D transposed convolution; W is (C, M/group, kH, kW) in NCHW, (M, kH, kW, C) in NHWC (TFLite)."

    def geometry(self, ctx):
        layout = ctx.attr("layout")
        x, w = ctx.shape(0), ctx.shape(1)
        if len(x) != 4 or len(w) != 4:
            raise ctx.error(f"expects 2-D transposed conv: X {list(x)} and W {list(w)} must be rank 4")
        n, c, spatial = split_layout(x, layout)
        g = ctx.attr("group")
        if layout == "NCHW":
            wc, mg, wk = w[0], w[1], tuple(w[2:])
        else:  # TFLite TRANSPOSE_CONV: (M, kH, kW, C), group 1
            mg, wk, wc = w[0], tuple(w[1:3]), w[3]
        if g < 1 or c % g or wc != (c if layout == "NCHW" else c // g):
            raise ctx.error(f"W {list(w)} does not match {c} input channels with group {g}")
        m = mg * g
        k, s, d = spatial_params(ctx, 2, wk)
        op = list(ctx.attr("output_padding") or [0, 0])
        oshape = ctx.attr("output_shape")
        auto = ctx.attr("auto_pad")
        if oshape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            target = list(oshape[-2:]) if oshape is not None else [spatial[i] * s[i] for i in range(2)]
            pads = [0, 0, 0, 0]
            for i in range(2):
                total = s[i] * (spatial[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - target[i]
                if total < 0:
                    raise ctx.error(f"output_shape {target} is not reachable")
                lo = total // 2 if auto != "SAME_LOWER" else total - total // 2
                pads[i], pads[i + 2] = lo, total - lo
        else:
            pads = resolve_pads(ctx, spatial, k, s, d)
        out = tuple(s[i] * (spatial[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - pads[i] - pads[i + 2]
                    for i in range(2))
        if min(out) < 1:
            raise ctx.error(f"output size {list(out)} is not positive")
        return n, c, m, g, k, s, d, pads, op, out, layout

    def infer(self, ctx):
        n, c, m, g, *_, out, layout = self.geometry(ctx)
        return [(join_layout(n, m, out, layout), float_out(ctx))]

    def cost(self, ctx):
        n, c, m, g, k, *_ = self.geometry(ctx)
        in_elems = ctx.ins[0].size
        macs = in_elems * (m // g) * int(np.prod(k))
        out_elems = ctx.outs[0].size
        flops = 2 * macs + (out_elems if ctx.has(2) else 0) + activation_flops(ctx.attr("activation"), out_elems)
        return Cost(macs, flops, self.count_params(ctx))

    def run(self, ctx, xs):
        n, c, m, g, k, s, d, pads, op, out, layout = self.geometry(ctx)
        x = to_channels_first(xs[0].astype(np.float32), layout)
        w = xs[1].astype(np.float32)
        if layout == "NHWC":
            w = np.transpose(w, (3, 0, 1, 2))  # (M, kH, kW, C) -> (C, M, kH, kW)
        H, W = x.shape[2:]
        full = [s[i] * ((H, W)[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 for i in range(2)]
        y = np.zeros((n, m, *full), dtype=np.float32)
        cg, mg = c // g, m // g
        xg = x.reshape(n, g, cg, H, W)
        wg = w.reshape(g, cg, mg, *k)
        for i in range(k[0]):
            for j in range(k[1]):
                contrib = np.einsum("ngchw,gcm->ngmhw", xg, wg[:, :, :, i, j]).reshape(n, m, H, W)
                y[:, :, i * d[0]: i * d[0] + s[0] * (H - 1) + 1: s[0],
                  j * d[1]: j * d[1] + s[1] * (W - 1) + 1: s[1]] += contrib
        y = y[:, :, pads[0]: pads[0] + out[0], pads[1]: pads[1] + out[1]]
        if len(xs) > 2 and xs[2] is not None:
            y = y + xs[2].astype(np.float32).reshape(1, m, 1, 1)
        y = apply_activation(y, ctx.attr("activation"))
        return [from_channels_first(np.ascontiguousarray(y, dtype=np.float32), layout)]
