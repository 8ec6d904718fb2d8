"""IR -> PyTorch: a trainable nn.Module that computes exactly what engine.execute.run_graph computes.

    m = to_torch(graph)                 # float constants with a learned role become nn.Parameters
    y = m(torch.from_numpy(x))          # forward(*inputs) in graph.inputs order
    m.train(); ...SGD steps...          # BatchNormalization uses batch statistics, Dropout drops
    g2 = from_torch_weights(graph, m)   # the trained values written back into the graph's constants

Which constants are parameters follows the op library's own count (OpDef.param_inputs, a constant float
operand of a binary op, an embedding table under Gather), so the profiler's parameter count and what
training touches agree; BatchNormalization's running mean/var and everything else are buffers. Quantized
integer constants become their real values (scale * (q - zero_point)); writing back re-quantizes them on
their stored grid. Every op is planned once at construction (geometry, pads, index maps computed with the
op library's own helpers) so forward only calls torch functions.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import GraphError
from engine.ir import FLOAT_DTYPES, INT_DTYPES, Graph, Quant, Tensor, _INT4
from engine.ops.base import OpContext, norm_axis
from engine.ops.elementwise import _Binary
from engine.validate import infer_shapes, node_context, topological_order

Step = Callable[[list, nn.Module], list]  # (input values, module) -> output values
_PLANNERS: dict[str, Callable[[OpContext], Step]] = {}

_TORCH_DTYPE = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
                "int4": torch.int8, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
                "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}


def plans(*ops: str):
    def deco(fn):
        for op in ops:
            _PLANNERS[op] = fn
        return fn
    return deco


def exported_ops() -> list[str]:
    return sorted(_PLANNERS)


# ---- helpers ---------------------------------------------------------------------------------------

def _act(y: torch.Tensor, act: str) -> torch.Tensor:
    if act == "none":
        return y
    if act == "relu":
        return F.relu(y)
    if act == "relu6":
        return torch.clamp(y, 0.0, 6.0)
    if act == "relu_n1_to_1":
        return torch.clamp(y, -1.0, 1.0)
    if act == "tanh":
        return torch.tanh(y)
    if act == "sigmoid":
        return torch.sigmoid(y)
    raise ValueError(act)


def _cf(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Channels-last -> channels-first (torch's layout); NCHW passes through."""
    return x if layout == "NCHW" else x.movedim(-1, 1)


def _cl(y: torch.Tensor, layout: str) -> torch.Tensor:
    return y if layout == "NCHW" else y.movedim(1, -1).contiguous()


def _pad_list(pads: list[int], r: int) -> list[int]:
    """ONNX [b1, .., br, e1, .., er] -> F.pad's last-dim-first [br, er, ..., b1, e1]."""
    out: list[int] = []
    for i in reversed(range(r)):
        out += [pads[i], pads[i + r]]
    return out


def fake_quant(x: torch.Tensor, quant: Quant, dtype: str) -> torch.Tensor:
    """Round to the quantization grid of (quant, dtype) and back to real values.

    Straight-through estimator: the rounding passes gradients unchanged, the clamp to the integer range
    stops them (as torch.fake_quantize does). Computed in float64 so ties round exactly like the numpy
    reference (np.rint: half to even, as torch.round).
    """
    info = _INT4 if dtype == "int4" else np.iinfo(np.dtype(dtype))
    shape = [1] * x.dim()
    if quant.axis is not None:
        shape[quant.axis] = -1
    s = torch.as_tensor(quant.scale, dtype=torch.float64, device=x.device).reshape(shape)
    z = torch.as_tensor(quant.zero_point, dtype=torch.float64, device=x.device).reshape(shape)
    v = x.double() / s
    v = v + (torch.round(v) - v).detach()
    q = torch.clamp(v + z, float(info.min), float(info.max))
    return ((q - z) * s).to(x.dtype if x.is_floating_point() else torch.float32)


# ---- the module ------------------------------------------------------------------------------------

