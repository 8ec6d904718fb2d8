"""PyTorch planners for element-wise ops, quantization and data movement (reshape, transpose, concatenation,
slicing, gathering, padding)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.exporters.torch_plan import TORCH_DTYPE, Planner, fake_quant, torch_act, torch_pads
from engine.ops.base import norm_axis
from engine.registry import registrar

TENSOR_PLANNERS: dict[str, Planner] = {}
plans = registrar(TENSOR_PLANNERS)


# ---- element-wise ----------------------------------------------------------------------------------

def _int_div(a, b):
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": _int_div,
           "Pow": lambda a, b: torch.pow(a.float(), b.float()), "Max": torch.maximum, "Min": torch.minimum,
           "PRelu": lambda x, slope: torch.where(x >= 0, x, x * slope)}


@plans(*BINARY)
def _binary(ctx):
    fn = BINARY[ctx.node.op]
    act = ctx.attr("activation") if "activation" in ctx.op.attrs else "none"

    def step(xs, mod):
        y = fn(xs[0], xs[1])
        return [torch_act(y, act) if y.is_floating_point() else y]
    return step


def _clip(ctx):
    lo, hi = float(ctx.attr("min")), float(ctx.attr("max"))
    return lambda x: torch.clamp(x, lo, hi)


_UNARY = {
    "Relu": lambda c: F.relu,
    "Relu6": lambda c: lambda x: torch.clamp(x, 0.0, 6.0),
    "Clip": _clip,
    "LeakyRelu": lambda c: lambda x: torch.where(x >= 0, x, x * float(c.attr("alpha"))),
    "Sigmoid": lambda c: torch.sigmoid,
    "Tanh": lambda c: torch.tanh,
    "HardSigmoid": lambda c: lambda x: torch.clamp(float(c.attr("alpha")) * x + float(c.attr("beta")), 0.0, 1.0),
    "HardSwish": lambda c: F.hardswish,
    "Gelu": lambda c: lambda x: F.gelu(x, approximate=c.attr("approximate")),
    "Erf": lambda c: torch.erf,
    "Exp": lambda c: torch.exp,
    "Log": lambda c: torch.log,
    "Sqrt": lambda c: torch.sqrt,
    "Neg": lambda c: torch.neg,
    "Abs": lambda c: torch.abs,
    "Reciprocal": lambda c: torch.reciprocal,
    "Floor": lambda c: torch.floor,
    "Ceil": lambda c: torch.ceil,
    "Identity": lambda c: lambda x: x,
    "Cast": lambda c: lambda x: x.to(TORCH_DTYPE[c.attr("to")]),
}


@plans(*_UNARY)
def _unary(ctx):
    fn = _UNARY[ctx.node.op](ctx)
    return lambda xs, mod: [fn(xs[0])]


@plans("Dropout")
def _dropout(ctx):
    ratio = float(ctx.const(1).reshape(())) if ctx.has(1) and ctx.ins[1].data is not None else float(ctx.attr("ratio"))
    return lambda xs, mod: [F.dropout(xs[0], ratio, training=mod.training)]


@plans("Softmax", "LogSoftmax")
def _softmax(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    beta = float(ctx.attr("beta"))
    fn = F.softmax if ctx.node.op == "Softmax" else F.log_softmax
    return lambda xs, mod: [fn(xs[0] * beta if beta != 1.0 else xs[0], dim=axis)]


@plans("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(ctx):
    axes = ctx.op.reduced_axes(ctx)
    keep = bool(ctx.attr("keepdims"))
    fn = {"ReduceMean": torch.mean, "ReduceSum": torch.sum, "ReduceMax": torch.amax,
          "ReduceMin": torch.amin}[ctx.node.op]
    if not axes:
        return lambda xs, mod: [xs[0]]
    return lambda xs, mod: [fn(xs[0], dim=axes, keepdim=keep)]


# ---- quantization ----------------------------------------------------------------------------------

@plans("QuantizeLinear")
def _quantize(ctx):
    out = ctx.outs[0]
    if out.quant is None:
        raise ctx.error(f"output '{out.name}' has no quantization parameters")
    return lambda xs, mod: [fake_quant(xs[0], out.quant, out.dtype)]


@plans("DequantizeLinear")
def _dequantize(ctx):
    # Values are carried as real numbers already (integer constants were dequantized at construction).
    return lambda xs, mod: [xs[0].float()]


# ---- data movement ---------------------------------------------------------------------------------

@plans("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _view(ctx):
    shape = tuple(ctx.outs[0].shape)
    return lambda xs, mod: [xs[0].reshape(shape)]


@plans("Transpose")
def _transpose(ctx):
    perm = ctx.op.permutation(ctx)
    return lambda xs, mod: [xs[0].permute(*perm)]


@plans("Concat")
def _concat(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    return lambda xs, mod: [torch.cat(xs, dim=axis)]


@plans("Split")
def _split(ctx):
    axis, sizes = ctx.op.split_sizes(ctx)
    return lambda xs, mod: list(torch.split(xs[0], sizes, dim=axis))


@plans("Slice")
def _slice(ctx):
    sl = ctx.op.slices(ctx)
    # torch slicing has no negative steps: those axes become an index_select with precomputed indices.
    picks = []
    for axis, (s, dim) in enumerate(zip(sl, ctx.shape(0))):
        if s.step is not None and s.step < 0:
            picks.append((axis, torch.arange(*s.indices(dim), dtype=torch.int64)))
    pos = tuple(slice(None) if s.step is not None and s.step < 0 else s for s in sl)

    def step(xs, mod):
        y = xs[0][pos]
        for axis, idx in picks:
            y = y.index_select(axis, idx.to(y.device))
        return [y]
    return step


@plans("Gather")
def _gather(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    out_shape = tuple(ctx.outs[0].shape)

    def step(xs, mod):
        x, idx = xs[0], xs[1].long()
        dim = x.shape[axis]
        idx = torch.where(idx < 0, idx + dim, idx)
        return [x.index_select(axis, idx.reshape(-1)).reshape(out_shape)]
    return step


@plans("Pad")
def _pad(ctx):
    pads, mode, value = ctx.attr("pads"), ctx.attr("mode"), float(ctx.attr("value"))
    shape = ctx.shape(0)
    r = len(shape)
    grow = [max(p, 0) for p in pads]
    crop = tuple(slice(-min(pads[i], 0), shape[i] + grow[i] + grow[i + r] + min(pads[i + r], 0)) for i in range(r))
    # reflect / edge: the source index of every padded cell is numpy's own np.pad of an arange.
    maps = [(i, torch.from_numpy(np.pad(np.arange(shape[i]), (grow[i], grow[i + r]), mode=mode)))
            for i in range(r) if mode != "constant" and (grow[i] or grow[i + r])]

    def step(xs, mod):
        x = xs[0]
        if mode == "constant":
            y = F.pad(x, torch_pads(grow, r), value=value) if any(grow) else x
        else:
            y = x
            for axis, idx in maps:
                y = y.index_select(axis, idx.to(y.device))
        return [y[crop]]
    return step
