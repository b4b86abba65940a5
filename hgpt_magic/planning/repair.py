"""Repairs of an LLM's plan: what a small model commonly gets wrong, fixed where the intent is clear.

Each repair takes the plan's task dicts and returns a repaired copy and notes saying what changed
(`(items, notes)`); the input is never changed. `repair_plan` runs them in order. They act only on
items `validate.read_task` can read; what stays wrong is for `validate.plan_errors` to report.

The planner applies them to every LLM reply; the editor offers them to the user as suggestions
(`draft.Draft.suggestions`), never applying one silently.
"""

from __future__ import annotations

import copy
import difflib
import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry, TaskType
from ..types import GENERATED_RE, MEDIA_TYPES, Task
from .validate import PlanError, as_task_list, coerce_id, match_task, read_task

_FILE = re.compile(r"[\w./~:-]*[\w-]\.[A-Za-z0-9]{2,5}\b")
_WORD = re.compile(r"[a-z0-9]+")

Items = list[Any]


#: An earlier cell as repairs see it: its request and the texts it made (a transcript, a sign's text).
EarlierTurn = tuple[str, Sequence[str]]


@dataclass
class Context:
    """What repairs may consult: the vocabulary, the request and its files by media type, the files
    earlier cells of the session named or made (`earlier`, by media type too) and those cells' requests
    with the texts they made (`earlier_turns`, oldest first)."""

    registry: Registry
    files: dict[str, list[str]] = field(default_factory=dict)
    request: str = ""
    earlier: dict[str, list[str]] = field(default_factory=dict)
    earlier_turns: list[EarlierTurn] = field(default_factory=list)

    @classmethod
    def of(
        cls, registry: Registry, request: str = "", earlier: Sequence[str] = (), earlier_turns: Sequence[EarlierTurn] = ()
    ) -> Context:
        return cls(registry, request_files(request), request, request_files(" ".join(earlier)), list(earlier_turns))

    @property
    def earlier_texts(self) -> list[str]:
        """Every text earlier cells made, oldest first."""
        return [text for _, texts in self.earlier_turns for text in texts]


def request_files(request: str) -> dict[str, list[str]]:
    """The file names in a request, by media type (from the extension): {"image": ["a.jpg"], ...}."""
    found: dict[str, list[str]] = {}
    for name in _FILE.findall(request or ""):
        mime = mimetypes.guess_type(name)[0] or ""
        kind = mime.split("/")[0]
        if kind in ("image", "audio", "video") and name not in found.get(kind, []):
            found.setdefault(kind, []).append(name)
    return found


def words(text: str) -> set[str]:
    """The words (3 letters or more) of a text, lower case: for matching requests and descriptions."""
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def _readable(items: Items, ctx: Context) -> list[tuple[int, Task]]:
    """(position, task) of every item that reads as a task."""
    found = []
    for position, item in enumerate(items):
        task = read_task(item, ctx.registry)
        if task is not None:
            found.append((position, task))
    return found


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
    for position, task in _readable(items, ctx):
        items[position] = task.to_dict()
    return items, []


def duplicate_ids(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Tasks sharing an id get fresh ids, unless some task refers to that id (then which one is meant is
    not clear, and the plan is refused).
    """
    items, notes = copy.deepcopy(items), []
    tasks = _readable(items, ctx)
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
    for position, task in _readable(items, ctx):
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


#: A request that asks again for what the previous one asked ("do the same for coffee.png", "again with the cat").
SAME_AGAIN = re.compile(r"\b(?:same|again|likewise|as well|too|also|similarly)\b", re.IGNORECASE)


def unrequested_tasks(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Drop a last task the request gives no ground for: one whose vocabulary cue (`Vocabulary.cues`: e.g.
    "aloud", "voice" for text-to-speech) the request does not match, and whose output no task uses.

    Small models end plans with the demos' habits: "what is the total?" planned with a text-to-speech at
    the end, a follow-up question ("and when was it finished?") planned as text-classification. Dropped
    one at a time from the end, so a chain the request did ask for stays whole; a plan left empty means
    the answer comes from the earlier cells (the responder sees them when no task ran). A request that
    asks for the same again is judged with the previous request's words too.
    """
    cues = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in ctx.registry.vocabulary.cues}
    if not cues or not ctx.request.strip():  # a user's own draft has no request to judge it by
        return items, []
    asked = ctx.request
    if ctx.earlier_turns and SAME_AGAIN.search(ctx.request):  # "do the same for coffee.png": what that asked
        asked += "\n" + ctx.earlier_turns[-1][0]
    items, notes = copy.deepcopy(items), []
    changed = True
    while changed:
        changed = False
        tasks = _readable(items, ctx)
        used = {ref for _, t in tasks for _, ref in t.references()} | {d for _, t in tasks for d in t.dep}
        for position, task in reversed(tasks):
            cue = cues.get(task.task)
            if cue is None or task.id in used or cue.search(asked):
                continue
            del items[position]
            notes.append(f"task {task.id} ({task.task}) dropped: the request does not ask for it")
            changed = True
            break
    return items, notes


