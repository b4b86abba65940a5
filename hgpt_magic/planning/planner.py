"""Stage 1, task planning: the LLM turns a request into a validated graph of tasks.

The loop: build the prompt (`prompt`, with demos from `demos`, decoding constrained by `schema`), read the
reply tolerantly (`parsing`), repair what a small model commonly gets wrong (`repair`, each repair said
in `Plan.repairs`), then check the result (`validate`). An invalid plan is sent back once with its errors
(`prompt.retry_message`); a type gap the LLM leaves is bridged by converter tasks (`repair.bridge_types`);
if that fails too, `PlanError` carries the raw text and the errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..history import Turn
from ..llm import LLM, call_llm
from ..parsing import NoJSONError, extract_json
from ..registry import Registry, default_registry
from ..text import named_files, quoted_texts
from ..types import LLMCall, Plan, Task
from .context import EarlierTurn
from .demos import Demo, DemoIndex, default_demos
from .prompt import demo_reply, request_message, retry_message, system_prompt
from .repair import repair_plan
from .schema import POSITIONS, plan_schema
from .shaping import bridge_types, file_fallback, number_by_position, unused_file_errors
from .validate import PlanError, plan_errors, topological_order


def validate_plan(
    data: Any,
    registry: Registry | None = None,
    raw: str = "",
    request: str = "",
    earlier: Sequence[str] = (),
    earlier_turns: Sequence[EarlierTurn] = (),
    *,
    require_files: bool = True,
) -> Plan:
    """An LLM's parsed plan, repaired (`repair.repair_plan`) and checked (`validate.plan_errors`); raises
    `PlanError` with every problem the repairs could not fix.

    `request`, when given, names the files the plan may use: a file name the LLM wrote without its
    folder gets the request's path back, and a media argument that refers to a task of the wrong type
    falls back to the request's only file of that type. `earlier`: the files earlier cells named or made
    (a folder dropped from one of them is given back too); `earlier_turns`: their requests and the texts they
    made (what a task the request asks for but the plan lacks may read; what a copied request means).
    `require_files`: where the vocabulary says so (`files_feed_tasks`), every media file the request names must
    be the media argument of some task (`shaping.unused_files`). A user's own plan is checked without repairs (`draft.Draft`).
    """
    registry = registry or default_registry()
    items, repairs = repair_plan(data, registry, request, earlier, earlier_turns)
    require_files = require_files and registry.vocabulary.files_feed_tasks
    errors = plan_errors(items, registry) or (unused_file_errors(items, request, registry) if require_files else [])
    if errors:
        raise PlanError(errors, raw)
    tasks = [Task.from_dict(item) for item in items]
    ordered, _ = topological_order(tasks)
    if [t.id for t in ordered] != [t.id for t in tasks]:
        repairs.append("tasks reordered so that each comes after the tasks it uses")
    return Plan(tasks=ordered, repairs=repairs, raw=raw)




def session_files_hint(request: str, earlier: Sequence[str]) -> str:
    """The files a plan may use, for the LLM asked again after naming one nobody gave: small models invent
    "portrait.png" for "the photo"; shown the session's files, they pick the right one."""
    files = list(dict.fromkeys(named_files(request) + list(earlier)[::-1]))
    if not files:
        return "no file was given in this session: use only texts and <GENERATED>-N references"
    return f"the files you may use: {', '.join(files[:12])} (or <GENERATED>-N for a task's output)"


