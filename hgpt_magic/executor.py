"""Stage 3, task execution: an event-driven scheduler over the plan's task graph.

A task is submitted the moment its last dependency finishes; independent tasks run at the same time
in a bounded thread pool. `<GENERATED>-N` arguments are resolved to task N's artifact of the type the
consumer needs. A failed task marks its dependents skipped; a task that outlives its timeout is
failed (its thread is told to stop through `ctx.cancel`); Ctrl-C or a stop request ends scheduling and
keeps every finished result. `on_change` fires after every state change so the caller can save
`run.json` and update a display.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path

from .experts.base import ExpertBackend, ExpertContext, ExpertError
from .llm import LLM
from .registry import Registry, default_registry
from .resources import MAX_FETCH_SECONDS, Allowed, ResourceError, fetch_url, is_url, names_resource, refusal
from .secrets import mask_secrets
from .types import GENERATED_RE, MEDIA_TYPES, Artifact, Attempt, Plan, Selection, Task, TaskResult


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during execution. `results` holds every task's state: finished ones are kept."""

    def __init__(self, results: dict[int, TaskResult]):
        super().__init__("interrupted; finished results are kept")
        self.results = results
        self.run = None  # set by the pipeline to the partial `Run`


@dataclass
class TaskEvent:
    """What the scheduler reports: a task `started` or `finished` (any final status)."""

    kind: str
    result: TaskResult


class InputError(ValueError):
    """An argument cannot be resolved: a missing file, or a dependency without the needed output."""


def resolve_inputs(
    task: Task, registry: Registry, results: Mapping[int, TaskResult], allowed: Allowed | None = None
) -> dict[str, str]:
    """Replace `<GENERATED>-N` by task N's output of the slot's type; check that input files exist.

    With `allowed` (the executor always passes it), a file or URL the user did not give is refused here,
    the last gate before an expert sees it; without it (a preview in the editor) nothing is refused.
    """
    spec = registry[task.task] if task.task in registry else None
    resolved = {}
    for name, value in task.args.items():
        slot = spec.slot(name) if spec else None
        media = slot.type if slot else "text"
        whole = GENERATED_RE.fullmatch(value.strip())
        if whole:
            resolved[name] = _output_of(results[int(whole.group(1))], media)
            continue
        if allowed is not None and names_resource(value, media, allowed.cwd) and not allowed.allows(value):
            raise InputError(refusal(task, name, value))
        if media == "text":
            resolved[name] = GENERATED_RE.sub(lambda m: _output_of(results[int(m.group(1))], "text"), value)
        else:  # the very file that was checked: relative to the request's directory, not today's cwd
            resolved[name] = _existing_file(value, media, allowed.cwd if allowed is not None else None)
    return resolved


def recorded_languages(task: Task, results: Mapping[int, TaskResult]) -> dict[str, str]:
    """Slot -> language code, for each text argument that is wholly a task's output whose text artifact
    recorded its language (a transcript): what a voice reading it should speak."""
    languages = {}
    for name, value in task.args.items():
        whole = GENERATED_RE.fullmatch(str(value).strip())
        source = results.get(int(whole.group(1))) if whole else None
        art = source.artifact("text") if source is not None else None
        language = art.data.get("language") if art is not None and isinstance(art.data, dict) else None
        if isinstance(language, str) and language:
            languages[name] = language
    return languages


def _output_of(result: TaskResult, media: str) -> str:
    if media == "text":
        for kind in ("text", "data"):
            if (art := result.artifact(kind)) is not None:
                return art.text
        if result.artifacts:
            return result.artifacts[0].describe()
    elif (art := result.artifact(media)) is not None and art.path:
        return art.path
    raise InputError(f"task {result.task_id} ({result.task}) produced no {media} output")


def _existing_file(value: str, media: str, cwd: Path | None = None) -> str:
    if value.startswith(("http://", "https://", "data:")):
        return value  # remote backends take URLs as they are
    path = Path(value).expanduser()
    if cwd is not None and not path.is_absolute():
        path = cwd / path
    if not path.is_file():
        raise InputError(f"{media} file not found: {value}")
    if media == "audio" and path.suffix.lower() == ".wav" and _wav_frames(path) == 0:
        raise InputError(f"the audio file {value} holds no sound (a WAV with 0 frames)")
    return str(path.resolve())


