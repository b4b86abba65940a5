"""Intent rules: a task a request plainly asks for, added when the LLM's plan leaves it out.

The LLM plans; these rules only add. Small models drop the second half of a double request ("read the sign,
out loud and in Spanish" planned as OCR and speech) more often than they invent one, and a dropped part is
cheap to put back: the task is known, and what it reads is the plan's own output. No rule ever removes a task
the LLM planned: wording cannot tell that a step was not wanted, and across languages it is wrong more often
than right.

The rules are data (a vocabulary's `intent_rules` file, see `prompts/intent_rules.json`): a pattern in several
languages, examples it must and must not match (each tested), and why it exists. A rule reads the request
with its file names taken out ("photo.png" is no request for a photo), and each task it adds leaves a note
naming the rule in `Plan.repairs`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..text import letters, named_files, quoted_texts, without_files
from .context import Context, Items, readable


@dataclass(frozen=True)
class IntentRule:
    """One rule: `task` is added when `pattern` matches the request (files taken out) and the plan lacks it."""

    name: str
    task: str
    pattern: re.Pattern[str]
    why: str = ""
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()
    languages: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def search(self, request: str) -> re.Match[str] | None:
        return self.pattern.search(without_files(request))

    def slot_values(self, request: str) -> dict[str, str]:
        """What the named groups of every match fill: group "language" or "language_de" fills slot
        "language", in English ("ins Französische" -> "French")."""
        values: dict[str, str] = {}
        for match in self.pattern.finditer(without_files(request)):
            for group, found in match.groupdict().items():
                if found:
                    slot = group.split("_")[0]
                    values.setdefault(slot, self.languages.get(found.lower(), found.strip().title()))
        return values


def load_rules(source: Any) -> tuple[IntentRule, ...]:
    """The rules of an intent-rules JSON file (a path or a packaged resource); none for None."""
    if source is None:
        return ()
    path = Path(source) if isinstance(source, str | Path) else source
    return _parse(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def _parse(text: str) -> tuple[IntentRule, ...]:
    data = json.loads(text)
    languages = {k.lower(): v for k, v in data.get("languages", {}).items()}
    return tuple(
        IntentRule(
            rule["name"],
            rule["task"],
            re.compile(rule["pattern"], re.IGNORECASE),
            rule.get("why", ""),
            tuple(rule.get("examples", {}).get("match", ())),
            tuple(rule.get("examples", {}).get("no_match", ())),
            languages,
        )
        for rule in data["rules"]
    )


def requested_tasks(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Add each task an intent rule finds asked for but the plan lacks (see the module docstring).

    What the added task reads: a text task takes the text of the task on the file named nearest the rule's
    words ("..., and read aloud the text in sign.png": the OCR of sign.png, not the face count of the photo
    named first), else the plan's last text, else the session's latest text, else the request's one quoted
    text; a task of two texts takes the request's two quotes; a task of one image or audio takes the
    request's only file of that kind. Nothing is added when nothing in reach can feed it.
    """
    rules = load_rules(ctx.registry.vocabulary.intent_rules)
    if not rules or not ctx.request.strip():  # a user's own draft has no request to judge it by
        return items, []
    items, notes = list(items), []
    for rule in rules:
        match = rule.search(ctx.request)
        tasks = readable(items, ctx)
        if match is None or rule.task not in ctx.registry or len(tasks) != len(items):
            continue  # only into a plan every item of which is readable
        if any(t.task == rule.task for _, t in tasks):
            items, rewired = _rewire(rule, match, items, tasks, ctx)
            notes += rewired
            continue
        spec = ctx.registry[rule.task]
        slots = [s for s in spec.inputs if s.required]
        found = _inputs(rule, match, slots, tasks, ctx)
        if found is None:
            continue
        values, source, producer = found
        args = {slot.name: value for slot, value in zip(slots, values, strict=True)}
        for name, value in rule.slot_values(ctx.request).items():
            if spec.slot(name) is not None:
                args.setdefault(name, value)
        new_id = max((t.id for _, t in tasks), default=-1) + 1
        items = items + [{"task": rule.task, "id": new_id, "dep": [producer] if producer is not None else [], "args": args}]
        notes.append(f"task {new_id} ({rule.task}) added by intent rule {rule.name!r} ({match.group(0)!r}); it reads {source}")
    return items, notes


