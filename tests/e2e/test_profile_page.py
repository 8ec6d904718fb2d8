"""The Profile page answers "does it fit?" as deployed: MobileNetV2 0.35 @144 on three MCUs, one card per MCU,
int8 (BN folded, activations fused) by default and float32 one switch away. Screenshots land in
test-artifacts/e2e/ (profile_page-*.png)."""
from __future__ import annotations

from tests.e2e import studio as ui

MCUS = ["esp32s3", "nrf52840", "stm32f746ng"]


def _create_mobilenet(page) -> None:
    ui.new_session_tab(page, "From the zoo")
    ui.select_option(page, "Model", "mobilenetv2")
    ui.wait_idle(page)
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Create session"))
    form.get_by_label("width", exact=True).fill("0.35")
    form.get_by_label("resolution", exact=True).fill("144")
    form.get_by_role("textbox", name="Session name").fill("MobileNetV2 0.35@144")
    form.get_by_role("button", name="Create session").click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=90_000)
    ui.wait_versions(page, 1)


def _cards(page) -> dict[str, str]:
    return {m: page.locator(f".st-key-fit_card_{m}").inner_text() for m in MCUS}


def _legend(page) -> list[str]:
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Memory timeline").first
    return [t.text_content() for t in chart.locator("g.legend text.legendtext").all()]


def test_profile_page(studio, new_page, shot):
    page = new_page(studio.url)
    _create_mobilenet(page)
    ui.go(page, "Profile")
    ui.pick_mcus(page, MCUS)

    # As deployed by default: BN folded into the convolutions, activations fused, int8.
    assert "Figures of int8" in page.get_by_test_id("stCaptionContainer").filter(has_text="Figures of").inner_text()
    deployed = ui.metrics(page)
    assert deployed["Layers"] == "65" and deployed["Activation arena"] == "303.8 KB", deployed
    # With the generated C (the default runtime, what the export deploys) it fits an ESP32-S3; the nRF52840
    # (256 KB SRAM) and the STM32F746NG (1 MB flash for 1.7 MB of weights) are too small.
    page.get_by_text("Fits on 1 of 3 chosen MCUs: esp32s3.").wait_for()
    cards = _cards(page)
    for mcu in MCUS:
        assert ("✓ fits" in cards[mcu]) != ("✗ does not fit" in cards[mcu]), cards[mcu]
        assert "RAM" in cards[mcu] and "Flash" in cards[mcu]
        assert "Latency" in cards[mcu] and "energy" in cards[mcu]
    esp = cards["esp32s3"].replace("\xa0", " ")
    assert "✓ fits" in esp and "tinystudio-c" in esp, esp
    assert "of 384 KB" in esp and "arena 99 % · scratch 1 % · runtime state 0 %" in esp, esp
    assert "over by" in cards["nrf52840"]  # 256 KB of SRAM and 1 MB of flash: too small either way
    legend = _legend(page)
    assert {f"{m} SRAM" for m in MCUS} <= {t.rsplit(" ", 2)[0] for t in legend}, legend
    fit = {r["MCU"]: r for r in ui.table(ui.dataframe(page, "MCU"))}
    assert sorted(fit) == sorted(MCUS) and all(r["verdict"] for r in fit.values())
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "as-deployed")

    # Float32 one switch away: the same cards, charts and timeline follow.
    page.get_by_test_id("stButtonGroup").locator("button", has_text="Float32").click()
    ui.wait_idle(page)
    page.get_by_test_id("stCaptionContainer").filter(has_text="Figures of float32").wait_for()
    flt = ui.metrics(page)
    assert int(flt["Layers"]) > 65 and flt["Activation arena"] != deployed["Activation arena"], flt
    cards = _cards(page)
    assert all("✗ does not fit" in cards[m] for m in MCUS), cards
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "float32")


def test_profile_page_int8_version_and_a_model_without_int8_kernels(studio, new_page, shot):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from tests.engine.test_deployed import MLPERF

    page = new_page(studio.url)
    # An int8 TFLite file: shown as it is, no switch.
    ui.new_session_tab(page, "Upload a model")
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.locator('input[type="file"]').set_input_files(str(MLPERF / "kws_ref_model.tflite"))
    uploader.get_by_test_id("stFileChip").filter(has_text="kws_ref_model.tflite").wait_for()
    ui.wait_idle(page)
    for _ in range(3):  # a click during the upload's own rerun can be lost
        page.get_by_role("button", name="Create session from upload").click()
        try:
            page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            continue
    ui.go(page, "Profile")
    ui.pick_mcus(page, ["nrf52840"])
    page.get_by_test_id("stCaptionContainer").filter(has_text="Figures of int8: int8, as the version is").wait_for()
    # one button group, the schedule control: an int8 file offers no precision choice
    assert page.get_by_test_id("stButtonGroup").count() == 1
    assert page.get_by_test_id("stButtonGroup").filter(has_text="Layer by layer").count() == 1
    assert ui.metrics(page)["Activation arena"] == "15.62 KB"  # 16,000 B, TFLM's own figure for this file
    assert "✓ fits" in page.locator(".st-key-fit_card_nrf52840").inner_text()
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "int8-upload")

    # A transformer (LayerNormalization has no int8 kernel): the reason, then the float32 figures.
    ui.create_zoo_session(page, "cct", name="cct")
    ui.go(page, "Profile")
    warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="int8 (as deployed) is not available")
    warning.wait_for(timeout=60_000)
    assert "LayerNormalization" in warning.inner_text()
    page.get_by_test_id("stCaptionContainer").filter(has_text="Figures of float32").wait_for()
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "no-int8-kernel")
