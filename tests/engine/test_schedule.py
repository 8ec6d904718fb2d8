"""The schedule framework (issue 13): plan_memory(schedule=...), auto, the scheduled int8 reference, the profiler.

Oracles: the layer-by-layer int8 reference (run_int8, itself = tflite-micro) for every scheduled execution; an
independent sweep over the placed buffers for the arena and the live bytes; the layer plan for "before".
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from engine.int8 import run_int8
from engine.int8.scheduled import run_scheduled
from engine.memory import plan_memory
from engine.memory.auto import base_macs, choose_schedule
from engine.memory.schedule import LAYER, CHOICES, Schedule, ScheduleError
from engine.profile import profile_graph
from engine.validate import infer_shapes

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
KINDS = ("inplace", "patch", "fused", "auto")


@lru_cache(maxsize=None)
def vww():
    from engine.importers import load_model

    return infer_shapes(load_model(str(MLPERF / "vww_96_int8.tflite")))


@lru_cache(maxsize=None)
def small_mbv2():
    """An int8 MobileNetV2 small enough for the reference (inverted residuals, stride-2 stem: every kind applies)."""
    from engine.passes.ptq import quantize_model
    from engine.zoo import build_zoo_model

    g = build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=64&classes=10&last_channels=128")
    qg, _ = quantize_model(g, synthetic_samples=4)
    return infer_shapes(qg)


def _feeds(g, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.integers(-128, 128, g.tensors[n].shape, dtype=np.int8) for n in g.inputs}


def _live(buffers, n):
    """Bytes live per step, recounted buffer by buffer (not lifetimes.live_bytes' difference array)."""
    return [sum(b.size for b in buffers if b.first_use <= s <= b.last_use) for s in range(n)]


def _no_overlap(plan):
    for i, (a, oa) in enumerate(zip(plan.buffers, plan.offsets)):
        assert oa + a.size <= plan.arena_bytes
        for b, ob in zip(plan.buffers[i + 1:], plan.offsets[i + 1:]):
            if a.first_use <= b.last_use and b.first_use <= a.last_use:
                assert oa + a.size <= ob or ob + b.size <= oa, (a.name, b.name)


def test_no_schedule_and_layer_schedule_change_nothing():
    g = vww()
    base = plan_memory(g)
    for p in (plan_memory(g, schedule=None), plan_memory(g, schedule=LAYER)):
        assert (p.order, p.offsets, p.arena_bytes, p.lower_bound_bytes, p.live_bytes) == \
            (base.order, base.offsets, base.arena_bytes, base.lower_bound_bytes, base.live_bytes)
        assert p.macs_extra == 0 and p.schedule_detail == {} and p.schedule.is_layer
        assert p.layer_lower_bound_bytes == p.lower_bound_bytes == 55_296


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", ["vww", "mbv2"])
def test_scheduled_plan_is_placed_and_never_above_layer(model, kind):
    g = vww() if model == "vww" else small_mbv2()
    try:
        s = choose_schedule(g, kind, 0.10)
    except ScheduleError as e:
        pytest.fail(f"{kind} on {model}: {e}")
    p = plan_memory(g, schedule=s)
    layer = plan_memory(g)
    _no_overlap(p)
    assert list(p.live_bytes) == _live(p.buffers, len(p.order))
    assert p.lower_bound_bytes == max(p.live_bytes) <= p.arena_bytes
    assert p.layer_lower_bound_bytes == layer.lower_bound_bytes
    assert p.schedule == s and sorted(p.order) == sorted(layer.order)
    assert p.macs_extra <= 0.10 * base_macs(g) + 1
    if kind == "auto":
        assert p.arena_bytes <= layer.arena_bytes


def test_auto_is_the_smallest_arena_of_the_kinds_under_the_limit():
    g = small_mbv2()
    auto = choose_schedule(g, "auto", 0.10)
    arenas = {}
    for kind in ("layer", "inplace", "patch", "fused"):
        try:
            arenas[kind] = plan_memory(g, schedule=choose_schedule(g, kind, 0.10)).arena_bytes
        except ScheduleError:
            pass
    a = plan_memory(g, schedule=auto)
    assert a.arena_bytes <= min(arenas.values())
    assert auto.why.startswith("auto: ") and auto.kind in auto.why
    assert f"{a.arena_bytes:,} B" in auto.why
    # every candidate it weighed is within the limit, and the winner is the smallest of them
    cands = auto.extra["candidates"]
    assert all(c["mac_overhead"] <= 0.10 for c in cands)
    assert a.arena_bytes == min(c["arena_bytes"] for c in cands)


def test_auto_with_zero_overhead_recomputes_nothing():
    g = small_mbv2()
    s = choose_schedule(g, "auto", 0.0)
    assert plan_memory(g, schedule=s).macs_extra == 0


def test_auto_per_mcu_prefers_no_overhead_when_layer_fits():
    g = small_mbv2()
    layer = plan_memory(g).arena_bytes
    s = choose_schedule(g, "auto", 0.10, sram_bytes=layer + 1024, mcu="big_mcu")
    assert s.is_layer and "already fits big_mcu" in s.why
    tight = choose_schedule(g, "auto", 0.10, sram_bytes=layer - 16, mcu="small_mcu")
    assert plan_memory(g, schedule=tight).arena_bytes < layer


@pytest.mark.parametrize("kind", KINDS)
def test_scheduled_reference_is_bit_exact(kind):
    g = small_mbv2()
    s = choose_schedule(g, kind, 0.10)
    assert not s.is_layer
    for seed in range(2):
        feeds = _feeds(g, seed)
        want = run_int8(g, feeds)
        got = run_scheduled(g, s, feeds)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{kind} ({s.kind}) output {k}")


def test_scheduled_reference_vww_patch_bit_exact():
    g = vww()
    s = choose_schedule(g, "auto", 0.10)
    assert s.patch is not None or s.fused, s.why
    feeds = _feeds(g, 3)
    np.testing.assert_array_equal(run_scheduled(g, s, feeds)[g.outputs[0]], run_int8(g, feeds)[g.outputs[0]])


def test_bad_schedules_are_one_line_errors():
    g = vww()
    first = g.nodes[0].name
    with pytest.raises(ScheduleError, match="no node 'nope'"):
        plan_memory(g, schedule=Schedule("inplace", inplace=("nope",)))
    with pytest.raises(ScheduleError, match="choose one of"):
        choose_schedule(g, "diagonal", 0.1)
    with pytest.raises(ScheduleError, match="max MAC overhead"):
        choose_schedule(g, "auto", -1)
    with pytest.raises(ScheduleError, match="max MAC overhead"):
        profile_graph(g, schedule="auto", max_mac_overhead="lots")
    with pytest.raises(ScheduleError):
        plan_memory(g, schedule=Schedule("inplace", inplace=(first,)))   # the first conv is not depthwise
    assert "auto" in CHOICES


def test_profile_reports_the_schedule_and_its_macs():
    g = small_mbv2()
    layer = profile_graph(g, [("stm32f746ng", "tinystudio-c")])
    prof = profile_graph(g, [("stm32f746ng", "tinystudio-c")], schedule="patch", max_mac_overhead=0.15)
    t, doc = prof.totals(), prof.to_json()
    base = sum(lp.record.macs for lp in prof.layers)
    assert base == layer.totals()["macs"]
    assert t["macs"] == base + prof.plan.macs_extra and prof.plan.macs_extra > 0
    assert t["mac_overhead"] == pytest.approx(prof.plan.macs_extra / base, abs=1e-6) and t["mac_overhead"] <= 0.15
    assert t["activation_peak_bytes"] == prof.plan.arena_bytes < layer.totals()["activation_peak_bytes"]
    sch = doc["schedule"]
    assert sch["kind"] == "patch" and sch["patch"]["split"] == prof.plan.schedule.patch.split
    assert len(sch["patch"]["grid"]) == 2 and sch["why"]
    assert sch["layer_lower_bound_bytes"] == layer.plan.lower_bound_bytes
    assert sch["detail"], "per-patch live bytes for the memory timeline"
    # latency on the MACs executed: more MACs, more estimated cycles
    assert prof.targets[0].cycles > layer.targets[0].cycles
    assert sum(le.macs for le in prof.targets[0].layers) == t["macs"]


@pytest.mark.parametrize("kind", KINDS)
def test_generated_c_runs_the_schedule_bit_exact(kind, tmp_path):
    """generate.py glue: the parts' emitters at the plan's offsets; the C equals the layer-by-layer reference
    (verify_host compares with run_int8) under ASan/UBSan, with the scheduled arena and MACs in the header."""
    from engine.codegen import generate_library
    from engine.export.verify_host import verify_host

    g = small_mbv2()
    s = choose_schedule(g, kind, 0.10)
    plan = plan_memory(g, schedule=s)
    lib = generate_library(g, "m", schedule=s)
    assert lib.arena_bytes == plan.arena_bytes and lib.stamp["schedule"] == s.to_dict()
    assert lib.macs == base_macs(g) + plan.macs_extra
    assert f"#define M_ARENA_SIZE {plan.arena_bytes}" in lib.files["m.h"]
    res = verify_host(g, lib, n_random=2, seed=5, sanitize=True, workdir=tmp_path)
    assert res.bit_exact, res.summary()


needs_qemu = pytest.mark.skipif(__import__("shutil").which("qemu-system-arm") is None
                                or __import__("shutil").which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")


@needs_qemu
@pytest.mark.parametrize("mcu, machine", [("stm32l4r5zi", "mps2-an386"), ("alif-e7-hp", "mps3-an547")])
def test_scheduled_export_bit_exact_in_qemu(mcu, machine, tmp_path):
    """One scheduled export (VWW, auto: patch stage + what else wins) on Cortex-M4 and M55, byte for byte."""
    from engine.codegen import generate_library
    from engine.export.verify_qemu import verify_qemu
    from hwmodels.mcu import get_mcu

    g = vww()
    s = choose_schedule(g, "auto", 0.10)
    assert not s.is_layer
    lib = generate_library(g, "vww", schedule=s)
    res = verify_qemu(g, lib, get_mcu(mcu), n_random=1, seed=7, workdir=tmp_path)
    assert res.machine == machine and res.inputs == 2
    assert res.bit_exact, res.summary()


@needs_qemu
def test_vww_class_model_runs_in_32_kb(tmp_path):
    """The issue's VWW-class model under 32 KB of SRAM: MLPerf's VWW network at 80x80, exported with a patch
    stage; RAM measured (arm-none-eabi-size: data + bss, stack painted in QEMU) and the C verified in QEMU."""
    from engine.export.pipeline import export_model
    from engine.zoo import build_zoo_model

    res = export_model(build_zoo_model("zoo:vww_mobilenetv1?resolution=80"), "stm32l4r5zi", tmp_path / "v.zip",
                       verify="qemu", n_inputs=1, schedule="patch", max_mac_overhead=0.10)
    rep = res.report
    assert rep["schedule"]["kind"] == "patch" and rep["schedule"]["mac_overhead"] <= 0.10
    assert rep["arena_bytes"] < rep["schedule"]["layer_lower_bound_bytes"]
    assert res.verify.bit_exact and res.verify.machine == "mps2-an386"
    assert rep["measured"]["stack_method"].startswith("painted stack in QEMU")
    assert rep["measured"]["ram_bytes"] <= 32 * 1024, rep["measured"]
    assert rep["measured"]["bss"] >= rep["arena_bytes"]
