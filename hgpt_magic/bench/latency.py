"""Latency of the embedded default (Qwen2.5-Coder-1.5B Q4_K_M in-process, local experts).

- cold start: a fresh Python process loads the model and makes its first plan (the model file already
  assembled, as after installation); measured in a subprocess so nothing is warm but the OS file cache
  (and the planner's prompt-prefix KV state saved beside the model, as a user's second kernel finds it);
- warm plan: later plans in the same process, on a fixed set of requests;
- end to end: `HuggingGPT.run` on a two-task request (read the text in an image aloud: OCR, then
  speech), the first run (expert models load) and the median of the runs after it, with the time from
  the end of the last task to the first streamed answer token;
- `--busy N`: all of it again beside N busy-loop processes (a browser, another kernel), with the ratio
  busy / quiet; the busy processes are started and killed by the bench, and stop by themselves anyway.
  The plan ratios come from warm plans in alternating blocks, quiet (the busy processes paused) then busy,
  each busy plan over the same request's plan in the quiet block just before it: the speed of a shared
  machine drifts by itself (this 2-core VM: the same 6 quiet plans took 20 s, then 30 s four minutes later),
  and a quiet phase measured minutes before the busy one would count that drift as load.

Targets: warm plan <= 5 s median, cold start <= 8 s, warm two-task request <= 5 s median, first answer
token <= 1.5 s after the last task; under 2 busy processes, median plan <= 2.5x quiet and the worst <= 4x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import emit, load_llm, median, percentile, table

#: Requests planned warm: 1 to 3 tasks, HuggingGPT's vocabulary.
WARM_REQUESTS = (
    "Describe the picture holiday.jpg",
    "Transcribe interview.wav and summarize it",
    "Read the text in the image poster.png aloud",
    "Translate 'Where is the station?' into Italian and say it out loud",
    "Find the faces in group.jpg and tell me how many people there are",
    "Draw a fox in the snow, then describe the picture you made and read the description aloud",
)
COLD_REQUEST = "Read the text in the image poster.png aloud"
E2E_REQUEST = "Read the text in the image {image} aloud"

_COLD_SCRIPT = """
import json, sys, time
start = time.perf_counter()
from hgpt_magic.bench import load_llm
from hgpt_magic.pipeline import warm_planner_prefix
from hgpt_magic.planning import Planner
imported = time.perf_counter()
llm = load_llm(sys.argv[1], int(sys.argv[3]) or None)
loaded = time.perf_counter()
planner = Planner(llm)
prefix = warm_planner_prefix(llm, planner)  # as HuggingGPT does when it builds its planner
prefixed = time.perf_counter()
plan = planner.plan(sys.argv[2])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported, "prefix_s": prefixed - loaded,
                  "prefix": prefix, "first_plan_s": done - loaded, "cold_start_s": done - imported,
                  "tasks": [t.task for t in plan]}))
"""


def cold_start(spec: str, runs: int, threads: int | None = None) -> list[dict[str, Any]]:
    """Fresh processes: import, load the model, plan once. `cold_start_s` = load + first plan."""
    out = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT, spec, COLD_REQUEST, str(threads or 0)],
            capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start run failed: {proc.stderr.strip().splitlines()[-1:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def warm_plans(llm: Any, count: int) -> list[float]:
    """Seconds per plan after one warm-up plan, for `count` plans cycling through WARM_REQUESTS."""
    from ..planning import Planner

    planner = Planner(llm)
    planner.plan(WARM_REQUESTS[0])  # warm-up: the static prompt prefix is now cached
    seconds = []
    for i in range(count):
        start = time.perf_counter()
        planner.plan(WARM_REQUESTS[i % len(WARM_REQUESTS)])
        seconds.append(time.perf_counter() - start)
    return seconds


#: A busy process: one core's worth of pure Python work, ending by itself after `limit` seconds, and on
#: Linux when the bench dies (PR_SET_PDEATHSIG: the kernel sends it SIGKILL when its parent exits).
_BUSY_SCRIPT = """import sys, time
try:
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))
except Exception:
    pass
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end: pass
"""


@contextlib.contextmanager
def busy_processes(n: int, limit: float = 900.0) -> Iterator[list[subprocess.Popen]]:
    """`n` busy-loop processes for the duration of the block, killed when it ends however it ends; each
    also stops by itself after `limit` seconds, so a bench killed hard leaves none spinning for long."""
    procs: list[subprocess.Popen] = []
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `timeout`, `kill`: still clean up
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _BUSY_SCRIPT, str(limit)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
        signal.signal(signal.SIGTERM, previous)


def set_running(procs: list[subprocess.Popen], running: bool) -> None:
    """Pause (SIGSTOP) or resume (SIGCONT) the busy processes: a paused one uses no CPU at all. Returns once
    each has stopped or continued (the signals are delivered asynchronously)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT if running else signal.SIGSTOP)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_stopped(p.pid) == running for p in procs):
        time.sleep(0.005)


