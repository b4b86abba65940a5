"""Is a plan well formed? `plan_errors` says what is wrong with one, and never changes it.

Checked: every item is a task of the registry with an integer id and an object of arguments; ids are
unique; each argument is one of the task's slots and every required slot is filled; each `<GENERATED>-N`
names another task of the plan whose output type fits the slot (a media slot takes the reference alone);
the references have no cycle. What can be fixed is fixed before, by `repair` (LLM replies) or by the
user (the editor shows these errors), never here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..registry import Registry
from ..types import GENERATED_RE, Task


class PlanError(ValueError):
    """The LLM's plan could not be read or repaired. `raw` is the LLM's text, `errors` what was wrong.

    `message`, when given, is what the user reads instead of the errors (the planner's final failure: the
    errors were written for the LLM). `suggestion`: task dicts that a person may start from (a task for each
    file the request names), or None.
    """

    def __init__(self, errors: list[str], raw: str = "", *, message: str | None = None,
                 suggestion: list[dict[str, Any]] | None = None):
        self.errors = list(errors)
        self.raw = raw
        self.suggestion = suggestion
        shown = "; ".join(self.errors[:3]) + ("; …" if len(self.errors) > 3 else "")
        super().__init__(message or f"invalid plan: {shown}")


def as_task_list(data: Any) -> list[Any]:
    """Accept `[...]`, `{"tasks": [...]}` or a single task object."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        return data["tasks"]
    if isinstance(data, dict) and "task" in data:
        return [data]
    if isinstance(data, list):
        return data
    raise PlanError(['expected a JSON list of tasks or {"tasks": [...]}'])


def coerce_id(value: Any) -> int | None:
    """An id as an int (`3` or `"3"`); None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_task(name: str, registry: Registry) -> str | None:
    """The registry name that `name` means, allowing case, space, `_` and `-` differences."""
    if name in registry:
        return name
    wanted = _normalise(name)
    matches = [t for t in registry.names if _normalise(t) == wanted]
    return matches[0] if len(matches) == 1 else None


def read_task(item: Any, registry: Registry) -> Task | None:
    """The item as a `Task` when it is readable as one: a known task, an integer id, arguments as an
    object (values other than strings written as JSON). None otherwise (`plan_errors` says why).
    """
    if not isinstance(item, dict) or str(item.get("task", "")) not in registry:
        return None
    task_id, args = coerce_id(item.get("id")), item.get("args") or {}
    if task_id is None or not isinstance(args, dict):
        return None
    return Task(
        id=task_id,
        task=str(item["task"]),
        dep=[d for d in (coerce_id(x) for x in item.get("dep") or []) if d is not None],
        args={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in args.items()},
    )


def plan_errors(data: Any, registry: Registry) -> list[str]:
    """Every problem of a plan (a list of task dicts, or `{"tasks": [...]}`), in plan order; [] when it is
    valid. The plan is not changed.
    """
    try:
        items = as_task_list(data)
    except PlanError as exc:
        return exc.errors
    errors: list[str] = []
    tasks: list[Task] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"item {position} is not an object")
            continue
        name = str(item.get("task", ""))
        if name not in registry:
            errors.append(f"unknown task {name!r} (known: {', '.join(registry.names)})")
            continue
        task_id = coerce_id(item.get("id"))
        if task_id is None:
            errors.append(f"task {position} ({name}) has no integer id")
            continue
        args = item.get("args") or {}
        slots = registry[name].inputs
        if isinstance(args, list) and len(args) > len(slots):
            errors.append(f"task {task_id} ({name}) has {len(args)} arguments, at most {len(slots)} allowed")
            continue
        if not isinstance(args, dict):
            errors.append(f"task {task_id} ({name}) has arguments that are not an object")
            continue
        tasks.append(read_task(item, registry))  # type: ignore[arg-type]

    counts: dict[int, int] = {}
    for task in tasks:
        counts[task.id] = counts.get(task.id, 0) + 1
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    if duplicated:
        referenced = {ref for t in tasks for _, ref in t.references()}
        ambiguous = ", and references to them are ambiguous" if referenced & set(duplicated) else ""
        errors.append(f"duplicate task ids {duplicated}{ambiguous}")
    by_id = {t.id: t for t in tasks}
    for task in tasks:
        errors += task_errors(task, registry, by_id)
    if not errors:
        cycle = cycle_error(tasks)
        errors += [cycle] if cycle else []
    return errors


def task_errors(task: Task, registry: Registry, by_id: dict[int, Task]) -> list[str]:
    """What is wrong with one task's arguments and references, given the plan's tasks by id."""
    errors = []
    spec = registry[task.task]
    for key in task.args:
        if spec.slot(key) is None:
            errors.append(
                f"task {task.id} ({task.task}) has unknown argument {key!r}; it takes "
                + ", ".join(f"{s.name} ({s.type})" for s in spec.inputs)
            )
    for slot in spec.inputs:
        if slot.required and not str(task.args.get(slot.name, "")).strip():
            errors.append(f"task {task.id} ({task.task}) is missing its {slot.type} argument {slot.name!r}")
    for name, ref in task.references():
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


def topological_order(tasks: list[Task]) -> tuple[list[Task], list[int]]:
    """Kahn's algorithm on the tasks' references, stable with respect to the given order.

    Returns the ordered tasks and the ids left over because they depend on each other in a cycle.
    """
    ids = {t.id for t in tasks}
    remaining = {t.id: set(t.derived_dep(ids)) for t in tasks}
    ordered: list[Task] = []
    while remaining:
        ready = [t for t in tasks if t.id in remaining and not remaining[t.id]]
        if not ready:
            break
        for task in ready:
            del remaining[task.id]
            ordered.append(task)
            for deps in remaining.values():
                deps.discard(task.id)
    return ordered, sorted(remaining)


def cycle_error(tasks: list[Task]) -> str | None:
    _, cycle = topological_order(tasks)
    return f"the tasks {cycle} depend on each other in a cycle" if cycle else None
