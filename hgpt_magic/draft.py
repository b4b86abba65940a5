"""A user's own plan, as the editor and the magic hold it: checked, never silently changed.

An LLM's plan is repaired (`planning.repair`) because the LLM is a sloppy but well-meaning author. A
user's edit is the user's word: `check_draft` reports what is wrong with it (the same checks as the
planner's, `planning.validate.plan_errors`, plus: every task needs an available model and its input
files must exist) and offers the planner's repairs as suggestions the user may apply
(`DraftCheck.apply_suggestions`), so the row, the plan that runs and Export always agree.

No widgets here: the editor shows a `DraftCheck`, the magic uses `missing_files` for `--auto` runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .planning.repair import repair_plan
from .planning.validate import PlanError, plan_errors, topological_order
from .registry import Registry
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


@dataclass
class DraftCheck:
    """What `check_draft` found. `plan` is the draft exactly as written (dep derived, tasks ordered) when
    it can run, else None; `errors` say why not; `suggestions` are the planner's repairs, which
    `apply_suggestions` makes (the user's choice, never automatic).
    """

    plan: Plan | None
    errors: list[str]
    suggestions: list[str] = field(default_factory=list)
    suggested: list[Task] = field(default_factory=list)

    def apply_suggestions(self) -> list[Task]:
        """The draft with every suggestion applied (dep derived): what the planner would have made of it."""
        return [Task.from_dict(t.to_dict()) for t in self.suggested]


def check_draft(tasks: Sequence[Task], choices: Mapping[int, Choice], registry: Registry) -> DraftCheck:
    """Check a user's draft without changing it; see the module docstring."""
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
    if errors:
        return DraftCheck(None, errors, suggestions, suggested)
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
