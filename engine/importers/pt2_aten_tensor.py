"""ATen op handlers for element-wise ops, data movement (reshape, permute, concatenation, slicing, indexing,
padding), tensor creation and reductions (see engine/importers/pt2_aten_handler.py for what a handler gets).
"""
from __future__ import annotations

import numpy as np

from engine.importers.pt2_aten_handler import INT64_MAX, Handler, Ref
from engine.registry import registrar

TENSOR_HANDLERS: dict[str, Handler] = {}
handles = registrar(TENSOR_HANDLERS)


# ---- handlers: element-wise ------------------------------------------------------------------------

_UNARY = {"relu": "Relu", "relu_": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log",
          "sqrt": "Sqrt", "neg": "Neg", "abs": "Abs", "reciprocal": "Reciprocal", "floor": "Floor",
          "ceil": "Ceil", "erf": "Erf", "hardswish": "HardSwish", "relu6": "Relu6"}


@handles(*(f"{k}.default" for k in _UNARY))
def _unary(cx, a, outs):
    cx.emit(_UNARY[cx.current_target.split(".")[0]], [cx.t(a["self"])], outs[0])


@handles("gelu.default")
def _gelu(cx, a, outs):
    cx.emit("Gelu", [cx.t(a["self"])], outs[0], approximate=a["approximate"] if a["approximate"] != "none" else None)


@handles("leaky_relu.default")
def _leaky_relu(cx, a, outs):
    cx.emit("LeakyRelu", [cx.t(a["self"])], outs[0], alpha=float(a["negative_slope"]))


@handles("hardtanh.default", "clamp.default", "clamp_min.default", "clamp_max.default")
def _clip(cx, a, outs):
    lo = a.get("min_val", a.get("min"))
    hi = a.get("max_val", a.get("max"))
    if lo == 0 and hi == 6:
        cx.emit("Relu6", [cx.t(a["self"])], outs[0])
    elif lo == 0 and hi is None:
        cx.emit("Relu", [cx.t(a["self"])], outs[0])
    else:
        cx.emit("Clip", [cx.t(a["self"])], outs[0], min=None if lo is None else float(lo),
                max=None if hi is None else float(hi))


@handles("hardsigmoid.default")
def _hardsigmoid(cx, a, outs):
    cx.emit("HardSigmoid", [cx.t(a["self"])], outs[0], alpha=1.0 / 6.0, beta=0.5)


@handles("silu.default")
def _silu(cx, a, outs):
    x = cx.t(a["self"])
    cx.emit("Mul", [x, cx.emit("Sigmoid", [x], outs[0] + "/sigmoid")], outs[0])


@handles("rsqrt.default")
def _rsqrt(cx, a, outs):
    cx.emit("Reciprocal", [cx.emit("Sqrt", [cx.t(a["self"])], outs[0] + "/sqrt")], outs[0])


@handles("softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default")
def _softmax(cx, a, outs):
    op = "LogSoftmax" if "log" in cx.current_target else "Softmax"
    cx.emit(op, [cx.t(a["self"])], outs[0], axis=int(a["dim"]))


@handles("prelu.default", "_prelu_kernel.default")
def _prelu(cx, a, outs):
    x, w = cx.t(a["self"]), cx.t(a["weight"])
    rank = len(cx.g.tensors[x].shape)
    if rank >= 3 and cx.g.tensors[w].shape[0] > 1:  # torch applies one slope per channel (dim 1)
        w = cx.emit("Reshape", [w], w + "/per_channel", shape=[-1] + [1] * (rank - 2))
    cx.emit("PRelu", [x, w], outs[0])


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
           "minimum": "Min"}


@handles("add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "mul.Tensor", "mul.Scalar", "div.Tensor",
         "div.Scalar", "div.Tensor_mode", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "maximum.default",
         "minimum.default", "rsub.Scalar", "rsub.Tensor")
