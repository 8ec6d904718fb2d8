"""The place in the URL, in a real browser: reload, back/forward and a pasted link land on the same page, session
and version (and the Profile page's MCUs); an older version can be viewed by link; no request leaves the machine.
Also History in words (accuracy, latency and fit per version) and the uploaded TFLite file in the Model view.
Screenshots land in test-artifacts/e2e/ (navigation-*.png, history_in_words-*.png)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np

from app.widgets import DEFAULT_MCUS
from tests.e2e import studio as ui
from tests.engine.tflite_writer import TFLiteWriter

MCUS = ["esp32s3", "stm32f746ng"]  # sorted
ALL_PAGES = (*ui.PAGES, "Search", "Compress")  # ui.PAGES leaves Compress and Search out (their own tests open them)


def _query(page) -> dict:
    return parse_qs(urlparse(page.url).query)


def _settled(page, title: str) -> None:
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
    ui.wait_idle(page)


def _fit_mcus(page) -> list[str]:
    return sorted(r["MCU"] for r in ui.table(ui.dataframe(page, "MCU")))


def _fresh(browser, url: str, problems: list):
    """A page in a new browser context (its own Streamlit session, like a link pasted into another browser)."""
    ctx = browser.new_context(viewport=ui.VIEWPORT)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    return ctx, page


def test_navigation(studio, new_page, browser, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "kws_dscnn", name="Nav lab")
    frame = ui.canvas(page)
    ui.edit_field(frame, "conv1", "out channels", "32")
    frame.locator(".ts-status-ok", has_text="valid").wait_for()
    ui.save_version(page, frame, 2)
    assert _query(page)["version"] == ["2"] and _query(page)["session"] == ["1"], page.url
    ui.go(page, "Profile")
    ui.pick_mcus(page, MCUS)
    assert sorted(_query(page)["mcu"]) == MCUS, page.url

    # Every page: a reload lands on the same page, session, version and MCUs.
    for title in ALL_PAGES:
        ui.go(page, title)
        ui.wait_idle(page)
        path = urlparse(page.url).path
        page.reload()
        _settled(page, title)
        assert urlparse(page.url).path == path and sorted(_query(page)["mcu"]) == MCUS, (title, page.url)
        if title != "Sessions":
            assert re.match(r"Session Nav lab · model zoo:kws_dscnn · version v2 \(edit\) · 2 versions\s*$",
                            ui.caption(page)), (title, ui.caption(page))
        assert ui.tracebacks(page) == [], title
        if title == "Profile":
            assert _fit_mcus(page) == MCUS, "the MCU choice was lost on reload"

    # Back and forward: the previous page, one step each.
    ui.go(page, "History")
    ui.go(page, "Model view")
    page.go_back()
    _settled(page, "History")
    page.go_back()
    _settled(page, "Compress")
    page.go_forward()
    _settled(page, "History")
    assert "version v2" in ui.caption(page)

    # An older version by link: History's "View this version" puts v1 in the URL; pasted elsewhere, it shows v1.
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Version", exact=True)).first
    box.scroll_into_view_if_needed()
    box.locator("input").first.click()
    page.keyboard.type("v1")
    page.get_by_role("option").filter(has_text=re.compile(r"^\s*v1 ")).first.click()
    ui.wait_idle(page)
    page.get_by_role("button", name="View this version").click()
    page.get_by_test_id("stCaptionContainer").filter(has_text="version v1 (zoo)").first.wait_for()
    assert _query(page)["version"] == ["1"], page.url
    shot(page, "history-viewing-v1")
    ui.go(page, "Profile")
    assert ui.metrics(page)["MACs"] == "2.657 M"  # v1's figures, not v2's (2.205 M)
    link = page.url

    problems: list[str] = []
    ctx, other = _fresh(browser, link, problems)
    try:
        _settled(other, "Profile")
        assert "version v1 (zoo)" in ui.caption(other) and _fit_mcus(other) == MCUS
        assert ui.metrics(other)["MACs"] == "2.657 M"
        other.get_by_text("an older version", exact=False).first.wait_for()
        other.get_by_role("button", name="Show v2").click()
        other.get_by_test_id("stCaptionContainer").filter(has_text="version v2 (edit)").first.wait_for()
        assert _query(other)["version"] == ["2"]
        shot(other, "pasted-link")
        # A link to something that is not there says so in one line and keeps the page working.
        other.goto(f"{studio.url}/history?session=99")
        other.get_by_test_id("stAlertContentWarning").filter(has_text="session 99, which does not exist").wait_for()
        assert ui.tracebacks(other) == []
    finally:
        ctx.close()
    assert problems == []


def test_no_request_leaves_the_machine(studio, new_page):
    """Every request of a visit to every page (fonts, favicon, Netron's frame, the canvas) goes to the studio."""
    page = new_page(studio.url)
    requests: list[str] = []
    page.context.on("request", lambda r: requests.append(r.url))
    page.context.on("requestfailed", lambda r: requests.append(r.url))
    page.reload()
    _settled(page, "Sessions")
    ui.create_zoo_session(page, "lenet5", name="Offline")
    for title in ALL_PAGES:
        ui.go(page, title)
        ui.wait_idle(page)
        page.wait_for_timeout(500)
    page.frame_locator('iframe[title*="netron"]').first  # noqa: B018 - visited above; its requests are counted
    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname != "127.0.0.1"]
    assert len(requests) > 20 and outside == [], outside[:10]
    icon = page.evaluate("() => [...document.querySelectorAll('link[rel*=icon]')].map(l => l.href)")
    assert icon and all(urlparse(h).hostname == "127.0.0.1" for h in icon), icon


