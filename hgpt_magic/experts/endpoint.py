"""Self-hosted or dedicated endpoints as experts: a task (and optionally a model) mapped to a URL.

Any server that speaks the Inference API's task protocol works: Inference Endpoints, TGI, a
`transformers` server of your own. The mapping lives in a small file (TOML or JSON; `$HGPT_ENDPOINTS`,
else `endpoints.toml` / `endpoints.json` in the user config folder; `experts="endpoint:PATH"` names another):

    # endpoints.toml
    [[endpoint]]
    task = "image-classification"
    url = "https://my-vit.endpoints.huggingface.cloud"
    model = "google/vit-base-patch16-224"   # optional: the catalogue model it serves
    token_env = "MY_ENDPOINT_TOKEN"         # optional: env var holding its bearer token

A token is sent only where it belongs: the one named by `token_env`, or the Hugging Face token for
Hugging Face hosts; never the user's HF token to a third-party URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import settings
from ..catalog import ModelCard
from ..resilience import RetryPolicy
from ..secrets import Secret, hf_token, mask, mask_secrets
from .base import ENDPOINT_NAMESPACE, ExpertError
from .hf import TASKS, InferenceClientExperts

#: Domains whose hosts (the domain itself or a true subdomain) get the Hugging Face token when an endpoint
#: names no `token_env`. Matched label by label: `evilhuggingface.co` and `huggingface.co.evil.com` get nothing.
HF_DOMAINS = ("huggingface.co", "huggingface.cloud", "hf.space")


def is_hf_host(host: str) -> bool:
    """Whether `host` is one of `HF_DOMAINS` or a true subdomain of one (an https URL's host, exactly)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in HF_DOMAINS)


class EndpointConfigError(ValueError):
    """The endpoint mapping is malformed; the message says which entry and why."""


@dataclass(frozen=True)
class Endpoint:
    """One mapping: `task` runs at `url`. `model` is the catalogue id it serves (else it gets its own card)."""

    task: str
    url: str
    model: str | None = None
    name: str | None = None
    token_env: str | None = None
    description: str = ""

    @property
    def model_id(self) -> str:
        """The id plans and runs show: the served model, else `endpoint/NAME`."""
        return self.model or f"{ENDPOINT_NAMESPACE}{self.name or _host(self.url)}"

    def safe_url(self) -> str:
        """The URL without credentials or query (what is shown to people)."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v not in (None, "")}
        data["url"] = self.safe_url()
        return data


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else url


def default_config_path() -> Path:
    """`$HGPT_ENDPOINTS`, else `endpoints.toml` (or `.json`) in the user config folder."""
    if settings.ENDPOINTS.is_set():
        return settings.ENDPOINTS.path()
    from platformdirs import user_config_dir

    folder = Path(user_config_dir("hgpt-magic"))
    json_path = folder / "endpoints.json"
    return json_path if json_path.exists() and not (folder / "endpoints.toml").exists() else folder / "endpoints.toml"


def parse_endpoints(data: Any) -> list[Endpoint]:
    """Endpoints from any of the accepted shapes.

    `{"endpoint": [...]}` or `{"endpoints": [...]}` or a list of `{task, url, model?, name?, token_env?}`;
    or the compact mapping `{"TASK": URL}`, `{"TASK": {"url": ..., ...}}`, `{"TASK:MODEL": URL}`.
    """
    if isinstance(data, Mapping) and any(k in data for k in ("endpoint", "endpoints")):
        data = data.get("endpoint", data.get("endpoints"))
    entries: list[dict[str, Any]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            task, _, model = str(key).partition(":")
            entry = {"url": value} if isinstance(value, str) else dict(value) if isinstance(value, Mapping) else None
            if entry is None:
                raise EndpointConfigError(f"endpoint {key!r}: expected a URL or a table, got {type(value).__name__}")
            entry.setdefault("task", task)
            if model:
                entry.setdefault("model", model)
            entries.append(entry)
    elif isinstance(data, list | tuple):
        entries = [dict(e) if isinstance(e, Mapping) else {"_bad": e} for e in data]
    elif data is not None:
        raise EndpointConfigError(f"endpoints: expected a table or a list, got {type(data).__name__}")
    endpoints = []
    fields = set(Endpoint.__dataclass_fields__)
    for n, entry in enumerate(entries):
        label = entry.get("name") or entry.get("task") or f"#{n + 1}"
        unknown = set(entry) - fields
        if unknown:
            raise EndpointConfigError(f"endpoint {label!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(fields)}")
        if not entry.get("task") or not entry.get("url"):
            raise EndpointConfigError(f"endpoint {label!r}: needs both 'task' and 'url'")
        if not str(entry["url"]).startswith(("http://", "https://")):
            raise EndpointConfigError(f"endpoint {label!r}: url must start with http:// or https://")
        if entry["task"] not in TASKS:
            raise EndpointConfigError(f"endpoint {label!r}: task {entry['task']!r} has no endpoint protocol; one of {sorted(TASKS)}")
        endpoints.append(Endpoint(**{k: str(v) for k, v in entry.items()}))
    return endpoints


def load_endpoints(path: str | Path | None = None) -> list[Endpoint]:
    """The endpoints in a TOML or JSON file; none when the default file does not exist."""
    explicit = path is not None or settings.ENDPOINTS.is_set()
    path = Path(path).expanduser() if path is not None else default_config_path()
    if not path.exists():
        if explicit:
            raise EndpointConfigError(f"endpoint config {path} does not exist")
        return []
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ModuleNotFoundError as exc:  # Python 3.10
                raise EndpointConfigError(f"{path}: TOML needs Python 3.11+; write the same as JSON") from exc
            data = tomllib.loads(text)
    except (ValueError, TypeError) as exc:
        raise EndpointConfigError(f"{path}: {exc}") from None
    try:
        return parse_endpoints(data)
    except EndpointConfigError as exc:
        raise EndpointConfigError(f"{path}: {exc}") from None


class EndpointExperts(InferenceClientExperts):
    """Experts at configured URLs (spec `endpoint`, or `endpoint:/path/endpoints.toml`).

    `can_serve` is exact: only the configured (task, model id) pairs. One endpoint's connection failure or
    refused token falls back to the next candidate, since each has its own host and credentials.
    """

    name = "endpoint"
    per_model_hosts = True
    auth_hint = "Check the endpoint's token (`token_env` in the endpoint config)."

    def __init__(
        self,
        endpoints: Iterable[Endpoint] | Mapping[str, Any] | None = None,
        *,
        policy: RetryPolicy | None = None,
        max_concurrency: int | None = None,
    ):
        super().__init__(policy=policy, max_concurrency=max_concurrency)
        if endpoints is None:
            endpoints = []
        elif isinstance(endpoints, Mapping):
            endpoints = parse_endpoints(endpoints)
        self.endpoints: list[Endpoint] = list(endpoints)
        self._by_key = {(e.task, e.model_id): e for e in self.endpoints}
        self._tokens: dict[str, Secret] = {}
        for endpoint in self.endpoints:
            token = self._token_for(endpoint)
            if token:
                self._tokens[endpoint.url] = Secret(token)

    @staticmethod
    def _token_for(endpoint: Endpoint) -> str | None:
        if endpoint.token_env:
            return os.environ.get(endpoint.token_env) or None
        parts = urlsplit(endpoint.url)
        # https only: the token must not cross the network in clear, nor go to a user:pass@ look-alike
        if parts.scheme != "https" or parts.username or parts.password:
            return None
        return hf_token() if is_hf_host(parts.hostname or "") else None

    def cards(self) -> list[ModelCard]:
        return [
            ModelCard(
                id=e.model_id,
                task=e.task,
                description=e.description or f"Your endpoint at {e.safe_url()}",
                backend=self.name,
            )
            for e in self.endpoints
        ]

    def can_serve(self, task: str, model: str) -> bool:
        return (task, model) in self._by_key

    def _target(self, task: str, model: str) -> tuple[dict[str, Any], str]:
        endpoint = self._by_key.get((task, model))
        if endpoint is None:
            raise ExpertError(f"endpoint: no endpoint configured for {task} with {model}", model_level=True)
        token = self._tokens.get(endpoint.url)
        if endpoint.token_env and token is None:
            raise ExpertError(f"endpoint {endpoint.model_id}: ${endpoint.token_env} is not set")
        kwargs: dict[str, Any] = {"provider": "hf-inference"}
        if token is not None:
            kwargs["token"] = token.reveal()
        else:
            # huggingface_hub would otherwise add the user's HF token: a None header is dropped instead
            kwargs["headers"] = {"authorization": None}
        return kwargs, endpoint.url

    def _secrets(self) -> list[Secret | str | None]:
        return list(self._tokens.values())

    def _credentials_key(self, task: str, model: str) -> str | None:
        endpoint = self._by_key.get((task, model))
        return endpoint.url if endpoint else None

    def describe(self) -> str:
        if not self.endpoints:
            return f"endpoint: none configured (write {default_config_path()})"
        lines = [f"endpoint: {len(self.endpoints)} configured"]
        for e in self.endpoints:
            token = f", token {mask(self._tokens.get(e.url))}" if e.url in self._tokens else ""
            lines.append(f"  {e.task} → {e.safe_url()} as {e.model_id}{token}")
        return mask_secrets("\n".join(lines), *self._tokens.values())

    def __repr__(self) -> str:
        return f"EndpointExperts({[e.model_id for e in self.endpoints]!r})"


__all__ = ["Endpoint", "EndpointConfigError", "EndpointExperts", "default_config_path", "load_endpoints", "parse_endpoints"]
