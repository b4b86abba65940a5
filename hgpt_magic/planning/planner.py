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
from ..types import LLMCall, Plan, Task
from .demos import Demo, DemoIndex, default_demos
from .prompt import demo_reply, request_message, retry_message, system_prompt
from .repair import EarlierTurn, bridge_types, number_by_position, repair_plan, request_files
from .schema import POSITIONS, plan_schema
from .validate import PlanError, plan_errors, topological_order


def validate_plan(
    data: Any,
    registry: Registry | None = None,
    raw: str = "",
    request: str = "",
    earlier: Sequence[str] = (),
    earlier_turns: Sequence[EarlierTurn] = (),
) -> Plan:
    """An LLM's parsed plan, repaired (`repair.repair_plan`) and checked (`validate.plan_errors`); raises
    `PlanError` with every problem the repairs could not fix.

    `request`, when given, names the files the plan may use: a file name the LLM wrote without its
    folder gets the request's path back, and a media argument that refers to a task of the wrong type
    falls back to the request's only file of that type. `earlier`: the files earlier cells named or made
    (a folder dropped from one of them is given back too); `earlier_turns`: their requests and the texts they
    made (what a task the request asks for but the plan lacks may read; what a copied request means). A user's own plan is checked without repairs
    (`draft.Draft`).
    """
    registry = registry or default_registry()
    items, repairs = repair_plan(data, registry, request, earlier, earlier_turns)
    errors = plan_errors(items, registry) or empty_plan_errors(items, request)
    if errors:
        raise PlanError(errors, raw)
    tasks = [Task.from_dict(item) for item in items]
    ordered, _ = topological_order(tasks)
    if [t.id for t in ordered] != [t.id for t in tasks]:
        repairs.append("tasks reordered so that each comes after the tasks it uses")
    return Plan(tasks=ordered, repairs=repairs, raw=raw)


def empty_plan_errors(items: list[Any], request: str) -> list[str]:
    """A plan with no task for a request that names a media file: the file is there to be worked on.

    Small models copy the empty plans of small-talk demos to requests that sit near them ("what can you
    do?" next to "describe photo.png"); the LLM is asked again with this reason.
    """
    files = [name for names in request_files(request).values() for name in names]
    if items or not files:
        return []
    return [f"the request names {', '.join(files)} {NO_TASK}; plan the tasks the request asks for"]


NO_TASK = "but the plan has no task"


def session_files_hint(request: str, earlier: Sequence[str]) -> str:
    """The files a plan may use, for the LLM asked again after naming one nobody gave: small models invent
    "portrait.png" for "the photo"; shown the session's files, they pick the right one."""
    files = list(dict.fromkeys([name for names in request_files(request).values() for name in names] + list(earlier)[::-1]))
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
        for attempt in range(self.retries + 1):
            reply = call_llm(
                self.llm, messages, stage="plan", calls=calls, schema=self._schema, max_tokens=self.max_tokens
            )
            raw = reply.text
            try:
                plan = self._read(raw, request, earlier, earlier_turns, last=attempt == self.retries)
                errors = check(plan) if check is not None else []
                if not errors:
                    return plan
                refused = plan
                errors = errors + [session_files_hint(request, earlier)]
            except (NoJSONError, PlanError) as exc:
                errors = exc.errors if isinstance(exc, PlanError) else [str(exc)]
                if history and any(NO_TASK in e for e in errors):  # "do the same for coffee.png"
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
        raise PlanError(errors, raw)

    def _read(
        self, raw: str, request: str, earlier: Sequence[str] = (), earlier_turns: Sequence[EarlierTurn] = (), *, last: bool
    ) -> Plan:
        """The reply as a validated Plan: parsed, repaired, and bridged where a type gap is left."""
        data = extract_json(raw)
        if self.compact:
            data = number_by_position(data)
        try:
            return validate_plan(
                data, self.registry, raw=raw, request=request, earlier=earlier, earlier_turns=earlier_turns
            )
        except PlanError:
            hops = 2 if last else 1  # the last answer: allow the longer detour
            bridged, notes = bridge_types(data, self.registry, request, self._task_counts, hops)
            if not notes:
                raise
            plan = validate_plan(  # raises the bridged plan's errors
                bridged, self.registry, raw=raw, request=request, earlier=earlier, earlier_turns=earlier_turns
            )
            plan.repairs = notes + plan.repairs
            return plan
