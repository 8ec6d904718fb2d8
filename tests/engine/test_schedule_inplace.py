"""In-place depthwise (engine/memory/inplace.py, engine/int8/fused.py, engine/codegen/emit_fused.py):

1. candidates: every depthwise conv of VWW and KWS whose input dies there; a depthwise whose input is read later is
   refused by the candidates and by the rewrite (one line naming the node);
2. the rewritten table: the output joins the input's buffer, a one-group "dwtmp:<node>" temporary, live bytes at
   the step drop by the output minus the group, the existing planners place it without overlap;
3. the int8 reference, group by group through the overwritten buffer, equals the layer-by-layer run_int8 for
   several group sizes, and visibly differs when the input was still needed (the simulation really overwrites);
4. the generated C (portable, DSP path emulated, ASan/UBSan) equals the layer-by-layer reference on VWW and KWS.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.codegen.emitter import Access, LayerCode
from engine.codegen.generate import check_accesses
from engine.codegen.hostbuild import compile_hosts, run_host
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from engine.int8.fused import run_inplace_depthwise
from engine.ir import Node
from engine.memory.fused import layer_table
from engine.memory.inplace import inplace_candidates, inplace_needed, inplace_rewrite
from engine.memory.lifetimes import live_bytes
from engine.memory.planners import BestFit, GreedyBySize, arena_size, check_no_overlap
from engine.memory.schedule import ScheduleError
from tests.engine.schedule_glue import layer_reference, run_scheduled_ref, scheduled_library

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
FILES = {"vww": "vww_96_int8.tflite", "kws": "kws_ref_model.tflite"}
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
DSP = ("-DTINYSTUDIO_EMULATE_DSP",)


@pytest.fixture(scope="module")
def models():
    return {k: load_tflite(str(DATA / f)) for k, f in FILES.items()}


def depthwise_nodes(g):
    return [n.name for n in g.nodes if n.op == "Conv" and int(n.attrs.get("group", 1)) > 1]


def with_late_reader(g, dw: str):
    """g plus an Add reading the depthwise conv's input after it (and its output), as a graph output."""
    g2 = g.copy()
    node = g2.node(dw)
    x, y = node.inputs[0], node.outputs[0]
    g2.tensors["late_out"] = dataclasses.replace(g2.tensors[y], name="late_out")
    g2.nodes.append(Node("Add", "late_add", [x, y], ["late_out"]))
    g2.outputs = [*g2.outputs, "late_out"]
    return g2


# ---- 1. candidates ----------------------------------------------------------------------------------------

@needs_data
def test_candidates_are_the_depthwise_convs_whose_input_dies(models):
    for k, g in models.items():
        cands = inplace_candidates(g)
        assert cands == depthwise_nodes(g), k
        assert len(cands) == {"vww": 13, "kws": 4}[k]


@needs_data
def test_input_still_needed_is_refused_by_candidates_and_rewrite(models):
    g = with_late_reader(models["kws"], depthwise_nodes(models["kws"])[1])
    cands = inplace_candidates(g)
    assert depthwise_nodes(g)[1] not in cands and len(cands) == 3
    order, bufs = layer_table(g)
    with pytest.raises(ScheduleError, match=f"node '{depthwise_nodes(g)[1]}'.*still needed"):
        inplace_rewrite(g, (depthwise_nodes(g)[1],), bufs, order, 16)
    with pytest.raises(ScheduleError, match="'CONV_2D_0'.*not a depthwise"):
        inplace_rewrite(g, ("CONV_2D_0",), bufs, order, 16)
    with pytest.raises(ScheduleError, match="no node 'nope'"):
        inplace_rewrite(g, ("nope",), bufs, order, 16)