def requested_tasks(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """Add a task the request plainly asks for (`Vocabulary.asks`: "read it out loud", "into Spanish") but
    the plan lacks, reading the plan's last text (else the session's latest text, else the request's quoted
    text; a task of several texts takes the request's quotes, one each), with the slots the expression's
    named groups fill ("language": "Spanish"). A task of one image or audio takes the request's only file of
    that kind ("show me the outlines in rocket.png"; none or several: nothing is added).

    Small models drop the second half of a double request ("say what the sign says, out loud and in
    Spanish" planned as OCR and speech only) or replace it with a demo's habit (an edge map for "tell me
    with your voice"), or plan nothing at all. Nothing is added when nothing in reach can feed the task.
    """
    asks = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in ctx.registry.vocabulary.asks]
    if not asks or not ctx.request.strip():  # a user's own draft has no request to judge it by
        return items, []
    items, notes = copy.deepcopy(items), []
    for name, pattern in asks:
        matches = list(pattern.finditer(ctx.request))
        tasks = _readable(items, ctx)
        if not matches or name not in ctx.registry or any(t.task == name for _, t in tasks):
            continue
        spec = ctx.registry[name]
        slots = [s for s in spec.inputs if s.required]
        if not slots or len(tasks) != len(items):
            continue  # only into a plan every item of which is readable
        producer = next((t for _, t in reversed(tasks) if "text" in ctx.registry[t.task].outputs), None)
        quoted = _quoted_texts(ctx.request)
        if any(s.type != "text" for s in slots):  # "the edges of rocket.png": the request's one file of the kind
            named = ctx.files.get(slots[0].type, [])
            if len(slots) > 1 or len(named) != 1:
                continue
            values, source, producer = named, "the file the request names", None
        elif len(slots) > 1:  # "'I love pizza' versus 'The market fell'": only the request's quotes fill them all
            if len(quoted) != len(slots):
                continue
            values, source, producer = quoted, "the texts the request quotes", None
        elif producer is not None:
            values, source = [f"<GENERATED>-{producer.id}"], f"the output of task {producer.id} ({producer.task})"
        elif ctx.earlier_texts:
            values, source = [ctx.earlier_texts[-1]], "the latest text of this session"
        elif len(quoted) == 1:
            values, source = quoted, "the text the request quotes"
        else:
            continue
        args = {slot.name: value for slot, value in zip(slots, values, strict=True)}
        for match in matches:
            for group, found in match.groupdict().items():
                if found and spec.slot(group) is not None:
                    args.setdefault(group, found.strip().title())
        new_id = max((t.id for _, t in tasks), default=-1) + 1
        dep = [producer.id] if producer is not None else []
        items.append({"task": name, "id": new_id, "dep": dep, "args": args})
        notes.append(
            f"task {new_id} ({name}) added: the request asks for it ({matches[0].group(0)!r}); it reads {source}"
        )
    return items, notes


_QUOTED = re.compile(r"(?<!\w)'([^'\n]{2,})'(?!\w)|\"([^\"\n]{2,})\"|“([^”\n]{2,})”")


def _quoted_texts(text: str) -> list[str]:
    """The texts a request quotes: 'good morning', "hello", “hi”."""
    return [next(g for g in groups if g) for groups in _QUOTED.findall(text)]


