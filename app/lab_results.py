"""Results of teaching-lab challenges for the pages and the CLI: leaderboards, a student's history, grades per
student and as CSV, and a read-only DuckDB query over the results. No streamlit here.

    leaderboard(store, c.id, user)     grades_csv(store, c.id, user)     query_results(store, "SELECT ...", user)

The store decides what `user` sees; the leaderboard alone shows every student's counted figures (no models).
"""
from __future__ import annotations

import csv
import io
import sys
import threading

from app.labs import LabError, first_line
from store.access import actor
from store.challenges import ChallengeInfo, SubmissionInfo, get_challenge, list_challenges, list_submissions

QUERY_ROWS = 1000  # rows a query returns at most
QUERY_SECONDS = 5.0  # a query running longer is interrupted
QUERY_KILL_SECONDS = 30.0  # and its process killed after this long (start-up included)
QUERY_MEMORY = 1 << 30  # the query process's data segment
CHECKS = ("sram", "flash", "latency", "energy", "accuracy", "export", "int8")


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
    user = actor(store, user)  # a store view acts as its account
    ch = get_challenge(store, challenge_id, user=user)
    # Everyone's counted submission, not only the viewer's: the leaderboard is public within the challenge,
    # and shows no model, only figures.
    subs = list_submissions(getattr(store, "base", store), ch.id)  # the store itself, not a student's view
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
    user = actor(store, user)  # a store view acts as its account
    subs = list_submissions(store, challenge_id, user=user,
                            student_id=None if user is None or user.role == "instructor" else user.id)
    return [submission_row(s) for s in subs]


def submission_row(s: SubmissionInfo) -> dict:
    return {"submission": s.id, "model": s.model_name, "status": s.status, "passed": s.passed, "score": s.score,
            "submitted": s.created, "graded": s.graded, "why": s.error or "", **_check_values(s)}


def grade_rows(store, challenge_id: int, user=None) -> list[dict]:
    """Per student: attempts, the counted submission, its score, verdict and check values."""
    user = actor(store, user)  # a store view acts as its account
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
    """(columns, rows, truncated) of one SELECT over the results `user` may see: tables challenges(id, title,
    deadline, counts), submissions(id, challenge_id, student, status, passed, score, error, created, graded),
    grades(submission_id, name, value, limit_value, passed). The query runs in a separate process on an
    in-memory DuckDB holding only these rows (never the lab's database file), with no file access, at most
    QUERY_MEMORY bytes, one thread, interrupted after QUERY_SECONDS and killed after QUERY_KILL_SECONDS (DuckDB's
    own memory limit and interrupt do not reach every function: repeat('x', 10^9) ignores both)."""
    user = actor(store, user)  # a store view acts as its account
    if not isinstance(sql, str) or not sql.strip():
        raise LabError("the query is empty")
    if len(sql) > 10_000:
        raise LabError("the query is longer than 10,000 characters")
    chs = list_challenges(store, user=user)
    subs = [s for c in chs for s in list_submissions(store, c.id, user=user)]
    names = user_names(store, [s.user_id for s in subs])
    tables = {
        "challenges": (["id", "title", "deadline", "counts"], [(c.id, c.title, c.deadline, c.counts) for c in chs]),
        "submissions": (["id", "challenge_id", "student", "status", "passed", "score", "error", "created", "graded"],
                        [(s.id, s.challenge_id, names.get(s.user_id, f"user {s.user_id}"), s.status, s.passed,
                          s.score, s.error, s.created, s.graded) for s in subs]),
        "grades": (["submission_id", "name", "value", "limit_value", "passed"],
                   [(s.id, c["name"], _float(c.get("value")), _float(c.get("limit")), bool(c.get("passed")))
                    for s in subs for c in ((s.result or {}).get("checks") or [])]),
    }
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    # A fresh interpreter, not multiprocessing: Streamlit runs a page as __main__, which a spawned child would
    # run again (and open the lab's database). Rows and columns travel as JSON on stdin and stdout.
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run([sys.executable, "-c", "from app.lab_results import query_main; query_main()"],
                              input=json.dumps({"tables": tables, "sql": sql}), capture_output=True, text=True,
                              timeout=QUERY_KILL_SECONDS, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        raise LabError(f"query: stopped after {QUERY_KILL_SECONDS:g} s") from None
    try:
        kind, *payload = json.loads(done.stdout)
    except ValueError:  # the process died (over its memory) before it could answer
        raise LabError(f"query: stopped: it needed more than {QUERY_MEMORY >> 20} MB") from None
    if kind == "error":
        raise LabError(f"query: {payload[0]}")
    cols, rows = payload
    rows = [tuple(r) for r in rows]
    return cols, rows[:QUERY_ROWS], len(rows) > QUERY_ROWS


def query_main() -> None:
    """The query process: {"tables", "sql"} on stdin, ["ok", cols, rows] or ["error", line] on stdout."""
    import json

    req = json.loads(sys.stdin.read())

    class Out:
        def send(self, msg):
            sys.stdout.write(json.dumps(list(msg)))

    _query_process({k: (v[0], [tuple(r) for r in v[1]]) for k, v in req["tables"].items()}, req["sql"], Out())


def _query_process(tables: dict, sql: str, out) -> None:
    """In the query's own process: build the tables, run the one SELECT, send ("ok", cols, rows) or
    ("error", one line)."""
    import resource

    import duckdb

    try:
        resource.setrlimit(resource.RLIMIT_DATA, (QUERY_MEMORY, QUERY_MEMORY))
        con = duckdb.connect(":memory:")
        for name, (cols, rows) in tables.items():
            con.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {_TYPES[c]}' for c in cols)})")
            if rows:
                con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(cols))})", rows)
        # No files, no extensions, and settings frozen: the query sees these three tables and nothing else.
        con.execute("SET enable_external_access = false")
        con.execute(f"SET memory_limit = '{QUERY_MEMORY >> 21}MB'")
        con.execute("SET threads = 1")
        con.execute("SET enable_progress_bar = false")  # it writes to stdout, which carries the answer
        con.execute("SET lock_configuration = true")
        statements = con.extract_statements(sql)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            out.send(("error", "give one SELECT statement (the results are read-only)"))
            return
        timer = threading.Timer(QUERY_SECONDS, con.interrupt)
        timer.start()
        try:
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            rows = cur.fetchmany(QUERY_ROWS + 1)
        finally:
            timer.cancel()
        out.send(("ok", cols, [tuple(_plain(v) for v in r) for r in rows]))
    except duckdb.InterruptException:
        out.send(("error", f"stopped after {QUERY_SECONDS:g} s"))
    except MemoryError:
        out.send(("error", f"stopped: it needed more than {QUERY_MEMORY >> 20} MB"))
    except Exception as e:  # noqa: BLE001 - a query's error is the instructor's to read, in one line
        out.send(("error", first_line(e)))


def _plain(v):
    """A value the page can show and a pipe can carry (DuckDB hands out Decimal, UUID, intervals, ...)."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


_TYPES = {"id": "BIGINT", "title": "VARCHAR", "deadline": "VARCHAR", "counts": "VARCHAR", "challenge_id": "BIGINT",
          "student": "VARCHAR", "status": "VARCHAR", "passed": "BOOLEAN", "score": "DOUBLE", "error": "VARCHAR",
          "created": "VARCHAR", "graded": "VARCHAR", "submission_id": "BIGINT", "name": "VARCHAR",
          "value": "DOUBLE", "limit_value": "DOUBLE"}


def _float(v):
    if isinstance(v, bool):
        return float(v)
    return float(v) if isinstance(v, (int, float)) else None
