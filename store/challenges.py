"""Teaching-lab challenges, their submissions and grades, with who may see what enforced here.

    c = add_challenge(store, toml_text, files, title=..., deadline=..., counts="best", user=instructor)
    list_challenges(store, user=student)          # the challenges of the student's courses (and open ones)
    s = add_submission(store, c.id, model_bytes, graph_hash, "kws", user=student, version_id=v.id)
    start_grading(store, s.id, job_id); record_grade(store, s.id, result_json)   # or mark_not_graded(...)
    list_submissions(store, c.id, user=instructor)

`user` is a store.users.User (id, name, role) or None for single-user local use (sees everything). A student
sees the challenges of their courses and those open to every account (course NULL), and only their own
submissions; an instructor sees the challenges they published or that belong to their courses, and every
submission to those. Whatever a user may not see raises NotFoundError as if it did not exist. Publishing,
hiding names and reading hidden files take an instructor.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from store.access import actor
from store.clock import iso, utcnow
from store.db import Store
from store.errors import InvalidValueError, NotFoundError, StoreError
from store.records import Record, dump_json, load_json
from store.rows import check_id, check_name, opt_id

STATUSES = ("queued", "grading", "graded", "not graded")
MAX_FILE_BYTES = 64 << 20  # one file of a challenge (an uploaded data set with its hidden test split)
MAX_MODEL_BYTES = 64 << 20  # one submitted model


class ForbiddenError(StoreError):
    """An action the user's role does not allow (a student publishing a challenge)."""


class DeadlineError(StoreError):
    """A submission after the challenge's deadline."""


@dataclass(frozen=True)
class ChallengeInfo(Record):
    id: int
    title: str
    source: str
    course_id: int | None
    owner_id: int | None
    deadline: str | None  # ISO 8601 UTC, ending in Z
    counts: str
    hide_names: bool
    created: str
    submissions: int = 0


@dataclass(frozen=True)
class SubmissionInfo(Record):
    id: int
    challenge_id: int
    user_id: int | None
    session_id: int | None
    version_id: int | None
    model_name: str
    graph_hash: str
    status: str
    job_id: int | None
    passed: bool | None
    score: float | None
    error: str | None
    result: dict | None
    created: str
    started: str | None
    graded: str | None


_CH_COLS = ("c.id, c.title, c.source, c.course_id, c.owner_id, c.deadline, c.counts, c.hide_names, c.created, "
            "(SELECT count(*) FROM submissions s WHERE s.challenge_id = c.id)")
_SUB_COLS = ("s.id, s.challenge_id, s.user_id, s.session_id, s.version_id, s.model_name, s.graph_hash, s.status, "
             "s.job_id, s.passed, s.score, s.error, s.result, s.created, s.started, s.graded")


def _challenge(r) -> ChallengeInfo:
    return ChallengeInfo(r[0], r[1], r[2], r[3], r[4], iso(r[5]), r[6], bool(r[7]), iso(r[8]), int(r[9]))


def _submission(r) -> SubmissionInfo:
    return SubmissionInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                          load_json(r[12]), iso(r[13]), iso(r[14]), iso(r[15]))


def _is_instructor(user) -> bool:
    return user is None or user.role == "instructor"


def _course_ids(store: Store, user) -> list[int]:
    """The ids of the courses the user teaches or is enrolled in."""
    from store.users import courses_of

    return [c.id for c in courses_of(store, user)]


def _visible(store: Store, user) -> tuple[str, list]:
    """(SQL condition on challenges c, arguments): the challenges `user` may see."""
    if user is None:
        return "TRUE", []
    courses = _course_ids(store, user)
    if user.role == "instructor":
        return "(c.owner_id = ? OR c.course_id IS NULL OR list_contains(?::BIGINT[], c.course_id))", [user.id, courses]
    return "(c.course_id IS NULL OR list_contains(?::BIGINT[], c.course_id))", [courses]


