"""Drive a real studio in a real browser: the server (`tinystudio studio` on a free port and its own database)
and the page actions the browser tests and benchmarks/studio_timings.py share.

    server = StudioServer(tmp / "studio.duckdb", tmp / "studio.log").start()
    browser = launch_chromium(playwright)          # Debian's /usr/bin/chromium, never a downloaded one
    page = browser.new_page(viewport=VIEWPORT); page.goto(server.url)
    create_zoo_session(page, "kws_dscnn"); go(page, "Profile"); pick_mcus(page, ["stm32f746ng", "nrf5340"])

The helpers navigate as a user does, by clicking the sidebar's links. A page's URL also names the place
(`/profile?session=1&version=2&mcu=esp32s3`): loading it in a fresh context lands there too (the navigation
tests do that on purpose), but a new context is a new browser session and starts without its widget state.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
PAGES = ("Sessions", "Design", "Profile", "Model view", "History", "Export")
CANVAS = 'iframe[title*="tinystudio_canvas"]'
# The rows of an st.dataframe: its grid is drawn on a canvas; this reads the accessible table it keeps beside it.
TABLE_JS = """(el) => {
  const head = [...el.querySelectorAll('thead th')].map(t => t.textContent);
  return [...el.querySelectorAll('tbody tr')].map(r =>
    Object.fromEntries([...r.querySelectorAll('td')].map((c, i) => [head[i], c.textContent])));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StudioServer:
    """`python -m app.cli studio` on a free localhost port over one database file; stop() and start() again
    to restart it on the same database (it gets a new port: read .url after start)."""

    def __init__(self, db_path: Path, log_path: Path):
        self.db_path, self.log_path = Path(db_path), Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "StudioServer":
        assert self.proc is None, "already running"
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = self.log_path.open("a")
        log.write(f"---- starting on port {self.port}\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "studio", "--port", str(self.port), "--db", str(self.db_path)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the studio did not start:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the server the way Ctrl+C does (SIGTERM), so the database is closed cleanly."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> "StudioServer":
        self.stop()
        return self.start()

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


def launch_chromium(playwright):
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


# ---------------------------------------------------------------- page actions

def wait_idle(page, timeout: float = 60_000) -> None:
    """Until the script run that the last action started has finished."""
    page.wait_for_timeout(150)  # let the rerun request reach the server and the state flip to running
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=timeout)


def wait_job_result(page, locator, timeout: float = 420_000) -> None:
    """Until `locator` (what a finished job shows: an Accept button, a message) is visible. An error that
    shows up meanwhile (a failed job) ends the wait at once with its text, and a timeout names what the page
    said last: a bare 'waiting for ... to be visible' tells nothing about a job that died or never finished."""
    before = set(errors_shown(page))  # e.g. an earlier job's "was cancelled" line
    deadline = time.monotonic() + timeout / 1000
    while time.monotonic() < deadline:
        try:
            locator.first.wait_for(timeout=2_000)
            return
        except PlaywrightTimeout:
            pass
        shown = [e for e in errors_shown(page) if e not in before] + tracebacks(page)
        if shown:
            raise AssertionError(f"the job failed: {shown}")
    panel = page.get_by_test_id("stMain").inner_text()[-1500:]
    raise AssertionError(f"no job result within {timeout / 1000:.0f} s; the page ends with: {panel!r}")


def go(page, title: str, timeout: float = 60_000) -> None:
    """Open a page from the sidebar and wait for its title."""
    page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=timeout)


def caption(page) -> str:
    """The session line under the title: 'Session NAME · model ... · version vN (action) · K versions'."""
    loc = page.get_by_test_id("stCaptionContainer").filter(has_text="Session ").first
    loc.wait_for()
    return loc.inner_text()


def wait_versions(page, n: int, timeout: float = 60_000) -> None:
    word = "version" if n == 1 else "versions"
    page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(rf"· {n} {word}\s*$")).first.wait_for(
        timeout=timeout)


def table(locator) -> list[dict]:
    """The rows of an st.dataframe as {column: text}."""
    locator.locator("tbody tr").first.wait_for(state="attached")
    return locator.evaluate(TABLE_JS)


def dataframe(page, first_column: str):
    """The st.dataframe whose first column is named `first_column`."""
    return page.get_by_test_id("stDataFrame").filter(
        has=page.locator(f'thead th[aria-colindex="1"]:text-is("{first_column}")')).first


def metrics(page) -> dict[str, str]:
    """The st.metric tiles as {label: value}, once the page's run has finished."""
    page.get_by_test_id("stMetric").first.wait_for(timeout=60_000)
    wait_idle(page)
    out = {}
    for m in page.get_by_test_id("stMetric").all():
        label = m.get_by_test_id("stMetricLabel").inner_text().strip()
        out[label] = m.get_by_test_id("stMetricValue").inner_text().strip()
    return out