def _binary(cx, a, outs):
    name = cx.current_target.split(".")[0]
    self_ = a["self"]
    other = a.get("other", a.get("exponent"))
    like = self_ if isinstance(self_, Ref) else other
    if not isinstance(like, Ref):
        raise cx.fail("an operation on two Python scalars has no tensor to import")
    x, y = cx.operand(self_, like), cx.operand(other, like)
    alpha = a.get("alpha", 1)
    if name == "rsub":  # other - alpha * self
        if alpha != 1:
            x = cx.emit("Mul", [x, cx.operand(alpha, like)], outs[0] + "/alpha")
        cx.emit("Sub", [y, x], outs[0])
        return
    if alpha not in (None, 1):
        y = cx.emit("Mul", [y, cx.operand(alpha, like)], outs[0] + "/alpha")
    mode = a.get("rounding_mode")
    if mode is not None:
        if mode != "floor" or cx.g.tensors[x].dtype not in ("float32", "float16", "float64"):
            raise cx.fail(f"division with rounding_mode '{mode}' on {cx.g.tensors[x].dtype} is not supported")
        cx.emit("Floor", [cx.emit("Div", [x, y], outs[0] + "/div")], outs[0])
        return
    cx.emit(_BINARY[name], [x, y], outs[0])


# ---- handlers: data movement -----------------------------------------------------------------------

@handles("view.default", "reshape.default", "_unsafe_view.default", "view_copy.default", "flatten.using_ints",
         "unflatten.int")
def _reshape(cx, a, outs):
    x = cx.t(a["self"])
    shape = list(cx.declared[outs[0]][0])
    if cx.current_target.startswith("flatten") and len(shape) == 2 and a.get("end_dim", -1) in (-1, len(
            cx.g.tensors[x].shape) - 1):
        cx.emit("Flatten", [x], outs[0], axis=int(a["start_dim"]) % len(cx.g.tensors[x].shape))
        return
    cx.emit("Reshape", [x], outs[0], shape=shape)


@handles("squeeze.default", "squeeze.dim", "squeeze.dims")
def _squeeze(cx, a, outs):
    x = cx.t(a["self"])
    dims = a.get("dim")
    shape = cx.g.tensors[x].shape
    if dims is None:
        axes = None
    else:
        dims = dims if isinstance(dims, list) else [dims]
        axes = [d % len(shape) for d in dims if shape[d] == 1]  # torch ignores non-1 dims
        if not axes:
            cx.identity(a["self"], outs[0])
            return
    cx.emit("Squeeze", [x], outs[0], axes=axes)


@handles("unsqueeze.default")
def _unsqueeze(cx, a, outs):
    cx.emit("Unsqueeze", [cx.t(a["self"])], outs[0], axes=[int(a["dim"])])


@handles("permute.default", "t.default", "transpose.int", "numpy_T.default")
def _permute(cx, a, outs):
    x = cx.t(a["self"])
    r = len(cx.g.tensors[x].shape)
    if cx.current_target.startswith("permute"):
        perm = [d % r for d in a["dims"]]
    elif cx.current_target.startswith("transpose"):
        perm = list(range(r))
        d0, d1 = a["dim0"] % r, a["dim1"] % r
        perm[d0], perm[d1] = perm[d1], perm[d0]
    else:
        perm = list(range(r))[::-1]
    if perm == list(range(r)):
        cx.identity(a["self"], outs[0])
        return
    y = cx.emit("Transpose", [x], outs[0], perm=perm)
    if r == 2 and cx.is_const(y) and cx.is_const(x):
        cx.transposed_of[y] = x


@handles("cat.default", "concat.default")
def _cat(cx, a, outs):
    cx.emit("Concat", [cx.t(t) for t in a["tensors"]], outs[0], axis=int(a["dim"]))