def _manages(store: Store, user) -> tuple[str, list]:
    """(SQL condition on challenges c, arguments): the challenges whose every submission `user` (an
    instructor) sees: theirs, their courses', and open ones the server's administrator published (no owner)."""
    courses = _course_ids(store, user)
    return ("(c.owner_id = ? OR list_contains(?::BIGINT[], c.course_id) OR (c.course_id IS NULL AND "
            "c.owner_id IS NULL))", [user.id, courses])


def _row(con, what: str, table: str, cols: str, visible: tuple[str, list], row_id):
    """One row of `table` (aliased by its initial) that the visibility condition lets through; a row that is
    not there and one that is not visible get the same NotFoundError."""
    row_id = check_id(row_id, f"{what} id")
    cond, args = visible
    r = con.execute(f"SELECT {cols} FROM {table} {table[0]} WHERE {table[0]}.id = ? AND {cond}",
                    [row_id, *args]).fetchone()
    if r is None:
        raise NotFoundError(f"no {what} with id {row_id}")
    return r


def _challenge_row(con, store: Store, challenge_id, user) -> ChallengeInfo:
    return _challenge(_row(con, "challenge", "challenges", _CH_COLS, _visible(store, user), challenge_id))


def _instructor(store: Store, user, what: str):
    """The acting account when it is an instructor (or the administrator, None); ForbiddenError otherwise."""
    user = actor(store, user)
    if not _is_instructor(user):
        raise ForbiddenError(f"only an instructor can {what}")
    return user


def add_challenge(store: Store, toml_text: str, files: dict[str, tuple[bytes, bool]], *, title: str,
                  deadline: dt.datetime | None, counts: str, source: str, course_id: int | None = None,
                  user=None, owner_id: int | None = None) -> ChallengeInfo:
    """Publish a challenge: its TOML text and the files it names ({name: (bytes, hidden)}). Instructors only;
    `owner_id` (the server's administrator, user None, publishing for an instructor) names the owner."""
    user = _instructor(store, user, "publish a challenge")
    title = check_name(title, "challenge title")
    course_id, owner_id = opt_id(course_id, "course id"), opt_id(owner_id, "owner id")
    if counts not in ("best", "last"):
        raise InvalidValueError(f"counts must be best or last, not {counts!r}")
    if deadline is not None:
        deadline = deadline.astimezone(dt.timezone.utc).replace(tzinfo=None)
    for name, (data, _hidden) in files.items():
        if len(data) > MAX_FILE_BYTES:
            raise InvalidValueError(f"{name}: {len(data):,} bytes; a challenge's file has at most {MAX_FILE_BYTES:,}")
    if course_id is not None and course_id not in _course_ids(store, user):  # None: any course exists
        raise NotFoundError(f"no course with id {course_id}")
    with store.transaction() as con:
        cid = con.execute("INSERT INTO challenges VALUES (nextval('challenge_ids'), ?, ?, ?, ?, ?, ?, ?, FALSE, ?) "
                          "RETURNING id", [title, toml_text, source[:500], course_id,
                                           owner_id if user is None else user.id, deadline, counts,
                                           utcnow()]).fetchone()[0]
        for name, (data, hidden) in files.items():
            con.execute("INSERT INTO challenge_files VALUES (?, ?, ?, ?, ?)", [cid, name, bool(hidden), data, len(data)])
        return _challenge_row(con, store, cid, user)


def list_challenges(store: Store, user=None) -> list[ChallengeInfo]:
    """The challenges `user` may see, newest first."""
    user = actor(store, user)
    cond, args = _visible(store, user)
    with store.transaction() as con:
        return [_challenge(r) for r in con.execute(f"SELECT {_CH_COLS} FROM challenges c WHERE {cond} "
                                                   "ORDER BY c.id DESC", args).fetchall()]


def get_challenge(store: Store, challenge_id: int, user=None) -> ChallengeInfo:
    user = actor(store, user)
    with store.transaction() as con:
        return _challenge_row(con, store, challenge_id, user)


