"""Answers that agree with the run: its facts stated by code, and a check of what the LLM wrote.

A small model asked to report a run gets paths, statuses and numbers wrong ("the file produced is
SPEECH.wav" for the input, "task 1 was not successful" for a task that succeeded, "1.00 faces").
So the facts the user asked for (the text read, the transcript, the count, the score) are written by
`run_facts` from the results, produced files by `produced_files`, failures by `failures`; the LLM
only adds a short sentence, and `check_answer` rejects that sentence when it names a file the run
neither used nor made, calls a task's status the opposite of what it was, or gives a number no result
contains. `deterministic_answer` is what the user reads when there is no acceptable LLM sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import Registry, default_registry
from .text import letters, media_kind, named_files, one_line_quote, quoted_texts
from .types import GENERATED_RE, Artifact, Plan, TaskResult

#: Characters of one text result quoted in the answer (a receipt fits; a book does not).
VALUE_CHARS = 800


FAILURE_WORDS = re.compile(
    r"\b(?:fail\w*|unsuccessful|error\w*|unable|cannot|can ?not|could ?n[o']t|could not|did ?n[o']t (?:work|run|succeed)"
    r"|not (?:be )?(?:successful|succeed\w*|completed?|run|used|possible|available|performed|executed))\b",
    re.IGNORECASE,
)
SUCCESS_WORDS = re.compile(r"\b(?:succeed\w*|successful(?:ly)?|completed?|worked|was done|were done)\b", re.IGNORECASE)
PRODUCED_WORDS = re.compile(r"\b(?:produc\w*|generat\w*|creat\w*|saved|output|made|wrote|written)\b", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(%?)(?!\w)")
COUNTED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(faces?|people|persons?|objects?)\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Fact:
    """One result the user may have asked for, in words: `label: value`."""

    task_id: int
    task: str
    label: str
    value: str

    def line(self) -> str:
        return f"{self.label}: {self.value}"


def result_label(task: str, registry: Registry | None = None) -> str:
    """How a task type's text result is introduced ("Text in {src}"), from its declaration."""
    for known in (registry, default_registry()):
        if known is not None and task in known and known[task].result_label:
            return known[task].result_label
    return f"Result of {task}"


def number(value: float) -> str:
    """A number as a person writes it: 3 not 3.0, 0.89 not 0.8912."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def counted(n: int, noun: str) -> str:
    """ "1 face", "2 faces" (nouns ending in s stay as they are)."""
    return f"{n} {noun}" if n == 1 or noun.endswith("s") else f"{n} {noun}s"


def source(task_args: Mapping[str, str]) -> str:
    """What a task read, for a label: a file's name, or "the output of task N"."""
    for value in task_args.values():
        match = GENERATED_RE.search(str(value))
        if match:
            return f"the output of task {match.group(1)}"
        if media_kind(str(value)):
            return Path(str(value)).name
    return "the input"


def is_detections(data: Any) -> bool:
    """Whether `data` is a detector's `[{"label", "score", "box"}]`: things found, each with a box.

    A classifier's `[{"label", "score"}]` is not: its labels are guesses at what the whole image is, best
    first, and counting them ("1 Egyptian cat, 1 tiger cat") would state five things where there is one.
    """
    return (bool(data) and isinstance(data, list)
            and all(isinstance(d, dict) and "label" in d and "box" in d for d in data))


def _detections(data: Any) -> str | None:
    """ "2 faces, 1 dog" from a detector's `[{"label", "score", "box"}]`; None if it is not that shape
    (an empty list is left to the artifact's own text: "no faces found" says more than "nothing")."""
    if not is_detections(data):
        return None  # entities and class labels are stated by their own text: the names, not counts of them
    counts: dict[str, int] = {}
    for item in data:
        counts[str(item["label"])] = counts.get(str(item["label"]), 0) + 1
    return ", ".join(counted(n, label) for label, n in counts.items())


