"""C for the memory-saving schedules: an in-place depthwise conv and a fused block computed band by band.

    code = emit_inplace_depthwise(ctx, node)     # ts_depthwise_inplace_s8 over the input's buffer
    code = emit_fused_block(ctx, block)          # one layer function: the band loop over the block's three convs
                                                 # (and its residual Add, band by band)

Both run at the arena offsets of ctx.plan, whose table came from engine/memory/inplace.py and fused.py (the
output merged into the input's buffer and a "dwtmp:<node>" temporary; "band:<tensor>" buffers). Each conv's
constants and parameter struct come from the Conv emitter itself (emit_conv, run on a side context), so the
weights, requantization and DSP choice are the layer schedule's; only the rows, pads and pointers change per band
(the arithmetic the int8 reference engine/int8/fused.py runs, and the kernels skip taps outside a band's rows
exactly as outside the image).
"""
from __future__ import annotations

import re

from engine.codegen.emitter import EMIT, Access, EmitContext, LayerCode
from engine.codegen.kernelfiles import DSP_PATHS
from engine.errors import GraphError
from engine.ir import Node
from engine.memory.fused import band_name, block_geom
from engine.memory.inplace import group_of, inplace_geom, tmp_name
from engine.memory.schedule import FusedBlock, ScheduleError

_CALL = re.compile(r"(\w+)\(&p, (.*)\);", re.S)


class _AtZero:
    """The plan of the side context: every tensor at offset 0 (its pointers are replaced by the caller's)."""

    def tensor_offset(self, name: str) -> tuple[int, int]:
        return 0, 0


def _conv_parts(ctx: EmitContext, node: Node, role: str) -> tuple[str, str, list[str], str]:
    """The Conv (or Add) emitter's output for `node`: its parameter struct (named `<role>0`), kernel, call
    arguments after the struct (Conv: x, w, bias, multipliers, shifts, y[, SCRATCH]; Add: a, b, y) and comment;
    its const arrays join ctx's layer."""
    checked = node.inputs[:1] if node.op == "Conv" else [*node.inputs, *node.outputs]
    if any(ctx.graph.tensors[t].dtype != "int8" for t in checked):
        raise GraphError("scheduled convs and adds run int8 activations", node.name, node.op)
    side = EmitContext(ctx.graph, _AtZero(), ctx.prefix)
    side._const_names, side.const_arrays = ctx._const_names, ctx.const_arrays
    code = side.begin(0)
    side.index = f"{ctx.index}_{role}"   # array names <prefix>_l<index>_<role>_w: unique in the library
    EMIT[node.op](side, node)
    match = _CALL.fullmatch(code.body[-1])
    if len(code.body) != 2 or match is None or " p = " not in code.body[0]:
        raise AssertionError(f"unexpected Conv emitter output for {node.name}: {code.body}")
    ctx.code.arrays += code.arrays
    ctx.code.scratch_bytes = max(ctx.code.scratch_bytes, code.scratch_bytes)
    # banded or in-place calls change the parameters' shape: keep every switched path the layer might take
    ctx.code.dsp_paths |= set(DSP_PATHS) if code.kernel.startswith(("ts_conv_s8", "ts_depthwise_conv_s8")) else set()
    return code.body[0].replace(" p = ", f" {role}0 = ", 1), match.group(1), match.group(2).split(", "), code.comment


def _buffer(ctx: EmitContext, name: str, need: int, what: str) -> int:
    try:
        off, size = ctx.plan.tensor_offset(name)
    except KeyError:
        raise ScheduleError(f"{what}: the memory plan has no '{name}' buffer (plan it with this schedule)") from None
    if size < need:
        raise ScheduleError(f"{what}: '{name}' has {size} bytes in the plan, {need} needed")
    return off


