"""LLM-call economy: controller LLM calls and tokens per request, for requests of 1 to 6 tasks.

HuggingGPT's controller makes at most three calls per request, whatever the number of tasks: one plan,
one batched model selection (only when some task has more than one candidate), one response. Text tasks
that the controller LLM serves itself (translation, summarization, ...) also call the LLM, but as an
*expert*, like any other model: those are counted separately and are not controller calls.

`--llm scripted` (the default) answers every stage deterministically, with the known plan of each
request and token counts estimated as characters / 4; `--llm local` (or any spec) uses a real LLM, whose
own plans then decide how many tasks run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..experts.llm_tasks import LLMExperts
from ..llm import LLM, LLMReply, make_llm
from ..pipeline import HuggingGPT
from ..planning import PlanError
from ..registry import default_registry
from ..testing import TimedExperts
from . import emit, median, table

STAGES = ("plan", "select", "respond")
G = "<GENERATED>-{}".format


@dataclass(frozen=True)
class Case:
    """A request and the plan a good planner makes for it (`{FILE}` placeholders become real files)."""

    request: str
    tasks: tuple[tuple[str, dict[str, str]], ...]

    def plan_json(self, files: dict[str, str]) -> str:
        tasks = []
        for i, (name, args) in enumerate(self.tasks):
            args = {k: v.format(**files) for k, v in args.items()}
            deps = sorted({int(v.split("-")[-1]) for v in args.values() if v.startswith("<GENERATED>-")})
            tasks.append({"task": name, "id": i, "dep": deps, "args": args})
        return json.dumps({"tasks": tasks})


#: The fixed requests: 1 to 6 tasks, mixing local-style tasks and LLM-served text tasks.
CASES = (
    Case("Describe the photo {photo}", (("image-to-text", {"image": "{photo}"}),)),
    Case(
        "Read the text in {sign} aloud",
        (("image-to-text", {"image": "{sign}"}), ("text-to-speech", {"text": G(0)})),
    ),
    Case(
        "Transcribe {talk}, summarize it and translate the summary into German",
        (
            ("automatic-speech-recognition", {"audio": "{talk}"}),
            ("summarization", {"text": G(0)}),
            ("translation", {"text": G(1), "language": "German"}),
        ),
    ),
    Case(
        "Find the faces in {photo}, show its edges, describe it and read the description aloud",
        (
            ("object-detection", {"image": "{photo}"}),
            ("canny-control", {"image": "{photo}"}),
            ("image-to-text", {"image": "{photo}"}),
            ("text-to-speech", {"text": G(2)}),
        ),
    ),
    Case(
        "Clean up {talk}, transcribe it, tag the names in it, summarize it and read the summary aloud",
        (
            ("audio-to-audio", {"audio": "{talk}"}),
            ("automatic-speech-recognition", {"audio": G(0)}),
            ("token-classification", {"text": G(1)}),
            ("summarization", {"text": G(1)}),
            ("text-to-speech", {"text": G(3)}),
        ),
    ),
    Case(
        "Read the text in {sign}, classify its sentiment, translate it into French and Spanish, "
        "compare the two translations and read the French one aloud",
        (
            ("image-to-text", {"image": "{sign}"}),
            ("text-classification", {"text": G(0)}),
            ("translation", {"text": G(0), "language": "French"}),
            ("translation", {"text": G(0), "language": "Spanish"}),
            ("sentence-similarity", {"text1": G(2), "text2": G(3)}),
            ("text-to-speech", {"text": G(2)}),
        ),
    ),
)


class CountingLLM:
    """Wraps an LLM and counts every chat call and its tokens, controller or expert alike."""

    def __init__(self, llm: LLM):
        self.llm = llm
        self.name = llm.name
        self.supports_schema = llm.supports_schema
        self.calls = 0
        self.tokens = 0
        self._lock = threading.Lock()

    def chat(self, messages, **kwargs) -> LLMReply:
        reply = self.llm.chat(messages, **kwargs)
        with self._lock:
            self.calls += 1
            self.tokens += reply.prompt_tokens + reply.completion_tokens
        return reply


class ScriptedStages:
    """A deterministic LLM for the benchmark: knows each case's plan, picks the top candidate, answers briefly.

    Which stage asks is read from the request itself (the schema and the prompt), as a real LLM would
    see it. Tokens are estimated as characters / 4, like `testing.ScriptedLLM`.
    """

    name = "scripted"
    supports_schema = True

    def __init__(self, plans: dict[str, str]):
        self.plans = plans

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0) -> LLMReply:
        last = messages[-1]["content"]
        if schema is not None and "tasks" in schema.get("properties", {}):  # planning
            text = next((plan for request, plan in self.plans.items() if last.endswith(request)), '{"tasks": []}')
        elif schema is not None:  # model selection: the first candidate of every task
            text = json.dumps(
                {tid: {"id": prop["properties"]["id"]["enum"][0], "reason": "most downloaded"}
                 for tid, prop in schema["properties"].items()}
            )
        elif messages[0]["content"].startswith("You are an expert model"):
            text = "Expert output for: " + last[-200:]
        else:
            text = "Done. The tasks ran and produced the files listed above."
        prompt = sum(len(m["content"]) for m in messages)
        return LLMReply(text=text, prompt_tokens=prompt // 4 + 1, completion_tokens=len(text) // 4 + 1)


def make_files(folder: Path) -> dict[str, str]:
    """Placeholder input files (the timed experts never read them; the executor checks they exist)."""
    files = {"photo": "photo.jpg", "sign": "sign.png", "talk": "talk.wav"}
    paths = {}
    for key, name in files.items():
        path = folder / name
        path.write_bytes(b"placeholder")
        paths[key] = str(path)
    return paths


def make_experts() -> list:
    """Two timed models for every non-LLM task (so selection has to choose), the LLM for text tasks."""
    registry = default_registry()
    served = [t.name for t in registry if not t.llm_served]
    return [TimedExperts(served, models=("sleep-0", "sleep-0.001")), LLMExperts()]


def measure_case(hg: HuggingGPT, counter: CountingLLM, case: Case, files: dict[str, str]) -> dict[str, Any]:
    """Run one request end to end and count the calls by stage; expert calls are the rest."""
    request = case.request.format(**files)
    before_calls, before_tokens = counter.calls, counter.tokens
    hg.reset()
    error = None
    try:
        run = hg.run(request)
    except PlanError as exc:
        run, error = hg.last_run, str(exc)
    calls = {s: sum(1 for c in run.llm_calls if c.stage == s) for s in STAGES}
    tokens = {s: sum(c.prompt_tokens + c.completion_tokens for c in run.llm_calls if c.stage == s) for s in STAGES}
    controller_calls = sum(calls.values())
    expert_calls = counter.calls - before_calls - controller_calls
    expert_tokens = counter.tokens - before_tokens - sum(tokens.values())
    return {
        "request": case.request,
        "planned_tasks": len(run.plan) if run.plan else 0,
        "expected_tasks": len(case.tasks),
        "calls": calls,
        "tokens": tokens,
        "controller_calls": controller_calls,
        "controller_tokens": sum(tokens.values()),
        "expert_llm_calls": expert_calls,
        "expert_llm_tokens": expert_tokens,
        "status": run.status,
        "error": error,
    }


def run_cases(llm: LLM, cases: Sequence[Case] = CASES, out_dir: Path | None = None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hgpt-calls-") as tmp:
        folder = Path(out_dir or tmp)
        files = make_files(folder)
        if isinstance(llm, ScriptedStages) and not llm.plans:
            llm.plans = {c.request.format(**files): c.plan_json(files) for c in cases}
        counter = CountingLLM(llm)
        hg = HuggingGPT(llm=counter, experts=make_experts(), catalog=Catalog([]), out_dir=folder / "runs")
        return [measure_case(hg, counter, case, files) for case in cases]


def summarise(rows: Sequence[dict[str, Any]], llm_name: str) -> dict[str, Any]:
    per_request = [r["controller_calls"] for r in rows]
    return {
        "bench": "calls",
        "llm": llm_name,
        "requests": len(rows),
        "tasks": [r["planned_tasks"] for r in rows],
        "controller_calls_max": max(per_request, default=0),
        "controller_calls_mean": sum(per_request) / len(rows) if rows else None,
        "target": "at most 3 controller LLM calls per request",
        "meets_target": all(c <= 3 for c in per_request),
        "calls_by_stage": {s: [r["calls"][s] for r in rows] for s in STAGES},
        "tokens_by_stage_median": {s: median([r["tokens"][s] for r in rows]) for s in STAGES},
        "controller_tokens": [r["controller_tokens"] for r in rows],
        "expert_llm_calls": [r["expert_llm_calls"] for r in rows],
        "expert_llm_tokens": [r["expert_llm_tokens"] for r in rows],
    }


def readable(figures: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    table_rows = [
        (
            r["planned_tasks"],
            r["calls"]["plan"],
            r["calls"]["select"],
            r["calls"]["respond"],
            r["controller_calls"],
            r["tokens"]["plan"],
            r["tokens"]["select"],
            r["tokens"]["respond"],
            r["expert_llm_calls"],
            r["expert_llm_tokens"],
        )
        for r in rows
    ]
    head = (
        f"LLM calls per request ({figures['llm']}): controller calls at most {figures['controller_calls_max']} "
        f"(target <= 3); text tasks served by the LLM are expert calls, counted apart"
    )
    header = ["tasks", "plan", "select", "respond", "ctrl calls", "plan tok", "select tok", "respond tok",
              "expert calls", "expert tok"]
    return head + "\n" + table(table_rows, header)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench calls")
    parser.add_argument("--llm", default="scripted", help="'scripted' (default: deterministic, token estimates) or an LLM spec (local, ...)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    llm: LLM = ScriptedStages({}) if args.llm == "scripted" else make_llm(args.llm)
    rows = run_cases(llm)
    figures = summarise(rows, llm.name)
    emit(figures, readable(figures, rows), args.out, details={"rows": rows})
    return 0 if figures["meets_target"] else 1
