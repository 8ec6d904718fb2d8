"""The studio's heavy work runs in worker processes (app.job_executor over engine.executor), never in the job's
thread: progress and events come back in order, a user error comes back as itself, and a cancel from the page
stops the work in the worker."""
from __future__ import annotations

import os
import time

import pytest

from app.job_executor import run_remote
from app.jobs import Cancelled
from engine.errors import TinyStudioError


def _work(n, progress, on_epoch):
    for i in range(n):
        on_epoch({"epoch": i})
        progress((i + 1) / n, f"step {i + 1}")
    return {"pid": os.getpid(), "n": n}


def _bad(progress):
    progress(0.1, "starting")
    raise TinyStudioError("conv1: kernel 9x9 is larger than the 4x4 input")


def _long(marker, progress):
    try:
        for i in range(600):  # 60 s unless stopped
            progress(i / 600, f"step {i}")
            time.sleep(0.1)
    except BaseException as e:
        with open(marker, "w") as f:
            f.write(type(e).__name__)
        raise
    return "finished"


def test_work_runs_in_a_worker_process_and_reports_back():
    seen, events = [], []
    out = run_remote(_work, 5, progress=lambda f=None, m="": seen.append((f, m)) if m else None,
                     on_event=lambda name, p: events.append((name, p)), events=("on_epoch",))
    assert out["n"] == 5 and out["pid"] != os.getpid()
    assert events == [("on_epoch", {"epoch": i}) for i in range(5)]
    assert seen == [((i + 1) / 5, f"step {i + 1}") for i in range(5)]  # every step's message, in order


def test_a_user_error_comes_back_as_one_line():
    with pytest.raises(TinyStudioError, match="^conv1: kernel 9x9 is larger than the 4x4 input$"):
        run_remote(_bad, progress=lambda f=None, m="": None)


def test_a_cancel_stops_the_work_in_the_worker(tmp_path):
    marker = tmp_path / "stopped"
    calls = {"n": 0}

    def progress(f=None, m=""):
        calls["n"] += 1
        if m.startswith("step 3"):  # the page cancelled: app.jobs' progress raises at the next report
            raise Cancelled()

    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        run_remote(_long, str(marker), progress=progress)
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.read_text() == "Stopped"  # the worker's own loop was stopped, not left running 60 s
    assert time.monotonic() - t0 < 30


def _where(progress):
    from distributed import get_worker

    progress(0.5, "here")
    return get_worker().address


def _local_cluster(LocalCluster, tries: int = 3):
    """The stand-in cluster; on a loaded machine a worker process can miss its start-up deadline ("Nanny failed
    to start"), which says nothing about the studio, so starting it is tried again."""
    for attempt in range(tries):
        try:
            return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                death_timeout=120)
        except RuntimeError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def test_jobs_go_to_the_cluster_the_studio_was_pointed_at(monkeypatch):
    """A scheduler + 2 worker processes started here stand for a lab server's cluster."""
    from distributed import Client, LocalCluster

    from engine.executor import shutdown

    with _local_cluster(LocalCluster) as cluster, Client(cluster) as c:
        monkeypatch.setenv("TINYSTUDIO_SCHEDULER", cluster.scheduler_address)
        try:
            where = run_remote(_where, progress=lambda f=None, m="": None)
        finally:
            shutdown()
        assert where in c.scheduler_info()["workers"]


def test_studio_with_a_scheduler_that_does_not_answer_is_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["studio", "--db", str(tmp_path / "s.duckdb"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: scheduler tcp://127.0.0.1:1: no answer within 10 s"