def emit_inplace_depthwise(ctx: EmitContext, node: Node) -> LayerCode:
    """The depthwise conv `node` written over its input (engine/memory/inplace.py), group by group."""
    code = ctx.begin(ctx.index)
    g = ctx.graph
    geo = inplace_geom(g, node)
    if geo is None:
        raise ScheduleError(f"schedule.inplace: node '{node.name}' cannot run in place")
    struct, kernel, args, comment = _conv_parts(ctx, node, "dw")
    if kernel not in ("ts_depthwise_conv_s8", "ts_depthwise_conv_s4"):
        raise AssertionError(f"{node.name}: depthwise emitted as {kernel}")
    (ho, wo, c), x, y = geo.out_hwc, g.tensors[geo.x], g.tensors[geo.y]
    xoff = _buffer(ctx, geo.x, x.nbytes, f"in-place node '{node.name}'")
    if _buffer(ctx, geo.y, y.nbytes, f"in-place node '{node.name}'") != xoff:
        raise ScheduleError(f"in-place node '{node.name}': the plan did not put its output in its input's buffer")
    gs = group_of(ctx.plan.buffers, node.name, (ho, wo), c)
    tmp = ho * wo * gs
    toff = _buffer(ctx, tmp_name(node.name), tmp, f"in-place node '{node.name}'")
    code.kernel = kernel.replace("_conv_", "_inplace_")
    code.comment = f"{comment}; in place, {c // gs} groups of {gs} channels"
    code.body += [struct, f"{code.kernel}(&dw0, {gs}, A({xoff}), {', '.join(args[1:5])}, A({toff}));"]
    code.accesses += [Access(geo.x, xoff, x.nbytes, False, False, overlap_ok=True),
                      Access(geo.y, xoff, y.nbytes, True),
                      Access(tmp_name(node.name), toff, tmp, True),
                      Access(tmp_name(node.name), toff, tmp, False, False)]
    return code


