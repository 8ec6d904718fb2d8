"""Int8 reference of the in-place depthwise and fused-block schedules (engine/memory/inplace.py, fused.py).

    run_inplace_depthwise(plan, "dw3", env)        # env[output] computed group by group over env[input]'s bytes
    run_fused_block(plan, FusedBlock(("pw2", "dw3", "pw3"), 2), env)   # env[project out], band by band
    run_fused_block(plan, FusedBlock(("pw4", "dw4", "pw5", "add4"), 2), env)   # env[sum], band by band

Both run the layer's own int8 kernels (engine/int8/conv.py, the records of engine/int8/prepare.py) on exactly the
pieces the C computes, through simulated buffers: the in-place run reads each channel group from the input's
buffer after the earlier groups were scattered over it, and the fused run keeps its expanded rows in a band buffer
that rolls like the C's; a block with its residual Add writes each band's sum over the block input's rows (when
engine.memory.fused.add_in_place allows it) before the next band's expand reads that input. A wrong scatter, halo or roll changes bytes, so equality with the layer-by-layer
reference (run_int8) checks the schedule itself.
"""
from __future__ import annotations

import numpy as np

from engine.int8 import conv as conv_k
from engine.int8.execute import Int8Plan
from engine.int8.prepare import prepare_node
from engine.ir import DTYPES
from engine.memory.fused import add_in_place, block_geom
from engine.memory.inplace import ConvGeom, inplace_geom
from engine.memory.schedule import FusedBlock, ScheduleError


def default_group(channels: int) -> int:
    """The channel group a reference run uses when none is given (the result never depends on it)."""
    return next(gs for gs in (8, 4, 2, 1) if channels % gs == 0)


def _record(plan: Int8Plan, name: str):
    node = next((n for n in plan.graph.nodes if n.name == name), None)
    if node is None:
        raise ScheduleError(f"no node '{name}' in the graph")
    rec = prepare_node(plan.graph, node)
    if getattr(rec, "x_dtype", "int8") != "int8" or rec.layout != "NHWC":
        raise ScheduleError(f"node '{name}': scheduled convs run int8 NHWC activations")
    return node, rec


def _per_channel(v, m: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(v), (m,))


def _conv_rows(rec, wc, x: np.ndarray, pad_top: int, out_rows: int, sl: slice = slice(None)) -> np.ndarray:
    """Output rows of a conv whose input rows are x (1, h, W, C) and whose first output row reads input row
    -pad_top of x; `sl` picks output channels (with wc already sliced)."""
    m = rec.centered.shape[0]
    acc = conv_k.conv2d_acc(x, wc, x_zp=rec.x_zp, kernel=rec.kernel, strides=rec.strides, dilations=rec.dilations,
                            pads=(pad_top, rec.pads[1], 0, rec.pads[3]), out_hw=(out_rows, rec.out_hw[1]),
                            group=rec.group if sl == slice(None) else x.shape[-1])
    bias = None if rec.bias is None else _per_channel(rec.bias, m)[sl]
    return conv_k.requantize_acc(acc, bias, _per_channel(rec.multiplier, m)[sl], _per_channel(rec.shift, m)[sl],
                                 rec.y_zp, rec.act_min, rec.act_max, rec.y_dtype)


def run_inplace_depthwise(plan: Int8Plan, node_name: str, env: dict, group: int | None = None) -> None:
    """env[output] of a depthwise conv computed in place: per channel group, the group's whole output from the
    input buffer as it is by then, scattered into that buffer at (h * W_out + w) * C + c. env[input] is left
    holding the overwritten buffer (the input no longer exists)."""
    g = plan.graph
    node, rec = _record(plan, node_name)
    geo: ConvGeom | None = inplace_geom(g, node)
    if geo is None:
        raise ScheduleError(f"node '{node_name}' ({node.op}) cannot run in place (not a depthwise NHWC batch-1 "
                            "conv with multiplier 1 and an output that fits its input)")
    (h, w, c), (ho, wo, _) = geo.in_hwc, geo.out_hwc
    gs = group or default_group(c)
    if c % gs:
        raise ScheduleError(f"node '{node_name}': group {gs} does not divide its {c} channels")
    buf = np.array(env[geo.x], dtype=np.int8).reshape(-1).copy()
    pix = np.arange(ho * wo)[:, None] * c
    for c0 in range(0, c, gs):
        sl = slice(c0, c0 + gs)
        x = buf[:h * w * c].reshape(1, h, w, c)[..., sl]
        wc = conv_k.conv_weights(rec.centered[sl], 0, gs)
        tmp = _conv_rows(rec, wc, x, rec.pads[0], ho, sl)            # the "dwtmp:<node>" buffer
        buf[pix + c0 + np.arange(gs)[None, :]] = tmp.reshape(ho * wo, gs)
    env[geo.y] = buf[:ho * wo * c].reshape(g.tensors[geo.y].shape).copy()
    env[geo.x] = buf.reshape(g.tensors[geo.x].shape)