def challenge_package(store: Store, challenge_id: int, user=None,
                      hidden: bool = False) -> tuple[str, dict[str, tuple[bytes, bool]]]:
    """(TOML text, {name: (bytes, hidden)}). `hidden=True` (the grader, an instructor's export) includes the
    hidden test split; only an instructor may ask for it."""
    user = actor(store, user)
    if hidden and not _is_instructor(user):
        raise ForbiddenError("only an instructor can read a challenge's hidden files")
    with store.transaction() as con:
        ch = _challenge_row(con, store, challenge_id, user)
        toml = con.execute("SELECT toml FROM challenges WHERE id = ?", [ch.id]).fetchone()[0]
        rows = con.execute("SELECT name, data, hidden FROM challenge_files WHERE challenge_id = ? "
                           + ("" if hidden else "AND NOT hidden ") + "ORDER BY name", [ch.id]).fetchall()
    return toml, {n: (bytes(d), bool(h)) for n, d, h in rows}


def set_hide_names(store: Store, challenge_id: int, hide: bool, user=None) -> ChallengeInfo:
    user = _instructor(store, user, "hide or show names")
    with store.transaction() as con:
        ch = _challenge_row(con, store, challenge_id, user)
        con.execute("UPDATE challenges SET hide_names = ? WHERE id = ?", [bool(hide), ch.id])
        return _challenge_row(con, store, ch.id, user)


def add_submission(store: Store, challenge_id: int, model: bytes, graph_hash: str, model_name: str, *,
                   user=None, session_id: int | None = None, version_id: int | None = None,
                   now: dt.datetime | None = None) -> SubmissionInfo:
    """Record a submission (status queued). DeadlineError after the deadline: one line, nothing written."""
    user = actor(store, user)
    session_id, version_id = opt_id(session_id, "session id"), opt_id(version_id, "version id")
    if len(model) > MAX_MODEL_BYTES:
        raise InvalidValueError(f"the model is {len(model):,} bytes; a submission has at most {MAX_MODEL_BYTES:,}")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    with store.transaction() as con:
        ch = _challenge_row(con, store, challenge_id, user)
        deadline = con.execute("SELECT deadline FROM challenges WHERE id = ?", [ch.id]).fetchone()[0]
        if deadline is not None and now > deadline:
            raise DeadlineError(f"challenge {ch.id} \"{ch.title}\": the deadline ({iso(deadline)}) has passed; "
                                "submissions are closed")
        sid = con.execute("INSERT INTO submissions VALUES (nextval('submission_ids'), ?, ?, ?, ?, ?, ?, ?, 'queued', "
                          "NULL, NULL, NULL, NULL, NULL, ?, NULL, NULL) RETURNING id",
                          [ch.id, None if user is None else user.id, session_id, version_id,
                           check_name(model_name or "model", "model name"), graph_hash, model, now]).fetchone()[0]
        return _submission_row(con, store, sid, user)


def _sub_visible(store: Store, user) -> tuple[str, list]:
    if user is None:
        return "TRUE", []
    if user.role != "instructor":
        return "s.user_id = ?", [user.id]
    cond, args = _manages(store, user)
    return f"(s.user_id = ? OR EXISTS (SELECT 1 FROM challenges c WHERE c.id = s.challenge_id AND {cond}))", \
        [user.id, *args]


def _submission_row(con, store: Store, submission_id, user) -> SubmissionInfo:
    return _submission(_row(con, "submission", "submissions", _SUB_COLS, _sub_visible(store, user), submission_id))


def get_submission(store: Store, submission_id: int, user=None) -> SubmissionInfo:
    user = actor(store, user)
    with store.transaction() as con:
        return _submission_row(con, store, submission_id, user)


def submission_model(store: Store, submission_id: int, user=None) -> bytes:
    """The model as submitted (.tsgraph bytes)."""
    user = actor(store, user)
    with store.transaction() as con:
        s = _submission_row(con, store, submission_id, user)
        return bytes(con.execute("SELECT model FROM submissions WHERE id = ?", [s.id]).fetchone()[0])


