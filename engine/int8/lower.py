"""IR node -> int8 numpy kernel, built from the layer's frozen parameter record (engine/int8/prepare.py).

    kernel = lower_node(graph, node)     # once per layer: prepare_node + the family's kernel builder
    ys = kernel(xs)                      # per inference: integer arrays in, integer arrays out

Builders only lay out what the numpy kernels need (weight matrices, layout views); every parameter
comes from the record, which the C emitter (engine/codegen) reads as well.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.int8 import conv as conv_k
from engine.int8 import elementwise as ew
from engine.int8 import int16
from engine.int8 import pool as pool_k
from engine.int8.params import (AddParams, ConcatParams, ConvParams, CopyParams, DequantizeParams, FCParams,
                                LeakyReluParams, MeanParams, MoveParams, MulParams, PoolParams, QuantizeParams,
                                RequantParams, SoftmaxParams, TableParams, TransposeConvParams)
from engine.int8.prepare import PREPARE, prepare_node
from engine.int8.readers import is_quantized
from engine.int8.softmax import softmax_int8
from engine.ir import Graph, Node

Kernel = Callable[[list], list]
KERNELS: dict[type, Callable] = {}   # record type -> kernel builder
LOWER = PREPARE                      # the ops with an int8 kernel (each prepares a record KERNELS turns into one)

__all__ = ["KERNELS", "LOWER", "Kernel", "is_quantized", "lower_node"]


def builds(record_type: type):
    def deco(fn):
        KERNELS[record_type] = fn
        return fn
    return deco


def lower_node(g: Graph, node: Node) -> Kernel:
    rec = prepare_node(g, node)
    return KERNELS[type(rec)](rec)


# ---- layouts: every spatial kernel runs NHWC 2-D; NCHW and 1-D are views around it ------------------

def _to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NCHW":
        x = np.moveaxis(x, 1, -1)
    return x[:, None] if x.ndim == 3 else x


def _from_nhwc(y: np.ndarray, layout: str, rank: int) -> np.ndarray:
    if rank == 1:
        y = y[:, 0]
    if layout == "NCHW":
        y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y)


# ---- kernels by family ------------------------------------------------------------------------------

@builds(ConvParams)
def _conv(p: ConvParams) -> Kernel:
    if p.x_dtype == "int16":
        return lambda xs: [_from_nhwc(int16.conv16(p, _to_nhwc(xs[0], p.layout)), p.layout, p.rank)]
    wc = conv_k.conv_weights(p.centered, 0, p.group)

    def run(xs):
        acc = conv_k.conv2d_acc(_to_nhwc(xs[0], p.layout), wc, x_zp=p.x_zp, kernel=p.kernel, strides=p.strides,
                                dilations=p.dilations, pads=p.pads, out_hw=p.out_hw, group=p.group)
        y = conv_k.requantize_acc(acc, p.bias, p.multiplier, p.shift, p.y_zp, p.act_min, p.act_max, p.y_dtype)
        return [_from_nhwc(y, p.layout, p.rank)]
    return run


@builds(FCParams)
def _gemm(p: FCParams) -> Kernel:
    if p.x_dtype == "int16":
        return lambda xs: [int16.fc16(p, xs[0])]
    wc = np.ascontiguousarray(p.centered.T)   # (K, N), as engine.int8.conv.fc_weights lays it out
    mult, shift = (p.multiplier, p.shift) if p.per_channel else (p.multiplier[0], p.shift[0])

    def run(xs):
        acc = conv_k.fully_connected_acc(xs[0], wc, x_zp=p.x_zp)
        return [conv_k.requantize_acc(acc, p.bias, mult, shift, p.y_zp, p.act_min, p.act_max, p.y_dtype)]
    return run


@builds(AddParams)
def _add(p: AddParams) -> Kernel:
    rescale = p.rescale()
    return lambda xs: [ew.add(xs[0], xs[1], zp1=p.a_zp, zp2=p.b_zp, zpo=p.y_zp, params=rescale, act_min=p.act_min,
                              act_max=p.act_max, subtract=p.subtract, dtype=p.y_dtype, left_shift=p.left_shift)]


@builds(MulParams)
def _mul(p: MulParams) -> Kernel:
    return lambda xs: [ew.mul(xs[0], xs[1], zp1=p.a_zp, zp2=p.b_zp, zpo=p.y_zp, multiplier=p.multiplier,
                              shift=p.shift, act_min=p.act_min, act_max=p.act_max, dtype=p.y_dtype)]


@builds(PoolParams)
def _pool(p: PoolParams) -> Kernel:
    if p.is_max:
        def run(xs):
            v = pool_k.max_pool(_to_nhwc(xs[0], p.layout), kernel=p.kernel, strides=p.strides,
                                dilations=p.dilations, pads=p.pads, out_hw=p.out_hw, act_min=p.act_min,
                                act_max=p.act_max)
            return [_from_nhwc(v, p.layout, p.rank)]
        return run

    def run_avg(xs):
        v = pool_k.average_pool(_to_nhwc(xs[0], p.layout), kernel=p.kernel, strides=p.strides, pads=p.pads,
                                out_hw=p.out_hw, act_min=p.act_min, act_max=p.act_max, include_pad=p.include_pad)
        return [_from_nhwc(v, p.layout, p.rank)]
    return run_avg


@builds(MeanParams)
def _mean(p: MeanParams) -> Kernel:
    return lambda xs: [pool_k.mean_or_sum(xs[0], p.axes, p.keepdims, x_zp=p.x_zp, y_zp=p.y_zp,
                                          multiplier=p.multiplier, shift=p.shift, dtype=p.y_dtype)]


@builds(CopyParams)
def _copy(p: CopyParams) -> Kernel:
    return lambda xs: [xs[0].copy()]


@builds(SoftmaxParams)
def _softmax(p: SoftmaxParams) -> Kernel:
    q = p.fixed_point()

    def run(xs):
        last = xs[0].ndim - 1
        v = np.moveaxis(xs[0], p.axis, -1) if p.axis != last else xs[0]
        out = softmax_int8(v, q)
        return [np.ascontiguousarray(np.moveaxis(out, -1, p.axis) if p.axis != last else out)]
    return run


@builds(TableParams)
def _table(p: TableParams) -> Kernel:
    return lambda xs: [ew.apply_table(xs[0], p.table)]


@builds(QuantizeParams)
def _quantize(p: QuantizeParams) -> Kernel:
    return lambda xs: [ew.quantize_float(xs[0], p.scale, p.zero_point, p.y_dtype)]


@builds(RequantParams)
def _requantize(p: RequantParams) -> Kernel:
    return lambda xs: [ew.requantize(xs[0], zp_in=p.x_zp, zp_out=p.y_zp, multiplier=p.multiplier, shift=p.shift,
                                     dtype=p.y_dtype)]


@builds(DequantizeParams)
def _dequantize(p: DequantizeParams) -> Kernel:
    if p.scale is not None:
        return lambda xs: [ew.dequantize(xs[0], p.scale, p.zero_point)]
    return lambda xs: [p.quant.dequantize(xs[0])]


@builds(MoveParams)
def _move(p: MoveParams) -> Kernel:
    ctx = p.ctx
    return lambda xs: [np.asarray(v).astype(dt, copy=False) for v, dt in zip(ctx.op.run(ctx, xs), p.y_dtypes)]


@builds(ConcatParams)
def _concat(p: ConcatParams) -> Kernel:
    def run(xs):
        return [np.concatenate([v if t is None else ew.apply_table(v, t) for v, t in zip(xs, p.tables)],
                               axis=p.axis)]
    return run


@builds(LeakyReluParams)
def _leaky16(p: LeakyReluParams) -> Kernel:
    return lambda xs: [int16.leaky16(p, xs[0])]


@builds(TransposeConvParams)
def _transpose_conv(p: TransposeConvParams) -> Kernel:
    return lambda xs: [int16.transpose_conv(p, xs[0])]


# Families in their own modules register their record and kernel on import (after KERNELS and builds exist).
from engine.int8 import lstm, svdf  # noqa: E402,F401
