"""MCU and runtime description files: every built-in file loads with sources; user files are validated."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TinyStudioError
from hwmodels.mcu import BUILTIN_DIR, CORES, ENV_DIR, SOURCED, get_mcu, load_mcus, parse_mcu
from hwmodels.runtime import get_runtime, load_runtimes, parse_runtime

GOOD = """\
id = "my-board"
name = "My MCU"
vendor = "ACME"
board = "ACME-1"
core = "cortex-m4"
clock_mhz = 100
sram_kb = 128
flash_kb = 512
fpu = "sp"
dsp = true
simd = "dsp"
active_current_ma = 10
supply_v = 3.3

[sources]
core = "datasheet 1"
clock_mhz = "datasheet 2"
sram_kb = "datasheet 3"
flash_kb = "datasheet 4"
fpu = "datasheet 5"
dsp = "datasheet 6"
simd = "datasheet 7"
power = "datasheet 8"
"""


def test_every_builtin_mcu_loads_with_a_source_for_each_figure():
    mcus = load_mcus()
    files = sorted(BUILTIN_DIR.glob("*.toml"))
    assert len(mcus) == len(files)
    for m in mcus.values():
        assert Path(m.path).stem == m.id, f"{m.path}: file name must be the id"
        missing = [k for k in SOURCED + (("npu",) if m.npu else ()) if not m.source(k).strip()]
        assert not missing, f"{m.id}: no source for {missing}"
        assert m.clock_mhz > 0 and m.sram_bytes > 0 and m.flash_bytes > 0 and m.active_power_mw > 0, m.id


def test_at_least_20_mcus_cover_the_required_cores_and_mlperf_boards():
    mcus = load_mcus()
    assert len(mcus) >= 20
    cores = {m.core for m in mcus.values()}
    for need in ("cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "xtensa-lx6", "xtensa-lx7"):
        assert need in cores, need
    assert cores & {"cortex-m55", "cortex-m85"}
    assert any(c.startswith("riscv") for c in cores)
    for board in ("stm32l4r5zi", "nrf5340", "stm32g0b1re", "ra8d1"):
        assert board in mcus


def test_every_core_of_a_builtin_mcu_has_a_reference_runtime_profile():
    ref = get_runtime("tflm-reference")
    for m in load_mcus().values():
        assert ref.supports(m.core), m.id
    for rt in load_runtimes().values():
        for core in rt.core_families:
            p = rt.core_profile(core)
            assert p.source.strip() and all(p.macs_per_cycle(k) > 0 for k in ("conv", "pointwise", "depthwise", "fc"))


def test_user_folder_from_the_environment_adds_and_overrides(tmp_path, monkeypatch):
    (tmp_path / "my-board.toml").write_text(GOOD)
    (tmp_path / "stm32f411re.toml").write_text(GOOD.replace('"my-board"', '"stm32f411re"').replace("100", "84"))
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    mcus = load_mcus()
    assert mcus["my-board"].sram_bytes == 128 * 1024
    assert mcus["my-board"].active_power_mw == pytest.approx(33.0)
    assert mcus["stm32f411re"].clock_mhz == 84  # the user's file replaces the built-in one
    assert get_mcu("my-board").board == "ACME-1"


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.replace("clock_mhz = 100\n", ""), "clock_mhz"),
    (lambda s: s.replace("sram_kb = 128", 'sram_kb = "lots"'), "sram_kb"),
    (lambda s: s.replace('core = "cortex-m4"', 'core = "cortex-m99"'), "core"),
    (lambda s: s.replace('fpu = "sp"', 'fpu = "yes"'), "fpu"),
    (lambda s: s.replace("dsp = true", "dsp = 1"), "dsp"),
    (lambda s: s.replace("flash_kb = 512", "flash_kb = -1"), "flash_kb"),
    (lambda s: s.replace('power = "datasheet 8"\n', ""), "sources.power"),
    (lambda s: s.replace("active_current_ma = 10\n", ""), "active_current_ma"),
    (lambda s: s.replace("clock_mhz", "clock_mzh"), "clock_mzh"),
    (lambda s: s.replace('id = "my-board"', 'id = "My Board!"'), "id"),
    (lambda s: s.replace("[sources]", "[sources"), "TOML"),
])
def test_a_bad_user_file_gives_one_line_naming_file_and_field(tmp_path, monkeypatch, edit, field):
    bad = tmp_path / "broken.toml"
    bad.write_text(edit(GOOD))
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    with pytest.raises(TinyStudioError) as e:
        load_mcus()
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and field in msg, msg


def test_missing_user_folder_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "nope"))
    with pytest.raises(TinyStudioError, match="nope"):
        load_mcus()


def test_unknown_ids_list_the_valid_ones():
    with pytest.raises(TinyStudioError) as e:
        get_mcu("stm32-nonexistent")
    msg = str(e.value)
    assert "\n" not in msg and "stm32-nonexistent" in msg and "stm32l4r5zi" in msg and "esp32s3" in msg
    with pytest.raises(TinyStudioError) as e:
        get_runtime("tvm")
    assert "tflm-cmsis-nn" in str(e.value) and "vendor-optimized" in str(e.value)
    with pytest.raises(TinyStudioError, match="cortex-m0plus") as e:
        get_runtime("esp-nn").core_profile("cortex-m0plus")
    assert "xtensa-lx7" in str(e.value)


def test_parse_mcu_power_from_milliwatts_and_defaults():
    import tomllib
    doc = tomllib.loads(GOOD.replace("active_current_ma = 10\nsupply_v = 3.3\n", "active_power_mw = 12.5\n"))
    m = parse_mcu(doc, "x.toml")
    assert m.active_power_mw == 12.5 and m.cores == 1 and not m.flash_external and m.npu == ""
    assert m.core in CORES


def test_runtime_like_tables_derive_and_bad_tables_fail():
    import tomllib
    base = tomllib.loads((Path(get_runtime("tflm-cmsis-nn").path)).read_text())
    rt = parse_runtime(base, "rt.toml")
    m33, m7 = rt.core_profile("cortex-m33"), rt.core_profile("cortex-m7")
    assert m7.derived_from == "cortex-m33" and not m7.calibrated and m33.calibrated
    assert m7.pointwise_macs_per_cycle == pytest.approx(m33.pointwise_macs_per_cycle * 0.8)
    assert m7.layer_overhead_cycles == pytest.approx(m33.layer_overhead_cycles / 0.8)
    base["cores"]["cortex-m33"] = {"like": "cortex-m7", "source": "loop"}
    with pytest.raises(TinyStudioError, match="cycle"):
        parse_runtime(base, "rt.toml")
    base["cores"]["cortex-m33"] = {"source": "x", "calibrated": True}
    with pytest.raises(TinyStudioError, match=r"rt\.toml: field 'cores\.cortex-m33\.conv_macs_per_cycle' is missing"):
        parse_runtime(base, "rt.toml")


def test_every_cortex_m_mcu_has_a_sourced_memory_map():
    known = {"stm32f746ng": (0x08000000, 0x20000000), "nrf52840": (0x0, 0x20000000), "rp2040": (0x10000000, 0x20000000),
             "stm32h743zi": (0x08000000, 0x24000000)}
    for m in load_mcus().values():
        if not m.core.startswith("cortex-m"):
            continue
        assert m.memory_map is not None, f"{m.id}: no flash_origin/sram_origin"
        assert m.source("flash_origin").strip() and m.source("sram_origin").strip(), m.id
        fo, fl, so, sl = m.memory_map
        assert fl <= m.flash_bytes and sl <= m.sram_bytes, m.id
        assert fo + fl <= so or so + sl <= fo, f"{m.id}: flash and SRAM overlap"
        if m.id in known:
            assert (fo, so) == known[m.id], m.id
    assert "boot2" in get_mcu("rp2040").boot_note


def test_memory_map_fields_are_checked(tmp_path):
    p = tmp_path / "my-board.toml"
    p.write_text(GOOD.replace('simd = "dsp"', 'simd = "dsp"\nflash_origin = 0x08000000'))
    with pytest.raises(TinyStudioError, match="'flash_origin' and 'sram_origin' go together"):
        parse_mcu(__import__("tomllib").loads(p.read_text()), p)
    doc = __import__("tomllib").loads(GOOD.replace('simd = "dsp"', 'simd = "dsp"\nflash_origin = 0\nsram_origin = 1'))
    with pytest.raises(TinyStudioError, match="sources.flash_origin"):
        parse_mcu(doc, p)
    doc["sources"].update(flash_origin="RM 1", sram_origin="RM 2")
    doc["sram_origin"] = 1 << 33
    with pytest.raises(TinyStudioError, match="'sram_origin' must be a 32-bit address"):
        parse_mcu(doc, p)
