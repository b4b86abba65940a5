"""A user's own plan, as the editor and the magic hold it: checked, never silently changed.

An LLM's plan is repaired (`planning.repair`) because the LLM is a sloppy but well-meaning author. A
user's edit is the user's word: `check_draft` reports what is wrong with it (the same checks as the
planner's, `planning.validate.plan_errors`, plus: every task needs an available model and its input
files must exist, and every file or URL must be one the user gave) and offers the planner's repairs as
suggestions the user may apply (`DraftCheck.apply_suggestions`), so the row, the plan that runs and Export
always agree.

The resource rule (`resources`, issue 13) is the pipeline's; here it is reported per task as `Refusal`s,
so the editor can show each on its row with an "Allow" button (`Allowed.accept`, recorded in the Run).
A value the user typed into an argument field is the user's word and needs no click (`TypedValues`); an
LLM's value the user did not touch does.

No widgets here: the editor shows a `DraftCheck`, the magic uses `missing_files` for `--auto` runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .planning.repair import repair_plan
from .planning.validate import PlanError, plan_errors, topological_order
from .registry import Registry
from .resources import MAX_TASKS, Allowed, refusal, resource_args
from .types import GENERATED_RE, Choice, Plan, Task, TaskResult


def with_derived_dep(task: Task) -> Task:
    """A copy of `task` whose `dep` is what its `<GENERATED>-N` arguments say (`Task.derived_dep`)."""
    return Task(id=task.id, task=task.task, dep=task.derived_dep(), args=dict(task.args))


def missing_files(tasks: Sequence[Task], registry: Registry) -> list[str]:
    """One message per media argument that names a local file that does not exist."""
    problems = []
    for task in tasks:
        spec = registry.types.get(task.task)
        for slot in spec.inputs if spec else ():
            value = task.args.get(slot.name, "").strip()
            if slot.type == "text" or not value or GENERATED_RE.fullmatch(value):
                continue
            if value.startswith(("http://", "https://", "data:")):
                continue
            if not Path(value).expanduser().is_file():
                problems.append(f"task {task.id} ({task.task}): {slot.type} file not found: {value}")
    return problems


class TypedValues:
    """What the user typed into each argument field: the user's word, so a file or URL there needs no "Allow".

    Only a value that still stands counts: typing a path and then changing it gives nothing, and an LLM's
    value the user never touched is not in here. `accept_into` makes the standing ones the session's
    (`Allowed.accept`) when the draft runs, so the Run records them.
    """

    def __init__(self) -> None:
        self._typed: dict[tuple[int, str], str] = {}

    def record(self, task_id: int, arg: str, value: str) -> None:
        self._typed[(task_id, arg)] = value.strip()

    def forget(self, task_id: int) -> None:
        """A removed task's fields (a later task may get its id)."""
        self._typed = {key: value for key, value in self._typed.items() if key[0] != task_id}

    def stands(self, task: Task, arg: str) -> bool:
        """Whether `task`'s argument `arg` is still what the user typed there."""
        typed = self._typed.get((task.id, arg))
        return typed is not None and typed == str(task.args.get(arg, "")).strip()

    def accept_into(self, allowed: Allowed, tasks: Sequence[Task], registry: Registry) -> list[str]:
        """Accept every file or URL the user typed that is still in the draft; returns those values."""
        values = [value for task in tasks for arg, value in resource_args(task, registry, allowed.cwd)
                  if self.stands(task, arg)]
        for value in values:
            allowed.accept(value)
        return values


@dataclass(frozen=True)
class Refusal:
    """A file or URL argument the user did not give: the task cannot run until the user allows `value`."""

    task_id: int
    arg: str
    value: str
    message: str


def refusals(
    tasks: Sequence[Task], allowed: Allowed, registry: Registry, typed: TypedValues | None = None
) -> list[Refusal]:
    """The session's resource rule (`resources.check_plan`) per argument, a value the user typed excepted."""
    found = []
    for task in tasks:
        for arg, value in resource_args(task, registry, allowed.cwd):
            if not (typed is not None and typed.stands(task, arg)) and not allowed.allows(value):
                found.append(Refusal(task.id, arg, value, refusal(task, arg, value)))
    return found


@dataclass
class DraftCheck:
    """What `check_draft` found. `plan` is the draft exactly as written (dep derived, tasks ordered) when
    it can run, else None; `errors` say why not (refusals included); `refused` are the arguments the
    user did not give, for their rows; `suggestions` are the planner's repairs, which `apply_suggestions`
    makes (the user's choice, never automatic).
    """

    plan: Plan | None
    errors: list[str]
    suggestions: list[str] = field(default_factory=list)
    suggested: list[Task] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def apply_suggestions(self) -> list[Task]:
        """The draft with every suggestion applied (dep derived): what the planner would have made of it."""
        return [Task.from_dict(t.to_dict()) for t in self.suggested]

    def refused_on(self, task_id: int) -> list[Refusal]:
        """The refusals of one task, for its row."""
        return [r for r in self.refused if r.task_id == task_id]


def check_draft(
    tasks: Sequence[Task],
    choices: Mapping[int, Choice],
    registry: Registry,
    allowed: Allowed | None = None,
    typed: TypedValues | None = None,
) -> DraftCheck:
    """Check a user's draft without changing it; see the module docstring. Without `allowed`, files and
    URLs are not checked against the resource rule."""
    drafted = [with_derived_dep(t) for t in tasks]
    items = [t.to_dict() for t in drafted]
    errors = plan_errors(items, registry)
    suggestions: list[str] = []
    suggested: list[Task] = []
    try:
        repaired, notes = repair_plan(items, registry)
        if notes and not plan_errors(repaired, registry):
            suggestions, suggested = notes, [Task.from_dict(item) for item in repaired]
    except PlanError:
        pass
    for task in drafted:
        choice = choices.get(task.id)
        if choice is None or not choice.available:
            errors.append(f"task {task.id} ({task.task}): " + (choice.reason if choice else "no model chosen"))
    errors += missing_files(drafted, registry)
    refused = refusals(drafted, allowed, registry, typed) if allowed is not None else []
    errors += [r.message for r in refused]
    if len(drafted) > MAX_TASKS:
        errors.append(f"the plan has {len(drafted)} tasks; at most {MAX_TASKS} may run: remove some")
    if errors:
        return DraftCheck(None, errors, suggestions, suggested, refused)
    ordered, _ = topological_order(drafted)
    return DraftCheck(Plan(tasks=ordered), [], suggestions, suggested)


def fresh_ids(
    tasks: Sequence[Task], choices: Mapping[int, Choice], results: Mapping[int, TaskResult], registry: Registry
) -> set[int]:
    """Tasks whose last result still holds: done, and same task, model and inputs as now, all the way up.

    The executor's reuse rule (`TaskResult.reusable_for`), applied ahead of time so the editor can say
    what will run again.
    """
    from .executor import InputError, resolve_inputs

    fresh: set[int] = set()
    grew = True
    while grew:
        grew = False
        for task in tasks:
            result, choice = results.get(task.id), choices.get(task.id)
            if task.id in fresh or result is None or choice is None:
                continue
            if not all(d in fresh for d in task.derived_dep()):
                continue
            try:
                inputs = resolve_inputs(task, registry, results)
            except (InputError, KeyError):
                continue
            if result.reusable_for(task.task, choice.model, inputs):
                fresh.add(task.id)
                grew = True
    return fresh