def _tiny_tflite() -> bytes:
    rng = np.random.default_rng(0)
    w = TFLiteWriter()
    x = w.tensor("input", (1, 8, 8, 1))
    c = w.tensor("conv/out", (1, 8, 8, 4))
    w.op("CONV_2D", [x, w.const("conv/w", rng.standard_normal((4, 3, 3, 1)).astype(np.float32)),
                     w.const("conv/b", np.zeros(4, np.float32))], [c],
         "Conv2DOptions", Padding=0, StrideW=1, StrideH=1, DilationWFactor=1, DilationHFactor=1,
         FusedActivationFunction=1)
    return w.finish([x], [c])


def _seed_history(db_path) -> None:
    """A LeNet-5 on digits: zoo (untrained) -> trained -> int8 PTQ -> a canvas edit, written with the engine
    and the store as the pages do."""
    import store as db
    from engine.compress import compress
    from engine.data import load_dataset
    from engine.train import adapt_zoo, train

    data = load_dataset("digits")
    g0 = adapt_zoo("zoo:lenet5", data, seed=0)
    store = db.open_store(str(db_path))
    try:
        s = db.create_session(store, "LeNet digits", g0, model="zoo:lenet5", action="zoo", params={"spec": g0.name})
        g1, rep = train(g0, data, epochs=8, lr=3e-3, batch_size=32, seed=0)
        used = {"source": data.name, "train": len(data.x_train), "val": len(data.x_val)}
        db.add_version(store, s.id, g1, "train", {"epochs": 8, "lr": 3e-3, "batch_size": 32,
                                                  "accuracy": rep.accuracy, "dataset": used})
        q = compress(g1, "quantize-int8", {"calibration_samples": 200}, data)
        db.add_version(store, s.id, q.graph, "quantize-int8", {**q.params, "accuracy": q.after["accuracy"],
                                                               "dataset": used})
    finally:
        store.close()


def test_history_in_words(studio, new_page, shot, tmp_path):
    studio.stop()
    _seed_history(studio.db_path)
    studio.start()
    page = new_page(studio.url)
    ui.open_session(page, "LeNet digits")
    ui.go(page, "History")
    rows = ui.table(ui.dataframe(page, "version"))
    assert [r["version"].strip() for r in rows] == ["v1", "└ v2", "└ v3 ●"], rows
    v1, v2, v3 = rows
    assert v1["accuracy"] == "untrained (random weights)" and v1["what changed"].startswith("from the zoo: zoo:lenet5")
    assert re.fullmatch(r"9\d\.\d\d % \(digits\)", v2["accuracy"]), v2
    assert v2["what changed"].startswith("trained, on digits, 8 epochs") and "new weight values" in v2["what changed"]
    assert v3["what changed"].startswith("int8 PTQ, 200 calibration samples"), v3
    assert re.fullmatch(r"9\d\.\d\d % \(digits\)", v3["accuracy"]), v3
    figures = ui.table(ui.dataframe(page, "figures of"))
    assert [r["figures of"] for r in figures] == ["v1", "v2", "v3 ●"], figures
    for mcu in DEFAULT_MCUS:
        assert all(re.fullmatch(r"[\d.,]+ m?s · (fits|no: .+)", r[mcu]) for r in figures), [r[mcu] for r in figures]
    assert figures[2]["Weights (B)"] == "16334" and figures[1]["Weights (B)"] == "62504", figures
    assert "weight_bytes" not in page.content()
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "history")

    # An uploaded TFLite file: kept as uploaded, shown in Netron beside the version.
    path = tmp_path / "tiny.tflite"
    path.write_bytes(_tiny_tflite())
    ui.new_session_tab(page, "Upload a model")
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.locator('input[type="file"]').set_input_files(str(path))
    uploader.get_by_test_id("stFileChip").filter(has_text=path.name).wait_for()
    ui.wait_idle(page)
    page.get_by_role("button", name="Create session from upload").click()
    _settled(page, "Design")
    ui.go(page, "Model view")
    page.get_by_text("Uploaded file (tiny.tflite)").click()
    ui.wait_idle(page)
    netron = page.frame_locator('iframe[title*="netron"]').first
    netron.locator("body[data-tinystudio='ready']").wait_for(state="attached", timeout=60_000)
    # Netron names the op as the file does: TFLite's "Conv2D" with a fused Relu (the ONNX version says "Conv").
    netron.get_by_text("Conv2D", exact=True).first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Download the uploaded file").wait_for()
    assert ui.tracebacks(page) == [] and ui.errors_shown(page) == []
    shot(page, "model_view-upload")
    ui.go(page, "Sessions")
    page.get_by_role("tab", name="All sessions").click()
    listed = {r["name"]: r["current"] for r in ui.table(ui.dataframe(page, "id"))}
    assert listed == {"LeNet digits": "v3", "tiny.tflite": "v1"}, listed
    shot(page, "sessions")