def _rewire(rule, match, items, tasks, ctx) -> tuple[Items, list[str]]:
    """Point the rule's planned task at the file its words name, when the LLM wired it elsewhere:

    - to another file's result ("find the faces in a.png, and read aloud the text in sign.png": speech of the
      sign's text, not of the face count), in a request naming several files;
    - to a text that this request does not contain, while a task of this plan reads the file the request
      names ("read aloud the text of uscita.png" planned as speech of an earlier cell's translation of it).

    Only a one-text task."""
    spec = ctx.registry[rule.task]
    slots = [s for s in spec.inputs if s.required]
    if len(slots) != 1 or slots[0].type != "text":
        return items, []
    text_tasks = [t for _, t in tasks if "text" in ctx.registry[t.task].outputs and t.task != rule.task]
    wanted = _nearest_producer(rule, match, text_tasks, ctx)
    readers = [t for t in text_tasks if set(map(str, t.args.values())) & set(named_files(ctx.request))]
    items, notes = [dict(item) for item in items], []
    for position, task in tasks:
        value = str(task.args.get(slots[0].name, "")).strip()
        refs = [ref for _, ref in task.references()]
        if task.task != rule.task:
            continue
        if refs and value == f"<GENERATED>-{refs[0]}" and wanted is not None and refs != [wanted.id]:
            source, why = wanted, f"instead of task {refs[0]}: intent rule {rule.name!r} ({match.group(0)!r}) names the file"
        elif not refs and value and not _in_request(value, ctx.request) and (wanted or len(readers) == 1):
            source = wanted or readers[0]
            why = (f"instead of a text this request does not contain ({value[:40]!r}): intent rule {rule.name!r} "
                   f"({match.group(0)!r}) names the file")
        else:
            continue
        items[position] = dict(items[position], args={**items[position]["args"], slots[0].name: f"<GENERATED>-{source.id}"},
                               dep=[source.id])
        notes.append(f"task {task.id} ({rule.task}) reads the output of task {source.id} ({source.task}) {why} "
                     f"task {source.id} reads")
    return items, notes


def _in_request(value: str, request: str) -> bool:
    """Whether the request contains `value` (quoted or not; case, spaces and punctuation aside)."""
    return letters(value) in letters(request)


def _inputs(rule, match, slots, tasks, ctx) -> tuple[list[str], str, int | None] | None:
    """(values for the slots, where they come from, the producing task's id) or None when nothing fits."""
    if not slots:
        return None
    quoted = quoted_texts(ctx.request)
    if any(s.type != "text" for s in slots):  # "the edges of rocket.png": the request's one file of the kind
        named = ctx.files.get(slots[0].type, [])
        if len(slots) > 1 or len(named) != 1:
            return None
        return named, "the file the request names", None
    if len(slots) > 1:  # "'I love pizza' versus 'The market fell'": only the request's quotes fill them all
        return (quoted, "the texts the request quotes", None) if len(quoted) == len(slots) else None
    text_tasks = [t for _, t in tasks if "text" in ctx.registry[t.task].outputs]
    producer = _nearest_producer(rule, match, text_tasks, ctx) or (text_tasks[-1] if text_tasks else None)
    if producer is not None:
        return [f"<GENERATED>-{producer.id}"], f"the output of task {producer.id} ({producer.task})", producer.id
    if ctx.earlier_texts:
        return [ctx.earlier_texts[-1]], "the latest text of this session", None
    if len(quoted) == 1:
        return quoted, "the text the request quotes", None
    return None


def _nearest_producer(rule, match, text_tasks, ctx):
    """The text task that reads the file named nearest the rule's words in the request, if any."""
    stripped = without_files(ctx.request)
    words = match.group(0)
    anchor = ctx.request.find(words) if words in ctx.request else -1
    if anchor < 0 or stripped == ctx.request:
        return None
    files = named_files(ctx.request)
    if len(files) < 2:
        return None
    distance = {name: abs(ctx.request.find(name) - anchor) for name in files}
    for name in sorted(files, key=distance.__getitem__):
        for task in text_tasks:
            if name in task.args.values():
                return task
    return None
