"""The loop a user comes for, with the UI alone (issue 9's "must show"):

1. zoo LeNet-5 -> Train on `digits` -> accuracy >= 90 % shown -> int8 (Compress) -> channels pruned (Compress)
   -> Export for an nRF52840 and for an ESP32-S3 -> both bundles downloaded and checked;
2. a blank canvas -> a 3-layer CNN drawn with the palette -> trained on `digits`.
Screenshots land in test-artifacts/e2e/full_journey-*.png."""
from __future__ import annotations

import re

from tests.e2e import studio as ui
from tests.e2e.test_canvas import NODE, _edit, _status
from tests.e2e.test_export_page import export, fetch
from tests.e2e.test_train_page import _accuracy, _choose


def _train_on_digits(page, epochs: int, versions_after: int) -> float:
    ui.go(page, "Train")
    ui.wait_idle(page)
    _choose(page, "Dataset", "digits")
    form = page.get_by_test_id("stForm")
    form.get_by_role("spinbutton", name="Epochs").fill(str(epochs))
    page.get_by_role("button", name="Train in the background").click()
    ui.wait_job_result(page, page.get_by_text("Last training: made version"))
    ui.wait_versions(page, versions_after)
    assert not ui.tracebacks(page) and not ui.errors_shown(page)
    return _accuracy(page)


def _compress(page, action: str, versions_after: int) -> None:
    ui.go(page, "Compress")
    ui.wait_idle(page)
    _choose(page, "Dataset", "digits")
    _choose(page, "Action", action)
    ui.wait_idle(page)
    assert page.get_by_text("is untrained").count() == 0  # the version was trained on the Train page
    page.get_by_role("button", name="Run in the background").click()
    accept = page.get_by_role("button", name="Accept as a new version")
    ui.wait_job_result(page, accept)
    assert not ui.tracebacks(page) and not ui.errors_shown(page)
    accept.click()
    ui.wait_versions(page, versions_after)


def test_zoo_train_int8_prune_export_two_mcus(studio, new_page, shot, tmp_path):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "lenet5", name="Digits journey")
    acc = _train_on_digits(page, epochs=12, versions_after=2)
    assert acc >= 0.90, acc
    shot(page, "trained")

    _compress(page, "quantize-int8", 3)
    _compress(page, "prune-channels", 4)
    assert "(prune-channels)" in ui.caption(page)
    shot(page, "pruned")

    # History says what each step did, in words, with its accuracy.
    ui.go(page, "History")
    ui.wait_idle(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    # (the version table is drawn on a canvas; the picked version's details are text)
    assert "channels pruned to 50 % of the MACs" in body and "digits" in body, body[:2000]
    assert not ui.tracebacks(page)
    shot(page, "history")

    ui.go(page, "Export")
    download = export(page, "nrf52840", 4)  # jobs #1-#3: train, int8, prune
    name, files = fetch(page, download, tmp_path)
    assert name == "tinystudio_digits_journey_nrf52840.zip"
    top = "tinystudio_digits_journey/"
    readme = files[top + "README.md"].decode()
    assert top + "mcu/nrf52840.ld" in files and top + "mcu/startup_nrf52840.c" in files
    # The firmware developer's questions: how to prepare the input, which output is which class.
    assert re.search(r"scale", readme, re.I) and re.search(r"zero.point", readme, re.I), readme[:1500]
    assert "digits" in readme

    download = export(page, "esp32s3", 5, expect_verify=("host", "none"))
    name, files = fetch(page, download, tmp_path)
    assert name == "tinystudio_digits_journey_esp32s3.zip"
    assert top + "esp-idf/main/main.c" in files
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "export")


def test_blank_canvas_cnn_trained(studio, new_page, shot):
    page = new_page(studio.url)
    ui.new_session_tab(page, "Blank canvas")
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Create blank session"))
    form.get_by_role("textbox", name="Session name").fill("drawn digits CNN")
    form.get_by_role("textbox", name=re.compile("^Input shape")).fill("1,1,8,8")  # digits: 8x8 grey images
    form.get_by_role("button", name="Create blank session").click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)
    ui.wait_versions(page, 1)

    frame = ui.canvas(page)
    frame.locator(NODE.format("input:input")).wait_for()
    for label in ["Conv 2D", "ReLU", "Flatten", "Dense (fully connected)"]:
        frame.locator(".ts-pal-item", has_text=re.compile("^" + re.escape(label))).first.click()
    frame.locator(NODE.format("dense_1")).wait_for()
    _status(frame, "valid")
    _edit(frame, "dense_1", "out features", "10")  # ten digit classes
    _status(frame, "valid")
    ui.save_version(page, frame, 2)
    shot(page, "drawn")

    acc = _train_on_digits(page, epochs=10, versions_after=3)
    assert acc >= 0.80, acc  # conv 3x3 + dense on 8x8 digits; LeNet-5 reaches ~96 %
    page.get_by_text(re.compile(r"is trained \(trained in TinyStudio\)")).first.wait_for()
    shot(page, "drawn-trained")
