"""Heavy work of the studio's jobs (training, compression, export verification) on engine.executor's workers:
local worker processes, or the Dask cluster the studio was pointed at (TINYSTUDIO_SCHEDULER). The job's
thread in the web server only submits, relays progress and events, and writes the store.

    result = run_remote(train_version, graph, data, settings, progress=progress, on_event=record_epoch,
                        events=("on_epoch",))

`fn` runs in a worker process as fn(*args, progress=report, <event>=send, **kwargs): `report(fraction, message)`
and each named event callback put messages on a distributed.Queue that this thread drains; a cancel from the
page (app.jobs.Cancelled, raised by `progress`) sets a distributed.Event that the worker's `report` checks, so
the work stops at its next progress report, and the worker is free again. Exceptions come back as themselves
(a TinyStudioError stays a one-line user error).

No streamlit here: workers import this module to run `_call`.
"""
from __future__ import annotations

import os
import time
import uuid
from typing import Callable

SCHEDULER_ENV = "TINYSTUDIO_SCHEDULER"  # e.g. tcp://lab-server:8786
WORKERS_ENV = "TINYSTUDIO_WORKERS"  # local worker processes for jobs (default 2)
POLL_S = 0.25
CHECK_STOP_S = 0.5  # how often a worker asks whether its job was cancelled (a scheduler round trip)


class Stopped(Exception):
    """Raised inside the worker's work when its job was cancelled."""


def default_scheduler() -> str | None:
    """The Dask scheduler the studio was pointed at (`tinystudio studio --scheduler`, or the environment)."""
    return (os.environ.get(SCHEDULER_ENV) or "").strip() or None


def job_workers() -> int:
    try:
        return max(1, min(64, int(os.environ.get(WORKERS_ENV, "2"))))
    except ValueError:
        return 2


def client():
    from engine.executor import get_client

    return get_client(job_workers(), default_scheduler())


def _call(fn: Callable, args: tuple, kwargs: dict, token: str, events: tuple[str, ...]):
    """In the worker: run fn with callbacks that report to the server through the token's queue."""
    from distributed import Event, Queue

    queue, stop = Queue(f"ts-q-{token}"), Event(f"ts-stop-{token}")
    checked = [0.0]

    def report(fraction: float | None = None, message: str = "") -> None:
        queue.put(["progress", fraction, message])
        now = time.monotonic()
        if now - checked[0] >= CHECK_STOP_S:
            checked[0] = now
            if stop.is_set():
                raise Stopped("cancelled")

    def sender(name: str):
        return lambda payload: queue.put(["event", name, payload])

    extra = {name: sender(name) for name in events}
    return fn(*args, progress=report, **extra, **kwargs)


def run_remote(fn: Callable, *args, progress: Callable[[float, str], None],
               on_event: Callable[[str, object], None] | None = None, events: tuple[str, ...] = (), **kwargs):
    """Run fn on a worker and wait, relaying its progress (and events) to `progress` / `on_event` in this
    thread; returns fn's result. When `progress` raises (the job was cancelled), the worker is told to stop
    and the exception goes on."""
    from distributed import Event, Queue

    c = client()
    token = uuid.uuid4().hex
    queue, stop = Queue(f"ts-q-{token}", client=c), Event(f"ts-stop-{token}", client=c)
    fut = c.submit(_call, fn, args, kwargs, token, tuple(events), pure=False, key=f"tinystudio-job-{token}")

    def drain() -> None:
        n = queue.qsize()
        if not n:
            return
        items = queue.get(batch=n)
        reports = [item for item in items if item[0] == "progress"]
        for item in items:
            if item[0] == "event" and on_event is not None:
                on_event(item[1], item[2])
        for i, item in enumerate(reports):
            # Each step's message is shown (a report is a store write): of reports repeating one message, the
            # newest fraction only.
            if i == len(reports) - 1 or item[2] != reports[i + 1][2]:
                progress(item[1], item[2])

    try:
        while not fut.done():
            drain()
            time.sleep(POLL_S)
            progress(None, "")  # notices a cancel even while the worker reports nothing
        drain()
        return fut.result()
    except BaseException:
        try:
            stop.set()
            fut.cancel()
        except Exception:  # the scheduler may be gone already; nothing else to stop
            pass
        raise
    finally:
        try:
            queue.close() if hasattr(queue, "close") else None
        except Exception:
            pass
