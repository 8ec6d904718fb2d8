"""C for a patch stage (MCUNetV2): one layer function that runs every patch of the stage.

    code = emit_patch_stage(ctx, PatchStage(("conv0", "dw1", "pw2"), (3, 3)))   # PatchLayerCode
    for label, part in access_groups(code): ...                                  # generate.check_accesses per step

Per stage layer: its weights, bias and requantization arrays once (as emit_conv lays them out), and per patch a
kernel parameter struct (ts_conv_params, ts_pool_params, ts_add_params, ts_copy_params) with the tile's dims and
the pads that remain at the image border, in flash. The loop runs the layers for patch 0, then patch 1, ... at
the arena offsets of the plan: the entry tensor is read in place (row offset + negative pad_left: no copy),
internal tensors live in their "tile:<tensor>" buffers, and the split node writes its rows straight into the
whole output when patches span its width, otherwise into "tile:<output>", copied into place with the row stride.

Every arena access is recorded per (patch, layer) step: tiles of different steps may share bytes (the planner
reuses a dead tile's space inside the stage), so the accesses are checked step by step (`access_groups`), the
same check generate.check_accesses makes for a layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.codegen.cwrite import c_struct
from engine.codegen.emit_conv import (check_acc, check_weights, im2col_scratch_bytes, packs_int4, requant_arrays,
                                      weight_array)
from engine.codegen.emitter import (MAX_DIMS, Access, EmitContext, LayerCode, check_shift, emit_error, int8_grid,
                                    layer_macs, merge_dims, pad_dims)
from engine.codegen.kernelfiles import dsp_paths
from engine.int8.dsp_requant import REQUANT_FIELD, add_linear_fields
from engine.int8.params import AddParams, ConvParams, PoolParams, TableParams
from engine.int8.prepare import prepare_node
from engine.memory.patch import writes_split_directly
from engine.memory.patch_overlap import tensor_at
from engine.memory.receptive import PatchGeometry, stage_shape
from engine.memory.schedule import PatchStage


@dataclass
class PatchLayerCode(LayerCode):
    steps: list = field(default_factory=list)   # [(label, [Access, ...])] per patch and stage layer


def access_groups(code: LayerCode) -> list[tuple[str, LayerCode]]:
    """(label, LayerCode holding one step's accesses) for generate.check_accesses; a plain layer is one group."""
    if not isinstance(code, PatchLayerCode):
        return [("", code)]
    return [(label, LayerCode(code.kernel, code.comment, [], accesses=acc)) for label, acc in code.steps]


def caller_input_ptr(prefix: str, index: int | None) -> str:
    """C name of the pointer to graph input `index` in the caller's buffer (None: the array's name); the run
    function sets it when the plan keeps that input outside the arena (patch_rewrite(input_outside_arena=True))."""
    name = f"{prefix}_caller_input"
    return name if index is None else f"{name}[{index}]"


class _Place:
    """Where one tensor lives for one patch: arena offset of its buffer, its region's origin and dims."""

    def __init__(self, name: str, off: int, r0: int, c0: int, h: int, w: int, c: int, whole: bool):
        self.name, self.off, self.r0, self.c0, self.h, self.w, self.c, self.whole = name, off, r0, c0, h, w, c, whole

    def at(self, r: int, col: int) -> int:
        """Byte offset (from the buffer) of element (r, col, 0) in tensor coordinates."""
        return ((r - self.r0) * self.w + (col - self.c0)) * self.c


def _strides(node, shape, xs, ys):
    dims, (mx, my) = merge_dims(shape, xs, ys)
    if len(dims) > MAX_DIMS:
        raise emit_error(node, "a patch copy needs more dims than the C kernel has")
    return {"ndim": len(dims), "shape": pad_dims(dims, 1), "x_stride": pad_dims(mx, 0), "y_stride": pad_dims(my, 0)}


def _array_of(structs: list[dict]) -> str:
    return "{" + ",\n    ".join(c_struct(s) for s in structs) + "}"


def emit_patch_stage(ctx: EmitContext, stage: PatchStage) -> PatchLayerCode:
    """One layer function running `stage` patch by patch at ctx.plan's offsets (its tables must come from
    engine.memory.patch.patch_rewrite: "tile:<tensor>" buffers, the entry and split output whole)."""
    g = ctx.graph
    shape = stage_shape(g, stage.nodes)
    geo = PatchGeometry(shape, stage.grid)
    nodes = {n.name: n for n in g.nodes}
    if shape.layout != "NHWC":
        raise emit_error(nodes[stage.nodes[0]], "the C generator takes NHWC patch stages (the TFLite form)")
    index = ctx.index
    old = ctx.code
    code = PatchLayerCode(old.kernel, old.comment, old.body, old.arrays, old.scratch_bytes, old.accesses)
    ctx.code = code
    patches = geo.patches
    direct = writes_split_directly(geo)
    b = shape.batch

    outside = not ctx.in_arena(shape.entry)
    if outside and shape.entry not in g.inputs:
        raise emit_error(nodes[stage.nodes[0]], f"the stage's entry '{shape.entry}' has no place in the arena")

    def place(t: str, i: int, j: int, write_split: bool = False) -> _Place:
        c = shape.channels[t]
        if t == shape.entry or (t == shape.split_out and write_split):
            h, w = shape.hw[t]
            off = 0 if (t == shape.entry and outside) else tensor_at(ctx.plan, t)
            return _Place(t, off, 0, 0, h, w, c, True)
        r0, r1, c0, c1 = geo.region(t, i, j)
        return _Place(f"tile:{t}", ctx.plan.tensor_offset(f"tile:{t}")[0], r0, c0, r1 - r0, c1 - c0, c, False)

    lines, loop, kernels, macs = [], [], [], 0
    # (patch, stage layer, 0: the layer / 1: the copy of its patch into the whole split output) -> accesses
    steps: dict[tuple[int, int, int], list] = {(k, n, 0): [] for k in range(len(patches))
                                               for n in range(len(shape.nodes))}
    for jn, ng in enumerate(shape.nodes):
        node = nodes[ng.name]
        ctx.index = f"{index}_n{jn}"   # array names <prefix>_l<layer>_n<node>_<what>: one layer, several nodes
        rec = prepare_node(g, node)
        macs += layer_macs(g, node)
        is_split = ng.output == shape.split_out
        x_off, y_off, params = [], [], []
        tag = f"n{jn}"
        for k, (i, j) in enumerate(patches):
            o0, o1, p0, p1 = geo.region(ng.output, i, j)
            oh, ow = o1 - o0, p1 - p0
            yp = place(ng.output, i, j, write_split=is_split and direct)
            yo = yp.at(o0, p0)
            nbytes = b * oh * ow * shape.channels[ng.output]
            if yp.whole:   # rows of the whole output (patches span its width: contiguous)
                steps[(k, jn, 0)].append(Access(ng.output, yp.off + yo, nbytes, True))
            else:
                steps[(k, jn, 0)].append(Access(yp.name, yp.off, nbytes, True))
            y_off.append(yo)
            if ng.is_window:
                xp = place(ng.inputs[0], i, j)
                r0, r1, c0, c1 = geo.region(ng.inputs[0], i, j)
                if xp.whole:   # read in place: its rows [r0, r1), the full row stride, pad_left shifted
                    base, in_h, in_w = xp.at(r0, 0), r1 - r0, xp.w
                    pad_top = r0 + ng.pads[0] - o0 * ng.strides[0]
                    pad_left = ng.pads[1] - p0 * ng.strides[1]
                else:
                    base, in_h, in_w = 0, xp.h, xp.w
                    pad_top, pad_left = geo.pads(ng, i, j)
                if not (xp.whole and outside):   # the caller's buffer is not the arena's to check
                    steps[(k, jn, 0)].append(Access(ng.inputs[0] if xp.whole else xp.name, xp.off + base,
                                                 b * in_h * in_w * xp.c, False))
                x_off.append(base)
                params.append(_window_params(ctx, node, rec, ng, b, (in_h, in_w, xp.c), (oh, ow),
                                             (pad_top, pad_left)))
            else:
                ins = [place(t, i, j) for t in ng.inputs]
                offs = [p.at(o0, p0) for p in ins]
                for p, o in zip(ins, offs):
                    end = p.at(o1 - 1, p1 - 1) + p.c
                    if not (p.whole and outside and p.name == shape.entry):
                        steps[(k, jn, 0)].append(Access(p.name, p.off + o, end - o, False))
                x_off.append(offs)
                out_shape = (b, oh, ow, shape.channels[ng.output])
                strides = [[p.h * p.w * p.c, p.w * p.c, p.c, 1] for p in ins]
                dense = [oh * ow * out_shape[3], ow * out_shape[3], out_shape[3], 1]
                if isinstance(rec, AddParams):
                    dims, (sa, sb) = merge_dims(out_shape, strides[0], strides[1])
                    params.append({"it": {"ndim": len(dims), "shape": pad_dims(dims, 1), "a_stride": pad_dims(sa, 0),
                                          "b_stride": pad_dims(sb, 0)}})
                else:
                    params.append(_strides(node, out_shape, strides[0], dense))
        lines += _node_consts(ctx, node, rec, ng, tag, params, x_off, y_off, kernels, loop, shape, direct, geo, steps,
                              jn)
    ctx.index = index
    n = len(patches)
    code.kernel = "+".join(dict.fromkeys(kernels))
    code.comment = (f"patch stage {stage.grid[0]}x{stage.grid[1]} ({n} patches): {len(shape.nodes)} layers "
                    f"{stage.nodes[0]} .. {stage.split}, {macs:,} MACs layer by layer, "
                    f"{geo.patch_macs:,} by patch")
    code.body += lines + ["int32_t k;", f"for (k = 0; k < {n}; ++k) {{"] + [f"    {s}" for s in loop] + ["}"]
    code.steps = [(f"patch {k} {shape.nodes[jn].name}{' (copy out)' if sub else ''}", steps[(k, jn, sub)])
                  for k, jn, sub in sorted(steps)]
    code.accesses = [a for _, acc in code.steps for a in acc]
    check_step_order(code, nodes[stage.split])
    return code


def check_step_order(code: PatchLayerCode, node) -> None:
    """Replay the steps in their run order: no step may read a tensor's bytes that a step of this stage last
    wrote as another tensor (what a wrong overlap of the split output and the entry, or of two tiles, does;
    generate.check_accesses looks at one step at a time and cannot see it)."""
    if not code.steps:
        return
    end = max(a.offset + a.nbytes for _, acc in code.steps for a in acc)
    owner = np.zeros(end, dtype=np.int32)          # 0: not written in this stage
    ids: dict[str, int] = {}
    for label, acc in code.steps:
        for a in acc:
            if a.write:
                continue
            seen = owner[a.offset:a.offset + a.nbytes]
            tid = ids.setdefault(a.tensor, len(ids) + 1)
            bad = (seen != 0) & (seen != tid)
            if bad.any():
                other = next(t for t, v in ids.items() if v == int(seen[bad][0]))
                raise emit_error(node, f"{label} reads '{a.tensor}' at bytes an earlier step wrote as '{other}'")
        for a in acc:
            if a.write:
                owner[a.offset:a.offset + a.nbytes] = ids.setdefault(a.tensor, len(ids) + 1)


def _window_params(ctx, node, rec, ng, b, in_dims, out_hw, pads) -> dict:
    in_h, in_w, c = in_dims
    if isinstance(rec, ConvParams):
        m = rec.centered.shape[0]
        p = {"batches": b, "in_h": in_h, "in_w": in_w, "in_c": c, "out_h": out_hw[0], "out_w": out_hw[1],
             "out_c": m, "k_h": rec.kernel[0], "k_w": rec.kernel[1], "stride_h": rec.strides[0],
             "stride_w": rec.strides[1], "dil_h": rec.dilations[0], "dil_w": rec.dilations[1], "pad_top": pads[0],
             "pad_left": pads[1], "groups": rec.group, "input_offset": -rec.x_zp, "output_offset": rec.y_zp,
             "act_min": rec.act_min, "act_max": rec.act_max}
        return p
    return {"batches": b, "in_h": in_h, "in_w": in_w, "channels": c, "out_h": out_hw[0], "out_w": out_hw[1],
            "k_h": rec.kernel[0], "k_w": rec.kernel[1], "stride_h": rec.strides[0], "stride_w": rec.strides[1],
            "dil_h": rec.dilations[0], "dil_w": rec.dilations[1], "pad_top": pads[0], "pad_left": pads[1],
            "count_h_lo": 0, "count_h_hi": in_h, "count_w_lo": 0, "count_w_hi": in_w,
            "act_min": rec.act_min, "act_max": rec.act_max}


def _offsets(ctx, name: str, values) -> str | None:
    """An int32 offset array in flash, or None when every patch uses offset 0."""
    if not any(values):
        return None
    return ctx.array(name, "int32_t", np.asarray(values, dtype=np.int64), "byte offsets per patch")


def _ptr(tensor_ptr: str, arr: str | None) -> str:
    return f"{tensor_ptr} + {arr}[k]" if arr else tensor_ptr


def _node_consts(ctx: EmitContext, node, rec, ng, tag, params, x_off, y_off, kernels, loop, shape, direct, geo,
                 steps, jn) -> list[str]:
    g = ctx.graph
    out = []
    is_split = ng.output == shape.split_out
    y_whole = is_split and direct
    y_base = f"A({ctx.plan.tensor_offset(ng.output if y_whole else f'tile:{ng.output}')[0]})"
    ya = _offsets(ctx, "yo", y_off)
    yptr = _ptr(y_base, ya)

    def src(t: str) -> str:
        if t == shape.entry and not ctx.in_arena(t):
            return caller_input_ptr(ctx.prefix, g.inputs.index(t))
        return f"A({tensor_at(ctx.plan, t) if t == shape.entry else ctx.plan.tensor_offset(f'tile:{t}')[0]})"

    if isinstance(rec, ConvParams):
        int8_grid(node, g.tensors[ng.inputs[0]])
        int8_grid(node, g.tensors[ng.output])
        wq, dsp = rec.centered, rec.dsp
        check_weights(node, wq)
        check_acc(node, dsp)
        c = shape.channels[ng.inputs[0]]
        depthwise = rec.group > 1 and wq.shape[-1] == 1 and rec.group == c
        s4 = packs_int4(rec.w_dtype, wq)
        if depthwise:
            wname = weight_array(ctx, wq[..., 0].transpose(1, 2, 0), s4, f"{node.name}: depthwise weights")
        else:
            wname = weight_array(ctx, wq, s4, f"{node.name}: weights (M, kH, kW, C/group)")
        bname = ctx.array("b", "int32_t", dsp.bias, "bias")
        mname, sname, per_channel = requant_arrays(ctx, node, dsp)
        for p in params:
            p["per_channel"] = per_channel
            p[REQUANT_FIELD] = int(dsp.mode)
        out.append(f"static const ts_conv_params p_{tag}[{len(params)}] = {_array_of(params)};")
        xa = _offsets(ctx, "xo", x_off)
        xptr = _ptr(src(ng.inputs[0]), xa)
        if s4:
            kern = "ts_depthwise_conv_s4" if depthwise else "ts_conv_s4"
            loop.append(f"{kern}(&p_{tag}[k], {xptr}, {wname}, {bname}, {mname}, {sname}, {yptr});")
        elif depthwise:
            kern = "ts_depthwise_conv_s8"
            loop.append(f"{kern}(&p_{tag}[k], {xptr}, {wname}, {bname}, {mname}, {sname}, {yptr});")
        else:
            kern = "ts_conv_s8"
            if rec.group == 1:
                kk = rec.kernel[0] * rec.kernel[1] * c
                # the whole-layer rule (eight-pixel pointwise blocks, the 3x3x3 kernel's records): the kernel
                # picks its path from the shape, not from how the layer was scheduled
                ctx.code.scratch_bytes = max(ctx.code.scratch_bytes,
                                             im2col_scratch_bytes(kk, c, rec.kernel[0] * rec.kernel[1]))
            loop.append(f"{kern}(&p_{tag}[k], {xptr}, {wname}, {bname}, {mname}, {sname}, {yptr}, SCRATCH);")
        for p in params:  # each patch's own shape decides its path
            ctx.code.dsp_paths |= dsp_paths(p, kern)
    elif isinstance(rec, PoolParams):
        int8_grid(node, g.tensors[ng.inputs[0]])
        kern = "ts_max_pool_s8" if rec.is_max else "ts_avg_pool_s8"
        out.append(f"static const ts_pool_params p_{tag}[{len(params)}] = {_array_of(params)};")
        xptr = _ptr(src(ng.inputs[0]), _offsets(ctx, "xo", x_off))
        loop.append(f"{kern}(&p_{tag}[k], {xptr}, {yptr});")
    elif isinstance(rec, AddParams):
        for t in (*ng.inputs, ng.output):
            int8_grid(node, g.tensors[t])
        check_shift(node, [rec.e1, rec.e2, rec.eo])
        for p in params:
            p.update({"a_offset": -rec.a_zp, "b_offset": -rec.b_zp, "left_shift": rec.left_shift,
                      "a_multiplier": rec.m1, "a_shift": rec.e1, "b_multiplier": rec.m2, "b_shift": rec.e2,
                      "out_multiplier": rec.mo, "out_shift": rec.eo, "output_offset": rec.y_zp,
                      "act_min": rec.act_min, "act_max": rec.act_max, "subtract": int(rec.subtract),
                      REQUANT_FIELD: int(rec.mode), **add_linear_fields(rec)})
        kern = "ts_add_s8"
        out.append(f"static const ts_add_params p_{tag}[{len(params)}] = {_array_of(params)};")
        aa = _offsets(ctx, "ao", [o[0] for o in x_off])
        ba = _offsets(ctx, "bo", [o[1] for o in x_off])
        loop.append(f"{kern}(&p_{tag}[k], {_ptr(src(ng.inputs[0]), aa)}, {_ptr(src(ng.inputs[1]), ba)}, {yptr});")
    elif isinstance(rec, TableParams):
        int8_grid(node, g.tensors[ng.inputs[0]])
        int8_grid(node, g.tensors[ng.output])
        table = ctx.array("table", "int8_t", np.asarray(rec.table).astype(np.int64), f"{node.name}: {node.op}")
        kern = "ts_copy_s8"
        out.append(f"static const ts_copy_params p_{tag}[{len(params)}] = {_array_of(params)};")
        xptr = _ptr(src(ng.inputs[0]), _offsets(ctx, "xo", [o[0] for o in x_off]))
        loop.append(f"{kern}(&p_{tag}[k], {xptr}, {yptr}, {table});")
    else:
        raise emit_error(node, f"{node.op} has no patch kernel in C")
    kernels.append(kern)
    if is_split and not direct:   # the patch's rows of the whole output: a strided copy from its tile
        y = shape.split_out
        h, w = shape.hw[y]
        c = shape.channels[y]
        cps, offs = [], []
        yoff = ctx.plan.tensor_offset(y)[0]
        toff = ctx.plan.tensor_offset(f"tile:{y}")[0]
        for k, (i, j) in enumerate(geo.patches):
            o0, o1, p0, p1 = geo.region(y, i, j)
            oh, ow = o1 - o0, p1 - p0
            b = shape.batch
            cps.append(_strides(node, (b, oh, ow, c), [oh * ow * c, ow * c, c, 1], [h * w * c, w * c, c, 1]))
            offs.append((o0 * w + p0) * c)
            end = ((o1 - 1) * w + p1) * c
            steps[(k, jn, 1)] = [Access(f"tile:{y}", toff, b * oh * ow * c, False),
                                 Access(y, yoff + offs[-1], end - offs[-1], True)]
        out.append(f"static const ts_copy_params p_{tag}_out[{len(cps)}] = {_array_of(cps)};")
        loop.append(f"ts_copy_s8(&p_{tag}_out[k], A({toff}), {_ptr(f'A({yoff})', _offsets(ctx, 'yw', offs))}, NULL);")
        kernels.append("ts_copy_s8")
    return out