def copied_requests(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """A text argument that copies an earlier cell's *request* means that cell's result: it becomes the
    first text that cell made ("now translate what was said" planned as a translation of "Transcribe
    hello.wav and summarise it", where the transcript was meant).

    Small models point at an earlier turn by copying the line they can see best, its request. Only a near
    copy (`_copies`) of a request that made some text is changed, and never a copy of this request.
    """
    items, notes = copy.deepcopy(items), []
    for position, task in _readable(items, ctx):
        args = items[position]["args"]
        for slot in ctx.registry[task.task].inputs:
            value = str(args.get(slot.name, ""))
            if slot.type != "text" or GENERATED_RE.search(value) or len(_letters(value)) < 12:
                continue
            for number, (request, texts) in reversed(list(enumerate(ctx.earlier_turns, start=1))):
                if texts and _copies(value, request) and not _copies(value, ctx.request):
                    args[slot.name] = texts[0]
                    notes.append(f"task {task.id}: {slot.name} copied request {number}; set to the first text it made")
                    break
    return items, notes


def _letters(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def _copies(value: str, request: str) -> bool:
    """Whether `value` is `request` nearly word for word (a folder or a word dropped, case and punctuation
    aside): 80% of their letters line up."""
    a, b = _letters(value), _letters(request)
    return bool(a and b) and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.8


def argument_names(items: Items, ctx: Context) -> tuple[Items, list[str]]:
    """An unknown argument name is renamed when exactly one free slot fits it (e.g. "img" given an image
    path, by the slot's type or the type of the task it refers to)."""
    items, notes = copy.deepcopy(items), []
    tasks = _readable(items, ctx)
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
    tasks = _readable(items, ctx)
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
    tasks = _readable(items, ctx)
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
    tasks = _readable(items, ctx)
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
    repoint, derived_deps, copied_requests,
    unrequested_tasks, requested_tasks,
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


def number_by_position(data: Any) -> Any:
    """A compact reply's tasks get their position as id and the tasks they reference as dep."""
    data = copy.deepcopy(data)
    items = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return data
    for position, item in enumerate(items):
        if isinstance(item, dict) and "id" not in item:
            item["id"] = position
            args = item.get("args") or {}
            values = list(args.values()) if isinstance(args, dict) else args if isinstance(args, list) else [args]
            item.setdefault("dep", Task(position, "", args={str(i): str(v) for i, v in enumerate(values)}).derived_dep())
    return data


def bridge_types(
    data: Any, registry: Registry, request: str = "", prior: dict[str, int] | None = None, hops: int = 1
) -> tuple[Any, list[str]]:
    """Insert converter tasks where a task takes the output of one that produces another type.

    "Summarize the picture you drew" planned as text-to-image -> summarization needs the picture in
    words first: when no earlier task produces the wanted type (`repoint`'s case), the shortest chain
    of one-input tasks from the producer's type to the wanted one (here image -> text) is put in
    between (`_conversion`; `prior`: task name -> how often the demos use it; at most `hops` tasks).
    Returns the new plan data and what was inserted (empty when nothing was).
    """
    try:
        source_items = as_task_list(data)
    except PlanError:
        return data, []
    if not all(isinstance(item, dict) and isinstance(item.get("args") or {}, dict) for item in source_items):
        return data, []
    items = [dict(item, args=dict(item.get("args") or {})) for item in source_items]
    names = [match_task(str(item.get("task", "")), registry) for item in items]
    ids = [coerce_id(item.get("id")) for item in items]
    if None in names or None in ids or len(set(ids)) != len(ids):
        return data, []
    by_id = {i: name for i, name in zip(ids, names, strict=True)}
    request_words = words(request)
    notes: list[str] = []
    next_id = max(ids, default=-1) + 1  # type: ignore[type-var]
    inserted: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        spec = registry[names[position]]  # type: ignore[index]
        for slot_name, value in list(item["args"].items()):
            match = GENERATED_RE.fullmatch(str(value).strip())
            slot = spec.slot(slot_name)
            if not match or slot is None or int(match.group(1)) not in by_id:
                continue
            producer = registry[by_id[int(match.group(1))]]  # type: ignore[index]
            if slot.type in producer.outputs or not producer.outputs:
                continue
            if any(slot.type in registry[n].outputs for n in names[:position]):  # type: ignore[index]
                continue  # `repoint` will use that task
            source = producer.outputs[0]
            chain = _conversion(registry, source, slot.type, request_words, prior or {}, hops)
            if not chain:
                continue
            upstream = int(match.group(1))
            for converter in chain:
                inserted.append({"task": converter.name, "id": next_id, "dep": [upstream],
                                 "args": {converter.inputs[0].name: f"<GENERATED>-{upstream}"}})
                upstream, next_id = next_id, next_id + 1
            item["args"][slot_name] = f"<GENERATED>-{upstream}"
            notes.append(
                f"task {ids[position]} ({spec.name}) wanted {slot.type} from task {match.group(1)} "
                f"({producer.name}, {source}); inserted {' -> '.join(t.name for t in chain)} to convert it"
            )
    return items + inserted, notes


def _conversion(
    registry: Registry, source: str, target: str, request_words: set[str], prior: dict[str, int], hops: int = 1
) -> list[TaskType]:
    """The shortest chain (at most `hops`) of one-input tasks turning `source` media into `target`.

    Each step takes the candidate sharing most words with the request, then the one the demos use
    most, then the registry's first. One hop by default: a longer detour (audio -> text -> image)
    invents more of the plan, so the planner first asks the LLM again and bridges with two hops only
    when its last answer still has the gap.
    """

    def rank(t: TaskType) -> tuple[int, int]:
        return len(request_words & words(f"{t.name} {t.description}")), prior.get(t.name, 0)

    steps = {m: [t for t in registry if len(t.inputs) == 1 and t.inputs[0].type == m] for m in MEDIA_TYPES}
    frontier: list[tuple[str, list[TaskType]]] = [(source, [])]
    for _ in range(hops):
        reached: dict[str, list[TaskType]] = {}
        for media, path in frontier:
            for t in sorted(steps.get(media, []), key=rank, reverse=True):
                for out in t.outputs:
                    if out not in reached and out != media:
                        reached[out] = path + [t]
        if target in reached:
            return reached[target]
        frontier = list(reached.items())
    return []
