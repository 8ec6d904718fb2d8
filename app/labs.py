"""Teaching labs as the studio's pages and the CLI both use them: publish a challenge, submit a version, grade
it, leaderboards, grades as CSV, and a read-only DuckDB query over the results. No streamlit here.

    c = publish(store, "lab.toml", user=instructor)           # or "builtin:kws64k"
    s = submit_version(store, c.id, version_id, user=student)  # queued; then, in a job or a worker:
    grade_submission(store, s.id, progress)                    # graded, or "not graded: why" (never lost)
    leaderboard(store, c.id, user)   grades_csv(store, c.id, user)   query_results(store, "SELECT ...", user)

Every store call passes `user` (None: single-user local use), so who sees what is decided by the store.
"""
from __future__ import annotations

import csv
import io
import tempfile
import threading
from pathlib import Path

import store as db
from engine.errors import TinyStudioError, one_line
from engine.labs import list_builtin
from engine.labs.package import FILE_NAME, grade_packed, pack, parse_text, to_toml, unpack
from engine.serialize import save
from store.challenges import (ChallengeInfo, SubmissionInfo, add_challenge, add_submission, challenge_package,
                              get_challenge, get_submission, list_challenges, list_submissions, mark_not_graded,
                              record_grade, start_grading, submission_model)

QUERY_ROWS = 1000  # rows a query returns at most
QUERY_SECONDS = 5.0  # a query running longer is interrupted
CHECKS = ("sram", "flash", "latency", "energy", "accuracy", "export", "int8")


class LabError(TinyStudioError):
    """A lab action that cannot be done as asked: one line."""


def builtin_labs() -> list[tuple[str, str]]:
    """(builtin:NAME, title) of the labs that ship with TinyStudio."""
    from engine.labs import load_challenge

    return [(f"builtin:{n}", load_challenge(f"builtin:{n}").title) for n in list_builtin()]


def publish(store, path_or_builtin: str, user=None, course_id: int | None = None) -> ChallengeInfo:
    """Publish a challenge file (with the files beside it) or a built-in lab."""
    ch, toml_text, files = pack(path_or_builtin)
    source = path_or_builtin if path_or_builtin.startswith("builtin:") else Path(path_or_builtin).name
    return add_challenge(store, toml_text, files, title=ch.title, deadline=ch.deadline, counts=ch.counts,
                         source=source, course_id=course_id, user=user)


def publish_text(store, toml_text: str, files: dict[str, tuple[bytes, bool]], user=None,
                 course_id: int | None = None, source: str = "form") -> ChallengeInfo:
    """Publish TOML text with its files (an upload or the instructor page's form); ChallengeError names the
    field of a malformed one."""
    ch = parse_text(toml_text, files, fname=source if source.endswith(".toml") else FILE_NAME)
    return add_challenge(store, toml_text, files, title=ch.title, deadline=ch.deadline, counts=ch.counts,
                         source=source, course_id=course_id, user=user)


def form_toml(fields: dict) -> str:
    """A challenge file from the instructor page's form fields (empty ones left out)."""
    top = {k: v for k, v in fields.items() if k not in ("limits", "scoring", "grading") and v not in (None, "")}
    doc = dict(top)
    for table in ("limits", "scoring", "grading"):
        t = {k: v for k, v in (fields.get(table) or {}).items() if v not in (None, "", 0)}
        if t:
            doc[table] = t
    return to_toml(doc)


def load(store, challenge_id: int, user=None, folder: str | None = None):
    """The engine's Challenge of a stored one (files written to `folder`, a temporary one by default: only
    the text fields are then usable)."""
    toml_text, files = challenge_package(store, challenge_id, user=user)
    info = get_challenge(store, challenge_id, user=user)
    with tempfile.TemporaryDirectory(prefix="tinystudio-challenge-") as td:
        # A student's copy lacks the hidden test file: keep the key readable by writing an empty stand-in.
        return unpack(toml_text, _stand_ins(toml_text, files), folder or td, source=f"challenge {info.id}")


def _stand_ins(toml_text: str, files: dict) -> dict:
    import tomllib

    name = tomllib.loads(toml_text).get("test_dataset")
    return files if not name or name in files else {**files, name: (b"", True)}


def export_toml(store, challenge_id: int, out: str, user=None) -> list[str]:
    """Write the challenge file and the files it names beside it (hidden ones only for an instructor);
    returns the paths written."""
    out_path = Path(out)
    if not out_path.name.lower().endswith(".toml"):
        raise LabError(f"--out {out}: write a .toml file")
    if not out_path.parent.is_dir():
        raise LabError(f"--out {out}: folder {out_path.parent} does not exist")
    toml_text, files = challenge_package(store, challenge_id, user=user, hidden=user is None or
                                         user.role == "instructor")
    written = []
    for name, (data, _hidden) in files.items():
        p = (out_path.parent / name).resolve()
        if not p.is_relative_to(out_path.parent.resolve()):
            raise LabError(f"{name!r}: a challenge's file must lie beside the challenge file")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written.append(str(p))
    out_path.write_text(toml_text, encoding="utf-8")
    return [str(out_path), *written]


