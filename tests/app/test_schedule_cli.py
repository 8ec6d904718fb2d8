"""`tinystudio profile/export --schedule ... --max-mac-overhead ...`: JSON fields, the C running the schedule
verified byte for byte against the layer-by-layer int8 reference, and one-line errors (exit 2)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from engine.importers import load_model
from engine.memory import plan_memory

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
VWW = str(MLPERF / "vww_96_int8.tflite")
needs_data = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@needs_data
def test_profile_auto_json(capsys):
    code, text, err = run_cli(capsys, "profile", VWW, "--schedule", "auto", "--max-mac-overhead", "0.10", "--json")
    assert code == 0, err
    rep = json.loads(text)
    sch, tot = rep["schedule"], rep["totals"]
    layer = plan_memory(load_model(VWW))
    assert sch["kind"] != "layer" and sch["why"].startswith("auto: ")
    assert tot["activation_peak_bytes"] == sch["arena_bytes"] < layer.arena_bytes == 55_296
    assert sch["layer_lower_bound_bytes"] == 55_296
    assert tot["macs"] == 7_489_664 + sch["macs_extra"]
    assert 0 <= tot["mac_overhead"] <= 0.10 and tot["schedule"] == sch["kind"]
    if "patch" in sch:
        assert sch["patch"]["split"] == sch["patch"]["nodes"][-1] and len(sch["patch"]["grid"]) == 2
    # issue 13: half of TFLM's 73,728 B, the patch stage's output over its consumed input (the why says it)
    assert tot["activation_peak_bytes"] <= 36_864 and sch["patch"]["overlap"] is True
    assert "writes its output over the input rows" in sch["why"] and sch["overlap"]["saved_bytes"] > 0
    # the memory section is the scheduled plan's
    assert rep["memory"]["arena_bytes"] == tot["activation_peak_bytes"]


@needs_data
def test_profile_text_says_which_schedule(capsys):
    code, text, err = run_cli(capsys, "profile", VWW, "--schedule", "patch")
    assert code == 0, err
    line = next(ln for ln in text.splitlines() if ln.startswith("schedule patch"))
    assert "patch stage" in text and "layer-by-layer bound" in text and "MACs +" in text, line


@needs_data
def test_profile_auto_per_mcu_keeps_layer_when_it_fits(capsys):
    code, text, err = run_cli(capsys, "profile", VWW, "--schedule", "auto", "--mcu", "stm32f746ng", "--json")
    assert code == 0, err
    sch = json.loads(text)["schedule"]
    assert sch["kind"] == "layer" and "already fits stm32f746ng" in sch["why"]


@needs_data
@pytest.mark.parametrize("kind, mcu", [("patch", "nrf52840"), ("auto", "samd21g18")])
def test_export_runs_the_schedule_bit_exact(tmp_path, capsys, kind, mcu):
    # auto for a 32 KB part: layer by layer (55 KB) does not fit, so the smallest arena is chosen
    out = tmp_path / "vww.zip"
    code, text, err = run_cli(capsys, "export", VWW, "--mcu", mcu, "--out", str(out), "--inputs", "2",
                              "--schedule", kind, "--max-mac-overhead", "0.1", "--json")
    assert code == 0, err
    rep = json.loads(text)
    assert rep["schedule"]["kind"] != "layer" and rep["verify"]["bit_exact"] is True
    assert rep["arena_bytes"] == rep["schedule"]["arena_bytes"] < 55_296
    assert rep["library"]["stamp"]["schedule"]["kind"] == rep["schedule"]["kind"]
    assert rep["macs"] == 7_489_664 + rep["schedule"]["macs_extra"]
    if kind == "auto":   # the same options as the profile: the overlap, <= 36,864 B, verified on the host
        assert rep["arena_bytes"] <= 36_864 and rep["schedule"]["patch"]["overlap"] is True


@pytest.mark.parametrize("argv, needle", [
    (["--schedule", "diagonal"], "--schedule diagonal: choose one of layer, inplace, patch, fused, auto"),
    (["--max-mac-overhead", "ten"], "--max-mac-overhead ten: expected a number"),
    (["--max-mac-overhead", "-0.5"], "--max-mac-overhead -0.5: expected a fraction"),
])
@pytest.mark.parametrize("cmd", ["profile", "export"])
def test_bad_schedule_options_are_one_line(tmp_path, capsys, cmd, argv, needle):
    extra = ["--mcu", "nrf52840", "--out", str(tmp_path / "x.zip")] if cmd == "export" else []
    code, _, err = run_cli(capsys, cmd, VWW, *extra, *argv)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0]
