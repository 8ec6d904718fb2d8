"""The latency/energy/memory estimator: op kinds, monotonicity, float penalties, fit logic."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.importers.tflite_import import load_tflite
from engine.ir import Quant, Tensor
from engine.validate import infer_shapes
from hwmodels.estimate import estimate_layers, estimate_target, layer_work
from hwmodels.mcu import get_mcu
from hwmodels.runtime import get_runtime

MLPERF = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlperf-tiny"


@pytest.fixture(scope="module")
def kws():
    return load_tflite(str(MLPERF / "kws_ref_model.tflite"))


def conv_net(channels: int, cin: int = 8, size: int = 16, dtype: str = "int8"):
    """NCHW conv -> relu -> global pool -> gemm (int8 tensors with quantization, or float32)."""
    r = np.random.default_rng(0)
    q = Quant(np.float32(0.05), 0) if dtype == "int8" else None
    rand = lambda shape: (r.integers(-100, 100, shape) if q else r.normal(size=shape)).astype(dtype)  # noqa: E731
    b = GraphBuilder(f"c{channels}")
    x = b.input("X", (1, cin, size, size), dtype, q)
    w = b.const("W", rand((channels, cin, 3, 3)), q)
    y = b.node("Relu", [b.node("Conv", [x, w], pads=[1, 1, 1, 1])])
    y = b.node("Flatten", [b.node("GlobalAveragePool", [y])])
    fc = b.const("F", rand((channels, 10)), q)
    b.output(b.node("Gemm", [y, fc]))
    return b.build()


def as_float(graph):
    """The same network in float32: dequantized constants, no quantization."""
    g = graph.copy()
    for name, t in list(g.tensors.items()):
        data = None if t.data is None else t.float_data()  # float_data dequantizes quantized constants
        g.tensors[name] = Tensor(name, t.shape, "float32", None, data, t.meta)
    return infer_shapes(g)


def test_kws_layers_are_classified_by_kind(kws):
    kinds = [w.kind for w in layer_work(kws)]
    assert kinds == ["conv"] + ["depthwise", "pointwise"] * 4 + ["pool", "view", "fc", "softmax"], kinds
    first = layer_work(kws)[0]
    assert first.column == 40 and first.macs == 320_000  # 10x4 kernel over one input channel
    assert sum(w.macs for w in layer_work(kws)) == 2_656_768


def test_layers_sum_to_totals_and_carry_the_estimate_label(kws):
    est = estimate_target(kws, get_mcu("stm32l4r5zi"), get_runtime("vendor-optimized"), arena_bytes=16_000,
                          weight_bytes=24_376)
    assert est.label == "estimate"
    assert est.latency_ms == pytest.approx(sum(le.latency_ms for le in est.layers))
    assert est.energy_uj == pytest.approx(est.latency_ms * get_mcu("stm32l4r5zi").active_power_mw)
    assert sum(le.share for le in est.layers) == pytest.approx(1.0)
    assert est.cycles == sum(le.cycles for le in est.layers)
    assert est.calibrated and [le.name for le in est.layers] == [w.name for w in layer_work(kws)]
    d = est.to_json()
    assert {"mcu", "runtime", "latency_ms", "energy_uj", "ram_bytes", "flash_bytes", "fits"} <= d.keys()


def test_more_macs_cost_more_and_a_faster_clock_less():
    mcu, rt = get_mcu("stm32f746ng"), get_runtime("tflm-cmsis-nn")
    lat = [sum(le.latency_ms for le in estimate_layers(conv_net(c), mcu, rt)) for c in (8, 16, 32, 64)]
    assert lat == sorted(lat) and lat[0] < lat[-1], lat
    g = conv_net(16)
    slow = sum(le.cycles for le in estimate_layers(g, mcu, rt))
    fast_mcu = replace(mcu, clock_mhz=mcu.clock_mhz * 2)
    t1 = sum(le.latency_ms for le in estimate_layers(g, mcu, rt))
    t2 = sum(le.latency_ms for le in estimate_layers(g, fast_mcu, rt))
    assert t2 == pytest.approx(t1 / 2) and sum(le.cycles for le in estimate_layers(g, fast_mcu, rt)) == slow
    assert all(w.dtype == "int8" for w in layer_work(g))


def test_few_input_channels_run_less_efficiently():
    mcu, rt = get_mcu("nrf5340"), get_runtime("tflm-cmsis-nn")
    per_mac = []
    for cin in (1, 3, 16, 64):
        g = conv_net(16, cin=cin)
        conv = next(le for le in estimate_layers(g, mcu, rt) if le.op == "Conv")
        per_mac.append(conv.cycles / conv.macs)
    assert per_mac == sorted(per_mac, reverse=True)
    assert 3.0 < per_mac[0] / per_mac[-1] < 6.0  # the ~4x penalty of a 3x3 conv with one input channel


def test_float_graph_on_a_cortex_m0plus_is_flagged_much_slower_than_int8(kws):
    flt = as_float(kws)
    assert all(t.dtype == "float32" for t in flt.tensors.values())
    rt = get_runtime("tflm-cmsis-nn")
    m0, m4 = get_mcu("stm32g0b1re"), get_mcu("stm32l4r5zi")
    lat = lambda g, m: sum(le.latency_ms for le in estimate_layers(g, m, rt))  # noqa: E731
    soft = lat(flt, m0) / lat(kws, m0)
    hard = lat(flt, m4) / lat(kws, m4)
    assert soft > 5.0, soft  # software floating point on a core without FPU
    assert 1.0 < hard < soft, (hard, soft)


def test_fit_logic_names_the_dominant_resource_and_the_miss(kws):
    mcu, rt = get_mcu("stm32g0b1re"), get_runtime("tflm-cmsis-nn")
    ok = estimate_target(kws, mcu, rt, arena_bytes=16_000, weight_bytes=24_376, io_bytes=502)
    parts = dict(ok.ram_parts)
    assert ok.ram_bytes == sum(parts.values()) and parts["arena"] == 16_000 and parts["io"] == 502
    assert parts["persistent"] > 0 and parts["scratch"] > 0
    assert ok.flash_bytes == 24_376 + dict(ok.flash_parts)["code"]
    assert ok.fits and ok.fits_ram and ok.fits_flash and ok.fit_message().startswith("fits")
    big_arena = mcu.sram_bytes  # arena alone fills the SRAM: RAM misses by exactly the rest
    est = estimate_target(kws, mcu, rt, arena_bytes=big_arena, weight_bytes=24_376)
    assert not est.fits and not est.fits_ram and est.fits_flash and est.dominant == "ram"
    assert est.ram_miss_bytes == est.ram_bytes - mcu.sram_bytes > 0
    assert "RAM over by" in est.fit_message()
    est = estimate_target(kws, mcu, rt, arena_bytes=16_000, weight_bytes=mcu.flash_bytes)
    assert not est.fits and est.fits_ram and not est.fits_flash and est.dominant == "flash"
    assert "flash over by" in est.fit_message() and est.flash_miss_bytes > 0


def test_reference_runtime_needs_no_scratch_and_ids_resolve(kws):
    est = estimate_target(kws, "esp32s3", "tflm-reference", arena_bytes=16_000, weight_bytes=24_376)
    assert dict(est.ram_parts)["scratch"] == 0 and est.mcu == "esp32s3" and est.runtime == "tflm-reference"
    fast = estimate_target(kws, "esp32s3", "esp-nn", arena_bytes=16_000, weight_bytes=24_376)
    assert fast.latency_ms * 10 < est.latency_ms  # ESP-NN is >10x the reference kernels on the S3
