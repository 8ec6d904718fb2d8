"""PyTorch planners for spatial ops (convolution, pooling, normalization, resize) and matrix products."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.exporters.torch_plan import Planner, to_channels_first, to_channels_last, torch_act, torch_pads
from engine.ops.base import norm_axis
from engine.registry import registrar

NN_PLANNERS: dict[str, Planner] = {}
plans = registrar(NN_PLANNERS)


# ---- spatial ops -----------------------------------------------------------------------------------

@plans("Conv")
def _conv(ctx):
    n, c, m, g, k, s, d, pads, out, layout = ctx.op.geometry(ctx)
    r = len(k)
    conv = F.conv1d if r == 1 else F.conv2d
    sym = all(pads[i] == pads[i + r] for i in range(r))
    act = ctx.attr("activation")

    def step(xs, mod):
        x, w, b = to_channels_first(xs[0], layout), xs[1], xs[2] if len(xs) > 2 else None
        if layout == "NHWC":
            w = w.movedim(-1, 1)  # (M, kH, kW, C/g) -> (M, C/g, kH, kW)
        if not sym:
            x = F.pad(x, torch_pads(pads, r))
        y = conv(x, w, b, tuple(s), tuple(pads[:r]) if sym else 0, tuple(d), g)
        return [to_channels_last(torch_act(y, act), layout)]
    return step


@plans("ConvTranspose")
def _conv_transpose(ctx):
    n, c, m, g, k, s, d, pads, op, out, layout = ctx.op.geometry(ctx)
    act = ctx.attr("activation")

    def step(xs, mod):
        x, w, b = to_channels_first(xs[0], layout), xs[1], xs[2] if len(xs) > 2 else None
        if layout == "NHWC":
            w = w.permute(3, 0, 1, 2)  # (M, kH, kW, C) -> (C, M, kH, kW)
        # Full (uncropped) transposed conv, then output_padding zeros and the pads crop, as the reference.
        y = F.conv_transpose2d(x, w, None, tuple(s), 0, 0, g, tuple(d))
        y = F.pad(y, [0, op[1], 0, op[0]])
        y = y[:, :, pads[0]: pads[0] + out[0], pads[1]: pads[1] + out[1]]
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return [to_channels_last(torch_act(y, act), layout)]
    return step


def _window_geometry(ctx):
    n, c, spatial, k, s, d, pads, out, layout = ctx.op.geometry(ctx)
    r = len(k)
    # Explicit pads, plus extra right cells so ceil-mode windows fit (the reference's `windows`).
    width = list(pads)
    for i in range(r):
        need = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1
        have = spatial[i] + pads[i] + pads[i + r]
        width[i + r] += max(0, need - have)
    return spatial, k, s, d, pads, width, out, layout, r


@plans("MaxPool")
def _max_pool(ctx):
    spatial, k, s, d, pads, width, out, layout, r = _window_geometry(ctx)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[r - 1]
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    act = ctx.attr("activation")

    def step(xs, mod):
        x = F.pad(to_channels_first(xs[0], layout), torch_pads(width, r), value=float("-inf"))
        y = pool(x, tuple(k), tuple(s), 0, tuple(d))[crop]
        return [to_channels_last(torch_act(y, act), layout)]
    return step


@plans("AveragePool")
def _avg_pool(ctx):
    spatial, k, s, d, pads, width, out, layout, r = _window_geometry(ctx)
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[r - 1]
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    # Divisor per output cell: cells of the input, plus explicit pads when count_include_pad (ONNX rule:
    # cells added only for ceil_mode never count).
    ones = torch.ones((1, 1, *spatial))
    if ctx.attr("count_include_pad"):
        ones = F.pad(ones, torch_pads(pads, r), value=1.0)
        ones = F.pad(ones, torch_pads([0] * r + [width[i + r] - pads[i + r] for i in range(r)], r))
    else:
        ones = F.pad(ones, torch_pads(width, r))
    area = float(np.prod(k))
    count = torch.clamp(pool(ones, tuple(k), tuple(s), 0) * area, min=1.0)[crop]
    act = ctx.attr("activation")

    def step(xs, mod):
        x = F.pad(to_channels_first(xs[0], layout), torch_pads(width, r))
        y = pool(x, tuple(k), tuple(s), 0)[crop] * area / count.to(x.device)
        return [to_channels_last(torch_act(y, act), layout)]
    return step


@plans("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx):
    layout = ctx.attr("layout")
    is_max = ctx.node.op == "GlobalMaxPool"

    def step(xs, mod):
        x = to_channels_first(xs[0], layout)
        dims = tuple(range(2, x.dim()))
        y = torch.amax(x, dim=dims, keepdim=True) if is_max else x.mean(dim=dims, keepdim=True)
        return [to_channels_last(y, layout)]
    return step


@plans("BatchNormalization")
def _batch_norm(ctx):
    layout = ctx.attr("layout")
    eps = float(ctx.attr("epsilon"))
    # ONNX: running = running * momentum + batch * (1 - momentum); torch weighs the batch by `momentum`.
    momentum = 1.0 - float(ctx.attr("momentum"))

    def step(xs, mod):
        x, scale, b, mean, var = xs
        if x.dim() == 1:  # a single sample of C features (the reference's rank-1 case)
            return [(x - mean) / torch.sqrt(var + eps) * scale + b]
        x = to_channels_first(x, layout)
        y = F.batch_norm(x, mean, var, scale, b, training=mod.training, momentum=momentum, eps=eps)
        return [to_channels_last(y, layout)]
    return step


@plans("LayerNormalization")
def _layer_norm(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    eps = float(ctx.attr("epsilon"))
    dims = tuple(range(axis, len(ctx.shape(0))))

    def step(xs, mod):
        x = xs[0]
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        y = (x - mean) / torch.sqrt(var + eps) * xs[1]
        if len(xs) > 2 and xs[2] is not None:
            y = y + xs[2]
        return [y]
    return step


@plans("LRN")
def _lrn(ctx):
    # PyTorch's window matches ONNX's for the odd sizes the op allows (size // 2 channels on either side).
    size, alpha, beta, k = ctx.attr("size"), float(ctx.attr("alpha")), float(ctx.attr("beta")), float(ctx.attr("bias"))
    return lambda xs, mod: [F.local_response_norm(xs[0], size, alpha=alpha, beta=beta, k=k)]


@plans("Resize")
def _resize(ctx):
    n, c, spatial, out, sc, layout = ctx.op.geometry(ctx)
    mode = ctx.attr("mode")
    ctm = ctx.attr("coordinate_transformation_mode")
    exact = all(abs(o - i * f) < 1e-6 for i, o, f in zip(spatial, out, sc))
    interp = None
    # F.interpolate reproduces these cases exactly when the scale is out/in (else the index math below).
    if exact and len(spatial) in (1, 2):
        if mode == "nearest" and ctm == "asymmetric" and ctx.attr("nearest_mode") == "floor":
            interp = dict(mode="nearest")
        elif mode == "linear" and ctm == "align_corners":
            interp = dict(mode=("linear", "bilinear")[len(spatial) - 1], align_corners=True)
        elif mode == "linear" and (ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and min(out) > 1)):
            interp = dict(mode=("linear", "bilinear")[len(spatial) - 1], align_corners=False)
    maps = []
    for ax, (i_size, o_size, f) in enumerate(zip(spatial, out, sc)):
        src = ctx.op.source_coords(ctx, None, i_size, o_size, f)
        if mode == "nearest":
            nm = ctx.attr("nearest_mode")
            idx = {"floor": np.floor(src), "ceil": np.ceil(src), "round_prefer_ceil": np.floor(src + 0.5)}.get(
                nm, np.ceil(src - 0.5))
            maps.append((torch.from_numpy(np.clip(idx, 0, i_size - 1).astype(np.int64)), None, None))
        else:
            src = np.clip(src, 0, i_size - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, i_size - 1)
            maps.append((torch.from_numpy(lo), torch.from_numpy(hi), torch.from_numpy((src - lo).astype(np.float32))))

    def step(xs, mod):
        y = to_channels_first(xs[0], layout)
        if interp is not None:
            return [to_channels_last(F.interpolate(y, size=tuple(out), **interp), layout)]
        for ax, (lo, hi, w) in enumerate(maps):
            axis = 2 + ax
            lo = lo.to(y.device)
            if hi is None:
                y = y.index_select(axis, lo)
            else:
                shape = [1] * y.dim()
                shape[axis] = -1
                w = w.to(y.device).reshape(shape)
                y = y.index_select(axis, lo) * (1 - w) + y.index_select(axis, hi.to(y.device)) * w
        return [to_channels_last(y, layout)]
    return step


# ---- matrix products -------------------------------------------------------------------------------

@plans("Gemm")
def _gemm(ctx):
    alpha, beta = float(ctx.attr("alpha")), float(ctx.attr("beta"))
    ta, tb, act = ctx.attr("transA"), ctx.attr("transB"), ctx.attr("activation")

    def step(xs, mod):
        a, b = xs[0], xs[1]
        y = (a.t() if ta else a) @ (b.t() if tb else b)
        if alpha != 1.0:
            y = y * alpha
        if len(xs) > 2 and xs[2] is not None:
            y = y + (xs[2] * beta if beta != 1.0 else xs[2])
        return [torch_act(y, act)]
    return step


@plans("MatMul")
def _matmul(ctx):
    return lambda xs, mod: [torch.matmul(xs[0], xs[1])]


@plans("SVDF")
def _svdf(ctx):
    """The state is the module's buffer of the variable tensor: each forward reads it and stores the new value
    (detached), as tflite-micro keeps its variable tensors between invokes; from_torch_weights leaves it out."""
    from engine.ops.svdf import svdf_dims

    b, _, f, units, mem, rank = svdf_dims(ctx)
    act, state_name = ctx.attr("activation"), ctx.node.inputs[4]

    def step(xs, mod):
        x, wf, wt, bias, state = xs
        new = torch.cat([state.reshape(b, f, mem)[:, :, 1:], (x @ wf.T).unsqueeze(-1)], dim=-1)
        y = torch.einsum("bfm,fm->bf", new, wt).reshape(b, units, rank).sum(dim=-1)
        if bias is not None:
            y = y + bias
        with torch.no_grad():
            mod.tensor(state_name).copy_(new.reshape(b, f * mem))
        return [torch_act(y, act)]
    return step


# Families in their own modules register their planners on import (after `plans` exists).
from engine.exporters import torch_ops_recurrent  # noqa: E402,F401
