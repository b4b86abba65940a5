"""Any server speaking OpenAI's chat-completions protocol: OpenAI, Hugging Face's router, vLLM, Ollama,
llama.cpp, LM Studio. The `openai` SDK is imported when a client is made, so importing this stays cheap.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .. import settings
from ..secrets import mask_secrets
from .base import LLMError, LLMReply, OnText, response_format

#: Hugging Face's OpenAI-compatible router (chat completions over Inference Providers).
HF_ROUTER_URL = "https://router.huggingface.co/v1"


class OpenAICompatibleLLM:
    """Any server speaking OpenAI's chat-completions protocol, through the `openai` SDK.

    `supports_schema` says whether to send `response_format=json_schema`; when the server rejects
    it (HTTP 400/422), the call is retried once without it and the planner's tolerant parser takes over.

    Resilience is the SDK's own, configured rather than duplicated: a timeout per request
    (`timeout`, `$HGPT_LLM_TIMEOUT`, default 120 s) and `max_retries` (`$HGPT_LLM_RETRIES`, default 3)
    with exponential backoff on connection errors, 408, 409, 429 and 5xx, honouring `Retry-After`.
    Failures become an `LLMError` that says what to do, never holding the key.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        supports_schema: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
    ):
        from openai import OpenAI  # imported here: `import hgpt_magic` stays cheap

        from ..secrets import Secret

        self.model = model
        self.base_url = base_url
        self.name = mask_secrets(name or (f"{base_url}#{model}" if base_url else f"openai:{model}"), api_key)
        self.supports_schema = supports_schema
        self.timeout = float(timeout if timeout is not None else settings.LLM_TIMEOUT.number())
        self.max_retries = int(max_retries if max_retries is not None else settings.LLM_RETRIES.number())
        self._secret = Secret(api_key) if api_key else None
        self._client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=self.timeout, max_retries=self.max_retries
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(name={self.name!r}, api_key={'***' if self._secret else None})"

    def _error(self, exc: Exception) -> LLMError:
        """A one-line `LLMError` saying what went wrong and what to do, the key masked."""
        import openai

        where = self.name
        if isinstance(exc, openai.APITimeoutError):
            text = f"{where}: no answer within {self.timeout:g} s (after {self.max_retries} retries)"
        elif isinstance(exc, openai.APIConnectionError):
            text = f"{where}: cannot connect to {self.base_url or 'the API'} (after {self.max_retries} retries)"
        elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            hint = (
                "the token needs the 'Make calls to Inference Providers' permission"
                if self.base_url == HF_ROUTER_URL
                else "check the API key"
            )
            text = f"{where}: the server refused the API key (HTTP {exc.status_code}); {hint}"
        elif isinstance(exc, openai.NotFoundError):
            text = f"{where}: the server does not know the model {self.model!r} (HTTP 404)"
        elif isinstance(exc, openai.RateLimitError):
            text = f"{where}: rate limited (HTTP 429) after {self.max_retries} retries; try again later"
        elif isinstance(exc, openai.APIStatusError):
            body = _what_came_back(getattr(exc.response, "text", "") or "")
            text = f"{where}: HTTP {exc.status_code}" + (f"; it answered {body}" if body else f": {exc.message}")
        else:
            text = f"{where}: {type(exc).__name__}: {exc}"
        return LLMError(mask_secrets(text, self._secret))

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0, on_text: OnText | None = None) -> LLMReply:
        """One completion; with `on_text`, streamed (`stream=True`) and handed over piece by piece."""
        kwargs: dict[str, Any] = dict(
            model=self.model, messages=messages, max_tokens=max_tokens, temperature=temperature
        )
        if schema is not None and self.supports_schema:
            kwargs["response_format"] = response_format(schema)
        if on_text is not None:
            kwargs["stream"] = True
        start = time.perf_counter()
        response = self._create(kwargs)
        if on_text is not None:
            reply = self._read_stream(response, on_text, start)
            if reply is not None:
                return reply
            kwargs.pop("stream")  # a server that ignores `stream` sends a plain body: ask for that instead
            response = self._create(kwargs)
            reply = self._reply(response, start)
            if reply.text:
                on_text(reply.text)
            return reply
        return self._reply(response, start)

    def _reply(self, response: Any, start: float) -> LLMReply:
        if not response.choices:
            raise LLMError(f"{self.name}: the server returned no choice")
        usage = response.usage
        return LLMReply(
            text=response.choices[0].message.content or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            seconds=time.perf_counter() - start,
        )

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """`chat.completions.create`, once more without `response_format` if the server rejects it."""
        import openai

        try:
            try:
                response = self._client.chat.completions.create(**kwargs)
            except (openai.BadRequestError, openai.UnprocessableEntityError):
                if "response_format" not in kwargs:
                    raise
                kwargs.pop("response_format")  # the server does not do structured output
                self.supports_schema = False
                response = self._client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise self._error(exc) from None
        except ValueError as exc:  # a JSON content type with a body that is not JSON
            body = getattr(exc, "doc", None)  # json.JSONDecodeError keeps the text it could not read
            what = _what_came_back(body) if isinstance(body, str) else f"({exc})"
            raise LLMError(mask_secrets(f"{self.name}: the server's answer is not JSON: {what}", self._secret)) from None
        if not kwargs.get("stream") and not hasattr(response, "choices"):  # the SDK hands back a non-JSON body as is
            raise LLMError(mask_secrets(
                f"{self.name}: not an OpenAI-compatible chat server; it answered {_what_came_back(str(response))}",
                self._secret))
        return response

    def _read_stream(self, stream: Any, on_text: OnText, start: float) -> LLMReply | None:
        """The text of a streamed reply, each piece passed to `on_text` as it arrives; None when no event
        came at all (not a stream). The connection is closed whatever happens (a broken consumer must not
        leave the server writing)."""
        import openai

        pieces: list[str] = []
        usage = None
        events = 0
        try:
            for chunk in stream:
                events += 1
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    piece = getattr(choice.delta, "content", None) if choice.delta else None
                    if piece:
                        pieces.append(piece)
                        _hand_over(on_text, piece)
        except _ConsumerFailed as failed:
            raise failed.error from None
        except openai.APIError as exc:
            raise self._error(exc) from None
        except (ValueError, AttributeError) as exc:  # an event that is not a chat chunk
            raise LLMError(mask_secrets(f"{self.name}: a streamed chunk is not a chat completion ({exc})",
                                        self._secret)) from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if not events:
            return None
        return LLMReply(
            text="".join(pieces),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or len(pieces),
            seconds=time.perf_counter() - start,
        )


class _ConsumerFailed(Exception):
    """Carries what `on_text` raised past the handlers meant for the server's own errors."""

    def __init__(self, error: BaseException):
        self.error = error


def _hand_over(on_text: OnText, piece: str) -> None:
    try:
        on_text(piece)
    except Exception as exc:
        raise _ConsumerFailed(exc) from exc


def _what_came_back(body: str, limit: int = 120) -> str:
    """A one-line account of a reply that is not what the protocol promises (an HTML login page, garbage)."""
    if re.search(r"<\s*(!doctype|html|head|body)", body[:2000], re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", body)
        return f"an HTML page ({' '.join(text.split())[:limit] or 'no text'!r})"
    text = " ".join("".join(c if c.isprintable() else " " for c in body[:2000]).split())
    return f"{text[:limit]!r}" if text else "an empty body"
