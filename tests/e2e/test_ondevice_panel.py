"""Train on device: a kws_dscnn session, the last two layers trained on an STM32F746NG; the peak training SRAM
shown is the engine's (the CLI's) figure, switching to all layers raises it, and POET's plan under a tighter
budget (85% of the peak) is feasible for all layers and replayed in the reference. Screenshot: test-artifacts/e2e/ondevice_panel-*.png."""
from __future__ import annotations

from app.units import fmt_bytes
from engine.ondevice import parse_spec, resolve
from engine.ondevice.memory import training_profile
from engine.zoo import build_zoo_model
from tests.e2e import studio as ui


def _peak(spec: str) -> str:
    g = build_zoo_model("zoo:kws_dscnn")
    return fmt_bytes(training_profile(g, resolve(g, parse_spec(spec))).peak_sram_bytes)


def test_ondevice_panel(studio, new_page, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "kws_dscnn", name="ODT")
    ui.go(page, "Train on device")
    m = ui.metrics(page)
    assert m["Peak training SRAM"] == _peak("last:2"), m
    assert m["Fits stm32f746ng"] == "yes"
    assert page.get_by_test_id("stPlotlyChart").filter(has_text="Memory timeline").count() == 1
    # the last two layers' peak is in the backward where everything dropped is needed again: no POET plan
    page.get_by_text("No plan fits").wait_for(timeout=60_000)
    shot(page, "last2")
    ui.select_option(page, "What to train", "All layers")
    ui.wait_idle(page)
    m = ui.metrics(page)
    assert m["Peak training SRAM"] == _peak("all"), m
    page.get_by_text("Feasible: peak").wait_for(timeout=60_000)
    assert "bit for bit" in page.get_by_test_id("stAlertContentSuccess").inner_text()
    shot(page, "all")
    assert ui.tracebacks(page) == []
