"""The thread policy: parsing /proc, "others' load" arithmetic and the full/lean decision, on synthetic readings."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from hgpt_magic.llm.background import Background
from hgpt_magic.llm.threads import (
    FRESH_WINDOW_S,
    CpuSample,
    LeanCopy,
    ThreadPolicy,
    others_cores,
    parse_all_busy,
    parse_own,
    read_sample,
)

PROC_STAT = "cpu  100 5 50 9000 20 3 2 1 0 0\ncpu0 50 2 25 4500 10 1 1 0 0 0\nintr 1 2 3\n"
SELF_STAT = "4242 (python (a) b) S 1 4242 4242 0 -1 4194560 5000 0 0 0 123 45 0 0 20 0 9 0 100 0 0"


def test_parsing_proc_files():
    assert parse_all_busy(PROC_STAT) == 100 + 5 + 50 + 3 + 2 + 1  # idle and iowait are not busy
    assert parse_own(SELF_STAT) == 123 + 45  # a name holding ") " does not shift the fields


def test_read_sample_on_this_machine():
    sample = read_sample()
    assert sample is None or (sample.all_busy > 0 and sample.own >= 0)


def test_others_subtracts_our_own_time():
    before = CpuSample(all_busy=1000, own=100, at=10.0)
    # 1 s at 100 ticks/s: the machine was busy 180 ticks, 120 of them ours -> others used 0.6 core
    after = CpuSample(all_busy=1180, own=220, at=11.0)
    assert abs(others_cores(before, after, 100.0) - 0.6) < 1e-9
    assert others_cores(before, CpuSample(1050, 200, 11.0), 100.0) == 0.0  # rounding never goes negative
    assert others_cores(before, before, 100.0) == 0.0


class FakeProc:
    """A machine whose other processes use `others` cores; time advances only when the policy sleeps or we say."""

    def __init__(self, cores: int = 2):
        self.cores, self.others, self.t, self.busy, self.own = cores, 0.0, 0.0, 0, 0

    def advance(self, seconds: float, own_cores: float = 0.0) -> None:
        self.t += seconds
        self.own += round(own_cores * seconds * 100)
        self.busy += round((self.others + own_cores) * seconds * 100)

    def read(self) -> CpuSample:
        return CpuSample(self.busy, self.own, self.t)


def make_policy(proc: FakeProc, full: int = 2) -> ThreadPolicy:
    policy = ThreadPolicy(full, cores=proc.cores, reader=proc.read, sleep=proc.advance)
    policy.ticks_per_s = 100.0
    return policy


def test_quiet_machine_keeps_all_threads_even_while_we_compute():
    proc = FakeProc()
    policy = make_policy(proc)
    assert policy.lean_now() is False  # first look: a fresh short window
    proc.advance(1.5, own_cores=2.0)  # our own model computing on both cores is not load
    assert policy.lean_now() is False


def test_busy_machine_switches_to_lean_and_back_with_hysteresis():
    proc = FakeProc()
    policy = make_policy(proc)
    proc.others = 2.0  # two busy loops
    assert policy.lean_now() is True
    assert abs(policy.last_others - 2.0) < 0.01
    proc.others = 0.6  # between the thresholds: stays lean (no flapping on noise)
    proc.advance(1.0)
    assert policy.lean_now() is True
    proc.others = 0.1
    proc.advance(1.0)
    assert policy.lean_now() is False
    proc.others = 0.4  # not enough to leave the full model (free 1.6 of 2)
    proc.advance(1.0)
    assert policy.lean_now() is False


def test_window_lengths():
    proc = FakeProc()
    policy = make_policy(proc)
    policy.lean_now()
    assert proc.t == FRESH_WINDOW_S  # no earlier sample: measured a short fresh window
    proc.others = 2.0
    proc.advance(0.1)
    assert policy.lean_now() is False  # too soon after the last sample: the previous decision stands
    proc.advance(0.2)
    assert policy.lean_now() is True  # the short looks added up to a window: measured now
    proc.advance(60.0)  # a stale sample: a busy minute long ago must not hide that the machine is quiet now
    proc.others = 0.0
    t = proc.t
    assert policy.lean_now() is False and proc.t == t + FRESH_WINDOW_S


def test_load_that_begins_after_a_quiet_pause_is_seen_by_the_next_cell():
    proc = FakeProc()
    policy = make_policy(proc)
    assert policy.lean_now() is False
    proc.advance(12.0)  # the user reads the answer on a quiet machine ...
    proc.others = 2.0
    proc.advance(1.0)  # ... then two busy processes start a second before the next cell
    assert policy.lean_now() is True  # not averaged away over the quiet 12 s


def test_no_proc_means_full_threads():
    policy = ThreadPolicy(2, cores=2, reader=lambda: None, sleep=lambda s: None)
    assert policy.lean_now() is False


def test_lean_copy_loads_in_background_and_reports_failure():
    gate = threading.Event()
    warmed: list[object] = []

    def load():
        gate.wait(5)
        return "lean-server"

    copy = LeanCopy(load, warmed.append)
    assert copy.get() is None  # never waits for the load
    gate.set()
    assert copy.wait(5) == "lean-server" and warmed == ["lean-server"]
    assert copy.get() == "lean-server"

    def broken():
        raise MemoryError("no room for a second copy")

    failed = LeanCopy(broken, warmed.append)
    assert failed.get() is None
    assert failed.wait(5) is None and "no room" in failed.error
    assert failed.get() is None  # not retried: the full model keeps answering


def test_the_request_that_notices_the_load_waits_for_the_copy_within_a_bound():
    import time

    gate = threading.Event()

    def load():
        gate.wait(5)
        return "lean-server"

    copy = LeanCopy(load, lambda server: None)
    start = time.monotonic()
    assert copy.get(wait=0.2) is None  # still loading after the bound: the caller uses the full model
    assert 0.2 <= time.monotonic() - start < 2
    threading.Timer(0.1, gate.set).start()
    assert copy.get(wait=5) == "lean-server"  # loaded within the bound: this request already uses it
    assert copy.load_seconds is not None and copy.load_seconds >= 0.2


def test_lean_copy_loads_ahead_once_the_model_has_been_idle_after_a_request():
    import time

    loads: list[float] = []

    def load():
        loads.append(time.monotonic())
        return "lean-server"

    copy = LeanCopy(load, lambda server: None, preload_after_idle=0.3)
    time.sleep(0.5)
    assert copy.started_by is None  # no request yet: a process that never asks never pays for the copy
    with copy.request():
        time.sleep(0.5)  # a long request is not idleness
    assert copy.started_by is None
    for _ in range(4):  # requests closer together than the idle spell keep putting the load off
        time.sleep(0.15)
        with copy.request():
            pass
    assert copy.started_by is None
    ended = time.monotonic()
    deadline = time.monotonic() + 5
    while copy.started_by is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert copy.started_by == "idle" and copy.wait(5) == "lean-server"
    assert len(loads) == 1 and loads[0] - ended >= 0.25  # after the idle spell, not at the request's end
    with copy.request():  # later requests start nothing more
        pass
    time.sleep(0.5)
    assert len(loads) == 1 and copy.get() == "lean-server"


def test_a_loaded_copy_is_synced_after_each_request_one_sync_at_a_time():
    synced: list[object] = []
    inside = threading.Event()
    release = threading.Event()

    def sync(server):
        synced.append(server)
        inside.set()
        release.wait(5)

    copy = LeanCopy(lambda: "lean-server", lambda server: None, sync=sync)
    with copy.request():  # not loaded yet: nothing to sync
        pass
    time.sleep(0.2)
    assert synced == []
    assert copy.get(wait=5) == "lean-server"
    with copy.request():
        pass
    assert inside.wait(5) and synced == ["lean-server"]
    with copy.request():  # ends while the first sync runs: skipped, not run beside it
        pass
    release.set()
    deadline = time.monotonic() + 5
    while copy.syncs < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert synced == ["lean-server"] and copy.syncs == 1 and copy.sync_error is None


def test_preload_turned_off_after_the_last_request_loads_nothing():
    copy = LeanCopy(lambda: "lean-server", lambda server: None, preload_after_idle=0.2)
    with copy.request():  # the CLI's plan: the idle timer is armed when it ends ...
        pass
    copy.preload_after_idle = None  # ... and the CLI turns the preload off right after
    time.sleep(0.5)
    assert copy.started_by is None and copy.wait(0.1) is None


def test_lean_copy_without_preload_waits_for_a_busy_request():
    import time

    copy = LeanCopy(lambda: "lean-server", lambda server: None)  # an explicit thread count: no preload
    with copy.request():
        pass
    time.sleep(0.3)
    assert copy.started_by is None
    assert copy.get(wait=5) == "lean-server" and copy.started_by == "busy"


def test_background_jobs_run_one_at_a_time_in_due_order_on_one_thread():
    jobs = Background("hgpt-test-jobs")
    ran: list[tuple[str, str]] = []
    inside = threading.Event()
    release = threading.Event()

    def job(name, block=False):
        def run():
            ran.append((name, threading.current_thread().name))
            if block:
                inside.set()
                release.wait(5)
        return run

    assert jobs.submit("slow", job("slow", block=True)) and inside.wait(5)
    assert jobs.submit("later", job("later"), delay=0.3)
    assert jobs.submit("soon", job("soon"))
    assert not jobs.submit("slow", job("slow again"))  # running: a second of that name is skipped
    assert not jobs.submit("soon", job("soon again"))  # queued: skipped too
    assert jobs.submit("later", job("later, replaced"), delay=0.2, replace=True)  # a newer timer replaces it
    release.set()
    deadline = time.monotonic() + 5
    while len(ran) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [name for name, _ in ran] == ["slow", "soon", "later, replaced"]
    assert {thread for _, thread in ran} == {"hgpt-test-jobs"}  # one thread runs them all
    jobs.close(timeout=5)
    assert not jobs.submit("after", job("after")) and not any(t.name == "hgpt-test-jobs" for t in threading.enumerate())


def test_closing_the_background_drops_queued_jobs_and_survives_a_failing_one():
    jobs = Background("hgpt-test-close")
    ran: list[str] = []
    assert jobs.submit("broken", lambda: 1 / 0)
    assert jobs.submit("ok", lambda: ran.append("ok"))
    deadline = time.monotonic() + 5
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == ["ok"] and jobs.errors == ["broken: ZeroDivisionError: division by zero"]
    assert jobs.submit("never", lambda: ran.append("never"), delay=0.3)
    jobs.close(timeout=5)
    time.sleep(0.5)
    assert ran == ["ok"] and not jobs.pending("never")  # a queued job does not outlive close()
    copy = LeanCopy(lambda: "lean-server", lambda server: None, background=jobs)
    assert copy.get(wait=1) is None and "closed" in copy.error  # the full model answers instead


@pytest.mark.slow
def test_a_server_that_checks_an_api_key_still_gives_its_copy_the_prompt_cache(monkeypatch, tmp_path):
    """As the shared model server runs it: llama.cpp checks an API key on every request, slot saves and
    restores included. The copy's prefix restore and the copy of the latest state must carry the key, or the
    server refuses them and the copy silently recomputes every prompt."""
    import secrets

    from hgpt_magic.llm.local import LocalLLM, _slot_action, ensure_gguf

    monkeypatch.delenv("HGPT_LLM_THREADS", raising=False)
    gguf = ensure_gguf()
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path))

    class Keyed(LocalLLM):
        _api_key = secrets.token_urlsafe(16)

        def _params(self, threads, batch_threads, port):
            params = super()._params(threads, batch_threads, port)
            params.api_keys = [self._api_key]
            return params

    llm = Keyed(gguf, n_ctx=2048)
    if llm._thread_policy is None:
        pytest.skip("one usable core: there is no lean copy to move to")
    assert _slot_action(llm._server, "save", "probe.bin", api_key=None).startswith("HTTP 401")  # the key is checked
    llm._thread_policy = make_policy(FakeProc(cores=2))  # a quiet machine: the full model answers every request
    demos = {"role": "system", "content": "You plan tasks. " + "Demo: a request and its plan. " * 40}
    assert llm.warm_prefix([demos]) == "computed"
    system = {"role": "system", "content": "You answer in one word. " + "Rules: be brief and exact. " * 40}
    first = llm.chat([system, {"role": "user", "content": "Colour of the sky?"}], max_tokens=3)
    lean = llm._lean.get(wait=120)  # loads, restores the saved prefix, copies the latest state: all with the key
    assert lean is not None and llm._lean.error is None
    for prompt in ([system, {"role": "user", "content": "Colour of snow?"}], [demos, {"role": "user", "content": "Plan x"}]):
        response = lean.handle_chat_completions({"messages": prompt, "max_tokens": 1, "cache_prompt": True})
        assert response["timings"]["prompt_n"] < first.prompt_tokens / 4, prompt[0]["content"][:20]  # not recomputed
    later = [{"role": "system", "content": "You list facts. " + "Each fact on its own line. " * 40},
             {"role": "user", "content": "Facts about the moon?"}]
    asked = llm.chat(later, max_tokens=2)  # the full model answers; the sync copies its state, with the key
    deadline = time.monotonic() + 60
    while llm._lean.syncs == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm._lean.syncs >= 1 and llm._lean.sync_error is None and llm.background.errors == []
    response = lean.handle_chat_completions({"messages": later, "max_tokens": 1, "cache_prompt": True})
    assert response["timings"]["prompt_n"] < asked.prompt_tokens / 4


@pytest.mark.slow
def test_busy_machine_moves_requests_to_the_lean_copy_with_the_prompt_cache(monkeypatch, tmp_path):
    """The real model: a policy seeing two busy cores sends requests to the one-thread copy, which starts with
    the full model's KV states: the saved prompt prefix (from its file) and the latest prompt (copied through
    a slot file). Neither is recomputed, and the second restore does not wipe out the first."""
    from hgpt_magic.llm.local import LocalLLM, ensure_gguf

    monkeypatch.delenv("HGPT_LLM_THREADS", raising=False)
    gguf = ensure_gguf()
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path))  # the prefix file below goes here, not into the user's cache
    llm = LocalLLM(gguf, n_ctx=2048)
    if llm._thread_policy is None:
        pytest.skip("one usable core: there is no lean copy to move to")
    demos = {"role": "system", "content": "You plan tasks. " + "Demo: a request and its plan. " * 40}
    assert llm.warm_prefix([demos]) == "computed"  # saved beside the model, as the planner's demos are
    system = {"role": "system", "content": "You answer in one word. " + "Rules: be brief and exact. " * 40}
    first = llm.chat([system, {"role": "user", "content": "Colour of the sky?"}], max_tokens=3)
    proc = FakeProc(cores=2)
    proc.others = 2.0
    llm._thread_policy = make_policy(proc)
    llm.chat([system, {"role": "user", "content": "Colour of grass?"}], max_tokens=3)  # noticed: lean loads
    lean = llm._lean.wait(120)
    assert lean is not None and llm._lean.error is None and llm._lean.started_by == "busy"
    assert llm._server_for() is lean
    for prompt in ([system, {"role": "user", "content": "Colour of snow?"}], [demos, {"role": "user", "content": "Plan x"}]):
        response = lean.handle_chat_completions({"messages": prompt, "max_tokens": 1, "cache_prompt": True})
        assert response["timings"]["prompt_n"] < first.prompt_tokens / 4, prompt[0]["content"][:20]  # from the copy
    assert not list(Path(llm._slot_dir).glob(f"lean-{os.getpid()}-*.bin"))  # the copy's slot file was removed


@pytest.mark.slow
def test_the_real_model_loads_its_lean_copy_ahead_after_a_streamed_request(monkeypatch):
    """Requests through `chat` (here streamed) count for the idle timer: once the model has sat idle after
    one, the copy loads ahead, so the first request on a busy machine finds it ready."""
    from hgpt_magic.llm import threads
    from hgpt_magic.llm.local import LocalLLM

    monkeypatch.delenv("HGPT_LLM_THREADS", raising=False)
    monkeypatch.setattr(threads, "PRELOAD_AFTER_IDLE_S", 0.5)
    llm = LocalLLM(n_ctx=2048)
    if llm._thread_policy is None:
        pytest.skip("one usable core: there is no lean copy to move to")
    pieces: list[str] = []
    llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=4, on_text=pieces.append)
    assert pieces and llm._lean.wait(0.1) is None  # not while answering
    deadline = time.monotonic() + 10
    while llm._lean.started_by is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm._lean.started_by == "idle"
    lean = llm._lean.wait(120)
    assert lean is not None and llm._lean.error is None
    later = [{"role": "system", "content": "You list facts. " + "Each fact on its own line. " * 40},
             {"role": "user", "content": "Facts about the moon?"}]
    synced = llm._lean.syncs
    asked = llm.chat(later, max_tokens=2)  # answered by the full model; its state then goes to the copy too
    deadline = time.monotonic() + 30
    while llm._lean.syncs == synced and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm._lean.syncs > synced and llm._lean.sync_error is None
    response = lean.handle_chat_completions({"messages": later, "max_tokens": 1, "cache_prompt": True})
    assert response["timings"]["prompt_n"] < asked.prompt_tokens / 4  # in the copy's cache, not recomputed
    proc = FakeProc(cores=2)
    proc.others = 2.0
    llm._thread_policy = make_policy(proc)
    assert llm._server_for() is lean
