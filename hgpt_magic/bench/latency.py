"""Latency of the embedded default (Qwen2.5-Coder-1.5B Q4_K_M in-process, local experts).

- cold start: a fresh Python process loads the model and makes its first plan (the model file already
  assembled, as after installation); measured in a subprocess so nothing is warm but the OS file cache;
- warm plan: later plans in the same process, on a fixed set of requests;
- end to end: `HuggingGPT.run` on a two-task request (read the text in an image aloud: OCR, then
  speech), the first run (expert models load) and the median of the runs after it.

Targets: warm plan <= 5 s median, cold start <= 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
from hgpt_magic.planning import Planner
imported = time.perf_counter()
llm = load_llm(sys.argv[1], int(sys.argv[3]) or None)
loaded = time.perf_counter()
plan = Planner(llm).plan(sys.argv[2])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported, "first_plan_s": done - loaded,
                  "cold_start_s": done - imported, "tasks": [t.task for t in plan]}))
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


def warm_plans(llm: Any, repeats: int) -> list[float]:
    """Seconds per plan after one warm-up plan, over WARM_REQUESTS x repeats."""
    from ..planning import Planner

    planner = Planner(llm)
    planner.plan(WARM_REQUESTS[0])  # warm-up: the static prompt prefix is now cached
    seconds = []
    for _ in range(repeats):
        for request in WARM_REQUESTS:
            start = time.perf_counter()
            planner.plan(request)
            seconds.append(time.perf_counter() - start)
    return seconds


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
            start = time.perf_counter()
            try:
                run = hg.run(E2E_REQUEST.format(image=image))
                status, error = run.status, None
            except Exception as exc:
                run, status, error = hg.last_run, "failed", f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - start
            failed = [r.error for r in (run.results.values() if run else []) if r.status != "done"]
            out.append({
                "seconds": seconds,
                "status": status if not failed else "failed",
                "error": error or (failed[0] if failed else None),
                "tasks": [t.task for t in run.plan] if run and run.plan else [],
                "timings": dict(run.timings) if run else {},
                "llm_calls": run.n_llm_calls if run else 0,
            })
    return out


def summarise(spec: str, cold: list[dict[str, Any]], warm: list[float], e2e: list[dict[str, Any]]) -> dict[str, Any]:
    later = e2e[1:] or e2e
    stages = sorted({k for r in later for k in r["timings"]})
    return {
        "bench": "latency",
        "llm": spec,
        "cold_start_s_median": median([c["cold_start_s"] for c in cold]),
        "cold_load_s_median": median([c["load_s"] for c in cold]),
        "cold_first_plan_s_median": median([c["first_plan_s"] for c in cold]),
        "cold_runs": len(cold),
        "warm_plan_s_median": median(warm),
        "warm_plan_s_p90": percentile(warm, 90),
        "warm_plans": len(warm),
        "e2e_first_s": e2e[0]["seconds"] if e2e else None,
        "e2e_s_median": median([r["seconds"] for r in later]),
        "e2e_stage_s_median": {s: median([r["timings"].get(s, 0.0) for r in later]) for s in stages},
        "e2e_runs": len(e2e),
        "e2e_ok": sum(r["status"] == "done" for r in e2e),
        "e2e_tasks": e2e[0]["tasks"] if e2e else [],
        "e2e_error": next((r["error"] for r in e2e if r["error"]), None),
        "targets": {
            "warm_plan_median_le_5s": median(warm) is not None and median(warm) <= 5.0,
            "cold_start_le_20s": bool(cold) and median([c["cold_start_s"] for c in cold]) <= 20.0,
        },
    }


def readable(f: dict[str, Any]) -> str:
    rows = [
        ("cold start (load + first plan)", f["cold_start_s_median"], f"{f['cold_runs']} fresh processes", "<= 20 s"),
        ("  of which model load", f["cold_load_s_median"], "", ""),
        ("warm plan, median", f["warm_plan_s_median"], f"{f['warm_plans']} plans", "<= 5 s"),
        ("warm plan, p90", f["warm_plan_s_p90"], "", ""),
        ("end to end, first run", f["e2e_first_s"], "experts load", ""),
        ("end to end, median after", f["e2e_s_median"], f"{f['e2e_ok']}/{f['e2e_runs']} ok", ""),
    ]
    rows += [(f"  {stage}", s, "", "") for stage, s in f["e2e_stage_s_median"].items()]
    head = f"Latency ({f['llm']}), two-task request: {' -> '.join(f['e2e_tasks']) or '-'}"
    if f["e2e_error"]:
        head += f"\n  (error seen: {f['e2e_error']})"
    return head + "\n" + table(rows, ["measure", "seconds", "over", "target"])


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench latency")
    parser.add_argument("--llm", default="local", help="LLM spec (default: local, the embedded model)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for the cold start (default 3)")
    parser.add_argument("--warm-repeats", type=int, default=2, help="times each warm request is planned (default 2)")
    parser.add_argument("--e2e-runs", type=int, default=4, help="end-to-end runs; the first loads the experts (default 4)")
    parser.add_argument("--experts", default="auto", help="expert backends for the end-to-end run (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="threads for the embedded model (default: its own)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    cold = cold_start(args.llm, args.cold_runs, args.threads) if args.cold_runs else []
    llm = load_llm(args.llm, args.threads)
    warm = warm_plans(llm, args.warm_repeats)
    e2e = end_to_end(llm, args.e2e_runs, args.experts) if args.e2e_runs else []
    figures = summarise(args.llm, cold, warm, e2e)
    emit(figures, readable(figures), args.out, details={"cold": cold, "warm": warm, "e2e": e2e})
    return 0

