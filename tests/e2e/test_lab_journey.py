"""A teaching lab in a real browser: the instructor publishes a challenge (a TOML file); two students log in,
start from its model, train it briefly and submit; grading runs in the background; the leaderboard and the
grades CSV agree with the store; student B cannot reach A's submission, another course's challenge, or the
instructor's dashboard by URL; an expired deadline refuses a submission in one line.
Screenshots: test-artifacts/e2e/lab_journey-*.png."""
from __future__ import annotations

import re

import pytest

from app import lab_results, labs
from store import open_store
from store.challenges import list_submissions
from store.users import add_user, create_course, enroll
from tests.e2e import studio as ui
from tests.e2e.login import login, login_all, open_tab, open_tabs

PW = {"teacher": "teacher-password", "alice": "alice-password", "bob": "bob-password"}
LAB = """title = "Digits in 8 ms"
instructions = "Train **LeNet-5** on digits and make it answer within 8 ms."
dataset = "digits"
start = "zoo:lenet5"
mcu = "stm32g0b1re"
accuracy_target = 0.3
counts = "best"
export = false
[limits]
latency_ms = 20.0
[scoring]
method = "accuracy-if-fits"
[grading]
test_samples = 120
"""


def _setup(db_path) -> dict:
    """Accounts and courses, an expired challenge and another course's challenge, written before the server
    starts (DuckDB lets one process hold the file)."""
    with open_store(str(db_path)) as s:
        users = {n: add_user(s, n, "instructor" if n == "teacher" else "student", pw) for n, pw in PW.items()}
        course = create_course(s, users["teacher"], "TinyML")
        for n in ("alice", "bob"):
            enroll(s, users["teacher"], course, n)
        other = create_course(s, users["teacher"], "Another course")
        closed = LAB.replace('title = "Digits in 8 ms"', 'title = "Closed lab"\ndeadline = 2020-01-01T00:00:00Z')
        expired = labs.publish_text(s, closed, {}, user=users["teacher"], course_id=course)
        hidden = labs.publish_text(s, LAB.replace("Digits in 8 ms", "Secret other course"), {},
                                   user=users["teacher"], course_id=other)
        return {"expired": expired.id, "other": hidden.id, "course": course}


def _login(page, name: str) -> None:
    login(page, name, PW[name])


def _start_and_train(page) -> None:
    """Labs > Challenge: a session from the starting model; Train: 3 epochs on digits in the background."""
    ui.go(page, "Labs")
    page.get_by_role("button", name="Start a session from the starting model").click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)
    ui.go(page, "Train")
    ui.wait_idle(page)  # an open dropdown closes when a still-running script redraws it
    ui.select_option(page, "Dataset", "digits")
    ui.wait_idle(page)
    page.get_by_test_id("stForm").get_by_role("spinbutton", name="Epochs").fill("3")
    page.get_by_role("button", name="Train in the background").click()


def _submit(page) -> int:
    """Labs > Submit the newest version; returns the submission's id."""
    ui.wait_job_result(page, page.get_by_text("Last training: made version"))
    ui.go(page, "Labs")
    page.get_by_role("tab", name="Submit").click()
    page.get_by_role("button", name=re.compile(r"^Submit v2 for grading")).click()
    done = page.get_by_text(re.compile(r"Submission #\d+ is queued for grading"))
    done.wait_for(timeout=60_000)
    return int(re.search(r"#(\d+)", done.inner_text()).group(1))


@pytest.mark.studio_db.with_args(_setup)
def test_lab_journey(studio, browser, shot, tmp_path):
    try:
        _journey(studio, browser, shot, tmp_path)
    except BaseException:
        for ctx in browser.contexts:  # what each browser showed when it failed
            for i, page in enumerate(ctx.pages):
                shot(page, f"failed-{browser.contexts.index(ctx)}-{i}")
        raise