def succeeded(results: Mapping[int, TaskResult]) -> bool:
    """Whether any task finished: with none, there is nothing for an LLM sentence to report."""
    return any(r.status == "done" for r in results.values())


def failed_outcomes(plan: Plan, results: Mapping[int, TaskResult]) -> list[int]:
    """The tasks whose output the user was to get (no other task reads it) that did not finish. With one of
    them, an LLM sentence tends to describe the missing result anyway ("I drew the bird on the branch"), in
    words no check can read in every language; so the answer is the run's own (facts, files, failures)."""
    read = {ref for task in plan for _, ref in task.references()}
    return [t.id for t in plan if t.id not in read and (t.id not in results or results[t.id].status != "done")]


def _value(task: str, text: str, data: Any) -> str:
    """The readable value of one non-file artifact."""
    detections = _detections(data)
    if detections is not None:
        return detections
    if isinstance(data, dict) and isinstance(data.get("score"), int | float) and task == "sentence-similarity":
        return number(data["score"]) + " (cosine similarity, -1 to 1)"
    text = " ".join(text.split()) if "\n" not in text.strip() else text.strip()
    if not text:
        text = json.dumps(data, ensure_ascii=False, default=str) if data is not None else ""
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def run_facts(plan: Plan, results: Mapping[int, TaskResult], registry: Registry | None = None) -> list[Fact]:
    """The non-file results of the tasks that ran, in plan order, each labelled by what it is (its task
    type's `result_label` in `registry`, else HuggingGPT's)."""
    facts = []
    for task in plan:
        result = results.get(task.id)
        if result is None or result.status != "done":
            continue
        label = result_label(task.task, registry).format(src=source(task.args))
        if task.task == "translation" and task.args.get("language"):
            label += f" into {task.args['language']}"
        for artifact in result.artifacts:
            if artifact.path:
                continue
            value = _value(task.task, artifact.text, artifact.data)
            if value:
                facts.append(Fact(task.id, task.task, _artifact_label(label, task.args, artifact), value))
    return facts


def findings_only(artifact: Artifact) -> bool:
    """Whether an artifact reports what models found and must not be retold as more (the local describer's)."""
    return isinstance(artifact.data, dict) and artifact.data.get("findings_only") is True


def _artifact_label(label: str, args: Mapping[str, str], artifact: Artifact) -> str:
    """The task's label, said more exactly where the artifact tells: what models found in a photo (not its
    text), or the language a transcript was heard in."""
    if findings_only(artifact):
        return f"What local models found in {source(args)}"
    data = artifact.data if isinstance(artifact.data, dict) else {}
    if data.get("language_name") and str(data.get("transcript") or "").strip():  # no speech: no language to name
        return f"{label} ({data['language_name']})"
    return label


def produced_files(results: Mapping[int, TaskResult]) -> list[tuple[str, str, str]]:
    """(path, kind, task type) of every file the run made, in task order."""
    return [
        (a.path, a.kind, results[tid].task)
        for tid in sorted(results)
        for a in results[tid].artifacts
        if a.path and results[tid].status == "done"
    ]


def file_descriptions(results: Mapping[int, TaskResult]) -> list[tuple[str, str, str]]:
    """(path, what the file is, task type) of every file the run made: "Canny edge map 256x256, ...". Speech
    says which text it speaks, so an answer describes the audio that was made, not the one asked for."""
    found = []
    for tid in sorted(results):
        result = results[tid]
        for a in result.artifacts:
            if a.path and result.status == "done":
                text = a.text or f"{a.kind} file"
                spoken = result.inputs.get("text", "") if a.kind == "audio" else ""
                if spoken:
                    spoken = " ".join(spoken.split())
                    text += f", speaking {one_line_quote(spoken if len(spoken) <= 160 else spoken[:159] + '…')}"
                found.append((a.path, text, result.task))
    return found