class Planner:
    """Stage 1. Holds the LLM, the registry and the demos; `plan(request)` returns a validated `Plan`.

    The prompt is built for the LLM server's prompt-prefix cache: what is the same for every request
    (instructions, task list, and with `retrieve=None` every demo, in a fixed order) comes first and
    is computed once per session; only the request (and retrieved demos) cost prompt time after that.

    `retrieve`: None puts every demo in the static prefix (best plans, fast warm; the embedded model
    restores the prefix's KV state from disk, so only the first plan ever on a machine computes it);
    K puts the K demos most similar to the request after it (`DemoIndex`: a short static prefix, so a
    fast first plan, but K demos' worth of prompt on every request); "auto" takes the vocabulary's
    setting (`registry.vocabulary.retrieve`). `compact`: the reply leaves out ids and deps (half the tokens to generate).
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
        vocabulary = self.registry.vocabulary
        if retrieve == "auto":
            retrieve = vocabulary.retrieve if demos is None else None
        self.retrieve: int | None = retrieve  # type: ignore[assignment]
        # Unless the vocabulary says, an empty plan is offered only where the demos teach it (small talk
        # in HuggingGPT's demos); in a vocabulary like TaskBench's every request needs a tool.
        self.allow_empty = (
            vocabulary.allow_empty
            if vocabulary.allow_empty is not None
            else not self.demos or any(not d.tasks for d in self.demos)
        )
        self.compact = compact
        self.positions = positions
        #: Which task types some backend here can run (set by the pipeline): tasks planned by code prefer them.
        self.runnable: Callable[[str], bool] | None = None
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
            messages.append({"role": "assistant", "content": demo_reply(demo, self.compact)})
        messages.append({"role": "user", "content": request_message(request, history, self.history_tokens)})
        return messages

    def plan(
        self,
        request: str,
        history: Sequence[Turn] = (),
        calls: list[LLMCall] | None = None,
        check: Callable[[Plan], list[str]] | None = None,
    ) -> Plan:
        """Ask the LLM for a plan; validate and repair it; ask once more with the errors if needed.

        At most `retries + 1` LLM calls. After the last, a plan that only leaves a named file unused is
        completed by code (`shaping.file_fallback`); otherwise `PlanError` says, for the user, that no
        plan could be worked out, with suggested tasks for the request's files (`PlanError.suggestion`).

        `check`: more rules the plan must meet (the session's resource rule: `resources.check_plan`). Its
        problems are sent back like validation errors; a plan that still breaks them after the retry is
        returned as it is, so the caller refuses it with the reasons (nothing runs).
        """
        messages = self.messages(request, history)
        earlier = [r.path for turn in history for r in turn.resources if r.path]
        earlier_turns = [(turn.request, [r.text for r in turn.resources if r.text and not r.path]) for turn in history]
        errors: list[str] = []
        raw = ""
        refused: Plan | None = None  # a valid plan that breaks `check`: the caller refuses it with the reasons
        empty: Plan | None = None  # an empty plan for a request that quotes a text: kept if asking again fails
        for attempt in range(self.retries + 1):
            reply = call_llm(
                self.llm, messages, stage="plan", calls=calls, schema=self._schema, max_tokens=self.max_tokens
            )
            raw = reply.text
            try:
                plan = self._read(raw, request, earlier, earlier_turns, last=attempt == self.retries)
                errors = check(plan) if check is not None else []
                if not errors and attempt < self.retries and (errors := self._unplanned_quotes(plan, request)):
                    empty = plan
                elif not errors:
                    return plan
                else:
                    refused = plan
                errors = errors + [session_files_hint(request, earlier)]
            except (NoJSONError, PlanError) as exc:
                errors = exc.errors if isinstance(exc, PlanError) else [str(exc)]
                if check is not None and errors and all(UNUSED_FILE in e for e in errors):
                    refusals = self._refusals(raw, request, earlier, earlier_turns, check)  # both reasons at once
                    errors = refusals + errors + ([session_files_hint(request, earlier)] if refusals else [])
                if history and any(UNUSED_FILE in e for e in errors):  # "do the same for coffee.png"
                    errors = errors + [
                        f"the previous request was {history[-1].request!r}: if this one asks for the same on "
                        "its file, plan those tasks on that file"
                    ]
            if attempt < self.retries:
                messages = messages + [
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": retry_message(request, errors)},
                ]
        if refused is not None:
            return refused
        if empty is not None:
            return empty
        raise self._no_plan(request, errors, raw)

    def _unplanned_quotes(self, plan: Plan, request: str) -> list[str]:
        """Why an empty plan is asked again: the request quotes a text, which is there to be worked on
        (compared, labelled, translated) far more often than it is small talk. Asked once; a second empty
        plan stands. Only in a vocabulary whose files must feed tasks (HuggingGPT's)."""
        quotes = quoted_texts(request)
        if len(plan) or not quotes or not self.registry.vocabulary.files_feed_tasks:
            return []
        shown = ", ".join(repr(q if len(q) <= 60 else q[:59] + "…") for q in quotes[:2])
        return [f"the request quotes {shown} but the plan has no task: plan the task the request asks for on "
                'that text; reply {"tasks": []} again only if the request is small talk']

    def _refusals(self, raw, request, earlier, earlier_turns, check: Callable[[Plan], list[str]]) -> list[str]:
        """What `check` says of a reply that only leaves a named file unused (an invented file in its place)."""
        data = extract_json(raw)
        data = number_by_position(data) if self.compact else data
        try:
            plan = validate_plan(data, self.registry, raw=raw, request=request, earlier=earlier,
                                 earlier_turns=earlier_turns, require_files=False)
        except PlanError:
            return []
        return check(plan)

    def _no_plan(self, request: str, errors: list[str], raw: str) -> PlanError:
        """The final failure, for a person: what could not be worked out and what to start from."""
        suggestion, _ = file_fallback([], request, self.registry, self._task_counts, self.runnable)
        files = named_files(request)
        if suggestion:
            offer = "; suggested instead: " + ", ".join(f"{t['task']} on {next(iter(t['args'].values()))}" for t in suggestion)
        elif files:
            offer = f"; no task here takes {', '.join(files)}"
        else:
            offer = ""
        tries = "reply was not a valid plan" if self.retries == 0 else f"{self.retries + 1} replies were not valid plans"
        message = (
            f"Could not work out a plan for this request: the LLM's {tries} "
            f"({_short(errors[0]) if errors else 'no reply'}){offer}. Rephrase it, or write the plan yourself in the editor."
        )
        return PlanError(errors, raw, message=message, suggestion=suggestion or None)

    def _read(
        self, raw: str, request: str, earlier: Sequence[str] = (), earlier_turns: Sequence[EarlierTurn] = (), *, last: bool
    ) -> Plan:
        """The reply as a validated Plan: parsed, repaired, bridged where a type gap is left, and on the last
        try given a task for each named file it leaves unused."""
        data = extract_json(raw)
        if self.compact:
            data = number_by_position(data)
        context = dict(raw=raw, request=request, earlier=earlier, earlier_turns=earlier_turns)
        try:
            return validate_plan(data, self.registry, **context)
        except PlanError as exc:
            first_error = exc
        hops = 2 if last else 1  # the last answer: allow the longer detour
        bridged, notes = bridge_types(data, self.registry, request, self._task_counts, hops)
        if notes:
            try:
                plan = validate_plan(bridged, self.registry, **context)
                plan.repairs = notes + plan.repairs
                return plan
            except PlanError as exc:
                first_error = exc
        if not last or not all(UNUSED_FILE in e for e in first_error.errors):
            raise first_error
        items, repairs = repair_plan(bridged if notes else data, self.registry, request, earlier, earlier_turns)
        completed, added = file_fallback(items, request, self.registry, self._task_counts, self.runnable)
        plan = validate_plan(completed, self.registry, require_files=False, **context)  # raises what is left
        plan.repairs = notes + repairs + added + plan.repairs
        return plan


#: How `shaping.unused_file_errors` words a named file no task takes.
UNUSED_FILE = "but no task takes it"


def _short(error: str, limit: int = 120) -> str:
    return error if len(error) <= limit else error[: limit - 1] + "…"
