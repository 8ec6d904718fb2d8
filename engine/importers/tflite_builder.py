"""The state TFLite op handlers map records into IR with: `Builder` (tensors, names, options, nodes).

    b.rec(b.input(1, "filter"))        # the file's tensor record behind input 1 (error if absent)
    b.const_ints(1, "shape")           # a constant input as ints (error if computed)
    b.add("Conv", ins, [b.out()], layout="NHWC", activation=b.activation())

Handlers (tflite_ops.py) read through it so that every error names the file, node and op.
"""
from __future__ import annotations

import os

import numpy as np

from engine.errors import ModelFormatError
from engine.importers.tflite_reader import TfModel, TfOp, TfTensor
from engine.ir import DTYPES, Graph, Node, Tensor

# TFLite's kernels (CalculateActivationRange) clamp only for the RELU family; a fused TANH on a conv,
# FC, pool or add computes nothing there, so it maps to "none" to keep the file's results.
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "none"}
# Ops whose geometry lives only in their options: a file without them is damaged.
_NEEDS_OPTIONS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                  "CONCATENATION", "SPLIT", "STRIDED_SLICE"}


class Builder:
    def __init__(self, path: str, m: TfModel):
        self.path, self.m = path, m
        name = os.path.splitext(os.path.basename(path))[0] or "tflite_model"
        self.g = Graph(name)
        self.cache: dict[object, str] = {}  # (tensor index, variant) -> IR tensor name
        self.op: TfOp | None = None  # the op being mapped, for error messages
        self.ignored_activation = ""  # a fused activation TFLite's kernels do not apply (noted in meta)

    # -- names and tensors
    def node_name(self) -> str:
        return f"{self.op.op}_{self.op.index}"

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.tensors:
            name, i = f"{base}_{i}", i + 1
        return name

    def tensor(self, idx: int) -> str:
        """IR name of file tensor `idx` (added on first use); "" for an absent optional input."""
        if idx < 0:
            return ""
        if idx not in self.cache:
            t = self.m.tensors[idx]
            name = self.fresh(t.name or f"tensor_{idx}")
            meta, data = {"tflite_index": idx}, t.data
            if t.variable:  # state (engine/state.py): starts from the file's value, zeros when it has none
                meta["variable"] = True
                data = t.data if t.data is not None else np.zeros(t.shape, DTYPES[t.dtype])
            self.g.tensors[name] = Tensor(name, t.shape, t.dtype, t.quant, data, meta)
            self.cache[idx] = name
        return self.cache[idx]

    def rec(self, idx: int) -> TfTensor:
        return self.m.tensors[idx]

    def new_tensor(self, base: str, shape, like: TfTensor) -> str:
        """An intermediate the IR needs but the file does not have (e.g. FC's 2-D input); same dtype/quant."""
        name = self.fresh(base)
        self.g.tensors[name] = Tensor(name, tuple(shape), like.dtype, like.quant)
        return name

    def error(self, message: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"node '{self.node_name()}' ({self.op.op}): {message}")

    def input(self, i: int, what: str) -> int:
        if i >= len(self.op.inputs) or self.op.inputs[i] < 0:
            raise self.error(f"the {what} input is missing")
        return self.op.inputs[i]

    def optional(self, i: int) -> list[str]:
        """[IR name of input i] when the file gives that optional input (a bias), else []."""
        if i < len(self.op.inputs) and self.op.inputs[i] >= 0:
            return [self.tensor(self.op.inputs[i])]
        return []

    def const(self, i: int, what: str) -> np.ndarray:
        t = self.rec(self.input(i, what))
        if t.data is None:
            raise self.error(f"the {what} input '{t.name}' must be a constant (computed {what}s are not supported)")
        return t.data

    def const_ints(self, i: int, what: str) -> list[int]:
        return [int(v) for v in np.asarray(self.const(i, what)).reshape(-1)]

    def opt(self, key: str, default=None):
        o = self.op.options
        if o is None:
            if self.op.op in _NEEDS_OPTIONS:
                raise self.error("the operator has no options table (the file is damaged)")
            return default
        return o.get(key, default)

    def activation(self) -> str:
        code = int(self.opt("FusedActivationFunction", 0))
        if code not in _ACTIVATIONS:
            raise self.error(f"fused activation {code} (SIGN_BIT or unknown) is not supported")
        if code == 4:
            self.ignored_activation = "TANH"
        return _ACTIVATIONS[code]

    # -- nodes
    def add(self, op: str, inputs: list[str], outputs: list[str], suffix: str = "", **attrs) -> Node:
        name = self.node_name() + suffix
        meta = {"tflite_op": self.op.op, "tflite_index": self.op.index}
        if self.ignored_activation:
            meta["tflite_ignored_activation"] = self.ignored_activation
        node = Node(op, name, list(inputs), list(outputs), {k: v for k, v in attrs.items() if v is not None}, meta)
        self.g.nodes.append(node)
        return node

    def out(self, i: int = 0) -> str:
        if i >= len(self.op.outputs) or self.op.outputs[i] < 0:
            raise self.error(f"output {i} is missing")
        return self.tensor(self.op.outputs[i])

    def single(self, ir_op: str, n_inputs: int = 1, **attrs) -> None:
        """The common case: the op's first `n_inputs` inputs map one to one."""
        ins = [self.tensor(self.input(i, f"#{i}")) for i in range(n_inputs)]
        self.add(ir_op, ins, [self.out()], **attrs)

    def with_activation(self, ir_op: str, ins: list[str], **attrs) -> None:
        """An IR op without an `activation` attribute: a fused activation becomes its own node."""
        act = self.activation()
        out = self.out()
        if act == "none":
            self.add(ir_op, ins, [out], **attrs)
            return
        mid = self.new_tensor(out + "_pre_act", self.rec(self.op.outputs[0]).shape, self.rec(self.op.outputs[0]))
        self.add(ir_op, ins, [mid], **attrs)
        unary = {"relu": ("Relu", {}), "relu6": ("Relu6", {}), "relu_n1_to_1": ("Clip", {"min": -1.0, "max": 1.0})}[act]
        self.add(unary[0], [mid], [out], suffix="_act", **unary[1])
