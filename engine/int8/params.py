"""Frozen per-layer parameter records of the int8 kernels (tflite-micro's OpData), one per layer family.

    rec = prepare_node(graph, node)     # engine/int8/prepare.py: computed once per layer
    kernel = KERNELS[type(rec)](rec)    # engine/int8/lower.py: the numpy kernel reads the record
    emit_layer(ctx, node, i)            # engine/codegen: the C emitter reads the same record

Every multiplier, shift, offset, clamp, table and requantization mode a layer needs is derived once,
in prepare, and both the numpy reference and the generated C take it from here, so they cannot drift
apart. Arrays in a record are read-only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.int8.dsp_requant import DspRequant, Requant
from engine.ops.base import OpContext


def frozen_array(a) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ConvParams:
    """Conv (regular, grouped, depthwise; 1-D lifted to 2-D). weights (M, kH, kW, C/g) as stored; centered
    = weights minus their zero points (int64); multiplier/shift one per output channel (TFLite's)."""

    layout: str
    rank: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]   # top, left, bottom, right
    out_hw: tuple[int, int]
    group: int
    x_zp: int
    y_zp: int
    y_dtype: str
    w_dtype: str
    centered: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    bias: np.ndarray | None
    act_min: int
    act_max: int
    dsp: DspRequant | None            # the generated C's form (bias 0 when absent); None for int16
    x_dtype: str = "int8"             # activation dtype: "int16" runs the 16x8 kernels (engine/int8/int16.py)
    acc64: bool = False               # int16 with int64 bias: int64 accumulators, 64-bit requantization


@dataclass(frozen=True, eq=False)
class FCParams:
    """Fully connected (Gemm transA=0, alpha=beta=1). centered (N, K) weights minus zero points; multiplier
    and shift one per output or one for the layer (FullyConnected vs FullyConnectedPerChannel)."""

    x_zp: int
    y_zp: int
    y_dtype: str
    w_dtype: str
    centered: np.ndarray
    per_channel: bool
    multiplier: np.ndarray
    shift: np.ndarray
    bias: np.ndarray | None
    act_min: int
    act_max: int
    dsp: DspRequant | None            # the C's form: the input zero point folded into the bias; None for int16
    x_dtype: str = "int8"
    acc64: bool = False

    @property
    def units(self) -> int:
        return int(self.centered.shape[0])


@dataclass(frozen=True, eq=False)
class AddParams:
    """ADD / SUB: both inputs lifted by 2**left_shift, rescaled to twice the larger scale, summed, rescaled."""

    a_zp: int
    b_zp: int
    y_zp: int
    left_shift: int
    m1: int
    e1: int
    m2: int
    e2: int
    mo: int
    eo: int
    act_min: int
    act_max: int
    subtract: bool
    y_dtype: str
    mode: Requant

    def rescale(self) -> dict:
        """The multipliers as engine.int8.elementwise.add takes them."""
        return {"m1": self.m1, "e1": self.e1, "m2": self.m2, "e2": self.e2, "mo": self.mo, "eo": self.eo}


@dataclass(frozen=True, eq=False)
class MulParams:
    a_zp: int
    b_zp: int
    y_zp: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int
    y_dtype: str


@dataclass(frozen=True, eq=False)
class PoolParams:
    """MaxPool / AveragePool (input and output on one grid), 1-D lifted to 2-D."""

    is_max: bool
    layout: str
    rank: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    act_min: int
    act_max: int
    include_pad: bool               # ONNX count_include_pad


@dataclass(frozen=True, eq=False)
class MeanParams:
    """MEAN / SUM over `axes`: one requantization of the int32 sum; for a mean, multiplier and shift
    already hold 1 / count (QuantizedMeanOrSum's folding)."""

    axes: tuple[int, ...]
    keepdims: bool
    count: int
    x_zp: int
    y_zp: int
    multiplier: int
    shift: int
    compute_sum: bool
    y_dtype: str


@dataclass(frozen=True, eq=False)
class SoftmaxParams:
    """Softmax over `axis` (output grid 1/256, -128): the Q5.26 input multiplier, its left shift, diff_min."""

    axis: int
    multiplier: int
    left_shift: int
    diff_min: int

    def fixed_point(self) -> dict:
        """The parameters as engine.int8.softmax.softmax_int8 takes them."""
        return {"multiplier": self.multiplier, "left_shift": self.left_shift, "diff_min": self.diff_min}


@dataclass(frozen=True, eq=False)
class TableParams:
    """A unary op on 8-bit input as a table of its output for every input value (index: value - min)."""

    table: np.ndarray


@dataclass(frozen=True, eq=False)
class QuantizeParams:
    """QuantizeLinear of a float input (AffineQuantize)."""

    scale: float
    zero_point: int
    y_dtype: str


@dataclass(frozen=True, eq=False)
class RequantParams:
    """QuantizeLinear between integer grids of a 16/32-bit input (8-bit inputs become a TableParams)."""

    x_zp: int
    y_zp: int
    multiplier: int
    shift: int
    y_dtype: str


@dataclass(frozen=True, eq=False)
class DequantizeParams:
    """DequantizeLinear: one scale, or the tensor's per-channel quantization."""

    scale: float | None
    zero_point: int | None
    quant: object                   # engine.ir quantization of the input (per channel when scale is None)


@dataclass(frozen=True, eq=False)
class CopyParams:
    """An op that copies its input unchanged (ReduceMean/ReduceSum with empty axes and noop_with_empty_axes)."""


@dataclass(frozen=True, eq=False)
class MoveParams:
    """Data movement on one grid: the op's own reference moves the integers. fill: the quantized constant
    a Pad writes (its zero point for PAD, PADV2's dequantized constant back on the grid), else 0."""

    ctx: OpContext                  # the op's context (Pad's value already the quantized fill)
    y_dtypes: tuple[str, ...]
    fill: int


@dataclass(frozen=True, eq=False)
class ConcatParams:
    """Concat along `axis`; per input None (the output's grid: a plain copy) or a requantization table."""

    axis: int
    tables: tuple[np.ndarray | None, ...]


@dataclass(frozen=True, eq=False)
class LeakyReluParams:
    """LEAKY_RELU on int16 (8-bit inputs use a TableParams): identity and alpha multipliers by sign."""

    x_zp: int
    y_zp: int
    m_identity: int
    e_identity: int
    m_alpha: int
    e_alpha: int
    y_dtype: str


@dataclass(frozen=True, eq=False)
class TransposeConvParams:
    """TRANSPOSE_CONV (NHWC, weights (M, kH, kW, C) minus zero points), int8 or int16 activations."""

    x_dtype: str
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]   # top, left, bottom, right
    out_hw: tuple[int, int]
    x_zp: int
    y_zp: int
    centered: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    bias: np.ndarray | None
    act_min: int
    act_max: int
    acc64: bool


Params = (ConvParams | FCParams | AddParams | MulParams | PoolParams | MeanParams | SoftmaxParams | TableParams
          | QuantizeParams | RequantParams | DequantizeParams | CopyParams | MoveParams | ConcatParams
          | LeakyReluParams | TransposeConvParams)
