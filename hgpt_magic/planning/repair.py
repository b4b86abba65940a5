"""Repairs of an LLM's plan's form: what a small model commonly gets wrong, fixed where only one reading fits.

They look at the plan's structure (names, ids, argument names and types, references, file names), never at
what the request's words mean, so they work alike for every language; the intent rules (`intents`) come last.
Each repair takes the plan's task dicts and returns a repaired copy and notes saying what changed
(`(items, notes)`); the input is never changed. `repair_plan` runs them in order. They act only on
items `validate.read_task` can read; what stays wrong is for `validate.plan_errors` to report.

The planner applies them to every LLM reply; the editor offers them to the user as suggestions
(`draft.Draft.suggestions`), never applying one silently.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..registry import Registry
from ..text import letters
from ..types import GENERATED_RE, Task
from .context import Context, EarlierTurn, Items, readable
from .intents import requested_tasks
from .validate import as_task_list, coerce_id, match_task


def task_names(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """A task name written with other case, spaces, `_` or `-` ("Text_To_Speech") gets the registry's."""
    items, notes = copy.deepcopy(items), []
    for item in items:
        if not isinstance(item, dict):
            continue
        raw_name = str(item.get("task", ""))
        name = match_task(raw_name, ctx.registry)
        if name is not None and name != raw_name:
            item["task"] = name
            notes.append(f"task name {raw_name!r} read as {name!r}")
    return items, notes


