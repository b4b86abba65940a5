"""Two kernels, one model: memory and plan latency of two notebook kernels on one machine.

Each kernel is a separate Python process that builds its LLM as a notebook kernel does (`make_llm("local")`)
and plans with the real `Planner` (the registry's default vocabulary, latency.py's warm requests). Two modes:

- in-process (`HGPT_SHARED_SERVER=0`): each kernel loads its own copy of the embedded model;
- shared (`HGPT_SHARED_SERVER=1`): the first kernel starts the shared model server, the second finds it.

Per mode, with both kernels loaded and warm (one warm-up plan each):
- memory: the sum of PSS (proportional set size: a page shared by k processes counts 1/k in each, so the sum
  is what the processes cost together) of both kernels and, shared, the server; RSS where the system has no
  `/proc/PID/smaps_rollup` (then shared pages count twice: an upper bound). Read once both kernels are warm and
  again after the plans: on a busy machine the embedded model loads its one-thread copy meanwhile (threads.py);
- load: seconds from `make_llm` to an LLM that answers, per kernel (shared: the first starts the server);
- plans alone: kernel 1 plans `--plans` requests while kernel 2 sits idle with its model loaded;
- plans together: both kernels plan the same requests, started at the same moment.
The figures a user cares about: together / alone (what a second busy kernel costs the first) and
shared / in-process. "worst" ratios divide the worst plan by the alone median, as latency.py does.

Cleanup: the kernels die with the bench (PR_SET_PDEATHSIG) and are stopped at the end. In shared mode the bench
refuses to start while another shared server is live (its memory and callers would mix into the figures), stops
the server its kernel started, and removes the discovery file only where it names that server. A bench killed
hard leaves that server to exit by itself after SERVER_IDLE_S seconds unused.

    python -m hgpt_magic.bench kernels                       # both modes, 6 plans per phase
    python -m hgpt_magic.bench kernels --modes shared --plans 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import emit, median, table
from .latency import WARM_REQUESTS

MODES = ("in-process", "shared")
#: The shared server's idle limit in the bench: longer than any pause between two of its requests here
#: (the second kernel's start), short enough that a server outliving a killed bench goes soon.
SERVER_IDLE_S = 90
LOAD_TIMEOUT_S = 600.0  # a cold model load on a busy machine
PLAN_TIMEOUT_S = 300.0  # per plan: the worst seen beside busy processes was ~120 s
STOP_WAIT_S = 10.0


class BenchError(RuntimeError):
    """The bench cannot measure (a kernel failed, a foreign shared server is live); the message says why."""


# --------------------------------------------------------------------------------------- the kernel process


def kernel(spec: str) -> int:
    """One kernel, a child of the bench: build the LLM, plan once to warm up, then plan on command.

    Protocol: stdin lines `plan N` and `quit` (or end of file); one JSON line per answer on the original stdout.
    Everything else the process prints (llama.cpp writes from C) goes to stderr, so it cannot break a line.
    """
    _die_with_parent()
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    start = time.perf_counter()
    import warnings

    from ..llm import make_llm
    from ..pipeline import static_planner_prefix, warm_planner_prefix
    from ..planning import Planner

    imported = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # shared mode: finds or starts the server (which readies the planner's prefix first); else loads the model here
        llm = make_llm(spec, prefix=static_planner_prefix)
    loaded = time.perf_counter()
    planner = Planner(llm)
    warm_planner_prefix(llm, planner)  # as HuggingGPT does when it builds its planner
    planner.plan(WARM_REQUESTS[0])
    replies.write(json.dumps({
        "pid": os.getpid(),
        "backend": type(llm).__name__,
        "server_pid": getattr(llm, "server_pid", None),
        "import_s": imported - start,
        "load_s": loaded - imported,
        "warmup_s": time.perf_counter() - loaded,
        "warnings": [str(w.message) for w in caught],
    }) + "\n")
    for line in sys.stdin:
        command = line.split()
        if command[:1] != ["plan"]:
            break
        replies.write(json.dumps({**plan_requests(planner, int(command[1])),
                                  "server_pid": getattr(llm, "server_pid", None)}) + "\n")
    replies.flush()
    os._exit(0)  # not a normal exit: xllamacpp's ~Server can hang at teardown


def plan_requests(planner: Any, count: int) -> dict[str, Any]:
    """Seconds per plan for `count` plans cycling through WARM_REQUESTS; a failed plan counts its time too."""
    seconds, errors = [], []
    for i in range(count):
        start = time.perf_counter()
        try:
            planner.plan(WARM_REQUESTS[i % len(WARM_REQUESTS)])
        except Exception as exc:  # a bad plan is a figure here, not the end of the bench
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "errors": errors}


def _die_with_parent() -> None:
    """On Linux the kernel gets SIGKILL when the bench exits, however it exits (elsewhere: stopped at the end)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except Exception:
        pass


