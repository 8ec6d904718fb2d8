"""Challenges, submissions and grades in the store, and app.labs over them: who sees what, deadlines, grading
in the background (reproducible; a crash marks the submission, never loses it), leaderboard, CSV, queries."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

import store as db
from app import lab_results, labs
from app.fair_queue import FairQueue
from store.challenges import (DeadlineError, ForbiddenError, add_submission, get_challenge, get_submission,
                              list_challenges, list_submissions, pending_submissions, set_hide_names,
                              submission_model)
from tests.store.graphs import mlp

# A small challenge: LeNet-5 on digits, no C export (the export check has its own tests), 60 test samples.
TOML = """title = "Digits on a small part"
instructions = "Fit **digits**."
dataset = "digits"
start = "zoo:lenet5"
mcu = "stm32g0b1re"
accuracy_target = 0.05
counts = "best"
export = false
[limits]
latency_ms = 50.0
[scoring]
method = "accuracy-if-fits"
[grading]
test_samples = 60
"""


@pytest.fixture
def store(tmp_path):
    s = db.open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


@pytest.fixture
def people(store):
    """An instructor and two students, all in one course."""
    from store.users import add_user, create_course, enroll

    teacher = add_user(store, "teacher", "instructor", "teacher-pass-1")
    a = add_user(store, "alice", "student", "alice-pass-1")
    b = add_user(store, "bob", "student", "bob-pass-12")
    course = create_course(store, teacher, "TinyML 101")
    enroll(store, teacher, course, "alice")
    enroll(store, teacher, course, "bob")
    return teacher, a, b, course


def lenet_graph():
    from engine.data import load_dataset
    from engine.train import adapt_zoo

    return adapt_zoo("zoo:lenet5", load_dataset("digits"), seed=0)


def session_of(store, user, graph=None):
    s = db.create_session(store, f"{user.name}'s model", graph or lenet_graph(), user=user)
    return db.current_version(store, s.id, user=user)


def test_publish_builtins_and_files(store, tmp_path, people):
    teacher, a, b, course = people
    for name, title in labs.builtin_labs():
        c = labs.publish(store, name, user=teacher, course_id=course)
        assert (c.title, c.source, c.owner_id, c.course_id) == (title, name, teacher.id, course)
    assert len(labs.builtin_labs()) == 4
    assert [c.title for c in list_challenges(store, user=a)] == [t for _, t in reversed(labs.builtin_labs())]
    with pytest.raises(ForbiddenError, match="only an instructor"):
        labs.publish(store, "builtin:prune", user=a)
    # A file with an uploaded data set and a hidden test split beside it
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(40, 6)).astype(np.float32), y=np.arange(40) % 2)
    np.savez(tmp_path / "test.npz", x=rng.normal(size=(10, 6)).astype(np.float32), y=np.arange(10) % 2)
    (tmp_path / "lab.toml").write_text('title = "Own data"\ndataset = "train.npz"\ntest_dataset = "test.npz"\n'
                                       'mcu = "stm32g0b1re"\nexport = false\naccuracy_target = 0.1\n')
    c = labs.publish(store, str(tmp_path / "lab.toml"), user=teacher, course_id=course)
    toml_text, files = db_package(store, c.id, a)
    assert set(files) == {"train.npz"}  # the hidden test split is never handed to a student
    with pytest.raises(ForbiddenError):
        db_package(store, c.id, a, hidden=True)
    _, files = db_package(store, c.id, teacher, hidden=True)
    assert files["test.npz"][1] is True and files["train.npz"][1] is False
    # Graded on the hidden split: all of its 10 samples, normalized as the training samples
    sub = labs.submit_version(store, c.id, session_of(store, a, mlp((6, 8, 2))).id, user=a)
    graded = labs.grade_submission(store, sub.id, runner=False)
    assert graded.status == "graded" and graded.result["split"] == {"name": "hidden test", "samples": 10}
    out = tmp_path / "exported" / "again.toml"
    out.parent.mkdir()
    written = labs.export_toml(store, c.id, str(out), user=teacher)
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["again.toml", "test.npz", "train.npz"]
    again = labs.publish(store, str(out), user=teacher)
    assert labs.load(store, again.id, user=teacher).to_json()["test_dataset"].endswith("test.npz")
    # A malformed file: one line naming the field; nothing stored
    (tmp_path / "bad.toml").write_text('title = "x"\ndataset = "digits"\nmcu = "stm32g0b1re"\n[limits]\nsram_bytes = "64k"\n')
    n = len(list_challenges(store))
    with pytest.raises(Exception, match=r'bad.toml: limits.sram_bytes: must be a positive integer, got "64k"'):
        labs.publish(store, str(tmp_path / "bad.toml"), user=teacher)
    assert len(list_challenges(store)) == n


def db_package(store, cid, user, hidden=False):
    from store.challenges import challenge_package

    return challenge_package(store, cid, user=user, hidden=hidden)


def test_visibility_between_students_and_courses(store, people):
    from store.users import add_user

    teacher, a, b, course = people
    other_teacher = add_user(store, "otto", "instructor", "otto-pass-123")
    c = labs.publish_text(store, TOML, {}, user=teacher, course_id=course)
    outsider = add_user(store, "eve", "student", "eve-pass-1234")
    assert list_challenges(store, user=outsider) == []  # not in the course
    with pytest.raises(db.NotFoundError, match=f"no challenge with id {c.id}"):
        get_challenge(store, c.id, user=outsider)
    with pytest.raises(db.NotFoundError):
        get_challenge(store, c.id, user=other_teacher)
    sa = labs.submit_version(store, c.id, session_of(store, a).id, user=a)
    vb = session_of(store, b)
    # bob cannot submit alice's version, nor see her submission, her model or her history
    with pytest.raises(db.NotFoundError):
        labs.submit_version(store, c.id, sa.version_id, user=b)
    for fn in (get_submission, submission_model):
        with pytest.raises(db.NotFoundError, match=f"no submission with id {sa.id}"):
            fn(store, sa.id, user=b)
    sb = labs.submit_version(store, c.id, vb.id, user=b)
    assert [s.id for s in list_submissions(store, c.id, user=b)] == [sb.id]
    assert [r["submission"] for r in lab_results.history(store, c.id, user=b)] == [sb.id]
    assert [s.id for s in list_submissions(store, c.id, user=teacher)] == [sa.id, sb.id]
    with pytest.raises(db.NotFoundError):
        list_submissions(store, c.id, user=other_teacher)
    with pytest.raises(ForbiddenError):
        set_hide_names(store, c.id, True, user=a)


def test_deadline_refuses_a_submission(store, people):
    teacher, a, _b, course = people
    past = TOML.replace('counts = "best"', 'counts = "best"\ndeadline = 2020-01-01T00:00:00Z')
    c = labs.publish_text(store, past, {}, user=teacher, course_id=course)
    v = session_of(store, a)
    with pytest.raises(DeadlineError) as e:
        labs.submit_version(store, c.id, v.id, user=a)
    assert str(e.value) == (f'challenge {c.id} "Digits on a small part": the deadline (2020-01-01T00:00:00.000000Z) '
                            "has passed; submissions are closed")
    assert list_submissions(store, c.id) == []
    closing = TOML.replace('counts = "best"', 'counts = "best"\ndeadline = 2020-01-01T00:00:00Z')
    c2 = labs.publish_text(store, closing, {}, user=teacher, course_id=course)
    ok = labs.submit_version(store, c2.id, v.id, user=a, now=dt.datetime(2019, 12, 31, 23, 59, tzinfo=dt.timezone.utc))
    assert ok.status == "queued"


def test_grading_is_reproducible_and_a_crash_is_kept(store, people):
    teacher, a, b, course = people
    c = labs.publish_text(store, TOML, {}, user=teacher, course_id=course)
    s = labs.submit_version(store, c.id, session_of(store, a).id, user=a)
    assert [p.id for p in pending_submissions(store)] == [s.id]
    first = labs.grade_submission(store, s.id, runner=False)
    assert first.status == "graded" and first.error is None
    names = [ch["name"] for ch in first.result["checks"]]
    assert names == ["sram", "flash", "latency", "accuracy"]
    acc = first.result["checks"][3]
    assert acc["limit"] == 0.05 and 0 <= acc["value"] <= 1 and first.result["split"]["samples"] == 60
    assert first.score == (acc["value"] if first.passed else 0.0)
    # The same submission graded again: the same result, check for check
    again = labs.grade_submission(store, s.id, runner=False)
    assert again.result == first.result and (again.score, again.passed) == (first.score, first.passed)
    # The grades table holds one row per check
    with store.transaction() as con:
        rows = con.execute("SELECT name, value, passed FROM grades WHERE submission_id = ? ORDER BY name",
                           [s.id]).fetchall()
    assert sorted(r[0] for r in rows) == sorted(names)
    # A grader crash (a worker that dies): kept, marked "not graded: why"
    s2 = labs.submit_version(store, c.id, session_of(store, b).id, user=b)

    def dying_worker(*args, **kwargs):
        raise RuntimeError("worker process died")

    crashed = labs.grade_submission(store, s2.id, runner=dying_worker)
    assert crashed.status == "not graded"
    assert crashed.error == "not graded: the grader failed (RuntimeError: worker process died)"
    # The instructor's "Grade again" queues it anew (a student cannot)
    from store.challenges import queue_again

    with pytest.raises(ForbiddenError):
        queue_again(store, s2.id, user=b)
    assert queue_again(store, s2.id, user=teacher).status == "queued"
    assert labs.grade_submission(store, s2.id, runner=False).status == "graded"
    # A model the grader cannot run (does not take the data set's samples): not graded, with why
    s3 = labs.submit_version(store, c.id, session_of(store, b, mlp()).id, user=b)
    bad = labs.grade_submission(store, s3.id, runner=False)
    assert bad.status == "not graded" and bad.error.startswith("not graded: ") and "mlp" not in bad.error[:12]
    # A model that does not fit: a verdict per limit, not an error
    tight = labs.publish_text(store, TOML.replace("latency_ms = 50.0", "latency_ms = 5.0\nsram_bytes = 1000"), {},
                              user=teacher, course_id=course)
    s4 = labs.submit_version(store, tight.id, session_of(store, a).id, user=a)
    verdict = labs.grade_submission(store, s4.id, runner=False)
    checks = {c["name"]: c for c in verdict.result["checks"]}
    assert verdict.status == "graded" and verdict.error is None and verdict.passed is False
    # the value is the RAM estimate of the model as deployed on the challenge's MCU, as `tinystudio profile` gives it
    from engine.profile import profile_graph
    from hwmodels.mcu import get_mcu
    from hwmodels.runtime import default_runtime
    mcu = get_mcu("stm32g0b1re")
    (est,) = profile_graph(lenet_graph(), [(mcu.id, default_runtime(mcu))], precision="int8").targets
    assert (checks["sram"]["value"], checks["sram"]["limit"], checks["sram"]["passed"]) == (est.ram_bytes, 1000, False)
    assert (checks["latency"]["limit"], checks["latency"]["passed"]) == (5.0, False)
    assert checks["accuracy"]["passed"] is True and verdict.score == 0.0  # accuracy counts only when it fits
    assert db.check_integrity(store, deep=False) == []


def test_leaderboard_csv_and_hidden_names(store, people):
    teacher, a, b, course = people
    c = labs.publish_text(store, TOML, {}, user=teacher, course_id=course)
    results = {"a1": 0.5, "a2": 0.8, "b1": 0.7}
    subs = {}
    for key, acc in results.items():
        who = a if key[0] == "a" else b
        s = add_submission(store, c.id, b"model", "h", key, user=who)
        subs[key] = s
        db_record(store, s.id, acc)
    board = lab_results.leaderboard(store, c.id, user=teacher)
    assert [(r["rank"], r["student"], r["score"], r["submission"], r["attempts"]) for r in board] == [
        (1, "alice", 0.8, subs["a2"].id, 2), (2, "bob", 0.7, subs["b1"].id, 1)]
    assert [r["student"] for r in lab_results.leaderboard(store, c.id, user=b)] == ["alice", "you (bob)"]
    # The studio hands a student's page the store bound to them: the leaderboard still ranks everyone
    assert lab_results.leaderboard(db.as_user(store, b), c.id) == lab_results.leaderboard(store, c.id, user=b)
    # and only the counted figures: no model, no session
    assert set(board[0]) == {"rank", "student", "score", "passed", "submission", "attempts", "submitted",
                             "accuracy"}
    set_hide_names(store, c.id, True, user=teacher)
    assert [r["student"] for r in lab_results.leaderboard(store, c.id, user=b)] == ["student 1", "you (bob)"]
    assert [r["student"] for r in lab_results.leaderboard(store, c.id, user=teacher)] == ["student 1", "student 2"]
    csv_text = lab_results.grades_csv(store, c.id, user=teacher)
    assert csv_text.splitlines() == ["student,attempts,counted_submission,score,passed,accuracy",
                                     f"alice,2,{subs['a2'].id},0.8,True,0.8", f"bob,1,{subs['b1'].id},0.7,True,0.7"]
    with pytest.raises(db.NotFoundError):
        lab_results.grades_csv(store, c.id + 99, user=teacher)


def db_record(store, sid, acc):
    from store.challenges import record_grade, start_grading

    start_grading(store, sid)
    record_grade(store, sid, {"passed": True, "score": acc, "checks": [
        {"name": "accuracy", "value": acc, "limit": 0.05, "passed": True, "detail": "test"}]})


def test_last_counts_when_the_challenge_says_so(store, people):
    teacher, a, _b, course = people
    c = labs.publish_text(store, TOML.replace('counts = "best"', 'counts = "last"'), {}, user=teacher,
                          course_id=course)
    for acc in (0.9, 0.4):
        db_record(store, add_submission(store, c.id, b"m", "h", "m", user=a).id, acc)
    assert [r["score"] for r in lab_results.leaderboard(store, c.id, user=teacher)] == [0.4]


def test_query_box_is_read_only_and_sees_only_its_results(store, people):
    from store.users import add_user

    teacher, a, _b, course = people
    c = labs.publish_text(store, TOML, {}, user=teacher, course_id=course)
    db_record(store, add_submission(store, c.id, b"m", "h", "m", user=a).id, 0.75)
    cols, rows, truncated = lab_results.query_results(
        store, "SELECT s.student, g.value FROM submissions s JOIN grades g ON g.submission_id = s.id", user=teacher)
    assert (cols, rows, truncated) == (["student", "value"], [("alice", 0.75)], False)
    other = add_user(store, "otto", "instructor", "otto-pass-123")
    assert lab_results.query_results(store, "SELECT count(*) FROM submissions", user=other)[1] == [(0,)]
    for bad in ("DROP TABLE grades", "SELECT 1; SELECT 2", "COPY grades TO '/tmp/x.csv'",
                "ATTACH 'other.duckdb'"):
        with pytest.raises(labs.LabError, match="one SELECT statement"):
            lab_results.query_results(store, bad, user=teacher)
    with pytest.raises(labs.LabError, match="query: .*(disabled|Permission)"):
        lab_results.query_results(store, "SELECT * FROM read_csv('/etc/passwd')", user=teacher)
    with pytest.raises(labs.LabError, match="query: .*(disabled|Permission|not allowed)"):
        lab_results.query_results(store, "SELECT * FROM duckdb_settings() WHERE 1 = (SELECT count(*) FROM "
                                  "read_text('/etc/hostname'))", user=teacher)
    with pytest.raises(labs.LabError, match="query: "):
        lab_results.query_results(store, "SELECT nosuchcolumn FROM grades", user=teacher)
    with pytest.raises(labs.LabError, match="query: .*([Mm]emory|MB)"):
        lab_results.query_results(store, "SELECT length(repeat('x', 2000000000)) AS n", user=teacher)
    with pytest.raises(labs.LabError, match="query: stopped after 5 s"):
        lab_results.query_results(store, "SELECT count(*) FROM range(1000000000000) a, range(1000) b", user=teacher)


def test_fair_queue_runs_one_task_per_owner_in_turn():
    q = FairQueue(slots=2)
    log, lock, running = [], threading.Lock(), {}
    peak = {"max_per_owner": 0, "max_total": 0}
    done = threading.Event()

    def task(owner, i):
        def run():
            with lock:
                running[owner] = running.get(owner, 0) + 1
                peak["max_per_owner"] = max(peak["max_per_owner"], running[owner])
                peak["max_total"] = max(peak["max_total"], sum(running.values()))
                log.append((owner, i))
            time.sleep(0.02)
            with lock:
                running[owner] -= 1
                if len(log) == 12:
                    done.set()
        return run

    for i in range(6):  # the greedy student submits six times first
        q.submit("greedy", task("greedy", i))
    for owner in ("x", "y", "z"):
        for i in range(2):
            q.submit(owner, task(owner, i))
    assert done.wait(10)
    assert peak == {"max_per_owner": 1, "max_total": 2}
    # Every other student's first task started before the greedy student's third
    first = {o: next(n for n, (oo, _) in enumerate(log) if oo == o) for o in ("x", "y", "z")}
    third_greedy = [n for n, (o, _) in enumerate(log) if o == "greedy"][2]
    assert max(first.values()) < third_greedy


def test_publish_from_the_form_and_an_upload(store, tmp_path, people):
    import io

    import numpy as np

    teacher, a, _b, course = people
    fields = {"title": "Form lab", "instructions": "# Go\nFit it.", "dataset": "an uploaded file",
              "start": "zoo:lenet5", "mcu": "nrf52840", "accuracy_target": 0.5, "counts": "last", "export": False,
              "require_int8": False, "deadline": dt.datetime(2031, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
              "limits": {"sram_bytes": 65536, "flash_bytes": 0, "latency_ms": 0.0, "energy_uj": 0.0},
              "scoring": {"method": "accuracy-if-fits", "formula": None}}

    def npz(n):
        buf = io.BytesIO()
        np.savez(buf, x=np.zeros((n, 4), np.float32) + np.arange(n)[:, None], y=np.arange(n) % 2)
        return buf.getvalue()

    with pytest.raises(labs.LabError, match="dataset: upload the data file"):
        labs.publish_form(store, fields, user=teacher, course_id=course)
    c = labs.publish_form(store, fields, data=("mine.npz", npz(20)), test=("mine.npz", npz(6)), user=teacher,
                          course_id=course)
    ch = labs.load(store, c.id, user=teacher)
    assert (c.title, c.counts, c.deadline, ch.limits, ch.accuracy_target, ch.export) == (
        "Form lab", "last", "2031-05-01T12:00:00.000000Z", {"sram_bytes": 65536}, 0.5, False)
    assert ch.instructions == "# Go\nFit it." and ch.test_dataset.endswith("test-mine.npz")
    from store.challenges import challenge_package

    assert set(challenge_package(store, c.id, user=a)[1]) == {"mine.npz"}
    bad = {**fields, "dataset": "digits", "scoring": {"method": "formula", "formula": None}}
    with pytest.raises(Exception, match=r'challenge.toml: scoring.formula: method "formula" needs a formula'):
        labs.publish_form(store, bad, user=teacher)
    # An uploaded file with the files it names, uploaded beside it by name
    toml = b'title = "Uploaded"\ndataset = "d/train.npz"\ntest_dataset = "secret.npz"\nmcu = "nrf52840"\n'
    up = labs.publish_upload(store, "lab.toml", toml, {"train.npz": npz(10), "secret.npz": npz(4)}, user=teacher,
                             course_id=course)
    assert set(challenge_package(store, up.id, user=a)[1]) == {"d/train.npz"}
    with pytest.raises(Exception, match=r"lab.toml: test_dataset: no such file 'secret.npz'"):
        labs.publish_upload(store, "lab.toml", toml, {"train.npz": npz(10)}, user=teacher)
    with pytest.raises(labs.LabError, match="lab.toml: not a TOML challenge file"):
        labs.publish_upload(store, "lab.toml", b"title = ", {}, user=teacher)


def test_a_restart_grades_what_was_pending(store, people, monkeypatch):
    """Submissions a stopped server left queued or grading are graded when the studio starts again."""
    from app import lab_jobs, state
    from store.challenges import start_grading

    teacher, a, b, course = people
    c = labs.publish_text(store, TOML, {}, user=teacher, course_id=course)
    queued = labs.submit_version(store, c.id, session_of(store, a).id, user=a)
    halfway = labs.submit_version(store, c.id, session_of(store, b).id, user=b)
    start_grading(store, halfway.id)  # the server stopped while grading it
    monkeypatch.setattr(state, "base_store", lambda: store)
    real = labs.grade_submission
    monkeypatch.setattr(labs, "grade_submission", lambda st, sid, *a, **k: real(st, sid, runner=False))
    lab_jobs.resume_grading.clear()
    assert lab_jobs.resume_grading() == 2
    deadline = time.monotonic() + 120
    while pending_submissions(store) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(s.id, s.status) for s in list_submissions(store, c.id)] == [(queued.id, "graded"),
                                                                        (halfway.id, "graded")]
