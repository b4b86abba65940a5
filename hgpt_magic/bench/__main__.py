"""`python -m hgpt_magic.bench SUBCOMMAND [options]`: taskbench, scheduler, calls, latency, kernels, sessions, coverage, asr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from . import asr, calls, coverage, kernels, latency, scheduler, sessions, taskbench

    parser = argparse.ArgumentParser(
        prog="python -m hgpt_magic.bench",
        description="Benchmarks with targets. Each prints one JSON line of figures, then a readable table.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help_text in [
        ("taskbench", taskbench, "planning quality on TaskBench (node F1, edge F1, validity, seconds per plan)"),
        ("scheduler", scheduler, "executor wall time over critical-path time on synthetic task graphs"),
        ("calls", calls, "controller LLM calls and tokens per request, 1 to 6 tasks"),
        ("latency", latency, "embedded LLM: cold start, warm plan, end to end for a two-task request"),
        ("kernels", kernels, "two kernels: memory and plan latency, a model each or one shared model server"),
        ("sessions", sessions, "notebook sessions: several requests in a row, checks on plans and answers"),
        ("coverage", coverage, "task types served offline here, and how many candidate models each has"),
        ("asr", asr, "speech recognition on unfamiliar espeak-ng voices: WER per language and model, seconds per clip"),
    ]:
        module.build_parser(sub.add_parser(name, help=help_text, description=help_text))
        sub.choices[name].set_defaults(main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.main(args)


if __name__ == "__main__":
    sys.exit(main())
