"""A published stateful model through the studio with the UI alone: tflite-micro's DTLN noise-suppression file
(two int8 LSTMs whose state tensors persist between invocations) uploaded, profiled on an nRF52840 and exported
with host verification. Before issue 12 the upload stopped at "unsupported op 'UNIDIRECTIONAL_SEQUENCE_LSTM'"."""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e import studio as ui
from tests.e2e.test_export_page import export, latest_tiles

DTLN = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro" / "dtln_noise_suppression.tflite"


def test_lstm_model_upload_profile_export(studio, new_page, shot):
    page = new_page(studio.url)
    ui.new_session_tab(page, "Upload a model")
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.locator('input[type="file"]').set_input_files(str(DTLN))
    uploader.get_by_test_id("stFileChip").filter(has_text="dtln").wait_for()  # long names are shortened
    ui.wait_idle(page)
    for _ in range(3):  # a click during the upload's own rerun can be lost
        page.get_by_role("button", name="Create session from upload").click()
        try:
            page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []

    ui.go(page, "Profile")
    ui.pick_mcus(page, ["nrf52840"])
    page.get_by_test_id("stCaptionContainer").filter(has_text="Figures of int8").wait_for(timeout=60_000)
    assert "✓ fits" in page.locator(".st-key-fit_card_nrf52840").inner_text()
    body = page.locator("body").inner_text()
    assert "LSTM" in body, "the layer table names the LSTM layers"
    assert "State kept between invocations (LSTM): 768 B of RAM outside the arena" in body
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "dtln-profile")

    ui.go(page, "Export")
    export(page, "nrf52840", 1)
    tiles = latest_tiles(page)
    assert tiles["Verification"] == "bit-exact", tiles
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "dtln-export")
