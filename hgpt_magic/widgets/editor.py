"""The plan editor: the planned tasks as editable rows, a live task graph, and Run / Step / Stop.

The editor keeps a draft (`tasks`, `choices`) that every edit changes and checks it on each change
with `draft.check_draft`: the planner's checks, never its repairs (a user's edit is the user's word; a
repair is offered as a suggestion, applied only by "Apply suggestions"), so the row, the plan that runs
and Export always agree.

A file or URL the user did not give (issue 13's resource rule) is shown on its task's row with an
"Allow <value>" button: one click is the user's explicit yes (`pipeline.allowed.accept`), which the Run
records (`run.accepted`). What the user types into an argument field is the user's word and needs no
click (`draft.TypedValues`); an LLM's value the user did not touch does. After a run, a model that
failed and fell back to the next candidate is shown on the row ("model X failed: reason → model Y").

Threads: Run, Step and Re-plan work in ONE worker thread (`start`), so the kernel stays free (Stop
works, other cells run); while it works, a ticker refreshes the elapsed times. Results arrive through
the executor's `on_event` callback, from its pool threads. Every read or write of the shared state
(`results`, `fresh`) and every widget update goes through `self._lock`, so the UI never shows a half
update. Widget state is routed by widget id, not by the executing cell, so output lands in the right
place from any thread.

Re-running is cheap: the last result of every task goes to the executor as `previous`, which reuses
those whose task, model and resolved inputs are unchanged. Step runs only the tasks whose inputs are
ready, so a learner can look at each intermediate result and change the rest before going on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as W

from .. import safe_text
from ..draft import Refusal, TypedValues, check_draft, fresh_ids, with_derived_dep
from ..executor import TaskEvent
from ..planning import PlanError
from ..registry import Slot
from ..secrets import mask_secrets
from ..selector import no_backend_reason
from ..streaming import AnswerStream
from ..types import GENERATED_RE, Choice, Plan, Run, Selection, Task, TaskResult
from . import render
from .graph import plan_svg

if TYPE_CHECKING:
    from ..pipeline import HuggingGPT

STATE_COLOURS = {
    "queued": "#666",
    "changed": "#a06a00",
    "running": "#0b57d0",
    "done": "#137333",
    "failed": "#b00020",
    "refused": "#b00020",
    "skipped": "#a06a00",
    "cancelled": "#a06a00",
}


def _shown(text: str) -> str:
    """Text put into an editable field: secrets masked, control codes dropped (the field keeps the
    original as long as the user leaves the shown text as it is)."""
    return safe_text.terminal(text)


# --------------------------------------------------------------------------- one argument, one row


class ArgField:
    """One argument: typed in (text, or a file path for media) or "output of task N"."""

    def __init__(
        self,
        slot: Slot,
        value: str,
        producers: Sequence[tuple[int, str]],
        on_change: Callable[[], None],
        on_typed: Callable[[str], None] = lambda value: None,
    ):
        self.slot = slot
        ref = GENERATED_RE.fullmatch(value.strip()) if value else None
        options = [("text" if slot.type == "text" else "file or URL", "")]
        options += [(f"output of task {i} ({name})", f"<GENERATED>-{i}") for i, name in producers]
        source = f"<GENERATED>-{ref.group(1)}" if ref else ""
        if source not in [v for _, v in options]:  # a reference to a removed task: keep it visible
            options.append((f"output of task {ref.group(1)} (missing)", source))
        label = slot.name + ("" if slot.required else " (optional)")
        self.label = W.HTML(f"<code>{render.esc(label)}</code>: {slot.type}", layout=W.Layout(width="150px"))
        self.source = W.Dropdown(options=options, value=source, layout=W.Layout(width="200px"))
        placeholder = slot.hint or ("text" if slot.type == "text" else f"{slot.type} file path or URL")
        self._given = "" if ref else value  # the plan's value; the field shows it masked (`_shown`)
        self.text = W.Text(
            value=_shown(self._given),
            placeholder=placeholder,
            layout=W.Layout(width="240px", display="none" if ref else None),
        )
        self.box = W.HBox([self.label, self.source, self.text])
        self._on_change = on_change
        self._on_typed = on_typed
        self.source.observe(self._changed, "value")
        self.text.observe(self._typed, "value")

    @property
    def value(self) -> str:
        """The argument: a task's output, what the user typed, or the plan's value while its masked form
        is left as shown (so a token in an argument is never on screen, yet still reaches the task)."""
        if self.source.value:
            return self.source.value
        return self._given if self.text.value == _shown(self._given) else self.text.value

    def _changed(self, _change) -> None:
        self.text.layout.display = "none" if self.source.value else None
        self._on_change()

    def _typed(self, change) -> None:
        """The user typed: what is written here is theirs (told before the draft is checked again)."""
        self._on_typed(self.value)
        self._changed(change)

    def widgets(self) -> list[W.Widget]:
        return [self.label, self.source, self.text, self.box]


class TaskRow:
    """The widgets of one task: type, arguments, model with its reason, backend, state, remove; results below."""

    def __init__(self, editor: PlanEditor, task: Task, choice: Choice, output: W.Output):
        self.task_id = task.id
        registry = editor.registry
        producers = [(t.id, t.task) for t in editor.tasks if t.id != task.id]
        self.type = W.Dropdown(options=registry.names, value=task.task, layout=W.Layout(width="220px"))
        self.args = {
            slot.name: ArgField(
                slot, task.args.get(slot.name, ""), producers, editor._on_edit,
                on_typed=lambda value, name=slot.name: editor.typed.record(task.id, name, value),
            )
            for slot in registry[task.task].inputs
        }
        labels = [(f"{c.id} · {c.downloads:,} downloads" if c.downloads else c.id, c.id) for c in choice.candidates]
        if choice.model and choice.model not in [c.id for c in choice.candidates]:
            labels.insert(0, (choice.model, choice.model))
        self.model = W.Dropdown(
            options=labels or [("no model available", "")],
            value=choice.model or "",
            layout=W.Layout(width="330px"),
        )
        self.reason = W.HTML(layout=W.Layout(width="330px"))
        self.backend = W.HTML(layout=W.Layout(width="110px"))
        self.status = W.HTML(layout=W.Layout(width="170px"))
        self.remove = W.Button(icon="trash", tooltip=f"remove task {task.id}", layout=W.Layout(width="40px"))
        self.output = output
        self.head = W.HTML(f"<b>#{task.id}</b>", layout=W.Layout(width="34px"))
        self.args_box = W.VBox([a.box for a in self.args.values()])
        self.model_box = W.VBox([self.model, self.reason])
        self.line = W.HBox(
            [self.head, self.type, self.args_box, self.model_box, self.backend, self.status, self.remove],
            layout=W.Layout(flex_flow="row wrap", align_items="flex-start", border_top="1px solid #ddd"),
        )
        self.refusals = W.VBox()  # the arguments the user did not give, each with its "Allow" button
        self.allow_buttons: dict[str, W.Button] = {}
        self._refused: list[Refusal] = []
        self.box = W.VBox([self.line, self.refusals, self.output])
        self._allow = editor.allow
        self.show_choice(choice)

        self.type.observe(lambda change: editor._on_type(self.task_id, change["new"]), "value")
        self.model.observe(lambda change: editor._on_model(self.task_id, change["new"]), "value")
        self.remove.on_click(lambda _: editor._on_remove(self.task_id))

    def show_choice(self, choice: Choice) -> None:
        self.reason.value = f'<i style="color:#555">{render.esc(choice.reason)}</i>'
        self.backend.value = f"via <b>{render.esc(choice.backend)}</b>" if choice.backend else "<i>no backend</i>"

    def show_refusals(self, refused: Sequence[Refusal]) -> None:
        """Each refused argument in red on this row, with one "Allow <value>" button per refused value."""
        if list(refused) == self._refused:
            return  # unchanged (the draft is checked on every keystroke)
        self._refused = list(refused)
        old = [*self.refusals.children, *self.allow_buttons.values()]
        lines, self.allow_buttons = [], {}
        for item in refused:
            what = "URL" if item.value.lower().startswith(("http://", "https://")) else "file"
            lines.append(W.HTML(
                f'<div style="color:#b00020">✗ <code>{render.esc(item.arg)}</code> = '
                f"<code>{render.esc(item.value)}</code> is a {what} you did not give in a request "
                "(the LLM wrote it). Allow it only if you mean this task to read it.</div>"
            ))
            if item.value not in self.allow_buttons:
                shown = _shown(item.value)
                short = shown if len(shown) <= 48 else "…" + shown[-47:]
                button = W.Button(description=f"Allow {short}", icon="unlock", button_style="warning",
                                  tooltip=f"let this session's plans use {shown}",
                                  layout=W.Layout(width="auto"))
                button.on_click(lambda _, value=item.value: self._allow(value))
                self.allow_buttons[item.value] = button
                lines.append(button)
        self.refusals.children = lines
        self.refusals.layout.border_left = "3px solid #b00020" if lines else ""
        self.refusals.layout.padding = "0 0 0 6px" if lines else ""
        for widget in old:
            widget.close()

    def editable(self) -> list[W.Widget]:
        return ([self.type, self.model, self.remove] + [w for a in self.args.values() for w in (a.source, a.text)]
                + list(self.allow_buttons.values()))

    def close(self) -> None:
        """Close the row's widgets, but not its output: results outlive a rebuild of the row."""
        for widget in [self.type, self.model, self.reason, self.backend, self.status, self.remove, self.head,
                       self.args_box, self.model_box, self.line, *self.refusals.children, self.refusals, self.box]:
            widget.close()
        for field in self.args.values():
            for widget in field.widgets():
                widget.close()


