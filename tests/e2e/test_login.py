"""A lab server in a real browser: no page before a login, a wrong password and the rate limit refused in one
line, logout; student B, logged in, cannot open student A's session, version or job by URL on any page; A's
instructor sees it (read only) and resets A's password, which logs out A's open tab.
Screenshots: test-artifacts/e2e/login-*.png."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from store import add_export, add_version, create_job, create_session, open_store
from store.users import MAX_FAILURES, add_user, create_course, enroll
from tests.e2e import studio as ui
from tests.e2e.login import login, login_all, open_tab, open_tabs, try_login
from tests.store.graphs import mlp

PW = {"ada": "ada-password", "bob": "bob-password", "cy": "cy-password", "prof": "prof-password"}


def _lab(db_path) -> dict:
    """Accounts, a course with Ada, and Ada's session (two versions, a job, an export), written before the
    server starts (DuckDB lets one process hold the file)."""
    with open_store(str(db_path)) as s:
        users = {n: add_user(s, n, "instructor" if n == "prof" else "student", pw) for n, pw in PW.items()}
        enroll(s, users["prof"], create_course(s, users["prof"], "TinyML"), "ada")
        sess = create_session(s, "Ada secret lab", mlp(), model="ada-model", user=users["ada"])
        v2 = add_version(s, sess.id, mlp((16, 8, 4), seed=3), "edit", user=users["ada"])
        job = create_job(s, sess.id, "train", user=users["ada"])
        add_export(s, v2.id, "nrf52840", {"ok": True}, bundle=b"PK ada's bundle", user=users["ada"])
        return {"session": sess.id, "version": v2.id, "job": job.id}


def _login(page, name: str, password: str | None = None) -> None:
    login(page, name, password or PW[name])


@pytest.mark.studio_db.with_args(_lab)
def test_login(studio, browser, shot):
    ids = studio.prepared
    problems: list[str] = []
    ctx, page = open_tab(browser, studio.url, problems)

    # No page before a login: only the form (no sidebar links, no session list).
    assert page.get_by_role("heading", name="Sessions", exact=True).count() == 0
    assert page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]').count() == 0
    shot(page, "form")

    wrong = "wrong user name or password (4 more tries before a 60 s wait)"
    try_login(page, "ada", "not her password", wrong)
    assert ui.errors_shown(page) == [wrong]
    assert page.get_by_label("Password", exact=True).input_value() == ""  # the field is cleared on submit
    _login(page, "ada")
    page.get_by_role("heading", name="Sessions", exact=True).wait_for()
    page.get_by_text("Ada secret lab").first.wait_for(state="attached")  # a cell of the sessions grid
    shot(page, "ada-sessions")
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for(timeout=60_000)
    assert "Ada secret" not in page.content()

    # The rate limit: after MAX_FAILURES wrong passwords even the right one is refused, with the wait.
    for left in range(MAX_FAILURES - 1, 0, -1):
        try_login(page, "cy", "guess-guess", f"({left} more tr")
    try_login(page, "cy", "guess-guess", re.compile("^wrong user name or password; too many failed logins"))
    try_login(page, "cy", PW["cy"], re.compile("^too many failed logins for 'cy'"))
    (refusal,) = ui.errors_shown(page)
    assert refusal.startswith("too many failed logins for 'cy': try again in ") and refusal.endswith(" s"), refusal
    shot(page, "rate-limited")
    ctx.close()

    # Bob pastes links to Ada's session, versions and job, and logs in: none of it is shown.
    sid, vid, jid = ids["session"], ids["version"], ids["job"]
    paths = [f"/?session={sid}", f"/design?session={sid}", f"/profile?session={sid}&version=2",
             f"/history?session={sid}&version=1", f"/export?session={sid}&version=2",
             f"/model_view?session={sid}&job={jid}", f"/compress?session={sid}&version={vid}",
             f"/train?session={sid}", f"/search?session={sid}&job={jid}"]
    for group in (paths[:3], paths[3:6], paths[6:]):  # three tabs at a time: their waits overlap
        tabs = open_tabs(browser, [studio.url + path for path in group], problems)
        login_all([page for _, page in tabs], "bob", PW["bob"])
        for path, (ctx, page) in zip(group, tabs):
            page.get_by_text(f"The link names session {sid}, which does not exist").wait_for(timeout=60_000)
            ui.wait_idle(page)
            html = page.content()  # hidden grid cells included
            assert "Ada secret" not in html and "ada-model" not in html, path
            assert ui.tracebacks(page) == [], path
            assert parse_qs(urlparse(page.url).query).get("session") is None, page.url  # the link is dropped
            if path.startswith("/export"):
                shot(page, "bob-export-link")
                assert page.get_by_role("button", name="Download").count() == 0
            ctx.close()
    ctx, page = open_tab(browser, studio.url, problems)
    _login(page, "bob")
    page.get_by_role("heading", name="Sessions", exact=True).wait_for()
    ui.wait_idle(page)
    assert "Ada secret" not in page.content()
    shot(page, "bob-sessions")
    ctx.close()

    # Ada's instructor opens the same link and sees her session (read).
    ctx, page = open_tab(browser, studio.url + f"/history?session={sid}&version=1", problems)
    _login(page, "prof")
    page.get_by_role("heading", name="History", exact=True).wait_for(timeout=60_000)
    assert "Session Ada secret lab" in ui.caption(page)
    page.get_by_text("Read only: this session belongs to ada").wait_for()
    shot(page, "prof-history")
    page.get_by_role("button", name="Restore as the current version").click()  # a change: refused in one line
    page.get_by_text("an instructor can look at it, not change it").wait_for()
    assert ui.tracebacks(page) == [] and "2 versions" in ui.caption(page)

    # ... and resets her password from the sidebar, while Ada is logged in in another tab: that tab is logged
    # out at its next page load; her old password no longer works, the new one does.
    actx, ada = open_tab(browser, studio.url, problems)
    _login(ada, "ada")
    page.get_by_role("button", name="Password", exact=True).click()
    form = page.get_by_test_id("stForm").filter(has_text="Reset a student's password")
    form.get_by_label("New password", exact=True).fill("ada-new-password")
    form.get_by_label("New password again", exact=True).fill("ada-new-password")
    form.get_by_role("button", name="Reset the password").click()
    page.get_by_text("The password of ada is reset").wait_for()
    shot(page, "prof-reset")
    page.keyboard.press("Escape")  # close the popover
    ada.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]', has_text="History").first.click()
    ada.get_by_text("Your password was changed or your account removed: log in again.").wait_for(timeout=60_000)
    ada.get_by_role("button", name="Log in").wait_for()
    ui.wait_idle(ada)
    assert "Ada secret" not in ada.content() and "Logged in as" not in ada.content()
    shot(ada, "ada-logged-out-by-reset")
    try_login(ada, "ada", PW["ada"], "wrong user name or password")
    _login(ada, "ada", "ada-new-password")
    actx.close()

    # ... and adds a student to the course while the studio runs; the made-up password is shown once.
    page.get_by_role("button", name="Students", exact=True).click()
    form = page.get_by_test_id("stForm").filter(has_text="Add a student")
    form.get_by_label("User name").fill("dan")
    form.get_by_role("button", name="Add the student").click()
    page.get_by_text("Added dan to TinyML").wait_for()
    dan_password = page.get_by_test_id("stCode").last.inner_text().strip()
    assert len(dan_password) >= 16
    shot(page, "prof-add-student")
    ctx.close()
    ctx, page = open_tab(browser, studio.url, problems)
    _login(page, "dan", dan_password)
    assert "Ada secret" not in page.content()
    # Dan changes the made-up password to his own; the next login takes only the new one.
    page.get_by_role("button", name="Password", exact=True).click()
    form = page.get_by_test_id("stForm").filter(has_text="Change my password")
    form.get_by_label("Current password").fill(dan_password)
    form.get_by_label("New password", exact=True).fill("dans-own-password")
    form.get_by_label("New password again", exact=True).fill("dans-own-password")
    form.get_by_role("button", name="Change my password").click()
    page.get_by_text("Your password is changed.").wait_for()
    ctx.close()
    ctx, page = open_tab(browser, studio.url, problems)
    try_login(page, "dan", dan_password, "wrong user name or password")  # a fresh tab: the only answer
    _login(page, "dan", "dans-own-password")
    ctx.close()
    assert problems == [], problems[:3]
