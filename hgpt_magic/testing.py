"""Stand-ins and probes for teaching, tests and benchmarks: a scripted LLM, a recording LLM, timed experts.

`ScriptedLLM` replays given replies (so a notebook can show what a stage does with a known LLM
answer, and tests can feed broken output); `RecordingLLM` wraps a real LLM and keeps what each call was
sent and answered (the notebooks print the planner's messages and its raw reply from it); `TimedExperts`
serves any task with a model that sleeps for a known time, which is how the scheduler benchmark measures
overhead against the critical path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import settings
from .catalog import ModelCard
from .experts.base import ExpertBackend, ExpertContext, ExpertError
from .llm import LLM, LLMReply, streams
from .registry import Registry, default_registry
from .secrets import SECRET_ENV_VARS
from .types import Artifact

#: The environment variables that can move a run off the offline default: tokens and keys, and every
#: `HGPT_*` setting (`settings.SETTINGS`). Tests of the default clear them. `HGPT_CACHE` is kept: it only
#: says where the already assembled embedded model lives, and clearing it would assemble it again.
SETTINGS_ENV_VARS = tuple(dict.fromkeys(
    [*SECRET_ENV_VARS, *(s.name for s in settings.SETTINGS if s is not settings.CACHE)]
))

Reply = str | Callable[[list[dict[str, str]], dict[str, Any] | None], str]


class StreamBroken(RuntimeError):
    """Raised by `ScriptedLLM` part-way through a streamed reply (`fail_stream_after`), like a dropped connection."""


class ScriptedLLM:
    """An LLM that answers with the given replies in order (a callable reply sees messages and schema).

    It streams like a real backend: given `on_text`, the reply is handed over in pieces of `piece_chars`
    characters; with `fail_stream_after=N` it raises `StreamBroken` after N pieces of a streamed reply.
    """

    def __init__(
        self,
        replies: Iterable[Reply],
        *,
        name: str = "scripted",
        supports_schema: bool = True,
        piece_chars: int = 8,
        fail_stream_after: int | None = None,
    ):
        self.replies = list(replies)
        self.name = name
        self.supports_schema = supports_schema
        self.piece_chars = max(1, piece_chars)
        self.fail_stream_after = fail_stream_after
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0, on_text=None) -> LLMReply:
        with self._lock:
            self.requests.append({"messages": messages, "schema": schema})
            if not self.replies:
                raise RuntimeError("ScriptedLLM has no reply left")
            reply = self.replies.pop(0)
        text = reply(messages, schema) if callable(reply) else reply
        if on_text is not None:
            for n, start in enumerate(range(0, len(text), self.piece_chars)):
                if self.fail_stream_after is not None and n >= self.fail_stream_after:
                    raise StreamBroken(f"the stream broke after {n} pieces")
                on_text(text[start:start + self.piece_chars])
        prompt_chars = sum(len(m["content"]) for m in messages)
        return LLMReply(text=text, prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4)


class RecordingLLM:
    """Any LLM, with a record of each call: `exchanges[i]` is `{"messages", "schema", "reply"}` in call order.

    The pipeline's `LLMCall` records keep stages, tokens and seconds only (a run.json stays small); a
    teacher who wants to show what the LLM was sent and what it wrote back wraps the LLM in this. Other
    attributes (the embedded model's `warm_prefix`, `serve`, `model`) are the wrapped LLM's.
    """

    def __init__(self, llm: LLM):
        self.llm = llm
        self.exchanges: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return self.llm.name

    @property
    def supports_schema(self) -> bool:
        return self.llm.supports_schema

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0, on_text=None) -> LLMReply:
        kwargs = {"schema": schema, "max_tokens": max_tokens, "temperature": temperature}
        if on_text is not None and streams(self.llm):
            reply = self.llm.chat(messages, on_text=on_text, **kwargs)
        else:
            reply = self.llm.chat(messages, **kwargs)
            if on_text is not None and reply.text:
                on_text(reply.text)
        self.exchanges.append({"messages": list(messages), "schema": schema, "reply": reply.text})
        return reply

    def __getattr__(self, name: str) -> Any:
        if name == "llm":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.llm, name)


class TimedExperts(ExpertBackend):
    """Serves every task with models named `sleep-<seconds>` (or `fail`, or `model-gone`).

    `sleep-0.2` sleeps 0.2 s then returns a text artifact naming its inputs; `fail` raises an
    `ExpertError`; `model-gone` raises a model-level error (the executor tries the next candidate).
    """

    name = "timed"
    offline = True

    def __init__(self, tasks: Iterable[str], models: Iterable[str] = ("sleep-0",), registry: Registry | None = None):
        self.registry = registry or default_registry()
        self.tasks = list(tasks)
        self.models = list(models)
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def cards(self) -> list[ModelCard]:
        return [
            ModelCard(id=m, task=t, downloads=1000 - i, backend=self.name)
            for t in self.tasks
            for i, m in enumerate(self.models)
        ]

    def can_serve(self, task: str, model: str) -> bool:
        return task in self.tasks and (model in ("fail", "model-gone") or model.startswith("sleep-"))

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        self.calls.append((task, model, dict(inputs)))
        if model == "fail":
            raise ExpertError(f"{task} failed on purpose")
        if model == "model-gone":
            raise ExpertError("model not found (404)", model_level=True)
        ctx.cancel.wait(float(model.split("-", 1)[1]))
        text = f"{task}({', '.join(f'{k}={v}' for k, v in sorted(inputs.items()))})"
        outputs = self.registry[task].outputs if task in self.registry else ("text",)
        artifacts = []
        for kind in outputs:
            if kind == "text":
                artifacts.append(Artifact(kind="text", text=text))
            else:  # a small file standing for the media output
                path = ctx.new_path(f".{kind}.txt")
                path.write_text(text)
                artifacts.append(Artifact(kind=kind, path=str(path), text=f"{kind} made by {text}"))
        return artifacts

