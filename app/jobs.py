"""Long work off the script thread: a job row in the store, a job thread, and a polling fragment.

    job = submit(session_id, "export", params, work)      # work(progress) -> result dict
    job_panel(session_id)                                   # progress bars, refreshed every second

The job thread only drives the work: the heavy part (training, compression, export verification, search
trials) runs in worker processes through app.job_executor.run_remote / engine.executor (a local cluster, or
the Dask cluster at TINYSTUDIO_SCHEDULER), and the thread relays progress and writes the store.
Jobs outlive page changes and reruns (the executor is a process-wide resource); their results land in the
store, so the page that started them is not needed to collect them.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

import store as db
from app.fair_queue import FairQueue
from app.labels import web_message
from app.state import get_store
from engine.errors import TinyStudioError


class Cancelled(Exception):
    """Raised inside a job's work (by its progress function) when its row was cancelled."""


_Cancelled = Cancelled


@st.cache_resource
def _executor() -> FairQueue:
    # One running job per owner (a lab's student), owners served in turn: see app.fair_queue.
    return FairQueue(slots=4, name="tinystudio-job")


def submit(session_id: int, kind: str, params: dict, work: Callable[[Callable[[float, str], None]], dict],
           job: db.JobInfo | None = None, owner: int | None = None) -> db.JobInfo:
    """Run `work` in a job thread; `job`: a row made beforehand (to link it to other rows before it starts);
    `owner`: the user whose jobs run one at a time (default: this tab's account on a lab server; None: not
    held back)."""
    store = get_store()
    if owner is None:
        from app.auth import current_user

        user = current_user()
        owner = None if user is None else user.id
    job = job or db.create_job(store, session_id, kind, params)

    def progress(fraction: float | None = None, message: str = "") -> None:
        if fraction is None and not message:  # a poll (app.job_executor): only look for a cancel
            row = db.get_job(store, job.id)
        else:
            row = db.update_job(store, job.id, progress=None if fraction is None else max(0.0, min(1.0, fraction)),
                                message=message or None)
        if row.status == "cancelled":  # cancelled from a page: stop the work at its next progress report
            raise _Cancelled()

    progress.job_id = job.id  # work that cannot take an exception at a report (a search's loop) polls the row

    def run() -> None:
        try:
            progress(0.0, "started")
            result = work(progress)
            db.finish_job(store, job.id, result=result, message="done")
        except _Cancelled:
            pass  # the job row says cancelled already
        except TinyStudioError as e:  # a user error: one line, shown in the panel
            db.fail_job(store, job.id, str(e))
        except Exception as e:  # a bug: keep the app alive, say what happened
            db.fail_job(store, job.id, f"internal error: {type(e).__name__}: {e}")

    _executor().submit(owner, run)
    return job


def submit_unrecorded(fn: Callable[[], object], owner: int | None = None) -> None:
    """Run fn on the same fair queue without a job row (work whose session is gone: a kept submission)."""
    _executor().submit(owner, fn)


@st.fragment(run_every=1.0)
def job_panel(session_id: int, kind: str | None = None) -> None:
    jobs = [j for j in db.list_jobs(get_store(), session_id) if kind is None or j.kind == kind][:5]
    # The fragment reruns alone; when a job it saw running has finished, rerun the whole page so that what the
    # job produced (a bundle to download, a new version) shows without the user touching anything.
    seen_key = f"_jobs_running_{session_id}_{kind}"
    running = {j.id for j in jobs if j.status in ("queued", "running")}
    finished = st.session_state.get(seen_key, set()) - running
    st.session_state[seen_key] = running
    if finished:
        st.rerun(scope="app")
    for j in jobs:
        label = f"{j.kind} #{j.id}: {web_message(j.message or j.status)}"
        if j.status in ("queued", "running"):
            st.progress(j.progress, text=label)
        elif j.status == "done":
            st.success(label, icon=":material/check_circle:")
        else:
            st.error(label, icon=":material/error:")
