"""Grading as studio jobs: a submission's grading runs through app.jobs (a job row, a job thread, the grader
in a worker process), one job per student at a time (app.fair_queue), and survives a restart.

    queue_grading(store, submission, owner=user.id)    # after labs.submit_version, or a regrade
    resume_grading()                                     # once per server: gradings a restart interrupted
"""
from __future__ import annotations

import streamlit as st

import store as db
from store.errors import ReadOnlyError
from app import jobs, labs
from store.challenges import SubmissionInfo, pending_submissions


def queue_grading(store, sub: SubmissionInfo, owner: int | None = None) -> None:
    """Grade `sub` in the background. A submission whose session is gone is graded all the same (the model
    is kept with it); its job row then needs a session, so it runs without one."""

    def work(progress) -> dict:
        done = labs.grade_submission(store, sub.id, progress, job_id=getattr(progress, "job_id", None))
        return {"submission": done.id, "status": done.status, "score": done.score, "passed": done.passed}

    try:
        jobs.submit(sub.session_id, "grade", {"submission": sub.id, "challenge": sub.challenge_id}, work,
                    owner=owner if owner is not None else sub.user_id)
    except (db.NotFoundError, ReadOnlyError):  # the session is gone, or an instructor regrades a student's
        # submission (the job row would be the student's to write): grade without a job row
        jobs.submit_unrecorded(lambda: labs.grade_submission(store, sub.id), owner=sub.user_id)


@st.cache_resource
def resume_grading() -> int:
    """Queue again, once per server process, the submissions a stopped server left queued or grading (without
    a job row: the server's own work, whoever's page started the server's first run)."""
    from app.state import base_store

    store = base_store()
    pending = pending_submissions(store)
    for sub in pending:
        jobs.submit_unrecorded(lambda sid=sub.id: labs.grade_submission(store, sid), owner=sub.user_id)
    return len(pending)