def _wav_frames(path: Path) -> int | None:
    """Frames in a WAV file from its header (None when the stdlib cannot read it: float WAVs, say)."""
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes()
    except (wave.Error, EOFError, OSError):
        return None


class BadOutput(ExpertError):
    """An expert returned something that is not a list of artifacts of its task's declared types."""


def check_artifacts(artifacts: object, task: str, run_dir: Path, registry: Registry) -> list[Artifact]:
    """What a backend returned, if it is a list of Artifacts of the task's declared output types whose files
    exist inside the run directory; else `BadOutput` naming what is wrong (the task fails with it)."""
    if not isinstance(artifacts, list) or not all(isinstance(a, Artifact) for a in artifacts):
        shown = type(artifacts).__name__ if not isinstance(artifacts, list) else "a list holding " + ", ".join(
            sorted({type(a).__name__ for a in artifacts if not isinstance(a, Artifact)}))
        raise BadOutput(f"the expert returned {shown}, not a list of Artifacts")
    declared = set(registry[task].outputs) if task in registry else set(MEDIA_TYPES)
    root = run_dir.resolve()
    for art in artifacts:
        if art.kind in ("text", "data"):
            continue
        if art.kind not in MEDIA_TYPES or art.kind not in declared:
            raise BadOutput(f"the expert returned a {art.kind!r} artifact; {task} makes {'+'.join(sorted(declared))}")
        if not art.path:
            raise BadOutput(f"the expert returned a {art.kind} artifact without a file")
        path = Path(art.path).resolve()
        if not path.is_relative_to(root):
            raise BadOutput(f"the expert returned the file {art.path}, which is outside the run directory")
        if not path.is_file():
            raise BadOutput(f"the expert returned the file {art.path}, which does not exist")
    return artifacts