@handles("split.Tensor", "split_with_sizes.default", "chunk.default", "unbind.int", "tensor_split.sections")
def _split(cx, a, outs):
    x = a["self"]
    names = outs[0] if len(outs) == 1 and isinstance(outs[0], list) else outs
    axis = int(a["dim"]) % len(cx.shape(x))
    if cx.current_target.startswith("unbind"):
        parts = cx.emit("Split", [cx.t(x)], [f"{n}/slice" for n in names], axis=axis)
        for p, n in zip(parts, names):
            cx.emit("Squeeze", [p], n, axes=[axis])
        return
    sizes = [cx.declared[n][0][axis] for n in names]
    cx.emit("Split", [cx.t(x)], list(names), axis=axis, split=sizes)


@handles("slice.Tensor", "slice_copy.Tensor")
def _slice(cx, a, outs):
    start = a["start"] if a["start"] is not None else 0
    end = a["end"] if a["end"] is not None else INT64_MAX
    end = min(end, INT64_MAX)
    if start == 0 and end >= cx.shape(a["self"])[a["dim"]] and a["step"] == 1:
        cx.identity(a["self"], outs[0])
        return
    cx.emit("Slice", [cx.t(a["self"])], outs[0], starts=[start], ends=[end], axes=[int(a["dim"])],
            steps=[int(a["step"])])


@handles("select.int")
def _select(cx, a, outs):
    dim, i = int(a["dim"]), int(a["index"])
    end = i + 1 if i != -1 else INT64_MAX
    s = cx.emit("Slice", [cx.t(a["self"])], outs[0] + "/slice", starts=[i], ends=[end], axes=[dim])
    cx.emit("Squeeze", [s], outs[0], axes=[dim])


@handles("gt.Scalar", "ge.Scalar")
def _compare(cx, a, outs):
    # The IR has no boolean ops; a comparison is only importable as the condition of a PReLU-shaped where().
    if not isinstance(a["self"], Ref) or isinstance(a["other"], Ref):
        raise cx.fail("comparisons are only supported as x > constant inside where()")
    cx.conditions[outs[0]] = (cx.current_target, cx.t(a["self"]), float(a["other"]))


@handles("where.self")
def _where(cx, a, outs):
    """where(x > 0, x, x * slope) -> PRelu(x, slope): how core ATen decomposes prelu and leaky_relu."""
    cond, on_true, on_false = a["condition"], a["self"], a["other"]
    c = cx.conditions.get(cond) if isinstance(cond, Ref) else None
    if c is not None and c[2] == 0.0 and isinstance(on_true, Ref) and cx.t(on_true) == c[1] \
            and isinstance(on_false, Ref):
        x = c[1]
        mul = next((n for n in cx.g.nodes if n.op == "Mul" and cx.t(on_false) in n.outputs), None)
        if mul is not None and x in mul.inputs:
            slope = mul.inputs[1] if mul.inputs[0] == x else mul.inputs[0]
            if cx.is_const(slope):
                cx.emit("PRelu", [x, slope], outs[0])
                return
    raise cx.fail("where() is only supported in the form where(x > 0, x, x * slope) (PReLU)")


@handles("index.Tensor")
def _index(cx, a, outs):
    idx = a["indices"]
    picks = [(axis, i) for axis, i in enumerate(idx) if i is not None]
    if len(picks) != 1:
        raise cx.fail("indexing with more than one index tensor is not supported")
    axis, i = picks[0]
    cx.emit("Gather", [cx.t(a["self"]), cx.t(i)], outs[0], axis=axis)


@handles("index_select.default")
def _index_select(cx, a, outs):
    cx.emit("Gather", [cx.t(a["self"]), cx.t(a["index"])], outs[0], axis=int(a["dim"]))


@handles("embedding.default")
def _embedding(cx, a, outs):
    cx.emit("Gather", [cx.t(a["weight"]), cx.t(a["indices"])], outs[0], axis=0)


