"""Model view: Netron served by the Streamlit server itself, offline, no telemetry, no blocking dialog.

The unit tests check what we serve (the rewritten index.html, our bootstrap, the built folder); the browser test runs
a real Streamlit server and Debian's Chromium and checks that ONNX and TFLite graphs render and that no request
leaves localhost.
"""
from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.netron_view import NetronMissingError, component_dir, netron_package_dir, netron_view, outside_urls, \
    render_index
from app.netron_view.assets import BOOTSTRAP_NAME, BOOTSTRAP_SOURCE, CSP, netron_version

REPO = Path(__file__).resolve().parents[2]
KWS_TFLITE = REPO.parent / "shared" / "data" / "mlperf-tiny" / "kws_ref_model.tflite"
CHROMIUM = Path("/usr/bin/chromium")


# ---------------------------------------------------------------- what we serve

def test_netron_package_has_the_web_files():
    folder = netron_package_dir()
    for name in ("index.html", "browser.js", "view.js", "base.js", "onnx.js", "tflite.js", "grapher.css"):
        assert (folder / name).is_file(), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", netron_version((folder / "index.html").read_text(encoding="utf-8")))


def test_index_is_rewritten_to_our_bootstrap_csp_and_no_outside_links():
    original = (netron_package_dir() / "index.html").read_text(encoding="utf-8")
    assert outside_urls(original), "Netron's page links to github.com; the rewrite below must remove that"
    html = render_index(original)
    assert outside_urls(html) == []
    assert f'<script type="module" src="{BOOTSTRAP_NAME}"></script>' in html
    assert 'src="index.js"' not in html
    csp = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp == [CSP]
    # The browser-enforced guarantee: scripts, connections and everything else from the serving origin only.
    policy = dict((d.split()[0], d.split()[1:]) for d in CSP.split("; "))
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "data:", "blob:"]
    assert all("http" not in src for sources in policy.values() for src in sources)
    # Netron's host reads the version and the element ids it needs from this page.
    for needed in ('<meta name="version"', 'id="message-text"', 'id="message-button"', 'id="logo-github"'):
        assert needed in html, needed


def test_index_of_another_shape_is_refused():
    with pytest.raises(NetronMissingError, match="changed shape"):
        render_index("<html><head><script src=\"index.js\"></script></head></html>")


def test_bootstrap_disables_telemetry_dialogs_and_outside_requests():
    js = BOOTSTRAP_SOURCE.read_text(encoding="utf-8")
    assert outside_urls(js) == []
    browser_js = (netron_package_dir() / "browser.js").read_text(encoding="utf-8")
    # Netron's browser host runs the update nag, consent dialog (after an ipinfo.io lookup) and Google Analytics in
    # view(), and reports through exception()/event(); if a Netron release moves them, this test must be revisited.
    view_body = browser_js[browser_js.index("    async view(view) {"):browser_js.index("    async start() {")]
    for part in ("await age();", "await consent();", "await telemetry();", "https://ipinfo.io/json"):
        assert part in view_body, part
    host = js[js.index("class StreamlitHost extends browser.Host"):]
    for method in ("async view(view) {", "async start() {", "exception(", "event(", "openURL(url) {",
                   "async execute(name) {"):
        assert method in host, method
    overridden_view = host[host.index("async view(view) {"):host.index("async start() {")]
    code = [line.strip() for line in overridden_view.splitlines() if line.strip() and not line.strip().startswith("//")]
    assert code == ["async view(view) {", "this._view = view;", "}"], code
    # Second fence behind the CSP, and Streamlit's component protocol.
    for part in ("XMLHttpRequest.prototype.open", "window.fetch =", "'sendBeacon'", "streamlit:componentReady",
                 "streamlit:render", "streamlit:setFrameHeight", "streamlit:setComponentValue"):
        assert part in js, part


