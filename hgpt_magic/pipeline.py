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

from . import settings
from .catalog import Catalog
from .executor import Executor, RunInterrupted, TaskEvent
from .experts import ExpertBackend, make_experts
from .history import Turn, turn_from_run
from .llm import LLM, OnText, make_llm
from .planning import DemoIndex, PlanError, Planner, default_demos, system_prompt
from .registry import Registry, default_registry
from .resources import Allowed, ResourceError, check_plan
from .responder import Responder
from .secrets import mask_secrets
from .selector import Selector, check_ask_policy
from .types import Candidate, LLMCall, Plan, Run, RunNotSaved, Selection, TaskResult

#: What a first run says before the planner's prompt prefix is computed (the only long silent step otherwise).
FIRST_RUN_NOTE = (
    "First run with this model: preparing the planner's prompt (its instructions and worked examples) once. "
    "About a minute on 2 CPU cores; it is saved, so later runs and kernels skip this."
)


def default_out_dir() -> Path:
    return Path(settings.OUT.text())


def out_dir_problem(folder: Path) -> str | None:
    """Why run directories cannot go in `folder` (it is a file, or cannot be made or written), or None.

    Checked by the CLI and the magic before any model loads: a bad folder is a setting to fix, not a
    failure to find after planning."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder for run directories"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".hgpt-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write run directories in {folder}: {exc.strerror or exc}"
    return None


class PlanRefused(PlanError, ResourceError):
    """A plan that names a file or URL the user did not give, or is too large: refused before anything runs.

    A `PlanError`, so whoever handles a bad plan handles this too; `errors` has one line per refused argument.
    """


def refusal_answer(problems: Sequence[str]) -> str:
    """The answer of a refused plan: that nothing ran, and each reason (which says how to allow it)."""
    return "Not done: nothing ran, the plan was refused:\n" + "\n".join(f"- {line}" for line in problems)


class HuggingGPT:
    """The pipeline. `llm` and `experts` take spec strings (see `make_llm`, `make_experts`) or objects.

    Each stage object (planner, selector, responder) is built once, when first needed, and kept: the
    planner's static prompt and schema are computed once per session.
    """

    def __init__(
        self,
        llm: str | LLM | None = None,
        experts: str | ExpertBackend | Sequence[ExpertBackend] | None = "auto",
        *,
        registry: Registry | None = None,
        catalog: Catalog | None = None,
        top_k: int = 5,
        select_policy: str | None = None,
        out_dir: str | Path | None = None,
        max_workers: int = 4,
        task_timeout: float = 300.0,
        history_tokens: int = 1000,
        allow_paths: Sequence[str | Path] | str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ):
        """`allow_paths`: folders whose files a plan may use without the request naming them
        (besides `$HGPT_ALLOW_PATHS`); see resources.py for what else a plan may touch.
        `select_policy`: when the LLM picks among several models, "auto", "always" or "never" (None:
        `$HGPT_SELECT`, default auto); see selector.py. `on_progress`: gets a line of text about slow one-time
        work as it begins (the first run's prompt preparation), for a CLI or notebook to show."""
        self.on_progress = on_progress
        self._llm_spec = llm
        self._llm: LLM | None = None if llm is None or isinstance(llm, str) else llm
        self._llm_lock = threading.Lock()
        self.registry = registry or default_registry()
        self.experts = make_experts(experts)
        self.catalog = catalog
        self._top_k = top_k
        self._selector: Selector | None = None
        self.select_policy = select_policy  # checked now: a typo fails here, not at the first selection
        self.out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
        self.max_workers = max_workers
        self.task_timeout = task_timeout
        self.history_tokens = history_tokens
        self.history: list[Turn] = []
        self.last_turn: Turn | None = None  # the turn the last `finish` added to `history`, if any
        self.last_run: Run | None = None
        self._planner: Planner | None = None
        self._responder: Responder | None = None
        #: the files and URLs this session's user gave; plans may touch nothing else
        self.allowed = Allowed.for_session(allow_paths)

    # ------------------------------------------------------------------ components

    @property
    def llm(self) -> LLM:
        """The controller LLM, built (and for `local`, loaded) on first use."""
        with self._llm_lock:
            if self._llm is None:
                # a shared model server started now readies this session's planner prefix first
                self._llm = make_llm(self._llm_spec, prefix=lambda: static_planner_prefix(self.registry),
                                     on_prefix_compute=lambda: self._progress(FIRST_RUN_NOTE))
                if self._selector is not None:
                    self._selector.llm = self._llm  # the selector asks it once it exists
            return self._llm

    def _progress(self, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(text)

    @property
    def llm_name(self) -> str:
        """What the LLM is, without loading it."""
        if self._llm is not None:
            return self._llm.name
        return self._llm_spec if isinstance(self._llm_spec, str) else "local"

    @property
    def selector(self) -> Selector:
        """Stage 2, built on first use (the experts' models are listed then)."""
        if self._selector is None:
            self._selector = Selector(self._llm, self.experts, self.catalog, top_k=self._top_k,
                                      ask=self._select_policy, registry=self.registry)
        return self._selector

    @property
    def top_k(self) -> int:
        """Candidates per task the selector considers."""
        return self._top_k

    @top_k.setter
    def top_k(self, value: int) -> None:
        self._top_k = value
        if self._selector is not None:
            self._selector.top_k = value

    @property
    def select_policy(self) -> str | None:
        """When the LLM picks among several candidate models: "auto", "always", "never"; None: `$HGPT_SELECT`."""
        return self._select_policy

    @select_policy.setter
    def select_policy(self, value: str | None) -> None:
        self._select_policy = check_ask_policy(value)
        if self._selector is not None:
            self._selector.ask = value

    @property
    def planner(self) -> Planner:
        """The stage-1 planner, built on first use (loading the LLM) and rebuilt only if the registry or
        history budget is changed."""
        planner = self._planner
        if planner is None or planner.registry is not self.registry or planner.history_tokens != self.history_tokens:
            meanwhile = _load_demo_index_meanwhile(self.registry) if self._llm is None else None
            planner = self._planner = Planner(self.llm, self.registry, history_tokens=self.history_tokens)
            planner.runnable = lambda task: bool(self.selector.candidates(task, 1))
            if meanwhile is not None:
                meanwhile.join()
            warm_planner_prefix(self.llm, planner)
        return planner

    def candidates(self, task: str, top_k: int | None = None) -> list[Candidate]:
        """The ranked models that could run `task` with the configured backends."""
        return self.selector.candidates(task, top_k)

    def new_run_dir(self) -> Path:
        path = self.out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ the four stages

    def plan(self, request: str, *, calls: list[LLMCall] | None = None, given: str | None = None) -> Plan:
        """Stage 1: the task graph for `request`, given the session's history. Raises `PlanError`.

        `given`: the request as the user gave it, where that differs from what the LLM reads (the magic
        leaves the text of `{var}` data out of it: see `magic.Request`); files and URLs a plan may use are
        read from it."""
        self.allowed.add_request(request if given is None else given)  # what the user names, the plan may use
        return self.planner.plan(request, self.history, calls=calls, check=self.resource_problems)

    def resource_problems(self, plan: Plan) -> list[str]:
        """What in `plan` this session's user did not give (files, URLs), or a plan too large: one line each."""
        return check_plan(plan, self.allowed, self.registry)

    def select(self, plan: Plan, request: str = "", *, calls: list[LLMCall] | None = None) -> Selection:
        """Stage 2: a model per task (one LLM call at most, for the tasks whose choice the LLM makes)."""
        selector = self.selector
        if selector.will_ask(plan, request):
            selector.llm = self.llm  # loaded only when it will be asked
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
            allowed=self.allowed,
        )
        save = _Saver(run)
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
        save(results, final=True)
        return results

    def respond(
        self,
        request: str,
        plan: Plan,
        selection: Selection | None,
        results: Mapping[int, TaskResult],
        *,
        calls: list[LLMCall] | None = None,
        on_text: OnText | None = None,
    ) -> str:
        """Stage 4: the answer (Markdown); a deterministic summary if the LLM fails.

        `on_text` gets the LLM's text piece by piece as it is written (a streamed draft); the returned
        answer is the checked whole, which may differ (a summary when the stream broke, file paths added).
        """
        if self._responder is None:
            unserved = [f"{t.name} ({t.description})" for t in self.registry if not self.selector.candidates(t.name, 1)]
            self._responder = Responder(self.llm, registry=self.registry, unserved=unserved)
        return self._responder.respond(
            request, plan, selection, results, history=self.history, calls=calls, on_text=on_text
        )

    # ------------------------------------------------------------------ all four

    def run(
        self,
        request: str,
        *,
        plan_only: bool = False,
        respond: bool = True,
        stop: threading.Event | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
        on_text: OnText | None = None,
        given: str | None = None,
    ) -> Run:
        """Plan, select, execute and respond (`on_text`: the answer's text as it streams, see `respond`;
        `given`: see `plan`). The `Run` is also kept in `self.last_run`.

        Raises `PlanError` if no valid plan can be had (the failed `Run` is in `last_run`), and
        `RunInterrupted` on Ctrl-C, with the partial `Run`, finished results included, as `.run`.
        """
        run = Run(request=request, llm=self.llm_name)
        self.last_run = run
        try:
            with _timed(run, "plan"):
                run.plan = self.plan(request, calls=run.llm_calls, given=given)
            run.llm = self.llm.name
            if not plan_only:  # the editor shows the refusals on the rows instead; `finish` checks again
                self.check(run)
            with _timed(run, "select"):
                run.selection = self.select(run.plan, request, calls=run.llm_calls)
            run.status = "selected"
            if plan_only:
                return run
            self.finish(run, respond=respond, stop=stop, on_event=on_event, on_text=on_text)
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
        replace_turn: Turn | None = None,
        on_text: OnText | None = None,
    ) -> Run:
        """Execute and answer a planned `Run` (after the user edited its plan or models, say).

        `on_text`: the answer's text as it streams (see `respond`).
        `replace_turn`: a history turn that this answer replaces when it is still the last one (running
        the same request again, as the editor does); `last_turn` is the turn added, if any.

        Raises `PlanRefused` before anything runs if the plan names a file or URL the user did not give
        (or is too large). Whatever happens, the Run ends `done`, `failed` or `interrupted` and its run.json
        is written, Ctrl-C during the answer included.
        """
        self.last_run = run
        self.last_turn = None
        self.check(run)
        try:
            with _timed(run, "execute"):
                run.results = self.execute(
                    run.plan, run.selection, run=run, previous=previous, stop=stop, on_event=on_event
                )
            stopped = stop is not None and stop.is_set()
            run.status = "interrupted" if stopped else "running"
            if respond and not stopped:  # after Stop, the user wants control back, not another LLM call
                with _timed(run, "respond"):
                    answer = self.respond(
                        run.request, run.plan, run.selection, run.results, calls=run.llm_calls, on_text=on_text
                    )
                run.answer = mask_secrets(answer)  # an LLM that echoes a key, a {var} that held one
                self.remember(turn_from_run(run), replacing=replace_turn)  # never its answer
            if run.status != "interrupted":
                run.status = "done"
        except RunInterrupted as exc:
            run.results, run.status, run.error = exc.results, "interrupted", "interrupted by the user"
            exc.run = run
            raise
        except KeyboardInterrupt:  # Ctrl-C during the answer
            run.status, run.error = "interrupted", "interrupted by the user"
            exc = RunInterrupted(run.results)
            exc.run = run
            raise exc from None
        except RunNotSaved:
            raise  # the run is failed already, with the one line that says why
        except BaseException as exc:
            run.status, run.error = "failed", mask_secrets(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if run.run_dir is not None:
                run.save(Path(run.run_dir) / "run.json")  # RunNotSaved (one line) when the disk is full
        return run

    def remember(self, turn: Turn, *, replacing: Turn | None = None) -> Turn:
        """Add `turn` to the history; if `replacing` is the last turn, `turn` takes its place."""
        if replacing is not None and self.history and self.history[-1] is replacing:
            self.history[-1] = turn
        else:
            self.history.append(turn)
        self.last_turn = turn
        return turn

    def check(self, run: Run) -> None:
        """Refuse a plan that touches what the user did not give, or is too large: before anything runs.

        Raises `PlanRefused` naming each refused argument (the Run is marked `failed`);
        `self.allowed.accept(value)` is the user's explicit yes to one of them.
        """
        run.accepted = list(self.allowed.accepted)
        problems = self.resource_problems(run.plan) if run.plan is not None else []
        if problems:
            exc = PlanRefused(problems, run.plan.raw)
            run.status, run.error = "failed", str(exc)
            run.answer = refusal_answer(problems)  # what the user reads: nothing ran, and why
            raise exc

    def reset(self) -> None:
        """Forget the chat history (the next request is planned without context)."""
        self.history.clear()


def _load_demo_index_meanwhile(registry: Registry) -> threading.Thread | None:
    """While the LLM loads (seconds for the embedded one), load the planner's demo index (the embedding
    model and the demos' embeddings) on a thread: the first plan waits for the longer of the two, not both."""
    if not registry.vocabulary.retrieve:
        return None

    def load() -> None:
        try:
            DemoIndex.of(default_demos(registry))
        except Exception:  # the planner loads it itself when it needs it (or ranks demos by shared words)
            pass

    thread = threading.Thread(target=load, name="hgpt-demo-index", daemon=True)
    thread.start()
    return thread


def planner_prefix(planner: Planner) -> list[dict[str, str]]:
    """The messages every plan of `planner` starts with: its system prompt, and its demos unless they are
    retrieved per request."""
    if planner.retrieve is not None and 0 < planner.retrieve < len(planner.demos):
        system = system_prompt(planner.registry, compact=planner.compact, allow_empty=planner.allow_empty)
        return [{"role": "system", "content": system}]
    return planner.messages("")[:-1]


def static_planner_prefix(registry: Registry | None = None) -> list[dict[str, str]]:
    """The prefix of the planner `HuggingGPT` builds for `registry`, written without an LLM: what a shared model
    server makes ready before it serves (the server is given it: llm/ knows nothing of planning)."""
    return planner_prefix(Planner(None, registry))  # type: ignore[arg-type]  # only its messages are read


def warm_planner_prefix(llm: LLM, planner: Planner) -> str | None:
    """Have an LLM that keeps prompt-prefix KV states (the embedded one: `LocalLLM.warm_prefix`) ready the
    planner's static prefix, restored from disk in a fresh process: the first plan then costs a warm one.
    What happened, or None for an LLM without it; a failure only means the first plan computes it."""
    warm = getattr(llm, "warm_prefix", None)
    if warm is None:
        return None
    try:
        return warm(planner_prefix(planner))
    except Exception as exc:  # never worth failing a plan over
        return f"not warmed: {mask_secrets(str(exc))}"


class _Saver:
    """Writes run.json as tasks finish, spending at most about 1/20 of the run's time on it.

    Rewriting the whole file after every task made a 1,000-task plan quadratic (each write is O(tasks));
    here a write is skipped while less than 20 times the last write's duration has passed since it, and
    the final state is always written.
    """

    def __init__(self, run: Run):
        self.run = run
        self.next_at = 0.0

    def __call__(self, results: Mapping[int, TaskResult], final: bool = False) -> None:
        if not final and time.perf_counter() < self.next_at:
            return
        start = time.perf_counter()
        self.run.results = dict(results)
        try:
            self.run.save(Path(self.run.run_dir) / "run.json")
        except RunNotSaved:
            if final:
                raise
            self.next_at = float("inf")  # the disk is full: the tasks finish, the final save says so
            return
        now = time.perf_counter()
        self.next_at = now + 20 * (now - start)


class _timed:
    """Adds the seconds spent in a `with` block to `run.timings[stage]`."""

    def __init__(self, run: Run, stage: str):
        self.run, self.stage = run, stage

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.run.timings[self.stage] = self.run.timings.get(self.stage, 0.0) + time.perf_counter() - self.start
        return False
