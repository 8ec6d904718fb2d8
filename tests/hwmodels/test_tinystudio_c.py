"""The tinystudio-c runtime profile (TinyStudio's generated C) against the generated C itself: the measurements
it was derived from (calibration.toml [tinystudio_c]), the code generator's scratch sizes, and compiled builds of
models it was not derived from (arm-none-eabi-gcc, QEMU)."""
from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import pytest

from engine.codegen import generate_library
from engine.codegen.emit_conv import im2col_scratch_bytes
from engine.deployed import graph_at_precision
from engine.errors import TinyStudioError
from engine.profile import profile_graph
from engine.zoo import build_zoo_model
from hwmodels.calibration import tinystudio_c_rows
from hwmodels.estimate import LayerWork, layer_cycles, layer_scratch_bytes, layer_work, scratch_bytes
from hwmodels.mcu import get_mcu
from hwmodels.runtime import get_runtime, parse_runtime

MLPERF = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlperf-tiny"
RT = get_runtime("tinystudio-c")
MCU = "stm32l4r5zi"  # NUCLEO-L4R5ZI, Cortex-M4: the board the measurements were made for
# Tolerances: RAM and flash are byte counts (tight); instruction counts are a per-kind fit.
TOL = {"ram_bytes": 0.05, "flash_bytes": 0.05, "code_bytes": 0.10, "instructions_dsp": 0.05,
       "instructions_portable": 0.10}


@pytest.fixture(scope="module")
def rows():
    if not MLPERF.is_dir():
        pytest.skip("MLPerf Tiny models not found")
    return tinystudio_c_rows(MLPERF)


def test_profile_against_the_measured_mlperf_exports(rows):
    assert {(r.model, r.what) for r in rows} == {(m, w) for m in ("kws", "vww", "ic", "ad") for w in TOL}
    bad = [f"{r.model} {r.what}: measured {r.measured:,.0f}, estimated {r.estimated:,.0f} ({r.error:+.1%})"
           for r in rows if abs(r.error) > TOL[r.what]]
    assert not bad, "\n".join(bad)
    ram = {r.model: r.measured for r in rows if r.what == "ram_bytes"}
    assert ram == {"kws": 18_360, "vww": 58_688, "ic": 54_256, "ad": 1_024}  # measured (runtime_tsc_measure.py)


def _deployed(spec: str):
    g, _ = graph_at_precision(build_zoo_model(spec), "int8")
    return g


@pytest.mark.parametrize("spec", ["zoo:lenet5", "zoo:kws_dscnn", "zoo:mobilenetv2?width=0.35&resolution=32",
                                  "zoo:micro_speech"])
def test_scratch_is_the_code_generators(spec):
    g = _deployed(spec)
    lib = generate_library(g, "m")
    assert scratch_bytes(layer_work(g), RT) == lib.stamp["scratch_bytes"]


@pytest.mark.parametrize("c,taps", [(3, 9), (3, 25), (1, 9), (4, 9), (8, 1), (3, 1)])
def test_layer_scratch_mirrors_the_generators_rule(c, taps):
    """[scratch] of tinystudio-c.toml against emit_conv.im2col_scratch_bytes layer by layer, the 3x3x3 kernel's
    816-byte minimum included (no zoo model's largest scratch is a 3x3x3 conv, so the test above misses it)."""
    kind = "pointwise" if taps == 1 else "conv"
    w = LayerWork("l", "Conv", kind, 0, c * taps, 0, "int8", taps, 8, c)
    assert layer_scratch_bytes(w, RT) == im2col_scratch_bytes(c * taps, c, taps)


def _footprint(g):
    from engine.export.crossbuild import BuildError, measure_footprint

    lib = generate_library(g, "m")
    with tempfile.TemporaryDirectory() as td:
        try:
            return lib, measure_footprint(lib, get_mcu(MCU), Path(td))
        except BuildError as e:
            pytest.skip(str(e))


