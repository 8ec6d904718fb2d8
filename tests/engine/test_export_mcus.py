"""Export for every core family in hwmodels/mcus: `tinystudio export` with host verification on a tiny model,
the bundle's MCU-specific parts (startup + linker script with the MCU's memory map, ESP-IDF component, RISC-V
notes, the QEMU harness apart), "not measured: why" where nothing was measured, the session/--name naming,
the Cortex-M Makefile linked with arm-none-eabi-gcc at the datasheet addresses, and the C input helper against
the Python quantizer."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from engine.codegen import generate_library
from engine.export.pipeline import export_model, with_input_helper
from engine.export.preprocess import input_spec, provenance, reference_preprocess
from engine.export.summary import figure_rows, text_lines
from engine.importers import load_model
from hwmodels.mcu import load_mcus

TINY = "zoo:lenet5?resolution=16&channels=3&classes=4"
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")


def one_per_core() -> dict[str, str]:
    out: dict[str, str] = {}
    for m in load_mcus().values():
        out.setdefault(m.core, m.id)
    return out


FAMILIES = one_per_core()


def test_every_core_family_is_covered():
    cores = set(FAMILIES)
    assert {"cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m85",
            "xtensa-lx6", "xtensa-lx7", "riscv32-imc", "riscv32-imac", "riscv32-xpulp"} <= cores


@pytest.mark.parametrize("core", sorted(FAMILIES))
def test_cli_export_with_host_verification_for_each_core_family(core, tmp_path, capsys):
    mcu = load_mcus()[FAMILIES[core]]
    out = tmp_path / "b.zip"
    code = main(["export", TINY, "--mcu", mcu.id, "--out", str(out), "--inputs", "2", "--name", "Door Sensor 2",
                 "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "Traceback" not in cap.err
    rep = json.loads(cap.out)
    assert rep["library"]["name"] == "door_sensor_2" and rep["verify"]["bit_exact"] is True
    assert rep["verify"]["inputs"] == 3
    from hwmodels.runtime import default_runtime

    assert rep["estimate"]["runtime"] == default_runtime(mcu.core)  # what the Profile page uses by default
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        readme = z.read("tinystudio_door_sensor_2/README.md").decode()
        files = {n[len("tinystudio_door_sensor_2/"):]: n for n in names}
        text = {k: z.read(v).decode() for k, v in files.items() if k.endswith((".c", ".h", ".ld", "Makefile",
                                                                                 ".txt", ".yml"))}
    assert all(n.startswith("tinystudio_door_sensor_2/") for n in names)
    assert {"src/door_sensor_2.h", "src/door_sensor_2_input.c", "src/door_sensor_2_input.h", "Makefile",
            "README.md", "report.json"} <= set(files)
    assert "door_sensor_2_preprocess" in text["src/door_sensor_2_input.h"]
    assert "## Input preprocessing and outputs" in readme and "NHWC" in readme
    assert f"the {rep['estimate']['runtime']} runtime model, the default for {mcu.core}" in readme
    meas = rep["measured"]
    rows = {r["figure"]: r for r in figure_rows(rep)}
    if core.startswith("cortex"):
        fo, fl, so, sl = mcu.memory_map
        assert f"mcu/startup_{mcu.id}.c" in files and f"mcu/{mcu.id}.ld" in files
        ld = text[f"mcu/{mcu.id}.ld"]
        assert f"FLASH (rx) : ORIGIN = {fo:#010x}, LENGTH = {fl:#x}" in ld
        assert f"RAM (rwx)  : ORIGIN = {so:#010x}, LENGTH = {sl:#x}" in ld
        assert "Reset_Handler" in text[f"mcu/startup_{mcu.id}.c"] and "__bss_start__" in text[f"mcu/startup_{mcu.id}.c"]
        assert f"-T $(LDSCRIPT)" in text["Makefile"] and f"LDSCRIPT ?= mcu/{mcu.id}.ld" in text["Makefile"]
        assert "esp-idf/CMakeLists.txt" not in files
        emulated = core in ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
        assert ("qemu/link.ld" in files) == emulated and ("make qemu" in text["Makefile"]) == emulated
        if emulated:
            assert "emulator harness" in readme
        if shutil.which("arm-none-eabi-gcc"):
            assert meas["flash_bytes"] == meas["text"] + meas["rodata"] + meas["data"] > 0
            assert rows["Flash (measured)"]["value"].endswith(" B")
    else:
        assert meas["flash_bytes"] is None and meas["ram_bytes"] is None
        assert "toolchain in this studio" in meas["note"]
        assert rows["Flash (measured)"]["how"] == f"not measured: {meas['note']}"
        assert f"not measured | {meas['note']}" in readme
        assert not any(k.startswith(("mcu/", "qemu/")) for k in files)
        if mcu.vendor == "Espressif":
            comp = "esp-idf/components/door_sensor_2/"
            assert {comp + "CMakeLists.txt", comp + "idf_component.yml", comp + "src/door_sensor_2_input.c",
                    "esp-idf/CMakeLists.txt", "esp-idf/main/main.c"} <= set(files)
            assert "idf_component_register(" in text[comp + "CMakeLists.txt"]
            assert f"  - {mcu.id}" in text[comp + "idf_component.yml"]
            assert f"idf.py set-target {mcu.id}" in readme and "ESP-IDF" in meas["note"]
        else:
            assert "-march=rv32" in text["Makefile"] and "-mabi=ilp32" in text["Makefile"]
            assert "esp-idf/CMakeLists.txt" not in files


def test_default_name_is_the_model_file_or_zoo_name(tmp_path, capsys):
    code = main(["export", TINY, "--mcu", "esp32s3", "--out", str(tmp_path / "a.zip"), "--verify", "none",
                 "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["library"]["name"] == "lenet5"


def test_text_output_says_what_is_not_measured(tmp_path, capsys):
    code = main(["export", TINY, "--mcu", "esp32s3", "--out", str(tmp_path / "a.zip"), "--inputs", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "flash (measured): not measured: no Xtensa toolchain in this studio; build the bundle with ESP-IDF" in out


def test_qemu_refusal_names_no_cli_flag(tmp_path):
    from engine.errors import TinyStudioError
    from engine.export.targets import verify_options

    g = load_model(TINY)
    for mcu in ("esp32s3", "rp2040", "gd32vf103cb"):
        why = verify_options(load_mcus()[mcu])["qemu"]
        assert why and "--" not in why
        with pytest.raises(TinyStudioError) as e:
            export_model(g, mcu, tmp_path / "a.zip", verify="qemu")
        assert "--" not in str(e.value)
    assert verify_options(load_mcus()["nrf52840"]) in ({"host": "", "qemu": "", "none": ""},) or shutil.which(
        "qemu-system-arm") is None


@pytest.mark.parametrize("report", [None, {}, {"measured": None}, {"measured": {"flash_bytes": None}},
                                    {"measured": {"flash_bytes": "x", "note": 3}, "estimate": [], "verify": 7},
                                    {"verify": {"mode": "host", "bit_exact": False}, "arena_bytes": "?"}])
def test_stored_reports_of_any_shape_render(report):
    rows = figure_rows(report)
    assert {r["figure"] for r in rows} >= {"Verification", "Flash (measured)", "RAM (measured)", "Latency"}
    assert all(isinstance(r["value"], str) and isinstance(r["how"], str) for r in rows)
    assert text_lines(report)


# ---- the Cortex-M bundle builds for the MCU ------------------------------------------------------------

def _sections(elf: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run(["arm-none-eabi-objdump", "-h", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    secs = {}
    for m in re.finditer(r"^\s*\d+\s+(\.\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", out, re.M):
        secs[m.group(1)] = (int(m.group(3), 16), int(m.group(2), 16))  # VMA, size
    return secs


CORTEX_M = ["nrf52840", "stm32f746ng"] + sorted({m for c, m in FAMILIES.items() if c.startswith("cortex")}
                                                - {"nrf52840", "stm32f746ng"})


@needs_arm
@pytest.mark.parametrize("mcu_id", CORTEX_M)
def test_cortex_m_makefile_links_with_the_mcu_startup_and_memory_map(mcu_id, tmp_path):
    mcu = load_mcus()[mcu_id]
    res = export_model(load_model(TINY), mcu_id, tmp_path / "b.zip", verify="none", name="kws demo")
    with zipfile.ZipFile(res.bundle) as z:
        z.extractall(tmp_path / "x")
    root = tmp_path / "x" / "tinystudio_kws_demo"
    p = subprocess.run(["make"], cwd=root, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "warning" not in p.stderr.lower(), p.stderr
    assert f"-T mcu/{mcu_id}.ld" in p.stdout and f"startup_{mcu_id}.o" in p.stdout
    emulated = res.report["target"]["core"] in ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
    assert (root / "qemu" / "README.md").is_file() == emulated
    elf = root / "build" / "kws_demo_example.elf"
    fo, fl, so, sl = mcu.memory_map
    secs = _sections(elf)
    text_vma, _ = secs[".text"]
    assert text_vma == fo, f".text at {text_vma:#x}, expected the flash origin {fo:#x}"
    rodata_vma, rodata_size = secs[".rodata"]
    assert fo <= rodata_vma and rodata_vma + rodata_size <= fo + fl
    assert rodata_size >= res.lib.weights_bytes  # the weights are in flash
    bss_vma, bss_size = secs[".bss"]
    assert so <= secs[".data"][0] and bss_vma + bss_size <= so + sl
    assert bss_size >= res.lib.arena_bytes  # the arena is in SRAM
    # The vector table is the first thing in flash: initial SP = top of SRAM, reset vector inside flash.
    blob = subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(elf), "/dev/stdout"],
                          capture_output=True, check=True).stdout
    sp, reset = np.frombuffer(blob[:8], "<u4")
    assert int(sp) == so + sl and fo <= (int(reset) & ~1) < fo + fl and int(reset) & 1
    size = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "kws_demo_example.elf" in size


# ---- the input helper ----------------------------------------------------------------------------------

HELPER_MAIN = """#include <stdio.h>
#include <stdint.h>
#include "demo.h"
#include "demo_input.h"
int main(void) {
    static float raw[DEMO_INPUT0_SIZE];
    static int8_t q[DEMO_INPUT0_SIZE];
    if (fread(raw, sizeof(float), DEMO_INPUT0_SIZE, stdin) != DEMO_INPUT0_SIZE) return 3;
    demo_preprocess(raw, q);
    fwrite(q, 1, DEMO_INPUT0_SIZE, stdout);
    demo_quantize_input_buffer(raw, q);
    fwrite(q, 1, DEMO_INPUT0_SIZE, stdout);
    return 0;
}
"""


def test_c_input_helper_matches_the_python_quantizer(tmp_path):
    from engine.passes.ptq import quantize_inputs, quantize_model

    g = load_model(TINY)
    mean, std = [0.5, -1.0, 2.0], [0.25, 2.0, 0.5]
    g.meta["dataset"] = {"source": "builtin:demo", "normalization": {"mean": mean, "std": std, "axis": "channel"},
                         "class_names": ["up", "down", "left", "right"]}
    qg, _ = quantize_model(g)
    lib = generate_library(qg, "demo")
    spec = input_spec(qg, lib, provenance(g))
    assert spec["layout"] == "NHWC" and spec["channels"] == 3
    assert spec["class_labels"] == ["up", "down", "left", "right"]
    lib = with_input_helper(lib, spec)
    for rel, text in lib.files.items():
        (tmp_path / rel).write_text(text)
    (tmp_path / "main.c").write_text(HELPER_MAIN)
    srcs = [str(tmp_path / s) for s in ("demo_io.c", "demo_input.c", "main.c")]
    cc = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), *srcs, "-o",
                         str(tmp_path / "h"), "-lm"], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    rng = np.random.default_rng(3)
    raw_nchw = (rng.normal(size=(1, 3, 16, 16)) * np.array(std).reshape(1, 3, 1, 1) * 3
                + np.array(mean).reshape(1, 3, 1, 1)).astype(np.float32)
    raw_nhwc = raw_nchw.transpose(0, 2, 3, 1).copy()  # the C helper takes the C input's layout
    p = subprocess.run([str(tmp_path / "h")], input=raw_nhwc.tobytes(), capture_output=True, check=True)
    got_pre, got_q = np.frombuffer(p.stdout[:raw_nhwc.size], np.int8), np.frombuffer(p.stdout[raw_nhwc.size:], np.int8)
    # Independent oracle: the PTQ quantizer on the dataset's own normalization, in the float model's NCHW layout.
    from engine.data import normalize

    want = quantize_inputs(qg, {g.inputs[0]: normalize(raw_nchw, g.meta["dataset"]["normalization"])})[qg.inputs[0]]
    assert np.array_equal(got_pre, want.reshape(-1)), np.flatnonzero(got_pre != want.reshape(-1))[:5]
    assert np.array_equal(got_pre, reference_preprocess(qg, spec, raw_nhwc).reshape(-1))
    want_q = quantize_inputs(qg, {g.inputs[0]: raw_nchw})[qg.inputs[0]]
    assert np.array_equal(got_q, want_q.reshape(-1))
    assert int(np.count_nonzero(want != want_q)) > 0  # the normalization changes the bytes


def test_readme_lists_normalization_and_class_labels(tmp_path):
    g = load_model(TINY)
    g.meta["dataset"] = {"source": "builtin:demo", "normalization": {"mean": [1, 2, 3], "std": [4, 5, 6]},
                         "class_names": ["a", "b", "c", "d"]}
    res = export_model(g, "nrf52840", tmp_path / "b.zip", verify="none", name="demo")
    with zipfile.ZipFile(res.bundle) as z:
        readme = z.read("tinystudio_demo/README.md").decode()
    assert "| 0 | 1 | 4 |" in readme and "| 2 | 3 | 6 |" in readme and "builtin:demo" in readme
    assert "| 3 | d |" in readme
    pre = res.report["preprocessing"]
    assert pre["scale"] == res.lib.inputs[0].scale and pre["zero_point"] == res.lib.inputs[0].zero_point
    res2 = export_model(load_model(TINY), "nrf52840", tmp_path / "c.zip", verify="none", name="demo")
    with zipfile.ZipFile(res2.bundle) as z:
        readme2 = z.read("tinystudio_demo/README.md").decode()
    assert "Normalization: none recorded" in readme2 and "output index i is class i (0 to 3)" in readme2
