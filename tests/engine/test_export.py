"""Firmware bundle and verification: generated C against the int8 reference on the host and on QEMU Cortex-M4,
bundle contents built with CMake, make host and arm-none-eabi-gcc, target flags, and errors.

Needs gcc (host); the cross/QEMU tests need arm-none-eabi-gcc and qemu-system-arm (skipped, saying so, without).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.codegen import generate_library
from engine.errors import TinyStudioError
from engine.export.crossbuild import callgraph_stack, measure_footprint
from engine.export.golden import Case, compare, make_cases
from engine.export.pipeline import c_name, export_model
from engine.export.qemu import QemuError
from engine.export.targets import core_target
from engine.export.verify_host import verify_host
from engine.export.verify_qemu import verify_qemu
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from hwmodels.mcu import get_mcu

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
MLPERF = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")
M4 = "stm32l4r5zi"


@pytest.fixture(scope="module")
def models():
    """name -> (int8 graph, generated library), built once for the module."""
    if not DATA.is_dir():
        pytest.skip(f"MLPerf Tiny models not found in {DATA}")
    out = {}
    for name, fname in MLPERF.items():
        g = load_tflite(str(DATA / fname))
        out[name] = (g, generate_library(g, name))
    return out


def show(first) -> str:
    return first.describe() if first else "no mismatch recorded"


# ---- targets ------------------------------------------------------------------------------------------

def test_core_flags_follow_the_mcu_files():
    assert core_target(get_mcu("stm32l4r5zi")).cflags == (
        "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    assert core_target(get_mcu("rp2040")).cflags == ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft")
    assert core_target(get_mcu("stm32h743zi")).cflags[-1] == "-mfpu=fpv5-d16"  # double-precision FPU
    assert core_target(get_mcu("stm32f746ng")).cflags[-1] == "-mfpu=fpv5-sp-d16"
    assert core_target(get_mcu("nrf5340")).cflags[:1] == ("-mcpu=cortex-m33",)
    assert core_target(get_mcu("alif-e7-hp")).cflags == ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard")
    boards = {m: core_target(get_mcu(m)).board for m in ("stm32l4r5zi", "stm32h743zi", "alif-e7-hp", "nrf5340")}
    assert {m: b.machine for m, b in boards.items()} == {"stm32l4r5zi": "mps2-an386", "stm32h743zi": "mps2-an500",
                                                        "alif-e7-hp": "mps3-an547", "nrf5340": "mps2-an505"}
    rp = core_target(get_mcu("rp2040"))
    assert rp.board is None and "cannot emulate cortex-m0plus" in rp.why_no_qemu
    esp = core_target(get_mcu("esp32"))
    assert not esp.arm and "xtensa" in esp.cc


def test_c_name_is_a_safe_identifier():
    assert c_name("kws_ref_model") == "kws_ref_model"
    assert c_name("../../etc/Passwd x") == "etc_passwd_x"
    assert c_name("3net") == "m_3net" and c_name("") == "model" and len(c_name("a" * 99)) == 32


# ---- comparison can fail ------------------------------------------------------------------------------

def test_compare_reports_the_first_differing_byte():
    exp = np.arange(12, dtype=np.int8).reshape(1, 12)
    cases = [Case({}, {"Y": exp}), Case({}, {"Y": exp})]
    got = [{"Y": exp.copy()}, {"Y": exp.copy()}]
    got[1]["Y"][0, 5] = 99
    got[1]["Y"][0, 7] = 98
    matched, first = compare(cases, got)
    assert matched == 1
    assert (first.case, first.index, first.got, first.expected, first.differing) == (1, (0, 5), 99, 5, 2)


# ---- host -----------------------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("name", list(MLPERF))
def test_host_verify_bit_exact_on_mlperf(models, name):
    g, lib = models[name]
    res = verify_host(g, lib, n_random=6, seed=3)
    assert res.inputs == 7
    assert res.bit_exact, show(res.first_mismatch)


@needs_data
def test_host_verify_detects_a_wrong_expected_output(models):
    g, lib = models["ad"]
    cases = make_cases(g, lib, 2, seed=5)
    out = lib.outputs[0].name
    bad = cases[2].outputs[out].copy()
    bad.reshape(-1)[17] ^= 1
    cases[2] = Case(cases[2].inputs, {out: bad})
    res = verify_host(g, lib, cases=cases)
    assert not res.bit_exact and res.matched == 2
    assert res.first_mismatch.case == 2 and res.first_mismatch.differing == 1


# ---- QEMU Cortex-M4 ----------------------------------------------------------------------------------

@needs_data
@needs_qemu
@pytest.mark.parametrize("name", list(MLPERF))
def test_qemu_m4_verify_bit_exact_on_mlperf(models, name):
    g, lib = models[name]
    res = verify_qemu(g, lib, get_mcu(M4), n_random=2, seed=4)
    assert res.machine == "mps2-an386" and res.inputs == 3
    assert res.bit_exact, show(res.first_mismatch)
    # Every MAC costs at least one instruction; plain C nested loops take ~8.6 per MAC on this core.
    assert 1.0 < res.instructions_per_mac < 12.0, res.instructions_per_mac
    assert 0 < res.stack_bytes < 4096


@needs_data
@needs_arm
def test_footprint_counts_weights_and_arena(models, tmp_path):
    g, lib = models["kws"]
    fp = measure_footprint(lib, get_mcu(M4), tmp_path)
    # README facts: 24,376 constant bytes in the file; the arena holds the 16,000-byte activation peak.
    assert 24_376 * 0.95 < fp.rodata < 24_376 * 1.3, fp
    assert fp.bss >= lib.arena_bytes >= 16_000
    assert 0 < fp.text < 32_768 and 0 < fp.stack < 4096
    assert fp.flash_bytes == fp.text + fp.rodata + fp.data and fp.ram_bytes == fp.data + fp.bss + fp.stack


def test_callgraph_stack_takes_the_deepest_path(tmp_path):
    (tmp_path / "a.ci").write_text(
        'graph: { title: "a.c"\n'
        'node: { title: "m_run" label: "m_run\\na.c:1:5\\n40 bytes (static)" }\n'
        'node: { title: "l0" label: "l0\\na.c:2:5\\n16 bytes (static)" }\n'
        'node: { title: "l1" label: "l1\\na.c:3:5\\n8 bytes (static)" }\n'
        'node: { title: "k" label: "k\\na.c:4:5\\n24 bytes (static)" }\n'
        'edge: { sourcename: "m_run" targetname: "l0" label: "a.c:5:3" }\n'
        'edge: { sourcename: "m_run" targetname: "l1" label: "a.c:6:3" }\n'
        'edge: { sourcename: "l1" targetname: "k" label: "a.c:7:3" }\n'
        'edge: { sourcename: "k" targetname: "memcpy" label: "a.c:8:3" }\n}\n')
    stack, notes = callgraph_stack([tmp_path / "a.ci"], "m_run")
    assert stack == 40 + 8 + 24
    assert any("memcpy" in n for n in notes)


# ---- the bundle --------------------------------------------------------------------------------------

BUNDLE_FILES = ["README.md", "report.json", "report.md", "CMakeLists.txt", "Makefile", "examples/main.c",
                "examples/golden.h", "host/host_main.c", "src/kws.h", "src/kws.c", "src/kws_weights.c",
                "src/tinystudio_kernels.h", "src/ts_fixedpoint.h", "src/ts_fixedpoint.c", "src/ts_dsp.h",
                "src/ts_conv_im2col_dsp.h", "src/ts_conv_asm_dsp.h", "src/ts_conv_first_dsp.h",
                "src/ts_conv_pwnarrow_dsp.h", "src/ts_conv_rgb_dsp.h", "src/ts_conv_rows_dsp.h",
                "src/ts_conv_ref.c",
                "src/ts_conv_dsp.c",
                "src/ts_depthwise_blocks_dsp.h", "src/ts_depthwise_ring_dsp.h", "src/ts_depthwise_s2_dsp.h",
                "src/ts_depthwise_small_dsp.h", "src/ts_depthwise_srows_dsp.h",
                "src/ts_depthwise_ref.c",
                "src/ts_depthwise_dsp.c",
                "src/ts_fc_ref.c", "src/ts_fc_dsp.c", "src/ts_pool_ref.c", "src/ts_softmax_ref.c",
                "src/ts_mve.h", "src/ts_conv_mve.c", "src/ts_depthwise_mve.c", "src/ts_fc_mve.c", "src/ts_pool_mve.c",
                "src/kws_input.h", "src/kws_input.c",
                "mcu/startup_stm32l4r5zi.c", "mcu/stm32l4r5zi.ld", "mcu/syscalls.c", "qemu/startup.c",
                "qemu/semihost.c", "qemu/link.ld", "arduino/TinyStudio_kws/library.properties", "arduino/TinyStudio_kws/src/kws.h",
                "arduino/TinyStudio_kws/examples/kws_golden/kws_golden.ino",
                "arduino/TinyStudio_kws/examples/kws_golden/golden.h", "onnx/model_int8_qdq.onnx"]


@pytest.fixture(scope="module")
def kws_bundle(models, tmp_path_factory):
    g, lib = models["kws"]
    tmp = tmp_path_factory.mktemp("bundle")
    res = export_model(g, M4, tmp / "kws.zip", verify="host", n_inputs=2, name="kws")
    with zipfile.ZipFile(res.bundle) as z:
        names = z.namelist()
        z.extractall(tmp / "x")
    return res, names, tmp / "x" / "tinystudio_kws"


def run(cmd, cwd, timeout=300):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}"
    return p.stdout


@needs_data
def test_bundle_lists_every_part_inside_one_folder(kws_bundle):
    res, names, root = kws_bundle
    assert all(n.startswith("tinystudio_kws/") and ".." not in n for n in names)
    missing = [f for f in BUNDLE_FILES if f"tinystudio_kws/{f}" not in names]
    assert not missing, missing
    rep = json.loads((root / "report.json").read_text())
    assert rep["verify"]["bit_exact"] is True and rep["arena_bytes"] == res.lib.arena_bytes
    readme = (root / "README.md").read_text()
    assert "estimate" in readme and "measured" in readme and "kws_run(" in readme
    golden = (root / "examples" / "golden.h").read_text()
    assert "golden_input0[490]" in golden and "golden_output0[12]" in golden


@needs_data
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_bundle_cmake_builds_and_the_golden_example_passes(kws_bundle, tmp_path):
    _, _, root = kws_bundle
    run(["cmake", "-S", str(root), "-B", str(tmp_path / "b")], tmp_path)
    run(["cmake", "--build", str(tmp_path / "b")], tmp_path)
    out = run([str(tmp_path / "b" / "kws_example")], tmp_path)
    assert "kws golden check: PASS" in out


@needs_data
def test_bundle_make_host_runner_matches_the_reference(kws_bundle):
    res, _, root = kws_bundle
    run(["make", "host"], root)
    x = np.random.default_rng(9).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    p = subprocess.run([str(root / "build" / "kws_host")], input=x.tobytes(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    exp = run_int8(res.graph, {res.graph.inputs[0]: x})[res.graph.outputs[0]]
    assert np.frombuffer(p.stdout, np.int8).tolist() == exp.reshape(-1).tolist()


@needs_data
@needs_qemu
def test_bundle_makefile_builds_the_example_elf_for_the_mcu_and_it_passes_in_qemu(kws_bundle):
    _, _, root = kws_bundle
    out = run(["make"], root)
    assert (root / "build" / "kws_example.elf").is_file() and "-mcpu=cortex-m4" in out and "fpv4-sp-d16" in out
    assert "-T mcu/stm32l4r5zi.ld" in out and "startup_stm32l4r5zi.o" in out
    out = run(["make", "qemu"], root, timeout=120)
    assert "kws golden check: PASS" in out


ARDUINO_STUB = """#pragma once
#include <stdint.h>
#include <stdio.h>
struct SerialStub {
  void begin(long) {}
  operator bool() const { return true; }
  void print(const char *s) { fputs(s, stdout); }
  void print(unsigned long v) { printf("%lu", v); }
  void println(const char *s) { puts(s); }
  void println(unsigned long v) { printf("%lu\\n", v); }
};
extern SerialStub Serial;
static inline unsigned long millis() { return 0; }
static inline unsigned long micros() { return 0; }
"""


@needs_data
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_bundle_arduino_sketch_compiles_as_cpp_and_passes(kws_bundle, tmp_path):
    """The sketch against a minimal Arduino.h stand-in: valid C++, links with the C library, prints PASS."""
    _, _, root = kws_bundle
    lib = root / "arduino" / "TinyStudio_kws"
    (tmp_path / "Arduino.h").write_text(ARDUINO_STUB)
    (tmp_path / "main.cpp").write_text("SerialStub Serial;\nvoid setup();\nint main() { setup(); return 0; }\n")
    objs = []
    for c in sorted((lib / "src").glob("*.c")):
        objs.append(str(tmp_path / (c.stem + ".o")))
        run(["gcc", "-std=c99", "-O1", "-c", str(c), "-o", objs[-1]], tmp_path)
    sketch = lib / "examples" / "kws_golden" / "kws_golden.ino"
    run(["g++", "-std=c++11", "-Wall", "-Werror", "-x", "c++", "-include", "Arduino.h", f"-I{tmp_path}",
         f"-I{lib / 'src'}", str(sketch), "-x", "none", str(tmp_path / "main.cpp"), *objs, "-o",
         str(tmp_path / "sketch"), "-lm"], tmp_path)
    assert "kws golden check: PASS" in run([str(tmp_path / "sketch")], tmp_path)


# ---- errors ---------------------------------------------------------------------------------------------

@needs_data
def test_export_refuses_bad_targets_before_doing_work(models, tmp_path):
    g, _ = models["ad"]
    with pytest.raises(TinyStudioError, match="cannot emulate cortex-m0plus"):
        export_model(g, "rp2040", tmp_path / "a.zip", verify="qemu")
    with pytest.raises(TinyStudioError, match="unknown MCU 'nope'; valid ids: .*stm32l4r5zi"):
        export_model(g, "nope", tmp_path / "a.zip")
    with pytest.raises(TinyStudioError, match="is a folder"):
        export_model(g, M4, tmp_path, verify="none")
    with pytest.raises(TinyStudioError, match="does not exist"):
        export_model(g, M4, tmp_path / "missing" / "a.zip", verify="none")
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_export_warns_with_the_amount_when_the_model_does_not_fit(models, tmp_path):
    g, _ = models["ad"]  # 270 KB of weights on a 128 KB flash part
    res = export_model(g, "stm32f103rb", tmp_path / "ad.zip", verify="none", name="ad")
    miss = [w for w in res.warnings if "does not fit stm32f103rb: flash" in w]
    assert miss and "over by" in miss[0] and res.bundle.is_file()


@needs_qemu
def test_qemu_hang_is_a_clear_error(tmp_path):
    from engine.builder import GraphBuilder
    from engine.codegen import CLibrary, IOSpec
    from engine.ir import Quant

    b = GraphBuilder("hang")
    q = Quant(np.array([0.5], np.float32), np.array([0], np.int64), None)
    y = b.node("Reshape", [b.input("X", (1, 8), "int8", q)], shape=[1, 8])
    b.output(y)
    g = b.build()
    g.tensors[y].quant = q
    header = "#include <stdint.h>\nint hang_init(void);\nint hang_run(const int8_t *input, int8_t *output);\n"
    body = ('#include "hang.h"\nint hang_init(void) { return 0; }\n'
            "int hang_run(const int8_t *input, int8_t *output) { volatile int spin = 1; while (spin) { }\n"
            "    output[0] = input[0]; return 0; }\n")
    spec_in, spec_out = IOSpec("X", "X", (1, 8), "int8", 0.5, 0, 8), IOSpec(y, "Y", (1, 8), "int8", 0.5, 0, 8)
    lib = CLibrary("hang", {"hang.h": header, "hang.c": body}, "hang.h", ("hang.c",), 8, (spec_in,), (spec_out,), 8)
    with pytest.raises(QemuError, match="did not finish 1 inferences within 3 s"):
        verify_qemu(g, lib, get_mcu(M4), n_random=0, timeout=3)
