"""engine.profile: per-layer records + memory plan + target estimates, and the totals that sum them."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import TinyStudioError
from engine.importers import load_model
from engine.profile import profile_graph

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"


@pytest.fixture(scope="module")
def kws():
    return load_model(str(MLPERF / "kws_ref_model.tflite"))


def test_totals_are_sums_of_layers(kws):
    prof = profile_graph(kws, [("stm32l4r5zi", "vendor-optimized"), ("nrf5340", "tflm-cmsis-nn")])
    t = prof.totals()
    recs = [lp.record for lp in prof.layers]
    assert t["macs"] == sum(r.macs for r in recs) == 2_656_768
    assert t["weight_bytes"] == sum(r.weight_bytes for r in recs)
    # X-CUBE-AI 9.0 reports 24,368 bytes of weights in flash for this file (README): the same bytes.
    assert t["weight_bytes"] == 24_368
    for est in prof.targets:
        assert est.label == "estimate"
        assert est.latency_ms == pytest.approx(sum(le.latency_ms for le in est.layers))
        assert sum(le.share for le in est.layers) == pytest.approx(1.0)


def test_memory_figures_come_from_the_planner(kws):
    prof = profile_graph(kws)
    assert prof.plan.arena_bytes == prof.totals()["activation_peak_bytes"] == 16_000
    assert prof.totals()["activation_lower_bound_bytes"] == 16_000
    assert max(lp.live_bytes for lp in prof.layers) == prof.plan.lower_bound_bytes
    assert [lp.step for lp in prof.layers] == list(range(len(prof.layers)))


def test_ram_is_arena_plus_runtime_state_and_flash_holds_weights(kws):
    (est,) = profile_graph(kws, [("stm32l4r5zi", "tflm-cmsis-nn")]).targets
    parts = dict(est.ram_parts)
    assert parts["arena"] == 16_000 and est.ram_bytes == sum(parts.values())
    assert dict(est.flash_parts)["weights"] >= 24_368 and est.flash_bytes == sum(dict(est.flash_parts).values())
    assert est.fits and est.energy_uj > 0


def test_model_that_does_not_fit_says_so():
    g = load_model("zoo:mobilenetv2")
    (est,) = profile_graph(g, [("stm32f411re", "tflm-cmsis-nn")]).targets
    assert not est.fits and not est.fits_ram and "RAM over by" in est.fit_message()


def test_unknown_ids_list_valid_ones(kws):
    with pytest.raises(TinyStudioError, match="unknown MCU 'nope'; valid ids: .*stm32f746ng"):
        profile_graph(kws, [("nope", "tflm-cmsis-nn")])
    with pytest.raises(TinyStudioError, match="unknown runtime 'nope'; valid ids: .*vendor-optimized"):
        profile_graph(kws, [("stm32f746ng", "nope")])
