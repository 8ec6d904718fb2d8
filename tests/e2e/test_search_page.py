"""Search page, with the UI alone: a session -> Search -> DS-CNN family on digits for an nRF52840, 2 trials of TPE
with the random baseline beside, 1 epoch each, run in the background on worker processes -> live progress and
the Pareto plot -> counts when done -> click another point: its architecture and profile -> accept it as a new
version, whose History row names the study and trial -> after a restart the study is still there (History and
Search). Bad input (an empty study name, impossible limits) gives one line, never a traceback."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.e2e import studio as ui

SHOTS = Path("/tmp")


def _shot(page, shot, name: str) -> None:
    shot(page, name)
    shutil.copy(ui.REPO / "test-artifacts" / "e2e" / f"search_page-{name}.png", SHOTS / f"searchui_{name}.png")


def _caption(page, text: str):
    return page.get_by_test_id("stCaptionContainer").filter(has_text=text).first


def _form(page):
    return page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Start the search"))


def _fill(page, label: str, value: str) -> None:
    box = _form(page).get_by_role("spinbutton", name=label)
    box.fill(value)
    box.press("Tab")


def test_search_page(studio, new_page, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "lenet5", name="srch")
    ui.go(page, "Search")
    ui.select_option(page, "Space", "dscnn")
    ui.wait_idle(page)
    ui.select_option(page, "Dataset", "digits")
    ui.wait_idle(page)

    # Bad input first: an empty name is one line on the page, nothing starts.
    form = _form(page)
    form.get_by_role("textbox", name="Study name").fill("")
    form.get_by_role("button", name="Start the search").click()
    page.get_by_text("Study name is empty").first.wait_for()
    assert not ui.tracebacks(page)
    # Impossible limits: the study stops before any training, with one line saying why.
    form.get_by_role("textbox", name="Study name").fill("too-small")
    _fill(page, "Max SRAM (KB)", "0.01")
    _fill(page, "Trials", "2")
    _fill(page, "Epochs per candidate", "1")
    form.get_by_role("button", name="Start the search").click()
    page.get_by_text(re.compile(r"Study 'too-small' failed: .*(fit|SRAM|sram)")).first.wait_for(timeout=180_000)
    assert not ui.tracebacks(page)
    _shot(page, shot, "impossible")

    form.get_by_role("textbox", name="Study name").fill("kws-tiny")
    _fill(page, "Max SRAM (KB)", "0")
    _fill(page, "Trials", "2")
    _fill(page, "Epochs per candidate", "1")
    _fill(page, "Workers", "2")
    form.get_by_role("button", name="Start the search").click()
    # While it runs: progress, and the plot as trials come back.
    page.get_by_text(re.compile(r"search #\d+ · study 'kws-tiny'")).first.wait_for(timeout=60_000)
    page.locator(".gtitle", has_text="Accuracy against latency").first.wait_for(timeout=300_000)
    _shot(page, shot, "running")
    # Done: 2 TPE + 2 random trials, every one accounted for.
    _caption(page, "Study kws-tiny: done").wait_for(timeout=300_000)
    ui.wait_idle(page)
    m = ui.metrics(page)
    assert m["trials done"] == "4 / 4", m
    assert int(m["trained"]) + int(m["pruned"]) + int(m["failed"]) == 4 and int(m["trained"]) >= 1, m
    assert m["best accuracy"].endswith("%"), m
    assert not ui.tracebacks(page)
    _shot(page, shot, "done")

    # Without a click the details show the best point; a click on another point shows that one (the baseline
    # may have drawn the very same candidates as TPE's random start: then either strategy's point is picked).
    heading = re.compile(r"^(tpe|random) trial (\d+) \((trained|pruned|failed)\)")
    first = page.get_by_role("heading", name=heading).first
    first.wait_for(timeout=60_000)
    default = first.inner_text()
    assert default.startswith("tpe trial"), default
    plot = page.locator(".js-plotly-plot").filter(has=page.locator(".gtitle", has_text="Accuracy against latency"))
    picked = default
    for trace in (2, 0):  # random, then tpe (tpe front is trace 1)
        for point in plot.locator(".scatterlayer .trace").nth(trace).locator(".points path").all():
            point.click(force=True)
            ui.wait_idle(page)
            picked = page.get_by_role("heading", name=heading).first.inner_text()
            if picked != default:
                break
        if picked != default:
            break
    assert picked != default, "no click changed the point shown"
    strategy, number = heading.match(picked).group(1), int(heading.match(picked).group(2))
    page.get_by_text("Architecture").first.wait_for()
    picked_accuracy = ui.metrics(page)["accuracy"]
    _shot(page, shot, "picked")
    assert "(trained)" in picked  # only trained candidates are points on the plot
    page.get_by_role("button", name=f"Accept {strategy} trial {number} as a new version").click()
    ui.wait_versions(page, 2)
    assert "(search)" in ui.caption(page)

    ui.go(page, "History")
    versions = ui.table(ui.dataframe(page, "version"))
    made = versions[-1]
    assert made["action"] == "search", versions
    assert made["what changed"].startswith(f"from search study 'kws-tiny', {strategy} trial {number}"), made
    assert made["accuracy"] == f"{picked_accuracy} (builtin:digits)", (made, picked_accuracy)
    assert made["accuracy"].endswith("(builtin:digits)"), made  # trained, with the accuracy the trial measured
    rows = ui.table(ui.dataframe(page, "study"))
    assert {r["study"]: r["status"] for r in rows} == {"kws-tiny": "done", "too-small": "failed"}, rows
    _shot(page, shot, "history")

    # After a restart the study, its trials and its plot are still there.
    studio.restart()
    page = new_page(studio.url)
    ui.open_session(page, "srch")
    ui.go(page, "Search")
    _caption(page, "Study kws-tiny: done").wait_for(timeout=60_000)
    page.locator(".gtitle", has_text="Accuracy against latency").first.wait_for(timeout=60_000)
    assert ui.metrics(page)["trials done"] == "4 / 4"
    assert not ui.tracebacks(page) and not ui.errors_shown(page)
