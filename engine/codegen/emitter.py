"""What every layer emitter shares: the emit context (graph, arena offsets, const arrays), the registry
and small helpers for C parameter structs.

    @emits("Mul")
    def _mul(ctx: EmitContext, node: Node) -> None:
        p = prepare_node(ctx.graph, node)          # the layer's frozen record (engine/int8/params.py)
        ctx.code.body.append(...)                  # C text built from the record, never re-derived
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.codegen.cwrite import CArray, c_struct
from engine.errors import GraphError
from engine.int8.readers import act_grid
from engine.ir import Graph, Node, Tensor
from engine.registry import registrar
from engine.validate import node_context

MAX_DIMS = 6
ACC_LIMIT = (1 << 31) - 1


@dataclass
class Access:
    """One arena region a layer reads or writes (checked against the arena and the other accesses)."""

    tensor: str
    offset: int
    nbytes: int
    write: bool
    strict: bool = True   # False for an input read element by element while the output is written (in-place ok)
    overlap_ok: bool = False  # an input the kernel overwrites by design (in-place depthwise: finished channels)


@dataclass
class LayerCode:
    kernel: str
    comment: str
    body: list[str]
    arrays: list[CArray] = field(default_factory=list)
    scratch_bytes: int = 0
    accesses: list[Access] = field(default_factory=list)
    wide_extra_bytes: int = 0  # flash of pre-widened weights beyond int8 ones (CodegenOptions.wide_weights)
    conv_eight: bool = False  # a 1x1 conv sized for ts_conv_dsp.c's eight-pixel block (TINYSTUDIO_CONV_EIGHT)
    conv_narrow: bool = False  # one of those with 8 or 16 inputs, even outputs (ts_conv_pwnarrow_dsp.h)
    dsp_paths: set[str] = field(default_factory=set)  # the switched DSP fast paths it can take (kernelfiles.dsp_paths)


class EmitContext:
    """What an emitter needs: the graph, the plan's offsets and a place to put const arrays."""

    def __init__(self, graph: Graph, plan, prefix: str):
        self.graph = graph
        self.plan = plan
        self.prefix = prefix
        self.index = 0
        self.code: LayerCode | None = None
        self._const_names: dict[str, str] = {}
        self.const_arrays: list[CArray] = []   # activation-shaped constants, shared between layers
        self.wide_weights = False              # CodegenOptions.wide_weights: int16 pre-widened conv weights

    def begin(self, index: int) -> LayerCode:
        self.index = index
        self.code = LayerCode("", "", [])
        return self.code

    # ---- pointers -------------------------------------------------------------------------------
    def in_arena(self, name: str) -> bool:
        try:
            self.plan.tensor_offset(name)
            return True
        except KeyError:
            return False

    def arena(self, name: str, write: bool, strict: bool = True) -> str:
        off, _ = self.plan.tensor_offset(name)
        self.code.accesses.append(Access(name, off, self.graph.tensors[name].nbytes, write, strict))
        return f"A({off})"

    def src(self, node: Node, name: str, strict: bool = True) -> str:
        """C expression of an int8 input: its place in the arena, or a const array for a constant."""
        t = self.graph.tensors[name]
        if t.data is None:
            return self.arena(name, False, strict)
        if t.dtype not in ("int8", "int16"):
            raise GraphError(f"constant input '{name}' is {t.dtype}; the generated C takes int8", node.name, node.op)
        if name not in self._const_names:
            cname = f"{self.prefix}_c{len(self._const_names)}"
            self._const_names[name] = cname
            self.const_arrays.append(CArray(cname, f"{t.dtype}_t", np.asarray(t.data).reshape(-1),
                                            f"constant '{name}' {list(t.shape)}"))
        return self._const_names[name]

    def dst(self, name: str) -> str:
        return self.arena(name, True)

    def array(self, suffix: str, ctype: str, values, comment: str = "") -> str:
        name = f"{self.prefix}_l{self.index}_{suffix}"
        self.code.arrays.append(CArray(name, ctype, np.asarray(values).reshape(-1), comment))
        return name


Emitter = Callable[[EmitContext, Node], None]
EMIT: dict[str, Emitter] = {}


emits = registrar(EMIT)   # @emits("Conv"): EMIT["Conv"] is the decorated emitter


def emit_error(node: Node, msg: str) -> GraphError:
    return GraphError(msg, node.name, node.op)


def int8_grid(node: Node, t: Tensor) -> tuple[float, int]:
    """(scale, zero point) of an activation the generated C takes: per-tensor quantized int8."""
    s, z = act_grid(node, t)
    if t.dtype != "int8":
        raise emit_error(node, f"tensor '{t.name}' is {t.dtype}; the generated C handles int8 activations")
    return s, z


def shape_text(t: Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "scalar"


def contiguous(shape) -> list[int]:
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= int(d)
    return st[::-1]


def merge_dims(shape, *strides) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that step through memory as one dim (for every stride set)."""
    dims = [(int(n), [int(s[i]) for s in strides]) for i, n in enumerate(shape) if int(n) != 1]
    out: list[tuple[int, list[int]]] = []
    for n, st in dims:
        if out and all(ps == s * n for ps, s in zip(out[-1][1], st)):
            out[-1] = (out[-1][0] * n, st)
        else:
            out.append((n, st))
    if not out:
        out = [(1, [0] * len(strides))]
    return [n for n, _ in out], [[st[k] for _, st in out] for k in range(len(strides))]


def pad_dims(values: list[int], fill: int) -> list[int]:
    return values + [fill] * (MAX_DIMS - len(values))


def check_shift(node: Node, shifts) -> None:
    if np.max(shifts, initial=0) > 31:
        raise emit_error(node, f"a requantization multiplier of 2**{int(np.max(shifts))} or more cannot be "
                               "generated")


def plus(ptr: str, offset: int) -> str:
    return f"{ptr} + {offset}" if offset else ptr


def struct_call(ctx: EmitContext, kernel: str, struct: str, params: dict, comment: str, *args: str) -> None:
    """The common layer body: a const parameter struct in flash and one kernel call taking it first."""
    code = ctx.code
    code.kernel = kernel
    code.comment = comment
    code.body += [f"static const {struct} p = {c_struct(params)};", f"{kernel}(&p, {', '.join(args)});"]


def copy_whole(ctx: EmitContext, node: Node, src_name: str, y: Tensor) -> None:
    code = ctx.code
    code.kernel = "memcpy"
    code.comment = f"{node.name}: {node.op} (copy), {shape_text(y)}"
    code.body.append(f"memcpy({ctx.dst(y.name)}, {ctx.src(node, src_name)}, {y.nbytes});")


def layer_macs(g: Graph, node: Node) -> int:
    octx = node_context(g, node)
    return int(octx.op.cost(octx).macs)
