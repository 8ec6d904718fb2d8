"""What every operator provides, in one place (see DESIGN.md, example 1).

An op is a subclass of `OpDef` registered with `@register`. It declares its inputs, outputs and attribute
schema, and implements:
    infer(ctx) -> [(shape, dtype), ...]      shape/dtype of each output
    cost(ctx)  -> Cost                       MACs, FLOPs, parameter count
    run(ctx, xs) -> [np.ndarray, ...]        float32 reference implementation (numpy)
`ctx` is an `OpContext`: the node, its input tensors (with constant data when known) and, after
inference, its output tensors. Families share base classes (elementwise, spatial filter, pooling) so
each member stays small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from engine.errors import GraphError
from engine.ir import Node, Tensor

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Attr:
    """Schema of one attribute: kind is one of int, float, str, ints, floats, strs; None default = required."""

    kind: str
    default: Any = None
    choices: tuple | None = None
    required: bool = False


@dataclass(frozen=True)
class Cost:
    macs: int = 0
    flops: int = 0
    params: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.flops + other.flops, self.params + other.params)


class OpContext:
    """The view of one node that an op implementation sees."""

    def __init__(self, op: "OpDef", node: Node, ins: list[Tensor | None], outs: list[Tensor] | None = None):
        self.op = op
        self.node = node
        self.ins = ins
        self.outs = outs or []

    def attr(self, name: str) -> Any:
        if name in self.node.attrs:
            return self.node.attrs[name]
        spec = self.op.attrs.get(name)
        if spec is None:
            raise KeyError(f"{self.op.name} has no attribute '{name}'")
        return spec.default

    def shape(self, i: int) -> Shape:
        t = self.ins[i]
        if t is None:
            raise self.error(f"input {i} is missing")
        return t.shape

    def has(self, i: int) -> bool:
        return i < len(self.ins) and self.ins[i] is not None

    def const(self, i: int) -> np.ndarray:
        """Constant value of input i (needed for shape-defining inputs such as Reshape's shape)."""
        t = self.ins[i] if i < len(self.ins) else None
        if t is None or t.data is None:
            raise self.error(f"input {i} must be a constant")
        return t.data

    def error(self, message: str) -> GraphError:
        return GraphError(message, node=self.node.name, op=self.node.op)


_KINDS = {
    "int": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, (list, tuple)) and all(_KINDS["int"](x) for x in v),
    "floats": lambda v: isinstance(v, (list, tuple)) and all(_KINDS["float"](x) for x in v),
    "strs": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
}


