"""What every controller LLM is: one small interface (`LLM`), its reply and error, and a recorded call.

Backends (`openai_compat.OpenAICompatibleLLM`, `local.LocalLLM`) import this module; nothing here imports
them, so the package has no import cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..secrets import mask_secrets
from ..types import LLMCall


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
    ) -> LLMReply: ...


def call_llm(
    llm: LLM,
    messages: list[dict[str, str]],
    *,
    stage: str,
    calls: list[LLMCall] | None = None,
    **kwargs: Any,
) -> LLMReply:
    """`llm.chat(...)`, recording the call (stage, tokens, seconds, error) in `calls` when given."""
    start = time.perf_counter()
    try:
        reply = llm.chat(messages, **kwargs)
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
