"""C for convolutions and fully connected layers, from the layer's frozen record (ConvParams, FCParams).

The record holds TFLite's multipliers and the DSP kernels' form of them (bias, multipliers, shifts,
requantization mode: engine/int8/dsp_requant.py); this module only refuses what the C cannot run
(int32 overflow, weights outside int8 after their zero point) and lays the constants out.
"""
from __future__ import annotations

import numpy as np

from engine.codegen import emit_s16
from engine.codegen.cwrite import c_struct, pack_int4
from engine.codegen.emitter import EmitContext, check_shift, emit_error, emits, int8_grid, layer_macs, shape_text
from engine.codegen.kernelfiles import dsp_paths
from engine.int8.dsp_requant import REQUANT_FIELD, DspRequant
from engine.int8.prepare import prepare_node
from engine.int8.readers import tensor_of
from engine.ir import Node


def check_weights(node: Node, wq: np.ndarray) -> None:
    if wq.size and (wq.min() < -128 or wq.max() > 127):
        raise emit_error(node, "weights minus their zero point leave the int8 range; use symmetric int8 weights")


def check_acc(node: Node, dsp: DspRequant) -> None:
    """A layer whose accumulator may leave int32 is refused (C's signed overflow is undefined)."""
    lo, hi = dsp.acc_min, dsp.acc_max
    if lo < -(1 << 31) or hi > (1 << 31) - 1:
        raise emit_error(node, f"the int32 accumulator may overflow (range [{lo:,}, {hi:,}]); TFLite would wrap "
                               "around, the generated C refuses such a layer")


def requant_arrays(ctx: EmitContext, node: Node, dsp: DspRequant) -> tuple[str, str, int]:
    """Per-channel multiplier/shift arrays; one entry when all channels share them."""
    mult, shift = dsp.multiplier, dsp.shift
    check_shift(node, shift)
    if np.any(mult == -(1 << 31)):  # the one multiplier the DSP requantization does not take
        raise emit_error(node, "a requantization multiplier of -1 cannot be generated")
    per_channel = int(not (np.all(mult == mult[0]) and np.all(shift == shift[0])))
    if not per_channel:
        mult, shift = mult[:1], shift[:1]
    return (ctx.array("mult", "int32_t", mult, "requantization multipliers (Q31)"),
            ctx.array("shift", "int8_t", shift, "requantization shifts (TFLite's exponents)"), per_channel)


def packs_int4(w_dtype: str, wq: np.ndarray) -> bool:
    """int4 weights are packed two per byte when, minus their zero points, they still fit [-8, 7]
    (always for mixed-precision's symmetric ones); otherwise they are stored as int8 (same results)."""
    return w_dtype == "int4" and (wq.size == 0 or (wq.min() >= -8 and wq.max() <= 7))


def weight_array(ctx: EmitContext, values: np.ndarray, s4: bool, comment: str) -> str:
    if s4:
        return ctx.array("w", "uint8_t", pack_int4(values), f"{comment}, int4 packed two per byte, low nibble first")
    return ctx.array("w", "int8_t", values, comment)


def wide_weight_words(wq: np.ndarray) -> np.ndarray:
    """int8 weights (M, ..., K) -> ts_conv_s8_w16's int32 words: per channel, per 4 reduction steps the int16
    pairs (k0, k2) and (k1, k3), then the K % 4 tail two per word; each word holds its first value in the low
    half. One LDRD then gives the two weight words SMLAD pairs with the im2col block's [0, 2] and [1, 3]."""
    w = wq.reshape(wq.shape[0], -1).astype(np.int64)
    m, k = w.shape
    k4 = k & ~3
    halves = np.concatenate([w[:, :k4].reshape(m, -1, 4)[:, :, [0, 2, 1, 3]].reshape(m, k4), w[:, k4:]], axis=1)
    if halves.shape[1] % 2:
        halves = np.concatenate([halves, np.zeros((m, 1), np.int64)], axis=1)
    lo, hi = halves[:, 0::2] & 0xFFFF, halves[:, 1::2] & 0xFFFF
    return ((hi << 16) | lo).astype(np.uint32).view(np.int32).reshape(-1)


POINTWISE8_MAX_K = 128  # ts_conv_dsp.c: the largest K of the eight-pixel pointwise block (K = 256 was 9 % faster
# on VWW's last pointwise layer but doubled its scratch, 2 -> 4 KB of SRAM: not worth it by default)


# ts_conv_rgb_dsp.h (3x3 convs over 3 channels) keeps four pixels' widened windows (56 words) and the records of
# up to eight channels (4 x 37 words) in the scratch: on the stack they made the conv's frame 920 B deep.
RGB_SCRATCH_BYTES = 4 * (56 + 4 * 37)


def im2col_scratch_bytes(kk: int, c: int, taps: int) -> int:
    """ts_conv_s8's DSP scratch for kk = kH x kW x C weights per channel of a taps = kH x kW conv
    (engine.ondevice.memory counts it too): four pixels' int16 columns, eight for 1x1 convs with C % 4 == 0 and
    kk <= 128 (ts_conv_dsp.c's eight-pixel pointwise block; at most 1 KB more), plus an int8 gather buffer
    when C % 4 != 0; at least RGB_SCRATCH_BYTES for 9 taps over 3 channels (a 1x9 kernel too: it costs nothing
    to keep the rule by shape). hwmodels/runtimes/tinystudio-c.toml [scratch] mirrors it."""
    if taps == 1 and c % 4 == 0 and kk <= POINTWISE8_MAX_K:
        return 16 * kk
    base = 8 * kk + (kk + kk % 2 if c % 4 else 0)
    return max(base, RGB_SCRATCH_BYTES) if (c, taps) == (3, 9) else base


