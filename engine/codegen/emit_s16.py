"""C for the 16x8 layers (int16 activations, int8 weights, int64 bias) from their frozen records
(engine/int8/int16.py); the kernels are in templates/ts_s16_ref.c. The int8 emitters hand a layer over
here when its input is int16, so int8 layers keep their exact C.
"""
from __future__ import annotations

import numpy as np

from engine.codegen.cwrite import c_struct
from engine.codegen.emitter import EmitContext, check_shift, emit_error, emits, layer_macs, shape_text
from engine.int8.prepare import prepare_node
from engine.int8.readers import act_grid, tensor_of
from engine.ir import Node


def int16_grid(node: Node, t) -> None:
    act_grid(node, t, ("int16",))


def ptr16(expr: str, const: bool = True) -> str:
    return f"({'const ' if const else ''}int16_t *){expr}"


def _weights(ctx: EmitContext, node: Node, wq: np.ndarray, comment: str) -> str:
    if wq.size and (wq.min() < -128 or wq.max() > 127):
        raise emit_error(node, "weights minus their zero point leave the int8 range; use symmetric int8 weights")
    return ctx.array("w", "int8_t", wq, f"{node.name}: {comment}")


def _requant(ctx: EmitContext, node: Node, r, per_channel: bool) -> str:
    """The ts_s16_requant initializer (bias, multipliers, shifts) of a record."""
    check_shift(node, r.shift)
    mult, shift = np.asarray(r.multiplier), np.asarray(r.shift)
    same = bool(np.all(mult == mult[0]) and np.all(shift == shift[0]))
    if same or not per_channel:
        mult, shift = mult[:1], shift[:1]
    m = ctx.array("mult", "int32_t", mult, "requantization multipliers (Q31)")
    s = ctx.array("shift", "int32_t", shift, "requantization shifts (TFLite's exponents)")
    b = "NULL" if r.bias is None else ctx.array("b", "int64_t", r.bias, "bias (int64)")
    fields = c_struct({"per_channel": int(len(mult) > 1), "acc64": int(r.acc64), "act_min": r.act_min,
                       "act_max": r.act_max}, 10**6)
    return "{" + f".bias = {b}, .multiplier = {m}, .shift = {s}, " + fields[1:]


def conv(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    if node.attrs.get("layout", "NCHW") != "NHWC":
        raise emit_error(node, "the C generator takes NHWC convolutions (the TFLite form)")
    r = prepare_node(g, node)
    int16_grid(node, x), int16_grid(node, y)
    n, h, wi, c = x.shape if r.rank == 2 else (x.shape[0], 1, *x.shape[1:])
    (k, s, d, pads, out), m = (r.kernel, r.strides, r.dilations, r.pads, r.out_hw), r.centered.shape[0]
    w = _weights(ctx, node, r.centered, "weights (M, kH, kW, C/group)")
    p = c_struct({"batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": out[0], "out_w": out[1], "out_c": m,
                  "group": r.group, "k_h": k[0], "k_w": k[1], "stride_h": s[0], "stride_w": s[1], "dil_h": d[0],
                  "dil_w": d[1], "pad_top": pads[0], "pad_left": pads[1]}, 10**6)
    q = _requant(ctx, node, r, True)
    code = ctx.code
    code.kernel = "ts_conv_s16"
    kind = "depthwise " if r.group > 1 and r.group == c else ""
    code.comment = (f"{node.name}: int16 {kind}Conv {k[0]}x{k[1]} {c}->{m}, stride {s[0]}x{s[1]}, out "
                    f"{shape_text(y)}, {layer_macs(g, node):,} MACs")
    code.body += [f"static const ts_conv_s16_params p = {p[:-1]}, .w = {w}, .q = {q}}};",
                  f"ts_conv_s16(&p, {ptr16(ctx.src(node, x.name))}, {ptr16(ctx.dst(y.name), False)});"]


def fully_connected(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)
    int16_grid(node, a), int16_grid(node, y)
    if len(a.shape) != 2:
        raise emit_error(node, f"fully connected input must be 2-D (batch, features), got {list(a.shape)}")
    w = _weights(ctx, node, r.centered, "weights (out, in)")
    q = _requant(ctx, node, r, r.per_channel)
    code = ctx.code
    code.kernel = "ts_fc_s16"
    code.comment = f"{node.name}: int16 FullyConnected {a.shape[1]}->{r.units}, {layer_macs(g, node):,} MACs"
    code.body += [f"static const ts_fc_s16_params p = {{.rows = {a.shape[0]}, .depth = {a.shape[1]}, "
                  f".units = {r.units}, .w = {w}, .q = {q}}};",
                  f"ts_fc_s16(&p, {ptr16(ctx.src(node, a.name))}, {ptr16(ctx.dst(y.name), False)});"]


def transpose_conv(ctx: EmitContext, node: Node) -> None:
    """TRANSPOSE_CONV on int16 (16x8) or int8 activations: ts_transpose_conv_s16 / _s8."""
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)
    s16 = r.x_dtype == "int16"
    n, h, wi, c = x.shape
    m, kh, kw, _ = r.centered.shape
    w = _weights(ctx, node, r.centered, "weights (M, kH, kW, C)")
    p = c_struct({"batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": r.out_hw[0], "out_w": r.out_hw[1],
                  "out_c": m, "k_h": kh, "k_w": kw, "stride_h": r.strides[0], "stride_w": r.strides[1],
                  "pad_top": r.pads[0], "pad_left": r.pads[1], "input_offset": -r.x_zp,
                  "output_offset": r.y_zp}, 10**6)
    q = _requant(ctx, node, r, True)
    code = ctx.code
    code.kernel = "ts_transpose_conv_s16" if s16 else "ts_transpose_conv_s8"
    code.comment = (f"{node.name}: {r.x_dtype} TransposeConv {kh}x{kw} {c}->{m}, stride {r.strides[0]}x"
                    f"{r.strides[1]}, out {shape_text(y)}, {layer_macs(g, node):,} MACs; int64 scratch of "
                    f"{y.size * 8:,} bytes")
    xp, yp = ctx.src(node, x.name), ctx.dst(y.name)
    if s16:
        xp, yp = ptr16(xp), ptr16(yp, False)
    code.body += [f"static int64_t acc[{y.size}];   /* tflite-micro's scratch: one sum per output */",
                  f"static const ts_transpose_conv_params p = {p[:-1]}, .w = {w}, .q = {q}}};",
                  f"{code.kernel}(&p, {xp}, {yp}, acc);"]


