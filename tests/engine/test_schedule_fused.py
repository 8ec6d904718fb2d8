"""Fused inverted-residual blocks (engine/memory/fused.py, engine/int8/fused.py, engine/codegen/emit_fused.py),
on MobileNetV2 PTQ'd to int8 (reduced resolution and width) and the MLPerf Tiny VWW/KWS files:

1. candidates: MobileNetV2's expand -> depthwise -> project chains (and the stem conv before block 1); VWW's
   pointwise -> depthwise -> pointwise chains; none in the ResNet; wrong blocks are refused naming the node;
2. the rewritten table: the expanded and depthwise tensors are gone, "band:" buffers at the block's step, the
   output from that step on; placed by the existing planners without overlap; the peak drops;
3. rolling rows: every expanded row is computed exactly once (MAC overhead 0); the halo alternative's cost;
4. the int8 reference band by band (rolling and recomputed halos, several band heights) equals run_int8;
5. the generated C (portable, DSP path emulated, ASan/UBSan) equals the layer-by-layer reference, fused alone and
   with in-place depthwise; it cross-compiles for Cortex-M4 with -Werror.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.codegen.generate import generate
from engine.codegen.hostbuild import compile_hosts, run_host, write_library
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from engine.int8.fused import run_fused_block
from engine.memory.fused import (add_in_place, all_blocks, block_geom, fused_candidates, fused_rewrite,
                                 halo_extra_macs, layer_table)
from engine.memory.inplace import inplace_candidates, inplace_needed, inplace_rewrite
from engine.memory.lifetimes import live_bytes
from engine.memory import plan_memory
from engine.memory.planners import BestFit, GreedyBySize, arena_size, check_no_overlap
from engine.memory.schedule import FusedBlock, Schedule, ScheduleError
from engine.passes.layout import to_nhwc
from engine.passes.ptq import quantize_model
from engine.zoo import build_zoo_model
from tests.engine.schedule_glue import int8_core, layer_reference, run_scheduled_ref, scheduled_library

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
ARM_GCC = "arm-none-eabi-gcc"
DSP = ("-DTINYSTUDIO_EMULATE_DSP",)
MNV2 = "mobilenetv2?resolution=40&width=0.35"


@pytest.fixture(scope="module")
def mnv2():
    qg, _ = quantize_model(build_zoo_model(MNV2), synthetic_samples=2)
    return int8_core(to_nhwc(qg)[0])


@pytest.fixture(scope="module")
def mlperf():
    if not DATA.is_dir():
        pytest.skip(f"MLPerf Tiny models not found in {DATA}")
    return {k: load_tflite(str(DATA / f)) for k, f in
            (("vww", "vww_96_int8.tflite"), ("kws", "kws_ref_model.tflite"), ("ic", "pretrainedResnet_quant.tflite"))}


def peak(bufs, n):
    return max(live_bytes(bufs, n), default=0)


# ---- 1. candidates --------------------------------------------------------------------------------------------

def test_mobilenetv2_blocks_are_found(mnv2):
    names = {n.name for n in mnv2.nodes}
    found = {(b.expand.node, b.dw.node, b.project.node) for b in all_blocks(mnv2)}
    want = {(f"block{i}_expand", f"block{i}_dw", f"block{i}_project") for i in range(2, 18)
            if f"block{i}_expand" in names}
    assert want and want <= found and ("conv1", "block1_dw", "block1_project") in found
    chosen = fused_candidates(mnv2, 0.10)
    nodes = [n for b in chosen for n in b.nodes]
    assert chosen and len(nodes) == len(set(nodes)) and all(b.band_rows >= 1 for b in chosen)
    order, bufs = layer_table(mnv2)
    rw = fused_rewrite(mnv2, tuple(chosen), bufs, order, 16)
    assert peak(rw.buffers, len(order)) < peak(bufs, len(order)) / 2
    with pytest.raises(ScheduleError, match="max_mac_overhead"):
        fused_candidates(mnv2, -0.1)


def test_inplace_needed_on_mobilenetv2(mnv2):
    order, bufs = layer_table(mnv2)
    every = inplace_candidates(mnv2)
    needed = inplace_needed(mnv2, every, bufs, order)
    assert needed and len(needed) < len(every)
    all_peak = peak(inplace_rewrite(mnv2, tuple(every), bufs, order, 16).buffers, len(order))
    assert all_peak < peak(bufs, len(order))
    assert peak(inplace_rewrite(mnv2, tuple(needed), bufs, order, 16).buffers, len(order)) == all_peak


def test_mlperf_blocks(mlperf):
    vww = fused_candidates(mlperf["vww"], 0.10)
    assert vww and all(mlperf["vww"].node(b.nodes[1]).attrs.get("group", 1) > 1 for b in vww)
    order, bufs = layer_table(mlperf["vww"])
    assert peak(fused_rewrite(mlperf["vww"], tuple(vww), bufs, order, 16).buffers, len(order)) == 46_080
    assert peak(bufs, len(order)) == 55_296
    assert all_blocks(mlperf["ic"]) == [] and fused_candidates(mlperf["ic"]) == []


def test_wrong_blocks_are_refused_naming_the_node(mnv2):
    for nodes, msg in ((("block2_expand", "block3_dw", "block3_project"), "'block2_expand_relu6_out'.*block3_dw"),
                       (("block2_dw", "block3_dw", "block3_project"), "'block2_dw': the expand conv must be"),
                       (("block2_expand", "block2_project", "block3_project"), "'block2_project' is not a depthwise"),
                       (("block2_expand", "block2_dw", "nope"), "no node 'nope'")):
        with pytest.raises(ScheduleError, match=msg):
            block_geom(mnv2, FusedBlock(nodes, 1))
    with pytest.raises(ScheduleError, match="band_rows"):
        block_geom(mnv2, FusedBlock(("block2_expand", "block2_dw", "block2_project"), 0))


# ---- 2. the rewritten table -----------------------------------------------------------------------------------

@pytest.mark.parametrize("band_rows", [1, 3])
def test_rewrite_drops_expanded_tensors_and_adds_bands(mnv2, band_rows):
    blocks = tuple(FusedBlock(b.nodes, band_rows) for b in fused_candidates(mnv2))
    order, bufs = layer_table(mnv2)
    rw = fused_rewrite(mnv2, blocks, bufs, order, 16)
    new = list(rw.buffers)
    held = {t for b in new for t in b.tensors}
    for blk in blocks:
        geo = block_geom(mnv2, blk)
        s = order.index(blk.nodes[0])
        assert geo.expand.y not in held and geo.dw.y not in held
        na, nb = geo.band_bytes(band_rows)
        _, wa, ca = geo.dw.in_hwc
        assert na == min(geo.dw.in_hwc[0], (band_rows - 1) * geo.dw.strides[0] + geo.dw.kernel[0]) * wa * ca
        for name, n in ((f"band:{geo.expand.y}", na), (f"band:{geo.dw.y}", nb)):
            b = next(b for b in new if b.name == name)
            assert b.tensors == (name,) and b.nbytes == n and (b.first_use, b.last_use) == (s, s)
        if geo.add is None:
            assert next(b for b in new if geo.project.y in b.tensors).first_use == s   # the output from s on
        else:   # the project output only as a band; the sum over the block input (nothing else reads it)
            assert geo.project.y not in held
            b = next(b for b in new if b.name == f"band:{geo.project.y}")
            assert b.nbytes == min(band_rows, geo.out_h) * geo.project.out_hwc[1] * geo.project.out_hwc[2]
            assert (b.first_use, b.last_use) == (s, s)
            bx = next(b for b in new if geo.add.y in b.tensors)
            assert geo.add.x in bx.tensors and bx.first_use <= s < bx.last_use
        assert len(rw.detail[s]) == len(geo.bands(band_rows))
    for planner in (GreedyBySize(), BestFit()):
        offsets = planner.plan(new)
        check_no_overlap(new, offsets)
        assert arena_size(new, offsets) >= peak(new, len(order))


def test_rewrite_refuses_an_order_that_splits_the_block(mnv2):
    order, bufs = layer_table(mnv2)
    blk = FusedBlock(("block2_expand", "block2_dw", "block2_project"), 1)
    with pytest.raises(ScheduleError, match="not in this order"):
        fused_rewrite(mnv2, (blk,), bufs, [n for n in order if n != "block2_dw"], 16)


# ---- 3. rolling rows --------------------------------------------------------------------------------------

def test_rolling_computes_every_expanded_row_once(mnv2):
    for geo in all_blocks(mnv2):
        blk = FusedBlock((geo.expand.node, geo.dw.node, geo.project.node), 1)
        for rows in (1, 2, 3, geo.out_h):
            bands = geo.bands(rows)
            needed = set().union(*(range(b.lo, b.hi) for b in bands))
            assert sum(b.hi - b.new for b in bands) == len(needed)   # each needed row computed once
            recomputed = sum(b.new - b.lo for b in geo.bands(rows))
            assert halo_extra_macs(mnv2, FusedBlock(blk.nodes, rows)) == recomputed * geo.expand.macs_per_row()
        k, s = geo.dw.eff_kh, geo.dw.strides[0]
        assert (halo_extra_macs(mnv2, blk) > 0) == (k > s)


# ---- 4. the int8 reference --------------------------------------------------------------------------------

def _check_reference(g, blocks, inplace=(), n=2):
    plan = prepare_int8(g)
    rng = np.random.default_rng(5)
    for _ in range(n):
        feeds = {x: rng.integers(-128, 128, g.tensors[x].shape).astype(np.int8) for x in g.inputs}
        ref = plan.run(feeds)
        for rolling in (True, False):
            got = run_scheduled_ref(plan, feeds, inplace=inplace, fused=blocks, rolling=rolling)
            for o in g.outputs:
                np.testing.assert_array_equal(got[o], ref[o], err_msg=f"{blocks} rolling={rolling}")


@pytest.mark.parametrize("band_rows", [1, 2, 3, 100])
def test_reference_band_by_band_equals_layer_by_layer(mnv2, band_rows):
    blocks = [FusedBlock((b.expand.node, b.dw.node, b.project.node), band_rows) for b in all_blocks(mnv2)
              if b.expand.node.endswith("_expand") or b.expand.node == "conv1"]
    _check_reference(mnv2, blocks)


@pytest.mark.parametrize("band_rows", [1, 3])
def test_reference_with_the_residual_add_equals_layer_by_layer(mnv2, band_rows):
    """Every residual block with its Add: the sum written band by band over the block input (as the C does)."""
    blocks = [FusedBlock(b.nodes, band_rows) for b in all_blocks(mnv2) if b.add is not None]
    assert len(blocks) >= 2 and all(add_in_place(mnv2, block_geom(mnv2, b), band_rows) for b in blocks)
    _check_reference(mnv2, blocks, n=1)
    plan = prepare_int8(mnv2)
    geo = block_geom(mnv2, blocks[0])
    env = {geo.add.x: np.random.default_rng(1).integers(-128, 128, mnv2.tensors[geo.add.x].shape).astype(np.int8)}
    x0 = env[geo.add.x].copy()
    run_fused_block(plan, blocks[0], env)
    assert env[geo.add.y] is env[geo.add.x] and not np.array_equal(env[geo.add.x], x0)   # overwritten
    assert geo.project.y not in env
    with pytest.raises(ScheduleError, match="halos are recomputed"):
        run_fused_block(plan, blocks[0], {geo.add.x: x0}, rolling=False, in_place=True)


def test_residual_add_not_in_place_when_the_input_is_still_needed(mnv2):
    """The block input also a graph output: the sum gets its own buffer from the block's step; still exact."""
    blk = next(b for b in all_blocks(mnv2) if b.add is not None)
    g = mnv2.copy()
    g.outputs = [*g.outputs, blk.add.x]
    assert not add_in_place(g, blk, 2)
    order, bufs = layer_table(g)
    s = order.index(blk.expand.node)
    new = fused_rewrite(g, (FusedBlock(blk.nodes, 2),), bufs, order, 16).buffers
    by = next(b for b in new if blk.add.y in b.tensors)
    assert blk.add.x not in by.tensors and by.first_use == s and by.nbytes == g.tensors[blk.add.y].nbytes
    assert next(b for b in new if blk.add.x in b.tensors).last_use == len(order) - 1
    _check_reference(g, [FusedBlock(blk.nodes, 2)], n=1)