class GraphModule(nn.Module):
    """An IR graph as an nn.Module. `tensor_keys` maps graph tensor names to state_dict keys."""

    def __init__(self, graph: Graph, simulate_quant: bool = False):
        super().__init__()
        g = infer_shapes(graph)
        self.graph_name = g.name
        self.input_names = list(g.inputs)
        self.output_names = list(g.outputs)
        self.simulate_quant = simulate_quant
        self.params = nn.ParameterDict()
        self.consts = nn.Module()  # buffers live here so their names never clash with module attributes
        self.tensor_keys: dict[str, str] = {}
        self._inputs = {n: g.tensors[n] for n in g.inputs}
        roles = _constant_roles(g)
        used: set[str] = set()
        for name, role in roles.items():
            t = g.tensors[name]
            key = _key(name, used)
            value = _const_value(t)
            if role == "param" and value.is_floating_point():
                self.params[key] = nn.Parameter(value)
                self.tensor_keys[name] = "params." + key
            else:
                self.consts.register_buffer(key, value)
                self.tensor_keys[name] = "consts." + key
        self._const_attr = {name: key.split(".", 1) for name, key in self.tensor_keys.items()}
        self._steps: list[tuple[str, list[str], list[str], Step]] = []
        self._out_quant: dict[str, tuple[Quant, str]] = {}
        for node in topological_order(g):
            planner = _PLANNERS.get(node.op)
            if planner is None:
                raise GraphError(f"no PyTorch equivalent for op '{node.op}' (exportable: "
                                 f"{', '.join(exported_ops())})", node.name, node.op)
            self._steps.append((node.name, list(node.inputs), list(node.outputs), planner(node_context(g, node))))
            for o in node.outputs:
                t = g.tensors[o]
                if t.quant is not None and t.dtype in INT_DTYPES:
                    self._out_quant[o] = (t.quant, t.dtype)

    def tensor(self, name: str) -> torch.Tensor:
        """The parameter or buffer that holds graph constant `name`."""
        holder, key = self._const_attr[name]
        return self.params[key] if holder == "params" else getattr(self.consts, key)

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"graph '{self.graph_name}' takes {len(self.input_names)} inputs "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env: dict[str, torch.Tensor] = {}
        for name, x in zip(self.input_names, inputs):
            t = self._inputs[name]
            x = torch.as_tensor(x)
            if tuple(x.shape) != t.shape:
                raise ValueError(f"input '{name}' has shape {list(x.shape)}, the model expects {list(t.shape)}")
            if t.quant is not None and t.dtype in INT_DTYPES and not x.is_floating_point():
                x = _dequant(x, t.quant)
            elif t.dtype in FLOAT_DTYPES or t.quant is not None:
                x = x.float()
            env[name] = x
        for name in self._const_attr:
            env[name] = self.tensor(name)
        for _, ins, outs, step in self._steps:
            ys = step([env[i] if i else None for i in ins], self)
            for o, y in zip(outs, ys):
                if self.simulate_quant and o in self._out_quant:
                    y = fake_quant(y, *self._out_quant[o])
                env[o] = y
        res = tuple(env[o] for o in self.output_names)
        return res[0] if len(res) == 1 else res


def _dequant(q: torch.Tensor, quant: Quant) -> torch.Tensor:
    shape = [1] * q.dim()
    if quant.axis is not None:
        shape[quant.axis] = -1
    s = torch.as_tensor(quant.scale, dtype=torch.float64, device=q.device).reshape(shape)
    z = torch.as_tensor(quant.zero_point, dtype=torch.float64, device=q.device).reshape(shape)
    return ((q.double() - z) * s).float()


