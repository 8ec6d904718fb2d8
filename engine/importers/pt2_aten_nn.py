"""ATen op handlers for convolution, matrix products, normalization, pooling and resize (see
engine/importers/pt2_aten_handler.py for what a handler gets).
"""
from __future__ import annotations

import numpy as np

from engine.importers.pt2_aten_handler import Handler
from engine.registry import registrar

NN_HANDLERS: dict[str, Handler] = {}
handles = registrar(NN_HANDLERS)


# ---- handlers: convolution, matrix products, normalization -----------------------------------------

def _rep(v, r: int) -> list[int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return v * r if len(v) == 1 else v


def _conv_common(cx, a, outs, transposed: bool):
    x, w = a["input"], a["weight"]
    r = len(cx.shape(w)) - 2
    if r not in (1, 2) or (transposed and r != 2):
        raise cx.fail(f"{r}-D {'transposed ' if transposed else ''}convolution is not supported")
    strides, dil = _rep(a["stride"], r), _rep(a["dilation"], r)
    pad = a["padding"]
    if pad == "valid":
        pads = [0] * (2 * r)
    elif pad == "same":
        k = cx.shape(w)[2:]
        total = [dil[i] * (k[i] - 1) for i in range(r)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    else:
        pads = _rep(pad, r) * 2
    ins = [cx.t(x), cx.t(w)] + ([cx.t(a["bias"])] if a.get("bias") is not None else [])
    if transposed:
        op = _rep(a.get("output_padding") or 0, r)
        cx.emit("ConvTranspose", ins, outs[0], strides=strides, pads=pads, dilations=dil, group=a["groups"],
                output_padding=op if any(op) else None)
    else:
        cx.emit("Conv", ins, outs[0], strides=strides, pads=pads, dilations=dil, group=a["groups"])


@handles("conv1d.default", "conv2d.default", "conv1d.padding", "conv2d.padding")
def _conv(cx, a, outs):
    _conv_common(cx, a, outs, False)


@handles("convolution.default", "_convolution.default")
def _convolution(cx, a, outs):
    _conv_common(cx, a, outs, bool(a["transposed"]))


@handles("conv_transpose1d.default", "conv_transpose2d.input")
def _conv_transpose(cx, a, outs):
    _conv_common(cx, a, outs, True)


def _transposed(cx, w: str) -> str:
    """Constant W^T for a 2-D constant (a view that torch inserts before addmm/mm)."""
    if w in cx.transposed_of:
        return cx.transposed_of[w]
    t = cx.emit("Transpose", [w], w + "/T", perm=[1, 0])
    if cx.is_const(t):
        cx.transposed_of[t] = w
    return t


def _gemm(cx, a_in: str, b_in: str, c_in: str | None, out: str, alpha=1.0, beta=1.0):
    """Gemm, keeping a transposed constant weight as transB=1 on the original (as ONNX / TFLite FC)."""
    trans_b = 0
    if b_in in cx.transposed_of:
        b_in, trans_b = cx.transposed_of[b_in], 1
    ins = [a_in, b_in] + ([c_in] if c_in else [])
    cx.emit("Gemm", ins, out, transB=trans_b or None, alpha=float(alpha) if alpha != 1 else None,
            beta=float(beta) if beta != 1 and c_in else None)


@handles("linear.default")
def _linear(cx, a, outs):
    x, w = cx.t(a["input"]), cx.t(a["weight"])
    b = cx.t(a["bias"]) if a.get("bias") is not None else None
    if len(cx.g.tensors[x].shape) == 2:
        cx.emit("Gemm", [x, w] + ([b] if b else []), outs[0], transB=1)
        return
    y = cx.emit("MatMul", [x, _transposed(cx, w)], outs[0] + "/matmul" if b else outs[0])
    if b:
        cx.emit("Add", [y, b], outs[0])


@handles("addmm.default")
def _addmm(cx, a, outs):
    _gemm(cx, cx.t(a["mat1"]), cx.t(a["mat2"]), cx.t(a["self"]), outs[0], a["alpha"], a["beta"])


@handles("mm.default")
def _mm(cx, a, outs):
    _gemm(cx, cx.t(a["self"]), cx.t(a["mat2"]), None, outs[0])


@handles("matmul.default", "bmm.default")
def _matmul(cx, a, outs):
    cx.emit("MatMul", [cx.t(a["self"]), cx.t(a.get("other") or a.get("mat2"))], outs[0])


def _bn(cx, a, out, eps):
    x = cx.t(a["input"])
    c = cx.shape(a["input"])[1]
    ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)  # affine=False
    scale = cx.t(a["weight"]) if a.get("weight") is not None else cx.const(f"{cx.node_name}/scale", ones)
    bias = cx.t(a["bias"]) if a.get("bias") is not None else cx.const(f"{cx.node_name}/bias", zeros)
    if a.get("running_mean") is None or a.get("running_var") is None:
        raise cx.fail("batch norm without running statistics (track_running_stats=False) is not supported")
    ins = [x, scale, bias, cx.t(a["running_mean"]), cx.t(a["running_var"])]
    cx.emit("BatchNormalization", ins, out, epsilon=float(eps), momentum=1.0 - float(a.get("momentum") or 0.1))


@handles("batch_norm.default")
def _batch_norm(cx, a, outs):
    if a["training"]:
        raise cx.fail("batch norm in training mode; call model.eval() before torch.export")
    _bn(cx, a, outs[0], a["eps"])


@handles("_native_batch_norm_legit_no_training.default")
def _bn_no_training(cx, a, outs):
    _bn(cx, a, outs[0], a["eps"])


@handles("layer_norm.default", "native_layer_norm.default")
def _layer_norm(cx, a, outs):
    x = cx.t(a["input"])
    ns = list(a["normalized_shape"])
    w = cx.t(a["weight"]) if a.get("weight") is not None else cx.const(f"{cx.node_name}/scale", np.ones(ns, np.float32))
    ins = [x, w] + ([cx.t(a["bias"])] if a.get("bias") is not None else [])
    cx.emit("LayerNormalization", ins, outs[0], axis=-len(ns), epsilon=float(a["eps"]))


# ---- handlers: pooling, resize ---------------------------------------------------------------------

def _pool_common(cx, a, outs, op):
    x = a["self"]
    r = len(cx.shape(x)) - 2
    k = _rep(a["kernel_size"], r)
    s = _rep(a["stride"], r) if a.get("stride") else k
    attrs = dict(kernel_shape=k, strides=s, pads=_rep(a["padding"], r) * 2, ceil_mode=int(bool(a["ceil_mode"])))
    if op == "MaxPool":
        d = _rep(a["dilation"], r)
        attrs["dilations"] = d if any(v != 1 for v in d) else None
    else:
        if a.get("divisor_override") is not None:
            raise cx.fail("avg_pool with divisor_override is not supported")
        attrs["count_include_pad"] = int(bool(a["count_include_pad"]))
    cx.emit(op, [cx.t(x)], outs[0], **attrs)


@handles("max_pool1d.default", "max_pool2d.default", "max_pool1d_with_indices.default",
         "max_pool2d_with_indices.default")
def _max_pool(cx, a, outs):
    _pool_common(cx, a, outs, "MaxPool")


@handles("avg_pool1d.default", "avg_pool2d.default")
def _avg_pool(cx, a, outs):
    _pool_common(cx, a, outs, "AveragePool")


@handles("adaptive_avg_pool1d.default", "adaptive_avg_pool2d.default", "_adaptive_avg_pool2d.default",
         "adaptive_max_pool1d.default", "adaptive_max_pool2d.default")
def _adaptive_pool(cx, a, outs):
    x = a["self"]
    spatial = cx.shape(x)[2:]
    out = _rep(a["output_size"], len(spatial))
    is_max = cx.current_target.startswith("adaptive_max")
    if all(o == 1 for o in out):
        cx.emit("GlobalMaxPool" if is_max else "GlobalAveragePool", [cx.t(x)], outs[0])
    elif all(i % o == 0 for i, o in zip(spatial, out)):
        k = [i // o for i, o in zip(spatial, out)]
        cx.emit("MaxPool" if is_max else "AveragePool", [cx.t(x)], outs[0], kernel_shape=k, strides=k)
    else:
        raise cx.fail(f"adaptive pooling from {list(spatial)} to {out} (not a whole multiple) is not supported")


def _resize(cx, x, outs, mode, ctm, nearest_mode, scales):
    spatial = cx.shape(x)[2:]
    out_shape = cx.declared[outs[0]][0][2:]
    if scales and all(s is not None for s in scales) and [int(np.floor(i * s)) for i, s in zip(spatial, scales)] \
            == list(out_shape):
        size = {"scales": [float(s) for s in scales]}
    else:
        size = {"sizes": list(out_shape)}
    cx.emit("Resize", [cx.t(x)], outs[0], mode=mode, coordinate_transformation_mode=ctm,
            nearest_mode=nearest_mode, **size)


def _scales(a):
    if a.get("scale_factors"):
        return list(a["scale_factors"])
    return [a.get(k) for k in ("scales_h", "scales_w") if k in a] or [a.get("scales")]


@handles("upsample_nearest1d.vec", "upsample_nearest2d.vec", "upsample_nearest1d.default",
         "upsample_nearest2d.default")
def _upsample_nearest(cx, a, outs):
    _resize(cx, a.get("input") or a.get("self"), outs, "nearest", "asymmetric", "floor", _scales(a))


@handles("_upsample_nearest_exact1d.vec", "_upsample_nearest_exact2d.vec", "_upsample_nearest_exact2d.default")
def _upsample_nearest_exact(cx, a, outs):
    _resize(cx, a.get("input") or a.get("self"), outs, "nearest", "half_pixel", "round_prefer_ceil", _scales(a))


@handles("upsample_linear1d.vec", "upsample_bilinear2d.vec", "upsample_linear1d.default",
         "upsample_bilinear2d.default")
def _upsample_linear(cx, a, outs):
    ctm = "align_corners" if a["align_corners"] else "pytorch_half_pixel"
    _resize(cx, a.get("input") or a.get("self"), outs, "linear", ctm, "floor", _scales(a))