def test_component_dir_holds_netron_and_our_files(tmp_path):
    folder = component_dir(cache_root=tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith(netron_version((folder / "index.html").read_text()))
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", BOOTSTRAP_NAME, "browser.js", "view.js", "onnx.js", "tflite.js", "worker.js"} <= names
    assert not names & {"index.js", "server.py", "__init__.py", "__pycache__"}
    assert (folder / BOOTSTRAP_NAME).read_bytes() == BOOTSTRAP_SOURCE.read_bytes()
    served_html = (folder / "index.html").read_text(encoding="utf-8")
    assert outside_urls(served_html) == [] and BOOTSTRAP_NAME in served_html
    src = netron_package_dir()
    assert (folder / "onnx.js").read_bytes() == (src / "onnx.js").read_bytes()
    # Built once: a second call reuses the folder and leaves no staging folders behind.
    stamp = (folder / "index.html").stat().st_mtime_ns
    assert component_dir(cache_root=tmp_path) == folder
    assert (folder / "index.html").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_component_dir_copies_when_hard_links_fail(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("app.netron_view.assets.os.link", no_link)
    folder = component_dir(cache_root=tmp_path)
    copied, original = folder / "view.js", netron_package_dir() / "view.js"
    assert copied.read_bytes() == original.read_bytes() and copied.stat().st_ino != original.stat().st_ino


def test_concurrent_builds_agree(tmp_path):
    # Several servers starting at once each build in a staging folder; one rename wins, the others reuse it.
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: component_dir(cache_root=tmp_path), range(4)))
    assert len(set(folders)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [folders[0].name]
    assert (folders[0] / "index.html").is_file() and (folders[0] / "tflite.js").is_file()


def test_netron_view_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-empty bytes"):
        netron_view(b"", "m.onnx")
    with pytest.raises(ValueError, match="non-empty bytes"):
        netron_view("not bytes", "m.onnx")
    with pytest.raises(ValueError, match="filename"):
        netron_view(b"\x08\x07", " ")
    with pytest.raises(ValueError, match="height"):
        netron_view(b"\x08\x07", "m.onnx", height=0)


# ---------------------------------------------------------------- in a real browser

SCRIPT = """
from pathlib import Path

import streamlit as st

from app.netron_view import netron_view
from engine.exporters.onnx_export import to_onnx
from engine.zoo import build_zoo_model


@st.cache_data
def lenet_onnx() -> bytes:
    return to_onnx(build_zoo_model("lenet5")).SerializeToString()


choice = st.radio("Model", ["ONNX: lenet5", "TFLite: KWS", "Broken file"])
model, name = {"ONNX: lenet5": (lenet_onnx(), "lenet5.onnx"),
               "TFLite: KWS": (Path(TFLITE_PATH).read_bytes(), "kws_ref_model.tflite"),
               "Broken file": (b"this is not a model", "broken.onnx")}[choice]
st.write(f"netron says: {netron_view(model, name, height=560, key='model')}")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def studio_server(tmp_path):
    """A Streamlit server on a free localhost port running SCRIPT; yields its base URL."""
    script = tmp_path / "netron_page.py"
    script.write_text(SCRIPT.replace("TFLITE_PATH", repr(str(KWS_TFLITE))), encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--global.developmentMode", "false"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("Streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
def test_netron_renders_onnx_and_tflite_offline_without_dialogs(studio_server):
    from playwright.sync_api import sync_playwright

    assert KWS_TFLITE.is_file(), f"missing test model {KWS_TFLITE}"
    requests: list[str] = []
    refused: list[str] = []
    dialogs: list[str] = []

    def only_localhost(route):
        # Anything for another host is refused, as if offline, and recorded: the page must not need it.
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1400})
            context.route("**/*", only_localhost)
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            # Three years after this Netron build, with no cookies: Netron's own browser host would now block on
            # "Please update to the newest version." and on its cookie-consent message.
            page.clock.set_fixed_time(dt.datetime(2029, 11, 1, tzinfo=dt.timezone.utc))
            page.goto(studio_server)

            frame = page.locator("iframe").first.content_frame
            artifacts = REPO / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            # lenet5 exported to ONNX, then the KWS TFLite file in the same frame, as a page switching versions does.
            steps = [("ONNX: lenet5", "1", ("Conv", "AveragePool", "Gemm", "Tanh"), "netron.png"),
                     ("TFLite: KWS", "2", ("Conv2D", "DepthwiseConv2D", "FullyConnected"), "netron-tflite.png")]
            for choice, opens, ops, shot in steps:
                page.get_by_text(choice).click()
                frame.locator(f"body[data-opens='{opens}'][data-tinystudio]:not([data-tinystudio='loading'])"
                              ).wait_for(timeout=60_000, state="attached")
                # Netron's graph screen, not its welcome page, message box or alert.
                assert frame.locator("body").get_attribute("data-tinystudio") == "ready", \
                    frame.locator("#message-text").inner_text()
                assert frame.locator("body").get_attribute("class") == "default"
                labels = frame.locator("svg text")
                texts = {labels.nth(i).text_content() for i in range(labels.count())}
                missing = [op for op in ops if op not in texts]
                assert not missing, f"{choice}: ops {missing} not drawn; labels: {sorted(texts)[:20]}"
                assert page.get_by_text("netron says: None").count() == 1
                page.screenshot(path=str(artifacts / shot), full_page=True)
            # A file Netron cannot read: its message shows in the frame without a button to press, and comes back
            # to Python as the component's value; the next model replaces it.
            page.get_by_text("Broken file").click()
            frame.locator("body[data-opens='3'][data-tinystudio='error']").wait_for(timeout=60_000, state="attached")
            assert frame.locator("body").get_attribute("class") == "alert"
            assert frame.locator("#message-text").is_visible()
            assert not frame.locator("#message-button").is_visible()
            reported = page.get_by_text(re.compile(r"netron says: (?!None)"))
            reported.wait_for(timeout=20_000)
            assert frame.locator("#message-text").inner_text() in reported.inner_text()
            page.screenshot(path=str(artifacts / "netron-error.png"), full_page=True)
            page.get_by_text("ONNX: lenet5").click()
            frame.locator("body[data-opens='4'][data-tinystudio='ready']").wait_for(timeout=60_000, state="attached")
            page.get_by_text("netron says: None").wait_for(timeout=20_000)
        finally:
            browser.close()

    assert dialogs == []
    assert refused == [], f"requests to other hosts: {refused[:5]}"
    outside = [u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", "localhost")
               and not u.startswith(("data:", "blob:"))]
    assert outside == [], outside[:5]
    served = [u for u in requests if "/component/" in u]
    assert any(u.endswith("/index.html") or "/index.html?" in u for u in served), "Netron's page was not loaded"
    assert any("/onnx.js" in u for u in served) and any("/tflite.js" in u for u in served)
