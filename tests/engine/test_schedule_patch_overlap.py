"""The split output of a patch stage over the consumed stage input (issue 13, VWW <= 36,864 B with the input in the
arena): the proof over every patch, the L-shaped head + tail buffers and their pinned placement, the int8
reference through one simulated buffer (a wrong overlap shows), and the C (its step-order check refuses a wrong
overlap; bit-exact on the host, ASan/UBSan, portable and DSP paths)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.errors import GraphError
from engine.int8 import prepare_int8
from engine.int8.patched import run_patch_stage
from engine.memory.patch import patch_candidates, patch_order, patch_rewrite, plan_patch
from engine.memory.lifetimes import buffer_model, buffer_table
from engine.memory.patch_overlap import (OVER, TAIL, min_input_at, output_over_input, output_over_input_safe,
                                         tensor_at, tensor_shift)
from engine.memory.planners import check_no_overlap
from engine.memory.receptive import PatchGeometry, stage_shape
from engine.memory.schedule import PatchStage, ScheduleError
from tests.engine.test_schedule_patch import DSP, generate_patched, names, out_of, reference, vww  # noqa: F401
from engine.codegen import generate_library
from engine.codegen.hostbuild import compile_host, run_host
from engine.int8 import run_int8
from engine.int8.scheduled import run_scheduled
from engine.memory import plan_memory
from engine.memory.auto import OVERLAP_WHY, choose_schedule
from engine.memory.schedule import Schedule
from engine.profile import profile_graph


@pytest.fixture(scope="module")
def best(vww):
    return patch_candidates(vww, 0.10)[0]


def test_vww_search_reaches_half_of_tflm_with_the_input_in_the_arena(vww, best):
    """Layer-by-layer bound 55,296 B, TFLM 73,728 B: the best patch schedule with the output over the consumed
    input needs <= 36,864 B at <= 10 % MACs (separate buffers: 38,048 B at best)."""
    assert best.extra["output_over_input"] and not best.extra["input_outside_arena"]
    assert best.extra["peak_bytes"] <= 36_864 and best.extra["mac_overhead"] <= 0.10
    assert patch_candidates(vww, 0.10, overlap=False)[0].extra["peak_bytes"] == 38_048
    plan = plan_patch(vww, best.patch)
    assert plan.arena_bytes == best.extra["peak_bytes"]
    check_no_overlap(list(plan.buffers), list(plan.offsets))
    x, y = vww.inputs[0], out_of(vww, best.patch.split)
    head = next(b for b in plan.buffers if b.name.startswith(OVER))
    assert head.tensors[0] == y and head.tensors[-1] == x
    # the entry is whole: it starts e bytes into the head and runs on into the pinned tail
    e = tensor_shift(plan.buffers, x)
    assert 0 < e < head.size and plan.tensor_offset(y)[0] == plan.tensor_offset(x)[0]
    tail_off, tail = plan.tensor_offset(f"{TAIL}{x}")
    assert tail_off == plan.tensor_offset(x)[0] + head.size
    assert head.size - e + tail == 27_648


def test_the_proof_is_exact_about_the_shift(vww, best):
    shape = stage_shape(vww, best.patch.nodes)
    geo = PatchGeometry(shape, best.patch.grid)
    e = min_input_at(shape, geo)
    assert output_over_input_safe(shape, geo, e) and not output_over_input_safe(shape, geo, e - 16)
    assert not output_over_input_safe(shape, geo, 0)
    # full-width bands of a small split output: at the start of the input's buffer
    band = PatchGeometry(shape, (4, 1))
    assert min_input_at(shape, band) == 0


def test_overlap_required_but_unprovable_is_one_line(vww):
    stage = PatchStage(tuple(names(vww)[:4]), (8, 8))
    order = patch_order(vww, stage, names(vww))
    table = buffer_table(buffer_model(vww, None, True, 16), order).buffers
    with pytest.raises(ScheduleError, match="cannot be proved safe"):
        patch_rewrite(vww, stage, table, order, 16, input_outside_arena=True, overlap=True)
    assert not output_over_input(patch_rewrite(vww, stage, table, order, 16).buffers, stage_shape(vww, stage.nodes))


def test_a_rectangle_placement_of_head_and_tail_is_refused(vww, best):
    plan = plan_patch(vww, best.patch)
    x = vww.inputs[0]
    i = next(k for k, b in enumerate(plan.buffers) if b.name == f"{TAIL}{x}")
    moved = replace(plan, offsets=tuple(o + 16 if k == i else o for k, o in enumerate(plan.offsets)))
    with pytest.raises(ValueError, match="not right after the head"):
        tensor_at(moved, x)


def test_reference_through_the_simulated_buffer(vww, best):
    """Bit-exact at the proved shift; a shift the proof refuses overwrites input bytes still to be read."""
    plan = prepare_int8(vww)
    x = np.random.default_rng(3).integers(-128, 128, (1, 96, 96, 3), dtype=np.int8)
    y = out_of(vww, best.patch.split)
    ref = plan.run({vww.inputs[0]: x}, keep_all=True)[y]
    shape = stage_shape(vww, best.patch.nodes)
    e = min_input_at(shape, PatchGeometry(shape, best.patch.grid))
    env = {vww.inputs[0]: x}
    run_patch_stage(plan, best.patch, env, input_at=e)
    assert np.array_equal(env[y], ref)
    env = {vww.inputs[0]: x}
    with pytest.raises(GraphError, match=r"patch \(0,\d\) reads input rows .* that an earlier patch overwrote"):
        run_patch_stage(plan, best.patch, env, input_at=0)


def _wrong_shift(plan, x):
    """The plan with the entry said to start at byte 0 of the head (the output's bytes): an unproved overlap."""
    bufs = tuple(replace(b, name=f"{OVER}0:{x}") if b.name.startswith(OVER) else b for b in plan.buffers)
    return replace(plan, buffers=bufs)


def test_c_bit_exact_with_the_output_over_the_input(vww, best, monkeypatch, tmp_path):
    """Through the product: plan_memory places the schedule's overlap pinned, generate() emits it at the plan's
    offsets (the patch stage alone, and auto's choice); both equal the int8 reference under ASan/UBSan."""
    assert best.patch.overlap
    plan = plan_memory(vww, schedule=Schedule("patch", patch=best.patch))
    assert plan.planner == "pinned" and plan.arena_bytes == best.extra["peak_bytes"] <= 36_864
    lib = generate_library(vww, "vwwo", schedule=plan.schedule)
    assert lib.arena_bytes == plan.arena_bytes and lib.stamp["schedule"]["patch"]["overlap"] is True
    auto = choose_schedule(vww, "auto", 0.10)
    alib = generate_library(vww, "vwwa", schedule=auto)
    assert auto.patch.overlap and alib.arena_bytes <= 36_864
    xs = np.random.default_rng(5).integers(-128, 128, (10, 1, 96, 96, 3), dtype=np.int8)
    ref = reference(vww, xs)
    asan, dsp = {"sanitize": True}, {"sanitize": True, "extra_cflags": DSP}
    for variant, lb, kw in (("asan", lib, asan), ("dsp_asan", lib, dsp), ("auto_dsp_asan", alib, dsp)):
        exe = compile_host(lb, tmp_path / variant, **kw)
        assert np.array_equal(run_host(exe, xs).reshape(ref.shape), ref), variant
    with pytest.raises(GraphError, match="reads .* at bytes an earlier step wrote as"):
        generate_patched(monkeypatch, vww, _wrong_shift(plan, vww.inputs[0]), best.patch, "vwwbad")


def test_schedule_data_carries_the_overlap(vww, best):
    d = best.to_dict()
    assert d["patch"]["overlap"] is True
    back = Schedule.from_dict(d, vww)
    assert back.patch == best.patch and back.patch.overlap
    del d["patch"]["overlap"]                       # a version stored before the field: separate buffers
    assert Schedule.from_dict(d, vww).patch.overlap is False
    assert "overlap" not in Schedule("patch", patch=replace(best.patch, overlap=False)).to_dict()["patch"]
    with pytest.raises(ScheduleError, match="schedule.patch.overlap: expected true or false"):
        Schedule.from_dict({**d, "patch": {**d["patch"], "overlap": "yes"}})
    # an overlap the proof refuses is a one-line error of plan_memory, not a wrong plan
    bad = Schedule("patch", patch=PatchStage(tuple(names(vww)[:1]), (1, 4), True))
    with pytest.raises(ScheduleError, match="cannot be proved safe"):
        plan_memory(vww, schedule=bad)


def test_scheduled_reference_reads_the_input_where_it_lives(vww, best, monkeypatch):
    """run_scheduled runs an overlap stage through the simulated shared buffer at the plan's shift: bit-exact
    there, and a shift that lets a patch read overwritten input is refused."""
    import engine.memory.patch_overlap as po

    s = Schedule("patch", patch=best.patch)
    x = np.random.default_rng(4).integers(-128, 128, (1, 96, 96, 3), dtype=np.int8)
    want = run_int8(vww, {vww.inputs[0]: x})[vww.outputs[0]]
    assert np.array_equal(run_scheduled(vww, s, {vww.inputs[0]: x})[vww.outputs[0]], want)
    monkeypatch.setattr(po, "stage_input_at", lambda g, stage, alignment=16: 0)
    with pytest.raises(GraphError, match="that an earlier patch overwrote"):
        run_scheduled(vww, s, {vww.inputs[0]: x})


def test_profile_json_and_timeline_show_the_overlap(vww):
    from app.charts import memory_timeline
    from app.workflows.profile import schedule_lines

    prof = profile_graph(vww, schedule="auto", max_mac_overhead=0.10)
    sch = prof.to_json()["schedule"]
    assert sch["patch"]["overlap"] is True and OVERLAP_WHY in sch["why"]
    o = sch["overlap"]
    assert o["input"] == vww.inputs[0] and o["output"] == out_of(vww, sch["patch"]["split"])
    assert o["input_at"] == tensor_shift(prof.plan.buffers, vww.inputs[0]) and o["saved_bytes"] > 0
    assert any("written over the input rows the patches have consumed" in ln for ln in schedule_lines(prof))
    fig = memory_timeline(prof, {})
    assert any("output over its consumed input" in (a.text or "") for a in fig.layout.annotations)


def test_in_place_depthwise_over_the_split_output_keeps_the_input_where_it_is(vww, best):
    """An in-place depthwise reading the split output appends its tensor to the merged buffer: the entry's shift
    comes from the buffer's name, so the C still reads the input where it lives (its step check would refuse
    a read at bytes the output wrote)."""
    from engine.memory.inplace import inplace_candidates

    after = next(n.name for n in vww.nodes if out_of(vww, best.patch.split) in n.inputs)
    assert after in inplace_candidates(vww)
    s = Schedule("patch+inplace", patch=best.patch, inplace=(after,))
    plan = plan_memory(vww, schedule=s)
    head = next(b for b in plan.buffers if b.name.startswith(OVER))
    x = vww.inputs[0]
    assert head.tensors[-1] == out_of(vww, after) and x in head.tensors
    e = min_input_at(stage_shape(vww, best.patch.nodes), PatchGeometry(stage_shape(vww, best.patch.nodes),
                                                                       best.patch.grid))
    assert tensor_at(plan, x) == plan.tensor_offset(x)[0] + e > 0
    lib = generate_library(vww, "vwwi", schedule=s)
    assert lib.arena_bytes == plan.arena_bytes <= 36_864