def submit_version(store, challenge_id: int, version_id: int, user=None, now=None) -> SubmissionInfo:
    """Submit a saved version (the student's own: the store refuses others'); status queued. The graph is
    copied into the submission, so deleting the session later loses nothing."""
    v = db.get_version(store, version_id, **_as(user))
    graph = db.get_graph(store, version_id, **_as(user))
    with tempfile.TemporaryDirectory(prefix="tinystudio-submit-") as td:
        path = Path(td) / "model.tsgraph"
        save(graph, str(path))
        model = path.read_bytes()
    return add_submission(store, challenge_id, model, v.graph_hash, graph.name or f"v{v.number}", user=user,
                          session_id=v.session_id, version_id=v.id, now=now)


def _as(user) -> dict:
    """The keyword that makes a store function check ownership (accounts' interface); nothing for local use."""
    return {} if user is None else {"user": user}


def grade_submission(store, submission_id: int, progress=None, job_id: int | None = None,
                     runner=None) -> SubmissionInfo:
    """Grade one submission (the server's work; runs in a job thread): the grader runs in a worker process
    (`runner`, default app.job_executor.run_remote; `runner=False` runs it here). Any failure of the grader
    marks the submission "not graded: why"; a cancel marks it too and goes on (app.jobs.Cancelled)."""
    report = progress or (lambda *_: None)
    start_grading(store, submission_id, job_id)
    try:
        sub = get_submission(store, submission_id)
        toml_text, files = challenge_package(store, sub.challenge_id, hidden=True)
        model = submission_model(store, submission_id)
        if runner is False:
            result = grade_packed(toml_text, files, model, progress=report)
        else:
            if runner is None:
                from app.job_executor import run_remote as runner
            result = runner(grade_packed, toml_text, files, model, progress=report)
    except Exception as e:  # noqa: BLE001 - the submission must say why, whatever failed
        why = "cancelled" if type(e).__name__ in ("Cancelled", "Stopped") else \
            f"the grader failed ({type(e).__name__}: {one_line(str(e)) or 'no message'})"
        mark_not_graded(store, submission_id, why)
        if type(e).__name__ == "Cancelled":
            raise
        return get_submission(store, submission_id)
    return record_grade(store, submission_id, result)


def user_names(store, ids) -> dict:
    """{user id: name} for the ids (None: "local")."""
    ids = {i for i in ids if i is not None}
    names = {None: "local"}
    if ids:
        from store.users import list_users

        names.update({u.id: u.name for u in list_users(store) if u.id in ids})
    return names


def counted_rows(ch: ChallengeInfo, subs: list[SubmissionInfo]) -> dict:
    """{user id: (the counted submission or None, attempts)}: best or last graded one, as the challenge says
    (engine.labs.grade.counted's rule)."""
    from engine.labs.grade import counted

    by_user: dict = {}
    for s in subs:
        by_user.setdefault(s.user_id, []).append(s)
    return {u: (counted(ch, ss), len(ss)) for u, ss in by_user.items()}


def leaderboard(store, challenge_id: int, user=None) -> list[dict]:
    """One row per student with a graded submission: rank, student, score, passed, the counted submission's
    check values. Names become "student N" when the instructor hid them (the viewer's own row says "you")."""
    ch = get_challenge(store, challenge_id, user=user)
    # Everyone's counted submission, not only the viewer's: the leaderboard is public within the challenge,
    # and shows no model, only figures.
    subs = list_submissions(store, ch.id)
    rows = []
    names = user_names(store, [s.user_id for s in subs])
    anon = {u: f"student {i + 1}" for i, u in enumerate(sorted({s.user_id for s in subs}, key=lambda x: x or 0))}
    for uid, (best, attempts) in counted_rows(ch, subs).items():
        if best is None:
            continue
        name = anon[uid] if ch.hide_names else names.get(uid, f"user {uid}")
        if user is not None and uid == user.id:
            name = f"you ({names.get(uid)})"
        rows.append({"student": name, "score": best.score, "passed": bool(best.passed), "submission": best.id,
                     "attempts": attempts, "submitted": best.created, **_check_values(best)})
    rows.sort(key=lambda r: (-(r["score"] if r["score"] is not None else float("-inf")), not r["passed"],
                             r["submitted"]))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return [{"rank": r.pop("rank"), **r} for r in rows]


