"""Expert backends and `make_experts(spec)`, which turns a spec string into a list of them.

Specs (comma-separated, first preferred):

- `auto` (the default): local offline models, the controller LLM for text tasks, cached `transformers`
  models (when the extra is installed), configured endpoints, then Hugging Face Inference Providers
  when a token is present. Per task, the first backend that serves a model wins.
- `local`: the local offline models and the controller LLM; `llm`: the controller LLM only.
- `hf` or `hf:PROVIDER` (e.g. `hf:hf-inference`, `hf:fal-ai`): Inference Providers, token from HF_TOKEN
  or `hf auth login`.
- `endpoint` or `endpoint:PATH`: your endpoints from `$HGPT_ENDPOINTS` / the user config file, or PATH.
- `transformers`: pipelines for models in the local Hugging Face cache (extra `[transformers]`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import ExpertBackend, ExpertContext, ExpertError
from .llm_tasks import LLMExperts

SPECS = ("auto", "local", "llm", "hf", "hf:PROVIDER", "endpoint", "endpoint:PATH", "transformers")


class ExpertSpecError(ValueError):
    """An experts spec names no known backend, or one that cannot work here (no token, no package)."""


def _hf(provider: str | None, *, required: bool) -> list[ExpertBackend]:
    from .hf import HFExperts

    backend = HFExperts(provider)
    if not backend.has_token:
        if required:
            raise ExpertSpecError("the experts spec 'hf' needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
        return []
    if provider:
        try:
            from huggingface_hub.inference._providers import PROVIDERS
        except ImportError:  # a layout we do not know: let the client judge at run time
            PROVIDERS = None
        if PROVIDERS is not None and provider not in PROVIDERS and provider != "auto":
            raise ExpertSpecError(f"unknown Inference Provider {provider!r}; known: auto, {', '.join(sorted(PROVIDERS))}")
    return [backend]


def _endpoint(path: str | None, *, required: bool, mapping: Mapping[str, Any] | None = None) -> list[ExpertBackend]:
    from .endpoint import EndpointConfigError, EndpointExperts, load_endpoints, parse_endpoints

    try:
        endpoints = parse_endpoints(mapping) if mapping is not None and not path else load_endpoints(path or None)
    except EndpointConfigError as exc:  # bad JSON/TOML, a missing field: a setting to fix, one line
        raise ExpertSpecError(f"endpoint configuration: {exc}") from None
    if not endpoints and not required:
        return []
    return [EndpointExperts(endpoints)]


def _transformers(*, required: bool) -> list[ExpertBackend]:
    from .transformers_backend import TransformersExperts, available

    if not available():
        if required:
            raise ExpertSpecError("the experts spec 'transformers' needs: pip install 'hgpt-magic[transformers]'")
        return []
    return [TransformersExperts()]


def make_experts(
    spec: str | ExpertBackend | Sequence[ExpertBackend] | None = "auto",
    *,
    endpoints: Mapping[str, Any] | None = None,
) -> list[ExpertBackend]:
    """Backends in preference order for a spec like `auto`, `local,hf` or `hf:hf-inference,endpoint`.

    `endpoints`: an endpoint mapping (as `%config` gives it, see `endpoint.parse_endpoints`) used
    instead of the endpoint config file by `auto` and `endpoint`.
    """
    if spec is None:
        spec = "auto"
    if isinstance(spec, ExpertBackend):
        return [spec]
    if not isinstance(spec, str):
        return list(spec)
    backends: list[ExpertBackend] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        kind, _, arg = part.partition(":")
        if kind in ("auto", "local") and not arg:
            from .local import LocalExperts

            backends += [LocalExperts(), LLMExperts()]
            if kind == "auto":
                backends += _transformers(required=False)
                backends += _endpoint(None, required=False, mapping=endpoints)
                backends += _hf(None, required=False)
        elif part == "llm":
            backends.append(LLMExperts())
        elif kind == "hf":
            backends += _hf(arg or None, required=True)
        elif kind == "endpoint":
            backends += _endpoint(arg or None, required=True, mapping=endpoints)
        elif part == "transformers":
            backends += _transformers(required=True)
        else:
            raise ExpertSpecError(f"unknown experts spec {part!r}: use one of {', '.join(SPECS)}")
    unique: dict[str, ExpertBackend] = {}
    for backend in backends:
        unique.setdefault(backend.name, backend)
    return list(unique.values())


def describe_experts(backends: Sequence[ExpertBackend]) -> list[str]:
    """One line (or a few) per backend, tokens masked: for `%hugginggpt config` and `hugginggpt --plan-only`."""
    lines = []
    for backend in backends:
        lines.append(backend.describe())
    return lines


__all__ = [
    "ExpertBackend",
    "ExpertContext",
    "ExpertError",
    "ExpertSpecError",
    "LLMExperts",
    "SPECS",
    "describe_experts",
    "make_experts",
]