def run_fused_block(plan: Int8Plan, block: FusedBlock, env: dict, rolling: bool = True,
                    in_place: bool | None = None) -> None:
    """env[project output] computed band by band (engine/memory/fused.py): per band, the expanded rows it needs
    that the band buffer does not hold yet (all of them with rolling=False: halos recomputed), the depthwise
    band, its projection into the output rows. The expanded and depthwise tensors are never stored in env.
    With the block's residual Add, env[sum] instead: each band's projection goes to a band and its sum with the
    input's rows to the sum's rows, written over env[input]'s array when `in_place` (None: as add_in_place says;
    never with recomputed halos, which read input rows an earlier band overwrote); the project output is never
    stored."""
    g = plan.graph
    geo = block_geom(g, block)
    (_, er), (_, dr), (_, pr) = (_record(plan, n.node) for n in (geo.expand, geo.dw, geo.project))
    e, d, a = geo.expand, geo.dw, geo.add
    we, wd, wp = (conv_k.conv_weights(r.centered, 0, r.group) for r in (er, dr, pr))
    x = np.asarray(env[e.x])
    if a is not None:
        in_place = rolling and add_in_place(g, geo, block.band_rows) if in_place is None else in_place
        if in_place and not rolling:
            raise ScheduleError(f"fused block {list(block.nodes)}: the sum cannot overwrite the input when the "
                                "halos are recomputed")
        add_kernel = next(k for n, k in plan.steps if n.name == a.node)
        x = np.array(x, copy=True)   # the input's buffer: the sum's rows go over it when in place
        s = x if in_place else np.empty(g.tensors[a.y].shape, dtype=DTYPES[g.tensors[a.y].dtype])
    h = e.in_hwc[0]
    _, wa, ca = d.in_hwc
    band = np.zeros((geo.band_a_rows(block.band_rows), wa, ca), dtype=np.int8)   # "band:<expanded>"
    y = np.empty((1, *geo.project.out_hwc), dtype=pr.y_dtype)
    held = (0, 0)
    for bd in geo.bands(block.band_rows, rolling):
        if bd.new > bd.lo:  # roll: the rows the previous band computed move to the top
            band[:bd.new - bd.lo] = band[bd.lo - held[0]:bd.new - held[0]].copy()
        if bd.hi > bd.new:
            xr0 = max(0, bd.new * e.strides[0] - e.pads[0])
            xr1 = min(h, (bd.hi - 1) * e.strides[0] - e.pads[0] + e.eff_kh)
            rows = _conv_rows(er, we, x[:, xr0:xr1], e.pads[0] - bd.new * e.strides[0] + xr0, bd.hi - bd.new)
            band[bd.new - bd.lo:bd.hi - bd.lo] = rows[0]
        held = (bd.lo, bd.hi)
        b = _conv_rows(dr, wd, band[None, :bd.hi - bd.lo], d.pads[0] + bd.lo - bd.r0 * d.strides[0],
                       bd.r1 - bd.r0)                                       # "band:<depthwise out>"
        y[:, bd.r0:bd.r1] = _conv_rows(pr, wp, b, 0, bd.r1 - bd.r0)
        if a is not None:   # "band:<project out>" plus the input's rows, into the sum's rows
            pb, xb = y[:, bd.r0:bd.r1], x[:, bd.r0:bd.r1]
            s[:, bd.r0:bd.r1] = add_kernel([pb, xb] if a.p_first else [xb, pb])[0]
    if a is not None:
        env[a.y] = s if in_place else s.copy()
        if in_place:
            env[e.x] = x   # the input's array now holds the sum (the input no longer exists)
        return
    env[geo.project.y] = y.reshape(g.tensors[geo.project.y].shape)
