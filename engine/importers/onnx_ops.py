"""ONNX op handlers for compute ops: ONNX node -> IR nodes (elementwise, activations, conv, pools, norms,
softmax, cast, quantize/dequantize).

Ops the IR lacks are composed from IR ops (Elu, Selu, Softplus, Softsign, InstanceNormalization, Mean).
Legacy forms are translated to the IR's single meaning where they occur: Add/Mul `broadcast`+`axis`
(opset < 7), PRelu-6's per-channel slope, Softmax's coerce-to-2-D (opset < 13).
Shape-defining ops (Reshape, Slice, Pad, Resize ...) are in onnx_shape_ops.py.
"""
from __future__ import annotations

import numpy as np

from engine.errors import UnsupportedOpError
from engine.importers.onnx_context import IR_DTYPE, HandlerTable, Importer, OnnxNode
from engine.ir import Quant, dtype_of
from engine.ops import get_op

HANDLERS = HandlerTable()
handles = HANDLERS.handles


def _direct(keep=(), defaults=None):
    def h(imp: Importer, n: OnnxNode, a: dict):
        imp.unused_extra_outputs(n)
        imp.emit(n, n.op, n.ins, n.outs[:1], imp.attrs(n, a, keep, defaults))
    return h


for _op in ("Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Erf",
            "Identity", "HardSwish", "MatMul", "GlobalAveragePool", "GlobalMaxPool"):
    HANDLERS[_op] = _direct()
HANDLERS["LeakyRelu"] = _direct(("alpha",))
HANDLERS["HardSigmoid"] = _direct(("alpha", "beta"))
HANDLERS["Gelu"] = _direct(("approximate",))
HANDLERS["Transpose"] = _direct(("perm",))
HANDLERS["Concat"] = _direct(("axis",))
HANDLERS["Flatten"] = _direct(("axis",))
HANDLERS["Gather"] = _direct(("axis",))
# Gemm-6 `broadcast`: a model valid without broadcasting computes the same with it, so it is dropped.
HANDLERS["Gemm"] = _direct(("alpha", "beta", "transA", "transB"), {"broadcast": None})
HANDLERS["LayerNormalization"] = _direct(("axis", "epsilon"), {"stash_type": 1})
HANDLERS["LRN"] = _direct(("alpha", "beta", "bias", "size"))


@handles("Add", "Sub", "Mul", "Div", "Pow")
def _binary(imp, n, a):
    x, y = n.ins[:2]
    if imp.opset < 7 and a.get("broadcast", 0) and "axis" in a:
        # Legacy broadcasting: B's dims line up with A's starting at `axis`; numpy aligns from the right.
        ra, rb = imp.rank(x), imp.rank(y)
        tail = ra - (a["axis"] % ra) - rb
        if tail > 0:
            y = imp.reshaped(n, y, imp.shape(y) + (1,) * tail)
    a = {k: v for k, v in a.items() if not (imp.opset < 7 and k in ("broadcast", "axis"))}
    imp.emit(n, n.op, [x, y], n.outs, imp.attrs(n, a))


@handles("Max", "Min", "Sum", "Mean")
def _variadic(imp, n, a):
    imp.attrs(n, a)
    ins = [x for x in n.ins if x]
    op = {"Sum": "Add", "Mean": "Add"}.get(n.op, n.op)
    if len(ins) == 1:
        imp.emit(n, "Identity", ins, n.outs)
        return
    acc = ins[0]
    for i, x in enumerate(ins[1:]):
        last = i == len(ins) - 2 and n.op != "Mean"
        acc = imp.emit(n, op, [acc, x], n.outs if last else None, suffix=None if last else f"{op}{i}")
    if n.op == "Mean":
        k = imp.new_const(f"{n.name}/inv_n", np.array(1.0 / len(ins), dtype=np.float32))
        imp.emit(n, "Mul", [acc, k], n.outs)