# --------------------------------------------------------------------------- the editor


class PlanEditor:
    """An editable view of a planned `Run`; `display(editor)` shows it (widgets, or HTML/text where not live).

    Run, Step and Re-plan call `start("run" | "step" | "replan")`, which works in a background thread
    (`wait()` joins it); Stop calls `stop()`, Export `show_export()`. `run` is the same `Run` object the magic published, and it
    is updated in place, so `_hgpt` always shows the latest state.
    """

    def __init__(self, pipeline: HuggingGPT, run: Run, *, respond: bool = True):
        self.pipeline = pipeline
        self.registry = pipeline.registry
        self.run = run
        self.respond = respond
        self.tasks: list[Task] = [Task.from_dict(t.to_dict()) for t in (run.plan or Plan())]
        self.choices: dict[int, Choice] = dict(run.selection.choices) if run.selection else {}
        for task in self.tasks:
            if task.id not in self.choices:
                self.choices[task.id] = self._default_choice(task.id, task.task)
        self.llm_choices: dict[int, Choice] = dict(self.choices)  # what the LLM picked, for the reason text
        self.results: dict[int, TaskResult] = dict(run.results)
        self.plan: Plan | None = None
        self.errors: list[str] = []
        self.refused: list[Refusal] = []  # files and URLs the user did not give, shown on their rows
        self.typed = TypedValues()  # what the user typed into argument fields: their word, no "Allow" needed
        self.fresh: set[int] = set()
        self.busy: str | None = None  # "run", "step" or "replan" while the worker thread works
        self.rows: dict[int, TaskRow] = {}
        self._outputs: dict[int, W.Output] = {}
        self._shown: dict[int, list] = {}
        self.suggestions: list[str] = []
        self._suggested: list[Task] = []
        self._lock = threading.RLock()  # guards results, fresh and widget updates across threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = None  # the history turn our last Run added (replaced when we run again)

        self._request = run.request  # shown masked; Re-plan uses it while the shown text is unchanged
        self.request = W.Textarea(value=_shown(run.request), layout=W.Layout(width="100%", height="56px"))
        self.graph = W.HTML()
        self.rows_box = W.VBox()
        self.add_type = W.Dropdown(options=self.registry.names, layout=W.Layout(width="220px"))
        self.add_button = W.Button(description="Add task", icon="plus")
        self.validation = W.HTML()
        self.apply_button = W.Button(description="Apply suggestions", icon="magic", layout=W.Layout(display="none"))
        self.run_button = W.Button(description="Run", icon="play", button_style="success")
        self.step_button = W.Button(description="Step", icon="step-forward")
        self.replan_button = W.Button(description="Re-plan", icon="refresh")
        self.export_button = W.Button(description="Export", icon="download", tooltip="the plan as JSON")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger")
        self.message = W.HTML()
        self.exported = W.Textarea(layout=W.Layout(width="100%", height="160px", display="none"))
        self.answer = W.Output()

        self.add_button.on_click(lambda _: self.add_task(self.add_type.value))
        self.apply_button.on_click(lambda _: self.apply_suggestions())
        self.run_button.on_click(lambda _: self.start("run"))
        self.step_button.on_click(lambda _: self.start("step"))
        self.replan_button.on_click(lambda _: self.start("replan"))
        self.export_button.on_click(lambda _: self.show_export())
        self.stop_button.on_click(lambda _: self.stop())

        self.widget = W.VBox(
            [
                W.HTML("<b>HuggingGPT</b> · request (Re-plan uses it):"),
                self.request,
                self.graph,
                self.rows_box,
                W.HBox([self.add_type, self.add_button]),
                self.validation,
                self.apply_button,
                W.HBox([self.run_button, self.step_button, self.replan_button, self.export_button, self.stop_button]),
                self.message,
                self.exported,
                self.answer,
            ]
        )
        self._rebuild()

    # ------------------------------------------------------------------ display

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget, plus HTML and text of the plan for front ends where widgets are not live."""
        bundle = self.widget._repr_mimebundle_()
        static = self.static_view()
        bundle["text/html"] = static.html
        bundle["text/plain"] = static.text
        return bundle

    def static_view(self) -> render.Rich:
        view = render.plan_view(self.tasks, self.choices, self.results, errors=self.errors)
        hint = "(The plan editor needs a live Jupyter front end; `%hugginggpt run` runs this plan.)"
        return render.Rich(view.html + f'<p style="color:#666">{hint}</p>', view.text + "\n" + hint)

    def __repr__(self) -> str:
        return f"<PlanEditor: {len(self.tasks)} tasks, {'valid' if not self.errors else 'invalid'}>"

    # ------------------------------------------------------------------ the draft

    def task(self, task_id: int) -> Task:
        return next(t for t in self.tasks if t.id == task_id)

    def row(self, task_id: int) -> TaskRow:
        return self.rows[task_id]

    def selection(self) -> Selection:
        return Selection({t.id: self.choices[t.id] for t in self.tasks if t.id in self.choices})

    def state(self, task_id: int) -> str:
        """queued, changed (done, but will run again), refused (names a file or URL the user did not
        give), running, done, failed, skipped or cancelled."""
        result = self.results.get(task_id)
        if any(r.task_id == task_id for r in self.refused) and (result is None or result.status != "running"):
            return "refused"
        if result is None or result.status == "pending":
            return "queued"
        if result.status == "done" and task_id not in self.fresh:
            return "changed"
        return result.status

    def ready_ids(self) -> set[int]:
        """What Step runs next: tasks not done yet whose dependencies are all done and unchanged."""
        if self.plan is None:
            return set()
        return {t.id for t in self.plan if t.id not in self.fresh and all(d in self.fresh for d in t.dep)}

    def export(self) -> str:
        """The plan as HuggingGPT's JSON task list (the validated one when the draft is valid)."""
        tasks = self.plan.tasks if self.plan is not None else [with_derived_dep(t) for t in self.tasks]
        return json.dumps([t.to_dict() for t in tasks], indent=2, ensure_ascii=False)

    def add_task(self, task_type: str) -> int:
        """Append a task of `task_type` with empty arguments and the top-ranked model; returns its id."""
        task_id = max((t.id for t in self.tasks), default=-1) + 1
        self.tasks.append(Task(task_id, task_type))
        self.choices[task_id] = self._default_choice(task_id, task_type)
        self._rebuild()
        return task_id

    def _default_choice(self, task_id: int, task_type: str) -> Choice:
        offered = self.pipeline.candidates(task_type)
        if not offered:
            return Choice(task_id, None, None, no_backend_reason(task_type), [])
        return Choice(task_id, offered[0].id, offered[0].backend, "top-ranked model (task set in the editor)", offered)

    def _on_type(self, task_id: int, task_type: str) -> None:
        task = self.task(task_id)
        if task.task == task_type:
            return
        slots = {s.name for s in self.registry[task_type].inputs}
        task.task = task_type
        task.args = {k: v for k, v in task.args.items() if k in slots}
        self.choices[task_id] = self._default_choice(task_id, task_type)
        self.llm_choices.pop(task_id, None)
        self._rebuild()

    def _on_model(self, task_id: int, model: str) -> None:
        old = self.choices[task_id]
        if not model or model == old.model:
            return
        picked = self.llm_choices.get(task_id)
        if picked is not None and picked.model == model:
            reason = picked.reason
        elif picked is not None and picked.model:
            reason = f"chosen in the editor (selection had picked {picked.model}: {picked.reason})"
        else:
            reason = "chosen in the editor"
        backend = next((c.backend for c in old.candidates if c.id == model), old.backend)
        self.choices[task_id] = Choice(task_id, model, backend, reason, old.candidates)
        self.rows[task_id].show_choice(self.choices[task_id])
        self._refresh()

    def _on_remove(self, task_id: int) -> None:
        self.tasks = [t for t in self.tasks if t.id != task_id]
        self.typed.forget(task_id)
        self.choices.pop(task_id, None)
        self.results.pop(task_id, None)
        output = self._outputs.pop(task_id, None)
        self._rebuild()
        if output is not None:
            output.close()

    def _on_edit(self) -> None:
        """An argument changed: read every row's arguments back into the draft (empty ones left out)."""
        for task in self.tasks:
            row = self.rows.get(task.id)
            if row is not None:
                task.args = {name: f.value for name, f in row.args.items() if f.value.strip()}
                task.dep = task.derived_dep()
        self._refresh()

    def allow(self, value: str) -> None:
        """The user's one explicit click on "Allow <value>": this session's plans may use it (`run.accepted`)."""
        if self.busy is not None:
            return
        self.pipeline.allowed.accept(value)
        self._say(f"Allowed {value} for this session (recorded in the Run).")
        self._refresh()

    def apply_suggestions(self) -> None:
        """Take the suggested repairs into the draft (the user's choice; nothing is applied otherwise)."""
        if self._suggested:
            self.tasks = [Task.from_dict(t.to_dict()) for t in self._suggested]
            self._rebuild()

    def _output(self, task_id: int) -> W.Output:
        if task_id not in self._outputs:
            self._outputs[task_id] = W.Output()
        return self._outputs[task_id]

    def _rebuild(self) -> None:
        """New rows for the whole draft (after add, remove, a type change or a re-plan)."""
        old = self.rows
        self.rows = {t.id: TaskRow(self, t, self.choices[t.id], self._output(t.id)) for t in self.tasks}
        self.rows_box.children = [row.box for row in self.rows.values()]
        for row in old.values():
            row.close()
        self._refresh()

    def _refresh(self) -> None:
        """Check the draft and bring the graph, states, messages and buttons up to date."""
        check = check_draft(self.tasks, self.choices, self.registry, self.pipeline.allowed, self.typed)
        with self._lock:
            self.plan, self.errors, self.refused = check.plan, check.errors, check.refused
            for task_id, row in self.rows.items():
                row.show_refusals(check.refused_on(task_id))
            self.suggestions, self._suggested = check.suggestions, check.suggested
            self.fresh = fresh_ids(self.tasks, self.choices, self.results, self.registry)
            html = ""
            if self.errors:
                items = "".join(f"<li>{render.esc(e)}</li>" for e in self.errors)
                html = f'<div style="color:#b00020"><b>Cannot run yet:</b><ul>{items}</ul></div>'
            else:
                count = len(self.tasks)
                html = f'<div style="color:#137333">✓ {count} task{"s" if count != 1 else ""}, ready to run</div>'
            if self.suggestions:
                items = "".join(f"<li>{render.esc(s)}</li>" for s in self.suggestions)
                html += f'<div style="color:#a06a00"><b>Suggested (Apply suggestions):</b><ul>{items}</ul></div>'
            self.validation.value = html
            self.apply_button.layout.display = None if self.suggestions else "none"
            self._show_states()
            self._update_buttons()

    def _show_states(self) -> None:
        with self._lock:
            self._show_states_locked()

    def _show_states_locked(self) -> None:
        now = time.time()
        for task_id, row in list(self.rows.items()):
            state = self.state(task_id)
            result = self.results.get(task_id)
            if state == "changed":
                words = "changed: runs again"
            elif state == "refused":
                words = "refused: not given"
            elif state == "queued":
                words = "queued"
            else:
                words = render.state_text(result, now=now)
            colour = STATE_COLOURS.get(state, "#666")
            row.status.value = f'<span style="color:{colour};font-weight:bold">{render.esc(words)}</span>'
        self.graph.value = plan_svg(
            [with_derived_dep(t) for t in self.tasks], {t.id: self.state(t.id) for t in self.tasks}
        )

    def _update_buttons(self) -> None:
        busy = self.busy is not None
        self.run_button.disabled = busy or bool(self.errors)
        self.run_button.tooltip = self.errors[0] if self.errors else "run what is not done yet, then answer"
        self.step_button.disabled = busy or bool(self.errors) or not self.ready_ids()
        self.replan_button.disabled = busy
        self.add_button.disabled = busy
        self.apply_button.disabled = busy
        self.stop_button.layout.display = None if self.busy in ("run", "step") else "none"
        self.stop_button.disabled = self._stop.is_set()
        self.request.disabled = busy
        for task_id, row in self.rows.items():
            for widget in row.editable():
                widget.disabled = busy
            row.model.disabled = busy or not self.choices[task_id].candidates

    def tell(self, text: str) -> None:
        """A sentence for the user under the buttons (what the planner could not work out, say)."""
        self._say(text, error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#333"
        self.message.value = f'<div style="color:{colour}">{render.esc(text)}</div>'

    # ------------------------------------------------------------------ running

    def start(self, mode: str) -> None:
        """Start `run`, `step` or `replan` in the background (ignored while something is running)."""
        if self.busy is not None:
            return
        if mode in ("run", "step") and self.errors:
            self._say("Cannot run: " + self.errors[0], error=True)
            return
        self._stop = threading.Event()
        self.busy = mode
        self._update_buttons()
        self._thread = threading.Thread(target=self._work, args=(mode,), name=f"hgpt-{mode}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling: running tasks finish, the others are cancelled; finished results are kept."""
        if self.busy in ("run", "step"):
            self._stop.set()
            self.stop_button.disabled = True
            self._say("Stopping: running tasks finish, the rest are cancelled…")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background work; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def show_export(self) -> None:
        self.exported.value = safe_text.terminal(self.export())  # shown: masked, like every field
        self.exported.layout.display = None

    def _work(self, mode: str) -> None:
        done = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(done,), daemon=True)
        ticker.start()
        try:
            if mode == "replan":
                self._replan()
            else:
                self._execute(step=mode == "step")
        except Exception as exc:  # shown in the widget: a worker thread has nowhere else to report
            self._say(f"{mode} failed: {mask_secrets(str(exc)) or type(exc).__name__}", error=True)
        finally:
            done.set()
            self.busy = None
            self._refresh()

    def _tick(self, done: threading.Event) -> None:
        """Update the elapsed time of running tasks twice a second."""
        while not done.wait(0.5):
            self._show_states()

    def _execute(self, step: bool) -> None:
        run, plan, selection = self.run, self.plan, self.selection()
        run.plan, run.selection = plan, selection
        self.typed.accept_into(self.pipeline.allowed, plan.tasks, self.registry)  # what the user typed is theirs
        previous = {i: r for i, r in self.results.items() if r.status == "done"}
        only = self.ready_ids() if step else None
        start = time.perf_counter()
        if step:
            self._say(f"Step: running task{'s' if len(only) > 1 else ''} {', '.join(map(str, sorted(only)))}…")
            self.pipeline.check(run)  # the resource rule, as Run's `finish` applies it; records run.accepted
            run.results = self.pipeline.execute(
                plan, selection, run=run, previous=previous, only=only, stop=self._stop, on_event=self._on_event
            )
            run.status = "interrupted" if self._stop.is_set() else "paused"
        else:
            self._say("Running…")
            self.pipeline.finish(  # running the same request again replaces its history turn
                run, respond=self.respond, previous=previous, stop=self._stop, on_event=self._on_event,
                replace_turn=self._turn, on_text=self._answer_piece(),
            )
            self._turn = self.pipeline.last_turn
        with self._lock:
            for task_id, result in run.results.items():  # cancelled tasks get no event
                if result.status != "pending" or task_id not in self.results:
                    self.results[task_id] = result
                    self._show_result(result)
            self.fresh = fresh_ids(self.tasks, self.choices, self.results, self.registry)
        self._say(self._summary(step, time.perf_counter() - start), error=self._stop.is_set())
        if not step:
            self.answer.outputs = ()
            if run.answer:
                self.answer.append_display_data(render.answer_view(run.answer))

    def _answer_piece(self):
        """An `on_text` callback showing the answer's draft in the answer area as each word is written
        (the checked answer replaces it when the run ends)."""
        stream = AnswerStream()

        def on_text(piece: str) -> None:
            if stream.add(piece):
                self.answer.outputs = ()
                self.answer.append_display_data(render.answer_view(stream.shown().rstrip() + " …"))

        return on_text

    def _on_event(self, event: TaskEvent) -> None:
        """Called from the executor's threads: the shared state and the widgets change under the lock."""
        result = event.result
        with self._lock:
            self.results[result.task_id] = result
            self.fresh = fresh_ids(self.tasks, self.choices, self.results, self.registry)
            if event.kind == "started":
                self._output(result.task_id).outputs = ()
                self._shown.pop(result.task_id, None)
            else:
                self._show_result(result)
            self._show_states()

    def _show_result(self, result: TaskResult) -> None:
        key = [result.status, result.error, [a.to_dict() for a in result.artifacts], result.fallbacks()]
        if self._shown.get(result.task_id) == key or result.status == "pending":
            return  # already on screen (a reused result looks the same)
        output = self._output(result.task_id)
        output.outputs = ()
        fallbacks = render.fallback_view(result)  # which model really answered
        for shown in ([fallbacks] if fallbacks else []) + render.result_displays(result, header=False):
            output.append_display_data(shown)
        self._shown[result.task_id] = key

    def _summary(self, step: bool, seconds: float) -> str:
        results = [self.results[t.id] for t in self.tasks if t.id in self.results]
        done = [r for r in results if r.status == "done"]
        reused = sum(r.reused for r in done)
        problems = [f"task {r.task_id} {r.status}: {r.error}" for r in results if r.status in ("failed", "skipped")]
        head = "Stopped" if self._stop.is_set() else ("Step done" if step else "Done")
        text = f"{head} in {seconds:.1f} s: {len(done)} of {len(self.tasks)} tasks done"
        text += f" ({reused} reused)" if reused else ""
        if problems:
            text += ". " + "; ".join(problems)
        if step and not self._stop.is_set():
            nxt = sorted(self.ready_ids())
            text += f". Next: task{'s' if len(nxt) > 1 else ''} {', '.join(map(str, nxt))}" if nxt else (
                ". Every task is done: Run writes the answer"
            )
        return text + "."

    def _replan(self) -> None:
        typed = self.request.value
        request = (self._request if typed == _shown(self._request) else typed).strip()
        if not request:
            self._say("The request is empty.", error=True)
            return
        self._say("Planning…")
        try:
            plan = self.pipeline.plan(request, calls=self.run.llm_calls)
            selection = self.pipeline.select(plan, request, calls=self.run.llm_calls)
        except PlanError as exc:
            self._say(f"Re-plan failed, the old plan is kept: {exc}", error=True)
            return
        with self._lock:  # the new plan replaces the shared state in one step (the ticker and events read it)
            run = self.run
            self._request = request
            run.request, run.plan, run.selection = request, plan, selection
            run.results, run.answer, run.status, run.error = {}, None, "selected", None
            self.tasks = [Task.from_dict(t.to_dict()) for t in plan]
            self.choices = dict(selection.choices)
            self.llm_choices = dict(self.choices)
            self.typed = TypedValues()  # the new plan's values are the LLM's until the user types
            self.results = {}
            self._shown = {}
            for output in self._outputs.values():
                output.close()
            self._outputs = {}
            self.answer.outputs = ()
            self._rebuild()
        notes = "; ".join(plan.repairs)
        self._say(f"New plan: {len(plan)} tasks." + (f" Repaired: {notes}" if notes else ""))


__all__ = ["PlanEditor"]
