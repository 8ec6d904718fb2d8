"""The schedule control on the Profile page (issue 13): VWW (MobileNetV1 x0.25, as deployed int8) run with
`auto`: the memory timeline shows the patch stage, per-patch live bytes and the layer-by-layer "before"; the
arena drops below the layer-by-layer bound; the choice is saved with the version and the Export page uses it.
Screenshots in test-artifacts/e2e/ (schedule_page-*.png)."""
from __future__ import annotations

import re

from tests.e2e import studio as ui


def _legend(page) -> list[str]:
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Memory timeline").first
    chart.wait_for()
    return [t.text_content() for t in chart.locator("g.legend text.legendtext").all()]


def _kb(text: str) -> float:
    return float(re.search(r"([\d.,]+)\s*KB", text).group(1).replace(",", ""))


def test_schedule_on_profile_and_export(studio, new_page, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "vww_mobilenetv1", name="VWW schedule")
    ui.go(page, "Profile")
    ui.pick_mcus(page, ["samd21g18"])   # 32 KB of SRAM: layer by layer does not fit, so auto cuts the arena
    before = ui.metrics(page)
    assert all("layer by layer (before)" not in t for t in _legend(page))

    group = page.get_by_test_id("stButtonGroup").filter(has=page.locator("button", has_text="Auto"))
    group.locator("button", has_text="Auto").click()
    ui.wait_idle(page, timeout=180_000)
    after = ui.metrics(page)
    assert _kb(after["Activation arena"]) < _kb(before["Activation arena"]), (before, after)
    info = page.get_by_test_id("stAlertContentInfo").filter(has_text="schedule ").first.inner_text()
    assert "auto:" in info and "against the layer-by-layer bound" in info and "MACs +" in info, info
    assert "patch stage" in info, info
    legend = _legend(page)
    assert any(t.startswith("layer by layer (before)") for t in legend), legend
    assert "per patch / band live" in legend, legend
    title = page.get_by_test_id("stPlotlyChart").filter(has_text="Memory timeline").first.inner_text()
    assert "schedule: peak" in title and "MACs +" in title, title
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "auto")

    # The overhead limit is part of the choice: 0 % allows no recomputation, so no patch stage.
    limit = page.get_by_label("Max MAC overhead (%)")
    limit.fill("0")
    limit.press("Enter")
    ui.wait_idle(page, timeout=180_000)
    info0 = page.get_by_test_id("stAlertContentInfo").filter(has_text="schedule ").first.inner_text()
    assert "patch stage" not in info0 and "+0.00 %" in info0, info0
    limit.fill("10")
    limit.press("Enter")
    ui.wait_idle(page, timeout=180_000)

    page.get_by_role("button", name="Save with the version").click()
    ui.wait_versions(page, 2, timeout=120_000)
    ui.wait_idle(page, timeout=180_000)
    page.get_by_role("button", name="Saved with the version").wait_for()
    assert "(schedule)" in ui.caption(page), ui.caption(page)
    saved = ui.metrics(page)
    assert saved["Activation arena"] == after["Activation arena"], (saved, after)

    ui.go(page, "Export")
    cap = page.get_by_test_id("stCaptionContainer").filter(has_text="Schedule saved with this version").inner_text()
    assert "patch" in cap, cap
    # Build and verify: the C runs the saved schedule, byte for byte equal to the layer-by-layer reference.
    page.get_by_label("Random test inputs").fill("1")
    page.get_by_role("button", name="Build and verify").click()
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="export #1: done").first.wait_for(timeout=300_000)
    ui.metrics(page)
    box = page.get_by_test_id("stExpander").first
    tiles = {m.get_by_test_id("stMetricLabel").inner_text().strip():
             m.get_by_test_id("stMetricValue").inner_text().strip() for m in box.get_by_test_id("stMetric").all()}
    assert tiles["Verification"] == "bit-exact", tiles
    arena = int(tiles["Tensor arena"].removesuffix(" B").replace(",", ""))
    # the arena the Profile page showed: patch stage written over its input + a fused block (30.00 KB)
    assert arena == 30_720 and round(arena / 1024, 2) == _kb(after["Activation arena"]), (tiles, after)
    assert "Schedule" in box.inner_text() and "patch" in box.inner_text()
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "export")
