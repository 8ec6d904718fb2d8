"""Int8 reference of a patch stage (MCUNetV2): the split node's output computed patch by patch.

    run_patch_stage(plan, PatchStage(("conv0", "dw1", "pw2"), (3, 3)), env)   # env[entry] in, env[split out] out

Each patch starts from its own region of the entry tensor only (engine.memory.receptive gives it) and runs the
stage's layers with the existing int8 kernels (engine/int8/conv.py, pool.py, the lowered element-wise kernels)
on tiles: the kernel gets the tile's dims and the pad that remains at the image border, so a tap outside the
tile is exactly a tap outside the image. The result is bit-exact to the layer-by-layer run (tests assert it),
which is what proves the geometry the memory plan and the C generator use.
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError
from engine.int8 import conv as conv_k
from engine.int8 import pool as pool_k
from engine.int8.lower import KERNELS
from engine.int8.params import ConvParams, PoolParams
from engine.int8.prepare import prepare_node
from engine.memory.receptive import PatchGeometry, stage_shape
from engine.memory.schedule import PatchStage


def _window(rec, wc, x: np.ndarray, pads: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Run a conv/pool record on a tile with (pad_top, pad_left); a negative pad drops the rows/cols before."""
    top, left = pads
    if top < 0:
        x, top = x[:, -top:], 0
    if left < 0:
        x, left = x[:, :, -left:], 0
    p = (top, left, 0, 0)
    if isinstance(rec, ConvParams):
        acc = conv_k.conv2d_acc(x, wc, x_zp=rec.x_zp, kernel=rec.kernel, strides=rec.strides,
                                dilations=rec.dilations, pads=p, out_hw=out_hw, group=rec.group)
        return conv_k.requantize_acc(acc, rec.bias, rec.multiplier, rec.shift, rec.y_zp, rec.act_min, rec.act_max,
                                     rec.y_dtype)
    if rec.is_max:
        return pool_k.max_pool(x, kernel=rec.kernel, strides=rec.strides, dilations=rec.dilations, pads=p,
                               out_hw=out_hw, act_min=rec.act_min, act_max=rec.act_max)
    return pool_k.average_pool(x, kernel=rec.kernel, strides=rec.strides, pads=p, out_hw=out_hw,
                               act_min=rec.act_min, act_max=rec.act_max, include_pad=rec.include_pad)


def run_patch_stage(plan, stage: PatchStage, env: dict, *, input_at: int | None = None) -> None:
    """Compute env[split output] from env[entry] patch by patch (plan: an engine.int8.Int8Plan). `input_at`:
    run through one simulated byte buffer holding the output at its start and the entry `input_at` bytes later
    (engine.memory.patch_overlap, patch_overlap.tensor_shift of the memory plan gives it); every byte the output
    writes is marked, and a patch about to read entry bytes an earlier patch overwrote raises GraphError (the
    overlap would compute a wrong result) instead of passing unseen."""
    g = plan.graph
    shape = stage_shape(g, stage.nodes)
    geo = PatchGeometry(shape, stage.grid)
    nodes = {n.name: n for n in g.nodes}
    if shape.layout != "NHWC":
        raise GraphError("the int8 patch reference takes NHWC stages", stage.nodes[0], nodes[stage.nodes[0]].op)
    recs, weights, kernels = {}, {}, {}
    for ng in shape.nodes:
        rec = prepare_node(g, nodes[ng.name])
        recs[ng.name] = rec
        if isinstance(rec, ConvParams):
            if rec.x_dtype != "int8" or rec.layout != "NHWC" or rec.rank != 2:
                raise GraphError("a patch stage runs int8 NHWC 2-D convolutions", ng.name, ng.op)
            weights[ng.name] = conv_k.conv_weights(rec.centered, 0, rec.group)
        elif not isinstance(rec, PoolParams):
            kernels[ng.name] = KERNELS[type(rec)](rec)   # element-wise: shape-agnostic
    x_all = env[shape.entry]
    y_t = g.tensors[shape.split_out]
    y_all = np.empty(y_t.shape, dtype=x_all.dtype if y_t.dtype in ("int4",) else np.dtype(y_t.dtype))
    if input_at is not None:   # both tensors as views of one buffer: writes of y clobber x where they overlap
        if x_all.dtype.itemsize != 1 or y_all.dtype.itemsize != 1:
            raise GraphError("a merged patch buffer holds 1-byte tensors", stage.split, nodes[stage.split].op)
        buf = np.zeros(max(y_all.size, input_at + x_all.size), dtype=np.int8)
        buf[input_at:input_at + x_all.size] = np.ascontiguousarray(x_all).reshape(-1).view(np.int8)
        x_all = buf[input_at:input_at + x_all.size].view(x_all.dtype).reshape(x_all.shape)
        y_all = buf[:y_all.size].view(y_all.dtype).reshape(y_all.shape)
        written = np.zeros(buf.size, dtype=bool)     # bytes the split output holds by now
        x_written = written[input_at:input_at + x_all.size].reshape(x_all.shape)
        y_written = written[:y_all.size].reshape(y_all.shape)
    for i, j in geo.patches:
        r0, r1, c0, c1 = geo.region(shape.entry, i, j)
        if input_at is not None and x_written[:, r0:r1, c0:c1].any():
            raise GraphError(f"patch ({i},{j}) reads input rows [{r0},{r1}) cols [{c0},{c1}) of '{shape.entry}' "
                             f"that an earlier patch overwrote with '{shape.split_out}' (input {input_at} bytes "
                             "into the shared buffer)", stage.split, nodes[stage.split].op)
        tiles = {shape.entry: (x_all[:, r0:r1, c0:c1].copy(), r0, c0)}   # this patch's input region, now
        for ng in shape.nodes:
            o0, o1, p0, p1 = geo.region(ng.output, i, j)
            if ng.is_window:
                x, xr, xc = tiles[ng.inputs[0]]
                pads = (xr + ng.pads[0] - o0 * ng.strides[0], xc + ng.pads[1] - p0 * ng.strides[1])
                y = _window(recs[ng.name], weights.get(ng.name), x, pads, (o1 - o0, p1 - p0))
            else:
                xs = [v[:, o0 - vr:o1 - vr, p0 - vc:p1 - vc] for v, vr, vc in (tiles[t] for t in ng.inputs)]
                y = kernels[ng.name]([np.ascontiguousarray(v) for v in xs])[0]
            if y.shape[1:3] != (o1 - o0, p1 - p0):
                raise GraphError(f"patch ({i},{j}) gave {list(y.shape)} for region rows [{o0},{o1}) cols "
                                 f"[{p0},{p1})", ng.name, ng.op)
            tiles[ng.output] = (y, o0, p0)
        y, yr, yc = tiles[shape.split_out]
        y_all[:, yr:yr + y.shape[1], yc:yc + y.shape[2]] = y
        if input_at is not None:
            y_written[:, yr:yr + y.shape[1], yc:yc + y.shape[2]] = True
    env[shape.split_out] = y_all.copy()