def _journey(studio, browser, shot, tmp_path):
    ids = studio.prepared
    problems: list[str] = []

    # The instructor publishes the challenge from a TOML file.
    tctx, teacher = open_tab(browser, studio.url, problems)
    _login(teacher, "teacher")
    ui.go(teacher, "Instructor")
    ui.select_option(teacher, "Course", "TinyML")
    (tmp_path / "digits.toml").write_text(LAB)
    teacher.get_by_test_id("stFileUploader").filter(has_text="Challenge file").locator(
        'input[type="file"]').set_input_files(str(tmp_path / "digits.toml"))
    teacher.get_by_role("button", name="Publish the file").click()
    published = teacher.get_by_text(re.compile(r"Published challenge #\d+: Digits in 8 ms"))
    published.wait_for(timeout=60_000)
    cid = int(re.search(r"#(\d+)", published.inner_text()).group(1))
    shot(teacher, "published")

    # Two students log in, start from the model and train it (both at once), then submit.
    actx, alice = open_tab(browser, studio.url, problems)
    _login(alice, "alice")
    bctx, bob = open_tab(browser, studio.url, problems)
    _login(bob, "bob")
    for page in (alice, bob):
        _start_and_train(page)
    subs = {"alice": _submit(alice), "bob": _submit(bob)}
    for page, name in ((alice, "alice"), (bob, "bob")):
        page.get_by_role("tab", name="My submissions").click()
        page.get_by_text(re.compile(rf"Submission #{subs[name]}: (passed|not passed), score")).wait_for(
            timeout=120_000)
        assert not ui.tracebacks(page)
    shot(bob, "bob-graded")
    # Bob's history lists his submission only
    mine = ui.table(ui.dataframe(bob, "submission"))
    assert [r["submission"] for r in mine] == [str(subs["bob"])], mine
    bob.get_by_role("tab", name="Leaderboard").click()
    board = ui.table(ui.dataframe(bob, "rank"))
    assert sorted(r["student"] for r in board) == ["alice", "you (bob)"], board
    shot(bob, "leaderboard")

    # Bob tries A's submission, another course's challenge, the instructor's page and A's session by URL.
    probes = ((f"/labs?challenge={cid}&submission={subs['alice']}", f"no submission with id {subs['alice']}"),
              (f"/labs?challenge={ids['other']}", f"The link names challenge {ids['other']}, which does not exist."),
              ("/instructor", "This page is for instructors."))
    tabs = open_tabs(browser, [studio.url + path for path, _ in probes], problems)  # loading at once
    login_all([page for _, page in tabs], "bob", PW["bob"])
    for (path, expect), (ctx, page) in zip(probes, tabs):
        page.get_by_text(expect).first.wait_for(timeout=60_000)
        ui.wait_idle(page)
        html = page.content()
        assert "Secret other course" not in html and "Download grades" not in html, path
        assert ui.tracebacks(page) == [], path
        ctx.close()

    # An expired deadline refuses a submission in one line.
    ui.go(bob, "Labs")
    ui.select_option(bob, "Challenge", f"#{ids['expired']} Closed lab")
    ui.wait_idle(bob)
    bob.get_by_role("tab", name="Submit").click()
    bob.get_by_role("button", name=re.compile(r"^Submit v2 for grading")).click()
    bob.get_by_text(re.compile(rf'challenge {ids["expired"]} "Closed lab": the deadline \(2020-01-01T00:00:00'
                               r"\.000000Z\) has passed; submissions are closed")).wait_for(timeout=30_000)
    shot(bob, "deadline")

    # The instructor's dashboard: both students, and the grades CSV.
    ui.go(teacher, "Sessions")
    ui.go(teacher, "Instructor")  # a fresh run of the page: the dashboard as it is now
    teacher.get_by_role("tab", name="Dashboard").click()
    ui.select_option(teacher, "Challenge", f"#{cid} Digits in 8 ms")
    ui.dataframe(teacher, "student").locator("td", has_text="bob").first.wait_for(state="attached", timeout=60_000)
    ui.wait_idle(teacher)
    with teacher.expect_download() as download:
        teacher.get_by_role("button", name="Download grades (CSV)").click()
    csv_text = open(download.value.path(), encoding="utf-8").read()
    shot(teacher, "dashboard")
    # The read-only query box over the results
    teacher.get_by_role("tab", name="Query results").click()
    teacher.get_by_role("textbox", name="Query", exact=True).fill(
        "SELECT student, count(*) AS n_submissions FROM submissions GROUP BY student ORDER BY student")
    teacher.get_by_role("button", name="Run query").click()
    result = ui.dataframe(teacher, "student")
    result.locator("td", has_text="bob").first.wait_for(state="attached", timeout=60_000)
    assert [(r["student"], r["n_submissions"]) for r in ui.table(result)] == [("alice", "1"), ("bob", "1")]
    teacher.get_by_role("textbox", name="Query", exact=True).fill("DROP TABLE grades")
    teacher.get_by_role("button", name="Run query").click()
    teacher.get_by_text("query: give one SELECT statement (the results are read-only)").wait_for(timeout=60_000)
    shot(teacher, "query")
    for ctx in (tctx, actx, bctx):
        ctx.close()
    assert problems == [], problems[:3]

    studio.stop()
    with open_store(str(studio.db_path)) as s:
        subs_stored = list_submissions(s, cid)
        assert sorted(x.id for x in subs_stored) == sorted(subs.values())
        assert all(x.status == "graded" for x in subs_stored), [(x.status, x.error) for x in subs_stored]
        assert list_submissions(s, ids["expired"]) == []
        assert csv_text == lab_results.grades_csv(s, cid)
        by_id = {x.id: x for x in subs_stored}
        rows = {line.split(",")[0]: line.split(",") for line in csv_text.splitlines()[1:]}
        assert sorted(rows) == ["alice", "bob"]
        for name in ("alice", "bob"):
            assert rows[name][2] == str(subs[name]) and float(rows[name][3]) == by_id[subs[name]].score
