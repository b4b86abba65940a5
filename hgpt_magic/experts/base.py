"""The expert-backend interface: which (task, model) pairs a backend serves, and running one.

A backend is small on purpose: `cards()` lists the models it brings itself (local ones; hub models
come from the catalogue), `can_serve(task, model)` answers for any model, `run(...)` turns resolved
inputs into artifacts written under the run directory, and `describe()` says what it is (tokens masked).

The contract with the executor: `run` reads its inputs by the registry's slot names (no other
spelling: plans only produce those) and fails with an `ExpertError`, whose `model_level` says whether
the next candidate model may be tried and whose `fatal` says that nothing else in the run can work
(a refused token). Model ids outside the Hub live in the namespaces below, named here once.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..types import Artifact

if TYPE_CHECKING:
    from ..catalog import ModelCard
    from ..llm import LLM


#: Model ids of the offline models that ship with the package (`experts.local`).
LOCAL_NAMESPACE = "local/"
#: Model ids of endpoints configured without a model id (`experts.endpoint`).
ENDPOINT_NAMESPACE = "endpoint/"
#: The controller LLM serving text tasks itself (`experts.llm_tasks`).
CONTROLLER_LLM_ID = "controller-llm"
#: Prefixes of model ids that are not Hugging Face Hub repositories.
NOT_HUB_PREFIXES = (LOCAL_NAMESPACE, ENDPOINT_NAMESPACE, "http://", "https://", CONTROLLER_LLM_ID)


class ExpertError(RuntimeError):
    """A model failed on its input. `model_level` errors (model gone, unsupported) let the
    executor fall back to the next candidate; others fail the task. `fatal` errors (a refused token)
    stop the whole run: no other task with these credentials can work."""

    fatal: bool = False

    def __init__(self, message: str, *, model_level: bool = False):
        super().__init__(message)
        self.model_level = model_level


@dataclass
class ExpertContext:
    """What a running expert may use besides its inputs: where to write, the controller LLM, the request.

    `languages`: for a text input that is another task's output, the language that task recorded (a
    transcript's, say), by slot name: a voice can then speak it without guessing from the text.
    """

    run_dir: Path
    task_id: int
    task: str
    llm: LLM | None = None
    request: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    languages: dict[str, str] = field(default_factory=dict)

    def new_path(self, suffix: str) -> Path:
        """A fresh file name in the run directory, unique even across concurrent tasks and runs."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        safe_task = self.task.replace("/", "_").replace(" ", "_")
        return self.run_dir / f"task{self.task_id}-{safe_task}-{uuid.uuid4().hex[:12]}{suffix}"


class ExpertBackend(ABC):
    """One way of running expert models (local, Hugging Face, an endpoint, the LLM itself)."""

    name: str = "backend"
    #: True when the backend needs no network and no key.
    offline: bool = False

    def cards(self) -> list[ModelCard]:
        """Models this backend brings itself (catalogue models need not be listed here)."""
        return []

    @abstractmethod
    def can_serve(self, task: str, model: str) -> bool:
        """Whether `run(task, model, ...)` can work here."""

    @abstractmethod
    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        """Run `model` on `inputs` (slot name → text, or a file path for media slots)."""

    def describe(self) -> str:
        """One line saying what this backend is, for `%hugginggpt config` (never a token)."""
        return f"{self.name}{' (offline)' if self.offline else ''}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
