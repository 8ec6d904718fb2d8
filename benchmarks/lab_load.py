"""A lab under load, on loopback only: N students (default 30), each in their own browser context at the same
time, log in, open Labs and submit two versions of their model; the server grades every submission in the
background. Prints page response times (p50/p95 per step), whether any submission was lost, and whether the
grading queue kept one running job per student (no student's gradings overlap) and served them in turn.

    PYTHONPATH=. .venv/bin/python benchmarks/lab_load.py [--students 30] [--timeout 900]

Bounded: every browser wait has a timeout, the whole run stops after --timeout seconds, the server listens
on 127.0.0.1 and its database lives in a temporary folder. Grading uses a small challenge (LeNet-5 on digits,
120 test samples, no C export) so that the queue, not the grader, is what is measured.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.studio import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, StudioServer  # noqa: E402

LAB = """title = "Load lab"
dataset = "digits"
start = "zoo:lenet5"
mcu = "stm32g0b1re"
accuracy_target = 0.05
export = false
[scoring]
method = "accuracy-if-fits"
[grading]
test_samples = 120
"""
PASSWORD = "student-password"


def setup(db_path: Path, students: int) -> int:
    """Accounts, a course, the challenge and each student's session with two versions (before the server
    starts: DuckDB lets one process hold the file)."""
    import store as db
    from app import labs
    from engine.data import load_dataset
    from engine.train import adapt_zoo
    from store.users import add_user, create_course, enroll

    data = load_dataset("digits")
    with db.open_store(str(db_path)) as s:
        teacher = add_user(s, "teacher", "instructor", "teacher-password")
        course = create_course(s, teacher, "Load")
        c = labs.publish_text(s, LAB, {}, user=teacher, course_id=course)
        for i in range(students):
            u = add_user(s, f"s{i:02d}", "student", PASSWORD)
            enroll(s, teacher, course, u.name)
            sess = db.create_session(s, f"model of {u.name}", adapt_zoo("zoo:lenet5", data, seed=i), user=u)
            db.add_version(s, sess.id, adapt_zoo("zoo:lenet5", data, seed=100 + i), "edit", user=u)
        return c.id


async def student(browser, url: str, name: str, times: dict, errors: list, submitted: list) -> None:
    ctx = await browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(240_000)
    page = await ctx.new_page()
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    try:
        t0 = time.perf_counter()
        await page.goto(url)
        await page.get_by_role("button", name="Log in").wait_for()
        times["open"].append(time.perf_counter() - t0)
        await page.get_by_label("User name").fill(name)
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        t0 = time.perf_counter()
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_text(f"Logged in as {name}").wait_for()
        times["login"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]', has_text="Labs").click()
        await page.get_by_role("heading", name="Labs", exact=True).wait_for()
        await page.get_by_role("tab", name="Submit").wait_for()
        times["labs"].append(time.perf_counter() - t0)
        await page.get_by_role("tab", name="Submit").click()
        made = []
        for n in (1, 2):  # the newest version, then the first one
            if n == 2:
                box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Version", exact=True)).first
                await box.click()
                await page.get_by_role("option").filter(has_text="v1").first.click()
                await page.get_by_role("button", name="Submit v1 for grading").wait_for()
            t0 = time.perf_counter()
            await page.get_by_role("button", name=f"Submit v{3 - n} for grading").click()
            # The confirmation of this click: a submission number not seen before
            other = "".join(rf"(?!{m}\b)" for m in made)
            done = page.get_by_text(re.compile(rf"Submission #{other}\d+ is queued for grading"))
            await done.wait_for()
            times["submit"].append(time.perf_counter() - t0)
            made.append(re.search(r"#(\d+)", await done.inner_text()).group(1))
        submitted.extend(made)
    except Exception as e:  # noqa: BLE001 - a failed student is reported, the others go on
        errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def wait_graded(browser, url: str, expected: int, deadline: float) -> float:
    """Poll the instructor's query box until every submission is graded; returns when (perf_counter)."""
    ctx = await browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(120_000)
    page = await ctx.new_page()
    await page.goto(url)
    await page.get_by_label("User name").fill("teacher")
    await page.get_by_label("Password", exact=True).fill("teacher-password")
    await page.get_by_role("button", name="Log in").click()
    await page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]', has_text="Instructor").click()
    await page.get_by_role("tab", name="Query results").click()
    await page.get_by_role("textbox", name="Query", exact=True).fill("SELECT 'done=' || count(*) AS n FROM submissions "
                                          "WHERE status IN ('graded', 'not graded')")
    try:
        while time.perf_counter() < deadline:
            await page.get_by_role("button", name="Run query").click()
            await page.wait_for_timeout(3000)
            text = await page.content()
            if f"done={expected}<" in text:
                return time.perf_counter()
        return float("nan")
    finally:
        await ctx.close()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def overlaps(intervals: list[tuple]) -> int:
    intervals = sorted(intervals)
    return sum(1 for a, b in zip(intervals, intervals[1:]) if b[0] < a[1])