def failures(plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """One line per task that did not run to the end, with the reason."""
    lines = []
    for task in plan:
        result = results.get(task.id)
        if result is None or result.status in ("pending", "running"):
            lines.append(f"{task.task} (task {task.id}) did not run")
        elif result.status != "done":
            reason = (result.error or "no reason given").strip()
            lines.append(f"{task.task} (task {task.id}) {result.status}: {reason}")
    return lines


def deterministic_answer(plan: Plan, results: Mapping[int, TaskResult], registry: Registry | None = None) -> str:
    """A readable answer from the results alone: facts, files, failures (see `complete`)."""
    return complete("", plan, results, registry)


def complete(answer: str, plan: Plan, results: Mapping[int, TaskResult], registry: Registry | None = None) -> str:
    """`answer` followed by what the code states itself: the facts it does not already quote, the
    produced files and the failures. With an empty `answer`, that is the whole answer."""
    parts = [answer.strip()] if answer.strip() else []
    facts = [f.line() for f in run_facts(plan, results, registry) if not quotes(answer, f.value)]
    if facts:
        parts.append("\n".join(f"- {line}" for line in facts) if len(facts) > 1 or parts else facts[0])
    files = file_descriptions(results)
    if files:
        parts.append("Files:\n" + "\n".join(f"- {path} ({task}: {text})" for path, text, task in files))
    failed = failures(plan, results)
    if failed:
        parts.append("Not done:\n" + "\n".join(f"- {line}" for line in failed))
    if not parts:
        return "The tasks ran but produced nothing to report."
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- checking the LLM's answer


def check_answer(answer: str, request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """What in `answer` the run contradicts; empty when nothing does."""
    return (
        _check_files(answer, request, results)
        + _check_statuses(answer, plan, results)
        + _check_numbers(answer, request, plan, results)
        + _check_quotes(answer, request, plan, results)
        + _check_labels(answer, plan, results)
        + _check_findings(answer, request, plan, results)
        + _check_echo(answer, request, plan, results)
    )


def _check_echo(answer: str, request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """An answer made of the request's own words and of nothing any result says reports nothing: small models
    echo the request ("Die englische Fassung laut vor." for "Und lies die englische Fassung laut vor.").
    Words in any language; a number or a word of a result ("The review is negative") makes it an answer, a
    short word both share ("die", "le") does not."""
    said = _words(" ".join(w for w in answer.split() if not named_files(w)))
    if len(said) < 3 or not said <= _words(request):
        return []
    found = _words(_run_text(plan, results))
    reported = {w for w in said & found if len(w) > 3 or any(c.isdigit() for c in w)}  # not "die", "le", "the"
    return [] if reported else ["repeats the request instead of reporting the results"]


def _run_text(plan: Plan, results: Mapping[int, TaskResult]) -> str:
    """Everything the run says, as one text to look an answer's words up in: the plan's arguments and every
    artifact's text and data."""
    return " ".join([*(json.dumps(t.args, ensure_ascii=False) for t in plan)] + [
        f"{a.text} {json.dumps(a.data, ensure_ascii=False, default=str)}" for r in results.values() for a in r.artifacts
    ])


def _words(text: str) -> set[str]:
    """Lower-case words and numbers, in any alphabet."""
    return set(re.findall(r"\w+", text.lower()))


#: Words that carry no claim about an image (articles, pronouns, auxiliaries, prepositions, conjunctions):
#: the only words an answer about findings-only results may use that no result or the request contains.
FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet of in on at by for from with without into onto about as to than then
is are was were be been being am do does did has have had can could may might will would shall should must
it its this that these those there here what which who whom whose where when how why
i me my we us our you your he him his she her they them their one ones
not no none any some all each both either neither only also just very more most less least
""".split())


def _check_findings(answer: str, request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """An answer about what models found in a photo may only say what they found: "a tabby cat asleep on a
    sofa" from the labels "tabby 0.09, Egyptian cat 0.71" invents the sofa and the sleep. Every word of
    the answer must be in a result or the request, function words aside."""
    arts = [a for r in results.values() if r.status == "done" for a in r.artifacts]
    if not any(findings_only(a) for a in arts):
        return []
    said = _word_set(" ".join([request, *(json.dumps(t.args) for t in plan)] + [
        f"{a.text} {json.dumps(a.data, ensure_ascii=False, default=str)}" for a in arts
    ]))
    without_files = " ".join(w for w in answer.split() if not named_files(w))
    unsupported = sorted(_word_set(without_files) - said - FUNCTION_WORDS)
    if unsupported:
        return [f"says what no model found in the image: {', '.join(unsupported[:5])}"]
    return []


def _word_set(text: str) -> set[str]:
    """Lower-case words, possessives dropped ("classifier's" is "classifier")."""
    return set(re.findall(r"[a-z]+", re.sub(r"['’]s\b", "", text.lower())))


#: A result labelled as the output of a task type ("Translation: ...", "Summary into German: ..."): a claim
#: that such a task ran. Only labels no other task's result would carry.
CLAIMED_LABELS = {
    "translation": re.compile(r"(?:^|\n|[.!?]\s)\s*(?:[-*]\s*)?(?:the )?(?:translation|translated text)\b[^:\n]{0,25}:", re.I),
    "summarization": re.compile(r"(?:^|\n|[.!?]\s)\s*(?:[-*]\s*)?(?:the )?summary\b[^:\n]{0,25}:", re.I),
    "automatic-speech-recognition": re.compile(r"(?:^|\n|[.!?]\s)\s*(?:[-*]\s*)?(?:the )?transcript\w*\b[^:\n]{0,25}:", re.I),
}


def _check_labels(answer: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """ "Translation: Welcome to the Library" when no translation ran is a result made up."""
    done = {results[t.id].task for t in plan if t.id in results and results[t.id].status == "done"}
    return [
        f"labels a result as {task} output, but no {task} task finished"
        for task, label in CLAIMED_LABELS.items()
        if task not in done and label.search(answer)
    ]


def _check_files(answer: str, request: str, results: Mapping[int, TaskResult]) -> list[str]:
    made = {path for path, _, _ in produced_files(results)}
    made_names = {Path(p).name for p in made}
    used = set(named_files(request))
    used |= {v for r in results.values() for v in r.inputs.values() if media_kind(str(v))}
    used_names = {Path(p).name for p in used}
    problems = []
    for name in named_files(answer):
        base = Path(name).name
        if name not in made | used and base not in made_names | used_names:
            problems.append(f"names a file the run neither used nor made: {name}")
    for sentence in _sentences(answer):
        inputs = [n for n in named_files(sentence) if Path(n).name in used_names - made_names]
        outputs = [n for n in named_files(sentence) if Path(n).name in made_names]
        if inputs and not outputs and PRODUCED_WORDS.search(sentence):
            problems.append(f"calls an input file produced: {inputs[0]}")
    return problems


def _check_quotes(answer: str, request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    """A quoted text is a claim that a result (or the request) says it: "In Spanish: "NO PARQUEO"" when no
    translation ran is made up."""
    sources = letters(request + " " + _run_text(plan, results))
    problems = []
    for text in quoted_texts(answer, backticks=False):
        if len(letters(text)) >= 4 and letters(text) not in sources:
            problems.append(f"quotes a text no result contains: {text!r}")
    return problems



def _check_statuses(answer: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    status = {t.id: (results[t.id].status if t.id in results else "pending") for t in plan}
    problems = []
    for sentence in _sentences(answer):
        named = _tasks_named(sentence, plan)
        if not named:
            continue
        states = {status[t] for t in named}
        if FAILURE_WORDS.search(sentence) and states == {"done"}:
            problems.append(f"says a task that succeeded did not: {sentence.strip()!r}")
        elif SUCCESS_WORDS.search(sentence) and not FAILURE_WORDS.search(sentence) and "done" not in states:
            problems.append(f"says a task that did not succeed did: {sentence.strip()!r}")
    return problems


def _tasks_named(sentence: str, plan: Plan) -> set[int]:
    """The plan's tasks a sentence is about: by "task N", else by task type name."""
    lower = sentence.lower()
    by_id = {int(m) for m in re.findall(r"\btask\s*#?(\d+)\b", lower)} & set(plan.ids)
    if by_id:
        return by_id
    return {t.id for t in plan if t.task in lower}


def _check_numbers(answer: str, request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[str]:
    sources = _source_numbers(request, plan, results)
    problems = []
    counts = _detection_counts(results)
    for match in COUNTED.finditer(answer):
        value, noun = match.group(1), match.group(2).lower()
        if "." in value:
            problems.append(f"gives a count that is not a whole number: {match.group(0)!r}")
        elif counts and int(value) not in counts.get(noun.rstrip("s"), set()) | counts.get("*", set()):
            problems.append(f"gives a count no detection made: {match.group(0)!r}")
    without_files = re.sub(r"\S*\.[A-Za-z][A-Za-z0-9]{1,4}\b", " ", answer)  # "run-20.png" is no number
    for match in NUMBER.finditer(without_files):
        text = match.group(0).rstrip("%")
        decimals = len(text.split(".")[1]) if "." in text else 0
        value = float(text)
        readings = [(value, decimals)]
        if match.group(1):  # 89% agrees with 0.89, and with 89
            readings.append((value / 100, decimals + 2))
        if not any(_agrees(v, d, s) for v, d in readings for s in sources):
            problems.append(f"gives a number no result contains: {match.group(0)}")
    return problems


def _source_numbers(request: str, plan: Plan, results: Mapping[int, TaskResult]) -> list[float]:
    texts = [request] + [json.dumps(t.args) for t in plan]
    for result in results.values():
        texts.append(result.error or "")
        for artifact in result.artifacts:
            texts.append(artifact.text)
            texts.append(json.dumps(artifact.data, default=str) if artifact.data is not None else "")
    found = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", " ".join(texts))]
    found += [float(i) for i in range(len(plan) + 1)]  # "task 1", "2 tasks"
    for counts in _detection_counts(results).values():
        found += [float(c) for c in counts]
    return found


def _agrees(value: float, decimals: int, source: float) -> bool:
    """`value`, written with `decimals`, is `source` rounded to that precision (0.89 agrees with 0.8912)."""
    return abs(round(source, decimals) - value) < 10 ** (-decimals) / 2 + 1e-9 or abs(source - value) < 1e-9


def _detection_counts(results: Mapping[int, TaskResult]) -> dict[str, set[int]]:
    """Per label (and "*" for any), the counts the detectors reported."""
    counts: dict[str, set[int]] = {}
    for result in results.values():
        for artifact in result.artifacts:
            data = artifact.data
            if is_detections(data):
                per: dict[str, int] = {}
                for item in data:
                    per[str(item["label"]).lower()] = per.get(str(item["label"]).lower(), 0) + 1
                for label, n in per.items():
                    counts.setdefault(label, set()).add(n)
                counts.setdefault("*", set()).add(len(data))
                counts.setdefault("people", set()).add(per.get("face", 0) + per.get("person", 0))
                counts.setdefault("person", set()).add(per.get("face", 0) + per.get("person", 0))
    return counts


def _sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text) if s.strip()]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def quotes(answer: str, value: str) -> bool:
    """Whether `answer` already states `value` (case, spacing, quotes and end punctuation aside)."""
    def bare(text: str) -> str:
        return _norm(re.sub(r"[\"'“”‘’«»()]", "", text)).strip(" .!?;:")

    return bool(bare(value)) and bare(value) in bare(answer)
