"""SVDF: the stateful rank-decomposed filter of TFLite (keyword spotting models), as tflite-micro runs it.

Inputs, as TFLite orders them: X (batch, input), weights_feature (filters, input), weights_time (filters,
memory), bias (units,) optional, state (batch, filters * memory) — a variable tensor (engine/state.py).
filters = units * rank. One invocation:
    state  <- state shifted left by one (per filter, the oldest value drops out)
    state[:, f, memory-1] = X @ weights_feature[f]            (the newest activation of every filter)
    y[b, u] = activation(bias[u] + sum_{r, m} weights_time[u*rank + r, m] * state[b, u*rank + r, m])
"""
from __future__ import annotations

import numpy as np

from engine.ops.base import (FUSED_ACTIVATION, Attr, Cost, OpDef, activation_flops, apply_activation, float_out,
                             register)


def svdf_dims(ctx) -> tuple[int, int, int, int, int, int]:
    """(batch, input, filters, units, memory, rank), checked as tflite-micro's PrepareSvdf checks them."""
    x, wf, wt, st = ctx.shape(0), ctx.shape(1), ctx.shape(2), ctx.shape(4)
    rank = int(ctx.attr("rank"))
    if len(x) != 2 or len(wf) != 2 or len(wt) != 2 or len(st) != 2:
        raise ctx.error(f"X {list(x)}, weights_feature {list(wf)}, weights_time {list(wt)} and state {list(st)} "
                        "must all be 2-D")
    b, n_in = x
    f, mem = wf[0], wt[1]
    if rank < 1 or f % rank:
        raise ctx.error(f"attribute 'rank' {rank} must be >= 1 and divide the {f} filters")
    if wf[1] != n_in or wt[0] != f or tuple(st) != (b, f * mem) or mem < 1:
        raise ctx.error(f"shapes do not fit: X {list(x)}, weights_feature {list(wf)} (filters, input), weights_time "
                        f"{list(wt)} (filters, memory), state {list(st)} (batch, filters*memory)")
    if ctx.has(3) and tuple(ctx.shape(3)) != (f // rank,):
        raise ctx.error(f"bias {list(ctx.shape(3))} must have the {f // rank} units")
    return b, n_in, f, f // rank, mem, rank


@register
class SVDF(OpDef):
    name = "SVDF"
    inputs = ("X", "weights_feature", "weights_time", "bias?", "state")
    attrs = {"rank": Attr("int", required=True), **FUSED_ACTIVATION}
    param_inputs = (1, 2, 3)
    state_inputs = (4,)
    cost_kind = "fc"
    doc = ("Singular value decomposition filter (TFLite SVDF): a feature projection whose outputs enter a "
           "per-filter memory of past steps (state), filtered in time; keeps its state between invocations.")

    def infer(self, ctx):
        b, _, _, units, _, _ = svdf_dims(ctx)
        return [((b, units), float_out(ctx))]

    def cost(self, ctx):
        """MACs: the feature projection (batch * filters * input) plus the time filter (batch * filters *
        memory); the rank sum and the bias are additions (FLOPs)."""
        b, n_in, f, units, mem, _ = svdf_dims(ctx)
        macs = b * f * (n_in + mem)
        flops = 2 * macs + b * f + (b * units if ctx.has(3) else 0) + activation_flops(ctx.attr("activation"),
                                                                                       b * units)
        return Cost(macs, flops, self.count_params(ctx))

    def run(self, ctx, xs):
        b, _, f, units, mem, rank = svdf_dims(ctx)
        x, wf, wt = (np.asarray(v, dtype=np.float32) for v in xs[:3])
        state = np.asarray(xs[4], dtype=np.float32).reshape(b, f, mem)
        new = np.empty_like(state)
        new[:, :, :-1] = state[:, :, 1:]
        new[:, :, -1] = x @ wf.T
        y = np.einsum("bfm,fm->bf", new, wt).reshape(b, units, rank).sum(axis=-1)
        if xs[3] is not None:
            y = y + np.asarray(xs[3], dtype=np.float32)
        y = apply_activation(y, ctx.attr("activation")).astype(np.float32)
        return [y, new.reshape(b, f * mem)]
