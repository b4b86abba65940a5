"""Benchmarks with targets: `python -m hgpt_magic.bench {taskbench,scheduler,calls,latency,kernels,sessions,coverage,asr}`.

Each subcommand prints one JSON line of figures (machine-readable, for the README table and CI),
then a readable table; `--out FILE` also writes the JSON. The helpers here are shared by all four.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50.0)


def rounded(value: Any, digits: int = 3) -> Any:
    """Round floats (also inside dicts and lists) so the JSON line stays readable."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table with left-aligned first column and right-aligned figures."""
    cells = [[_cell(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def emit(
    figures: dict[str, Any],
    readable: str,
    out: str | Path | None = None,
    *,
    details: dict[str, Any] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print the JSON line of figures, then the readable table; write the JSON to `out` when given.

    `details` (per-graph or per-request rows) go to the `out` file only, keeping the printed line short.
    """
    stream = stream or sys.stdout
    print(json.dumps(rounded(figures), ensure_ascii=False), file=stream)
    print(readable, file=stream, flush=True)
    if out:
        full = {**figures, **(details or {})}
        Path(out).write_text(json.dumps(rounded(full), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_llm(spec: str | None, threads: int | None = None) -> Any:
    """The LLM for a benchmark: `make_llm(spec)`, or for the embedded model with `threads` set, a
    `LocalLLM` with that many threads (on a machine shared with other work, fewer threads than cores
    avoids llama.cpp's threads waiting on each other when one is descheduled)."""
    from ..llm import default_llm_spec, make_llm

    spec = spec or default_llm_spec()
    if threads and (spec == "local" or spec.startswith("gguf:")):
        from ..llm.local import LocalLLM

        return LocalLLM(spec[len("gguf:") :] if spec.startswith("gguf:") else None, threads=threads)
    return make_llm(spec)


def data_path(name: str) -> Path:
    """A file shipped in `hgpt_magic/bench/data/` (TaskBench's tools and dev split)."""
    return Path(__file__).with_name("data") / name
