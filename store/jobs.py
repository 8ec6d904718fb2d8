"""Long-running work (verification, training, search) as rows a worker thread updates and pages poll.

    job = create_job(store, session_id, "verify", {"mcu": "stm32f746ng"})      # queued
    job = update_job(store, job.id, 0.5, "compiling")    # running; returns the row, so a worker sees
    if job.status == "cancelled": stop()                  # a cancel from the page and stops
    finish_job(store, job.id, {"ok": True})  /  fail_job(store, job.id, "gcc failed: ...")
    cancel_job(store, job.id)

queued -> running -> done | failed | cancelled (also straight from queued). A finished job stays finished:
when a cancel and a finish race, the first to commit wins and the other returns the row unchanged.
Jobs still queued or running when the database is opened are marked failed (their process is gone).
A job belongs to its session's owner: every function takes `user` (store.access); changing a job (progress,
finish, cancel) needs the right to change its session.
"""
from __future__ import annotations

import math

from store.access import actor, check_owner, owner_filter, session_owner
from store.clock import utcnow
from store.db import Store
from store.errors import InvalidValueError, JobStateError
from store.records import JOB_COLUMNS, JobInfo, dump_json, job_from_row
from store.rows import check_action, check_id, fetch_row, opt_id, session_row, where

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
MAX_MESSAGE = 2000


def _row(con, job_id, user=None, write: bool = False) -> JobInfo:
    job = job_from_row(fetch_row(con, JOB_COLUMNS, "jobs", job_id, "job"))
    if user is not None:
        check_owner(con, user, session_owner(con, job.session_id), f"no job with id {job_id}", write,
                    f"job {job_id}")
    return job


def _message(message) -> str:
    if not isinstance(message, str):
        raise InvalidValueError(f"job message must be text, not {type(message).__name__}")
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…"


def create_job(store: Store, session_id: int, kind: str, params: dict | None = None, *, user=None) -> JobInfo:
    session_id = check_id(session_id, "session id")
    kind = check_action(kind)
    params_json = dump_json(params or {}, "job params")
    now = utcnow()
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        jid = con.execute("INSERT INTO jobs VALUES (nextval('job_ids'), ?, ?, ?, 'queued', 0, '', NULL, ?, ?) "
                          "RETURNING id", [session_id, kind, params_json, now, now]).fetchone()[0]
        return _row(con, jid)


def get_job(store: Store, job_id: int, *, user=None) -> JobInfo:
    job_id = check_id(job_id, "job id")
    user = actor(store, user)
    with store.transaction() as con:
        return _row(con, job_id, user)


def list_jobs(store: Store, session_id: int | None = None, status: str | None = None, *, user=None) -> list[JobInfo]:
    """Newest first; filtered by session and/or status; only the jobs of sessions `user` may see."""
    session_id = opt_id(session_id, "session id")
    if status is not None and status not in STATUSES:
        raise InvalidValueError(f"job status must be one of {', '.join(STATUSES)}, not {status!r}")
    user = actor(store, user)
    cond, args = where(("session_id = ?", session_id), ("status = ?", status))
    owned, owned_args = owner_filter(user)
    if owned:
        cond = f"{cond} AND " if cond else " WHERE "
        cond += f"session_id IN (SELECT s.id FROM sessions s WHERE {owned})"
        args += owned_args
    sql = f"SELECT {JOB_COLUMNS} FROM jobs{cond} ORDER BY id DESC"
    with store.transaction() as con:
        if session_id is not None:
            session_row(con, session_id, user)
        return [job_from_row(r) for r in con.execute(sql, args).fetchall()]


def update_job(store: Store, job_id: int, progress: float | None = None, message: str | None = None, *,
               user=None) -> JobInfo:
    """Record progress (0..1) of an active job and mark it running. Returns the row; a finished job (e.g.
    cancelled meanwhile) is returned unchanged so the worker can stop."""
    job_id = check_id(job_id, "job id")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, (int, float))
                                 or not math.isfinite(progress) or not 0 <= progress <= 1):
        raise InvalidValueError(f"job progress must be a number from 0 to 1, not {progress!r}")
    message = None if message is None else _message(message)
    user = actor(store, user)
    with store.transaction() as con:
        job = _row(con, job_id, user, write=True)
        if job.finished:
            return job
        con.execute("UPDATE jobs SET status = 'running', progress = coalesce(?, progress), "
                    "message = coalesce(?, message), updated = ? WHERE id = ?",
                    [None if progress is None else float(progress), message, utcnow(), job_id])
        return _row(con, job_id)


def _finish(store: Store, job_id: int, status: str, message: str | None, result, user) -> JobInfo:
    result_json = None if result is None else dump_json(result, "job result")
    user = actor(store, user)
    with store.transaction() as con:
        job = _row(con, job_id, user, write=True)
        if job.status == "cancelled" or (job.finished and status == "cancelled"):
            return job  # the first to finish wins; cancelling a finished job changes nothing
        if job.finished:
            raise JobStateError(f"job {job_id} is already {job.status}; it cannot become {status}")
        con.execute("UPDATE jobs SET status = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END, "
                    "message = coalesce(?, message), result = coalesce(?, result), updated = ? WHERE id = ?",
                    [status, status, message, result_json, utcnow(), job_id])
        return _row(con, job_id)


def finish_job(store: Store, job_id: int, result=None, message: str = "done", *, user=None) -> JobInfo:
    job_id = check_id(job_id, "job id")
    return _finish(store, job_id, "done", _message(message), result, user)


def fail_job(store: Store, job_id: int, message: str, *, user=None) -> JobInfo:
    job_id = check_id(job_id, "job id")
    return _finish(store, job_id, "failed", _message(message), None, user)


def cancel_job(store: Store, job_id: int, message: str = "cancelled", *, user=None) -> JobInfo:
    job_id = check_id(job_id, "job id")
    return _finish(store, job_id, "cancelled", _message(message), None, user)