def add(ctx: EmitContext, node: Node, params: dict, ap: str, bp: str) -> None:
    g = ctx.graph
    a, b, y = (tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 0, True))
    ctx.code.kernel = "ts_add_s16"
    ctx.code.comment = (f"{node.name}: int16 {node.op} {shape_text(a)} {'+' if node.op == 'Add' else '-'} "
                        f"{shape_text(b)}, out {shape_text(y)}")
    ctx.code.body += [f"static const ts_add_params p = {c_struct(params)};",
                      f"ts_add_s16(&p, {ptr16(ap)}, {ptr16(bp)}, {ptr16(ctx.dst(y.name), False)});"]


def leaky_relu(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)
    check_shift(node, [r.e_identity, r.e_alpha])
    p = c_struct({"x_zp": r.x_zp, "y_zp": r.y_zp, "m_identity": r.m_identity, "e_identity": r.e_identity,
                  "m_alpha": r.m_alpha, "e_alpha": r.e_alpha})
    ctx.code.kernel = "ts_leaky_relu_s16"
    ctx.code.comment = f"{node.name}: int16 LeakyRelu, {shape_text(y)}"
    ctx.code.body += [f"static const ts_leaky_s16_params p = {p};",
                      f"ts_leaky_relu_s16(&p, {ptr16(ctx.src(node, x.name, strict=False))}, "
                      f"{ptr16(ctx.dst(y.name), False)}, {y.size});"]


@emits("ConvTranspose")
def _transpose_conv(ctx: EmitContext, node: Node) -> None:
    transpose_conv(ctx, node)


def requantize(ctx: EmitContext, node: Node) -> None:
    """QUANTIZE int16 <-> int32 (and int16 -> int8): the RequantParams record."""
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    r = prepare_node(g, node)
    check_shift(node, [r.shift])
    info = np.iinfo(np.dtype(y.dtype))
    p = c_struct({"x_bytes": np.dtype(x.dtype).itemsize, "y_bytes": np.dtype(y.dtype).itemsize, "x_zp": r.x_zp,
                  "y_zp": r.y_zp, "multiplier": r.multiplier, "shift": r.shift, "y_min": int(info.min),
                  "y_max": int(info.max)})
    ctx.code.kernel = "ts_requantize_int"
    ctx.code.comment = f"{node.name}: QuantizeLinear {x.dtype} -> {y.dtype}, {shape_text(y)}"
    ctx.code.body += [f"static const ts_requant_int_params p = {p};",
                      f"ts_requantize_int(&p, {ctx.src(node, x.name, strict=False)}, {ctx.dst(y.name)}, {y.size});"]
