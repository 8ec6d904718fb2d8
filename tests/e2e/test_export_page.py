"""The Export page over the real export engine: build and verify (host) the KWS session in the background,
watch the job, and download the bundle it adds to the page."""
from __future__ import annotations

import io
import zipfile

from tests.e2e import studio as ui


def test_export_page(studio, new_page, shot, tmp_path):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "kws_dscnn", name="KWS export")
    ui.go(page, "Export")
    ui.select_option(page, "Verify", "host")
    page.get_by_role("button", name="Build and verify").click()
    # The job panel: a progress bar while it runs (unless it is already done), then one line saying how it ended.
    job = page.get_by_test_id("stProgress").or_(page.get_by_test_id("stAlert").filter(has_text="export #1"))
    job.first.wait_for(timeout=30_000)
    ended = page.get_by_test_id("stAlert").filter(has_text="export #1")
    ended.first.wait_for(timeout=240_000)
    failed = page.get_by_test_id("stAlertContentError").filter(has_text="export #1")
    assert failed.count() == 0, f"the export failed: {failed.first.inner_text()}"
    assert page.get_by_test_id("stAlertContentSuccess").filter(has_text="export #1: done").count() == 1

    # The bundle appears without touching the page (the panel reruns the page when the job ends).
    download = page.get_by_role("button", name="Download bundle")
    download.wait_for(timeout=15_000)
    tiles = ui.metrics(page)
    assert tiles["Verification"] == "bit-exact", tiles
    assert tiles["Flash (measured)"].endswith(" B") and tiles["RAM (measured)"].endswith(" B"), tiles
    assert ui.tracebacks(page) == []
    shot(page, "export")
    with page.expect_download() as got:
        download.click()
    assert got.value.suggested_filename == "KWS_export_stm32l4r5zi.zip"
    path = tmp_path / got.value.suggested_filename
    got.value.save_as(path)
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        names = z.namelist()
        assert z.testzip() is None
    assert any(n.endswith(".c") for n in names) and any(n.endswith(".h") for n in names), names