def emit_fused_block(ctx: EmitContext, block: FusedBlock) -> LayerCode:
    """One layer function running the block band by band (engine/memory/fused.py): per band, roll the expanded
    rows the next band shares to the top of band:<expanded>, expand the new rows, depthwise into band:<dw out>,
    project into the output rows. With the block's residual Add: project into band:<project out>, then add it
    to the input's rows into the sum's rows (over the input when the plan put the sum there)."""
    code = ctx.begin(ctx.index)
    g = ctx.graph
    geo = block_geom(g, block)
    nodes = {n.name: n for n in g.nodes}
    e, d, p, add = geo.expand, geo.dw, geo.project, geo.add
    parts = [_conv_parts(ctx, nodes[c.node], role) for c, role in ((e, "pe"), (d, "pd"), (p, "pp"))]
    x, y = g.tensors[e.x], g.tensors[add.y if add else p.y]
    what = f"fused block {list(block.nodes)}"
    na, nb = geo.band_bytes(block.band_rows)
    xoff, yoff = _buffer(ctx, e.x, x.nbytes, what), _buffer(ctx, y.name, y.nbytes, what)
    aoff, boff = _buffer(ctx, band_name(e.y), na, what), _buffer(ctx, band_name(d.y), nb, what)
    row_x, row_a, row_y = e.in_hwc[1] * e.in_hwc[2], d.in_hwc[1] * d.in_hwc[2], p.out_hwc[1] * p.out_hwc[2]
    project_to, add_lines = f"A({yoff}) + (size_t)r0 * {row_y}", ""
    if add is not None:   # the projection into band:<p>, then the sum of its rows and the input's into y's rows
        struct, kernel, _, comment = _conv_parts(ctx, nodes[add.node], "pa")
        if ".it = {.ndim = 1," not in struct:
            raise AssertionError(f"{add.node}: the residual Add is not one contiguous run: {struct[:200]}")
        npb = min(block.band_rows, geo.out_h) * row_y
        poff = _buffer(ctx, band_name(add.p), npb, what)
        project_to = f"A({poff})"
        xr, pr = f"A({xoff}) + (size_t)r0 * {row_y}", f"A({poff})"
        add_lines = (f"\n    pa.it.shape[0] = (r1 - r0) * {row_y};"
                     f"\n    {kernel}(&pa, {pr if add.p_first else xr}, {xr if add.p_first else pr}, "
                     f"A({yoff}) + (size_t)r0 * {row_y});")
        parts.append((struct, kernel, [], comment))

    def call(i: int, xp: str, yp: str) -> str:
        _, kernel, args, _ = parts[i]
        rest = "".join(", " + a for a in args[6:])   # SCRATCH for the regular conv kernels
        return f"{kernel}(&{('pe', 'pd', 'pp')[i]}, {xp}, {', '.join(args[1:5])}, {yp}{rest});"

    oh, br, sd, pad_d, kd, ah = geo.out_h, block.band_rows, d.strides[0], d.pads[0], d.eff_kh, d.in_hwc[0]
    se, pad_e, ke, xh = e.strides[0], e.pads[0], e.eff_kh, e.in_hwc[0]
    code.body += [pt[0] for pt in parts] + ["ts_conv_params pe = pe0, pd = pd0, pp = pp0;"]
    code.body += ["ts_add_params pa = pa0;"] if add is not None else []
    code.body += ["int32_t r0, lo = 0, hi = 0;   /* expanded rows [lo, hi) held in the band buffer */",
                  f"""for (r0 = 0; r0 < {oh}; r0 += {br}) {{
    const int32_t r1 = r0 + {br} < {oh} ? r0 + {br} : {oh};
    const int32_t nlo = r0 * {sd} - {pad_d} > 0 ? r0 * {sd} - {pad_d} : 0;
    int32_t nhi = (r1 - 1) * {sd} - {pad_d} + {kd}, a0 = nlo;
    if (nhi > {ah}) {{
        nhi = {ah};
    }}
    if (hi > nlo) {{   /* the rows this band shares with the previous one: kept, not recomputed */
        memmove(A({aoff}), A({aoff}) + (size_t)(nlo - lo) * {row_a}, (size_t)(hi - nlo) * {row_a});
        a0 = hi;
    }}
    if (nhi > a0) {{
        const int32_t x0 = a0 * {se} - {pad_e} > 0 ? a0 * {se} - {pad_e} : 0;
        int32_t x1 = (nhi - 1) * {se} - {pad_e} + {ke};
        if (x1 > {xh}) {{
            x1 = {xh};
        }}
        pe.out_h = nhi - a0;
        pe.in_h = x1 - x0;
        pe.pad_top = {pad_e} - a0 * {se} + x0;
        {call(0, f"A({xoff}) + (size_t)x0 * {row_x}", f"A({aoff}) + (size_t)(a0 - nlo) * {row_a}")}
    }}
    lo = nlo;
    hi = nhi;
    pd.in_h = hi - lo;
    pd.out_h = r1 - r0;
    pd.pad_top = {pad_d} + lo - r0 * {sd};
    {call(1, f"A({aoff})", f"A({boff})")}
    pp.in_h = r1 - r0;
    pp.out_h = r1 - r0;
    {call(2, f"A({boff})", project_to)}{add_lines}
}}"""]
    code.kernel = "+".join(pt[1] for pt in parts)
    code.comment = (f"fused block {' -> '.join(geo.nodes)} in bands of {br} rows "
                    f"({len(geo.bands(br))} bands): {'; '.join(pt[3] for pt in parts)}")
    # The sum over the block input (in place): row r0.. of y is written after every read of x rows < r1
    # (engine.memory.fused.BlockGeom.add_in_place_ok), the element-wise "same bytes" case of check_accesses.
    code.accesses += [Access(e.x, xoff, x.nbytes, False, strict=xoff != yoff), Access(y.name, yoff, y.nbytes, True),
                      Access(band_name(e.y), aoff, na, True), Access(band_name(e.y), aoff, na, False, False),
                      Access(band_name(d.y), boff, nb, True), Access(band_name(d.y), boff, nb, False, False)]
    if add is not None:
        code.accesses += [Access(band_name(add.p), poff, npb, True), Access(band_name(add.p), poff, npb, False, False)]
    return code
