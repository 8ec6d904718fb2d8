"""The studio's main journey in a real browser: a zoo KWS session, a profile on two MCUs, a layer's channels
changed on the canvas, the profile following, two versions in History, and everything back after a restart.
A screenshot of every page lands in test-artifacts/e2e/ (user_journey-*.png)."""
from __future__ import annotations

import re

from tests.e2e import studio as ui

MCUS = ["stm32f746ng", "nrf5340"]


def _fit(page) -> dict[str, dict]:
    return {r["MCU"]: r for r in ui.table(ui.dataframe(page, "MCU"))}


def _ms(text: str) -> float:
    """'12.34 ms' / '420 µs' / '1.2 s' -> milliseconds."""
    value, unit = text.replace(",", "").split()
    return float(value) * {"µs": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _no_tracebacks(page, where: str) -> None:
    assert ui.tracebacks(page) == [], f"{where}: a traceback is shown: {ui.tracebacks(page)}"
    assert ui.errors_shown(page) == [], f"{where}: errors shown: {ui.errors_shown(page)}"


def test_user_journey(studio, new_page, shot):
    page = new_page(studio.url)
    shot(page, "sessions-empty")
    ui.create_zoo_session(page, "kws_dscnn", name="KWS lab")
    assert re.search(r"Session KWS lab · model zoo:kws_dscnn · version v1 \(zoo\) · 1 version\s*$", ui.caption(page))

    # Profile on two MCUs; note the figures.
    ui.go(page, "Profile")
    ui.pick_mcus(page, MCUS)
    fit1 = _fit(page)
    assert sorted(fit1) == sorted(MCUS)
    before = ui.metrics(page)
    # As deployed by default: 31 float layers, 13 once BN is folded and the ReLUs fused into the convolutions.
    assert before["MACs"] == "2.657 M" and before["Layers"] == "13", before
    assert all(page.locator(f".st-key-fit_card_{m}").inner_text().count("RAM") == 1 for m in MCUS)
    _no_tracebacks(page, "Profile v1")
    shot(page, "profile-v1")

    # Design: conv1 from 64 to 32 output channels in the side panel, checked live, then saved as a version.
    ui.go(page, "Design")
    frame = ui.canvas(page)
    ui.edit_field(frame, "conv1", "out channels", "32")
    frame.locator(".ts-status-ok", has_text="valid").wait_for()
    frame.locator('.react-flow__node[data-id="conv1"]', has_text="32 ch").wait_for()
    frame.locator('.react-flow__node[data-id="block1_dw"]', has_text="W 32×1×3×3").wait_for()
    ui.save_version(page, frame, 2)
    assert "version v2 (edit)" in ui.caption(page)
    frame = ui.canvas(page)  # the saved version, drawn again
    frame.locator('.react-flow__node[data-id="conv1"]', has_text="32 ch").wait_for()
    frame.locator(".ts-status-ok", has_text="Saved").wait_for()
    _no_tracebacks(page, "Design")
    shot(page, "design")

    # The profile follows the new version, on the same two MCUs.
    ui.go(page, "Profile")
    ui.wait_idle(page)
    assert sorted(_fit(page)) == sorted(MCUS), "the chosen MCUs were lost on the way to Design and back"
    after = ui.metrics(page)
    assert after["MACs"] == "2.205 M", after  # conv1: 320,000 -> 160,000 MACs; block1_dw and block1_pw halve too
    assert after["Parameters"] != before["Parameters"]
    fit2 = _fit(page)
    for mcu in MCUS:
        assert _ms(fit2[mcu]["latency (est.)"]) < _ms(fit1[mcu]["latency (est.)"]), (fit1[mcu], fit2[mcu])
    _no_tracebacks(page, "Profile v2")
    shot(page, "profile")

    ui.go(page, "Model view")
    netron = page.frame_locator('iframe[title*="netron"]').first
    netron.locator("body[data-tinystudio='ready']").wait_for(state="attached", timeout=60_000)
    _no_tracebacks(page, "Model view")
    shot(page, "model_view")

    ui.go(page, "History")
    rows = ui.table(ui.dataframe(page, "version"))
    assert [(r["version"].strip(), r["action"]) for r in rows] == [("v1", "zoo"), ("└ v2 ●", "edit")], rows
    layers = {r["layer"]: r for r in ui.table(ui.dataframe(page, "layer"))}
    assert layers["conv1"]["status"] == "changed" and layers["conv1"]["Δ MACs"] == "-160000", layers["conv1"]
    _no_tracebacks(page, "History")
    shot(page, "history")

    ui.go(page, "Export")
    page.get_by_role("button", name="Build and verify").wait_for()
    _no_tracebacks(page, "Export")
    shot(page, "export")

    ui.go(page, "Sessions")
    page.get_by_role("tab", name="All sessions").click()
    listed = ui.table(ui.dataframe(page, "id"))
    assert [(r["name"], r["versions"]) for r in listed] == [("KWS lab", "2")], listed
    shot(page, "sessions")

    # Restart the server on the same database: the session and both versions are back.
    studio.restart()
    page = new_page(studio.url)
    ui.open_session(page, "KWS lab")
    ui.wait_versions(page, 2)
    assert "version v2 (edit)" in ui.caption(page)
    ui.canvas(page).locator('.react-flow__node[data-id="conv1"]', has_text="32 ch").wait_for()
    ui.go(page, "History")
    rows = ui.table(ui.dataframe(page, "version"))
    assert [r["version"].strip() for r in rows] == ["v1", "└ v2 ●"], rows
    figures = ui.table(ui.dataframe(page, "figures of"))
    assert [r["MACs"] for r in figures] == ["2656768", "2204768"], figures
    ui.go(page, "Profile")
    assert ui.metrics(page)["MACs"] == "2.205 M"
    shot(page, "profile-after-restart")