def test_residual_add_blocks_are_checked(mnv2):
    blk = next(b for b in all_blocks(mnv2) if b.add is not None)
    e, d, p, a = blk.nodes
    assert Schedule.from_dict({"kind": "fused", "fused": [{"nodes": [e, d, p, a], "band_rows": 2}]}).fused[0].add == a
    other = next(n.name for n in mnv2.nodes if n.op == "Add" and n.name != a)
    for nodes, msg in (((e, d, p, other), f"'{other}' \\(Add\\) is not the residual Add of '{blk.project.y}'"),
                       ((e, d, p, d), f"'{d}' \\(Conv\\) is not the residual Add"),
                       ((e, d, p, a, a), "expected 3 nodes")):
        with pytest.raises(ScheduleError, match=msg):
            block_geom(mnv2, FusedBlock(nodes, 1))
    with pytest.raises(ScheduleError, match="residual add"):
        Schedule.from_dict({"kind": "fused", "fused": [{"nodes": [e, d], "band_rows": 2}]})
    order, bufs = layer_table(mnv2)
    with pytest.raises(ScheduleError, match="not in this order"):
        fused_rewrite(mnv2, (FusedBlock(blk.nodes, 1),), bufs, [n for n in order if n != a], 16)


def disjoint_blocks(g, band_rows):
    out, used = [], set()
    for b in all_blocks(g):
        nodes = (b.expand.node, b.dw.node, b.project.node)
        if not used & set(nodes):
            out.append(FusedBlock(nodes, band_rows))
            used |= set(nodes)
    return out