def errors_shown(page) -> list[str]:
    """The text of every st.error on the page (without the icon's name)."""
    return [e.get_by_test_id("stMarkdownContainer").inner_text().strip()
            for e in page.get_by_test_id("stAlertContentError").all()]


def tracebacks(page) -> list[str]:
    return [e.inner_text()[:300] for e in page.get_by_test_id("stException").all()]


def select_option(page, label: str, text: str) -> None:
    """Choose the option of the st.selectbox labelled `label` whose text starts with `text`."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True)).first
    box.click()
    page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(text))).first.click()


def new_session_tab(page, tab: str) -> None:
    """Sessions > New session > `tab` ("From the zoo", "Upload a model", "Blank canvas")."""
    go(page, "Sessions")
    page.get_by_role("tab", name="New session").click()
    page.get_by_role("tab", name=tab).click()


def create_zoo_session(page, model: str = "kws_dscnn", name: str | None = None) -> None:
    """Sessions > New session > From the zoo: create `model` with its default parameters; lands on Design."""
    new_session_tab(page, "From the zoo")
    if model != "kws_dscnn":
        select_option(page, "Model", model)
        wait_idle(page)
    create = page.get_by_role("button", name="Create session", exact=True)
    if name:
        form = page.get_by_test_id("stForm").filter(has=create)
        form.get_by_role("textbox", name="Session name").fill(name)
    create.click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)
    wait_versions(page, 1)


def open_session(page, name: str) -> None:
    """Sessions > All sessions: select the row named `name` and open it (lands on Design)."""
    go(page, "Sessions")
    page.get_by_role("tab", name="All sessions").click()
    grid = dataframe(page, "id")
    grid.locator("td", has_text=re.compile("^" + re.escape(name) + "$")).first.wait_for(state="attached")
    rows = table(grid)
    index = next(i for i, r in enumerate(rows) if r["name"] == name)
    # A row is selected by clicking its row marker (the checkbox column at the left edge of the grid).
    box = grid.bounding_box()
    header = row = 35  # Streamlit's default header and row height in px
    page.mouse.click(box["x"] + 16, box["y"] + header + row * index + row / 2)
    page.get_by_role("heading", name=name, exact=True).wait_for()
    page.get_by_role("button", name="Open", exact=True).click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)


def pick_mcus(page, ids: list[str], timeout: float = 30_000) -> list[float]:
    """Profile page: replace the chosen MCUs by `ids`; returns, per MCU, the seconds from choosing it until
    the fit table shows it."""
    picker = page.get_by_test_id("stMultiSelect").filter(has_text="MCUs").first
    picker.wait_for()
    wait_idle(page)
    remove = picker.locator('button[aria-label^="Remove"]')
    while remove.count():
        remove.first.click()
        wait_idle(page)
    seconds = []
    for mcu in ids:
        picker.locator("input").click()
        page.keyboard.type(mcu)
        option = page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(mcu) + r"\b")).first
        option.click()
        t0 = time.perf_counter()
        page.wait_for_function(
            """(m) => [...document.querySelectorAll('[data-testid=stDataFrame] td[aria-colindex="1"]')]
                        .some(td => td.textContent === m)""", arg=mcu, timeout=timeout)
        seconds.append(time.perf_counter() - t0)
    page.keyboard.press("Escape")
    page.get_by_test_id("stCaptionContainer").first.click()  # close the option list
    wait_idle(page)
    return seconds


def canvas(page):
    """The Design page's canvas frame, once its first node is drawn."""
    frame = page.frame_locator(CANVAS).first
    frame.locator(".react-flow__node").first.wait_for(timeout=60_000)
    return frame


def edit_field(frame, node: str, field: str, value: str) -> None:
    """Select `node` on the canvas and type `value` into its side-panel field `field` (e.g. 'out channels')."""
    frame.locator(f'.react-flow__node[data-id="{node}"]').click()
    # A label reads "<field>[ *]<kind>", e.g. "out channelsint" ("*": required; the kind is a small tag).
    label = frame.locator(".ts-label", has_text=re.compile("^" + re.escape(field) + r"( \*)?[a-z]*$"))
    box = frame.locator(".ts-inspector .ts-field", has=label).locator("input").first
    box.fill(value)
    box.press("Enter")


def save_version(page, frame, versions_after: int) -> None:
    frame.locator("button", has_text="Save version").click()
    wait_versions(page, versions_after)


def shoot(page, path: Path) -> Path:
    """A full-page screenshot once the page has settled (charts and frames drawn)."""
    wait_idle(page)
    page.wait_for_timeout(400)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Streamlit scrolls its main column, not the document, so a "full page" shot would stop at the window:
    # grow the window to the column's height for the shot instead.
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid=stMain], [data-testid=stAppViewContainer]')].map(e => e.scrollHeight), 0)""")
    tall = min(max(int(height), size["height"]), 5000)
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": tall})
        page.wait_for_timeout(600)
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall > size["height"]:
            page.set_viewport_size(size)
    return path
