"""Logging in to a lab server in a browser, for the e2e tests (one copy of the steps).

    ctx, page = open_tab(browser, studio.url + "/labs", problems)   # a fresh tab at the login form
    login(page, "ada", "ada-password")                              # until "Logged in as ada"
    tabs = open_tabs(browser, [url1, url2], problems)               # several tabs loading at once ...
    login_all([page for _, page in tabs], "bob", "bob-password")    # ... and logging in at once
    try_login(page, "ada", "wrong", "wrong user name or password")  # until the expected answer
"""
from __future__ import annotations

from tests.e2e import studio as ui


def open_tab(browser, url: str, problems: list):
    """A new browser context (its own Streamlit session, so its own login) at `url`, waiting for the login
    form; JavaScript errors go to `problems`."""
    return open_tabs(browser, [url], problems)[0]


def open_tabs(browser, urls: list[str], problems: list) -> list:
    """open_tab for each url, all loading at once (the waits overlap instead of adding up)."""
    tabs = []
    for url in urls:
        ctx = browser.new_context(viewport=ui.VIEWPORT)
        ctx.set_default_timeout(30_000)
        page = ctx.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url, wait_until="commit")
        tabs.append((ctx, page))
    for _, page in tabs:
        page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    return tabs


def _submit(page, name: str, password: str) -> None:
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def try_login(page, name: str, password: str, expect) -> None:
    """Submit the login form and wait for `expect` (text or pattern), then for the end of that script run (so
    what the page shows next is the whole run's). Each answer differs from the one before (the tries left are
    counted down), so a slow rerun cannot be mistaken for this one's."""
    _submit(page, name, password)
    page.get_by_text(expect).first.wait_for(timeout=60_000)
    ui.wait_idle(page)


def login_all(pages: list, name: str, password: str) -> None:
    """login on each page, the logins submitted at once."""
    for page in pages:
        _submit(page, name, password)
    for page in pages:
        page.get_by_text(f"Logged in as {name}").first.wait_for(timeout=60_000)
        ui.wait_idle(page)


def login(page, name: str, password: str) -> None:
    try_login(page, name, password, f"Logged in as {name}")