def _key(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "t"
    if base[0].isdigit():
        base = "t_" + base
    key, i = base, 1
    while key in used:
        key, i = f"{base}_{i}", i + 1
    used.add(key)
    return key


def _const_value(t: Tensor) -> torch.Tensor:
    if t.quant is not None or t.dtype in FLOAT_DTYPES:
        return torch.from_numpy(np.array(t.float_data(), dtype=np.float32))
    return torch.from_numpy(np.array(t.data))


def _constant_roles(g: Graph) -> dict[str, str]:
    """Constant tensor name -> "param" or "buffer" (see module docstring)."""
    roles: dict[str, str] = {}
    stats: set[str] = set()
    for node in g.nodes:
        ctx = node_context(g, node)
        learned: set[int] = set(ctx.op.param_inputs)
        if isinstance(ctx.op, _Binary) and node.op != "PRelu":
            learned = {0, 1}
        if node.op == "Gather":
            learned = {0}
        if node.op == "BatchNormalization":
            learned = {1, 2}
            stats.update(n for n in node.inputs[3:5] if n)
        for i, name in enumerate(node.inputs):
            t = g.tensors.get(name) if name else None
            if t is None or t.data is None:
                continue
            if i in learned and roles.get(name) != "param":
                roles[name] = "param"
            roles.setdefault(name, "buffer")
    for name in g.outputs:
        if g.tensors[name].data is not None:
            roles.setdefault(name, "buffer")
    for name in stats:
        roles[name] = "buffer"  # running statistics are updated in place, never by gradients
    return roles


def to_torch(graph: Graph, simulate_quant: bool = False) -> GraphModule:
    """A trainable nn.Module equivalent to `graph` (see module docstring).

    With `simulate_quant`, every quantized activation is rounded to its grid with a straight-through
    estimator, as run_graph(simulate_quant=True) does (quantization-aware training).
    """
    return GraphModule(graph, simulate_quant)


def from_torch_weights(graph: Graph, module: GraphModule) -> Graph:
    """A copy of `graph` whose constants hold the module's current parameter and buffer values.

    Float constants keep their dtype; quantized integer constants are re-quantized on their own
    scale/zero point (values outside the grid clip; re-calibration is the quantization pass's job).
    """
    out = graph.copy()
    for name in module.tensor_keys:
        t = out.tensors.get(name)
        if t is None or t.data is None:
            raise GraphError(f"constant '{name}' of the trained module is not a constant of graph '{graph.name}'")
        value = module.tensor(name).detach().cpu().numpy()
        if tuple(value.shape) != t.shape:
            raise GraphError(f"constant '{name}' has shape {list(t.shape)} in the graph but "
                             f"{list(value.shape)} in the module")
        if t.quant is not None and t.dtype in INT_DTYPES:
            data = t.quant.quantize(value.astype(np.float32), t.dtype)
        else:
            data = value.astype(t.data.dtype)
        out.tensors[name] = Tensor(t.name, t.shape, t.dtype, t.quant, data, dict(t.meta))
    return out


# ---- spatial ops -----------------------------------------------------------------------------------

@plans("Conv")
def _conv(ctx):
    n, c, m, g, k, s, d, pads, out, layout = ctx.op._geometry(ctx)
    r = len(k)
    conv = F.conv1d if r == 1 else F.conv2d
    sym = all(pads[i] == pads[i + r] for i in range(r))
    act = ctx.attr("activation")

    def step(xs, mod):
        x, w, b = _cf(xs[0], layout), xs[1], xs[2] if len(xs) > 2 else None
        if layout == "NHWC":
            w = w.movedim(-1, 1)  # (M, kH, kW, C/g) -> (M, C/g, kH, kW)
        if not sym:
            x = F.pad(x, _pad_list(pads, r))
        y = conv(x, w, b, tuple(s), tuple(pads[:r]) if sym else 0, tuple(d), g)
        return [_cl(_act(y, act), layout)]
    return step


@plans("ConvTranspose")
def _conv_transpose(ctx):
    n, c, m, g, k, s, d, pads, op, out, layout = ctx.op._geometry(ctx)
    act = ctx.attr("activation")

    def step(xs, mod):
        x, w, b = _cf(xs[0], layout), xs[1], xs[2] if len(xs) > 2 else None
        if layout == "NHWC":
            w = w.permute(3, 0, 1, 2)  # (M, kH, kW, C) -> (C, M, kH, kW)
        # Full (uncropped) transposed conv, then output_padding zeros and the pads crop, as the reference.
        y = F.conv_transpose2d(x, w, None, tuple(s), 0, 0, g, tuple(d))
        y = F.pad(y, [0, op[1], 0, op[0]])
        y = y[:, :, pads[0]: pads[0] + out[0], pads[1]: pads[1] + out[1]]
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return [_cl(_act(y, act), layout)]
    return step


def _window_geometry(ctx):
    n, c, spatial, k, s, d, pads, out, layout = ctx.op._geometry(ctx)
    r = len(k)
    # Explicit pads, plus extra right cells so ceil-mode windows fit (the reference's `windows`).
    width = list(pads)
    for i in range(r):
        need = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1
        have = spatial[i] + pads[i] + pads[i + r]
        width[i + r] += max(0, need - have)
    return spatial, k, s, d, pads, width, out, layout, r


@plans("MaxPool")
def _max_pool(ctx):
    spatial, k, s, d, pads, width, out, layout, r = _window_geometry(ctx)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[r - 1]
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    act = ctx.attr("activation")

    def step(xs, mod):
        x = F.pad(_cf(xs[0], layout), _pad_list(width, r), value=float("-inf"))
        y = pool(x, tuple(k), tuple(s), 0, tuple(d))[crop]
        return [_cl(_act(y, act), layout)]
    return step


@plans("AveragePool")
def _avg_pool(ctx):
    spatial, k, s, d, pads, width, out, layout, r = _window_geometry(ctx)
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[r - 1]
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    # Divisor per output cell: cells of the input, plus explicit pads when count_include_pad (ONNX rule:
    # cells added only for ceil_mode never count).
    ones = torch.ones((1, 1, *spatial))
    if ctx.attr("count_include_pad"):
        ones = F.pad(ones, _pad_list(pads, r), value=1.0)
        ones = F.pad(ones, _pad_list([0] * r + [width[i + r] - pads[i + r] for i in range(r)], r))
    else:
        ones = F.pad(ones, _pad_list(width, r))
    area = float(np.prod(k))
    count = torch.clamp(pool(ones, tuple(k), tuple(s), 0) * area, min=1.0)[crop]
    act = ctx.attr("activation")

    def step(xs, mod):
        x = F.pad(_cf(xs[0], layout), _pad_list(width, r))
        y = pool(x, tuple(k), tuple(s), 0)[crop] * area / count.to(x.device)
        return [_cl(_act(y, act), layout)]
    return step


@plans("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx):
    layout = ctx.attr("layout")
    is_max = ctx.node.op == "GlobalMaxPool"

    def step(xs, mod):
        x = _cf(xs[0], layout)
        dims = tuple(range(2, x.dim()))
        y = torch.amax(x, dim=dims, keepdim=True) if is_max else x.mean(dim=dims, keepdim=True)
        return [_cl(y, layout)]
    return step


@plans("BatchNormalization")
def _batch_norm(ctx):
    layout = ctx.attr("layout")
    eps = float(ctx.attr("epsilon"))
    # ONNX: running = running * momentum + batch * (1 - momentum); torch weighs the batch by `momentum`.
    momentum = 1.0 - float(ctx.attr("momentum"))

    def step(xs, mod):
        x, scale, b, mean, var = xs
        if x.dim() == 1:  # a single sample of C features (the reference's rank-1 case)
            return [(x - mean) / torch.sqrt(var + eps) * scale + b]
        x = _cf(x, layout)
        y = F.batch_norm(x, mean, var, scale, b, training=mod.training, momentum=momentum, eps=eps)
        return [_cl(y, layout)]
    return step


@plans("LayerNormalization")
def _layer_norm(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    eps = float(ctx.attr("epsilon"))
    dims = tuple(range(axis, len(ctx.shape(0))))

    def step(xs, mod):
        x = xs[0]
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        y = (x - mean) / torch.sqrt(var + eps) * xs[1]
        if len(xs) > 2 and xs[2] is not None:
            y = y + xs[2]
        return [y]
    return step


@plans("LRN")
def _lrn(ctx):
    # PyTorch's window matches ONNX's for the odd sizes the op allows (size // 2 channels on either side).
    size, alpha, beta, k = ctx.attr("size"), float(ctx.attr("alpha")), float(ctx.attr("beta")), float(ctx.attr("bias"))
    return lambda xs, mod: [F.local_response_norm(xs[0], size, alpha=alpha, beta=beta, k=k)]


@plans("Resize")
def _resize(ctx):
    n, c, spatial, out, sc, layout = ctx.op._geometry(ctx)
    mode = ctx.attr("mode")
    ctm = ctx.attr("coordinate_transformation_mode")
    exact = all(abs(o - i * f) < 1e-6 for i, o, f in zip(spatial, out, sc))
    interp = None
    # F.interpolate reproduces these cases exactly when the scale is out/in (else the index math below).
    if exact and len(spatial) in (1, 2):
        if mode == "nearest" and ctm == "asymmetric" and ctx.attr("nearest_mode") == "floor":
            interp = dict(mode="nearest")
        elif mode == "linear" and ctm == "align_corners":
            interp = dict(mode=("linear", "bilinear")[len(spatial) - 1], align_corners=True)
        elif mode == "linear" and (ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and min(out) > 1)):
            interp = dict(mode=("linear", "bilinear")[len(spatial) - 1], align_corners=False)
    maps = []
    for ax, (i_size, o_size, f) in enumerate(zip(spatial, out, sc)):
        src = ctx.op._source(ctx, None, i_size, o_size, f)
        if mode == "nearest":
            nm = ctx.attr("nearest_mode")
            idx = {"floor": np.floor(src), "ceil": np.ceil(src), "round_prefer_ceil": np.floor(src + 0.5)}.get(
                nm, np.ceil(src - 0.5))
            maps.append((torch.from_numpy(np.clip(idx, 0, i_size - 1).astype(np.int64)), None, None))
        else:
            src = np.clip(src, 0, i_size - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, i_size - 1)
            maps.append((torch.from_numpy(lo), torch.from_numpy(hi), torch.from_numpy((src - lo).astype(np.float32))))

    def step(xs, mod):
        y = _cf(xs[0], layout)
        if interp is not None:
            return [_cl(F.interpolate(y, size=tuple(out), **interp), layout)]
        for ax, (lo, hi, w) in enumerate(maps):
            axis = 2 + ax
            lo = lo.to(y.device)
            if hi is None:
                y = y.index_select(axis, lo)
            else:
                shape = [1] * y.dim()
                shape[axis] = -1
                w = w.to(y.device).reshape(shape)
                y = y.index_select(axis, lo) * (1 - w) + y.index_select(axis, hi.to(y.device)) * w
        return [_cl(y, layout)]
    return step


# ---- matrix products -------------------------------------------------------------------------------

@plans("Gemm")
def _gemm(ctx):
    alpha, beta = float(ctx.attr("alpha")), float(ctx.attr("beta"))
    ta, tb, act = ctx.attr("transA"), ctx.attr("transB"), ctx.attr("activation")

    def step(xs, mod):
        a, b = xs[0], xs[1]
        y = (a.t() if ta else a) @ (b.t() if tb else b)
        if alpha != 1.0:
            y = y * alpha
        if len(xs) > 2 and xs[2] is not None:
            y = y + (xs[2] * beta if beta != 1.0 else xs[2])
        return [_act(y, act)]
    return step


@plans("MatMul")
def _matmul(ctx):
    return lambda xs, mod: [torch.matmul(xs[0], xs[1])]


# ---- element-wise ----------------------------------------------------------------------------------

def _int_div(a, b):
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


_BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": _int_div,
           "Pow": lambda a, b: torch.pow(a.float(), b.float()), "Max": torch.maximum, "Min": torch.minimum,
           "PRelu": lambda x, slope: torch.where(x >= 0, x, x * slope)}


@plans(*_BINARY)
def _binary(ctx):
    fn = _BINARY[ctx.node.op]
    act = ctx.attr("activation") if "activation" in ctx.op.attrs else "none"

    def step(xs, mod):
        y = fn(xs[0], xs[1])
        return [_act(y, act) if y.is_floating_point() else y]
    return step


def _clip(ctx):
    lo, hi = float(ctx.attr("min")), float(ctx.attr("max"))
    return lambda x: torch.clamp(x, lo, hi)


_UNARY = {
    "Relu": lambda c: F.relu,
    "Relu6": lambda c: lambda x: torch.clamp(x, 0.0, 6.0),
    "Clip": _clip,
    "LeakyRelu": lambda c: lambda x: torch.where(x >= 0, x, x * float(c.attr("alpha"))),
    "Sigmoid": lambda c: torch.sigmoid,
    "Tanh": lambda c: torch.tanh,
    "HardSigmoid": lambda c: lambda x: torch.clamp(float(c.attr("alpha")) * x + float(c.attr("beta")), 0.0, 1.0),
    "HardSwish": lambda c: F.hardswish,
    "Gelu": lambda c: lambda x: F.gelu(x, approximate=c.attr("approximate")),
    "Erf": lambda c: torch.erf,
    "Exp": lambda c: torch.exp,
    "Log": lambda c: torch.log,
    "Sqrt": lambda c: torch.sqrt,
    "Neg": lambda c: torch.neg,
    "Abs": lambda c: torch.abs,
    "Reciprocal": lambda c: torch.reciprocal,
    "Floor": lambda c: torch.floor,
    "Ceil": lambda c: torch.ceil,
    "Identity": lambda c: lambda x: x,
    "Cast": lambda c: lambda x: x.to(_TORCH_DTYPE[c.attr("to")]),
}


@plans(*_UNARY)
def _unary(ctx):
    fn = _UNARY[ctx.node.op](ctx)
    return lambda xs, mod: [fn(xs[0])]


@plans("Dropout")
def _dropout(ctx):
    ratio = float(ctx.const(1).reshape(())) if ctx.has(1) and ctx.ins[1].data is not None else float(ctx.attr("ratio"))
    return lambda xs, mod: [F.dropout(xs[0], ratio, training=mod.training)]


@plans("Softmax", "LogSoftmax")
def _softmax(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    beta = float(ctx.attr("beta"))
    fn = F.softmax if ctx.node.op == "Softmax" else F.log_softmax
    return lambda xs, mod: [fn(xs[0] * beta if beta != 1.0 else xs[0], dim=axis)]


@plans("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(ctx):
    axes = ctx.op._axes(ctx)
    keep = bool(ctx.attr("keepdims"))
    fn = {"ReduceMean": torch.mean, "ReduceSum": torch.sum, "ReduceMax": torch.amax,
          "ReduceMin": torch.amin}[ctx.node.op]
    if not axes:
        return lambda xs, mod: [xs[0]]
    return lambda xs, mod: [fn(xs[0], dim=axes, keepdim=keep)]


# ---- quantization ----------------------------------------------------------------------------------

@plans("QuantizeLinear")
def _quantize(ctx):
    out = ctx.outs[0]
    if out.quant is None:
        raise ctx.error(f"output '{out.name}' has no quantization parameters")
    return lambda xs, mod: [fake_quant(xs[0], out.quant, out.dtype)]


@plans("DequantizeLinear")
def _dequantize(ctx):
    # Values are carried as real numbers already (integer constants were dequantized at construction).
    return lambda xs, mod: [xs[0].float()]


# ---- data movement ---------------------------------------------------------------------------------

@plans("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _view(ctx):
    shape = tuple(ctx.outs[0].shape)
    return lambda xs, mod: [xs[0].reshape(shape)]


@plans("Transpose")
def _transpose(ctx):
    perm = ctx.op._perm(ctx)
    return lambda xs, mod: [xs[0].permute(*perm)]


@plans("Concat")
def _concat(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    return lambda xs, mod: [torch.cat(xs, dim=axis)]


@plans("Split")
def _split(ctx):
    axis, sizes = ctx.op._sizes(ctx)
    return lambda xs, mod: list(torch.split(xs[0], sizes, dim=axis))


@plans("Slice")
def _slice(ctx):
    sl = ctx.op._slices(ctx)
    # torch slicing has no negative steps: those axes become an index_select with precomputed indices.
    picks = []
    for axis, (s, dim) in enumerate(zip(sl, ctx.shape(0))):
        if s.step is not None and s.step < 0:
            picks.append((axis, torch.arange(*s.indices(dim), dtype=torch.int64)))
    pos = tuple(slice(None) if s.step is not None and s.step < 0 else s for s in sl)

    def step(xs, mod):
        y = xs[0][pos]
        for axis, idx in picks:
            y = y.index_select(axis, idx.to(y.device))
        return [y]
    return step


@plans("Gather")
def _gather(ctx):
    axis = norm_axis(ctx.attr("axis"), len(ctx.shape(0)), ctx)
    out_shape = tuple(ctx.outs[0].shape)

    def step(xs, mod):
        x, idx = xs[0], xs[1].long()
        dim = x.shape[axis]
        idx = torch.where(idx < 0, idx + dim, idx)
        return [x.index_select(axis, idx.reshape(-1)).reshape(out_shape)]
    return step


@plans("Pad")
def _pad(ctx):
    pads, mode, value = ctx.attr("pads"), ctx.attr("mode"), float(ctx.attr("value"))
    shape = ctx.shape(0)
    r = len(shape)
    grow = [max(p, 0) for p in pads]
    crop = tuple(slice(-min(pads[i], 0), shape[i] + grow[i] + grow[i + r] + min(pads[i + r], 0)) for i in range(r))
    # reflect / edge: the source index of every padded cell is numpy's own np.pad of an arange.
    maps = [(i, torch.from_numpy(np.pad(np.arange(shape[i]), (grow[i], grow[i + r]), mode=mode)))
            for i in range(r) if mode != "constant" and (grow[i] or grow[i + r])]

    def step(xs, mod):
        x = xs[0]
        if mode == "constant":
            y = F.pad(x, _pad_list(grow, r), value=value) if any(grow) else x
        else:
            y = x
            for axis, idx in maps:
                y = y.index_select(axis, idx.to(y.device))
        return [y[crop]]
    return step
