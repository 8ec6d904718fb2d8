"""The Export page over the real export engine: build and verify (host) a session's model in the background
for an Arm part (nRF52840: measured, the MCU's startup and linker script) and for an ESP32-S3 (Xtensa: not
measured, with the reason, an ESP-IDF component), download both bundles, and come back to the page."""
from __future__ import annotations

import io
import json
import zipfile

from tests.e2e import studio as ui


def export(page, mcu: str, export_no: int, expect_verify=("host", "QEMU", "none")):
    ui.select_option(page, "Target MCU", mcu)
    ui.wait_idle(page)
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Verify", exact=True)).first
    box.click()
    page.get_by_role("option").first.wait_for()  # the list opens after the click is handled (slow under load)
    offered = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    assert [o.split(" ")[0] for o in offered] == list(expect_verify), offered
    ui.select_option(page, "Verify", "host")
    page.get_by_role("button", name="Build and verify").click()
    ended = page.get_by_test_id("stAlert").filter(has_text=f"export #{export_no}")
    ended.first.wait_for(timeout=240_000)
    failed = page.get_by_test_id("stAlertContentError").filter(has_text=f"export #{export_no}")
    assert failed.count() == 0, f"the export failed: {failed.first.inner_text()}"
    page.get_by_test_id("stAlertContentSuccess").filter(has_text=f"export #{export_no}: done").first.wait_for(
        timeout=30_000)
    # The newest bundle is downloadable at the top as soon as the job ends.
    download = page.get_by_role("button", name=f"Download bundle ({mcu})")
    download.wait_for(timeout=30_000)
    return download


def latest_tiles(page) -> dict[str, str]:
    """The metric tiles of the newest export (the first, expanded, entry of the list)."""
    ui.metrics(page)  # waits for the run to finish
    box = page.get_by_test_id("stExpander").first
    return {m.get_by_test_id("stMetricLabel").inner_text().strip():
            m.get_by_test_id("stMetricValue").inner_text().strip() for m in box.get_by_test_id("stMetric").all()}


def fetch(page, download, tmp_path) -> tuple[str, dict[str, bytes]]:
    with page.expect_download() as got:
        download.click()
    path = tmp_path / got.value.suggested_filename
    got.value.save_as(path)
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        assert z.testzip() is None
        return got.value.suggested_filename, {n: z.read(n) for n in z.namelist()}


def test_export_page_arm_and_esp32(studio, new_page, shot, tmp_path):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "lenet5", name="Digits demo")
    ui.go(page, "Export")

    # nRF52840 (Cortex-M4): host and QEMU verification offered; flash/RAM measured with arm-none-eabi-gcc.
    download = export(page, "nrf52840", 1)
    tiles = latest_tiles(page)
    assert tiles["Verification"] == "bit-exact", tiles
    assert tiles["Flash (measured)"].endswith(" B") and tiles["RAM (measured)"].endswith(" B"), tiles
    assert ui.tracebacks(page) == []
    name, files = fetch(page, download, tmp_path)
    assert name == "tinystudio_digits_demo_nrf52840.zip"
    top = "tinystudio_digits_demo/"
    assert {top + "mcu/startup_nrf52840.c", top + "mcu/nrf52840.ld", top + "qemu/link.ld",
            top + "src/digits_demo.h", top + "src/digits_demo_input.c"} <= set(files)
    assert b"ORIGIN = 0x00000000" in files[top + "mcu/nrf52840.ld"]

    # ESP32-S3 (Xtensa): QEMU is not offered, and the page says why; the figures say "not measured: why".
    download = export(page, "esp32s3", 2, expect_verify=("host", "none"))
    assert page.get_by_text("QEMU verification is not offered for esp32s3").count() == 1
    assert page.get_by_text("Flash and RAM will be estimated, not measured: no Xtensa toolchain").count() == 1
    tiles = latest_tiles(page)
    assert tiles["Flash (measured)"] == "not measured" and tiles["RAM (measured)"] == "not measured", tiles
    note = page.get_by_test_id("stAlert").filter(has_text="Flash and RAM not measured: no Xtensa toolchain")
    assert note.count() >= 1
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    assert "--" not in " ".join(page.get_by_test_id("stCaptionContainer").all_inner_texts())
    shot(page, "export")
    name, files = fetch(page, download, tmp_path)
    assert name == "tinystudio_digits_demo_esp32s3.zip"
    assert {top + "esp-idf/components/digits_demo/CMakeLists.txt", top + "esp-idf/main/main.c"} <= set(files)
    assert not any(n.startswith((top + "mcu/", top + "qemu/")) for n in files)
    rep = json.loads(files[top + "report.json"])
    assert rep["measured"]["flash_bytes"] is None and "ESP-IDF" in rep["measured"]["note"]

    # Coming back to the page renders both stored reports without an exception.
    ui.go(page, "Sessions")
    ui.go(page, "Export")
    page.get_by_role("button", name="Download bundle (esp32s3)").wait_for(timeout=30_000)
    page.get_by_text("Bundles of this session").wait_for(timeout=30_000)
    assert ui.tracebacks(page) == []