def test_reference_chosen_blocks_with_inplace(mnv2, mlperf):
    assert fused_candidates(mlperf["kws"]) == []   # no block lowers KWS's peak (its pointwise steps)
    for g in (mnv2, mlperf["vww"], mlperf["kws"]):
        blocks = fused_candidates(g) or disjoint_blocks(g, 2)
        used = {n for b in blocks for n in b.nodes}
        _check_reference(g, blocks, [n for n in inplace_candidates(g) if n not in used], n=1)


# ---- 5. generated C -----------------------------------------------------------------------------------------

def _scheduled(g, name, inplace=(), fused=()):
    lib, plan = scheduled_library(g, name, inplace=inplace, fused=fused)
    src = lib.files[f"{name}.c"]
    assert src.count("memmove(") == len(fused) and src.count("ts_depthwise_inplace_s8(") == len(inplace)
    assert plan.arena_bytes == plan.lower_bound_bytes
    return lib, plan


@pytest.fixture(scope="module")
def mnv2_96():
    """MobileNetV2 0.35 @96 (its 10 residual blocks; a 10-class head keeps the C small)."""
    qg, _ = quantize_model(build_zoo_model("mobilenetv2?resolution=96&width=0.35&classes=10&last_channels=448"),
                           synthetic_samples=2)
    return int8_core(to_nhwc(qg)[0])