# ---- 2. the rewritten table ---------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("model", list(FILES))
def test_rewrite_merges_output_adds_one_group_and_places_without_overlap(models, model):
    g = models[model]
    order, bufs = layer_table(g)
    nodes = inplace_candidates(g)
    rw = inplace_rewrite(g, tuple(nodes), bufs, order, 16)
    new = list(rw.buffers)
    before, after = live_bytes(bufs, len(order)), live_bytes(new, len(order))
    for name in nodes:
        node, s = g.node(name), order.index(name)
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        holder = [b for b in new if y.name in b.tensors]
        assert len(holder) == 1 and x.name in holder[0].tensors and holder[0].size >= x.nbytes
        gs = rw.detail[s][0]["group"]
        tmp = [b for b in new if b.name == f"dwtmp:{name}"]
        assert len(tmp) == 1 and tmp[0].tensors == (f"dwtmp:{name}",)
        assert tmp[0].nbytes == y.shape[1] * y.shape[2] * gs and (tmp[0].first_use, tmp[0].last_use) == (s, s)
        assert after[s] == before[s] - (-(-y.nbytes // 16) * 16) + tmp[0].size
    assert max(after) <= max(before)
    for planner in (GreedyBySize(), BestFit()):
        offsets = planner.plan(new)
        check_no_overlap(new, offsets)
        assert arena_size(new, offsets) >= max(after)


@needs_data
def test_only_nodes_the_peak_needs_are_kept(models):
    for k, g in models.items():   # their peaks are at pointwise convs: in place lowers none
        order, bufs = layer_table(g)
        assert inplace_candidates(g) and inplace_needed(g, inplace_candidates(g), bufs, order) == []


@needs_data
def test_group_size_is_the_largest_at_the_lowest_peak(models):
    g = models["kws"]
    order, bufs = layer_table(g)
    nodes = tuple(inplace_candidates(g))
    chosen = inplace_rewrite(g, nodes, bufs, order, 16)
    ones = inplace_rewrite(g, nodes, bufs, order, 16, groups={n: 1 for n in nodes})
    peak = max(live_bytes(chosen.buffers, len(order)))
    assert peak == max(live_bytes(ones.buffers, len(order)))
    # KWS's peak is at its pointwise convs, so the in-place steps have room for the largest group tried (16)
    assert all(d[0]["group"] == 16 for d in chosen.detail.values())
    with pytest.raises(ScheduleError, match="group 3 does not divide"):
        inplace_rewrite(g, nodes[:1], bufs, order, 16, groups={nodes[0]: 3})


# ---- 3. the int8 reference ------------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("model", list(FILES))
def test_reference_group_by_group_equals_layer_by_layer(models, model):
    g = models[model]
    plan = prepare_int8(g)
    nodes = inplace_candidates(g)
    rng = np.random.default_rng(1)
    for i in range(3):
        feeds = {n: rng.integers(-128, 128, g.tensors[n].shape).astype(np.int8) for n in g.inputs}
        ref = plan.run(feeds)
        for gs in (None, 1, 4):
            got = run_scheduled_ref(plan, feeds, inplace=nodes, groups={n: gs for n in nodes} if gs else None)
            for o in g.outputs:
                np.testing.assert_array_equal(got[o], ref[o], err_msg=f"{model} group {gs}")


@needs_data
def test_reference_overwrites_the_input_for_real(models):
    g = models["kws"]
    dw = depthwise_nodes(g)[1]
    g2 = with_late_reader(g, dw)
    plan = prepare_int8(g2)
    feeds = {n: np.random.default_rng(2).integers(-128, 128, g2.tensors[n].shape).astype(np.int8) for n in g2.inputs}
    ref = plan.run(feeds)
    got = run_scheduled_ref(plan, feeds, inplace=[dw])
    np.testing.assert_array_equal(got[g.outputs[0]], ref[g.outputs[0]])   # the depthwise output is right ...
    assert not np.array_equal(got["late_out"], ref["late_out"])            # ... and its input is gone
    with pytest.raises(ScheduleError, match="cannot run in place"):
        run_inplace_depthwise(plan, "CONV_2D_0", {})


# ---- 4. generated C ----------------------------------------------------------------------------------------------

@needs_data
@needs_gcc
@pytest.mark.parametrize("model", list(FILES))
def test_c_in_place_is_bit_exact_portable_dsp_and_sanitized(models, model, tmp_path):
    """The chosen groups (multiples of 4: the DSP group kernel where built) and groups of 2 (portable loop)."""
    g = models[model]
    nodes = inplace_candidates(g)
    libs = []
    for name, groups in ((f"{model}_inplace", None), (f"{model}_inplace2", {n: 2 for n in nodes})):
        lib, plan = scheduled_library(g, name, inplace=nodes, groups=groups)
        src = lib.files[f"{name}.c"]
        assert src.count("ts_depthwise_inplace_s8(") == len(nodes) and "ts_depthwise_conv_s8(" not in src
        assert {"ts_schedule_ref.c", "ts_schedule_dsp.c"} <= set(lib.sources)
        for n in nodes:   # the output lives where the input did
            assert plan.tensor_offset(g.node(n).outputs[0]) == plan.tensor_offset(g.node(n).inputs[0])
        libs.append(lib)
    assert "(&dw0, 2, " in libs[1].files[f"{model}_inplace2.c"]
    xs = np.random.default_rng(3).integers(-128, 128, (20, g.tensors[g.inputs[0]].size)).astype(np.int8)
    ref = layer_reference(g, xs)
    for variant, kw in (("portable", {}), ("dsp_asan_ubsan", {"sanitize": True, "extra_cflags": DSP}),
                        ("asan_ubsan", {"sanitize": True})):
        n = 20 if variant == "portable" else 5
        exe = compile_hosts(libs, tmp_path / variant, **kw)
        for lib in libs:
            np.testing.assert_array_equal(run_host(exe, xs[:n], args=(lib.name,)), ref[:n],
                                          err_msg=f"{lib.name} {variant}")


def test_check_accesses_allows_only_writes_inside_an_overwritten_input():
    def layer(write_off, nbytes):
        return LayerCode("k", "", [], accesses=[Access("x", 0, 64, False, False, overlap_ok=True),
                                                 Access("y", write_off, nbytes, True)])
    check_accesses([("dw", layer(0, 16))], 128)
    check_accesses([("dw", layer(48, 16))], 128)
    with pytest.raises(AssertionError, match="'y' overlaps 'x'"):
        check_accesses([("dw", layer(56, 16))], 128)
    strict = LayerCode("k", "", [], accesses=[Access("x", 0, 64, False), Access("y", 0, 16, True)])
    with pytest.raises(AssertionError, match="cannot run in place"):
        check_accesses([("conv", strict)], 128)


@needs_data
@needs_gcc
def test_c_int4_weights_in_place_and_fused(models, tmp_path):
    """KWS with every conv's weights int4 (mixed precision's int4_weights): ts_depthwise_inplace_s4, and fused
    blocks over the s4 conv kernels, equal the layer-by-layer reference of the int4 graph."""
    from engine.compress.mixed import int4_weights
    from engine.memory.fused import all_blocks
    from engine.memory.schedule import FusedBlock
    g8 = models["kws"]
    g = int4_weights(g8, [n.name for n in g8.nodes if n.op in ("Conv", "Gemm")])
    blocks, used = [], set()
    for b in all_blocks(g):
        nodes = (b.expand.node, b.dw.node, b.project.node)
        if not used & set(nodes):
            blocks.append(FusedBlock(nodes, 3))
            used |= set(nodes)
    ip = inplace_candidates(g)
    lib_ip, _ = scheduled_library(g, "kws4_inplace", inplace=ip)
    lib_fu, _ = scheduled_library(g, "kws4_both", inplace=[n for n in ip if n not in used], fused=blocks)
    assert lib_ip.files["kws4_inplace.c"].count("ts_depthwise_inplace_s4(") == len(ip)
    assert blocks and lib_fu.files["kws4_both.c"].count("ts_conv_s4(") >= 2 * len(blocks)
    xs = np.random.default_rng(4).integers(-128, 128, (4, g.tensors[g.inputs[0]].size)).astype(np.int8)
    ref = layer_reference(g, xs)
    for variant, kw in (("portable", {}), ("dsp_asan_ubsan", {"sanitize": True, "extra_cflags": DSP})):
        exe = compile_hosts([lib_ip, lib_fu], tmp_path / variant, **kw)
        for lib in (lib_ip, lib_fu):
            np.testing.assert_array_equal(run_host(exe, xs, args=(lib.name,)), ref, err_msg=f"{lib.name} {variant}")
