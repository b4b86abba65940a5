"""Tokens: where they come from and how they are kept out of every output.

A token is read only when a backend is built and held in a `Secret`, whose `str` and `repr` are masked,
so printing a backend, its `vars()` or a config never shows it. Any text that might echo a token (an
exception from a client library, a server's error body, a URL with credentials) goes through
`mask_secrets` before it is shown, logged or saved.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

#: Environment variables that may hold secrets.
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "HGPT_API_KEY")

#: Token shapes masked wherever text is shown or saved. The provider shapes follow the detectors of
#: Yelp's detect-secrets (https://github.com/Yelp/detect-secrets, Apache-2.0, `detect_secrets/plugins/`:
#: aws, github_token, slack, jwt, private_key, stripe, sendgrid, gitlab_token, pypi_token, npm),
#: written out here rather than depended on: that package brings PyYAML and requests for its scanner,
#: and only its patterns are wanted. A pattern with a group keeps that group (a label) and masks the rest.
_TOKEN_PATTERNS = [
    re.compile(r"hf_[A-Za-z0-9]{8,}"),  # Hugging Face
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),  # OpenAI (sk-, sk-proj-, ...)
    re.compile(r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{20,}"),  # GitHub classic, OAuth, app tokens
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),  # GitHub fine-grained tokens
    re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"),  # GitLab
    re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"(?i)(aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\"'=:\s])[0-9a-zA-Z/+]{40}"),  # AWS secret
    re.compile(r"(?i)xox[abposr]-(?:[0-9]+-)*[a-z0-9\-]{6,}"),  # Slack tokens
    re.compile(r"(?i)https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"),  # Slack webhook
    re.compile(r"(?:r|s)k_live_[0-9a-zA-Z]{24,}"),  # Stripe
    re.compile(r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),  # SendGrid
    re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),  # PyPI upload tokens
    re.compile(r"npm_[A-Za-z0-9]{36}"),  # npm
    re.compile(r"AIza[0-9A-Za-z_\-]{35}"),  # Google API keys
    re.compile(r"-----BEGIN[A-Z ]{0,30} PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[A-Z ]{0,30} PRIVATE KEY(?: BLOCK)?-----|[^\n]*(?:\n[A-Za-z0-9+/=]+)*)",
               re.DOTALL),  # PEM / OpenSSH / PGP private keys, the whole block when its end is there
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|authorization|secret|password)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-~+/=]{12,}"),
    re.compile(r"(://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
]

#: A JSON Web Token: `eyJ` (base64 of '{"') header and payload, and a signature (detect-secrets' jwt).
#: Masked only when its first two parts really decode to JSON, so ordinary words starting eyJ stay.
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-=]+\.[A-Za-z0-9_\-=]+\.?[A-Za-z0-9_\-.+/=]*")


def _is_jwt(token: str) -> bool:
    import base64
    import json

    parts = token.split(".")
    try:
        for part in parts[:2]:
            data = part.rstrip("=")
            json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return len(parts) >= 2


#: Secrets registered by backends at run time (tokens read from a file or passed as arguments).
_REGISTERED: set[str] = set()


class Secret:
    """A token that never shows itself: `str`/`repr` are masked; `.reveal()` is the one way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        register_secret(value)
        install_log_masking()

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would write the token to disk
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:  # immutable: copies (deepcopy of a backend, say) share it
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self


def register_secret(value: str | None) -> None:
    """Have `mask_secrets` hide `value` from now on (tokens that do not come from the environment).

    Values shorter than 8 characters are not registered: masking them would garble ordinary text."""
    if value and len(value) >= 8:
        _REGISTERED.add(value)


def known_secrets() -> list[str]:
    """The secret values present in the environment now, and the ones registered by backends."""
    found = {v for k in SECRET_ENV_VARS if (v := os.environ.get(k)) and len(v) >= 4}
    return sorted(found | _REGISTERED, key=len, reverse=True)  # longest first: no partial replacements


def mask(value: str | Secret | None) -> str:
    """`hf_abcd…` → `hf_a…(masked)`: enough to recognise which token, never enough to use it."""
    if isinstance(value, Secret):
        value = value.reveal()
    if not value:
        return "(not set)"
    return value[:4] + "…(masked)"


def mask_secrets(text: Any, *extra: str | Secret | None) -> str:
    """Replace every known secret and anything shaped like a token in `text`."""
    text = str(text)
    extras = [e.reveal() if isinstance(e, Secret) else e for e in extra]
    for secret in [*known_secrets(), *(e for e in extras if e and len(e) >= 4)]:
        text = text.replace(secret, "***")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    if "eyJ" in text:
        text = _JWT.sub(lambda m: "***" if _is_jwt(m.group(0)) else m.group(0), text)
    return text


def hf_token() -> str | None:
    """HF_TOKEN, else the token saved by `hf auth login` (huggingface_hub knows where)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return None


def hf_token_source() -> str | None:
    """Where the Hugging Face token comes from ("HF_TOKEN", "huggingface_hub login"), or None."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var):
            return var
    return "huggingface_hub login" if hf_token() else None


def _mask_record(record: logging.LogRecord) -> None:
    """Mask a record's message and traceback in place (the traceback is rendered now, masked)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error path
        return
    masked = mask_secrets(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        rendered = logging.Formatter().formatException(record.exc_info)
        masked = mask_secrets(rendered)
        if masked != rendered:  # handlers print exc_text; nothing unmasked is left to render
            record.exc_text, record.exc_info = masked, None


class MaskingFilter(logging.Filter):
    """A handler filter that masks secrets in every record it lets through (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


_factory_lock = threading.Lock()
_installed = False


def install_log_masking() -> None:
    """Mask secrets in every log record of the process, whichever library logs it.

    Done with a record factory because filters on a logger miss records from its child loggers, and
    the clients we drive (httpx, httpcore, huggingface_hub) log from many. A server that echoes the
    Authorization header in its error makes httpcore's DEBUG trace print it otherwise. Records are only
    made for enabled levels, so this costs nothing when logging is quiet. Idempotent; chains the
    factory that was there.
    """
    global _installed
    with _factory_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if known_secrets():
                _mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
