"""`HuggingGPT`: the four stages composed, each also callable on its own.

    hg = HuggingGPT()                      # the embedded offline LLM and local experts
    plan = hg.plan("Read the text in sign.png aloud")
    selection = hg.select(plan)
    results = hg.execute(plan, selection)
    answer = hg.respond(request, plan, selection, results)
    run = hg.run(request)                  # all four; a `Run` that saves to and loads from JSON

The object keeps the chat history of the session (multi-turn planning, as in HuggingGPT) and builds
its LLM lazily, so creating it is cheap and the embedded model loads on the first stage that needs it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .catalog import Catalog
from .executor import Executor, RunInterrupted, TaskEvent
from .experts import ExpertBackend, make_experts
from .history import Turn, turn_from_run
from .llm import LLM, make_llm
from .planner import PlanError, Planner
from .registry import Registry, default_registry
from .responder import Responder
from .selector import Selector
from .types import Candidate, LLMCall, Plan, Run, Selection, TaskResult


def default_out_dir() -> Path:
    return Path(os.environ.get("HGPT_OUT", "hgpt-runs"))


class HuggingGPT:
    """The pipeline. `llm` and `experts` take spec strings (see `make_llm`, `make_experts`) or objects."""

    def __init__(
        self,
        llm: str | LLM | None = None,
        experts: str | ExpertBackend | Sequence[ExpertBackend] | None = "auto",
        *,
        registry: Registry | None = None,
        catalog: Catalog | None = None,
        top_k: int = 5,
        out_dir: str | Path | None = None,
        max_workers: int = 4,
        task_timeout: float = 300.0,
        history_tokens: int = 1000,
    ):
        self._llm_spec = llm
        self._llm: LLM | None = None if llm is None or isinstance(llm, str) else llm
        self._llm_lock = threading.Lock()
        self.registry = registry or default_registry()
        self.experts = make_experts(experts)
        self.catalog = catalog
        self.top_k = top_k
        self.out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
        self.max_workers = max_workers
        self.task_timeout = task_timeout
        self.history_tokens = history_tokens
        self.history: list[Turn] = []
        self.last_run: Run | None = None
        self._selector: Selector | None = None

    # ------------------------------------------------------------------ components

    @property
    def llm(self) -> LLM:
        """The controller LLM, built (and for `local`, loaded) on first use."""
        with self._llm_lock:
            if self._llm is None:
                self._llm = make_llm(self._llm_spec)
            return self._llm

    @property
    def llm_name(self) -> str:
        """What the LLM is, without loading it."""
        if self._llm is not None:
            return self._llm.name
        return self._llm_spec if isinstance(self._llm_spec, str) else "local"

    @property
    def selector(self) -> Selector:
        if self._selector is None:
            self._selector = Selector(None, self.experts, self.catalog, top_k=self.top_k)
        self._selector.llm = self._llm  # the LLM is attached once it exists
        self._selector.top_k = self.top_k
        return self._selector

    def candidates(self, task: str, top_k: int | None = None) -> list[Candidate]:
        """The ranked models that could run `task` with the configured backends."""
        return self.selector.candidates(task, top_k)

    def new_run_dir(self) -> Path:
        path = self.out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ the four stages

    def plan(self, request: str, *, calls: list[LLMCall] | None = None) -> Plan:
        """Stage 1: the task graph for `request`, given the session's history. Raises `PlanError`."""
        planner = Planner(self.llm, self.registry, history_tokens=self.history_tokens)
        return planner.plan(request, self.history, calls=calls)

    def select(self, plan: Plan, request: str = "", *, calls: list[LLMCall] | None = None) -> Selection:
        """Stage 2: a model per task (one LLM call at most, for the tasks with several candidates)."""
        selector = self.selector
        if any(len(selector.candidates(t.task)) > 1 for t in plan):
            selector.llm = self.llm
        return selector.select(plan, request, calls=calls)

    def execute(
        self,
        plan: Plan,
        selection: Selection,
        *,
        request: str = "",
        run: Run | None = None,
        previous: Mapping[int, TaskResult] | None = None,
        only: set[int] | None = None,
        stop: threading.Event | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
    ) -> dict[int, TaskResult]:
        """Stage 3: run the tasks; `run.json` in the run directory is rewritten as each task finishes."""
        if run is None:
            run = Run(request=request, llm=self.llm_name, plan=plan, selection=selection, status="running")
        if run.run_dir is None:
            run.run_dir = str(self.new_run_dir())
        run.status = "running"
        executor = Executor(
            self.experts,
            llm=self.llm,  # text tasks and document QA ask the controller LLM
            registry=self.registry,
            max_workers=self.max_workers,
            timeout=self.task_timeout,
        )

        def save(results: dict[int, TaskResult]) -> None:
            run.results = dict(results)
            run.save(Path(run.run_dir) / "run.json")

        results = executor.execute(
            plan,
            selection,
            run.run_dir,
            request=request or run.request,
            previous=previous,
            only=only,
            stop=stop,
            on_event=on_event,
            on_change=save,
        )
        return results

    def respond(
        self,
        request: str,
        plan: Plan,
        selection: Selection | None,
        results: Mapping[int, TaskResult],
        *,
        calls: list[LLMCall] | None = None,
    ) -> str:
        """Stage 4: the answer (Markdown); a deterministic summary if the LLM fails."""
        return Responder(self.llm).respond(request, plan, selection, results, history=self.history, calls=calls)

    # ------------------------------------------------------------------ all four

    def run(
        self,
        request: str,
        *,
        plan_only: bool = False,
        respond: bool = True,
        stop: threading.Event | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
    ) -> Run:
        """Plan, select, execute and respond. The `Run` is also kept in `self.last_run`.

        Raises `PlanError` if no valid plan can be had (the failed `Run` is in `last_run`), and
        `RunInterrupted` on Ctrl-C, with the partial `Run`, finished results included, as `.run`.
        """
        run = Run(request=request, llm=self.llm_name)
        self.last_run = run
        try:
            with _timed(run, "plan"):
                run.plan = self.plan(request, calls=run.llm_calls)
            run.llm = self.llm.name
            with _timed(run, "select"):
                run.selection = self.select(run.plan, request, calls=run.llm_calls)
            run.status = "selected"
            if plan_only:
                return run
            self.finish(run, respond=respond, stop=stop, on_event=on_event)
        except PlanError as exc:
            run.status, run.error = "failed", str(exc)
            raise
        return run

    def finish(
        self,
        run: Run,
        *,
        respond: bool = True,
        previous: Mapping[int, TaskResult] | None = None,
        stop: threading.Event | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
    ) -> Run:
        """Execute and answer a planned `Run` (after the user edited its plan or models, say)."""
        self.last_run = run
        try:
            with _timed(run, "execute"):
                run.results = self.execute(
                    run.plan, run.selection, run=run, previous=previous, stop=stop, on_event=on_event
                )
        except RunInterrupted as exc:
            run.results, run.status, run.error = exc.results, "interrupted", "interrupted by the user"
            run.save(Path(run.run_dir) / "run.json")
            exc.run = run
            raise
        stopped = stop is not None and stop.is_set()
        run.status = "interrupted" if stopped else "running"
        if respond and not stopped:  # after Stop, the user wants control back, not another LLM call
            with _timed(run, "respond"):
                run.answer = self.respond(run.request, run.plan, run.selection, run.results, calls=run.llm_calls)
            self.history.append(turn_from_run(run))  # what it named and made; its answer is never re-prompted
        if run.status != "interrupted":
            run.status = "done"
        run.save(Path(run.run_dir) / "run.json")
        return run

    def reset(self) -> None:
        """Forget the chat history (the next request is planned without context)."""
        self.history.clear()


class _timed:
    """Adds the seconds spent in a `with` block to `run.timings[stage]`."""

    def __init__(self, run: Run, stage: str):
        self.run, self.stage = run, stage

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.run.timings[self.stage] = self.run.timings.get(self.stage, 0.0) + time.perf_counter() - self.start
        return False