def _check_values(s: SubmissionInfo) -> dict:
    return {c["name"]: c["value"] for c in ((s.result or {}).get("checks") or [])}


def history(store, challenge_id: int, user=None) -> list[dict]:
    """The viewer's own submissions to a challenge (an instructor's: every student's), oldest first."""
    subs = list_submissions(store, challenge_id, user=user,
                            student_id=None if user is None or user.role == "instructor" else user.id)
    return [submission_row(s) for s in subs]


def submission_row(s: SubmissionInfo) -> dict:
    return {"submission": s.id, "model": s.model_name, "status": s.status, "passed": s.passed, "score": s.score,
            "submitted": s.created, "graded": s.graded, "why": s.error or "", **_check_values(s)}


def grade_rows(store, challenge_id: int, user=None) -> list[dict]:
    """Per student: attempts, the counted submission, its score, verdict and check values."""
    ch = get_challenge(store, challenge_id, user=user)
    subs = list_submissions(store, ch.id, user=user)
    names = user_names(store, [s.user_id for s in subs])
    out = []
    for uid, (best, attempts) in sorted(counted_rows(ch, subs).items(), key=lambda kv: names.get(kv[0]) or ""):
        row = {"student": names.get(uid, f"user {uid}"), "attempts": attempts,
               "counted_submission": best.id if best else None, "score": best.score if best else None,
               "passed": bool(best.passed) if best else False}
        values = _check_values(best) if best else {}
        row.update({c: values.get(c) for c in CHECKS if any(c in _check_values(s) for s in subs)})
        out.append(row)
    return out


def grades_csv(store, challenge_id: int, user=None) -> str:
    rows = grade_rows(store, challenge_id, user=user)
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["student", "attempts", "counted_submission", "score", "passed"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def query_results(store, sql: str, user=None) -> tuple[list[str], list[tuple], bool]:
    """(columns, rows, truncated) of one SELECT over the results `user` may see, run in a separate in-memory
    DuckDB with no file access: tables challenges(id, title, deadline, counts), submissions(id,
    challenge_id, student, status, passed, score, error, created, graded), grades(submission_id, name, value,
    limit_value, passed). The lab's database itself is never opened by the query."""
    import duckdb
    import pandas as pd

    if not isinstance(sql, str) or not sql.strip():
        raise LabError("the query is empty")
    if len(sql) > 10_000:
        raise LabError("the query is longer than 10,000 characters")
    chs = list_challenges(store, user=user)
    subs = [s for c in chs for s in list_submissions(store, c.id, user=user)]
    names = user_names(store, [s.user_id for s in subs])
    tables = {
        "challenges": pd.DataFrame([{"id": c.id, "title": c.title, "deadline": c.deadline, "counts": c.counts}
                                    for c in chs], columns=["id", "title", "deadline", "counts"]),
        "submissions": pd.DataFrame([{"id": s.id, "challenge_id": s.challenge_id,
                                      "student": names.get(s.user_id, f"user {s.user_id}"), "status": s.status,
                                      "passed": s.passed, "score": s.score, "error": s.error, "created": s.created,
                                      "graded": s.graded} for s in subs],
                                    columns=["id", "challenge_id", "student", "status", "passed", "score", "error",
                                             "created", "graded"]),
        "grades": pd.DataFrame([{"submission_id": s.id, "name": c["name"], "value": _float(c.get("value")),
                                 "limit_value": _float(c.get("limit")), "passed": bool(c.get("passed"))}
                                for s in subs for c in ((s.result or {}).get("checks") or [])],
                               columns=["submission_id", "name", "value", "limit_value", "passed"]),
    }
    con = duckdb.connect(":memory:")
    try:
        for name, df in tables.items():
            con.register(f"_{name}", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
            con.unregister(f"_{name}")
        # No files, no extensions, and settings frozen: the query sees these three tables and nothing else.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as e:
            raise LabError(f"query: {one_line(str(e))}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise LabError("query: give one SELECT statement (the results are read-only)")
        timer = threading.Timer(QUERY_SECONDS, con.interrupt)
        timer.start()
        try:
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            rows = cur.fetchmany(QUERY_ROWS + 1)
        except duckdb.InterruptException:
            raise LabError(f"query: stopped after {QUERY_SECONDS:g} s") from None
        except duckdb.Error as e:
            raise LabError(f"query: {one_line(str(e))}") from None
        finally:
            timer.cancel()
    finally:
        con.close()
    return cols, rows[:QUERY_ROWS], len(rows) > QUERY_ROWS


def _float(v):
    if isinstance(v, bool):
        return float(v)
    return float(v) if isinstance(v, (int, float)) else None