@handles("PRelu")
def _prelu(imp, n, a):
    x, slope = n.ins[:2]
    s, r = imp.shape(slope), imp.rank(x)
    if imp.opset < 7 and len(s) == 1 and s[0] > 1 and r >= 2:
        slope = imp.reshaped(n, slope, (s[0],) + (1,) * (r - 2))  # opset 6: one slope per channel
    imp.emit(n, "PRelu", [x, slope], n.outs, imp.attrs(n, a))


def _elu_part(imp, n, x, alpha):
    """Relu(x) + alpha * (exp(min(x, 0)) - 1): Elu from IR ops."""
    zero = imp.new_const(f"{n.name}/zero", np.array(0.0, np.float32))
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    al = imp.new_const(f"{n.name}/alpha", np.array(alpha, np.float32))
    neg = imp.emit(n, "Min", [x, zero], suffix="Min")
    e = imp.emit(n, "Exp", [neg], suffix="Exp")
    em1 = imp.emit(n, "Sub", [e, one], suffix="Sub")
    scaled = imp.emit(n, "Mul", [em1, al], suffix="Mul")
    pos = imp.emit(n, "Relu", [x], suffix="Relu")
    return pos, scaled


@handles("Elu")
def _elu(imp, n, a):
    pos, scaled = _elu_part(imp, n, n.ins[0], imp.attrs(n, a, ("alpha",)).get("alpha", 1.0))
    imp.emit(n, "Add", [pos, scaled], n.outs)


@handles("Selu")
def _selu(imp, n, a):
    a = imp.attrs(n, a, ("alpha", "gamma"))
    pos, scaled = _elu_part(imp, n, n.ins[0], a.get("alpha", 1.67326319217681884765625))
    s = imp.emit(n, "Add", [pos, scaled], suffix="Add")
    g = imp.new_const(f"{n.name}/gamma", np.array(a.get("gamma", 1.05070102214813232421875), np.float32))
    imp.emit(n, "Mul", [s, g], n.outs)


@handles("Softplus")
def _softplus(imp, n, a):
    # relu(x) + log(1 + exp(-|x|)) never overflows, unlike log(1 + exp(x)).
    imp.attrs(n, a)
    x = n.ins[0]
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    ab = imp.emit(n, "Abs", [x], suffix="Abs")
    ng = imp.emit(n, "Neg", [ab], suffix="Neg")
    e = imp.emit(n, "Exp", [ng], suffix="Exp")
    l1 = imp.emit(n, "Log", [imp.emit(n, "Add", [e, one], suffix="Add1")], suffix="Log")
    pos = imp.emit(n, "Relu", [x], suffix="Relu")
    imp.emit(n, "Add", [pos, l1], n.outs)


@handles("Softsign")
def _softsign(imp, n, a):
    imp.attrs(n, a)
    one = imp.new_const(f"{n.name}/one", np.array(1.0, np.float32))
    den = imp.emit(n, "Add", [imp.emit(n, "Abs", [n.ins[0]], suffix="Abs"), one], suffix="Add")
    imp.emit(n, "Div", [n.ins[0], den], n.outs)


@handles("Conv")
def _conv(imp, n, a):
    r = imp.rank(n.ins[0])
    if r not in (3, 4):
        raise UnsupportedOpError(imp.path, f"Conv ({r - 2}-D)", n.name, imp.supported)
    imp.emit(n, "Conv", n.ins, n.outs, imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "group")))


