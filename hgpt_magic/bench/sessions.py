"""Notebook sessions: one pipeline, several requests in a row, as people use the magic.

TaskBench scores single plans in another vocabulary; it cannot see a second cell copying the first
cell's answer, a plan that reads a file nobody named, or an answer that calls a finished task failed.
This bench runs suites of sessions on real files (made by `session_data`) and checks every request:

- plan:        a valid plan was made (no `PlanError`)
- tasks:       each required task type is in the plan (`"tasks": ["image-to-text", "a|b"]`)
- unrequested: no task outside the required and allowed ones (`"allow": [...]`)
- files:       every file argument was named by a request of the session or made by one of its runs
- speech:      text-to-speech is given text meant for people, not raw data (boxes, JSON), and, where the
               request says what is to be spoken (`"speaks": ["WELCOME"]`), that text
- facts:       the answer states each expected fact (`"facts": ["15.70", "one|1 face"]`, any spelling given);
               `{made}.wav` is the name of a .wav file this run made (naming the input file does not count)
- stale:       the answer repeats no fact of an earlier request that this run did not produce itself (a
               request answered without tasks answers from the session's history, so there only the
               request's `"absent"` facts count)
- status:      failed tasks are reported as not done; no finished task is said to have failed

A suite is JSON: `{"files": {name: recipe}, "sessions": [{"id", "requests": [{"text", ...}]}]}`; a
request's text writes `{data}/name` for a suite file. Adding an expert means adding sessions (and, if it
needs a new kind of input, a recipe in `session_data.MAKERS`), no code here.

Three suites ship (`SUITES`): `dev` (the sessions the planner was tuned on), `paraphrases` (each intent
in five phrasings: imperative, question, "I need ...", indirect, with a typo; `"family"` and `"style"`
per session) and `languages` (German, French, Spanish and Italian requests that refer back; `"lang"` per
request). Each is split into a dev part and a held-out part by whole families (`splits`), and every
figure is reported per suite and part, so a planner tuned on the dev parts shows what new words get.

    python -m hgpt_magic.bench sessions                              # every suite, both parts
    python -m hgpt_magic.bench sessions --suite languages --split held_out --limit 3
    python -m hgpt_magic.bench sessions --from-details part1.jsonl part2.jsonl   # figures of earlier runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..text import media_kind, named_files
from ..types import GENERATED_RE, Run
from . import data_path, emit, median, table
from .session_data import make_files
from .splits import SPLITS, family, split_of, split_problems

CHECK_KINDS = ("plan", "tasks", "unrequested", "files", "speech", "facts", "stale", "status")

#: The suites that ship, by the name `--suite` takes.
SUITES = {
    "dev": "sessions_dev.json",
    "paraphrases": "sessions_paraphrases.json",
    "languages": "sessions_languages.json",
}

#: The phrasings every family of a paraphrase suite has.
STYLES = ("imperative", "question", "need", "indirect", "typo")
#: What a suite of each kind must hold at least.
MIN_PHRASINGS = 5
MIN_OTHER_LANGUAGE_REQUESTS = 30
MIN_OTHER_LANGUAGES = 3

#: The folder name a request's `{data}` stands for (relative: as a notebook next to its data writes it).
DATA_DIR = "data"

#: A fact that stands for a file this run made: `{made}.png` holds when the answer names one of its .png files.
MADE = "{made}"

#: A file name in an answer ("bakery.png", "runs/x/task0-tts.wav"); not "15.70".
FILE_NAME = re.compile(r"[\w./-]+\.[A-Za-z][A-Za-z0-9]{1,4}\b")

#: Shorter facts ("1", "no") are too common to call a repeat of them stale.
STALE_MIN_CHARS = 4

FAILED_WORDS = re.compile(
    r"\b(?:fail\w*|not done|did not run|skipped|could ?n[o']t|could not|cannot|can't|unable|not available|no \w* ?(?:model|backend)|"
    r"needs? a remote|not (?:be )?(?:possible|run|completed?|successful))\b",
    re.IGNORECASE,
)
#: What raw detector or JSON output looks like when it is fed to speech.
RAW_DATA = re.compile(r"\(\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*\)|[{}\[\]]|\"\w+\"\s*:")


@dataclass
class Check:
    kind: str
    ok: bool
    detail: str = ""


@dataclass
class RequestRow:
    """One request of one session: what was planned, what happened, the answer and the checks."""

    session: str
    request: str
    suite: str = ""
    split: str = "dev"
    family: str = ""
    lang: str = "en"
    plan: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    answer: str = ""
    error: str | None = None
    seconds: float = 0.0
    answer_replaced: str = ""  # why the grounding check rejected the LLM's answer, if it did
    checks: list[Check] = field(default_factory=list)


@dataclass
class SessionState:
    """What the session has named and made so far, and the facts of its earlier requests."""

    named: set[str] = field(default_factory=set)
    made: set[str] = field(default_factory=set)
    earlier_facts: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the checks


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def _contains(haystack: str, needle: str) -> bool:
    """Case- and spacing-blind containment (OCR writes "CORNERBAKERY" for "CORNER BAKERY")."""
    hay, nee = _norm(haystack), _norm(needle)
    return nee in hay or nee.replace(" ", "") in hay.replace(" ", "")


def _alternatives(entry: str) -> list[str]:
    return [a.strip() for a in entry.split("|") if a.strip()]


def _results_text(run: Run) -> str:
    parts = []
    for result in run.results.values():
        for artifact in result.artifacts:
            parts.append(artifact.text)
            if artifact.data is not None:
                parts.append(json.dumps(artifact.data, ensure_ascii=False, default=str))
    return "\n".join(parts)


def check_request(spec: Mapping[str, Any], run: Run, state: SessionState) -> list[Check]:
    """Every check of one request against its run (see the module docstring)."""
    checks = [Check("plan", run.plan is not None, run.error or "")]
    planned = [t.task for t in run.plan] if run.plan is not None else []
    for group in spec.get("tasks", []):
        wanted = _alternatives(group)
        checks.append(Check("tasks", any(t in wanted for t in planned), f"{group} in {planned}"))
    if run.plan is None:
        checks += [Check("facts", False, f"no plan for {fact!r}") for fact in spec.get("facts", [])]
        return checks
    allowed = {a for g in [*spec.get("tasks", []), *spec.get("allow", [])] for a in _alternatives(g)}
    extra = sorted({t for t in planned if t not in allowed})
    checks.append(Check("unrequested", not extra, f"unrequested: {extra}" if extra else ""))
    checks.append(_check_files(run, state))
    checks += _check_speech(run)
    checks += _check_spoken(spec, run)
    answer = run.answer or ""
    made = [Path(a.path).name for r in run.results.values() for a in r.artifacts if a.path]
    for fact in spec.get("facts", []):
        found = any(states_fact(answer, alt, made) for alt in _alternatives(fact))
        checks.append(Check("facts", found, "" if found else f"missing {fact!r}"))
    checks.append(_check_stale(spec, run, state))
    if len(run.plan):
        checks.append(_check_status(run))
    return checks


def states_fact(answer: str, fact: str, made: Sequence[str] = ()) -> bool:
    """Whether `answer` states `fact`. A file name is no statement: "cat" is not stated by "cat.png", so
    facts are looked for with file names taken out, unless the fact is about files (".wav", `{made}.png`)."""
    if fact.startswith(MADE):
        return any(name.endswith(fact[len(MADE) :]) and name in answer for name in made)
    if fact.startswith(".") or FILE_NAME.search(fact):
        return _contains(answer, fact)
    return _contains(FILE_NAME.sub(" ", answer), fact)


def _check_files(run: Run, state: SessionState) -> Check:
    known = {Path(p).name for p in state.named | state.made}
    invented = []
    for task in run.plan:
        for value in task.args.values():
            value = str(value)
            if GENERATED_RE.search(value):
                continue
            for name in named_files(value) or ([value] if media_kind(value) else []):
                if Path(name).name not in known:
                    invented.append(name)
    return Check("files", not invented, f"invented: {invented}" if invented else "")


def _check_speech(run: Run) -> list[Check]:
    checks = []
    for result in run.results.values():
        if result.task == "text-to-speech" and result.inputs.get("text"):
            text = result.inputs["text"]
            raw = RAW_DATA.search(text)
            checks.append(Check("speech", raw is None, f"speaks raw data: {text[:80]!r}" if raw else ""))
    return checks


def _check_spoken(spec: Mapping[str, Any], run: Run) -> list[Check]:
    """Each `"speaks"` entry is in the text of some speech this run made (the sign's words, not "1 face found")."""
    spoken = [r.inputs.get("text", "") for r in run.results.values() if r.task == "text-to-speech" and r.status == "done"]
    checks = []
    for entry in spec.get("speaks", []):
        found = any(_contains(text, alt) for text in spoken for alt in _alternatives(entry))
        checks.append(Check("speech", found, "" if found else f"no speech says {entry!r} (spoken: {spoken})"[:200]))
    return checks


def _check_stale(spec: Mapping[str, Any], run: Run, state: SessionState) -> Check:
    own = [alt for fact in spec.get("facts", []) for alt in _alternatives(fact)]
    produced = "\n".join([_results_text(run), run.request, *(json.dumps(t.args) for t in run.plan)])
    answer = FILE_NAME.sub(" ", run.answer or "")  # "bakery.png" repeats no fact
    earlier = state.earlier_facts if len(run.plan) else []  # no task: the answer comes from the history
    stale = [
        fact
        for fact in [*earlier, *spec.get("absent", [])]
        if len(fact) >= STALE_MIN_CHARS
        and not any(_contains(o, fact) or _contains(fact, o) for o in own)
        and not _contains(produced, fact)
        and _contains(answer, fact)
    ]
    return Check("stale", not stale, f"repeats earlier: {stale}" if stale else "")


def _check_status(run: Run) -> Check:
    answer = run.answer or ""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", answer) if s.strip()]
    bad = []
    failed = [r for r in run.results.values() if r.status != "done"]
    missing = [r.task for r in run.plan if r.id not in run.results]
    if (failed or missing) and not FAILED_WORDS.search(answer):
        bad.append(f"does not say that {[r.task for r in failed] + missing} did not finish")
    failed_types = {r.task for r in failed}
    for result in run.results.values():
        if result.status != "done" or result.task in failed_types:
            continue
        for sentence in sentences:
            if result.task in sentence.lower() and FAILED_WORDS.search(sentence):
                if not any(t in sentence.lower() for t in failed_types):
                    bad.append(f"calls {result.task} failed: {sentence.strip()[:100]!r}")
    return Check("status", not bad, "; ".join(bad))


# --------------------------------------------------------------------------- running a suite


def load_suite(path: str | Path) -> dict[str, Any]:
    suite = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(suite.get("sessions"), list):
        raise ValueError(f"{path}: a suite is {{'files': {{...}}, 'sessions': [...]}}")
    return suite


def suite_problems(suite: Mapping[str, Any]) -> list[str]:
    """What is wrong with a suite before anything runs: unknown recipes, undeclared files, unknown task
    types, a split its seed does not make, and a paraphrase or language suite smaller than its kind needs."""
    from ..registry import default_registry
    from .session_data import recipe_problem

    registry = default_registry()
    problems = [
        f"{name}: {problem}"
        for name, recipe in suite.get("files", {}).items()
        if (problem := recipe_problem(recipe))
    ]
    for session in suite["sessions"]:
        for name in sorted(_files_needed(session) - set(suite.get("files", {}))):
            problems.append(f"{session['id']}: {{data}}/{name} is not in the suite's files")
        for spec in session["requests"]:
            for group in [*spec.get("tasks", []), *spec.get("allow", [])]:
                problems += [f"{session['id']}: unknown task type {t!r}" for t in _alternatives(group) if t not in registry]
            if not re.fullmatch(r"[a-z]{2}", str(spec.get("lang", "en"))):
                problems.append(f"{session['id']}: lang {spec['lang']!r} is not a two-letter language code")
    problems += split_problems(suite)
    kind = suite.get("kind")
    if kind == "paraphrases":
        problems += _paraphrase_problems(suite)
    elif kind == "languages":
        problems += _language_problems(suite)
    elif kind is not None:
        problems.append(f"unknown suite kind {kind!r} (paraphrases or languages)")
    return problems


def _paraphrase_problems(suite: Mapping[str, Any]) -> list[str]:
    styles: dict[str, list[str]] = {}
    for session in suite["sessions"]:
        styles.setdefault(family(session), []).extend(str(r.get("style")) for r in session["requests"])
    problems = [f"family {name}: {len(found)} phrasings, fewer than {MIN_PHRASINGS}"
                for name, found in styles.items() if len(found) < MIN_PHRASINGS]
    problems += [f"family {name}: no {', '.join(missing)} phrasing"
                 for name, found in styles.items() if (missing := [s for s in STYLES if s not in found])]
    return problems


def _language_problems(suite: Mapping[str, Any]) -> list[str]:
    langs = [str(r.get("lang", "en")) for s in suite["sessions"] for r in s["requests"]]
    other = [lang for lang in langs if lang != "en"]
    problems = []
    if len(other) < MIN_OTHER_LANGUAGE_REQUESTS:
        problems.append(f"{len(other)} requests in other languages than English, fewer than {MIN_OTHER_LANGUAGE_REQUESTS}")
    if len(set(other)) < MIN_OTHER_LANGUAGES:
        problems.append(f"requests in {len(set(other))} other languages than English, fewer than {MIN_OTHER_LANGUAGES}")
    return problems


def suite_path(name: str) -> Path:
    """A shipped suite by its name (`SUITES`), or a suite file's path."""
    return data_path(SUITES[name]) if name in SUITES else Path(name)


def select_sessions(suite: Mapping[str, Any], split: str = "all", start: int = 0, limit: int | None = None) -> dict[str, Any]:
    """`suite` with only the sessions of `split` ("dev", "held_out" or "all"), from `start`, at most `limit`."""
    sessions = [s for s in suite["sessions"] if split == "all" or split_of(s) == split]
    sessions = sessions[start:]
    return {**suite, "sessions": sessions[:limit] if limit else sessions}


def _files_needed(session: Mapping[str, Any]) -> set[str]:
    pattern = re.compile(r"\{data\}/([\w.-]*\w)")  # a sentence's full stop is not part of the name
    return {name for req in session["requests"] for name in pattern.findall(req["text"])}


class _ReplacedAnswers(logging.Handler):
    """Counts the responder's "answer was replaced" warnings (the grounding check rejected the LLM)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if "replaced" in record.getMessage():
            self.count += 1
            self.last = record.getMessage()


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_suite(
    suite: Mapping[str, Any],
    llm: Any,
    experts: Any = "auto",
    *,
    limit: int | None = None,
    workdir: str | Path | None = None,
    on_row: Callable[[RequestRow], None] | None = None,
    name: str = "suite",
    **pipeline_options: Any,
) -> tuple[list[RequestRow], list[str]]:
    """Run the first `limit` sessions of `suite`, each in a fresh pipeline sharing `llm` and the experts.

    Returns the request rows (marked with the suite's `name`, and each session's split and family) and
    the sessions skipped (with why: a file that could not be made). `pipeline_options` go to `HuggingGPT`
    (a catalogue, say).
    """
    from ..experts import make_experts
    from ..pipeline import HuggingGPT

    backends = make_experts(experts)
    sessions = list(suite["sessions"])[:limit] if limit else list(suite["sessions"])
    rows: list[RequestRow] = []
    skipped: list[str] = []
    counter = _ReplacedAnswers()
    logging.getLogger("hgpt_magic.responder").addHandler(counter)
    with tempfile.TemporaryDirectory(prefix="hgpt-sessions-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        made = make_files(suite.get("files", {}), root / DATA_DIR)
        try:
            with _inside(root):
                for session in sessions:
                    missing = [n for n in _files_needed(session) if not isinstance(made.get(n), Path)]
                    if missing:
                        reasons = {n: str(made.get(n) or "not declared in the suite's files") for n in missing}
                        skipped.append(f"{session['id']}: {reasons}")
                        continue
                    hg = HuggingGPT(llm=llm, experts=backends, out_dir=root / "runs", **pipeline_options)
                    state = SessionState()
                    for spec in session["requests"]:
                        before = counter.count
                        row = _run_request(hg, session["id"], spec, state)
                        row.suite, row.split, row.family = name, split_of(session), family(session)
                        row.lang = str(spec.get("lang", "en"))
                        if counter.count > before:
                            row.answer_replaced = counter.last
                        rows.append(row)
                        if on_row:
                            on_row(row)
        finally:
            logging.getLogger("hgpt_magic.responder").removeHandler(counter)
    return rows, skipped


def _run_request(hg: Any, session_id: str, spec: Mapping[str, Any], state: SessionState) -> RequestRow:
    from ..planning import PlanError

    text = spec["text"].replace("{data}", DATA_DIR)
    state.named |= set(named_files(text))
    start = time.perf_counter()
    error = None
    try:
        run = hg.run(text)
    except PlanError as exc:
        run, error = hg.last_run, str(exc)
    except Exception as exc:  # noqa: BLE001 - an LLM or expert crash is a failed request, not a failed bench
        run, error = hg.last_run, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    row = RequestRow(session_id, text, error=error, seconds=seconds, answer=run.answer or "")
    if run.plan is not None:
        row.plan = [t.task for t in run.plan]
        row.statuses = [run.results[t.id].status if t.id in run.results else "not run" for t in run.plan]
    row.checks = check_request(spec, run, state)
    state.made |= {a.path for r in run.results.values() for a in r.artifacts if a.path}
    state.earlier_facts += [alt for fact in spec.get("facts", []) for alt in _alternatives(fact) if not alt.startswith(MADE)]
    return row


# --------------------------------------------------------------------------- figures


def report(rows: Sequence[RequestRow], skipped: Sequence[str] = ()) -> dict[str, Any]:
    """The share of checks that hold, overall, per kind and per request language, and seconds per request."""
    checks = [c for r in rows for c in r.checks]
    by_kind = {}
    for kind in CHECK_KINDS:
        of_kind = [c for c in checks if c.kind == kind]
        if of_kind:
            by_kind[kind] = {"held": sum(c.ok for c in of_kind) / len(of_kind), "failed": sum(not c.ok for c in of_kind)}
    seconds = [r.seconds for r in rows]
    figures = {
        "sessions": len({(r.suite, r.session) for r in rows}),
        "requests": len(rows),
        "checks": len(checks),
        "held": _share(checks),
        "by_kind": by_kind,
        "invented_files": sum(len(_INVENTED.findall(c.detail)) for c in checks if c.kind == "files" and not c.ok),
        "stale_answers": sum(not c.ok for c in checks if c.kind == "stale"),
        "requests_all_held": sum(all(c.ok for c in r.checks) for r in rows) / len(rows) if rows else None,
        "answers_replaced": sum(bool(r.answer_replaced) for r in rows),
        "seconds_per_request": sum(seconds) / len(seconds) if seconds else None,
        "median_seconds_per_request": median(seconds),
        "skipped_sessions": list(skipped),
    }
    languages = sorted({r.lang for r in rows})
    if len(languages) > 1:
        figures["by_language"] = {
            lang: {"requests": sum(r.lang == lang for r in rows), "held": _share([c for r in rows if r.lang == lang for c in r.checks])}
            for lang in languages
        }
    return figures


#: One invented file name inside a "files" check's detail ("invented: ['a.png', 'b.wav']").
_INVENTED = re.compile(r"'[^']*'")


def _share(checks: Sequence[Check]) -> float | None:
    return sum(c.ok for c in checks) / len(checks) if checks else None


def report_parts(rows: Sequence[RequestRow], skipped: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """`report` per suite and split ("paraphrases/held_out"), and over all suites per split ("all/dev")."""
    skipped = skipped or {}
    parts: dict[str, Any] = {}
    suites = list(dict.fromkeys(r.suite for r in rows)) + [s for s in skipped if s not in {r.suite for r in rows}]
    for suite in suites:
        for split in SPLITS:
            part = [r for r in rows if r.suite == suite and r.split == split]
            if part:
                parts[f"{suite}/{split}"] = report(part, [s for s in skipped.get(suite, []) if s.endswith(f"[{split}]")])
    if len(suites) > 1:
        for split in SPLITS:
            part = [r for r in rows if r.split == split]
            if part:
                parts[f"all/{split}"] = report(part, [s for lst in skipped.values() for s in lst if s.endswith(f"[{split}]")])
    return parts


def readable(figures: Mapping[str, Any]) -> str:
    """One table: a column per suite and part, a row per check kind ("share held (failed)")."""
    parts = figures["parts"]
    names = list(parts)

    def cell(held: float | None, failed: int) -> str:
        return "-" if held is None else f"{held:.3f} ({failed})"

    rows = [("all checks", *(cell(p["held"], p["checks"] - round((p["held"] or 0) * p["checks"])) for p in parts.values()))]
    for kind in CHECK_KINDS:
        if any(kind in p["by_kind"] for p in parts.values()):
            rows.append((kind, *(cell(p["by_kind"][kind]["held"], p["by_kind"][kind]["failed"]) if kind in p["by_kind"] else "-"
                                 for p in parts.values())))
    rows.append(("invented files", *(p["invented_files"] for p in parts.values())))
    rows.append(("stale answers", *(p["stale_answers"] for p in parts.values())))
    languages = sorted({lang for p in parts.values() for lang in p.get("by_language", {})})
    for lang in languages:
        rows.append((f"requests in {lang}", *(_language_cell(p["by_language"][lang]) if lang in p.get("by_language", {})
                                              else "-" for p in parts.values())))
    lines = [table(rows, ["check: share held (failed)", *names])]
    for name, p in parts.items():
        lines.append(
            f"{name}: {p['requests']} requests in {p['sessions']} sessions; "
            f"{p['answers_replaced']} LLM answers replaced by the grounding check; "
            f"{p['seconds_per_request'] or 0:.1f} s per request (median {p['median_seconds_per_request'] or 0:.1f} s)"
        )
        lines += [f"  skipped {s}" for s in p["skipped_sessions"]]
    return "\n".join(lines)


def _language_cell(figures: Mapping[str, Any]) -> str:
    return f"{figures['held']:.3f} of {figures['requests']} req"


def row_from_json(data: Mapping[str, Any]) -> RequestRow:
    """A row as `--details` wrote it."""
    fields = {k: v for k, v in data.items() if k in RequestRow.__dataclass_fields__ and k != "checks"}
    return RequestRow(**fields, checks=[Check(**c) for c in data.get("checks", [])])


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench sessions")
    parser.add_argument("--suite", action="append", default=None, metavar="NAME",
                        help=f"a suite: {', '.join(SUITES)} or a suite file; repeat for several (default: all three)")
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all", help="which part of each suite (default: all)")
    parser.add_argument("--llm", default=None, help="controller LLM spec (default: $HGPT_LLM, else the embedded model)")
    parser.add_argument("--experts", default="auto", help="expert backends spec (default: auto)")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N sessions of each suite (after --start)")
    parser.add_argument("--start", type=int, default=0, help="skip each suite's first N sessions (to measure it in parts)")
    parser.add_argument("--out", default=None, help="write the figures and every request's row as JSON here")
    parser.add_argument("--details", default=None, help="append one JSON line per request here as it finishes")
    parser.add_argument("--from-details", nargs="+", default=None, metavar="JSONL",
                        help="run nothing: the figures of rows that earlier runs wrote with --details")
    parser.add_argument("--threads", type=int, default=None, help="threads for the embedded model (default: its own)")
    parser.add_argument("--quiet", action="store_true", help="no per-request progress on stderr")
    return parser


def suite_name(name: str) -> str:
    """How a suite is called in the figures: its `SUITES` name, or its file's stem."""
    return name if name in SUITES else Path(name).stem


def main(args: argparse.Namespace) -> int:
    names = [suite_name(n) for n in args.suite] if args.suite else list(SUITES)
    if args.from_details:
        rows = [row_from_json(json.loads(line)) for path in args.from_details
                for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [r for r in rows if (not args.suite or r.suite in names) and args.split in ("all", r.split)]
        figures = {"bench": "sessions", "suites": list(dict.fromkeys(r.suite for r in rows)), "split": args.split,
                   "from_details": list(args.from_details), "parts": report_parts(rows)}
        emit(figures, readable(figures), args.out, details={"rows": [asdict(r) for r in rows]})
        return 0

    from . import load_llm

    suites = {}
    for given in args.suite or list(SUITES):
        suite = load_suite(suite_path(given))
        problems = suite_problems(suite)
        if problems:
            print(f"{given}: {'; '.join(problems)}", file=sys.stderr)
            return 2
        suites[suite_name(given)] = select_sessions(suite, args.split, args.start, args.limit)
    llm = load_llm(args.llm, args.threads)

    def progress(row: RequestRow) -> None:
        if args.details:
            with open(args.details, "a", encoding="utf-8") as details:
                details.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        if args.quiet:
            return
        failed = [f"{c.kind}: {c.detail}" for c in row.checks if not c.ok]
        mark = "ok  " if not failed else "FAIL"
        print(f"{mark} {row.seconds:5.1f}s [{row.suite}/{row.split}/{row.session}] {row.request[:70]!r} -> {row.plan}",
              file=sys.stderr)
        for line in failed:
            print(f"       {line}", file=sys.stderr)
        sys.stderr.flush()

    rows: list[RequestRow] = []
    skipped: dict[str, list[str]] = {}
    for name, suite in suites.items():
        splits = {s["id"]: split_of(s) for s in suite["sessions"]}
        suite_rows, suite_skipped = run_suite(suite, llm, args.experts, on_row=progress, name=name)
        rows += suite_rows
        skipped[name] = [f"{s} [{splits[s.split(':', 1)[0]]}]" for s in suite_skipped]
    figures = {"bench": "sessions", "suites": names, "split": args.split, "start": args.start, "limit": args.limit,
               "llm": getattr(llm, "name", str(llm)), "parts": report_parts(rows, skipped)}
    emit(figures, readable(figures), args.out, details={"rows": [asdict(r) for r in rows]})
    return 0