def residual_library(g, name):
    """The chosen blocks plus every other residual block with its Add (bands of 2 rows), planned by plan_memory
    and generated by generate (the export's path): each sum in place over its block input."""
    blocks = fused_candidates(g)
    used = {n for b in blocks for n in b.nodes}
    blocks += [FusedBlock(b.nodes, 2) for b in all_blocks(g) if b.add is not None and not used & set(b.nodes)]
    plan = plan_memory(g, schedule=Schedule("fused", fused=tuple(blocks)))   # as plan_memory and generate run it
    lib = generate(g, name, plan)
    adds = [block_geom(g, b).add for b in blocks if b.add]
    assert len(adds) == 10 and all(plan.tensor_offset(a.y)[0] == plan.tensor_offset(a.x)[0] for a in adds)
    assert lib.files[f"{name}.c"].count("ts_add_s8(&pa,") == 10
    return lib


@needs_gcc
def test_c_fused_alone_and_with_inplace_is_bit_exact(mnv2, mnv2_96, mlperf, tmp_path):
    """One host runner per build variant for four libraries: MobileNetV2 fused (chosen bands, one-row bands),
    fused + in-place on MobileNetV2 and on VWW; in the ASan/UBSan build also MobileNetV2 0.35 @96 with every
    residual Add fused (in place) and a residual Add whose block input is still needed (a separate sum)."""
    blocks = fused_candidates(mnv2)
    order, bufs = layer_table(mnv2)
    libs = {}
    lib, plan = _scheduled(mnv2, "mnv2_fused", fused=blocks)
    assert plan.arena_bytes < peak(bufs, len(order)) / 2
    libs["mnv2_fused"] = (lib, mnv2)
    libs["mnv2_fused1"] = (_scheduled(mnv2, "mnv2_fused1", fused=[FusedBlock(b.nodes, 1) for b in blocks])[0], mnv2)
    for name, g in (("mnv2_both", mnv2), ("vww_both", mlperf["vww"])):
        fb = fused_candidates(g)
        used = {n for b in fb for n in b.nodes}
        ip = [n for n in inplace_candidates(g) if n not in used]
        libs[name] = (_scheduled(g, name, inplace=ip, fused=fb)[0], g)
    libs["mnv2_96_add"] = (residual_library(mnv2_96, "mnv2_96_add"), mnv2_96)
    g_out = mnv2.copy()   # the block input also a graph output: the sum into its own buffer
    blk = next(b for b in all_blocks(mnv2) if b.add is not None)
    g_out.outputs = [*g_out.outputs, blk.add.x]
    plan = plan_memory(g_out, schedule=Schedule("fused", fused=(FusedBlock(blk.nodes, 2),)))
    assert plan.tensor_offset(blk.add.y)[0] != plan.tensor_offset(blk.add.x)[0]
    libs["mnv2_add_out"] = (generate(g_out, "mnv2_add_out", plan), g_out)
    rng = np.random.default_rng(7)
    data = {k: rng.integers(-128, 128, (4, g.tensors[g.inputs[0]].size)).astype(np.int8) for k, (_, g) in libs.items()}
    refs = {k: layer_reference(libs[k][1], xs) for k, xs in data.items()}
    for variant, kw in (("portable", {}), ("dsp_asan_ubsan", {"sanitize": True, "extra_cflags": DSP}),
                        ("asan_ubsan", {"sanitize": True})):
        names = [k for k in libs if variant == "asan_ubsan" or k not in ("mnv2_96_add", "mnv2_add_out")]  # time
        exe = compile_hosts([libs[k][0] for k in names], tmp_path / variant, **kw)
        for k in names:
            xs = data[k]
            np.testing.assert_array_equal(run_host(exe, xs, args=(k,)), refs[k], err_msg=f"{k} {variant}")