@handles("ConvTranspose")
def _conv_transpose(imp, n, a):
    keep = ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "group", "output_padding", "output_shape")
    attrs = imp.attrs(n, a, keep)
    r = imp.rank(n.ins[0])
    if r == 4:
        imp.emit(n, "ConvTranspose", n.ins, n.outs, attrs)
        return
    if r != 3:
        raise UnsupportedOpError(imp.path, f"ConvTranspose ({r - 2}-D)", n.name, imp.supported)
    # 1-D: run it as a 2-D transposed conv over a height-1 image.
    x = imp.emit(n, "Unsqueeze", [n.ins[0]], attrs={"axes": [2]}, suffix="Unsqueeze")
    w = imp.reshaped(n, n.ins[1], imp.shape(n.ins[1])[:2] + (1,) + imp.shape(n.ins[1])[2:])
    two = {}
    for k, v in attrs.items():
        if k == "pads":
            two[k] = [0, v[0], 0, v[1]]
        elif k in ("strides", "dilations", "kernel_shape"):
            two[k] = [1, v[0]]
        elif k == "output_padding":
            two[k] = [0, v[0]]
        elif k == "output_shape":
            two[k] = [1, v[-1]]
        else:
            two[k] = v
    y = imp.emit(n, "ConvTranspose", [x, w] + n.ins[2:], attrs=two, suffix="ConvTranspose")
    imp.emit(n, "Squeeze", [y], n.outs, {"axes": [2]})


@handles("MaxPool")
def _maxpool(imp, n, a):
    imp.unused_extra_outputs(n)
    a = {k: v for k, v in a.items() if k != "storage_order"}  # only affects the Indices output
    imp.emit(n, "MaxPool", n.ins, n.outs[:1], imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "ceil_mode")))


@handles("AveragePool")
def _avgpool(imp, n, a):
    r = len(a.get("kernel_shape", []))
    imp.emit(n, "AveragePool", n.ins, n.outs, imp.attrs(
        n, a, ("auto_pad", "pads", "strides", "kernel_shape", "ceil_mode", "count_include_pad"),
        {"dilations": [1] * r}))


@handles("BatchNormalization")
def _batchnorm(imp, n, a):
    imp.unused_extra_outputs(n)
    imp.emit(n, "BatchNormalization", n.ins, n.outs[:1], imp.attrs(
        n, a, ("epsilon", "momentum"), {"spatial": 1, "training_mode": 0}))


@handles("InstanceNormalization")
def _instancenorm(imp, n, a):
    a = imp.attrs(n, a, ("epsilon",))
    x, scale, bias = n.ins[:3]
    r = imp.rank(x)
    axes = list(range(2, r))
    c = imp.shape(x)[1]
    mean = imp.emit(n, "ReduceMean", [x], attrs={"axes": axes, "keepdims": 1}, suffix="mean")
    d = imp.emit(n, "Sub", [x, mean], suffix="center")
    var = imp.emit(n, "ReduceMean", [imp.emit(n, "Mul", [d, d], suffix="square")],
                   attrs={"axes": axes, "keepdims": 1}, suffix="var")
    eps = imp.new_const(f"{n.name}/epsilon", np.array(a.get("epsilon", 1e-5), np.float32))
    den = imp.emit(n, "Sqrt", [imp.emit(n, "Add", [var, eps], suffix="var_eps")], suffix="std")
    y = imp.emit(n, "Div", [d, den], suffix="normalized")
    per_channel = (c,) + (1,) * (r - 2)
    y = imp.emit(n, "Mul", [y, imp.reshaped(n, scale, per_channel)], suffix="scale")
    imp.emit(n, "Add", [y, imp.reshaped(n, bias, per_channel)], n.outs)


@handles("Softmax", "LogSoftmax")
def _softmax(imp, n, a):
    a = imp.attrs(n, a, ("axis",))
    x = n.ins[0]
    r = imp.rank(x)
    axis = a.get("axis", 1 if imp.opset < 13 else -1)
    if not -r <= axis < max(r, 1):
        raise imp.fail(n, f"axis {axis} out of range for rank {r}")
    if imp.opset >= 13 or axis % r == r - 1:
        imp.emit(n, n.op, [x], n.outs, {"axis": axis if imp.opset >= 13 else -1})
        return
    # Before opset 13 the op flattens to 2-D at `axis` and normalizes each row; do exactly that.
    flat = imp.emit(n, "Flatten", [x], attrs={"axis": axis % r}, suffix="Flatten")
    y = imp.emit(n, n.op, [flat], attrs={"axis": -1}, suffix=n.op)
    imp.emit(n, "Reshape", [y], n.outs, {"shape": list(imp.shape(x))})


