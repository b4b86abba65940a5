"""Offline coverage: per task type, which models serve it here with no network and no key.

HuggingGPT's stage 2 only chooses when a task has several candidates; this prints, for the default
registry, the offline candidates of each task type (what the selector would offer with the `local`
experts spec) and checks the targets: at least 20 of the 25 task types served by a real model, at
least 6 with two candidates or more. Only cheap availability checks run: no model is loaded.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..registry import Registry, default_registry
from . import emit

#: The targets (issue 15): task types served offline, and task types with a real choice.
SERVED_TARGET, CHOICE_TARGET = 20, 6


def coverage_rows(spec: str = "local", registry: Registry | None = None) -> list[dict[str, Any]]:
    """One row per task type: its offline candidates (id and backend), best first."""
    from ..experts import make_experts
    from ..selector import Selector

    registry = registry or default_registry()
    backends = [b for b in make_experts(spec) if b.offline]
    selector = Selector(None, backends)
    rows = []
    for task in registry:
        offered = selector.candidates(task.name, top_k=1000)
        rows.append(
            {
                "task": task.name,
                "models": [f"{c.id} ({c.backend})" for c in offered],
                "count": len(offered),
            }
        )
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    served = [r["task"] for r in rows if r["count"] > 0]
    choice = [r["task"] for r in rows if r["count"] > 1]
    return {
        "bench": "coverage",
        "task_types": len(rows),
        "served_offline": len(served),
        "with_choice": len(choice),
        "models": sum(r["count"] for r in rows),
        "not_served": [r["task"] for r in rows if r["count"] == 0],
        "meets_target": len(served) >= SERVED_TARGET and len(choice) >= CHOICE_TARGET,
    }


def readable(figures: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    width = max(len(r["task"]) for r in rows)
    lines = [f"{'task type'.ljust(width)}   n  offline models", f"{'-' * width}  --  {'-' * 14}"]
    lines += [f"{r['task'].ljust(width)}  {r['count']:>2}  {', '.join(r['models']) or '-'}" for r in rows]
    lines.append(
        f"\n{figures['served_offline']} of {figures['task_types']} task types served offline "
        f"(target {SERVED_TARGET}); {figures['with_choice']} with two or more candidates (target {CHOICE_TARGET})."
    )
    if figures["not_served"]:
        lines.append(
            "Not served offline (they need Hugging Face Inference Providers with HF_TOKEN, an endpoint, or "
            "cached transformers models): " + ", ".join(figures["not_served"])
        )
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench coverage")
    parser.add_argument("--experts", default="local", help="experts spec whose offline backends count (default: local)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    rows = coverage_rows(args.experts)
    figures = summarise(rows)
    emit(figures, readable(figures, rows), args.out, details={"rows": rows})
    return 0 if figures["meets_target"] else 1