class OpDef:
    name: ClassVar[str] = ""
    # Input names; a trailing "?" marks an optional input, a trailing "*" a variadic tail.
    inputs: ClassVar[tuple[str, ...]] = ("X",)
    outputs: ClassVar[tuple[str, ...]] = ("Y",)
    attrs: ClassVar[dict[str, Attr]] = {}
    # Indices of inputs whose constant data counts as trainable parameters (weights, biases, BN stats).
    param_inputs: ClassVar[tuple[int, ...]] = ()
    # True when the output is the input reinterpreted (Reshape, Flatten, ...): the planner may alias it.
    is_view: ClassVar[bool] = False
    # True for ops that compute nothing at inference (Identity, Dropout).
    is_noop: ClassVar[bool] = False
    doc: ClassVar[str] = ""

    # ---- traits: facts that passes, planners, estimators and exporters read; they derive their op sets from
    # them with `engine.ops.ops_where(pred)` (tests/engine/test_op_traits.py pins every derived set) -------------
    # "unary": y[i] = f(x[i]); "binary": y[i] = f(a[i], b[i]) with broadcasting; such ops work in any layout.
    elementwise: ClassVar[str] = ""
    # The output may take its input's buffer: element i of the (full-size) input is read only to write element i.
    inplace: ClassVar[bool] = False
    # int8: the output keeps the input's (scale, zero point); nothing is rescaled (pools, views, moves).
    same_grid: ClassVar[bool] = False
    # int8: every output value is an input value moved or selected (no arithmetic, no fill, no fused activation),
    # all on one grid, so its int8 kernel is the float reference run on the integers.
    moves_values: ClassVar[bool] = False
    # int8: the output's fixed (scale, zero point), as TFLite fixes it; None: calibrated like any tensor.
    fixed_grid: ClassVar[tuple[float, int] | None] = None
    # Weighted layer: weights at input 1 (int8 per output channel), bias at input 2 (int32).
    weighted: ClassVar[bool] = False
    # The output channel count is a weight dimension, the designer's choice (other ops follow their inputs).
    sets_channels: ClassVar[bool] = False
    # A following Relu / Relu6 / Clip folds into this op's `activation` attribute (passes/fuse.py).
    fuses_activation: ClassVar[bool] = False
    # Channel pruning passes through: output channel c comes from input channel c alone, no per-channel constant.
    prunes_through: ClassVar[bool] = False
    # What the latency estimator counts: "conv", "fc", "pool", "softmax" or "elementwise" (views and no-ops
    # come from is_view / is_noop); `cost_kind_of` refines it from the attributes.
    cost_kind: ClassVar[str] = "elementwise"
    # The output is a probability distribution (or its log) over an axis: training reads the logits before it.
    probabilities: ClassVar[bool] = False
    # ONNX opset 13 has this op under the same name with the same inputs and attributes (exporters only drop
    # the IR's `layout` / `activation`).
    onnx_same: ClassVar[bool] = False
    # Moves values between the float and the integer domain (QuantizeLinear, DequantizeLinear): the quantizer
    # places these, a float graph has none, and dequantizing a graph turns them into Identity.
    quant_boundary: ClassVar[bool] = False
    # int8: the kernel is one table from every 8-bit input value to its output value (the C kernel ts_lut_s8).
    int8_table: ClassVar[bool] = False
    # Why the op has no int8 lowering + C kernel; "" = it has both (tests/engine/test_op_coverage.py checks).
    float_only: ClassVar[str] = ""
    # Stateful op: indices of the inputs that hold its state (variable tensors, engine.ir.variables). `run` (and
    # the int8 kernel) returns the outputs followed by the new value of each of these inputs, in this order;
    # the executors write them back (engine/state.py). See engine/ops/README.md, "Stateful ops".
    state_inputs: ClassVar[tuple[int, ...]] = ()

    # ---- schema checks -------------------------------------------------------------------------
    def input_range(self) -> tuple[int, int]:
        lo = sum(1 for n in self.inputs if not n.endswith(("?", "*")))
        hi = 10**6 if any(n.endswith("*") for n in self.inputs) else len(self.inputs)
        return lo, hi

    def check(self, node: Node) -> None:
        """Validate arity and attributes against the schema; raise GraphError naming what is wrong."""
        lo, hi = self.input_range()
        present = len(node.inputs)
        if present < lo or present > hi:
            want = f"{lo}" if lo == hi else (f"{lo}..{hi}" if hi < 10**6 else f"at least {lo}")
            raise GraphError(f"expects {want} inputs, got {present}", node.name, node.op)
        for i, n in enumerate(self.inputs):
            if i < present and not n.endswith(("?", "*")) and node.inputs[i] == "":
                raise GraphError(f"required input '{n}' is missing", node.name, node.op)
        for key, value in node.attrs.items():
            spec = self.attrs.get(key)
            if spec is None:
                known = ", ".join(sorted(self.attrs)) or "none"
                raise GraphError(f"unknown attribute '{key}' (known: {known})", node.name, node.op)
            if value is None and not spec.required:
                continue
            if not _KINDS[spec.kind](value):
                raise GraphError(f"attribute '{key}' must be {spec.kind}, got {value!r}", node.name, node.op)
            if spec.choices is not None and value not in spec.choices:
                raise GraphError(f"attribute '{key}' must be one of {list(spec.choices)}, got {value!r}",
                                 node.name, node.op)
        for key, spec in self.attrs.items():
            if spec.required and key not in node.attrs:
                raise GraphError(f"attribute '{key}' is required", node.name, node.op)

    # ---- facets ----------------------------------------------------------------------------------
    def infer(self, ctx: OpContext) -> list[tuple[Shape, str]]:
        raise NotImplementedError

    def cost(self, ctx: OpContext) -> Cost:
        """Default: no MACs, one FLOP per output element, parameters from `param_inputs`."""
        flops = sum(t.size for t in ctx.outs)
        return Cost(0, 0 if (self.is_view or self.is_noop) else flops, self.count_params(ctx))

    def weight_channel_axis(self, node: Node) -> int:
        """Axis of the weights (input 1) of a `weighted` op that indexes its output channels."""
        raise NotImplementedError(f"{self.name} has no per-channel weights")

    def kernel_buffer_bytes(self, ctx: OpContext) -> int:
        """RAM the op's generated C keeps outside the arena besides its state (layer-local static buffers),
        which the RAM estimate adds; 0 for most ops."""
        return 0

    def count_params(self, ctx: OpContext) -> int:
        return sum(ctx.ins[i].size for i in self.param_inputs
                   if i < len(ctx.ins) and ctx.ins[i] is not None and ctx.ins[i].data is not None)

    def run(self, ctx: OpContext, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError

    def cost_kind_of(self, ctx: OpContext) -> str:
        """The estimator's kind for this node (ops whose kind depends on attributes override it)."""
        return self.cost_kind

    @property
    def has_layout(self) -> bool:
        """A spatial op with a `layout` attribute: the layout pass converts it, exporters transpose around it."""
        return "layout" in self.attrs

    @property
    def windowed(self) -> bool:
        """Slides a `kernel_shape` window over the spatial axes (convolutions, windowed pools)."""
        return "kernel_shape" in self.attrs


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    assert cls.name and cls.name not in OPS, cls.name
    OPS[cls.name] = cls()
    return cls


def get_op(name: str) -> OpDef | None:
    return OPS.get(name)


def supported_ops() -> list[str]:
    return sorted(OPS)


def ops_where(pred: Callable[[OpDef], bool]) -> frozenset[str]:
    """Names of the registered ops whose OpDef satisfies `pred`: `ops_where(lambda op: op.same_grid)`."""
    return frozenset(name for name, op in OPS.items() if pred(op))


# ---- helpers shared by op families ---------------------------------------------------------------

def norm_axis(axis: int, rank: int, ctx: OpContext | None = None) -> int:
    if not -rank <= axis < max(rank, 1):
        msg = f"axis {axis} out of range for rank {rank}"
        raise ctx.error(msg) if ctx else GraphError(msg)
    return axis % rank if rank else 0


def broadcast_shapes(ctx: OpContext, *shapes: Shape) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ctx.error("input shapes " + " and ".join(str(list(s)) for s in shapes) + " do not broadcast")


def float_out(ctx: OpContext, i: int = 0) -> str:
    """Output dtype of a float op: same as input (quantized graphs keep their integer dtype)."""
    return ctx.ins[i].dtype if ctx.ins[i] is not None else "float32"


_ACT = ("none", "relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid")
# Fused activation, as TFLite stores it on conv/FC/add/pool; ONNX graphs use separate nodes.
FUSED_ACTIVATION = {"activation": Attr("str", "none", _ACT)}


def apply_activation(y: np.ndarray, act: str) -> np.ndarray:
    if act == "none":
        return y
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    if act == "relu_n1_to_1":
        return np.clip(y, -1, 1)
    if act == "tanh":
        return np.tanh(y)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    raise ValueError(act)


def activation_flops(act: str, n: int) -> int:
    return 0 if act == "none" else n