def positional_arguments(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Arguments given as a list are mapped onto the task's slots in order (when there are not too many)."""
    items, notes = copy.deepcopy(items), []
    for item in items:
        if not isinstance(item, dict) or item.get("task") not in ctx.registry or not isinstance(item.get("args"), list):
            continue
        task_id = coerce_id(item.get("id"))
        slots = ctx.registry[item["task"]].inputs
        if task_id is None or len(item["args"]) > len(slots) or not item["args"]:
            continue
        item["args"] = {slot.name: value for slot, value in zip(slots, item["args"], strict=False)}
        notes.append(f"task {task_id}: positional arguments mapped onto {', '.join(item['args'])}")
    return items, notes


def plain_values(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Readable items in the plan's own form: an int id, int deps, string arguments. No notes: nothing
    the plan says changes.
    """
    items = copy.deepcopy(items)
    for position, task in readable(items, ctx):
        items[position] = task.to_dict()
    return items, []


def duplicate_ids(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Tasks sharing an id get fresh ids, unless some task refers to that id (then which one is meant is
    not clear, and the plan is refused).
    """
    items, notes = copy.deepcopy(items), []
    tasks = readable(items, ctx)
    counts: dict[int, int] = {}
    for _, task in tasks:
        counts[task.id] = counts.get(task.id, 0) + 1
    duplicated = {i for i, n in counts.items() if n > 1}
    if not duplicated or duplicated & {ref for _, t in tasks for _, ref in t.references()}:
        return items, notes
    next_id = max(counts) + 1
    used: set[int] = set()
    for position, task in tasks:
        if task.id in used:
            notes.append(f"duplicate id {task.id} renumbered to {next_id}")
            items[position]["id"] = next_id
            used.add(next_id)
            next_id += 1
        else:
            used.add(task.id)
    return items, notes


def restore_paths(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Give back the folders a small LLM drops from file names: "sign.png" for "notebooks/data/sign.png"
    (and "rocket.jpg" for "data/rocket.png": a bare name whose extension was guessed).

    Only a media argument that is not itself a file of the request or of an earlier cell, and whose name
    ends exactly one of those files of that type, is changed: the request's files first, then the earlier
    cells' ("read the invoice number out loud" planned on "invoice.png" when cell 1 named "data/invoice.png").
    """
    items, notes = copy.deepcopy(items), []
    for position, task in readable(items, ctx):
        args = items[position]["args"]
        for slot in ctx.registry[task.task].inputs:
            value = str(args.get(slot.name, "")).strip()
            named = ctx.files.get(slot.type, [])
            earlier = [path for path in ctx.earlier.get(slot.type, []) if path not in named]
            if not value or value in named or value in earlier or GENERATED_RE.search(value):
                continue
            tail = "/" + value.lstrip("./")
            stem = Path(value).stem.lower()
            for source, known in (("the file the request names", named), ("a file an earlier cell named or made", earlier)):
                matches = [path for path in known if ("/" + path).endswith(tail)]
                if not matches and "/" not in value:  # "rocket.jpg" for "data/rocket.png": the name, not the type
                    matches = [path for path in known if Path(path).stem.lower() == stem]
                if len(matches) == 1:
                    args[slot.name] = matches[0]
                    notes.append(f"task {task.id}: {slot.name} {value!r} read as {matches[0]!r}, {source}")
                    break
                if matches:
                    break  # more than one fits: which was meant is not clear
    return items, notes


def copied_requests(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """A text argument that copies an earlier cell's *request* means that cell's result: it becomes the
    first text that cell made ("now translate what was said" planned as a translation of "Transcribe
    hello.wav and summarise it", where the transcript was meant).

    Small models point at an earlier turn by copying the line they can see best, its request. Only a near
    copy (`_copies`) of a request that made some text is changed, and never a copy of this request.
    """
    items, notes = copy.deepcopy(items), []
    for position, task in readable(items, ctx):
        args = items[position]["args"]
        for slot in ctx.registry[task.task].inputs:
            value = str(args.get(slot.name, ""))
            if slot.type != "text" or GENERATED_RE.search(value) or len(letters(value)) < 12:
                continue
            for number, (request, texts) in reversed(list(enumerate(ctx.earlier_turns, start=1))):
                if texts and _copies(value, request) and not _copies(value, ctx.request):
                    args[slot.name] = texts[0]
                    notes.append(f"task {task.id}: {slot.name} copied request {number}; set to the first text it made")
                    break
    return items, notes


def _copies(value: str, request: str) -> bool:
    """Whether `value` is `request` nearly word for word (a folder or a word dropped, case and punctuation
    aside): 80% of their letters line up."""
    a, b = letters(value), letters(request)
    return bool(a and b) and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.8


def argument_names(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """An unknown argument name is renamed when exactly one free slot fits it (e.g. "img" given an image
    path, by the slot's type or the type of the task it refers to)."""
    items, notes = copy.deepcopy(items), []
    tasks = readable(items, ctx)
    by_id = {t.id: t for _, t in tasks}
    for position, task in tasks:
        spec = ctx.registry[task.task]
        args = items[position]["args"]
        for key in [k for k in args if spec.slot(k) is None]:
            free = [s for s in spec.inputs if s.name not in args]
            fitting = [s for s in free if s.type == key or s.type == _reference_type(args[key], by_id, ctx.registry)]
            if len(fitting) == 1 or (len(free) == 1 and len(spec.inputs) == 1):
                target = (fitting or free)[0]
                args[target.name] = args.pop(key)
                notes.append(f"task {task.id}: argument {key!r} renamed to {target.name!r}")
    return items, notes


def task_name_arguments(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """An argument that is literally the name of an earlier task of the plan ("text": "image-to-text")
    means that task's output: it becomes "<GENERATED>-N" when that task produces the slot's type.

    Small models name the step they mean instead of writing the reference; read as a text, the name
    itself would be spoken or translated.
    """
    items, notes = copy.deepcopy(items), []
    tasks = readable(items, ctx)
    for order, (position, task) in enumerate(tasks):
        args = items[position]["args"]
        for slot in ctx.registry[task.task].inputs:
            value = str(args.get(slot.name, "")).strip().strip("<>\"'")
            named = match_task(value, ctx.registry) if value else None
            if named is None:
                continue
            producer = next((t for _, t in reversed(tasks[:order]) if t.task == named), None)
            if producer is not None and slot.type in ctx.registry[producer.task].outputs:
                args[slot.name] = f"<GENERATED>-{producer.id}"
                notes.append(f"task {task.id}: {slot.name} {value!r} is a task's name; set to <GENERATED>-{producer.id}")
    return items, notes


def _reference_type(value: str, by_id: dict[int, Task], registry: Registry) -> str | None:
    """The first output type of the task that `value` refers to, if it is a reference."""
    match = GENERATED_RE.fullmatch(str(value).strip())
    if match and int(match.group(1)) in by_id:
        outputs = registry[by_id[int(match.group(1))].task].outputs
        return outputs[0] if outputs else None
    return None


def repoint(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Point a whole-argument reference that cannot be right (no such task, itself, or a task that does
    not produce the slot's type) at what was most likely meant.

    Small LLMs often write the right structure with an off-by-one or a neighbour's id; the type graph
    says which producer was meant: the closest earlier task that produces the slot's type. Failing that,
    a media slot takes the request's file of that type when the request names exactly one ("edit
    photo.jpg" planned as image-editing of a speech clip). Otherwise the reference is left for the errors.
    """
    items, notes = copy.deepcopy(items), []
    tasks = readable(items, ctx)
    by_id = {t.id: t for _, t in tasks}
    for order, (position, task) in enumerate(tasks):
        item = items[position]
        spec = ctx.registry[task.task]
        for name, ref in task.references():
            slot = spec.slot(name)
            producer = by_id.get(ref)
            if slot is None or GENERATED_RE.fullmatch(item["args"][name].strip()) is None:
                continue
            if producer is not None and producer is not task and slot.type in ctx.registry[producer.task].outputs:
                continue
            candidate = next(
                (t for _, t in reversed(tasks[:order]) if slot.type in ctx.registry[t.task].outputs), None
            )
            named = ctx.files.get(slot.type, [])
            if candidate is not None:
                item["args"][name] = f"<GENERATED>-{candidate.id}"
                item["dep"] = [candidate.id if d == ref else d for d in item["dep"]]  # not reported again as a dep fix
                notes.append(
                    f"task {task.id}: {name!r} took <GENERATED>-{ref}, which cannot give {slot.type}; "
                    f"set to <GENERATED>-{candidate.id} ({candidate.task})"
                )
            elif slot.type != "text" and len(named) == 1:
                item["args"][name] = named[0]
                item["dep"] = [d for d in item["dep"] if d != ref]
                notes.append(
                    f"task {task.id}: {name!r} took <GENERATED>-{ref}, which cannot give {slot.type}; "
                    f"set to {named[0]}, the request's only {slot.type} file"
                )
    return items, notes


def derived_deps(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """`dep` becomes what the references say (`Task.derived_dep`); a stated dep that differs is noted."""
    items, notes = copy.deepcopy(items), []
    tasks = readable(items, ctx)
    ids = [t.id for _, t in tasks]
    for position, task in tasks:
        derived = task.derived_dep(ids)
        stated = sorted(d for d in set(task.dep) if d != -1)
        if stated != derived:
            notes.append(f"task {task.id}: dep {stated} set to {derived} (from its <GENERATED> arguments)")
        items[position]["dep"] = derived
    return items, notes


#: The repairs, in the order they are applied to a reply.
REPAIRS: tuple[Callable[[Items, Context], tuple[Items, list[str]]], ...] = (
    task_names, positional_arguments, plain_values, duplicate_ids, restore_paths, argument_names, task_name_arguments,
    repoint, derived_deps, copied_requests, requested_tasks,
)


def repair_plan(
    data: Any, registry: Registry, request: str = "", earlier: Sequence[str] = (), earlier_turns: Sequence[EarlierTurn] = ()
) -> tuple[Items, list[str]]:
    """Every repair of `REPAIRS` applied in turn: the repaired task dicts and all the notes. `earlier`: the
    files earlier cells of the session named or made; `earlier_turns`: their requests and the texts they made."""
    items: Items = list(as_task_list(data))
    ctx = Context.of(registry, request, earlier, earlier_turns)
    notes: list[str] = []
    for repair in REPAIRS:
        items, more = repair(items, ctx)
        notes += more
    return items, notes
