"""QuantizeLinear / DequantizeLinear as the IR represents them.

In the IR the quantization parameters live on tensors (`Tensor.quant`): QuantizeLinear's output tensor
carries the target scale/zero point (an int8 or uint8 dtype), DequantizeLinear reads its input's. The
float reference executor carries real values through quantized tensors, so QuantizeLinear rounds to
the output grid (quantize then dequantize) and DequantizeLinear passes the real value on. ONNX QDQ
models and TFLite QUANTIZE/DEQUANTIZE ops both map here.
"""
from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, register


@register
class QuantizeLinear(OpDef):
    name = "QuantizeLinear"
    inplace = prunes_through = quant_boundary = True
    attrs = {"dtype": Attr("str", "int8", ("int8", "uint8", "int16", "int4", "int32"))}
    doc = "float (or another int8 grid) -> integer grid of the output tensor's scale/zero point."

    def infer(self, ctx):
        return [(ctx.shape(0), ctx.attr("dtype"))]

    def cost(self, ctx):
        return Cost(0, 2 * ctx.ins[0].size, 0)

    def run(self, ctx, xs):
        out = ctx.outs[0]
        if out.quant is None:
            raise ctx.error(f"output '{out.name}' has no quantization parameters")
        return [out.quant.dequantize(out.quant.quantize(np.asarray(xs[0], dtype=np.float32), out.dtype))]


@register
class DequantizeLinear(OpDef):
    name = "DequantizeLinear"
    inplace = prunes_through = quant_boundary = True
    float_only = "float output: the int8 reference runs it, the generated C library's outputs stay int8"
    doc = "integer grid of the input tensor -> float32."

    def infer(self, ctx):
        if ctx.ins[0].quant is None:
            raise ctx.error(f"input '{ctx.ins[0].name}' has no quantization parameters")
        return [(ctx.shape(0), "float32")]

    def cost(self, ctx):
        return Cost(0, 2 * ctx.ins[0].size, 0)

    def run(self, ctx, xs):
        x = xs[0]
        if not np.issubdtype(np.asarray(x).dtype, np.floating):  # a raw integer constant
            x = ctx.ins[0].quant.dequantize(x)
        return [np.asarray(x, dtype=np.float32)]
