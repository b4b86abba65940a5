"""The `hugginggpt` command: one request through the four stages, in a terminal.

Exit status: 0 when every task ran, 1 on failure (one line on stderr; `--debug` for the traceback; a plan
that names a file or URL the request did not is such a failure, refused before anything runs, with
`--plan-only` too), 2 on usage errors, said before any model loads (a bad option value, an unknown LLM or
experts spec, a broken endpoint configuration, an `--out` that is a file or cannot be written), 130 when
interrupted (finished results stay
in the run's `run.json`). The process exits as soon as the run ends: a task blocked in a remote call after
its timeout or Ctrl-C does not hold it up.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .executor import RunInterrupted, TaskEvent
from .safe_text import terminal
from .streaming import AnswerStream
from .types import Run


def positive_seconds(text: str) -> float:
    """A time limit: a finite number of seconds above zero (0, negatives, nan and inf are usage errors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hugginggpt",
        description="HuggingGPT: an LLM plans tasks, picks expert models, runs them and answers. "
        "Offline by default (embedded LLM and local experts; install hgpt-magic[local]).",
        epilog='example: hugginggpt --out out "Read the text in the image notebooks/data/sign.png aloud"',
    )
    parser.add_argument("request", nargs="+", help="what you want done, in plain words (file paths included)")
    parser.add_argument("--llm", help="controller LLM: local, gguf:PATH, openai:MODEL, hf:MODEL or URL#MODEL "
                        "(default: $HGPT_LLM, else local)")
    parser.add_argument("--experts", default="auto", help="expert backends, comma-separated (default: auto)")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="candidate models offered per task (default 5)")
    parser.add_argument("--plan-only", action="store_true", help="plan and select models, run nothing")
    parser.add_argument("--json", action="store_true", help="print the Run as JSON on stdout (progress on stderr)")
    parser.add_argument("--out", metavar="DIR", help="where run directories go (default: $HGPT_OUT, else ./hgpt-runs)")
    parser.add_argument("--timeout", type=positive_seconds, default=300.0, help="seconds a task may take (default 300)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"hgpt-magic {__version__}")
    return parser


class Printer:
    """Human-readable progress; goes to stderr when stdout carries JSON."""

    def __init__(self, stream):
        self.stream = stream
        self.answer_stream = AnswerStream()

    def __call__(self, text: str = "") -> None:
        # a plan or answer may echo a key, or carry terminal control codes from the LLM or an expert
        print(terminal(text), file=self.stream, flush=True)

    def plan(self, run: Run) -> None:
        self(f"LLM: {run.llm}")
        if not len(run.plan):
            self("Plan: no task needed; the LLM answers directly.")
            return
        self("Plan:")
        for task in run.plan:
            args = ", ".join(f"{k}={v!r}" for k, v in task.args.items())
            self(f"  [{task.id}] {task.task}({args})" + (f"  after {task.dep}" if task.dep else ""))
        for note in run.plan.repairs:
            self(f"  (repaired: {note})")
        self("Models:")
        for choice in run.selection:
            if choice.available:
                self(f"  [{choice.task_id}] {choice.model} via {choice.backend}: {choice.reason}")
            else:
                self(f"  [{choice.task_id}] cannot run here: {choice.reason}")

    def answer_piece(self, piece: str) -> None:
        """A piece of the streamed answer: printed as it comes (whole words, masked; see `AnswerStream`)."""
        if not self.answer_stream.started:
            self()
        new = self.answer_stream.add(piece)
        if new:
            print(terminal(new), end="", file=self.stream, flush=True)

    def final_answer(self, answer: str) -> None:
        """The checked answer: completes the streamed text, or is printed whole where it differs from it."""
        rest = self.answer_stream.rest(answer) if self.answer_stream.started else None
        if rest is None:
            if self.answer_stream.started:
                self("\n(final answer, checked:)")
            else:
                self()
            self(answer)
        else:
            self(rest)

    def event(self, event: TaskEvent) -> None:
        r = event.result
        if event.kind == "started":
            self(f"  … task {r.task_id} {r.task} running on {r.model}")
        elif r.status == "done":
            how = "reused" if r.reused else f"{r.seconds or 0:.2f} s"
            self(f"  ✓ task {r.task_id} {r.task} done ({how})")
        else:
            self(f"  ✗ task {r.task_id} {r.task} {r.status}: {r.error}")
        if event.kind == "finished":
            for note in r.fallbacks():
                self(f"    ↪ task {r.task_id}: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["catalog"]:  # `hugginggpt catalog refresh|show|reset`
        from .catalog_cli import main as catalog_main

        return catalog_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    request = " ".join(args.request).strip()
    if not request:
        parser.error("the request is empty")
    say = Printer(sys.stderr if args.json else sys.stdout)

    from .experts import ExpertSpecError, describe_experts
    from .llm import LLMError, default_llm_spec, make_llm
    from .pipeline import HuggingGPT, default_out_dir, out_dir_problem  # after parsing: --help stays instant

    problem = out_dir_problem(Path(args.out) if args.out else default_out_dir())
    if problem:  # said before any model loads (a file given as --out, a read-only folder)
        parser.error(problem + (" (--out)" if args.out else " ($HGPT_OUT)"))
    llm_spec = args.llm or default_llm_spec()
    try:  # a bad spec is a usage error; the embedded model is not loaded yet (that takes seconds)
        llm = llm_spec if llm_spec == "local" or llm_spec.startswith("gguf:") else make_llm(llm_spec)
        hg = HuggingGPT(llm=llm, experts=args.experts, top_k=args.top_k, out_dir=args.out,
                        task_timeout=args.timeout, on_progress=say)
    except (LLMError, ExpertSpecError) as exc:
        parser.error(terminal(str(exc)))
    run: Run | None = None
    try:
        say(f"LLM: {hg.llm_name} (loading…)" if hg.llm_name == "local" else f"LLM: {hg.llm_name}")
        say("Experts: " + "; ".join(describe_experts(hg.experts)))
        run = hg.run(request, plan_only=True)
        keep_ready = getattr(hg.llm, "keep_lean_copy_ready", None)  # the embedded model, loaded by now
        if keep_ready is not None:
            keep_ready(False)  # one request per process: no copy to load ahead for later ones
        say.plan(run)
        if args.plan_only:  # a plan that would be refused is a failure here too (exit 1), not a plan to show
            hg.check(run)
        else:
            say("Running:" if len(run.plan) else "Answering:")
            hg.finish(run, on_event=say.event, on_text=say.answer_piece)
    except RunInterrupted as exc:
        path = f"{exc.run.run_dir}/run.json" if exc.run else "run.json"
        print(f"hugginggpt: interrupted; finished results are kept in {path}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("hugginggpt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, no traceback unless asked
        if args.debug:
            traceback.print_exc()
        print(f"hugginggpt: error: {terminal(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1

    if args.json:
        print(terminal(run.to_json()))
    elif not args.plan_only:
        say.final_answer(run.answer or "")
        files = [a.path for a in run.artifacts() if a.path and a.path not in (run.answer or "")]  # the answer lists its own
        if files:
            say()
            say("Files:")
            for path in files:
                say(f"  {path}")
        say(f"\nRun saved in {run.run_dir}/run.json")

    problems = [r for r in run.results.values() if r.status != "done"] if not args.plan_only else []
    missing = run.selection.missing() if run.selection else []
    if missing or problems:
        reasons = [f"task {c.task_id}: {c.reason}" for c in missing]
        reasons += [f"task {r.task_id} {r.status}: {r.error}" for r in problems if r.task_id not in {c.task_id for c in missing}]
        print(terminal(f"hugginggpt: error: {'; '.join(reasons)}"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
