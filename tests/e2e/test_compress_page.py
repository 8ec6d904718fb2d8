"""Compress page: pick the matching built-in dataset, run an action in the background, compare before and
after, accept it as a new version (History then shows two versions)."""
from __future__ import annotations

from tests.e2e import studio as ui


def test_compress_accept_new_version(studio, new_page, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "sensor_cnn1d", name="sensor")
    ui.go(page, "Compress")
    ui.select_option(page, "Dataset", "synthetic-sensor")
    page.get_by_text("3x128, 6 classes").first.wait_for(timeout=60_000)
    ui.select_option(page, "Action", "prune-magnitude")
    ui.wait_idle(page)
    page.get_by_text("sparsity", exact=True).wait_for(timeout=60_000)  # the action's own form is shown
    # The zoo model is untrained: the page says so and asks before running an action that needs trained weights.
    page.get_by_text("is untrained").first.wait_for()
    page.get_by_text("Run on the untrained model anyway").first.click()
    page.get_by_role("button", name="Predict the effect (no fine-tuning)").click()
    page.get_by_text("Predicted effect (before fine-tuning)").wait_for(timeout=120_000)
    assert not ui.tracebacks(page)
    page.get_by_role("button", name="Run in the background").click()
    page.get_by_text("compress #").first.wait_for(timeout=120_000)
    ui.wait_job_result(page, page.get_by_role("button", name="Accept as a new version"))
    assert not ui.tracebacks(page)
    for side in ("before", "after"):  # the Profile page's fit cards, as deployed, for the chosen MCUs
        card = page.locator(f".st-key-fit_{side}_card_stm32f746ng")
        assert "RAM" in card.inner_text() and "Flash" in card.inner_text()
    shot(page, "compress")
    page.get_by_role("button", name="Accept as a new version").click()
    ui.wait_versions(page, 2)
    ui.go(page, "History")
    page.get_by_text("prune-magnitude").first.wait_for(timeout=30_000)
    shot(page, "history")
