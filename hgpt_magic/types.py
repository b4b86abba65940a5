"""Plain dataclasses that every stage passes along: tasks, plans, artifacts, results, runs.

Nothing here imports a model, IPython or a widget library: a `Run` must load back from JSON
on any machine.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: The media types the planner reasons about (a task's inputs and outputs).
MEDIA_TYPES = ("text", "image", "audio", "video")

#: What an artifact can hold: a media type, or structured data (labels, boxes, scores).
ArtifactKind = Literal["text", "image", "audio", "video", "data"]

#: How a plan says "the output of task N".
GENERATED_RE = re.compile(r"<GENERATED>-(\d+)")

TaskStatus = Literal["pending", "running", "done", "failed", "skipped", "cancelled"]


@dataclass
class Task:
    """One node of a plan: run `task` (a registry name) on `args`; `dep` lists the tasks it waits for.

    An argument value `<GENERATED>-N` stands for the output of task N.
    """

    id: int
    task: str
    dep: list[int] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)

    def references(self) -> list[tuple[str, int]]:
        """(argument name, task id) for every `<GENERATED>-N` in the arguments."""
        refs = []
        for name, value in self.args.items():
            for match in GENERATED_RE.finditer(str(value)):
                refs.append((name, int(match.group(1))))
        return refs

    def derived_dep(self, known: Iterable[int] | None = None) -> list[int]:
        """The ids this task waits for: those its `<GENERATED>-N` arguments name (of `known`, when given).

        The one place `dep` is derived: the planner, the editor, the graph and the executor all use it.
        """
        refs = {ref for _, ref in self.references()}
        return sorted(refs if known is None else refs & set(known))

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "id": self.id, "dep": list(self.dep), "args": dict(self.args)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            id=int(data["id"]),
            task=str(data["task"]),
            dep=[int(d) for d in data.get("dep", [])],
            args={str(k): str(v) for k, v in (data.get("args") or {}).items()},
        )


@dataclass
class Plan:
    """A validated task graph (see `planning.validate_plan`): ids unique, references acyclic.

    `repairs` says what the validator fixed on the way (for display and teaching); `raw` is the LLM text.
    """

    tasks: list[Task] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    raw: str = ""

    def __iter__(self):
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, task_id: int) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tasks]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps([t.to_dict() for t in self.tasks], indent=indent, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": [t.to_dict() for t in self.tasks], "repairs": list(self.repairs), "raw": self.raw}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | list) -> Plan:
        if isinstance(data, list):
            return cls(tasks=[Task.from_dict(t) for t in data])
        return cls(
            tasks=[Task.from_dict(t) for t in data.get("tasks", [])],
            repairs=list(data.get("repairs", [])),
            raw=data.get("raw", ""),
        )


@dataclass
class Artifact:
    """A typed output of a task: text, a file (image, audio, video) or structured data.

    `text` is always a readable rendering, so that any artifact can feed a text argument or the
    final answer; `path` is set for media kinds; `data` holds JSON-able structure (labels, boxes).
    """

    kind: ArtifactKind
    text: str = ""
    path: str | None = None
    data: Any = None
    mime: str | None = None

    def describe(self, limit: int = 300) -> str:
        """A short account of the artifact for prompts and tables."""
        if self.kind in ("image", "audio", "video"):
            return f"{self.kind} file {self.path}"
        text = self.text if self.text else json.dumps(self.data, ensure_ascii=False, default=str)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(**data)


@dataclass
class Candidate:
    """A model that could run a task, with what the selector shows the LLM and the user."""

    id: str
    backend: str
    downloads: int = 0
    likes: int = 0
    description: str = ""
    license: str | None = None
    offline: bool = False
    #: The languages its card names (ISO codes or "multilingual"); () when it names none.
    languages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Choice:
    """The model picked for one task and why; `candidates` are the ones that were offered."""

    task_id: int
    model: str | None
    backend: str | None
    reason: str
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.model is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "model": self.model,
            "backend": self.backend,
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Choice:
        return cls(
            task_id=int(data["task_id"]),
            model=data.get("model"),
            backend=data.get("backend"),
            reason=data.get("reason", ""),
            candidates=[Candidate(**{**c, "languages": tuple(c.get("languages") or ())}) for c in data.get("candidates", [])],
        )


@dataclass
class Selection:
    """One `Choice` per task id. A task with no model (`model is None`) cannot run here."""

    choices: dict[int, Choice] = field(default_factory=dict)

    def __getitem__(self, task_id: int) -> Choice:
        return self.choices[task_id]

    def __contains__(self, task_id: int) -> bool:
        return task_id in self.choices

    def __iter__(self):
        return iter(self.choices.values())

    def missing(self) -> list[Choice]:
        """Choices for tasks that no available backend can serve."""
        return [c for c in self.choices.values() if not c.available]

    def to_dict(self) -> dict[str, Any]:
        return {str(k): c.to_dict() for k, c in self.choices.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        return cls(choices={int(k): Choice.from_dict(v) for k, v in data.items()})


@dataclass
class Attempt:
    """One try of a task on one model: kept so fallbacks and retries are visible in the `Run`."""

    model: str
    backend: str
    error: str | None = None
    seconds: float = 0.0


@dataclass
class TaskResult:
    """What happened to one task: its status, outputs, the model that ran it, timing and error."""

    task_id: int
    task: str
    status: TaskStatus = "pending"
    model: str | None = None
    backend: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    ended: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    reused: bool = False

    def reusable_for(self, task: str, model: str, inputs: Mapping[str, str]) -> bool:
        """Whether this finished result stands for running `task` on `model` with these resolved inputs
        again: the one reuse rule of the executor and the editor."""
        chosen = self.attempts[0].model if self.attempts else self.model  # a fallback answered for the choice
        return self.status == "done" and (self.task, self.inputs) == (task, dict(inputs)) and model in {chosen, self.model}

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def fallbacks(self) -> list[str]:
        """"model X failed: reason → model Y" for each model-level failure that moved on to another model,
        so a user sees which backend really answered."""
        return [
            f"model {a.model} failed: {a.error} → model {b.model}"
            for a, b in zip(self.attempts, self.attempts[1:], strict=False)
            if a.error is not None and a.model != b.model
        ]

    def artifact(self, kind: str) -> Artifact | None:
        """The first artifact of `kind`, if the task produced one."""
        for art in self.artifacts:
            if art.kind == kind:
                return art
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        data = dict(data)
        data["artifacts"] = [Artifact.from_dict(a) for a in data.get("artifacts", [])]
        data["attempts"] = [Attempt(**a) for a in data.get("attempts", [])]
        return cls(**data)


@dataclass
class LLMCall:
    """One LLM request: which stage made it, its token counts and how long it took."""

    stage: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Run:
    """Everything one request produced; serialises to JSON and loads back (`Run.load`)."""

    request: str
    llm: str = ""
    plan: Plan | None = None
    selection: Selection | None = None
    results: dict[int, TaskResult] = field(default_factory=dict)
    answer: str | None = None
    #: planned → selected → running → done; "paused" between Steps; "failed"/"interrupted" keep partial results
    status: Literal["planned", "selected", "running", "paused", "done", "failed", "interrupted"] = "planned"
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    llm_calls: list[LLMCall] = field(default_factory=list)
    run_dir: str | None = None
    #: files and URLs the user explicitly allowed for this plan (an editor edit or "accept"; see resources.py)
    accepted: list[str] = field(default_factory=list)

    @property
    def n_llm_calls(self) -> int:
        return len(self.llm_calls)

    @property
    def tokens(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.llm_calls)

    def artifacts(self) -> list[Artifact]:
        """Every artifact of every task, in task order."""
        return [a for tid in sorted(self.results) for a in self.results[tid].artifacts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "llm": self.llm,
            "plan": self.plan.to_dict() if self.plan else None,
            "selection": self.selection.to_dict() if self.selection else None,
            "results": {str(k): r.to_dict() for k, r in self.results.items()},
            "answer": self.answer,
            "status": self.status,
            "error": self.error,
            "timings": dict(self.timings),
            "llm_calls": [dataclasses.asdict(c) for c in self.llm_calls],
            "run_dir": self.run_dir,
            "accepted": list(self.accepted),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(
            request=data["request"],
            llm=data.get("llm", ""),
            plan=Plan.from_dict(data["plan"]) if data.get("plan") is not None else None,
            selection=Selection.from_dict(data["selection"]) if data.get("selection") is not None else None,
            results={int(k): TaskResult.from_dict(v) for k, v in (data.get("results") or {}).items()},
            answer=data.get("answer"),
            status=data.get("status", "planned"),
            error=data.get("error"),
            timings=dict(data.get("timings") or {}),
            llm_calls=[LLMCall(**c) for c in data.get("llm_calls", [])],
            run_dir=data.get("run_dir"),
            accepted=[str(v) for v in data.get("accepted") or []],
        )

    @classmethod
    def from_json(cls, text: str) -> Run:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write the run as JSON atomically (a crash mid-write leaves the old file intact), secrets masked
        (an answer or a task output that echoes a key must not reach the disk), each text value cut to
        `MAX_SAVED_CHARS` with a note (a 10 MB argument is kept once, in memory, not four times on disk).

        When the file cannot be written (a full disk, a folder that went read-only), the run ends
        `failed` with one line saying so, no `.tmp` is left, an earlier run.json is marked failed in
        place where that needs no new space, and `RunNotSaved` is raised with that line.
        """
        from .secrets import mask_secrets

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        data, cut = _capped(self.to_dict())
        if cut:
            data["cut"] = cut
        try:
            tmp.write_text(mask_secrets(json.dumps(data, indent=2, ensure_ascii=False, default=str)), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.status, self.error = "failed", f"cannot save {path}: {exc.strerror or exc}"
            _mark_failed_in_place(path, self.error)
            raise RunNotSaved(self.error) from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Run:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


#: The most characters of one text value that run.json keeps (a request, an argument, an output).
MAX_SAVED_CHARS = 100_000


class RunNotSaved(OSError):
    """run.json could not be written; the message is one line that says where and why."""


def _capped(value: Any, where: str = "") -> tuple[Any, list[str]]:
    """`value` with every string longer than `MAX_SAVED_CHARS` cut (the cut marked in the text), and a
    note per cut value saying where it was and how long (what run.json's `cut` lists)."""
    if isinstance(value, str):
        if len(value) <= MAX_SAVED_CHARS:
            return value, []
        note = f"{where or 'value'}: {len(value):,} characters, the first {MAX_SAVED_CHARS:,} kept"
        return value[:MAX_SAVED_CHARS] + f"…[cut by hgpt-magic: {len(value):,} characters]", [note]
    if isinstance(value, dict):
        out, notes = {}, []
        for key, item in value.items():
            out[key], more = _capped(item, f"{where}.{key}" if where else str(key))
            notes += more
        return out, notes
    if isinstance(value, list | tuple):
        out_list, notes = [], []
        for i, item in enumerate(value):
            capped, more = _capped(item, f"{where}[{i}]")
            out_list.append(capped)
            notes += more
        return out_list, notes
    return value, []


def _mark_failed_in_place(path: Path, error: str) -> None:
    """Best effort, when saving failed: mark an earlier run.json `failed` by rewriting it in place,
    only where the new text fits in the blocks it already has (so it needs no space a full disk lacks)."""
    try:
        old = path.read_bytes()
        data = json.loads(old)
        data["status"], data["error"] = "failed", error
        new = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        if len(new) > max(len(old), getattr(path.stat(), "st_blocks", 0) * 512):
            return
        with open(path, "r+b") as f:
            f.write(new)
            f.truncate(len(new))
    except (OSError, ValueError):
        pass
