"""The LLM that controls the pipeline: one small interface, one module per kind of backend.

- `base`: the `LLM` protocol every backend answers (`chat(messages, schema=..., max_tokens=...) -> LLMReply`),
  `LLMError`, and `call_llm`, which records each call;
- `openai_compat`: any OpenAI-compatible server (OpenAI, Hugging Face's router, vLLM, Ollama, llama.cpp);
- `local`: the embedded model, run in-process;
- `shared_server`: the embedded model in one server process that all kernels share (`HGPT_SHARED_SERVER=1`);
- `threads`: when the embedded model computes with all its threads, and when with one (a busy machine).

`make_llm(spec)` turns a spec string into a backend. Backends are imported when one is made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .. import settings
from .base import LLM, LLMError, LLMReply, OnText, call_llm, response_format, streams
from .openai_compat import HF_ROUTER_URL, OpenAICompatibleLLM


def default_llm_spec() -> str:
    """The explicit setting `HGPT_LLM`, else the embedded model (`HGPT_GGUF` picks another GGUF)."""
    return settings.LLM.text()


Prefix = Callable[[], list[dict[str, str]]]


def make_llm(
    spec: str | LLM | None = None,
    *,
    prefix: Prefix | None = None,
    on_prefix_compute: Callable[[], None] | None = None,
) -> LLM:
    """Turn a spec string into an LLM backend.

    - `local`: the embedded model (extra `[local]`); `gguf:/path/model.gguf`: any GGUF on the same runtime
    - `openai:MODEL`: OpenAI, key from OPENAI_API_KEY (OPENAI_BASE_URL respected)
    - `hf:MODEL`: Hugging Face's OpenAI-compatible router, token from HF_TOKEN
    - `http(s)://HOST[:PORT]/v1#MODEL`: any OpenAI-compatible server (key from HGPT_API_KEY if set)

    `prefix`: the static prompt prefix (chat messages, asked for only when needed) that the embedded model
    will keep ready (a shared model server this call starts readies it before it serves); the layer that writes
    the prompts (the pipeline) gives it. `on_prefix_compute` is called, before the model loads, when that prefix
    is saved nowhere yet and so will be computed once (about a minute on 2 cores): the caller says so at once.
    """
    if spec is None:
        spec = default_llm_spec()
    if not isinstance(spec, str):
        return spec
    spec = spec.strip()
    if spec == "local" or spec.startswith("gguf:"):
        return _local_llm(spec[len("gguf:") :] if spec.startswith("gguf:") else None, prefix, on_prefix_compute)
    if spec.startswith("openai:"):
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise LLMError("the LLM spec 'openai:...' needs OPENAI_API_KEY in the environment")
        return OpenAICompatibleLLM(
            spec.split(":", 1)[1], api_key=key, base_url=os.environ.get("OPENAI_BASE_URL"), name=spec
        )
    if spec.startswith("hf:"):
        from ..secrets import hf_token

        token = hf_token()
        if not token:
            raise LLMError("the LLM spec 'hf:...' needs HF_TOKEN (or `hf auth login`)")
        return OpenAICompatibleLLM(spec.split(":", 1)[1], base_url=HF_ROUTER_URL, api_key=token, name=spec)
    if spec.startswith(("http://", "https://")):
        base_url, _, model = spec.partition("#")
        if not model:
            raise LLMError(f"LLM spec {spec!r} names no model: write URL#MODEL, e.g. http://127.0.0.1:8080/v1#qwen")
        return OpenAICompatibleLLM(model, base_url=base_url, api_key=settings.API_KEY.text() or None, name=spec)
    raise LLMError(
        f"unknown LLM spec {spec!r}: use local, gguf:/path/model.gguf, openai:MODEL, hf:MODEL or http(s)://HOST/v1#MODEL"
    )


def _local_llm(
    path: str | None, prefix: Prefix | None = None, on_prefix_compute: Callable[[], None] | None = None
) -> LLM:
    """The embedded model: through the server all kernels share when `HGPT_SHARED_SERVER=1` and one can be
    found or started, else (the default, or when sharing fails, with a warning saying why) loaded in-process."""
    from .local import ensure_gguf, get_local_llm, is_loaded, prefix_to_compute

    if on_prefix_compute is not None:  # said once, also when a shared server fails and the model loads here
        on_prefix_compute = _once(on_prefix_compute)

    if settings.SHARED_SERVER.text().strip().lower() in ("1", "true", "yes", "on"):
        import warnings

        from .shared_server import SharedServerError, SharedServerLLM

        try:
            return SharedServerLLM(Path(path).expanduser().resolve() if path else ensure_gguf(), prefix=prefix,
                                   on_prefix_compute=on_prefix_compute)
        except (SharedServerError, OSError) as exc:
            warnings.warn(f"hgpt-magic: no shared model server ({exc}); loading the model in this process", stacklevel=2)
    if prefix is not None and on_prefix_compute is not None and not is_loaded(path):
        model = Path(path).expanduser().resolve() if path else ensure_gguf()
        if prefix_to_compute(model, prefix()):
            on_prefix_compute()
    return get_local_llm(path)


def _once(callback: Callable[[], None]) -> Callable[[], None]:
    """`callback`, called at most once however often the result is."""
    called: list[bool] = []

    def call() -> None:
        if not called:
            called.append(True)
            callback()

    return call


__all__ = [
    "HF_ROUTER_URL",
    "LLM",
    "LLMError",
    "LLMReply",
    "OnText",
    "OpenAICompatibleLLM",
    "call_llm",
    "default_llm_spec",
    "make_llm",
    "response_format",
    "streams",
]
