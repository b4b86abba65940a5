"""How many CPU threads the embedded model should compute with right now: all of them, or one.

Why: llama.cpp splits each matrix product over its threads and the threads wait for each other at every step
by spinning. On an idle machine two threads on two cores are ~2x faster than one. When other processes keep
the cores busy, the OS deschedules one of the model's threads for a whole time slice while the other spins
waiting for it at the next barrier; every step then costs a scheduler slice instead of a few milliseconds.
That is the cause of the 10-40x slowdowns and of the sudden outliers (a plan of 120 s against 4 s quiet): they
happen whenever another busy process shares a core with one of the model's threads. A single thread never
waits for another, so it degrades by its fair share only.

llama.cpp fixes the thread count when a model loads, so `LocalLLM` keeps a second, "lean" copy of the model
(the same memory-mapped GGUF, but about 0.9 GB more: llama.cpp repacks the weights for the CPU per copy) with
one generation thread, loaded ahead once the model has sat idle after a request (`LeanCopy`), and
`ThreadPolicy` tells it before each request which copy to use, from how much CPU *other* processes used since
the last look (or, after a pause, in a fresh 0.1 s window):
all-CPU busy time from `/proc/stat` minus this process's own from `/proc/self/stat` (our own model and
Python threads must not count as load). Where `/proc` is missing (macOS, Windows) the policy always says full.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .background import Background

#: Fewer free cores than the full thread count minus this switches to the lean copy ...
ENTER_LEAN_BELOW = 0.5
#: ... and more free cores than the full thread count minus this switches back (hysteresis: no flapping).
LEAVE_LEAN_ABOVE = 0.25
#: A previous sample younger than this is too short to measure; the previous decision stands.
MIN_WINDOW_S = 0.25
#: A previous sample older than this says little about now; measure a fresh window (0.1 s, once per cell: a
#: request's own LLM calls come closer together). With 30 s, a session that had been quiet for 12 s averaged
#: the load that had just begun away, and the first busy plan ran on the full-thread model.
MAX_WINDOW_S = 2.0
#: How long a request on a busy machine waits for the one-thread copy to finish loading (a few seconds, more
#: on a loaded machine) before it gives up and uses the full model: two spinning threads on busy cores made
#: plans of 40-68 s where the copy makes them in 3-14 s (`bench latency --busy 2` with `HGPT_LLM_THREADS=2`).
LEAN_WAIT_S = 30.0
#: After the model's last request, this long without another one and the one-thread copy loads ahead (see
#: `LeanCopy`). Longer than a request's own pauses between LLM calls (experts running, usually 1-3 s once
#: loaded), so the load rarely competes with a request; shorter than a user's pause between two cells.
PRELOAD_AFTER_IDLE_S = 5.0
#: The fresh window's length: 2 cores x 100 Hz ticks x 0.1 s = 20 ticks, enough to tell 0.5 core apart.
FRESH_WINDOW_S = 0.1


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU ticks: every CPU's busy time, and this process's own (all its threads)."""

    all_busy: int
    own: int
    at: float  # time.monotonic()