@handles("Cast")
def _cast(imp, n, a):
    a = dict(a)
    to = IR_DTYPE.get(a.pop("to"))
    a.pop("saturate", None)  # float8 targets only
    choices = get_op("Cast").attrs["to"].choices
    if to not in choices:
        raise imp.fail(n, f"cast target type is not supported (supported: {', '.join(choices)})")
    imp.emit(n, "Cast", n.ins[:1], n.outs, {"to": to, **imp.attrs(n, a)})


@handles("Dropout")
def _dropout(imp, n, a):
    imp.unused_extra_outputs(n)
    training = imp.cin(n, 2, "training_mode") if imp.opset >= 12 else None
    if training is not None and bool(np.ravel(training)[0]):
        raise imp.fail(n, "training_mode=true is not supported (inference only)")
    imp.emit(n, "Identity", n.ins[:1], n.outs[:1])


def _qparams(imp, n, a, rank):
    a = dict(a)
    scale = imp.cin(n, 1, "scale", True)
    zp = imp.cin(n, 2, "zero_point")
    axis = a.pop("axis", 1)
    if a.pop("block_size", 0):
        raise imp.fail(n, "blocked quantization (block_size) is not supported")
    out_dtype = a.pop("output_dtype", 0)
    a.pop("saturate", None)
    imp.attrs(n, a)
    if zp is not None:
        dtype = dtype_of(zp) if zp.dtype.name in ("int8", "uint8", "int16", "int32") else None
        if n.ins[2] in imp.int4:
            dtype = "int4"
    elif n.op == "DequantizeLinear":  # no zero point: zero of the input's type
        dtype = imp.ir_tensor(n.ins[0]).dtype
    else:
        dtype = IR_DTYPE.get(out_dtype, "uint8") if out_dtype else "uint8"
    if dtype is None:
        raise imp.fail(n, f"zero point type {zp.dtype} is not supported (int8, uint8, int16, int32)")
    if scale.ndim > 1 or zp is not None and (zp.ndim > 1 or zp.size != scale.size):
        raise imp.fail(n, f"scale {list(scale.shape)} and zero point {None if zp is None else list(zp.shape)} must "
                          "be scalars or 1-D tensors of the same length")
    scale = np.ravel(scale).astype(np.float32)
    zpv = np.zeros(scale.shape, np.int64) if zp is None else np.ravel(zp).astype(np.int64)
    if scale.size > 1:
        shape = imp.shape(n.ins[0])
        if not -rank <= axis < rank or scale.size != shape[axis % rank]:
            raise imp.fail(n, f"{scale.size} scales along axis {axis} of an input of shape {list(shape)}; per-axis "
                              "quantization needs one per element of that axis")
        return Quant(scale, zpv, axis % rank), dtype
    return Quant(scale, zpv), dtype


@handles("QuantizeLinear")
def _quantize(imp, n, a):
    q, dtype = _qparams(imp, n, a, imp.rank(n.ins[0]))
    if dtype not in get_op("QuantizeLinear").attrs["dtype"].choices:
        raise imp.fail(n, f"quantizing to {dtype} is not supported")
    imp.emit(n, "QuantizeLinear", n.ins[:1], n.outs, {"dtype": dtype}, quant=q)


@handles("DequantizeLinear")
def _dequantize(imp, n, a):
    x = n.ins[0]
    q, dtype = _qparams(imp, n, a, imp.rank(x))
    t = imp.ir_tensor(x)
    if t.quant is not None and t.quant != q:
        if t.data is None:
            raise imp.fail(n, f"input '{x}' is dequantized with a scale/zero point other than it was quantized with")
        x = imp.new_const(x, t.data)  # the same integer constant read with two quantizations
        t = imp.ir_tensor(x)
    if t.dtype != dtype and not (t.dtype == "int8" and dtype == "int4"):
        raise imp.fail(n, f"input '{x}' is {t.dtype} but the zero point is {dtype}")
    t.quant = q
    imp.emit(n, "DequantizeLinear", [x], n.outs)
