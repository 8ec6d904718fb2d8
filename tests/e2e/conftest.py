"""Fixtures of the browser tests: a studio server per test (free port, its own database, restartable), one
Chromium per test process (pytest-xdist worker), browser pages that fail the test on a JavaScript error, and
screenshots into test-artifacts/e2e/ (git-ignored) for a person to look at."""
from __future__ import annotations

import pytest

from tests.e2e.studio import CHROMIUM, REPO, VIEWPORT, StudioServer, launch_chromium, shoot

ARTIFACTS = REPO / "test-artifacts" / "e2e"

NO_CHROMIUM = "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"


def pytest_configure(config):
    # Used as @pytest.mark.studio_db.with_args(fn): a bare studio_db(fn) would decorate fn itself.
    config.addinivalue_line("markers", "studio_db: with_args(fn): fn(db_path) writes the studio's database before "
                                       "its first start (one server start instead of a start, stop, write and "
                                       "start); its return value is studio.prepared")


@pytest.fixture
def studio(tmp_path, request):
    """A running studio over tmp_path/studio.duckdb; .restart() keeps the database, .stop() releases it."""
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    server = StudioServer(tmp_path / "studio.duckdb", tmp_path / "studio.log")
    marker = request.node.get_closest_marker("studio_db")
    server.prepared = marker.args[0](server.db_path) if marker else None
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if getattr(request.node, "rep_call_failed", False):
            print(f"---- the studio's log ({server.log_path}):\n{server.log_tail()}")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser, request):
    """new_page(url) -> a page in a fresh browser context (its own Streamlit session) at url. JavaScript
    errors on any of them fail the test; the contexts close with the test."""
    contexts, problems = [], []

    def make(url: str):
        ctx = browser.new_context(viewport=VIEWPORT)
        ctx.set_default_timeout(30_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url)
        page.get_by_role("heading", name="Sessions", exact=True).wait_for(timeout=60_000)
        return page

    yield make
    failed = getattr(request.node, "rep_call_failed", False)
    for n, ctx in enumerate(contexts):
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for i, p in enumerate(ctx.pages):
                p.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failed-{n}-{i}.png"), full_page=True)
        ctx.close()
    assert problems == [], f"JavaScript errors in the page: {problems[:3]}"


@pytest.fixture
def shot(request):
    """shot(page, name) saves test-artifacts/e2e/<test>-<name>.png (full page, after the page settles)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.name.removeprefix("test_")
    return lambda page, name: shoot(page, ARTIFACTS / f"{prefix}-{name}.png")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Remember a failed test body, so new_page can keep a screenshot of what the browser showed.
    rep = yield
    if rep.when == "call" and rep.failed:
        item.rep_call_failed = True
    return rep