def _stopped(pid: int) -> bool | None:
    """Whether a process is stopped, from its /proc state (None where that cannot be read: gone, no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return None


def interleaved_plans(
    plan: Callable[[str], Any], procs: list[subprocess.Popen], rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Warm plans in `rounds` pairs of blocks, one cycle of WARM_REQUESTS each: quiet (busy processes
    paused), then busy. Each block starts with one plan outside the pairs: the model's thread policy
    decides from the load it saw since its previous look, so the first plan after the load changes is the
    one that notices (and, the first time, waits for the one-thread copy to load). Returns (quiet seconds,
    busy seconds, the seconds of each busy block's first plan), plan i of the first two lists paired (same
    request, same round). `plan`: a planner's `plan` method."""
    quiet: list[float] = []
    busy: list[float] = []
    switches: list[float] = []
    try:
        for _ in range(rounds):
            for seconds, running in ((quiet, False), (busy, True)):
                set_running(procs, running)
                start = time.perf_counter()
                plan(WARM_REQUESTS[0])
                if running:
                    switches.append(time.perf_counter() - start)
                for request in WARM_REQUESTS:
                    start = time.perf_counter()
                    plan(request)
                    seconds.append(time.perf_counter() - start)
    finally:
        set_running(procs, True)
    return quiet, busy, switches


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def sign_image(folder: Path) -> Path:
    """A white image with four black words, which OCR reads and TTS speaks."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (640, 200), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=56)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    draw.text((30, 60), "WELCOME TO THE LIBRARY", fill="black", font=font)
    path = folder / "sign.png"
    image.save(path)
    return path


def end_to_end(llm: Any, runs: int, experts: str = "auto") -> list[dict[str, Any]]:
    """`HuggingGPT.run` on the two-task request, `runs` times in one process (the first loads the experts)."""
    from ..pipeline import HuggingGPT

    out = []
    with tempfile.TemporaryDirectory(prefix="hgpt-latency-") as tmp:
        image = sign_image(Path(tmp))
        hg = HuggingGPT(llm=llm, experts=experts, out_dir=Path(tmp) / "runs")
        for _ in range(runs):
            hg.reset()
            marks: dict[str, float] = {}

            def on_event(event: Any, marks: dict[str, float] = marks) -> None:
                if event.kind == "finished":
                    marks["last_task_end"] = time.perf_counter()

            def on_text(piece: str, marks: dict[str, float] = marks) -> None:
                marks.setdefault("first_token", time.perf_counter())

            start = time.perf_counter()
            try:
                run = hg.run(E2E_REQUEST.format(image=image), on_event=on_event, on_text=on_text)
                status, error = run.status, None
            except Exception as exc:
                run, status, error = hg.last_run, "failed", f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - start
            first_token = (marks["first_token"] - marks["last_task_end"]
                           if "first_token" in marks and "last_task_end" in marks else None)
            failed = [r.error for r in (run.results.values() if run else []) if r.status != "done"]
            out.append({
                "seconds": seconds,
                "status": status if not failed else "failed",
                "error": error or (failed[0] if failed else None),
                "tasks": [t.task for t in run.plan] if run and run.plan else [],
                "timings": dict(run.timings) if run else {},
                "llm_calls": run.n_llm_calls if run else 0,
                "first_token_s": first_token,
            })
    return out


def summarise(spec: str, cold: list[dict[str, Any]], warm: list[float], e2e: list[dict[str, Any]]) -> dict[str, Any]:
    later = e2e[1:] or e2e
    stages = sorted({k for r in later for k in r["timings"]})
    cold_median = median([c["cold_start_s"] for c in cold])
    e2e_median = median([r["seconds"] for r in later])
    first_token = median([r["first_token_s"] for r in later if r.get("first_token_s") is not None])
    return {
        "bench": "latency",
        "llm": spec,
        "cold_start_s_median": cold_median,
        "cold_load_s_median": median([c["load_s"] for c in cold]),
        "cold_first_plan_s_median": median([c["first_plan_s"] for c in cold]),
        "cold_prefix": sorted({str(c.get("prefix")) for c in cold}),
        "cold_runs": len(cold),
        "warm_plan_s_median": median(warm),
        "warm_plan_s_p90": percentile(warm, 90),
        "warm_plan_s_worst": max(warm) if warm else None,
        "warm_plans": len(warm),
        "e2e_first_s": e2e[0]["seconds"] if e2e else None,
        "e2e_s_median": e2e_median,
        "e2e_first_token_s_median": first_token,
        "e2e_stage_s_median": {s: median([r["timings"].get(s, 0.0) for r in later]) for s in stages},
        "e2e_runs": len(e2e),
        "e2e_ok": sum(r["status"] == "done" for r in e2e),
        "e2e_tasks": e2e[0]["tasks"] if e2e else [],
        "e2e_error": next((r["error"] for r in e2e if r["error"]), None),
        "targets": {
            "warm_plan_median_le_5s": median(warm) is not None and median(warm) <= 5.0,
            "cold_start_le_8s": cold_median is not None and cold_median <= 8.0,
            "e2e_warm_median_le_5s": e2e_median is not None and e2e_median <= 5.0,
            "first_token_le_1_5s": first_token is not None and first_token <= 1.5,
        },
    }


def ratio(busy: float | None, quiet: float | None) -> float | None:
    return busy / quiet if busy is not None and quiet else None


def plan_ratios(quiet_warm: list[float], busy_warm: list[float], cycle: int = len(WARM_REQUESTS)) -> list[float]:
    """Each busy plan over the quiet median of the same request (both lists cycle through the same `cycle`
    requests): how much the load slowed that plan, not how much longer one request is than another."""
    quiet_by_request = {i: median(quiet_warm[i::cycle]) for i in range(min(cycle, len(quiet_warm)))}
    return [b / quiet_by_request[i % cycle] for i, b in enumerate(busy_warm) if quiet_by_request.get(i % cycle)]


def compare(
    quiet: dict[str, Any],
    busy: dict[str, Any],
    n_busy: int,
    quiet_warm: list[float] | None = None,
    busy_warm: list[float] | None = None,
    paired: bool = False,
) -> dict[str, Any]:
    """The busy figures beside the quiet ones: each as a ratio busy / quiet, and the fairness targets.

    With the plans' seconds (`quiet_warm`, `busy_warm`), the plan ratios are per request (`plan_ratios`):
    the warm requests differ in length by ~4x, so the slowest busy plan over the quiet *median* would
    count a long request as a slowdown even on an idle machine (that figure is kept, as
    `plan_ratio_worst_vs_quiet_median`). `paired`: the lists come from `interleaved_plans`, each busy plan
    over its quiet twin. Without the lists, both ratios are over the quiet median.
    """
    if paired and quiet_warm and busy_warm:
        per_plan = [b / q for b, q in zip(busy_warm, quiet_warm) if q]
    else:
        per_plan = plan_ratios(quiet_warm, busy_warm) if quiet_warm and busy_warm else []
    median_ratio = median(per_plan) if per_plan else ratio(busy["warm_plan_s_median"], quiet["warm_plan_s_median"])
    overall_worst = ratio(busy["warm_plan_s_worst"], quiet["warm_plan_s_median"])
    worst_ratio = max(per_plan) if per_plan else overall_worst
    return {
        "busy_processes": n_busy,
        "plan_ratio_median": median_ratio,
        "plan_ratio_worst": worst_ratio,
        "plan_ratio_worst_vs_quiet_median": overall_worst,
        "cold_start_ratio": ratio(busy["cold_start_s_median"], quiet["cold_start_s_median"]),
        "e2e_ratio_median": ratio(busy["e2e_s_median"], quiet["e2e_s_median"]),
        "first_token_ratio": ratio(busy["e2e_first_token_s_median"], quiet["e2e_first_token_s_median"]),
        "targets": {
            "plan_ratio_median_le_2_5": median_ratio is not None and median_ratio <= 2.5,
            "plan_ratio_worst_le_4": worst_ratio is not None and worst_ratio <= 4.0,
            "busy_plans_ge_20": busy["warm_plans"] >= 20,
        },
    }


def readable(f: dict[str, Any], busy: dict[str, Any] | None = None, ratios: dict[str, Any] | None = None) -> str:
    def cells(key: str) -> tuple[Any, ...]:
        if busy is None:
            return (f[key],)
        return (f[key], busy[key], ratio(busy[key], f[key]))

    rows = [
        ("cold start (load + first plan)", *cells("cold_start_s_median"), "<= 8 s"),
        ("  of which model load", *cells("cold_load_s_median"), ""),
        ("warm plan, median", *cells("warm_plan_s_median"), "<= 5 s"),
        ("warm plan, p90", *cells("warm_plan_s_p90"), ""),
        ("warm plan, worst", *cells("warm_plan_s_worst"), ""),
        ("end to end, first run (experts load)", *cells("e2e_first_s"), ""),
        ("end to end, median after", *cells("e2e_s_median"), "<= 5 s"),
        ("  first answer token after last task", *cells("e2e_first_token_s_median"), "<= 1.5 s"),
    ]
    for stage, seconds in f["e2e_stage_s_median"].items():
        other = (busy["e2e_stage_s_median"].get(stage),) if busy is not None else ()
        rows.append((f"  {stage}", seconds, *other, *((ratio(other[0], seconds),) if other else ()), ""))
    header = ["measure", "quiet s"] + ([f"busy({ratios['busy_processes']}) s", "busy/quiet"] if busy else []) + ["target"]
    head = f"Latency ({f['llm']}), two-task request: {' -> '.join(f['e2e_tasks']) or '-'}"
    head += f"; plans: {f['warm_plans']} quiet" + (f", {busy['warm_plans']} busy" if busy else "")
    for figures in (f, busy or {}):
        if figures.get("e2e_error"):
            head += f"\n  (error seen: {figures['e2e_error']})"
    return head + "\n" + table(rows, header) + (fairness_lines(ratios) if ratios else "")


def fairness_lines(ratios: dict[str, Any]) -> str:
    """The gated figures under the table: the busy plans over their quiet twins, and what the one-thread
    copy did (the table's "warm plan" ratio compares the sequential quiet plans instead)."""
    def x(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    lines = [f"busy plans over their quiet twins: median {x(ratios.get('plan_ratio_median'))} (target <= 2.5x), "
             f"worst {x(ratios.get('plan_ratio_worst'))} (target <= 4x)"]
    switches = ratios.get("switch_plan_s")
    if switches:
        lines.append("first plan of each busy block (not paired): " + ", ".join(f"{s:.1f} s" for s in switches))
    if ratios.get("lean_copy_started_by"):
        load = ratios.get("lean_copy_load_s")
        lines.append(f"one-thread copy: started by {ratios['lean_copy_started_by']} "
                     f"({'idle = loaded ahead' if ratios['lean_copy_started_by'] == 'idle' else 'a busy request'}), "
                     f"loaded in {'-' if load is None else f'{load:.1f} s'}")
    return "\n" + "\n".join(lines)


def measure(args: argparse.Namespace, llm: Any, plans: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One set of figures (cold, warm plans, end to end) as it stands on the machine now."""
    cold = cold_start(args.llm, args.cold_runs, args.threads) if args.cold_runs else []
    warm = warm_plans(llm, plans)
    e2e = end_to_end(llm, args.e2e_runs, args.experts) if args.e2e_runs else []
    return summarise(args.llm, cold, warm, e2e), {"cold": cold, "warm": warm, "e2e": e2e}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench latency")
    parser.add_argument("--llm", default="local", help="LLM spec (default: local, the embedded model)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for the cold start (default 3)")
    parser.add_argument("--warm-plans", type=int, default=12, help="warm plans measured quiet (default 12)")
    parser.add_argument("--e2e-runs", type=int, default=4, help="end-to-end runs; the first loads the experts (default 4)")
    parser.add_argument("--experts", default="auto", help="expert backends for the end-to-end run (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="threads for the embedded model (default: its own)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="measure again beside N busy-loop processes and print the ratios (default 0: quiet only)")
    parser.add_argument("--busy-plans", type=int, default=20, help="warm plans measured busy, in blocks of 6 "
                        "alternating with quiet ones (default 20, rounded up to 24; at least 20 for the worst-plan target)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    from ..planning import Planner

    llm = load_llm(args.llm, args.threads)
    quiet, quiet_details = measure(args, llm, args.warm_plans)
    if not args.busy:
        emit(quiet, readable(quiet), args.out, details=quiet_details)
        return 0
    rounds = -(-max(args.busy_plans, 1) // len(WARM_REQUESTS))
    with busy_processes(args.busy) as procs:
        cold = cold_start(args.llm, args.cold_runs, args.threads) if args.cold_runs else []
        quiet_twins, warm, switches = interleaved_plans(Planner(llm).plan, procs, rounds)
        e2e = end_to_end(llm, args.e2e_runs, args.experts) if args.e2e_runs else []
    busy = summarise(args.llm, cold, warm, e2e)
    busy_details = {"cold": cold, "warm": warm, "quiet_twins": quiet_twins, "switch_plans": switches, "e2e": e2e}
    ratios = compare(quiet, busy, args.busy, quiet_twins, warm, paired=True)
    lean = getattr(llm, "_lean", None)  # the embedded model's one-thread copy, when it loaded
    ratios["switch_plan_s"] = switches  # each busy block's first plan: it notices the load (unpaired)
    ratios["lean_copy_load_s"] = getattr(lean, "load_seconds", None)
    ratios["lean_copy_started_by"] = getattr(lean, "started_by", None)  # "idle": loaded ahead
    figures = {**quiet, **{k: v for k, v in ratios.items() if k != "targets"}, "busy": busy,
               "targets": {**quiet["targets"], **ratios["targets"]}}
    emit(figures, readable(quiet, busy, ratios), args.out,
         details={"quiet": quiet_details, "busy_details": busy_details})  # "busy" holds the busy figures
    return 0
