"""What every controller LLM is: one small interface (`LLM`), its reply and error, and a recorded call.

Backends (`openai_compat.OpenAICompatibleLLM`, `local.LocalLLM`) import this module; nothing here imports
them, so the package has no import cycle.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..secrets import mask_secrets
from ..types import LLMCall

#: Receives each piece of the reply's text as the model writes it (a streamed answer).
OnText = Callable[[str], None]


class LLMError(RuntimeError):
    """The LLM could not be reached or refused the request; the message never holds a token."""


@dataclass
class LLMReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@runtime_checkable
class LLM(Protocol):
    """What the pipeline needs from a controller LLM."""

    name: str
    supports_schema: bool

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> LLMReply:
        """One completion. A backend that can stream also takes `on_text` (see `streams`): it is called
        with each new piece of text as it is written, and the reply still holds the whole text."""
        ...


def streams(llm: LLM) -> bool:
    """Whether `llm.chat` takes `on_text` (streams its reply); backends written before streaming do not."""
    try:
        parameters = inspect.signature(llm.chat).parameters
    except (TypeError, ValueError):
        return False
    return "on_text" in parameters


def call_llm(
    llm: LLM,
    messages: list[dict[str, str]],
    *,
    stage: str,
    calls: list[LLMCall] | None = None,
    on_text: OnText | None = None,
    **kwargs: Any,
) -> LLMReply:
    """`llm.chat(...)`, recording the call (stage, tokens, seconds, error) in `calls` when given.

    `on_text` gets the reply piece by piece when the backend streams, else the whole text at once.
    """
    start = time.perf_counter()
    try:
        if on_text is not None and streams(llm):
            reply = llm.chat(messages, on_text=on_text, **kwargs)
        else:
            reply = llm.chat(messages, **kwargs)
            if on_text is not None and reply.text:
                on_text(reply.text)
    except Exception as exc:
        if calls is not None:
            calls.append(LLMCall(stage, seconds=time.perf_counter() - start, error=mask_secrets(str(exc))))
        raise
    if calls is not None:
        calls.append(LLMCall(stage, reply.prompt_tokens, reply.completion_tokens, reply.seconds))
    return reply


def response_format(schema: dict[str, Any], name: str = "output") -> dict[str, Any]:
    """OpenAI's structured-output request for `schema` (understood by xllamacpp, vLLM and OpenAI)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