def parse_all_busy(proc_stat: str) -> int:
    """Busy ticks of all CPUs from `/proc/stat`'s first line (everything but idle and iowait)."""
    fields = proc_stat.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        raise ValueError("no aggregate 'cpu' line")
    values = [int(v) for v in fields[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal  # guest time is already inside user


def parse_own(proc_self_stat: str) -> int:
    """utime + stime ticks of a process from its `/proc/PID/stat` (the name may hold spaces and ')')."""
    rest = proc_self_stat.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # fields 14 and 15; rest[0] is field 3 (state)


def read_sample() -> CpuSample | None:
    """The current sample, or None where /proc is unavailable or unreadable."""
    try:
        with open("/proc/stat") as f:
            all_busy = parse_all_busy(f.read(512))
        with open("/proc/self/stat") as f:
            own = parse_own(f.read())
    except (OSError, ValueError, IndexError):
        return None
    return CpuSample(all_busy, own, time.monotonic())


def others_cores(before: CpuSample, after: CpuSample, ticks_per_s: float) -> float:
    """Average number of cores other processes kept busy between two samples (never negative)."""
    seconds = after.at - before.at
    if seconds <= 0:
        return 0.0
    ticks = (after.all_busy - before.all_busy) - (after.own - before.own)
    return max(0.0, ticks / (seconds * ticks_per_s))


class ThreadPolicy:
    """Per request: should the model use its full thread count, or the one-thread lean copy?

    `lean_now()` is called before each request and measures since its previous look (our own requests
    included: this process's CPU time is subtracted, and while our threads compete, others still get their
    share, so their load shows). Looks less than `MIN_WINDOW_S` apart keep the decision and let the window
    grow; a look after a long pause measures a fresh `FRESH_WINDOW_S` window. Thread-safe.
    """

    def __init__(
        self,
        full_threads: int,
        cores: int | None = None,
        reader: Callable[[], CpuSample | None] = read_sample,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.full_threads = full_threads
        self.cores = cores or os.cpu_count() or 1  # /proc/stat counts every CPU of the machine
        self.ticks_per_s = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._read = reader
        self._sleep = sleep
        self._last: CpuSample | None = None
        self._lean = False
        self.last_others: float | None = None  # what the last look saw, for benchmarks and logs
        self._lock = threading.Lock()

    def lean_now(self) -> bool:
        """True when other processes leave fewer free cores than the model's threads need."""
        with self._lock:
            now = self._read()
            if now is None:
                return False
            before = self._last
            age = now.at - before.at if before else None
            if age is not None and age < MIN_WINDOW_S:
                return self._lean  # too short to measure: keep the decision, the window keeps growing
            if age is None or age > MAX_WINDOW_S:
                self._sleep(FRESH_WINDOW_S)
                before, now = now, self._read()
                if now is None:
                    return False
            others = others_cores(before, now, self.ticks_per_s)
            self.last_others = others
            free = self.cores - others
            if self._lean:
                self._lean = free < self.full_threads - LEAVE_LEAN_ABOVE
            else:
                self._lean = free < self.full_threads - ENTER_LEAN_BELOW
            self._last = now
            return self._lean


class LeanCopy:
    """The one-thread copy of the model: loaded ahead while the model sits idle, or when the machine is busy.

    Loading it takes seconds on a quiet machine but 10-15 s beside two busy processes (llama.cpp repacks the
    weights on a third of the CPU), so waiting until the load appears made the first busy request the slowest
    (measured: 11-17 s against 1.4 s quiet). So the copy loads ahead: every request to the model runs inside
    `request()`, and once the model has had no request for `preload_after_idle` seconds after one (the user
    reads the answer, writes the next cell) the copy loads in the background, where it rarely competes with a
    request of ours. A process that never makes a request never pays for it (about 0.9 GB and a few CPU seconds).

    `get(wait)` starts the load if needed and waits up to `wait` seconds for it: it returns None until the
    copy is loaded and its prompt cache warmed (`warm`: the saved prefixes, the full model's latest state).
    The request that notices the load waits (`LEAN_WAIT_S`): the full model's threads on busy cores are
    slower than the load.
    A copy that fails to load is not retried; the full-thread model keeps answering.

    All of it (the idle timer, the load and warm, each sync) runs as named jobs of one `Background` owner,
    one at a time: a sync never runs beside the load or another sync.
    """

    def __init__(
        self,
        load: Callable[[], object],
        warm: Callable[[object], None],
        preload_after_idle: float | None = None,
        sync: Callable[[object], None] | None = None,
        background: Background | None = None,
    ):
        self._load = load
        self._warm = warm
        self._sync = sync  # once loaded, run in the background after each request (`request()`)
        self._jobs = background if background is not None else Background("hgpt-lean-copy")
        self.syncs = 0  # syncs done, and why the last one failed (if it did)
        self.sync_error: str | None = None
        self.preload_after_idle = preload_after_idle  # None: load only when the machine is seen busy
        self._server: object | None = None
        self._load_started = False
        self._loaded = threading.Event()  # set when the load ended, loaded or failed
        self.error: str | None = None
        self.load_seconds: float | None = None  # load + warm, for benchmarks and logs
        self.started_by: str | None = None  # "idle" (loaded ahead) or "busy" (a busy request asked first)
        self._in_flight = 0  # requests to the model running now
        self._started = 0  # requests to the model started so far: an idle timer sees whether one began since
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Wrap each request to the model (either copy): after the last one ends, an idle spell of
        `preload_after_idle` seconds loads the copy ahead; once it is loaded, `sync` runs in the background
        after each request (skipped while one is queued or running), to keep the copy's prompt cache in step
        with the session."""
        with self._lock:
            self._in_flight += 1
            self._started += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                started = self._started
                schedule = self.preload_after_idle is not None and not self._load_started and not self._in_flight
                delay = self.preload_after_idle
                server = self._server
            if self._sync is not None and server is not None:
                self._jobs.submit("sync", lambda: self._run_sync(server))
            if schedule:  # a newer timer replaces the older: only the latest request's idle spell counts
                self._jobs.submit("load-when-idle", lambda: self._when_idle(started), delay=delay, replace=True)

    def _when_idle(self, started: int) -> None:
        with self._lock:
            if self._in_flight or self._started != started:  # a request began since the timer was set
                return
            if self.preload_after_idle is None:  # turned off since (`LocalLLM.keep_lean_copy_ready`)
                return
        self._begin("idle")

    def _run_sync(self, server: object) -> None:
        try:
            self._sync(server)  # type: ignore[misc]  # submitted only when there is one
            with self._lock:
                self.syncs += 1
        except Exception as exc:  # the copy still answers, with an older prompt cache
            with self._lock:
                self.sync_error = f"{type(exc).__name__}: {exc}"

    def get(self, wait: float = 0.0) -> object | None:
        self._begin("busy")
        with self._lock:
            server = self._server
        if server is None and wait > 0:
            self._loaded.wait(wait)
            with self._lock:
                server = self._server
        return server

    def _begin(self, reason: str) -> None:
        """Start the load in the background, once."""
        with self._lock:
            if self._load_started:
                return
            self._load_started = True
            self.started_by = reason
        if not self._jobs.submit("load", self._start):  # the owner was closed: no load, the full model answers
            self.error = "not loaded: background work closed"
            self._loaded.set()

    def _start(self) -> None:
        start = time.monotonic()
        try:
            server = self._load()
            self._warm(server)
        except Exception as exc:  # the full model still answers; say why in `error` for diagnostics
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            with self._lock:
                self._server = server
                self.load_seconds = time.monotonic() - start
        finally:
            self._loaded.set()

    def wait(self, timeout: float | None = None) -> object | None:
        """The loaded copy after waiting for a started load (tests and benchmarks)."""
        with self._lock:
            started = self._load_started
        if started:
            self._loaded.wait(timeout)
        with self._lock:
            return self._server
