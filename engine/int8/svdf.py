"""Integer SVDF, as tflite-micro's EvalIntegerSvdfReference computes it (kernels/svdf_common.cc).

int8 input, output and weights_feature; int16 (or int8) weights_time and state; int32 bias whose scale is
state_scale * weights_time_scale. One record (SvdfParams) feeds the numpy kernel here and the C emitter
(engine/codegen/emit_svdf.py). tflite-micro's integer kernel applies no fused activation (it only clamps
to int8): the TFLite importer drops an int8 SVDF's activation (and notes it), so imported files give the
interpreter's bytes; a graph TinyStudio quantizes itself keeps its RELU as the output clamp, like conv's.
The weights' scales are read, not their zero points, as in tflite-micro.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.int8.lower import Kernel, builds
from engine.int8.params import frozen_array
from engine.int8.prepare import prepares
from engine.int8.quant_math import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from engine.int8.readers import act_grid, bias_of, clamp_range, const_data, node_error, tensor_of
from engine.ir import Graph, Node
from engine.ops.svdf import svdf_dims
from engine.validate import node_context

_STATE_DTYPES = ("int16", "int8")


@dataclass(frozen=True, eq=False)
class SvdfParams:
    batch: int
    n_input: int
    filters: int
    units: int
    memory: int
    rank: int
    x_zp: int
    y_zp: int
    state_zp: int
    state_dtype: str          # of the state and of weights_time ("int16" or "int8")
    weights_feature: np.ndarray   # (filters, n_input) int8 as stored
    weights_time: np.ndarray      # (filters, memory) as stored
    bias: np.ndarray | None       # (units,) int32
    mult1: int                # input * weights_feature -> state
    shift1: int
    mult2: int                # state * weights_time -> output
    shift2: int
    act_min: int              # the output clamp: int8's range, or the fused activation's on the output grid
    act_max: int


@prepares("SVDF")
def prepare_svdf(g: Graph, node: Node) -> SvdfParams:
    ctx = node_context(g, node)
    b, n_in, f, units, mem, rank = svdf_dims(ctx)
    x, wf, wt = (tensor_of(g, node, i) for i in range(3))
    st, y = tensor_of(g, node, 4), tensor_of(g, node, 0, True)
    sx, zx = act_grid(node, x)
    so, zo = act_grid(node, y)
    ss, zs = act_grid(node, st, _STATE_DTYPES)
    if wf.dtype != "int8" or wf.quant is None:
        raise node_error(node, f"weights_feature '{wf.name}' must be quantized int8, got {wf.dtype}")
    if wt.dtype != st.dtype or wt.quant is None:
        raise node_error(node, f"weights_time '{wt.name}' must be quantized {st.dtype} like the state '{st.name}', "
                               f"got {wt.dtype}")
    # PrepareSvdf: the scale products in float32, converted to double, then QuantizeMultiplier.
    f32 = np.float32
    swf, swt = f32(wf.quant.scale[0]), f32(wt.quant.scale[0])
    m1, s1 = quantize_multiplier(float(f32(f32(sx) * swf) / f32(ss)))
    m2, s2 = quantize_multiplier(float(f32(f32(ss) * swt) / f32(so)))
    bias = bias_of(g, node, 3, units)
    lo, hi = clamp_range(node, y)
    return SvdfParams(b, n_in, f, units, mem, rank, zx, zo, zs, st.dtype,
                      frozen_array(const_data(node, wf, "weights_feature").astype(np.int64)),
                      frozen_array(const_data(node, wt, "weights_time").astype(np.int64)),
                      None if bias is None else frozen_array(bias.astype(np.int64)), m1, s1, m2, s2, lo, hi)


def svdf_int(p: SvdfParams, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One invocation: (int8 output (batch, units), new state (batch, filters*memory))."""
    lo, hi = (-(1 << 15), (1 << 15) - 1) if p.state_dtype == "int16" else (-128, 127)
    st = np.asarray(state, dtype=np.int64).reshape(p.batch, p.filters, p.memory)
    new = np.empty_like(st)
    new[:, :, :-1] = st[:, :, 1:]
    acc = wrap32((np.asarray(x, dtype=np.int64) - p.x_zp) @ p.weights_feature.T)          # (batch, filters)
    acc = np.clip(multiply_by_quantized_multiplier(acc, p.mult1, p.shift1), lo, hi)
    new[:, :, -1] = wrap32(acc + p.state_zp).astype(np.dtype(p.state_dtype)).astype(np.int64)
    scratch = wrap32(np.einsum("bfm,fm->bf", new - p.state_zp, p.weights_time))           # (batch, filters)
    out = scratch.reshape(p.batch, p.units, p.rank).sum(axis=-1)
    if p.bias is not None:
        out = out + p.bias
    out = multiply_by_quantized_multiplier(wrap32(out), p.mult2, p.shift2) + p.y_zp
    y = np.clip(out, p.act_min, p.act_max).astype(np.int8)
    return y, new.reshape(p.batch, p.filters * p.memory).astype(np.dtype(p.state_dtype))


@builds(SvdfParams)
def _svdf_kernel(p: SvdfParams) -> Kernel:
    def run(xs):
        y, new = svdf_int(p, xs[0], xs[4])
        return [y, new]
    return run