class DaemonPool:
    """A bounded thread pool whose threads are daemons.

    `ThreadPoolExecutor` joins its threads at interpreter exit, so a task blocked in a remote call after its
    timeout (or Ctrl-C) kept the CLI alive for as long as the call took. Here the process may exit at once;
    the task was already given up on (failed or cancelled) and its thread told to stop through `ctx.cancel`.
    """

    def __init__(self, max_workers: int, name: str):
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._max, self._name = max(1, max_workers), name

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._work.put((future, fn, args))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self._max:
            thread = threading.Thread(target=self._worker, name=f"{self._name}_{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return future

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the future, as ThreadPoolExecutor does
                    future.set_exception(exc)
            self._idle.release()

    def shutdown(self) -> None:
        """Cancel what has not started; idle threads end, busy ones end when their task returns."""
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._work.put(None)


class Executor:
    """Stage 3. Runs a plan with the chosen models; see the module docstring for the rules."""

    def __init__(
        self,
        backends: Sequence[ExpertBackend],
        *,
        llm: LLM | None = None,
        registry: Registry | None = None,
        max_workers: int = 4,
        timeout: float = 300.0,
        allowed: Allowed | None = None,
    ):
        self.backends = {b.name: b for b in backends}
        self.llm = llm
        self.registry = registry or default_registry()
        self.max_workers = max_workers
        self.timeout = timeout
        #: what the user gave (see resources.py); without it, only what the request names and the run makes
        self.allowed = self._given = allowed

    def execute(
        self,
        plan: Plan,
        selection: Selection,
        run_dir: str | Path,
        *,
        request: str = "",
        previous: Mapping[int, TaskResult] | None = None,
        only: set[int] | None = None,
        stop: threading.Event | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
        on_change: Callable[[dict[int, TaskResult]], None] | None = None,
    ) -> dict[int, TaskResult]:
        """Run the plan; return a result per task.

        `previous`: results of an earlier execution; a task whose task, model and resolved inputs are
        unchanged reuses its finished result instead of running again. `only`: run just these task ids
        (for stepping); the others stay pending. `stop`: set it to stop scheduling (running tasks finish).
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self._given is None:
            self.allowed = Allowed.for_session()
            self.allowed.add_request(request)
        self.allowed.add_folder(run_dir)  # what this run makes may feed its later tasks and later runs
        self._fatal: str | None = None  # set by a task whose failure must stop the run (401/403)
        self._interrupted = False  # set by a task whose expert raised KeyboardInterrupt
        stop = stop or threading.Event()
        previous = previous or {}
        results = {t.id: TaskResult(task_id=t.id, task=t.task) for t in plan}
        waiting = {t.id: t for t in plan}
        running: dict[Future, tuple[Task, float, ExpertContext]] = {}

        def emit(kind: str, result: TaskResult) -> None:
            if on_event:
                on_event(TaskEvent(kind, result))
            if on_change and kind == "finished":
                on_change(results)

        def finish(task: Task, result: TaskResult) -> None:
            results[task.id] = result
            emit("finished", result)

        pool = DaemonPool(self.max_workers, "hgpt-task")
        try:
            while waiting or running:
                if not stop.is_set() and self._fatal is None:
                    self._submit_ready(plan, selection, results, waiting, running, previous, only, run_dir, request, pool, emit, finish)
                if not running:
                    break  # nothing left that can run (stopped, or the rest depends on skipped tasks)
                done, _ = wait(list(running), timeout=self._next_deadline(running), return_when=FIRST_COMPLETED)
                for future in done:
                    task, _, ctx = running.pop(future)
                    finish(task, future.result())
                if self._interrupted:
                    raise KeyboardInterrupt
                if self._fatal is not None:  # drop queued tasks that have not started yet
                    for future in [f for f in running if f.cancel()]:
                        task, _, _ = running.pop(future)
                        results[task.id].status = "pending"  # cancelled below with the reason
                now = time.monotonic()
                for future, (task, deadline, ctx) in list(running.items()):
                    if now >= deadline:
                        running.pop(future)
                        ctx.cancel.set()
                        result = replace(results[task.id], status="failed", ended=time.time())
                        result.error = f"timed out after {self.timeout:g} s"
                        finish(task, result)
        except KeyboardInterrupt:
            stop.set()
            self._cancel_all(results, running, "interrupted (Ctrl-C)", None)
            pool.shutdown()
            if on_change:
                on_change(results)
            raise RunInterrupted(results) from None
        if stop.is_set() or self._fatal is not None:
            reason = f"not run: {self._fatal}" if self._fatal else "stopped before it ran"
            self._cancel_all(results, running, reason, emit)
        pool.shutdown()
        if on_change:
            on_change(results)
        return results

    # ----------------------------------------------------------------------------- helpers

    def _submit_ready(self, plan, selection, results, waiting, running, previous, only, run_dir, request, pool, emit, finish):
        for task in [t for t in plan if t.id in waiting]:
            deps = [results[d] for d in task.dep]
            if any(d.status in ("failed", "skipped", "cancelled") for d in deps):
                del waiting[task.id]
                bad = next(d for d in deps if d.status in ("failed", "skipped", "cancelled"))
                result = results[task.id]
                result.status = "skipped"
                result.error = f"skipped: task {bad.task_id} ({bad.task}) {bad.status}"
                finish(task, result)
                continue
            if not all(d.status == "done" for d in deps):
                continue
            selected = only is None or task.id in only
            result = results[task.id]
            choice = selection.choices.get(task.id)
            try:
                if choice is None or not choice.available:
                    raise InputError(choice.reason if choice else f"no model was selected for task {task.id}")
                result.model, result.backend = choice.model, choice.backend
                result.inputs = resolve_inputs(task, self.registry, results, self.allowed)
            except InputError as exc:
                if selected:
                    del waiting[task.id]
                    result.status, result.error = "failed", str(exc)
                    finish(task, result)
                continue
            old = previous.get(task.id)
            if old and old.reusable_for(task.task, result.model, result.inputs):
                del waiting[task.id]
                finish(task, replace(old, reused=True))  # unchanged since the last execution
                continue
            if not selected:
                continue  # stepping: this task waits for a later step
            del waiting[task.id]
            result.status, result.started = "running", time.time()
            emit("started", result)
            ctx = ExpertContext(run_dir=run_dir, task_id=task.id, task=task.task, llm=self.llm, request=request,
                                languages=recorded_languages(task, results))
            future = pool.submit(self._run_task, task, replace(result), choice, ctx)
            running[future] = (task, time.monotonic() + self.timeout, ctx)

    def _run_task(self, task: Task, result: TaskResult, choice, ctx: ExpertContext) -> TaskResult:
        """Run on the chosen model; on a model-level failure try the next candidates in rank order.

        Whatever an expert does (raise anything, `sys.exit`, return garbage) ends as this task's result:
        a bad expert fails its task, never the run. A KeyboardInterrupt becomes the run's interrupt.
        """
        try:
            inputs = self._fetch_urls(task, result.inputs, ctx)
        except ResourceError as exc:
            return replace(result, status="failed", error=mask_secrets(str(exc)), ended=time.time())
        order = [(choice.model, choice.backend)] + [
            (c.id, c.backend) for c in choice.candidates if c.id != choice.model
        ]
        for model, backend_name in order:
            backend = self.backends.get(backend_name)
            if backend is None:
                continue
            start = time.perf_counter()
            try:
                artifacts = check_artifacts(backend.run(task.task, model, dict(inputs), ctx), task.task, ctx.run_dir, self.registry)
            except ExpertError as exc:
                message = mask_secrets(str(exc))
                if exc.fatal and not exc.model_level:  # a refused token: nothing else can work
                    self._fatal = message
                result.attempts.append(Attempt(model, backend_name, message, time.perf_counter() - start))
                if exc.model_level and not ctx.cancel.is_set():
                    continue
                return replace(result, status="failed", error=message, model=model, backend=backend_name, ended=time.time())
            except KeyboardInterrupt:
                self._interrupted = True
                result.attempts.append(Attempt(model, backend_name, "interrupted", time.perf_counter() - start))
                return replace(result, status="cancelled", error="interrupted (Ctrl-C)", ended=time.time())
            except BaseException as exc:  # an expert crashed or called exit: a failed task, never a crashed run
                message = mask_secrets(f"{type(exc).__name__}: {exc}")
                result.attempts.append(Attempt(model, backend_name, message, time.perf_counter() - start))
                return replace(result, status="failed", error=message, model=model, backend=backend_name, ended=time.time())
            result.attempts.append(Attempt(model, backend_name, None, time.perf_counter() - start))
            return replace(result, status="done", artifacts=artifacts, model=model, backend=backend_name, ended=time.time())
        errors = "; ".join(f"{a.model}: {a.error}" for a in result.attempts) or "no backend for the chosen model"
        return replace(result, status="failed", error=f"every candidate failed ({errors})", ended=time.time())

    def _fetch_urls(self, task: Task, inputs: dict[str, str], ctx: ExpertContext) -> dict[str, str]:
        """URLs in media slots downloaded into the run directory through the one guarded fetch (on the
        task's thread, so the task's timeout covers it): an expert never fetches a URL itself."""
        spec = self.registry[task.task] if task.task in self.registry else None
        fetched = dict(inputs)
        for name, value in inputs.items():
            slot = spec.slot(name) if spec else None
            if slot is not None and slot.type != "text" and is_url(value):
                fetched[name] = str(fetch_url(value, self.allowed, ctx.run_dir, timeout=min(self.timeout, 60.0),
                                                 deadline=min(self.timeout, MAX_FETCH_SECONDS)))
        return fetched

    def _next_deadline(self, running) -> float:
        if not running:
            return 0.0
        return max(0.0, min(deadline for _, deadline, _ in running.values()) - time.monotonic())

    @staticmethod
    def _cancel_all(results: dict[int, TaskResult], running, reason: str, emit) -> None:
        """Mark every unfinished task cancelled, telling observers as for any finished task."""
        for _, _, ctx in running.values():
            ctx.cancel.set()
        for result in results.values():
            if result.status in ("pending", "running"):
                result.status = "cancelled"
                result.error = reason
                if result.started is not None and result.ended is None:
                    result.ended = time.time()
                if emit is not None:
                    emit("finished", result)