def list_submissions(store: Store, challenge_id: int | None = None, user=None, student_id: int | None = None,
                     status: str | None = None) -> list[SubmissionInfo]:
    """Oldest first: the ones `user` may see, of one challenge, one student and/or in one status."""
    user = actor(store, user)
    challenge_id, student_id = opt_id(challenge_id, "challenge id"), opt_id(student_id, "student id")
    if status is not None and status not in STATUSES:
        raise InvalidValueError(f"submission status must be one of {', '.join(STATUSES)}, not {status!r}")
    cond, args = _sub_visible(store, user)
    extra = [(c, v) for c, v in (("s.challenge_id = ?", challenge_id), ("s.user_id = ?", student_id),
                                 ("s.status = ?", status)) if v is not None]
    sql = (f"SELECT {_SUB_COLS} FROM submissions s WHERE {cond}"
           + "".join(f" AND {c}" for c, _ in extra) + " ORDER BY s.id")
    with store.transaction() as con:
        if challenge_id is not None:
            _challenge_row(con, store, challenge_id, user)
        return [_submission(r) for r in con.execute(sql, [*args, *(v for _, v in extra)]).fetchall()]


def start_grading(store: Store, submission_id: int, job_id: int | None = None) -> SubmissionInfo:
    """The grader (the server, not a user) starts on a submission: status grading, its result cleared."""
    with store.transaction() as con:
        s = _submission_row(con, store, submission_id, None)
        con.execute("UPDATE submissions SET status = 'grading', job_id = coalesce(?, job_id), started = ?, "
                    "graded = NULL WHERE id = ?", [opt_id(job_id, "job id"), utcnow(), s.id])
        return _submission_row(con, store, s.id, None)


def queue_again(store: Store, submission_id: int, user=None) -> SubmissionInfo:
    """Put a submission back in the queue (a regrade, or one whose grading a restart interrupted)."""
    user = _instructor(store, user, "regrade a submission")
    with store.transaction() as con:
        s = _submission_row(con, store, submission_id, user)
        con.execute("UPDATE submissions SET status = 'queued', started = NULL WHERE id = ?", [s.id])
        return _submission_row(con, store, s.id, user)


def _num(v) -> float | None:
    if isinstance(v, bool):
        return float(v)
    return float(v) if isinstance(v, (int, float)) else None


def record_grade(store: Store, submission_id: int, result: dict) -> SubmissionInfo:
    """Store a grading (GradeResult.to_json()): status graded, or "not graded" when it carries an error; one
    `grades` row per check."""
    error = result.get("error")
    result_json = dump_json(result, "grade result")
    with store.transaction() as con:
        s = _submission_row(con, store, submission_id, None)
        con.execute("DELETE FROM grades WHERE submission_id = ?", [s.id])
        con.execute("UPDATE submissions SET status = ?, passed = ?, score = ?, error = ?, result = ?, graded = ? "
                    "WHERE id = ?", ["not graded" if error else "graded", bool(result.get("passed")),
                                     _num(result.get("score")), error, result_json, utcnow(), s.id])
        for c in result.get("checks", []):
            con.execute("INSERT INTO grades VALUES (?, ?, ?, ?, ?, ?)",
                        [s.id, str(c["name"]), _num(c.get("value")), _num(c.get("limit")), bool(c.get("passed")),
                         str(c.get("detail") or "")])
        return _submission_row(con, store, s.id, None)


def mark_not_graded(store: Store, submission_id: int, why: str) -> SubmissionInfo:
    """A grading that could not finish (a crash, a cancel, a restart): kept, marked "not graded: why"."""
    why = why if why.startswith("not graded: ") else f"not graded: {why}"
    return record_grade(store, submission_id, {"passed": False, "score": None, "checks": [], "error": why[:2000]})


def pending_submissions(store: Store) -> list[SubmissionInfo]:
    """Submissions queued or being graded (after a restart: to grade again), oldest first."""
    with store.transaction() as con:
        return [_submission(r) for r in con.execute(f"SELECT {_SUB_COLS} FROM submissions s WHERE s.status IN "
                                                    "('queued', 'grading') ORDER BY s.id").fetchall()]
