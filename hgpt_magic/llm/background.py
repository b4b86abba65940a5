"""The one owner of a model's background work: named jobs, run one at a time on one daemon thread.

Why: the embedded model does work nobody waits for (loading its one-thread copy ahead while it sits idle,
copying its latest KV state into that copy after each request). Started as ad-hoc threads and timers, such
work ran side by side (a copy being loaded while another thread synced into it), could start while the
interpreter was shutting down, and had no one to stop it. Here every such job goes through one `Background`:
jobs run one after another in due order, a name is queued or running at most once (a second `submit` of a
running sync is skipped, a newer idle timer replaces the older), and `close()` (also called at exit) drops
what is queued and waits briefly for the running job. The thread starts with the first job: a process that
never makes a request has none.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable

#: How long `close()` at interpreter exit waits for a running job (a model load is not worth waiting for).
EXIT_WAIT_S = 2.0


class Background:
    """Runs named jobs one at a time on one daemon thread, each when it is due (`delay` seconds after `submit`)."""

    def __init__(self, name: str):
        self.name = name  # the thread's name, for debuggers and `threading.enumerate()`
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, str, Callable[[], None]]] = []  # (due, order, name, job)
        self._order = itertools.count()
        self._running: str | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.errors: list[str] = []  # "name: Type: message" of jobs that raised (a job should handle its own)
        _open.add(self)

    def submit(self, name: str, job: Callable[[], None], *, delay: float = 0.0, replace: bool = False) -> bool:
        """Queue `job` under `name`, due in `delay` seconds. With `replace`, a queued job of that name is dropped
        first (a newer idle timer); without, nothing is queued while one of that name is queued or running.
        False when nothing was queued (that, or the owner is closed)."""
        with self._cond:
            if self._closed:
                return False
            if replace:
                self._queue = [item for item in self._queue if item[2] != name]
                heapq.heapify(self._queue)
            elif self._running == name or any(item[2] == name for item in self._queue):
                return False
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), name, job))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return True

    def pending(self, name: str) -> bool:
        """Whether a job of that name is queued or running."""
        with self._cond:
            return self._running == name or any(item[2] == name for item in self._queue)

    def close(self, timeout: float | None = EXIT_WAIT_S) -> None:
        """Drop the queued jobs, refuse new ones, and wait up to `timeout` seconds for the running one."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._cond.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._closed:
                    return
                _, _, name, job = heapq.heappop(self._queue)
                self._running = name
            try:
                job()
            except Exception as exc:  # one job's failure must not end the owner's thread
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._running = None


_open: weakref.WeakSet[Background] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At exit no queued job starts (a model load during interpreter shutdown crashes in C)."""
    for owner in list(_open):
        owner.close(EXIT_WAIT_S)
