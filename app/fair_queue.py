"""Heavy jobs of many students on a few slots: at most one running task per owner, owners served in turn.

    q = FairQueue(slots=4)
    q.submit(owner=7, fn=work)       # queued behind owner 7's running task, if any
    q.submit(owner=None, fn=work)    # no owner (single-user use): only the slots limit it
    q.state()                        # {"running": 2, "queued": 5, "owners_running": [7, 9]}

Why not a plain thread pool: with first-come-first-served, a student who submits ten times fills every slot
and the class waits behind them. Here the next task goes to the owner who has waited longest (round robin
over the owners with queued work), and an owner's second task waits until their first finishes.
No streamlit here (tests and benchmarks drive it directly).
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Callable, Hashable


class FairQueue:
    def __init__(self, slots: int, name: str = "tinystudio-job"):
        self._slots = max(1, int(slots))
        self._name = name
        self._cond = threading.Condition()
        self._queues: OrderedDict[Hashable, deque] = OrderedDict()  # owner -> tasks; order = whose turn
        self._running: dict[Hashable, int] = {}
        self._threads: list[threading.Thread] = []

    def submit(self, owner: Hashable | None, fn: Callable[[], object]) -> None:
        """Queue fn; it runs on one of the slots' threads. Its exceptions are its own to handle."""
        key = owner if owner is not None else object()  # no owner: a queue of its own, never held back
        with self._cond:
            self._queues.setdefault(key, deque()).append(fn)
            if len(self._threads) < self._slots:
                t = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
            self._cond.notify()

    def _take(self):
        """Under the lock: the first owner in turn with queued work and nothing running; None when none."""
        for owner, tasks in self._queues.items():
            if tasks and not self._running.get(owner):
                fn = tasks.popleft()
                if tasks:
                    self._queues.move_to_end(owner)  # their next task waits for everyone else's turn
                else:
                    del self._queues[owner]
                return owner, fn
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._take()
                while picked is None:
                    self._cond.wait()
                    picked = self._take()
                owner, fn = picked
                self._running[owner] = self._running.get(owner, 0) + 1
            try:
                fn()
            except BaseException:  # noqa: BLE001 - a task's failure must not stop the slot
                pass
            finally:
                with self._cond:
                    self._running[owner] -= 1
                    if not self._running[owner]:
                        del self._running[owner]
                    self._cond.notify_all()

    def state(self) -> dict:
        with self._cond:
            return {"running": sum(self._running.values()),
                    "queued": sum(len(t) for t in self._queues.values()),
                    "owners_running": [o for o in self._running if isinstance(o, (int, str))]}