def _torch_pads(pad: list[int], rank: int) -> list[int]:
    """torch's last-dim-first [b_last, e_last, b_prev, e_prev, ...] -> ONNX [b1..bn, e1..en]."""
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        begins[rank - 1 - i], ends[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    return begins + ends


@handles("constant_pad_nd.default", "pad.default", "reflection_pad1d.default", "reflection_pad2d.default",
         "replication_pad1d.default", "replication_pad2d.default")
def _pad(cx, a, outs):
    x = cx.t(a["self"])
    t = cx.current_target
    mode = ("reflect" if t.startswith("reflection") else "edge" if t.startswith("replication")
            else {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(a.get("mode") or "constant"))
    if mode is None:
        raise cx.fail(f"padding mode '{a.get('mode')}' is not supported")
    pads = _torch_pads(list(a.get("pad") or a.get("padding")), len(cx.g.tensors[x].shape))
    value = a.get("value")
    cx.emit("Pad", [x], outs[0], pads=pads, mode=mode, value=float(value) if value else None)


@handles("clone.default", "contiguous.default", "alias.default", "detach.default", "detach_.default",
         "lift_fresh_copy.default", "dropout.default", "feature_dropout.default", "alpha_dropout.default",
         "_to_copy.default", "to.dtype", "to.dtype_layout", "to.device", "type_as.default")
def _identity(cx, a, outs):
    src = a.get("self", a.get("input"))
    if a.get("train"):
        raise cx.fail("dropout in training mode; call model.eval() before torch.export")
    want = cx.declared[outs[0]][1] if outs[0] in cx.declared else cx.g.tensors[cx.t(src)].dtype
    if want != cx.g.tensors[cx.t(src)].dtype:
        cx.emit("Cast", [cx.t(src)], outs[0], to=want)
    else:
        cx.identity(src, outs[0])


@handles("expand.default", "expand_copy.default", "repeat.default")
def _expand(cx, a, outs):
    x = cx.t(a["self"])
    shape = cx.declared[outs[0]][0]
    if cx.g.tensors[x].shape == shape:
        cx.identity(a["self"], outs[0])
    elif cx.is_const(x):
        cx.check_size(shape)
        data = cx.g.tensors[x].data
        value = (np.broadcast_to(data, shape) if cx.current_target.startswith("expand")
                 else np.tile(data, list(a["repeats"])))
        cx.alias[outs[0]] = cx.const(outs[0], np.ascontiguousarray(value))
    else:
        raise cx.fail(f"{cx.current_target.split('.')[0]} of a computed tensor is not supported "
                      "(TinyStudio broadcasts inside element-wise ops instead)")


@handles("zeros.default", "ones.default", "full.default", "scalar_tensor.default", "arange.default",
         "arange.start", "arange.start_step", "zeros_like.default", "ones_like.default", "full_like.default")
def _creation(cx, a, outs):
    shape, dtype = cx.declared[outs[0]]
    cx.check_size(shape)
    t = cx.current_target
    if t.startswith("arange"):
        start, end, step = a.get("start") or 0, a.get("end"), a.get("step") or 1
        if step == 0 or max(0, int(np.ceil((end - start) / step))) != int(np.prod(shape)):
            raise cx.fail(f"arange({start}, {end}, {step}) does not match its recorded shape {list(shape)}")
        value = np.arange(start, end, step)
    elif t.startswith(("zeros", "ones")):
        value = np.full(shape, 0 if t.startswith("zeros") else 1)
    else:
        value = np.full(shape, a.get("fill_value", a.get("s")))
    cx.alias[outs[0]] = cx.const(outs[0], np.asarray(value).astype(dtype).reshape(shape), dtype)


@handles("mean.dim", "mean.default", "sum.dim_IntList", "sum.default", "amax.default", "amin.default",
         "max.dim", "min.dim")
def _reduce(cx, a, outs):
    x = cx.t(a["self"])
    name = cx.current_target.split(".")[0]
    op = {"mean": "ReduceMean", "sum": "ReduceSum", "amax": "ReduceMax", "amin": "ReduceMin", "max": "ReduceMax",
          "min": "ReduceMin"}[name]
    dims = a.get("dim")
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    r = len(cx.g.tensors[x].shape)
    cx.emit(op, [x], outs[0], axes=[d % r for d in dims] or None, keepdims=int(bool(a.get("keepdim"))))
