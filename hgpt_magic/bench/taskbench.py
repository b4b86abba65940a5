"""Planning quality on TaskBench (Shen et al. 2023, arXiv 2311.18760), Hugging Face tools domain.

Each sample's request is planned with TaskBench's tool vocabulary (`vocabulary.from_tool_desc`), the plan
is turned into TaskBench's nodes (tool names) and links (source tool -> target tool, one per
`<GENERATED>-N` reference), and scored as TaskBench scores it:

- node F1: micro F1 over the *set* of tool names of each sample, all samples;
- edge F1: micro F1 over the set of (source, target) name pairs, over the samples whose ground truth
  has more than one node (single-tool samples have no links to get right).

A plan that cannot be had (`PlanError`, LLM failure) counts as an empty prediction, so it costs recall
rather than vanishing from the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..llm import LLM
from ..planning import PlanError, Planner, load_demos
from ..registry import Registry
from ..types import LLMCall, Plan
from . import data_path, emit, load_llm, median, percentile, table
from .vocabulary import from_tool_desc

SAMPLE_TYPES = ("single", "chain", "dag")
Link = tuple[str, str]


@dataclass
class Sample:
    """One ground-truth TaskBench sample: the request, the tool names and the links between them."""

    id: str
    type: str
    request: str
    nodes: list[str]
    links: list[Link]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        nodes = [str(n["task"] if isinstance(n, dict) else n) for n in data.get("task_nodes", [])]
        links = [(str(link["source"]), str(link["target"])) for link in data.get("task_links", [])]
        return cls(str(data.get("id", "")), str(data.get("type", "")), str(data["request"]), nodes, links)


def load_samples(path: str | Path, limit: int | None = None, types: Sequence[str] | None = None) -> list[Sample]:
    """Samples of a TaskBench JSON-lines file (`dev.jsonl` format), optionally only some types, first `limit`."""
    samples = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        sample = Sample.from_dict(json.loads(line))
        if types and sample.type not in types:
            continue
        samples.append(sample)
    return samples[:limit] if limit else samples


def mixed_subset(samples: Sequence[Sample], n: int) -> list[Sample]:
    """A fixed, type-stratified subset of `n` samples (same share of each type as the whole), for tuning.

    Deterministic: takes every k-th sample of each type, so reruns compare like with like.
    """
    by_type: dict[str, list[Sample]] = {}
    for s in samples:
        by_type.setdefault(s.type, []).append(s)
    chosen: list[Sample] = []
    for group in by_type.values():
        share = max(1, round(n * len(group) / len(samples)))
        step = len(group) / share
        chosen += [group[int(i * step)] for i in range(min(share, len(group)))]
    order = {id(s): i for i, s in enumerate(samples)}
    return sorted(chosen, key=lambda s: order[id(s)])[:n]


# ----------------------------------------------------------------------------- conversion and scoring


def plan_to_taskbench(plan: Plan) -> tuple[list[str], list[Link]]:
    """Our plan as TaskBench's nodes (tool names, plan order) and links (one per task dependency)."""
    names = {t.id: t.task for t in plan}
    nodes = [t.task for t in plan]
    links = [(names[d], t.task) for t in plan for d in t.dep if d in names]
    return nodes, links


@dataclass
class F1:
    """Micro-averaged counts: true positives, false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: Iterable[Any], gold: Iterable[Any]) -> None:
        """Count one sample, comparing *sets* (a tool used twice counts once, as in TaskBench)."""
        p, g = set(predicted), set(gold)
        self.tp += len(p & g)
        self.fp += len(p - g)
        self.fn += len(g - p)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """2TP / (2TP + FP + FN), in [0, 1]; None when there is nothing to count."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else None


def node_f1(pairs: Iterable[tuple[Sequence[str], Sequence[str]]]) -> F1:
    """Micro F1 over the sets of tool names; `pairs` = (predicted nodes, gold nodes) per sample."""
    counts = F1()
    for predicted, gold in pairs:
        counts.add(predicted, gold)
    return counts


