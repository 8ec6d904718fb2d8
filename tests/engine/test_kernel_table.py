"""The CMSIS-NN side-by-side benchmark (benchmarks/kernel_table.py, benchmarks/cmsis_harness.py) and the per-core
calibration it feeds (tinystudio-c.toml, calibration.toml [tinystudio_c_cores]).

1. the harness generator: every layer's CMSIS-NN call with the int8 record's parameters; refusals name the node;
2. with CMSIS_NN_PATH (a CMSIS-NN checkout): the harness and CMSIS-NN's portable C built on the host compute
   the int8 reference's bytes (skipped, saying why, without it);
3. the per-layer instruction windows: our library with markers around each layer call; in QEMU (when
   installed) the windows add up to the whole-network count and the outputs are the reference's;
4. the tables printed from the JSON;
5. the estimator reads the per-core calibration: Cortex-M7 and M55 figures of tinystudio-c.toml reproduce the
   QEMU instruction counts in calibration.toml [tinystudio_c_cores].
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cmsis_harness import cmsis_sources, harness_library, int8_core
from benchmarks.kernel_table import layer_table, marked_library, network_table, size_table
from engine.codegen import generate_library
from engine.codegen.hostbuild import host_runner_source, run_host
from engine.errors import GraphError
from engine.export.golden import make_cases
from engine.importers.tflite_import import load_tflite
from engine.int8.prepare import prepare_node

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")
CMSIS = Path(os.environ["CMSIS_NN_PATH"]) if os.environ.get("CMSIS_NN_PATH") else None
needs_cmsis = pytest.mark.skipif(CMSIS is None or not (CMSIS / "Include" / "arm_nnfunctions.h").is_file(),
                                 reason="CMSIS_NN_PATH is not set to a CMSIS-NN checkout: the CMSIS-NN build of the "
                                        "harness is skipped (the product never needs CMSIS-NN)")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")


@pytest.fixture(scope="module")
def models():
    if not DATA.is_dir():
        pytest.skip(f"MLPerf Tiny models not found in {DATA}")
    out = {}
    for key, f in (("kws", "kws_ref_model.tflite"), ("ic", "pretrainedResnet_quant.tflite"),
                   ("ad", "ad01_int8.tflite")):
        g = load_tflite(str(DATA / f))
        out[key] = (g, generate_library(g, key))
    return out


# ---- 1. the generator ---------------------------------------------------------------------------------

def _ints(text: str, name: str) -> list[int]:
    m = re.search(rf"const int32_t {name}\[\d+\] = \{{(.*?)\}};", text, re.S)
    assert m, f"array {name} not in the weights file"
    return [int(v) for v in re.sub(r"/\*.*?\*/", "", m.group(1)).replace("\n", " ").split(",") if v.strip()]


@needs_data
def test_harness_calls_cmsis_nn_with_the_records_parameters(models):
    g, lib = models["kws"]
    h = harness_library(g, lib)
    src, weights = h.files["kws_cmsis.c"], h.files["kws_cmsis_weights.c"]
    core = int8_core(g)
    nodes = [n for n in core.nodes if n.op != "Reshape"]
    assert h.stamp["layers"] == [n.name for n in nodes] == [r["node"] for r in lib.layers]
    calls = re.findall(r"\b(arm_\w+_s8)\(&ctx|\b(arm_softmax_s8)\(", src)
    kinds = [a or b for a, b in calls]
    assert kinds == (["arm_convolve_wrapper_s8", "arm_depthwise_conv_wrapper_s8"] * 4
                     + ["arm_convolve_wrapper_s8", "arm_avgpool_s8", "arm_fully_connected_s8", "arm_softmax_s8"])
    for i, n in enumerate(nodes):
        r = prepare_node(core, n)
        if n.op == "Conv":
            assert _ints(weights, f"kws_cmsis_l{i}_mult") == [int(v) for v in r.multiplier]
            assert _ints(weights, f"kws_cmsis_l{i}_shift") == [int(v) for v in r.shift]
            assert _ints(weights, f"kws_cmsis_l{i}_b") == [int(v) for v in r.bias]
            assert f"p{i} = {{.input_offset = {-r.x_zp}, .output_offset = {r.y_zp}," in src
        if n.op == "Gemm":
            assert f"q{i} = {{{int(r.multiplier[0])}, {int(r.shift[0])}}};" in src
        if n.op == "Softmax":
            assert f"arm_softmax_s8(X, 1, 12, {r.multiplier}, {r.left_shift}, {r.diff_min}, Y);" in src
    assert "#define KWS_CMSIS_INPUT_SIZE 490" in h.files["kws_cmsis.h"]


@needs_data
def test_harness_add_takes_the_records_rescaling(models):
    g, lib = models["ic"]
    src = harness_library(g, lib).files["ic_cmsis.c"]
    core = int8_core(g)
    adds = [prepare_node(core, n) for n in core.nodes if n.op == "Add"]
    assert len(adds) == 3
    for r in adds:
        assert (f"{-r.a_zp}, {r.m1}, {r.e1}, {-r.b_zp}, {r.m2}, {r.e2}, {r.left_shift}, Y, {r.y_zp}, {r.mo}, "
                f"{r.eo}, {r.act_min}, {r.act_max}") in src


def test_harness_refuses_an_op_without_a_cmsis_call_naming_the_node():
    from tests.engine.test_int8 import binary_model

    m, y = binary_model("MUL", "MulOptions", (2, 12), (2, 12), (2, 12), (0.07, 0.05, 0.02), (1, -2, 5))
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "mul.tflite"
        p.write_bytes(m.finish(y))
        g = load_tflite(str(p))
    lib = generate_library(g, "mul")
    with pytest.raises(GraphError, match="no CMSIS-NN call for Mul"):
        harness_library(g, lib)


# ---- 2. host build against CMSIS-NN's portable C --------------------------------------------------------

@needs_data
@needs_cmsis
@pytest.mark.parametrize("key", ["kws", "ic", "ad"])
def test_harness_on_cmsis_nn_portable_c_is_the_int8_reference(models, key):
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    g, lib = models[key]
    h = harness_library(g, lib)
    cases = make_cases(g, lib, 3, seed=7)
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        for rel, text in h.files.items():
            (d / rel).write_text(text)
        (d / "host_main.c").write_text(host_runner_source(h))
        exe = d / "host"
        # The host has no DSP or Helium: CMSIS-NN's portable C, with a buffer as large as any layer may ask.
        r = subprocess.run(["gcc", "-O1", "-std=c99", "-w", f"-I{CMSIS / 'Include'}", f"-I{d}", "-DTS_CMSIS_BUF=65536",
                            *(str(d / s) for s in h.sources), str(d / "host_main.c"),
                            *map(str, cmsis_sources(CMSIS)), "-o", str(exe)], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        xs = np.stack([np.concatenate([c.inputs[s.name].reshape(-1) for s in lib.inputs]) for c in cases])
        ys = run_host(exe, xs)
    ref = np.stack([np.concatenate([c.outputs[s.name].reshape(-1) for s in lib.outputs]) for c in cases])
    assert np.array_equal(ys, ref), f"{int((ys != ref).sum())} bytes differ from the int8 reference"


# ---- 3. per-layer windows -------------------------------------------------------------------------------

@needs_data
def test_marked_library_brackets_every_layer_call(models):
    _, lib = models["kws"]
    src = marked_library(lib).files["kws.c"]
    assert src.count("ts_layer_begin(); layer_") == len(lib.layers) == 12
    assert src.count("ts_layer_end();") == len(lib.layers)
    assert lib.files["kws.c"].count("ts_layer_begin") == 0  # the library itself is untouched
    broken = lib.__class__(**{**lib.__dict__, "files": {**lib.files, "kws.c": lib.files["kws.c"].replace(
        "    layer_3();\n", "")}})
    with pytest.raises(RuntimeError, match="found 11 layer calls for 12 layers"):
        marked_library(broken)


@needs_data
@needs_qemu
def test_qemu_layer_windows_add_up_to_the_network(models):
    from benchmarks.kernel_table import measure

    with tempfile.TemporaryDirectory() as td:
        res = measure("ad", ["m4", "m55"], 1, CMSIS if CMSIS and (CMSIS / "Include").is_dir() else None,
                      Path(td), lambda s: None)
    d = res["cores"]["m4"]
    assert d["ours"]["helium_share"] is None
    assert res["cores"]["m55"]["ours"]["helium_share"] is not None
    if "cmsis" in d:  # CMSIS-NN's FC on Helium: VLDRB + VMLAVA loops
        assert res["cores"]["m55"]["cmsis"]["helium_share"] > 0.3
    for side in ("ours", "cmsis") if "cmsis" in d else ("ours",):
        x = d[side]
        assert x["bit_exact"] and x["cases"] == 2, x["first_mismatch"]
        layers = sum(x["layers"].values())
        # the windows leave out only <name>_run's own copies in and out of the arena
        assert 0.97 * x["instructions"] < layers < x["instructions"], (layers, x["instructions"])
        assert len(x["layers"]) == 10 and x["size"]["rodata"] > 250_000
    if "cmsis" in d:
        assert d["same_outputs"]
        assert d["ratio"] == pytest.approx(d["ours"]["instructions"] / d["cmsis"]["instructions"])


# ---- 4. tables ------------------------------------------------------------------------------------------

def _result(bit_exact=True):
    side = lambda n: {"instructions": n, "instructions_per_mac": n / 1000, "cases": 3, "bit_exact": bit_exact,  # noqa
                      "layers": {"a": n - 100, "b": 100}, "size": {"text": 10, "rodata": 20, "data": 0, "bss": 30}}
    return {"models": {"kws": {"macs": 1000, "layers": [{"node": "a", "op": "Conv", "kernel": "k", "macs": 1000},
                                                        {"node": "b", "op": "Softmax", "kernel": "s", "macs": 0}],
                               "cores": {"m4": {"ours": side(1500), "cmsis": side(3000), "same_outputs": True,
                                                "ratio": 0.5}}}}}


def test_tables():
    res = _result()
    assert "| KWS | M4 | 1,000 | 3.00 | 1.50 | 0.50 | - / - | yes (3 inputs) |" in network_table(res)
    res["models"]["kws"]["cores"]["m4"]["cmsis"]["helium_share"] = 0.581
    res["models"]["kws"]["cores"]["m4"]["ours"]["helium_share"] = 0.0
    assert "| 0.50 | 58% / 0% | yes" in network_table(res)
    assert "| KWS | M4 | 10 | 20 | 30 | 10 | 20 | 30 |" in size_table(res)
    lt = layer_table(res["models"]["kws"], "m4")
    assert "| 0 | a | Conv | k | 1,000 | 1,400 | 1.40 | 2,900 | 2.90 | 0.48 |" in lt
    assert "| 1 | b | Softmax | s | 0 | 100 | - | 100 | - | 1.00 |" in lt
    assert "| NO (3 inputs) |" in network_table(_result(bit_exact=False))


# ---- 5. the estimator reads the per-core calibration ----------------------------------------------------

@needs_data
def test_estimator_reproduces_the_per_core_qemu_counts():
    from hwmodels.calibration import tinystudio_c_core_rows
    from hwmodels.runtime import get_runtime

    rows = tinystudio_c_core_rows(DATA)
    cores = {r.what for r in rows}
    assert cores == {"instructions_cortex-m7", "instructions_cortex-m55"}
    bad = [f"{r.model} {r.what}: measured {r.measured:,.0f}, estimated {r.estimated:,.0f} ({r.error:+.1%})"
           for r in rows if abs(r.error) > 0.10]
    assert not bad, "\n".join(bad)
    rt = get_runtime("tinystudio-c")
    m55 = rt.core_profile("cortex-m55")
    assert m55.derived_from == "" and "mps3-an547" in m55.source and "instruction" in m55.source
    assert rt.core_profile("cortex-m85").derived_from == "cortex-m55"


def test_targets_name_what_is_missed():
    from benchmarks.kernel_table import targets

    res = _result()
    assert targets(res) == ["KWS M4: 1.50 instructions/MAC > target 1.3"]
    res["models"]["kws"]["cores"]["m4"]["ours"]["instructions_per_mac"] = 1.2
    res["models"]["kws"]["cores"]["m4"]["ratio"] = 1.05
    assert targets(res) == ["KWS M4: 1.05 x CMSIS-NN's instructions"]


def test_bad_arguments_exit_2_with_one_line(monkeypatch, capsys, tmp_path):
    from benchmarks.kernel_table import main

    monkeypatch.setattr("sys.argv", ["kernel_table.py", "--models", "mnist"])
    assert main() == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: unknown model or core 'mnist' (models: kws, vww, ic, ad; cores: m4, m7, m55)"]
    monkeypatch.setenv("CMSIS_NN_PATH", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["kernel_table.py", "--models", "ad"])
    assert main() == 2
    assert capsys.readouterr().err.strip() == (f"error: CMSIS_NN_PATH={tmp_path} has no Include/arm_nnfunctions.h "
                                               "(expected a CMSIS-NN checkout)")


def test_write_calibration_replaces_the_core_tables_the_estimator_reads(tmp_path):
    """runtime_tsc_measure --from-table --write: the fitted per-instruction figures land in tinystudio-c.toml in
    cycles (x the core's cycles per instruction) and the counts in calibration.toml, which parse back."""
    import dataclasses
    import tomllib

    from benchmarks.runtime_tsc_measure import write_calibration
    from hwmodels.runtime import BUILTIN_DIR, get_runtime, parse_runtime

    hw = Path(__file__).resolve().parents[2] / "hwmodels"
    rt_toml, cal_toml = tmp_path / "tinystudio-c.toml", tmp_path / "calibration.toml"
    rt_toml.write_text((BUILTIN_DIR / "tinystudio-c.toml").read_text())
    cal_toml.write_text((hw / "calibration.toml").read_text())
    base = get_runtime("tinystudio-c").core_profile("cortex-m4")
    p = dataclasses.replace(base, conv_macs_per_cycle=2.0, pointwise_macs_per_cycle=2.5, depthwise_macs_per_cycle=0.8,
                            fc_macs_per_cycle=1.5, layer_overhead_cycles=500.0)
    counts = {"kws": 2_600_000, "vww": 7_000_000, "ic": 9_000_000, "ad": 150_000}
    macs = {"kws": 2_656_768, "vww": 7_489_664, "ic": 12_501_632, "ad": 264_192}
    write_calibration({"cortex-m55": (p, 1.25, counts)}, macs, rt_toml, cal_toml)
    rt = parse_runtime(tomllib.loads(rt_toml.read_text()), rt_toml)
    m55 = rt.core_profile("cortex-m55")
    assert m55.conv_macs_per_cycle == pytest.approx(2.0 / 1.25, rel=1e-3)
    assert m55.layer_overhead_cycles == pytest.approx(500 * 1.25, rel=1e-3)
    assert m55.column_overhead == pytest.approx(base.column_overhead, rel=1e-3)  # a ratio: not scaled
    assert rt.core_profile("cortex-m85").conv_macs_per_cycle == pytest.approx(2.0 / 1.25 * 1.176, rel=1e-3)
    assert rt.core_profile("cortex-m7") == get_runtime("tinystudio-c").core_profile("cortex-m7")  # not in the fit
    assert "KWS 0.98" in rt_toml.read_text()
    cal = tomllib.loads(cal_toml.read_text())
    assert cal["tinystudio_c_cores"]["instructions"] == {"cortex-m55": counts}
    assert cal["tinystudio_c_cores"]["cycles_per_instruction"] == {"cortex-m55": 1.25}
    assert cal["tinystudio_c"] == tomllib.loads((hw / "calibration.toml").read_text())["tinystudio_c"]


def test_wide_table_shows_the_flash_cost():
    from benchmarks.kernel_table import wide_table

    res = _result()
    d = res["models"]["kws"]["cores"]["m4"]
    d["ours"]["outputs_sha"] = "a"
    d["ours_wide"] = {**d["ours"], "instructions_per_mac": 1.2, "outputs_sha": "a",
                      "size": {"text": 15, "rodata": 40, "data": 0, "bss": 30}}
    assert "| KWS | M4 | 1.50 | 1.20 | 20 | 40 | +25 | yes |" in wide_table(res)
    d["ours_wide"]["outputs_sha"] = "b"
    assert wide_table(res).endswith("| NO |")
