"""Logging in to a lab server in a browser, for the e2e tests (one copy of the steps).

    ctx, page = open_tab(browser, studio.url + "/labs", problems)   # a fresh tab at the login form
    login(page, "ada", "ada-password")                              # until "Logged in as ada"
    try_login(page, "ada", "wrong", "wrong user name or password")  # until the expected answer
"""
from __future__ import annotations

from tests.e2e import studio as ui


def open_tab(browser, url: str, problems: list):
    """A new browser context (its own Streamlit session, so its own login) at `url`, waiting for the login
    form; JavaScript errors go to `problems`."""
    ctx = browser.new_context(viewport=ui.VIEWPORT)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    return ctx, page


def try_login(page, name: str, password: str, expect) -> None:
    """Submit the login form and wait for `expect` (text or pattern), then for the end of that script run (so
    what the page shows next is the whole run's). Each answer differs from the one before (the tries left are
    counted down), so a slow rerun cannot be mistaken for this one's."""
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(expect).first.wait_for(timeout=60_000)
    ui.wait_idle(page)


def login(page, name: str, password: str) -> None:
    try_login(page, name, password, f"Logged in as {name}")
