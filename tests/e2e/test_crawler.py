"""Crawler: every page of the studio, for versions of every kind and MCUs of every core family, shows no Python
exception. The sessions are written with the store's own functions before the studio starts (what the pages do
through their forms is covered by the journey tests); the crawler then only follows the studio's own sidebar
links and its URLs (page path, ?session=&version=&mcu=), as a user who pastes links would."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.e2e import studio as ui

MLPERF = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlperf-tiny"
# One MCU per core family: Cortex-M7, M4, M0+, M3, M55, M33, Xtensa LX6 and LX7, RISC-V.
MCUS = ["stm32f746ng", "nrf52840", "rp2040", "stm32f103rb", "alif-e7-hp", "stm32u575zi", "esp32", "esp32s3",
        "esp32c3"]
TRACE = re.compile(r"Traceback \(most recent call last\)|Error: .*line \d+")


def _seed(db_path: Path) -> list[tuple[int, int]]:
    """Sessions of every kind; returns (session id, version count) pairs."""
    import store as db
    from engine.compress import compress
    from engine.data import load_dataset
    from engine.importers import load_model, load_model_bytes
    from engine.train import adapt_zoo, train
    from engine.zoo.blank import blank_graph

    store = db.open_store(str(db_path))
    made = []
    try:
        # A float zoo model, never trained.
        s = db.create_session(store, "kws float", load_model("zoo:kws_dscnn"), model="zoo:kws_dscnn",
                              action="zoo", params={"spec": "zoo:kws_dscnn"})
        made.append((s.id, 1))
        # A trained model, pruned, then int8: the chain a user builds.
        data = load_dataset("digits")
        g = adapt_zoo("zoo:lenet5", data)
        s = db.create_session(store, "lenet chain", g, model="zoo:lenet5", action="zoo",
                              params={"spec": "zoo:lenet5"})
        trained, rep = train(g, data, epochs=3, seed=0)
        db.add_version(store, s.id, trained, "train", {"dataset": {"source": "digits"}, "epochs": 3,
                                                         "accuracy": rep.accuracy})
        pruned = compress(trained, "prune-channels", {"keep": 0.5, "epochs": 1}, data=data)
        db.add_version(store, s.id, pruned.graph, "prune-channels", {"keep": 0.5})
        q = compress(pruned.graph, "quantize-int8", {}, data=data)
        db.add_version(store, s.id, q.graph, "quantize-int8", {})
        made.append((s.id, 4))
        # A blank canvas (input wired to output, no layers).
        s = db.create_session(store, "blank", blank_graph((1, 1, 28, 28)), model="blank", action="blank")
        made.append((s.id, 1))
        # An uploaded int8 TFLite file nobody here wrote, kept with the session.
        raw = (MLPERF / "kws_ref_model.tflite").read_bytes()
        s = db.create_session(store, "kws tflite", load_model_bytes(raw, "kws_ref_model.tflite"),
                              model="kws_ref_model.tflite", action="upload",
                              params={"upload": "kws_ref_model.tflite"}, upload=raw)
        made.append((s.id, 1))
    finally:
        store.close()
    return made


def _page_paths(page) -> list[str]:
    links = page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]')
    links.first.wait_for()
    paths = []
    for href in links.evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        path = re.sub(r"^https?://[^/]+", "", href).split("?")[0].strip("/")
        if path not in paths:
            paths.append(path)
    return paths


def _problems(page) -> list[str]:
    out = [e.inner_text()[:300] for e in page.get_by_test_id("stException").all()]
    body = page.locator('[data-testid="stMain"]').inner_text()
    if TRACE.search(body):
        out.append(TRACE.search(body).group(0))
    return out


@pytest.mark.skipif(not (MLPERF / "kws_ref_model.tflite").exists(), reason="shared/data/mlperf-tiny is missing")
def test_every_page_every_kind_no_exception(tmp_path, new_page, request):
    np.random.seed(0)
    db_path = tmp_path / "studio.duckdb"
    sessions = _seed(db_path)
    server = ui.StudioServer(db_path, tmp_path / "studio.log").start()
    try:
        page = new_page(server.url)
        paths = _page_paths(page)
        assert len(paths) >= 7, paths
        mcus = "&".join(f"mcu={m}" for m in MCUS)
        seen, problems = 0, []
        for sid, n_versions in sessions:
            for version in sorted({1, n_versions}):
                for path in paths:
                    page.goto(f"{server.url}/{path}?session={sid}&version={version}&{mcus}")
                    page.locator('[data-testid="stSidebar"]').wait_for()
                    ui.wait_idle(page, timeout=180_000)
                    found = _problems(page)
                    if found:
                        shot = ui.REPO / "test-artifacts" / "e2e" / f"crawler-{sid}-v{version}-{path or 'home'}.png"
                        shot.parent.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(shot), full_page=True)
                        problems.append(f"/{path} session {sid} v{version}: {found[0]}")
                    seen += 1
        assert problems == [], f"{len(problems)} of {seen} page views show an exception; first: {problems[:3]}"
    finally:
        server.stop()
        if getattr(request.node, "rep_call_failed", False):
            print(server.log_tail())
