"""IR node -> C for one layer: the kernel call, its constant parameters and the const arrays it needs.

    code = emit_layer(ctx, node, i)  # LayerCode: kernel, comment, C body, const arrays, scratch, arena accesses

Parameters are derived exactly as engine/int8/lower.py derives them (its helpers are reused, so both
read the graph the same way): per-channel multipliers and shifts, clamp bounds, ADD's rescaling, softmax's
Q5.26 scaling. Unary ops become 256-entry tables evaluated with the int8 reference kernel itself, so the
table is the reference by construction. Data movement (Transpose, Slice, Split, Gather, Resize, Pad) is
derived from what the op's reference does to an index tensor: a strided copy when that is affine, an
index table otherwise. Anything else raises GraphError naming the node and op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.codegen.cwrite import CArray, c_struct, pack_int4
from engine.errors import GraphError
from engine.int8 import elementwise as ew
from engine.int8 import lower as L
from engine.int8 import pool as pool_k
from engine.int8.quant_math import multiply_by_quantized_multiplier, quantize_multiplier, quantize_multipliers
from engine.int8.softmax import softmax_params
from engine.ir import Graph, Node, Tensor
from engine.ops import get_op
from engine.ops.base import OpContext, norm_axis
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


@dataclass
class LayerCode:
    kernel: str
    comment: str
    body: list[str]
    arrays: list[CArray] = field(default_factory=list)
    scratch_bytes: int = 0
    accesses: list[Access] = field(default_factory=list)


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
        if t.dtype != "int8":
            raise GraphError(f"constant input '{name}' is {t.dtype}; the generated C takes int8", node.name, node.op)
        if name not in self._const_names:
            cname = f"{self.prefix}_c{len(self._const_names)}"
            self._const_names[name] = cname
            self.const_arrays.append(CArray(cname, "int8_t", np.asarray(t.data).reshape(-1),
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


def emits(*ops: str):
    def deco(fn):
        for op in ops:
            EMIT[op] = fn
        return fn
    return deco


def _err(node: Node, msg: str) -> GraphError:
    return GraphError(msg, node.name, node.op)


def _int8(node: Node, t: Tensor) -> tuple[float, int]:
    s, z = L._grid(node, t)
    if t.dtype != "int8":
        raise _err(node, f"tensor '{t.name}' is {t.dtype}; the generated C handles int8 activations")
    return s, z


def _shape(t: Tensor) -> str:
    return "x".join(str(d) for d in t.shape) or "scalar"


def _contiguous(shape) -> list[int]:
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= int(d)
    return st[::-1]


def _merge(shape, *strides) -> tuple[list[int], list[list[int]]]:
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


def _pad_dims(values: list[int], fill: int) -> list[int]:
    return values + [fill] * (MAX_DIMS - len(values))


def _check_shift(node: Node, shifts) -> None:
    if np.max(shifts, initial=0) > 31:
        raise _err(node, f"a requantization multiplier of 2**{int(np.max(shifts))} or more cannot be generated")


def _act(node: Node, y: Tensor) -> tuple[int, int]:
    return L._clamp(node, y)


# ---- conv and fully connected --------------------------------------------------------------------------

def acc_range(wq: np.ndarray, bias: np.ndarray, x_zp: int) -> tuple[int, int]:
    """Smallest and largest int32 accumulator over all int8 inputs: bias + sum (x - x_zp) * w per channel.
    Each term ranges over an interval holding 0, so every partial sum (in any order) lies within too."""
    w = wq.reshape(wq.shape[0], -1).astype(np.int64)
    lo_x, hi_x = -128 - x_zp, 127 - x_zp
    pos, neg = np.where(w > 0, w, 0).sum(axis=1), np.where(w < 0, w, 0).sum(axis=1)
    b = bias.astype(np.int64)
    return int((b + pos * lo_x + neg * hi_x).min(initial=0)), int((b + pos * hi_x + neg * lo_x).max(initial=0))


def _acc_bound(node: Node, wq: np.ndarray, bias: np.ndarray, x_zp: int) -> None:
    """A layer whose accumulator may leave int32 is refused (C's signed overflow is undefined)."""
    lo, hi = acc_range(wq, bias, x_zp)
    if lo < -(1 << 31) or hi > (1 << 31) - 1:
        raise _err(node, f"the int32 accumulator may overflow (range [{lo:,}, {hi:,}]); TFLite would wrap "
                         "around, the generated C refuses such a layer")


def _dsp_requant(wq: np.ndarray, bias: np.ndarray, x_zp: int, mult: np.ndarray, shift: np.ndarray, zo: int,
                 lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(bias, multipliers, shifts, general_requant) for the DSP kernels' short requantization.

    A dead channel (all weights 0) outputs the constant K = clamp(requant(bias) + zo); TFLite converters
    leave such channels with saturated biases and extreme shifts. It gets bias 4 * (K - zo), multiplier
    2**30 and shift -1 instead, which give K again (exactly (K - zo) * 2, then halved): no byte changes.
    general_requant = 1 when some channel breaks a condition of the short form (tinystudio_kernels.c):
    multiplier 0 or in [2**30, 2**31), shift in [-30, -1], accumulators in [-2**30, 2**30), and the
    rounded high word plus the folded rounding and offset terms below 2**31."""
    m = wq.shape[0]
    mult = np.array(np.broadcast_to(np.asarray(mult, np.int64), (m,)))
    shift = np.array(np.broadcast_to(np.asarray(shift, np.int64), (m,)))
    bias = bias.astype(np.int64).copy()
    w = wq.reshape(m, -1).astype(np.int64)
    dead = ~np.any(w != 0, axis=1)
    if dead.any():
        k = np.clip(multiply_by_quantized_multiplier(bias[dead], mult[dead], shift[dead]) + zo, lo, hi)
        bias[dead], mult[dead], shift[dead] = 4 * (k - zo), 1 << 30, -1
    lo_x, hi_x = -128 - x_zp, 127 - x_zp
    pos, neg = np.where(w > 0, w, 0).sum(axis=1), np.where(w < 0, w, 0).sum(axis=1)
    acc_max = np.maximum(np.abs(bias + pos * lo_x + neg * hi_x), np.abs(bias + pos * hi_x + neg * lo_x))
    right = -shift
    ok = ((mult == 0) | ((mult >= 1 << 30) & (mult < 1 << 31))) & (shift <= -1) & (right <= 30) & (acc_max < 1 << 30)
    r = np.clip(right, 0, 30)
    folded = (np.int64(1) << r) // 2 + zo * (np.int64(1) << r)
    high_max = (acc_max * mult + (1 << 30)) // (1 << 31) + 1
    ok &= (abs(zo) * (np.int64(1) << r) < 1 << 31) & (high_max + np.abs(folded) < 1 << 31)
    return bias, mult, shift, int(not ok.all())


def _weights_minus_zp(node: Node, w: np.ndarray, wzp: np.ndarray) -> np.ndarray:
    ws = w.astype(np.int64) - wzp.reshape((-1,) + (1,) * (w.ndim - 1))
    if ws.size and (ws.min() < -128 or ws.max() > 127):
        raise _err(node, "weights minus their zero point leave the int8 range; use symmetric int8 weights")
    return ws


def _requant_arrays(ctx: EmitContext, node: Node, mult: np.ndarray, shift: np.ndarray) -> tuple[str, str, int]:
    """Per-channel multiplier/shift arrays; one entry when all channels share them."""
    _check_shift(node, shift)
    if np.any(mult == -(1 << 31)):  # the one multiplier the DSP requantization does not take
        raise _err(node, "a requantization multiplier of -1 cannot be generated")
    per_channel = int(not (np.all(mult == mult[0]) and np.all(shift == shift[0])))
    if not per_channel:
        mult, shift = mult[:1], shift[:1]
    return (ctx.array("mult", "int32_t", mult, "requantization multipliers (Q31)"),
            ctx.array("shift", "int8_t", shift, "requantization shifts (TFLite's exponents)"), per_channel)


def _packs_int4(w: Tensor, wq: np.ndarray) -> bool:
    """int4 weights are packed two per byte when, minus their zero points, they still fit [-8, 7]
    (always for mixed-precision's symmetric ones); otherwise they are stored as int8 (same results)."""
    return w.dtype == "int4" and (wq.size == 0 or (wq.min() >= -8 and wq.max() <= 7))


def _weight_array(ctx: EmitContext, values: np.ndarray, s4: bool, comment: str) -> str:
    if s4:
        return ctx.array("w", "uint8_t", pack_int4(values), f"{comment}, int4 packed two per byte, low nibble first")
    return ctx.array("w", "int8_t", values, comment)


@emits("Conv")
def _conv(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, w, y = L._tensor(g, node, 0), L._tensor(g, node, 1), L._tensor(g, node, 0, True)
    sx, zx = _int8(node, x)
    so, zo = _int8(node, y)
    if node.attrs.get("layout", "NCHW") != "NHWC":
        raise _err(node, "the C generator takes NHWC convolutions (the TFLite form)")
    wdata = L._const(node, w, "filter")
    m = wdata.shape[0]
    w4 = wdata[:, None] if wdata.ndim == 3 else wdata           # (M, kH, kW, C/g)
    _, _, rank, k, s, d, pads, out = L._spatial(g, node, tuple(wdata.shape[1:-1]))
    group = int(node.attrs.get("group", 1))
    wscale, wzp, _ = L._weight_grid(node, w, m, 0)
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in wscale])
    bias = L._bias(g, node, 2, m)
    bias = np.zeros(m, np.int64) if bias is None else bias
    lo, hi = _act(node, y)
    wq = _weights_minus_zp(node, w4, wzp)
    _acc_bound(node, wq, bias, zx)
    bias, mult, shift, general = _dsp_requant(wq, bias, zx, mult, shift, zo, lo, hi)
    xs = x.shape if rank == 2 else (x.shape[0], 1, *x.shape[1:])
    n, h, wi, c = xs
    cg = wq.shape[-1]
    depthwise = group > 1 and cg == 1 and group == c
    p = {"batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": out[0], "out_w": out[1], "out_c": m,
         "k_h": k[0], "k_w": k[1], "stride_h": s[0], "stride_w": s[1], "dil_h": d[0], "dil_w": d[1],
         "pad_top": pads[0], "pad_left": pads[1], "groups": group, "input_offset": -zx, "output_offset": zo,
         "act_min": lo, "act_max": hi}
    code = ctx.code
    xp, yp = ctx.src(node, x.name), ctx.dst(y.name)
    s4 = _packs_int4(w, wq)
    if depthwise:
        wname = _weight_array(ctx, wq[..., 0].transpose(1, 2, 0), s4,
                              f"{node.name}: depthwise weights (kH, kW, C*mult)")
    else:
        wname = _weight_array(ctx, wq, s4, f"{node.name}: weights (M, kH, kW, C/group)")
    bname = ctx.array("b", "int32_t", bias, "bias")
    mname, sname, per_channel = _requant_arrays(ctx, node, mult, shift)
    p["per_channel"] = per_channel
    p["general_requant"] = general
    kind = "depthwise " if depthwise else ("" if group == 1 else f"group {group} ")
    macs = layer_macs(ctx.graph, node)
    code.comment = (f"{node.name}: {kind}Conv {k[0]}x{k[1]} {c}->{m}, stride {s[0]}x{s[1]}"
                    f"{'' if d == (1, 1) else f', dilation {d[0]}x{d[1]}'}, out {_shape(y)}, {macs:,} MACs")
    code.body.append(f"static const ts_conv_params p = {c_struct(p)};")
    if s4:  # portable loops on every build: no im2col scratch
        code.kernel = "ts_depthwise_conv_s4" if depthwise else "ts_conv_s4"
        code.body.append(f"{code.kernel}(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp});")
    elif depthwise:
        code.kernel = "ts_depthwise_conv_s8"
        code.body.append(f"ts_depthwise_conv_s8(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp});")
    else:
        code.kernel = "ts_conv_s8"
        if group == 1:  # four im2col columns of int16, and an int8 gather buffer when C % 4 != 0 (DSP path)
            kk = k[0] * k[1] * c
            code.scratch_bytes = 8 * kk + (kk + kk % 2 if c % 4 else 0)
        code.body.append(f"ts_conv_s8(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp}, SCRATCH);")


@emits("Gemm")
def _gemm(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, w, y = L._tensor(g, node, 0), L._tensor(g, node, 1), L._tensor(g, node, 0, True)
    L.lower_node(g, node)  # the same checks as the int8 executor (transA, alpha, beta)
    sx, zx = _int8(node, a)
    so, zo = _int8(node, y)
    if len(a.shape) != 2:
        raise _err(node, f"fully connected input must be 2-D (batch, features), got {list(a.shape)}")
    wdata = L._const(node, w, "weights")
    trans_b = int(node.attrs.get("transB", 0))
    units = wdata.shape[0] if trans_b else wdata.shape[1]
    wscale, wzp, per_channel = L._weight_grid(node, w, units, 0 if trans_b else 1)
    mult, shift = quantize_multipliers([sx * float(ws) / so for ws in (wscale if per_channel else wscale[:1])])
    bias = L._bias(g, node, 2, units)
    bias = np.zeros(units, np.int64) if bias is None else bias
    lo, hi = _act(node, y)
    wq = _weights_minus_zp(node, wdata if trans_b else wdata.T, wzp)   # (N, K)
    # sum (x - zx) w + b = sum x w + (b - zx sum w): the input offset folded into the bias (exact).
    bias = bias.astype(np.int64) - zx * wq.astype(np.int64).sum(axis=1)
    _acc_bound(node, wq, bias, 0)
    bias, mult, shift, general = _dsp_requant(wq, bias, 0, mult, shift, zo, lo, hi)
    code = ctx.code
    xp, yp = ctx.src(node, a.name), ctx.dst(y.name)
    s4 = _packs_int4(w, wq)
    wname = _weight_array(ctx, wq, s4, f"{node.name}: weights (out, in)")
    bname = ctx.array("b", "int32_t", bias, f"bias - input zero point ({zx}) * sum of weights")
    mname, sname, pc = _requant_arrays(ctx, node, mult, shift)
    p = {"batches": a.shape[0], "in_features": a.shape[1], "out_features": units, "input_offset": 0,
         "output_offset": zo, "act_min": lo, "act_max": hi, "per_channel": pc, "general_requant": general}
    code.kernel = "ts_fully_connected_s4" if s4 else "ts_fully_connected_s8"
    code.comment = f"{node.name}: FullyConnected {a.shape[1]}->{units}, out {_shape(y)}, {layer_macs(g, node):,} MACs"
    code.body += [f"static const ts_fc_params p = {c_struct(p)};",
                  f"{code.kernel}(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp});"]


# ---- element-wise binary ops ------------------------------------------------------------------------------

def _bcast(node: Node, out_shape, a_shape, b_shape) -> dict:
    r = len(out_shape)

    def strides(shape):
        shape = (1,) * (r - len(shape)) + tuple(shape)
        st = _contiguous(shape)
        return [0 if shape[i] == 1 else st[i] for i in range(r)]

    shape, (sa, sb) = _merge(out_shape, strides(a_shape), strides(b_shape))
    if len(shape) > MAX_DIMS:
        raise _err(node, f"broadcasting over {len(shape)} dims; the C kernel handles {MAX_DIMS}")
    return {"ndim": len(shape), "shape": _pad_dims(shape, 1), "a_stride": _pad_dims(sa, 0),
            "b_stride": _pad_dims(sb, 0)}


def _binary_srcs(ctx: EmitContext, node: Node, y: Tensor) -> tuple[str, str]:
    """Input pointers; an input the size of the output may share its buffer (the planner's in-place)."""
    g = ctx.graph
    ptrs = []
    for name in node.inputs[:2]:
        same = g.tensors[name].size == y.size
        ptrs.append(ctx.src(node, name, strict=not same))
    return ptrs[0], ptrs[1]


def _add_general(q: dict) -> int:
    """0 when the DSP build's short ADD requantization applies (tinystudio_kernels.c, ts_add_row_dsp): inputs
    lifted by 2**21 stay below 2**29 in magnitude (int8 minus zero point < 2**8), the rescaled sum below 2**29,
    multipliers normalized, input shifts in [-30, 0], the output shift in [-23, -1] (the folded offset and
    rounding term then stay below 2**31 - 2**29)."""
    normalized = all((1 << 30) <= q[m] < (1 << 31) for m in ("m1", "m2", "mo"))
    return int(not (normalized and -30 <= q["e1"] <= 0 and -30 <= q["e2"] <= 0 and -23 <= q["eo"] <= -1))


@emits("Add", "Sub")
def _add(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, b, y = L._tensor(g, node, 0), L._tensor(g, node, 1), L._tensor(g, node, 0, True)
    (s1, z1), (s2, z2), (so, zo) = _int8(node, a), _int8(node, b), _int8(node, y)
    q = ew.add_params(s1, s2, so)
    _check_shift(node, [q["e1"], q["e2"], q["eo"]])
    lo, hi = _act(node, y)
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "a_offset": -z1, "b_offset": -z2,
         "left_shift": ew.ADD_LEFT_SHIFT, "a_multiplier": q["m1"], "a_shift": q["e1"], "b_multiplier": q["m2"],
         "b_shift": q["e2"], "out_multiplier": q["mo"], "out_shift": q["eo"], "output_offset": zo,
         "act_min": lo, "act_max": hi, "subtract": int(node.op == "Sub"), "general_requant": _add_general(q)}
    ap, bp = _binary_srcs(ctx, node, y)
    code = ctx.code
    code.kernel = "ts_add_s8"
    code.comment = f"{node.name}: {node.op} {_shape(a)} {'+' if node.op == 'Add' else '-'} {_shape(b)}, out {_shape(y)}"
    code.body += [f"static const ts_add_params p = {c_struct(p)};", f"ts_add_s8(&p, {ap}, {bp}, {ctx.dst(y.name)});"]


@emits("Mul")
def _mul(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, b, y = L._tensor(g, node, 0), L._tensor(g, node, 1), L._tensor(g, node, 0, True)
    (s1, z1), (s2, z2), (so, zo) = _int8(node, a), _int8(node, b), _int8(node, y)
    m, e = quantize_multiplier(s1 * s2 / so)
    _check_shift(node, [e])
    lo, hi = _act(node, y)
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "a_offset": -z1, "b_offset": -z2, "multiplier": m,
         "shift": e, "output_offset": zo, "act_min": lo, "act_max": hi}
    ap, bp = _binary_srcs(ctx, node, y)
    code = ctx.code
    code.kernel = "ts_mul_s8"
    code.comment = f"{node.name}: Mul {_shape(a)} * {_shape(b)}, out {_shape(y)}"
    code.body += [f"static const ts_mul_params p = {c_struct(p)};", f"ts_mul_s8(&p, {ap}, {bp}, {ctx.dst(y.name)});"]


@emits("Max", "Min")
def _minmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    L.lower_node(g, node)  # every tensor on one grid
    y = L._tensor(g, node, 0, True)
    _int8(node, y)
    ins = [n for n in node.inputs if n]
    if len(ins) == 1:
        _copy_whole(ctx, node, ins[0], y)
        return
    if len(ins) != 2:
        raise _err(node, f"{node.op} of {len(ins)} inputs: the C kernel takes 2 (chain them)")
    a, b = g.tensors[ins[0]], g.tensors[ins[1]]
    p = {"it": _bcast(node, y.shape, a.shape, b.shape), "is_min": int(node.op == "Min")}
    ap, bp = _binary_srcs(ctx, node, y)
    code = ctx.code
    code.kernel = "ts_minmax_s8"
    code.comment = f"{node.name}: {node.op} {_shape(a)}, {_shape(b)}, out {_shape(y)}"
    code.body += [f"static const ts_minmax_params p = {c_struct(p)};",
                  f"ts_minmax_s8(&p, {ap}, {bp}, {ctx.dst(y.name)});"]


# ---- unary ops as tables -------------------------------------------------------------------------------------

@emits("Relu", "Relu6", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "QuantizeLinear")
def _table(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    if not L.is_quantized(x):
        raise _err(node, f"input '{x.name}' is {x.dtype}: the generated C runs the int8 part of a model "
                         "(quantize before the first layer)")
    _int8(node, x)
    _int8(node, y)
    kernel = L.lower_node(g, node)
    table = np.asarray(kernel([np.arange(-128, 128, dtype=np.int8)])[0]).astype(np.int64)
    name = ctx.array("table", "int8_t", table, f"{node.name}: {node.op} of every int8 input value")
    code = ctx.code
    code.kernel = "ts_lut_s8"
    code.comment = f"{node.name}: {node.op} (table), {_shape(y)}"
    code.body.append(f"ts_lut_s8({ctx.src(node, x.name, strict=False)}, {ctx.dst(y.name)}, {y.size}, {name});")


# ---- pooling and reductions ---------------------------------------------------------------------------------

@emits("AveragePool", "MaxPool")
def _pool(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    _int8(node, x)
    _int8(node, y)
    L.lower_node(g, node)  # one grid for input and output
    if node.attrs.get("layout", "NCHW") != "NHWC":
        raise _err(node, "the C generator takes NHWC pooling (the TFLite form)")
    octx, _, rank, k, s, d, pads, out = L._spatial(g, node)
    lo, hi = _act(node, y)
    xs = x.shape if rank == 2 else (x.shape[0], 1, *x.shape[1:])
    n, h, wi, c = xs
    include = node.op == "AveragePool" and bool(octx.attr("count_include_pad"))
    if node.op == "AveragePool":
        counts = pool_k._window_counts((h, wi), k, s, pads, out, include)
        if (counts == 0).any():
            raise _err(node, "a pooling window holds no input cell")
    top, left, bottom, right = pads
    p = {"batches": n, "in_h": h, "in_w": wi, "channels": c, "out_h": out[0], "out_w": out[1], "k_h": k[0],
         "k_w": k[1], "stride_h": s[0], "stride_w": s[1], "dil_h": d[0], "dil_w": d[1], "pad_top": top,
         "pad_left": left, "count_h_lo": -top if include else 0, "count_h_hi": h + bottom if include else h,
         "count_w_lo": -left if include else 0, "count_w_hi": wi + right if include else wi,
         "act_min": lo, "act_max": hi}
    fn = "ts_avg_pool_s8" if node.op == "AveragePool" else "ts_max_pool_s8"
    code = ctx.code
    code.kernel = fn
    code.comment = f"{node.name}: {node.op} {k[0]}x{k[1]}, stride {s[0]}x{s[1]}, out {_shape(y)}"
    code.body += [f"static const ts_pool_params p = {c_struct(p)};",
                  f"{fn}(&p, {ctx.src(node, x.name)}, {ctx.dst(y.name)});"]


def _reduce_axes(node: Node, shape, axes) -> tuple[int, int, int]:
    """(outer, reduce, inner) for axes that form one block (size-1 dims may sit on either side)."""
    kinds = [("r" if i in axes else "k") for i, d in enumerate(shape) if d != 1]
    sizes = [d for d in shape if d != 1]
    text = "".join(kinds)
    if "r" in text and "k" in text[text.index("r"):text.rindex("r")]:
        raise _err(node, f"reducing axes {sorted(axes)} of {list(shape)}: the C kernel needs them adjacent")
    first = text.find("r")
    if first < 0:
        return int(np.prod(sizes, dtype=np.int64)), 1, 1
    last = text.rindex("r")
    outer = int(np.prod(sizes[:first], dtype=np.int64))
    red = int(np.prod(sizes[first:last + 1], dtype=np.int64))
    return outer, red, int(np.prod(sizes[last + 1:], dtype=np.int64))


def _mean(ctx: EmitContext, node: Node, x: Tensor, y: Tensor, axes, compute_sum: bool) -> None:
    (sx, zx), (so, zo) = _int8(node, x), _int8(node, y)
    m, e = quantize_multiplier(sx / so)
    outer, red, inner = _reduce_axes(node, x.shape, axes)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if count * 256 > ACC_LIMIT:
        raise _err(node, f"a sum over {count:,} values may overflow int32")
    if not compute_sum:
        m, e = pool_k.mean_multiplier(m, e, count)
    _check_shift(node, [e])
    p = {"outer": outer, "reduce": red, "inner": inner, "input_offset": -zx, "multiplier": m, "shift": e,
         "output_offset": zo}
    code = ctx.code
    code.kernel = "ts_mean_s8"
    code.comment = f"{node.name}: {'sum' if compute_sum else 'mean'} over axes {sorted(axes)} of {_shape(x)}"
    code.body += [f"static const ts_mean_params p = {c_struct(p)};",
                  f"ts_mean_s8(&p, {ctx.src(node, x.name)}, {ctx.dst(y.name)});"]


def _axes(node: Node, octx: OpContext, rank: int):
    axes = octx.attr("axes")
    if not axes:
        return None
    return tuple(sorted({norm_axis(a, rank, octx) for a in axes}))


@emits("ReduceMean", "ReduceSum")
def _reduce_mean(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    octx = node_context(g, node)
    axes = _axes(node, octx, len(x.shape))
    if axes is None:
        if octx.attr("noop_with_empty_axes"):
            L.lower_node(g, node)
            _copy_whole(ctx, node, x.name, y)
            return
        axes = tuple(range(len(x.shape)))
    _mean(ctx, node, x, y, axes, node.op == "ReduceSum")


@emits("GlobalAveragePool")
def _global_avg(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    r = len(x.shape)
    axes = tuple(range(2, r)) if node.attrs.get("layout", "NCHW") == "NCHW" else tuple(range(1, r - 1))
    _mean(ctx, node, x, y, axes, False)


@emits("ReduceMax", "ReduceMin", "GlobalMaxPool")
def _reduce_minmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    L.lower_node(g, node)
    _int8(node, x)
    _int8(node, y)
    r = len(x.shape)
    if node.op == "GlobalMaxPool":
        axes = tuple(range(2, r)) if node.attrs.get("layout", "NCHW") == "NCHW" else tuple(range(1, r - 1))
    else:
        axes = _axes(node, node_context(g, node), r) or tuple(range(r))
    outer, red, inner = _reduce_axes(node, x.shape, axes)
    p = {"outer": outer, "reduce": red, "inner": inner, "is_min": int(node.op == "ReduceMin")}
    code = ctx.code
    code.kernel = "ts_reduce_minmax_s8"
    code.comment = f"{node.name}: {node.op} over axes {list(axes)} of {_shape(x)}"
    code.body += [f"static const ts_reduce_params p = {c_struct(p)};",
                  f"ts_reduce_minmax_s8(&p, {ctx.src(node, x.name)}, {ctx.dst(y.name)});"]


@emits("Softmax")
def _softmax(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = L._tensor(g, node, 0), L._tensor(g, node, 0, True)
    _int8(node, x)
    _int8(node, y)
    L.lower_node(g, node)  # output grid 1/256, -128; beta * scale large enough
    sx = float(x.quant.scale[0])
    q = softmax_params(float(node.attrs.get("beta", 1.0)), sx)
    _check_shift(node, [q["left_shift"]])
    axis = norm_axis(int(node.attrs.get("axis", -1)), len(x.shape))
    if any(d != 1 for d in x.shape[axis + 1:]):
        raise _err(node, f"softmax over axis {axis} of {list(x.shape)}: the C kernel needs the last non-unit axis")
    depth = x.shape[axis]
    p = {"rows": x.size // max(depth, 1), "depth": depth, "input_multiplier": q["multiplier"],
         "input_left_shift": q["left_shift"], "diff_min": q["diff_min"]}
    code = ctx.code
    code.kernel = "ts_softmax_s8"
    code.comment = f"{node.name}: Softmax over {depth} values, {p['rows']} rows"
    code.body += [f"static const ts_softmax_params p = {c_struct(p)};",
                  f"ts_softmax_s8(&p, {ctx.src(node, x.name)}, {ctx.dst(y.name)});"]


# ---- data movement ------------------------------------------------------------------------------------------

def _copy_call(ctx: EmitContext, node: Node, src: str, dst: str, shape, xs, ys, table: str = "NULL") -> bool:
    dims, (mx, my) = _merge(shape, xs, ys)
    if len(dims) > MAX_DIMS:
        return False
    p = {"ndim": len(dims), "shape": _pad_dims(dims, 1), "x_stride": _pad_dims(mx, 0), "y_stride": _pad_dims(my, 0)}
    ctx.code.body.append(f"{{ static const ts_copy_params p = {c_struct(p)}; ts_copy_s8(&p, {src}, {dst}, {table}); }}")
    return True


def _copy_whole(ctx: EmitContext, node: Node, src_name: str, y: Tensor) -> None:
    code = ctx.code
    code.kernel = "memcpy"
    code.comment = f"{node.name}: {node.op} (copy), {_shape(y)}"
    code.body.append(f"memcpy({ctx.dst(y.name)}, {ctx.src(node, src_name)}, {y.nbytes});")


@emits("Concat")
def _concat(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    y = L._tensor(g, node, 0, True)
    so, zo = _int8(node, y)
    axis = norm_axis(int(node.attrs.get("axis", 1)), len(y.shape))
    ys = _contiguous(y.shape)
    yp = ctx.dst(y.name)
    code = ctx.code
    code.kernel = "ts_copy_s8"
    code.comment = f"{node.name}: Concat of {len(node.inputs)} along axis {axis}, out {_shape(y)}"
    start = 0
    for i, name in enumerate(node.inputs):
        x = g.tensors[name]
        sx, zx = _int8(node, x)
        table = "NULL"
        if not (sx == so and zx == zo):  # another grid: requantized as lower.py does (QUANTIZE int8 -> int8)
            m, e = quantize_multiplier(sx / so)
            values = ew.lookup_table(lambda q, zx=zx, m=m, e=e: ew.requantize(
                q, zp_in=zx, zp_out=zo, multiplier=m, shift=e, dtype=y.dtype), x.dtype)
            table = ctx.array(f"table{i}", "int8_t", values, f"requantization of input {i}")
        if not _copy_call(ctx, node, ctx.src(node, name), _plus(yp, start * ys[axis]), x.shape,
                          _contiguous(x.shape), ys, table):
            raise _err(node, f"concatenating {len(x.shape)}-D tensors needs more than {MAX_DIMS} dims")
        start += x.shape[axis]


def index_maps(g: Graph, node: Node) -> list[np.ndarray]:
    """For each output: the flat input index each element comes from, -1 where a fill value goes.

    The op's own reference runs on a tensor holding every element's index, so the map is exactly what
    the op does (float64 indices; the float references keep integers below 2**24 exact)."""
    octx = node_context(g, node)
    x = octx.ins[0]
    if x.size >= 1 << 24:
        raise _err(node, f"input of {x.size:,} elements is too large for an index map")
    iota = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    xs = [iota] + [None if t is None else t.data for t in octx.ins[1:]]
    if any(t is not None and t.data is None for t in octx.ins[1:]):
        raise _err(node, "indices computed at run time cannot be generated; they must be constants")
    if node.op == "Pad":  # the fill marks itself as -1
        nd = Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "value": -1.0}, node.meta)
        octx = OpContext(octx.op, nd, octx.ins, octx.outs)
    return [np.rint(np.asarray(v, dtype=np.float64)).astype(np.int64) for v in octx.op.run(octx, xs)]


def _affine(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(base, strides) when idx[i] = base + sum(i_d * stride_d), else None."""
    base = int(idx.flat[0]) if idx.size else 0
    strides = []
    for dim in range(idx.ndim):
        if idx.shape[dim] > 1:
            sel = [0] * idx.ndim
            sel[dim] = 1
            strides.append(int(idx[tuple(sel)]) - base)
        else:
            strides.append(0)
    grid = np.full(idx.shape, base, dtype=np.int64)
    for dim, st in enumerate(strides):
        shape = [1] * idx.ndim
        shape[dim] = idx.shape[dim]
        grid = grid + np.arange(idx.shape[dim], dtype=np.int64).reshape(shape) * st
    return (base, strides) if np.array_equal(grid, idx) else None


@emits("Transpose", "Slice", "Split", "Gather", "Resize", "Pad")
def _move(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x = L._tensor(g, node, 0)
    _int8(node, x)
    if node.op == "Pad":
        L.lower_node(g, node)
        fill = 0
        if node.attrs.get("mode", "constant") == "constant":
            so, zo = L._grid(node, L._tensor(g, node, 0, True))
            fill = int(ew.quantize_float(np.array([node.attrs.get("value", 0.0)]), so, zo, "int8")[0])
    else:
        L.lower_node(g, node)  # one grid, Resize only nearest
        fill = 0
    code = ctx.code
    code.kernel = "ts_copy_s8"
    code.comment = f"{node.name}: {node.op} {_shape(x)} -> " + ", ".join(_shape(g.tensors[o]) for o in node.outputs)
    src = ctx.src(node, x.name)
    for k, (out_name, idx) in enumerate(zip(node.outputs, index_maps(g, node))):
        y = g.tensors[out_name]
        _int8(node, y)
        yp = ctx.dst(out_name)
        ys = _contiguous(y.shape)
        inside = idx >= 0
        if inside.all():
            fit = _affine(idx) if idx.size else (0, [0] * idx.ndim)
            if fit is not None and _copy_call(ctx, node, _plus(src, fit[0]), yp, idx.shape, fit[1], ys):
                continue
        else:  # a fill around a box of copied elements (Pad), or something irregular
            box = _box(inside)
            if box is None:
                code.body.append(f"memset({yp}, {fill}, {y.nbytes});")
                continue
            fit = _affine(idx[box]) if inside[box].all() else None
            if fit is not None:
                code.body.append(f"memset({yp}, {fill}, {y.nbytes});")
                start = sum(b.start * st for b, st in zip(box, ys))
                if _copy_call(ctx, node, _plus(src, fit[0]), _plus(yp, start), idx[box].shape, fit[1], ys):
                    continue
                code.body.pop()
        code.kernel = "ts_gather_s8"
        table = ctx.array(f"index{k}", "int32_t", idx.reshape(-1),
                          f"{node.name}: source element of each output element (-1: fill)")
        code.body.append(f"ts_gather_s8({src}, {table}, {y.size}, {fill}, {yp});")


def _plus(ptr: str, offset: int) -> str:
    return f"{ptr} + {offset}" if offset else ptr


def _box(inside: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the True cells, or None when there are none."""
    if not inside.any():
        return None
    box = []
    for d in range(inside.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(inside.ndim) if a != d)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def layer_macs(g: Graph, node: Node) -> int:
    octx = node_context(g, node)
    return int(octx.op.cost(octx).macs)


def is_view(node: Node) -> bool:
    op = get_op(node.op)
    return op is not None and (op.is_view or op.is_noop)


def emit_layer(ctx: EmitContext, node: Node, index: int) -> LayerCode:
    code = ctx.begin(index)
    fn = EMIT.get(node.op)
    if fn is None:
        raise _err(node, f"no C kernel for {node.op} (generated ops: {', '.join(sorted(EMIT))})")
    fn(ctx, node)
    return code


__all__ = ["Access", "EMIT", "EmitContext", "LayerCode", "emit_layer", "index_maps", "is_view", "layer_macs"]
