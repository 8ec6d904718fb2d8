"""Matrix products: Gemm (fully connected) and MatMul (batched, numpy broadcasting)."""
from __future__ import annotations

import numpy as np

from engine.ops.base import (FUSED_ACTIVATION, Attr, Cost, OpDef, activation_flops, apply_activation,
                             broadcast_shapes, float_out, register)


@register
class Gemm(OpDef):
    name = "Gemm"
    inputs = ("A", "B", "C?")
    weighted = sets_channels = fuses_activation = onnx_same = True
    cost_kind = "fc"
    attrs = {"alpha": Attr("float", 1.0), "beta": Attr("float", 1.0), "transA": Attr("int", 0, (0, 1)),
             "transB": Attr("int", 0, (0, 1)), **FUSED_ACTIVATION}
    param_inputs = (1, 2)
    doc = "Y = alpha * A' @ B' + beta * C; the fully connected layer (TFLite FULLY_CONNECTED is transB=1)."

    def weight_channel_axis(self, node):
        return 0 if node.attrs.get("transB", 0) else 1  # B is (N, K) with transB, else (K, N)

    def _mnk(self, ctx):
        a, b = ctx.shape(0), ctx.shape(1)
        if len(a) != 2 or len(b) != 2:
            raise ctx.error(f"A {list(a)} and B {list(b)} must be 2-D (insert a Flatten before a fully connected layer)")
        m, k = (a[1], a[0]) if ctx.attr("transA") else a
        kb, n = (b[1], b[0]) if ctx.attr("transB") else b
        if k != kb:
            raise ctx.error(f"inner dimensions differ: A {list(a)} and B {list(b)} (transA={ctx.attr('transA')}, "
                            f"transB={ctx.attr('transB')})")
        if ctx.has(2):
            broadcast_shapes(ctx, ctx.shape(2), (m, n))
        return m, n, k

    def infer(self, ctx):
        m, n, _ = self._mnk(ctx)
        return [((m, n), float_out(ctx))]

    def cost(self, ctx):
        m, n, k = self._mnk(ctx)
        macs = m * n * k
        return Cost(macs, 2 * macs + (m * n if ctx.has(2) else 0) + activation_flops(ctx.attr("activation"), m * n),
                    self.count_params(ctx))

    def run(self, ctx, xs):
        a, b = xs[0].astype(np.float32), xs[1].astype(np.float32)
        if ctx.attr("transA"):
            a = a.T
        if ctx.attr("transB"):
            b = b.T
        y = np.float32(ctx.attr("alpha")) * (a @ b)
        if len(xs) > 2 and xs[2] is not None:
            y = y + np.float32(ctx.attr("beta")) * xs[2].astype(np.float32)
        return [apply_activation(y, ctx.attr("activation")).astype(np.float32)]


@register
class MatMul(OpDef):
    name = "MatMul"
    inputs = ("A", "B")
    param_inputs = (1,)
    sets_channels = onnx_same = True
    cost_kind = "fc"
    float_only = "no int8 lowering or C kernel yet (the fuse pass turns a MatMul with constant B into Gemm)"
    doc = "numpy.matmul semantics: batched, broadcasting, 1-D operands promoted."

    def _shapes(self, ctx):
        a, b = ctx.shape(0), ctx.shape(1)
        if not a or not b:
            raise ctx.error("MatMul operands must have rank >= 1")
        a2 = (1, *a) if len(a) == 1 else a
        b2 = (*b, 1) if len(b) == 1 else b
        if a2[-1] != b2[-2]:
            raise ctx.error(f"inner dimensions differ: A {list(a)} and B {list(b)}")
        batch = broadcast_shapes(ctx, a2[:-2], b2[:-2])
        out = (*batch, a2[-2], b2[-1])
        if len(a) == 1:
            out = out[:-2] + out[-1:]
        if len(b) == 1:
            out = out[:-1]
        return out, a2[-1]

    def infer(self, ctx):
        out, _ = self._shapes(ctx)
        return [(out, float_out(ctx))]

    def cost(self, ctx):
        out, k = self._shapes(ctx)
        macs = int(np.prod(out, dtype=np.int64)) * k
        return Cost(macs, 2 * macs, self.count_params(ctx))

    def run(self, ctx, xs):
        return [np.matmul(xs[0].astype(np.float32), xs[1].astype(np.float32))]