def edge_f1(triples: Iterable[tuple[Sequence[Link], Sequence[Link], int]]) -> F1:
    """Micro F1 over the sets of links of the samples whose ground truth has more than one node.

    `triples` = (predicted links, gold links, number of gold nodes) per sample.
    """
    counts = F1()
    for predicted, gold, n_gold_nodes in triples:
        if n_gold_nodes > 1:
            counts.add(predicted, gold)
    return counts


@dataclass
class Result:
    """What happened to one sample: the prediction, whether the plan validated, and its cost."""

    id: str
    type: str
    request: str
    gold_nodes: list[str]
    gold_links: list[Link]
    nodes: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    valid: bool = False
    error: str | None = None
    seconds: float = 0.0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repairs: list[str] = field(default_factory=list)
    raw: str = ""


def score(results: Sequence[Result]) -> dict[str, Any]:
    """The figures for a group of results: F1s in percent, validity share, seconds per plan."""
    nodes = node_f1((r.nodes, r.gold_nodes) for r in results)
    edges = edge_f1((r.links, r.gold_links, len(r.gold_nodes)) for r in results)
    seconds = [r.seconds for r in results]

    def pct(value: float | None) -> float | None:
        return None if value is None else 100.0 * value

    return {
        "n": len(results),
        "node_f1": pct(nodes.f1),
        "edge_f1": pct(edges.f1),
        "node_precision": pct(nodes.precision),
        "node_recall": pct(nodes.recall),
        "edge_precision": pct(edges.precision),
        "edge_recall": pct(edges.recall),
        "valid": sum(r.valid for r in results) / len(results) if results else None,
        "median_s": median(seconds),
        "p90_s": percentile(seconds, 90),
        "llm_calls_per_plan": sum(r.llm_calls for r in results) / len(results) if results else None,
    }


def report(results: Sequence[Result]) -> dict[str, Any]:
    """Overall figures plus the same per sample type (single, chain, dag)."""
    figures = score(results)
    kinds = [k for k in SAMPLE_TYPES if any(r.type == k for r in results)]
    kinds += sorted({r.type for r in results} - set(SAMPLE_TYPES))
    figures["by_type"] = {k: score([r for r in results if r.type == k]) for k in kinds}
    return figures


# ----------------------------------------------------------------------------- running


def plan_sample(planner: Planner, sample: Sample) -> Result:
    """Plan one sample; failures become an empty prediction with the error kept."""
    result = Result(sample.id, sample.type, sample.request, sample.nodes, sample.links)
    calls: list[LLMCall] = []
    start = time.perf_counter()
    try:
        plan = planner.plan(sample.request, calls=calls)
    except PlanError as exc:
        result.error, result.raw = str(exc), exc.raw
    except Exception as exc:  # an LLM failure must not end a long benchmark run
        result.error = f"{type(exc).__name__}: {exc}"
    else:
        result.valid = True
        result.nodes, result.links = plan_to_taskbench(plan)
        result.repairs, result.raw = list(plan.repairs), plan.raw
    result.seconds = time.perf_counter() - start
    result.llm_calls = len(calls)
    result.prompt_tokens = sum(c.prompt_tokens for c in calls)
    result.completion_tokens = sum(c.completion_tokens for c in calls)
    return result


