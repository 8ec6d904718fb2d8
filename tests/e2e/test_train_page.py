"""Train page, with the UI alone: a zoo LeNet-5 session -> Train -> digits (the zoo model is rebuilt for 8x8
inputs) -> train in the background with live curves -> accuracy >= 90 % shown -> a new version exists and is
trained -> Try it shows a prediction with the true class; an uploaded data set is kept with the session."""
from __future__ import annotations

import io
import re

import numpy as np

from engine.data import load_dataset
from tests.e2e import studio as ui

DIGITS = load_dataset("digits")  # the split the studio's Data panel makes (seed 0)


def _choose(page, label: str, text: str) -> None:
    """Like ui.select_option, typing the text first: the option list only draws the options in view."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True)).first
    box.click()
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(text))).first.click()
    ui.wait_idle(page)


def _accuracy(page) -> float:
    m = ui.metrics(page)
    return float(m["validation accuracy"].rstrip("%")) / 100


def test_train_zoo_lenet_on_digits_then_try_it(studio, new_page, shot, tmp_path):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "lenet5", name="lenet")
    ui.go(page, "Train")
    page.get_by_text("untrained").first.wait_for()
    ui.select_option(page, "Dataset", "digits")
    page.get_by_text("rebuilt for this data set").first.wait_for(timeout=60_000)
    form = page.get_by_test_id("stForm")
    form.get_by_role("spinbutton", name="Epochs").fill("12")
    page.get_by_role("button", name="Train in the background").click()
    # While it runs: progress and the curves drawn so far.
    page.get_by_text(re.compile(r"train #\d+: epoch")).first.wait_for(timeout=120_000)
    page.locator(".gtitle", has_text="Training curves").first.wait_for(timeout=60_000)
    shot(page, "training-live")
    ui.wait_job_result(page, page.get_by_text("Last training: made version"))
    assert not ui.tracebacks(page)
    ui.wait_versions(page, 2)
    assert _accuracy(page) >= 0.90
    assert "(train)" in ui.caption(page)
    page.get_by_text(re.compile(r"is trained \(trained in TinyStudio\)")).first.wait_for()
    # The curves, the confusion matrix and per-class accuracy are drawn.
    for title in ("Training curves", "Confusion matrix (validation split)", "Accuracy per class (validation split)"):
        page.locator(".gtitle", has_text=title).first.wait_for(timeout=30_000)
    shot(page, "trained")

    # Try it: validation sample 3 through the trained (float) version.
    page.get_by_role("spinbutton", name=re.compile(r"^Validation sample")).fill("3")
    page.get_by_role("spinbutton", name=re.compile(r"^Validation sample")).press("Enter")
    ui.wait_idle(page)
    page.get_by_test_id("stMetric").filter(has_text="true class").filter(
        has_text=str(int(DIGITS.y_val[3]))).first.wait_for()
    m = ui.metrics(page)
    assert m["float prediction"] in [str(i) for i in range(10)]
    assert m["true class"] == str(int(DIGITS.y_val[3]))
    page.locator(".gtitle", has_text="Class scores").first.wait_for()
    page.get_by_role("button", name="Random sample").click()
    ui.wait_idle(page)
    assert not ui.tracebacks(page) and not ui.errors_shown(page)
    shot(page, "try-it")

    # Quantize the trained version to int8 on Compress: its accuracy is measured (the digits data are NCHW float,
    # the int8 version takes NHWC int8), then prune its channels: nothing is blocked.
    ui.go(page, "Compress")
    ui.wait_idle(page)
    _choose(page, "Dataset", "digits")
    _choose(page, "Action", "quantize-int8")
    ui.wait_idle(page)
    assert page.get_by_text("is untrained").count() == 0
    page.get_by_role("button", name="Run in the background").click()
    ui.wait_job_result(page, page.get_by_role("button", name="Accept as a new version"))
    page.get_by_role("button", name="Accept as a new version").click()
    ui.wait_versions(page, 3)
    ui.wait_idle(page)
    _choose(page, "Action", "prune-channels")
    ui.wait_idle(page)
    assert page.get_by_text("accuracy cannot be measured").count() == 0
    page.get_by_role("button", name="Predict the effect (no fine-tuning)").click()
    page.get_by_text("Predicted effect (before fine-tuning)").wait_for(timeout=120_000)
    rows = ui.table(ui.dataframe(page, "figure"))
    acc = next(r for r in rows if r["figure"] == "Accuracy")
    assert float(acc["now"].rstrip(" %")) > 90, rows  # shown as a percentage, not a fraction
    assert not ui.tracebacks(page) and not ui.errors_shown(page)
    shot(page, "compress-int8-prune")

    # Try it on the int8 version: the float form and the int8 kernels side by side.
    ui.go(page, "Train")
    page.get_by_text("Version v3 is trained (quantize-int8 of a trained version)").first.wait_for()
    m = ui.metrics(page)
    assert m["float prediction"] in [str(i) for i in range(10)] and m["int8 prediction"] in [str(i) for i in range(10)]
    shot(page, "try-it-int8")

    # History shows the new version made by "train".
    ui.go(page, "History")
    page.get_by_text("train").first.wait_for()


def test_uploaded_dataset_is_kept_with_the_session(studio, new_page, shot, tmp_path):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "sensor_cnn1d", name="sensor")
    ui.go(page, "Train")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3, 128)).astype(np.float32)
    y = np.arange(60) % 3
    x[y == 1] += 1.0
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    path = tmp_path / "wobble.npz"
    path.write_bytes(buf.getvalue())
    page.get_by_text("upload a file").click()
    ui.wait_idle(page)
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(path))
    page.get_by_text("upload:wobble.npz").first.wait_for(timeout=60_000)
    # After a restart of the studio (a new browser session), the upload is offered again with the session.
    studio.restart()
    page = new_page(studio.url)
    ui.open_session(page, "sensor")
    ui.go(page, "Train")
    page.get_by_text("uploaded to this session").click()
    page.get_by_text("upload:wobble.npz").first.wait_for(timeout=60_000)
    assert not ui.tracebacks(page)
    # Train on it: the zoo model is rebuilt for 3 classes, the new version records the upload as its data.
    page.get_by_text("rebuilt for this data set").first.wait_for(timeout=60_000)
    # A long run can be cancelled: no version is saved.
    epochs = page.get_by_test_id("stForm").get_by_role("spinbutton", name="Epochs")
    epochs.fill("500")
    page.get_by_role("button", name="Train in the background").click()
    page.get_by_role("button", name="Cancel", exact=True).click(timeout=120_000)
    page.get_by_text("was cancelled; no version was saved").first.wait_for(timeout=120_000)
    assert "· 1 version" in ui.caption(page)
    epochs.fill("2")
    page.get_by_role("button", name="Train in the background").click()
    ui.wait_job_result(page, page.get_by_text("Last training: made version"))
    ui.wait_versions(page, 2)
    assert ui.metrics(page)["data set"] == "wobble"
    shot(page, "uploaded")
    ui.go(page, "Compress")
    page.get_by_text("uploaded to this session").click()
    page.get_by_text("upload:wobble.npz").first.wait_for(timeout=60_000)
    assert not ui.tracebacks(page)