@pytest.mark.skipif(shutil.which(ARM_GCC) is None, reason=f"no {ARM_GCC}")
def test_c_fused_cross_compiles_for_cortex_m4(mnv2, tmp_path):
    blocks = fused_candidates(mnv2)
    used = {n for b in blocks for n in b.nodes}
    lib, _ = scheduled_library(mnv2, "m4", inplace=[n for n in inplace_candidates(mnv2) if n not in used],
                               fused=blocks)
    d = write_library(lib, tmp_path)
    flags = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-std=c99", "-O2", "-Wall",
             "-Wextra", "-Werror", "-pedantic", "-I", str(d))
    for src in lib.sources:
        r = subprocess.run([ARM_GCC, *flags, "-c", str(d / src), "-o", str(tmp_path / f"{src}.o")],
                           capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{src}:\n{r.stderr[-3000:]}"


def test_emitters_refuse_a_plan_made_without_the_schedule(mnv2):
    from engine.codegen.emit_fused import emit_fused_block, emit_inplace_depthwise
    from engine.codegen.emitter import EmitContext
    from engine.memory import plan_memory
    ctx = EmitContext(mnv2, plan_memory(mnv2), "m")
    blk = fused_candidates(mnv2)[0]
    with pytest.raises(ScheduleError, match=f"no 'band:{mnv2.node(blk.nodes[0]).outputs[0]}' buffer"):
        emit_fused_block(ctx, blk)
    with pytest.raises(ScheduleError, match="did not put its output in its input's buffer"):
        emit_inplace_depthwise(ctx, mnv2.node(inplace_candidates(mnv2)[0]))


QEMU_MCUS = ("nrf52840", "alif-e7-hp")   # Cortex-M4, Cortex-M55


@pytest.fixture(scope="module")
def mnv2_board():
    """A MobileNetV2 whose weights fit the M55 board's 512 KB (10 classes, 448 last channels)."""
    qg, _ = quantize_model(build_zoo_model(MNV2 + "&classes=10&last_channels=448"), synthetic_samples=2)
    return int8_core(to_nhwc(qg)[0])


@pytest.mark.parametrize("mcu_id", QEMU_MCUS)
def test_qemu_fused_and_inplace_are_bit_exact(mlperf, mnv2_board, mcu_id):
    from engine.export.verify_qemu import qemu_unavailable, verify_qemu
    from hwmodels.mcu import get_mcu
    mcu = get_mcu(mcu_id)
    if qemu_unavailable(mcu):
        pytest.skip(qemu_unavailable(mcu))
    g2 = mnv2_board
    order, bufs = layer_table(g2)
    ip = inplace_needed(g2, inplace_candidates(g2), bufs, order)[:1]
    fu = [b for b in fused_candidates(g2) if not set(b.nodes) & set(ip)]
    for name, g, ip, fu in (("vww_fused", mlperf["vww"], (), fused_candidates(mlperf["vww"])),
                            ("mnv2_both", g2, ip, fu)):
        assert fu and (ip or name == "vww_fused")
        assert any(b.add for b in fu) == (name == "mnv2_both")   # block3 with its residual Add, in place
        lib, _ = scheduled_library(g, name, inplace=ip, fused=fu)
        r = verify_qemu(g, lib, mcu, n_random=2)
        assert r.matched == r.inputs == 3, (name, r.first_mismatch)
