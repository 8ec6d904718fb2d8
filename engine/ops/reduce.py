"""Reductions over axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin."""
from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, float_out, norm_axis, register


class _Reduce(OpDef):
    attrs = {"axes": Attr("ints", None), "keepdims": Attr("int", 1, (0, 1)),
             "noop_with_empty_axes": Attr("int", 0, (0, 1))}
    fn = None
    cost_kind = "pool"

    def reduced_axes(self, ctx):
        r = len(ctx.shape(0))
        axes = ctx.attr("axes")
        if not axes:
            return () if ctx.attr("noop_with_empty_axes") else tuple(range(r))
        axes = tuple(sorted({norm_axis(a, r, ctx) for a in axes}))
        return axes

    def infer(self, ctx):
        x = ctx.shape(0)
        axes = self.reduced_axes(ctx)
        keep = ctx.attr("keepdims")
        out = tuple((1 if i in axes else d) for i, d in enumerate(x) if keep or i not in axes)
        return [(out, float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, ctx.ins[0].size, 0)

    def run(self, ctx, xs):
        axes = self.reduced_axes(ctx)
        if not axes:
            return [xs[0]]
        y = type(self).fn(xs[0], axis=axes, keepdims=bool(ctx.attr("keepdims")))
        return [np.asarray(y, dtype=xs[0].dtype)]


def _reduce(op_name, fn, doc, **traits):
    return register(type(op_name, (_Reduce,), {"name": op_name, "fn": staticmethod(fn), "doc": doc, **traits}))


_reduce("ReduceMean", lambda x, **k: np.mean(x, dtype=np.float64, **k), "Mean over `axes`.")
_reduce("ReduceSum", lambda x, **k: np.sum(x, dtype=np.float64 if x.dtype.kind == "f" else None, **k), "Sum over `axes`.")
_reduce("ReduceMax", np.max, "Max over `axes`.", same_grid=True, moves_values=True)
_reduce("ReduceMin", np.min, "Min over `axes`.", same_grid=True, moves_values=True)