def run_benchmark(
    planner: Planner,
    samples: Sequence[Sample],
    *,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    results = []
    for i, sample in enumerate(samples):
        result = plan_sample(planner, sample)
        results.append(result)
        if on_result:
            on_result(i, result)
    return results


def readable(figures: dict[str, Any]) -> str:
    rows = [("all", *_row(figures))] + [(k, *_row(v)) for k, v in figures["by_type"].items()]
    head = f"TaskBench ({figures['data']}, {figures['n']} samples, LLM {figures['llm']})"
    header = ["type", "n", "node F1", "edge F1", "valid", "median s", "p90 s"]
    return head + "\n" + table(rows, header)


def _row(f: dict[str, Any]) -> list[Any]:
    return [f["n"], f["node_f1"], f["edge_f1"], f["valid"], f["median_s"], f["p90_s"]]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench taskbench")
    parser.add_argument("--data", default=str(data_path("dev.jsonl")), help="TaskBench samples, JSON lines (default: the dev split)")
    parser.add_argument("--tools", default=None, help="TaskBench tool_desc.json (default: the one beside --data, else the shipped one)")
    parser.add_argument("--llm", default=None, help="planner LLM spec (default: $HGPT_LLM, else the embedded model)")
    parser.add_argument("--limit", type=int, default=None, help="plan only the first N samples (after --subset)")
    parser.add_argument("--subset", type=int, default=None, metavar="N", help="a fixed type-stratified subset of N samples")
    parser.add_argument("--types", default=None, help="comma-separated sample types to keep (single,chain,dag)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--details", default=None, help="write one JSON line per sample (prediction, error, seconds) here")
    parser.add_argument("--demos", default="auto", help="'auto' (the planner's default for this vocabulary), 'none', or a demos JSON file")
    parser.add_argument("--retrieve", type=int, default=None,
                        help="demos retrieved per request, 0 for none (default: the vocabulary's setting; TaskBench: all demos, cached)")
    parser.add_argument("--retries", type=int, default=1, help="re-asks after an invalid plan (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="threads for the embedded model (default: its own)")
    parser.add_argument("--quiet", action="store_true", help="no per-sample progress on stderr")
    return parser


def tools_file(data: str | Path, tools: str | None) -> Path:
    """`--tools`, else `tool_desc.json` beside the data file, else the shipped copy."""
    if tools:
        return Path(tools)
    beside = Path(data).with_name("tool_desc.json")
    return beside if beside.is_file() else data_path("tool_desc.json")


def make_planner(
    llm: LLM, registry: Registry, demos: str = "auto", retrieve: int | None = None, retries: int = 1
) -> Planner:
    """The planner as the pipeline builds it for this vocabulary, with the benchmark's overrides."""
    kwargs: dict[str, Any] = {"retries": retries}
    if retrieve is not None:
        kwargs["retrieve"] = retrieve
    if demos == "none":
        return Planner(llm, registry, [], **kwargs)
    if demos != "auto":
        return Planner(llm, registry, load_demos(demos), **kwargs)
    return Planner(llm, registry, **kwargs)


def main(args: argparse.Namespace) -> int:
    tools = tools_file(args.data, args.tools)
    registry = from_tool_desc(tools)
    types = [t.strip() for t in args.types.split(",")] if args.types else None
    samples = load_samples(args.data, types=types)
    if args.subset:
        samples = mixed_subset(samples, args.subset)
    if args.limit:
        samples = samples[: args.limit]
    llm = load_llm(args.llm, args.threads)
    planner = make_planner(llm, registry, args.demos, args.retrieve, args.retries)
    details = open(args.details, "w", encoding="utf-8") if args.details else None  # noqa: SIM115

    def progress(i: int, result: Result) -> None:
        if details:
            details.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
            details.flush()
        if not args.quiet:
            mark = "ok " if result.valid else "ERR"
            hit = "=" if set(result.nodes) == set(result.gold_nodes) else "≠"
            print(
                f"[{i + 1}/{len(samples)}] {mark} {hit} {result.seconds:5.1f}s {result.type:6} "
                f"{sorted(set(result.nodes))} vs {sorted(set(result.gold_nodes))}"
                + (f"  ({result.error})" if result.error else ""),
                file=sys.stderr,
                flush=True,
            )

    try:
        results = run_benchmark(planner, samples, on_result=progress)
    finally:
        if details:
            details.close()
    figures = {"bench": "taskbench", "data": str(args.data), "tools": str(tools), "llm": getattr(llm, "name", str(llm))}
    figures.update(report(results))
    figures["planner"] = planner_settings(planner)
    emit(figures, readable(figures), args.out)
    return 0


def planner_settings(planner: Planner) -> dict[str, Any]:
    """What the planner was run with, so a figure can be traced to its settings."""
    settings: dict[str, Any] = {"demos": len(planner.demos), "retries": planner.retries}
    for name in ("retrieve", "compact", "positions"):
        settings[name] = getattr(planner, name, None)
    return settings


def cli(argv: Sequence[str] | None = None) -> int:
    try:
        return main(build_parser().parse_args(argv))
    except Exception:
        traceback.print_exc()
        return 1