class Kernel:
    """A kernel process as the bench drives it: commands on its stdin, JSON answers read by a thread."""

    def __init__(self, spec: str, env: Mapping[str, str], log: Path):
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hgpt_magic.bench.kernels", spec],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=dict(env),
            )
        self._answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put("")  # end of output: the process exited

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"kernel {self.pid} gave no answer within {timeout:.0f} s: {self._log_tail()}") from None
        if not line:
            raise BenchError(f"kernel {self.pid} exited with status {self.proc.wait()}: {self._log_tail()}")
        return json.loads(line)

    def _log_tail(self) -> str:
        """The last lines the kernel wrote to stderr (its log lives in a folder removed when the bench ends)."""
        from ..secrets import mask_secrets

        try:
            return mask_secrets(" | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])) or "(none)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send("quit")
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------- measuring


def process_memory_mib(pid: int) -> tuple[float, str] | None:
    """(MiB, "pss") from /proc/PID/smaps_rollup, else (MiB, "rss") from `ps`; None for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024, "pss"
    except (OSError, ValueError, IndexError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip()) / 1024, "rss"
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def kernel_env(mode: str, threads: int | None) -> dict[str, str]:
    """The environment of a kernel in `mode` (the server the first shared kernel starts inherits it)."""
    import hgpt_magic

    root = str(Path(hgpt_magic.__file__).resolve().parents[1])  # the kernels run this code, not another install
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HGPT_SHARED_SERVER": "1" if mode == "shared" else "0",
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    if mode == "shared":
        env["HGPT_SHARED_SERVER_IDLE"] = str(SERVER_IDLE_S)
    if threads:
        env["HGPT_LLM_THREADS"] = str(threads)
    return env


def measure_mode(
    mode: str, spec: str, plans: int, threads: int | None, logs: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start two kernels one after the other, plan alone then together, read memory, stop everything.
    Returns the mode's figures and the details behind them (every plan's seconds, memory per process)."""
    shared = mode == "shared"
    file = _check_no_shared_server(spec) if shared else None
    since = time.time()
    kernels: list[Kernel] = []
    server_pid: int | None = None
    env = kernel_env(mode, threads)
    try:
        ready = []
        for i in range(2):  # one after the other: the first starts the shared server, the second finds it
            kernels.append(Kernel(spec, env, logs / f"{mode}-kernel{i + 1}.log"))
            ready.append(kernels[-1].answer(LOAD_TIMEOUT_S))
        pids = {"kernel 1": kernels[0].pid, "kernel 2": kernels[1].pid}
        if shared:
            server_pid = pids["server"] = ready[0]["server_pid"]
            _check_shared(ready)
        memory_loaded = {name: process_memory_mib(pid) for name, pid in pids.items()}
        timeout = LOAD_TIMEOUT_S + PLAN_TIMEOUT_S * plans
        kernels[0].send(f"plan {plans}")
        alone = kernels[0].answer(timeout)
        start = time.perf_counter()
        for k in kernels:
            k.send(f"plan {plans}")
        together = [k.answer(timeout) for k in kernels]
        together_wall = time.perf_counter() - start
        memory = {name: process_memory_mib(pid) for name, pid in pids.items()}
    finally:
        for k in kernels:
            k.stop()
        if file is not None:
            stop_server(file, server_pid or _server_started_since(file, since))
    summary = summarise_mode(mode, ready, memory_loaded, memory, alone, together, together_wall)
    return summary, {"kernels": ready, "alone": alone, "together": together,
                     "memory_loaded": memory_loaded, "memory": memory}


def _check_no_shared_server(spec: str) -> Path:
    """The discovery file, after making sure no shared server of this model is live (not ours to measure or stop)."""
    from ..llm.local import ensure_gguf
    from ..llm.shared_server import discovery_file, model_identity, read_live

    if spec != "local":
        raise BenchError(f"the shared mode shares the embedded model; --llm {spec!r} cannot be shared")
    file = discovery_file()
    live = read_live(file, model_identity(ensure_gguf(progress=False)))
    if live is not None:
        raise BenchError(
            f"a shared model server (pid {live['pid']}) already runs for this model; its memory and other callers "
            f"would mix into the figures. Wait until it exits (HGPT_SHARED_SERVER_IDLE seconds unused) or stop it."
        )
    return file


def _check_shared(ready: list[dict[str, Any]]) -> None:
    backends = {r["backend"] for r in ready}
    pids = {r["server_pid"] for r in ready}
    if backends != {"SharedServerLLM"} or len(pids) != 1:
        why = "; ".join(w for r in ready for w in r["warnings"]) or f"backends {sorted(backends)}, servers {pids}"
        raise BenchError(f"the kernels did not share one model server: {why}")


def _server_started_since(file: Path, since: float) -> int | None:
    """The pid in the discovery file when that server started after `since` (ours: none was live before)."""
    try:
        info = json.loads(file.read_text())
        return int(info["pid"]) if float(info["started"]) >= since - 1 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_server(file: Path, pid: int | None) -> None:
    """Stop the shared server `pid` (the bench's) and remove the discovery file if it still names that server:
    a file naming any other process is someone else's."""
    from ..llm.shared_server import _pid_alive

    if pid is None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_WAIT_S), (signal.SIGKILL, STOP_WAIT_S)):
        if not _pid_alive(pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(file.read_text()).get("pid") == pid:
            file.unlink()


# ------------------------------------------------------------------------------------------ summarising


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def summarise_mode(
    mode: str,
    ready: Sequence[Mapping[str, Any]],
    memory_loaded: Mapping[str, tuple[float, str] | None],
    memory: Mapping[str, tuple[float, str] | None],
    alone: Mapping[str, Any],
    together: Sequence[Mapping[str, Any]],
    together_wall_s: float,
) -> dict[str, Any]:
    """One mode's figures from the kernels' answers and the memory read per process (warm, and after the plans)."""
    alone_s = list(alone["seconds"])
    together_s = [s for answer in together for s in answer["seconds"]]
    kinds = {m[1] for m in (*memory_loaded.values(), *memory.values()) if m is not None}
    alone_median, together_median = median(alone_s), median(together_s)
    errors = [e for answer in (alone, *together) for e in answer["errors"]]
    servers = {a.get("server_pid") for a in (*ready, alone, *together)} - {None}
    return {
        "mode": mode,
        "memory_mib_loaded": _total(memory_loaded),
        "memory_mib": _total(memory),
        "memory_kind": "+".join(sorted(kinds)) or None,
        "memory_mib_by_process": {name: (m[0] if m else None) for name, m in memory.items()},
        "load_s": [r["load_s"] for r in ready],
        "alone_s_median": alone_median,
        "alone_s_worst": max(alone_s, default=None),
        "together_s_median": together_median,
        "together_s_worst": max(together_s, default=None),
        "together_over_alone_median": ratio(together_median, alone_median),
        "together_over_alone_worst": ratio(max(together_s, default=None), alone_median),
        "together_wall_s": together_wall_s,
        "plans_alone": len(alone_s),
        "plans_together": len(together_s),
        "plans_failed": len(errors),
        "first_error": errors[0] if errors else None,
        "servers": len(servers),  # shared: 1 unless the server exited and a kernel started another
    }


def _total(memory: Mapping[str, tuple[float, str] | None]) -> float | None:
    """MiB of all the processes; None when one could not be read (a partial sum would flatter)."""
    if any(m is None for m in memory.values()):
        return None
    return sum(m[0] for m in memory.values() if m is not None)


#: The figures compared across modes, shared over in-process.
COMPARED = ("memory_mib_loaded", "memory_mib", "alone_s_median", "alone_s_worst", "together_s_median", "together_s_worst",
            "together_over_alone_median", "together_over_alone_worst", "together_wall_s")


def compare(modes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    if not {"in-process", "shared"} <= modes.keys():
        return None
    return {key: ratio(modes["shared"][key], modes["in-process"][key]) for key in COMPARED}


def figures(plans: int, threads: int | None, modes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "bench": "kernels",
        "plans": plans,
        "threads": threads,
        **{mode.replace("-", "_"): summary for mode, summary in modes.items()},
        "shared_over_in_process": compare(modes),
    }


def readable(f: Mapping[str, Any]) -> str:
    modes = [m for m in MODES if m.replace("-", "_") in f]
    columns = [f[m.replace("-", "_")] for m in modes]
    versus = f.get("shared_over_in_process")

    def row(label: str, key: str, index: int | None = None) -> tuple[Any, ...]:
        values = [c[key][index] if index is not None else c[key] for c in columns]
        return (label, *values, *(((versus or {}).get(key) if index is None else None,) if versus else ()))

    kind = "/".join(sorted({c["memory_kind"] or "?" for c in columns})).upper()
    rows = [
        row(f"memory when warm, kernels + server, MiB ({kind})", "memory_mib_loaded"),
        row("memory after the plans, MiB", "memory_mib"),
        row("load, kernel 1 s (shared: starts the server)", "load_s", 0),
        row("load, kernel 2 s (shared: connects)", "load_s", 1),
        row("plan, kernel 1 alone, median s", "alone_s_median"),
        row("plan, kernel 1 alone, worst s", "alone_s_worst"),
        row("plan, both together, median s", "together_s_median"),
        row("plan, both together, worst s", "together_s_worst"),
        row("together / alone, median", "together_over_alone_median"),
        row("together / alone, worst", "together_over_alone_worst"),
        row("both kernels' plans together, wall s", "together_wall_s"),
    ]
    head = f"Two kernels, {f['plans']} plans each per phase, threads: {f['threads'] or 'default'}"
    for mode, c in zip(modes, columns):
        if c["plans_failed"]:
            head += f"\n  ({mode}: {c['plans_failed']} plans failed, e.g. {c['first_error']})"
        if c["servers"] > 1:
            head += f"\n  ({mode}: the server was restarted during the bench; figures are mixed)"
    header = ["measure", *modes, *(["shared/in-process"] if versus else [])]
    return head + "\n" + table(rows, header)


# ------------------------------------------------------------------------------------------------- CLI


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)} (comma-separated); got {text!r}")
    return list(dict.fromkeys(modes))


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench kernels")
    parser.add_argument("--plans", type=int, default=6, help="plans per kernel per phase (default 6)")
    parser.add_argument("--modes", type=parse_modes, default=list(MODES),
                        help="comma-separated: in-process (a model per kernel), shared (one server) (default both)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the embedded model, as HGPT_LLM_THREADS (default: its own choice)")
    parser.add_argument("--llm", default="local",
                        help="LLM spec the kernels build (default local, the embedded model; shared mode needs it)")
    parser.add_argument("--out", default=None, help="write the figures and every plan's seconds as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    if args.plans < 1:
        print("kernels: --plans must be at least 1", file=sys.stderr)
        return 2
    modes: dict[str, dict[str, Any]] = {}
    details: dict[str, dict[str, Any]] = {}
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `timeout`, `kill`: still stop the server
    try:
        with tempfile.TemporaryDirectory(prefix="hgpt-kernels-") as logs:
            for mode in args.modes:
                modes[mode], details[mode] = measure_mode(mode, args.llm, args.plans, args.threads, Path(logs))
    except BenchError as exc:
        print(f"kernels: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    result = figures(args.plans, args.threads, modes)
    emit(result, readable(result), args.out, details={"details": details})
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(kernel(sys.argv[1] if len(sys.argv) > 1 else "local"))