@pytest.mark.parametrize("spec", ["zoo:lenet5", "zoo:micro_speech", "zoo:kws_dscnn"])
def test_ram_and_flash_of_unseen_models_match_the_compiled_library(spec):
    """Built with arm-none-eabi-gcc: RAM = .data + .bss + stack (static call graph). The RAM figures were derived
    from the MLPerf exports only; the code size fit includes LeNet-5 and micro_speech (not kws_dscnn)."""
    g = _deployed(spec)
    lib, fp = _footprint(g)
    (est,) = profile_graph(g, [(MCU, "tinystudio-c")]).targets
    assert dict(est.ram_parts)["arena"] == lib.arena_bytes
    assert est.ram_bytes == pytest.approx(fp.ram_bytes, rel=0.05), (est.ram_parts, fp)
    assert est.flash_bytes == pytest.approx(fp.flash_bytes, rel=0.05), (est.flash_parts, fp)


def test_dsp_instructions_of_an_unseen_model_in_qemu():
    """LeNet-5 (5x5 convs on 1 and 6 channels: a shape none of the fitted models has) on the emulated Cortex-M4:
    measured 915,549 instructions, estimated 0.63 M (-31 %): the rates are fitted on the MLPerf models, whose
    layers take the specialised paths (assembly channel loops, the 3x3x3 kernel, narrow pointwise, small-image
    depthwise); LeNet-5's 5x5 convs over 1 and 6 channels (K = 25, 150) take none and spend more of their time in
    the im2col, which the per-kind fit does not see (before those loops: 1,201,045 measured, -15 %; before
    session 24's paths, whose faster MLPerf layers lowered the fitted rates: -27 %). A rate per kernel path,
    decided by the generator's own predicates, is what would close this."""
    from engine.export.verify_qemu import qemu_unavailable, verify_qemu

    mcu = get_mcu(MCU)
    if qemu_unavailable(mcu):
        pytest.skip(qemu_unavailable(mcu))
    g = _deployed("zoo:lenet5")
    res = verify_qemu(g, generate_library(g, "m"), mcu, n_random=0, dsp=True)
    cpi = tomllib.loads((Path(RT.path).parents[1] / "calibration.toml").read_text())["tinystudio_c"][
        "cycles_per_instruction"]
    est = sum(layer_cycles(w, RT.core_profile("cortex-m4"), RT, mcu) for w in layer_work(g)) / cpi
    assert res.bit_exact and est == pytest.approx(res.instructions_per_inference, rel=0.35)


def test_issue_model_fits_an_esp32s3_as_deployed():
    prof = profile_graph(build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=144"), [("esp32s3", "tinystudio-c")],
                         precision="int8")
    (est,) = prof.targets
    parts = dict(est.ram_parts)
    assert est.fits and parts["arena"] == prof.plan.arena_bytes == 311_040
    # no interpreter state: the stack of the depthwise DSP kernel and alignment, the largest 1x1 conv's im2col
    assert parts["persistent"] == 8 + 1336 and parts["scratch"] == 8 * 336 and parts["io"] == 0
    assert est.ram_bytes == pytest.approx(314_428, rel=0.01)  # measured: the STM32H743ZI export's RAM


def test_optional_fields_default_to_zero_and_are_checked():
    assert get_runtime("tflm-cmsis-nn").ram_stack_bytes == 0 and get_runtime("esp-nn").code_op_type_bytes == ()
    assert dict(RT.ram_stack_bytes_by_kind) == {"depthwise": 1336, "elementwise": 496}
    assert dict(RT.code_op_type_bytes)["Conv"] == 7894
    doc = tomllib.loads(Path(RT.path).read_text())
    doc["ram"]["stack_bytes_by_kind"] = {"depthwise": -1}
    with pytest.raises(TinyStudioError, match=r"rt\.toml: field 'ram\.stack_bytes_by_kind\.depthwise' must not be"):
        parse_runtime(doc, "rt.toml")
    doc["ram"]["stack_bytes_by_kind"] = {"depthwise": "big"}
    with pytest.raises(TinyStudioError, match=r"field 'ram\.stack_bytes_by_kind\.depthwise' must be an integer"):
        parse_runtime(doc, "rt.toml")