def queue_figures(db_path: Path, cid: int) -> tuple[list, dict]:
    """The submissions of the run and what the stored grading times say about the queue."""
    import store as db
    from store.challenges import list_submissions
    from store.clock import parse_iso

    with db.open_store(str(db_path)) as s:
        subs = list_submissions(s, cid)
    spans = {x.id: (parse_iso(x.started), parse_iso(x.graded)) for x in subs if x.started and x.graded}
    by_user: dict = {}
    for x in subs:
        if x.id in spans:
            by_user.setdefault(x.user_id, []).append(spans[x.id])
    firsts: dict = {}
    for x in subs:
        firsts.setdefault(x.user_id, x)
    seconds = [x for x in subs if firsts[x.user_id].id != x.id and x.id in spans]
    # Unfair: a student's second grading finished before another student's first, submitted earlier, began.
    jumped = sum(1 for x in seconds for f in firsts.values()
                 if f.id in spans and f.user_id != x.user_id and f.created < x.created and spans[f.id][0] > spans[x.id][1])
    grade_s = sorted((b - a).total_seconds() for a, b in spans.values())
    return subs, {"overlapping": sum(overlaps(iv) > 0 for iv in by_user.values()), "jumped": jumped,
                  "grading_p50": pct(grade_s, 0.5), "grading_p95": pct(grade_s, 0.95)}


def print_queue(q: dict) -> None:
    print(f"  one grading (job start to stored grade) p50 {q['grading_p50']:.2f} s, p95 {q['grading_p95']:.2f} s")
    print(f"  students whose gradings overlapped: {q['overlapping']} (one running per student: must be 0); "
          f"a student's second grading done before an earlier-submitted first began: {q['jumped']} (in turn: 0)")


async def main_async(args) -> int:
    from playwright.async_api import async_playwright

    tmp = Path(tempfile.mkdtemp(prefix="tinystudio-lab-load-"))
    cid = setup(tmp / "lab.duckdb", args.students)
    server = StudioServer(tmp / "lab.duckdb", tmp / "studio.log").start()
    times = {"open": [], "login": [], "labs": [], "submit": []}
    errors: list[str] = []
    submitted: list[str] = []  # submission ids the pages confirmed
    stop_at = time.perf_counter() + args.timeout
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            t_start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(student(browser, server.url, f"s{i:02d}", times, errors, submitted)
                                                    for i in range(args.students))),
                                   timeout=max(1.0, stop_at - time.perf_counter()))
            t_submitted = time.perf_counter()
            t_graded = await wait_graded(browser, server.url, len(submitted), stop_at)
            await browser.close()
    finally:
        server.stop()
    subs, q = queue_figures(tmp / "lab.duckdb", cid)
    print(f"students {args.students} (one browser context each), submissions confirmed {len(submitted)}, "
          f"stored {len(subs)}, graded {sum(x.status == 'graded' for x in subs)}, "
          f"not graded {sum(x.status == 'not graded' for x in subs)}, still queued "
          f"{sum(x.status in ('queued', 'grading') for x in subs)}")
    for step, xs in times.items():
        print(f"  {step:<7} n={len(xs):>3}  p50 {pct(xs, 0.5):6.2f} s  p95 {pct(xs, 0.95):6.2f} s  max "
              f"{max(xs) if xs else float('nan'):6.2f} s")
    print(f"  all submitted after {t_submitted - t_start:.1f} s; all graded after {t_graded - t_start:.1f} s")
    print_queue(q)
    stored = {str(x.id) for x in subs}
    lost = len(set(submitted) - stored)
    print(f"  lost submissions (confirmed on a page, not in the store): {lost}; browser errors: {len(errors)}")
    for e in errors[:5]:
        print(f"    {e}")
    return 0 if lost == 0 and len(submitted) == 2 * args.students and not errors and q["overlapping"] == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--timeout", type=float, default=900.0, help="stop the whole run after this many seconds")
    p.add_argument("--analyze", nargs=2, metavar=("DB", "CHALLENGE"),
                   help="only print the queue figures of a finished run's database")
    args = p.parse_args()
    if args.analyze:
        subs, q = queue_figures(Path(args.analyze[0]), int(args.analyze[1]))
        print(f"submissions {len(subs)}, graded {sum(x.status == 'graded' for x in subs)}")
        print_queue(q)
        return 0
    if not 1 <= args.students <= 60:
        p.error("--students: 1 to 60")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