@emits("Conv")
def _conv(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    if x.dtype == "int16":  # TFLite 16x8
        return emit_s16.conv(ctx, node)
    _, zx = int8_grid(node, x)
    int8_grid(node, y)
    if node.attrs.get("layout", "NCHW") != "NHWC":
        raise emit_error(node, "the C generator takes NHWC convolutions (the TFLite form)")
    r = prepare_node(g, node)
    wq, dsp, k, s, d, pads, out = r.centered, r.dsp, r.kernel, r.strides, r.dilations, r.pads, r.out_hw
    check_weights(node, wq)
    check_acc(node, dsp)
    xs = x.shape if r.rank == 2 else (x.shape[0], 1, *x.shape[1:])
    n, h, wi, c = xs
    m, cg, group = wq.shape[0], wq.shape[-1], r.group
    depthwise = group > 1 and cg == 1 and group == c
    p = {"batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": out[0], "out_w": out[1], "out_c": m,
         "k_h": k[0], "k_w": k[1], "stride_h": s[0], "stride_w": s[1], "dil_h": d[0], "dil_w": d[1],
         "pad_top": pads[0], "pad_left": pads[1], "groups": group, "input_offset": -zx, "output_offset": r.y_zp,
         "act_min": r.act_min, "act_max": r.act_max}
    code = ctx.code
    xp, yp = ctx.src(node, x.name), ctx.dst(y.name)
    s4 = packs_int4(r.w_dtype, wq)
    if depthwise:
        wname = weight_array(ctx, wq[..., 0].transpose(1, 2, 0), s4,
                              f"{node.name}: depthwise weights (kH, kW, C*mult)")
    else:
        wname = weight_array(ctx, wq, s4, f"{node.name}: weights (M, kH, kW, C/group)")
    bname = ctx.array("b", "int32_t", dsp.bias, "bias")
    mname, sname, per_channel = requant_arrays(ctx, node, dsp)
    p["per_channel"] = per_channel
    p[REQUANT_FIELD] = int(dsp.mode)
    kind = "depthwise " if depthwise else ("" if group == 1 else f"group {group} ")
    macs = layer_macs(ctx.graph, node)
    code.comment = (f"{node.name}: {kind}Conv {k[0]}x{k[1]} {c}->{m}, stride {s[0]}x{s[1]}"
                    f"{'' if d == (1, 1) else f', dilation {d[0]}x{d[1]}'}, out {shape_text(y)}, {macs:,} MACs")
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
            code.scratch_bytes = im2col_scratch_bytes(k[0] * k[1] * c, c, k[0] * k[1])
            # the layers ts_conv_dsp.c's eight-pixel block takes (pointwise, full range, per-channel, >= 8 pixels)
            code.conv_eight = (code.scratch_bytes == 16 * c and s == (1, 1) and p["pad_top"] == p["pad_left"] == 0
                               and out[0] * out[1] >= 8 and bool(per_channel) and not p[REQUANT_FIELD]
                               and (r.act_min, r.act_max) == (-128, 127))
            code.conv_narrow = code.conv_eight and c in (8, 16) and m % 2 == 0 and tuple(out) == (h, wi)
            if ctx.wide_weights:  # the same values pre-widened to int16 (CodegenOptions.wide_weights)
                code.arrays.pop(next(i for i, a in enumerate(code.arrays) if a.name == wname))
                words = wide_weight_words(wq)
                wname = ctx.array("w", "int32_t", words, f"{node.name}: weights (M, kH, kW, C/group) pre-widened "
                                                        "to int16, two per word (ts_conv_s8_w16)")
                code.wide_extra_bytes = 4 * words.size - wq.size
                code.kernel = "ts_conv_s8_w16"
        code.body.append(f"{code.kernel}(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp}, SCRATCH);")
    code.dsp_paths |= dsp_paths(p, code.kernel)


@emits("Gemm")
def _gemm(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    a, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    if a.dtype == "int16":  # TFLite 16x8
        return emit_s16.fully_connected(ctx, node)
    r = prepare_node(g, node)  # the same checks as the int8 executor (transA, alpha, beta)
    _, zx = int8_grid(node, a)
    int8_grid(node, y)
    if len(a.shape) != 2:
        raise emit_error(node, f"fully connected input must be 2-D (batch, features), got {list(a.shape)}")
    wq, dsp, units = r.centered, r.dsp, r.units   # (N, K); dsp.bias has the input zero point folded in
    check_weights(node, wq)
    check_acc(node, dsp)
    code = ctx.code
    xp, yp = ctx.src(node, a.name), ctx.dst(y.name)
    s4 = packs_int4(r.w_dtype, wq)
    wname = weight_array(ctx, wq, s4, f"{node.name}: weights (out, in)")
    bname = ctx.array("b", "int32_t", dsp.bias, f"bias - input zero point ({zx}) * sum of weights")
    mname, sname, pc = requant_arrays(ctx, node, dsp)
    p = {"batches": a.shape[0], "in_features": a.shape[1], "out_features": units, "input_offset": 0,
         "output_offset": r.y_zp, "act_min": r.act_min, "act_max": r.act_max, "per_channel": pc,
         REQUANT_FIELD: int(dsp.mode)}
    code.kernel = "ts_fully_connected_s4" if s4 else "ts_fully_connected_s8"
    code.comment = (f"{node.name}: FullyConnected {a.shape[1]}->{units}, out {shape_text(y)}, "
                    f"{layer_macs(g, node):,} MACs")
    code.body += [f"static const ts_fc_params p = {c_struct(p)};",
                  f"{code.kernel}(&p, {xp}, {wname}, {bname}, {mname}, {sname}, {yp});"]
