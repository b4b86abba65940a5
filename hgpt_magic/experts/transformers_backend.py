"""`transformers` pipelines as experts, for models already in the local Hugging Face cache (extra `[transformers]`).

Nothing is downloaded: a model is offered only when its files are in the cache (or it is a local
folder you name), and it loads from that folder. Pipelines load on first use, once, and run on
the GPU when there is one. Selection stays cheap: `can_serve` and `cards()` look at the cache folders
and never import torch or transformers.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..catalog import ModelCard
from ..resilience import Slots
from ..types import Artifact
from .base import NOT_HUB_PREFIXES, ExpertBackend, ExpertContext, ExpertError
from .hf import (
    answer_artifact,
    detection_artifacts,
    entities_artifact,
    field_of,
    labels_artifact,
    save_image,
    save_wave,
    segmentation_artifacts,
    slot,
    text_artifact,
)

#: Registry task → transformers pipeline task, for pipelines every supported version has.
PIPELINE_TASKS = {
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "zero-shot-classification": "zero-shot-classification",
    "image-classification": "image-classification",
    "object-detection": "object-detection",
    "image-segmentation": "image-segmentation",
    "depth-estimation": "depth-estimation",
    "automatic-speech-recognition": "automatic-speech-recognition",
    "audio-classification": "audio-classification",
    "text-to-speech": "text-to-audio",
    "sentence-similarity": "feature-extraction",
    "text-generation": "text-generation",
}
#: Pipelines that transformers 5 removed (image-text-to-text and text-generation replace them there).
V4_PIPELINE_TASKS = {
    "summarization": "summarization",
    "translation": "translation",
    "text2text-generation": "text2text-generation",
    "question-answering": "question-answering",
    "image-to-text": "image-to-text",
    "visual-question-answering": "visual-question-answering",
}


def available() -> bool:
    """Whether the extra is installed (checked without importing torch)."""
    return importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None


def supported_tasks() -> dict[str, str]:
    """Registry task → pipeline task for the installed transformers version."""
    if not available():
        return {}
    try:
        major = int(importlib.metadata.version("transformers").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major = 5
    return {**PIPELINE_TASKS, **(V4_PIPELINE_TASKS if major < 5 else {})}


def auto_device() -> str:
    """`cuda` when a GPU is usable, `mps` on Apple silicon, else `cpu`."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


_PIPELINE_TAG = re.compile(r"^pipeline_tag:\s*['\"]?([\w-]+)", re.MULTILINE)


def cached_snapshot(model: str, cache_dir: str | Path | None = None) -> Path | None:
    """The cached snapshot folder of hub model `model` (its `main` revision), if it holds a config."""
    if Path(model).is_dir():
        return None  # a local folder, not a hub id
    repo = hub_cache_dir(cache_dir) / ("models--" + model.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
    else:
        snapshots = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
        snapshot = snapshots[-1] if snapshots else repo / "none"
    return snapshot if (snapshot / "config.json").is_file() else None


def cached_models(cache_dir: str | Path | None = None) -> list[tuple[str, str | None]]:
    """(model id, pipeline tag from its cached model card or None) for every model in the cache."""
    root = hub_cache_dir(cache_dir)
    found = []
    for repo in sorted(root.glob("models--*")) if root.is_dir() else []:
        model = repo.name[len("models--") :].replace("--", "/")
        snapshot = cached_snapshot(model, root)
        if snapshot is None:
            continue
        readme = snapshot / "README.md"
        match = _PIPELINE_TAG.search(readme.read_text(encoding="utf-8", errors="replace")) if readme.is_file() else None
        found.append((model, match.group(1) if match else None))
    return found


def _load_audio(path: str) -> dict[str, Any]:
    """Audio as the pipelines' `{"raw", "sampling_rate"}` (no ffmpeg needed), mono float32."""
    import soundfile as sf

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return {"raw": data.mean(axis=1), "sampling_rate": rate}


def _image(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _similarity(pipe: Any, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import numpy as np

    vectors = []
    for name in ("text1", "text2"):
        features = np.asarray(pipe(slot(inputs, ctx.task, name)), dtype="float32")
        vectors.append(features.reshape(-1, features.shape[-1]).mean(axis=0))  # mean over tokens
    a, b = vectors
    score = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
    return [Artifact(kind="data", text=f"similarity {score:.2f}", data={"similarity": round(score, 6)})]


def _zero_shot(pipe: Any, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    labels = [s.strip() for s in slot(inputs, ctx.task, "labels", "candidate_labels").split(",") if s.strip()]
    out = pipe(slot(inputs, ctx.task, "text"), candidate_labels=labels)
    return [labels_artifact([{"label": la, "score": sc} for la, sc in zip(out["labels"], out["scores"])])]


def _speech(pipe: Any, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    out = pipe(slot(inputs, ctx.task, "text"))
    return [save_wave(out["audio"], out["sampling_rate"], ctx)]


def _generated(out: Any, key: str) -> str:
    first = out[0] if isinstance(out, list) and out else out
    return str(field_of(first, key, "") or "")


Runner = Callable[[Any, dict[str, str], ExpertContext], list[Artifact]]

#: Registry task → how to call its pipeline and shape the output (the same artifacts as the `hf` backend).
RUNNERS: dict[str, Runner] = {
    "text-classification": lambda p, i, ctx: [labels_artifact(p(slot(i, ctx.task, "text"), top_k=5))],
    "token-classification": lambda p, i, ctx: [
        entities_artifact(p(slot(i, ctx.task, "text"), aggregation_strategy="simple"))
    ],
    "zero-shot-classification": _zero_shot,
    "image-classification": lambda p, i, ctx: [labels_artifact(p(_image(slot(i, ctx.task, "image")), top_k=5))],
    "object-detection": lambda p, i, ctx: detection_artifacts(p(_image(slot(i, ctx.task, "image"))), i["image"], ctx),
    "image-segmentation": lambda p, i, ctx: segmentation_artifacts(p(_image(slot(i, ctx.task, "image"))), i["image"], ctx),
    "depth-estimation": lambda p, i, ctx: [save_image(p(_image(slot(i, ctx.task, "image")))["depth"], ctx, "depth map")],
    "automatic-speech-recognition": lambda p, i, ctx: [text_artifact(p(_load_audio(slot(i, ctx.task, "audio")))["text"])],
    "audio-classification": lambda p, i, ctx: [labels_artifact(p(_load_audio(slot(i, ctx.task, "audio")), top_k=5))],
    "text-to-speech": _speech,
    "sentence-similarity": _similarity,
    "text-generation": lambda p, i, ctx: [
        text_artifact(_generated(p(slot(i, ctx.task, "text"), max_new_tokens=200, return_full_text=False), "generated_text"))
    ],
    "summarization": lambda p, i, ctx: [text_artifact(_generated(p(slot(i, ctx.task, "text")), "summary_text"))],
    "translation": lambda p, i, ctx: [text_artifact(_generated(p(slot(i, ctx.task, "text")), "translation_text"))],
    "text2text-generation": lambda p, i, ctx: [text_artifact(_generated(p(slot(i, ctx.task, "text")), "generated_text"))],
    "question-answering": lambda p, i, ctx: [
        answer_artifact(p(question=slot(i, ctx.task, "text"), context=slot(i, ctx.task, "context")))
    ],
    "image-to-text": lambda p, i, ctx: [text_artifact(_generated(p(_image(slot(i, ctx.task, "image"))), "generated_text"))],
    "visual-question-answering": lambda p, i, ctx: [
        answer_artifact(p(image=_image(slot(i, ctx.task, "image")), question=slot(i, ctx.task, "text")))
    ],
}


class TransformersExperts(ExpertBackend):
    """Local `transformers` pipelines (spec `transformers`).

    Serves a catalogue model when it is in the Hugging Face cache, plus `models` you name
    (`{"text-classification": "my-org/my-model" or "/path/to/folder"}`); cached models whose model card
    names a pipeline tag are offered even when the catalogue does not list them.
    """

    name = "transformers"
    offline = True

    def __init__(
        self,
        models: Mapping[str, str | Iterable[str]] | None = None,
        *,
        cache_dir: str | Path | None = None,
        device: str | None = None,
        max_concurrency: int = 1,
        scan_cache: bool = True,
    ):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.tasks = supported_tasks()
        self.models: dict[str, list[str]] = {
            task: [ids] if isinstance(ids, str) else list(ids) for task, ids in (models or {}).items()
        }
        self.scan_cache = scan_cache
        self._device = device
        self._pipelines: dict[tuple[str, str], Any] = {}
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._slots = Slots(max_concurrency)
        self._cached: dict[str, bool] = {}

    @property
    def device(self) -> str:
        """The device pipelines run on (decided on first use: importing torch is slow)."""
        if self._device is None:
            self._device = auto_device()
        return self._device

    def _is_cached(self, model: str) -> bool:
        if model not in self._cached:
            self._cached[model] = cached_snapshot(model, self.cache_dir) is not None
        return self._cached[model]

    def cards(self) -> list[ModelCard]:
        if not self.tasks:
            return []
        cards = [
            ModelCard(id=m, task=t, description=f"Local model ({'folder' if Path(m).is_dir() else 'cached'}), run with transformers.",
                      backend=self.name)
            for t, ids in self.models.items() if t in self.tasks for m in ids
        ]
        if self.scan_cache:
            for model, tag in cached_models(self.cache_dir):
                task = "text-to-speech" if tag == "text-to-audio" else tag
                if task in self.tasks and not any(c.id == model and c.task == task for c in cards):
                    cards.append(ModelCard(id=model, task=task, description="Cached model, run with transformers.",
                                           backend=self.name))
        return cards

    def can_serve(self, task: str, model: str) -> bool:
        if task not in self.tasks:
            return False
        if model in self.models.get(task, ()):
            return True
        return not model.startswith(NOT_HUB_PREFIXES) and self._is_cached(model)

    def _source(self, model: str) -> str:
        """The folder the model loads from: a configured local folder, or its cached snapshot."""
        if Path(model).is_dir():
            return str(Path(model))
        snapshot = cached_snapshot(model, self.cache_dir)
        if snapshot is None:
            raise ExpertError(f"transformers: {model} is not in the Hugging Face cache", model_level=True)
        return str(snapshot)

    def pipeline(self, task: str, model: str) -> Any:
        """The loaded pipeline for (task, model); loads once even when two tasks ask together."""
        key = (task, model)
        with self._lock:
            if key in self._pipelines:
                return self._pipelines[key]
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._pipelines:
                from transformers import pipeline

                try:
                    self._pipelines[key] = pipeline(
                        self.tasks[task], model=self._source(model), device=self.device
                    )
                except ExpertError:
                    raise
                except Exception as exc:  # wrong architecture for the task, missing files, ...
                    raise ExpertError(f"transformers: cannot load {model} for {task}: {exc}", model_level=True) from exc
            return self._pipelines[key]

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        runner = RUNNERS.get(task)
        if runner is None or task not in self.tasks:
            raise ExpertError(f"transformers does not run {task} here", model_level=True)
        pipe = self.pipeline(task, model)
        if not self._slots.acquire(ctx.cancel):
            raise ExpertError(f"transformers {model}: cancelled while waiting for the device")
        try:
            return runner(pipe, inputs, ctx)
        finally:
            self._slots.release()

    def describe(self) -> str:
        if not self.tasks:
            return "transformers: not installed (pip install 'hgpt-magic[transformers]')"
        device = self._device or "auto (GPU when present)"
        return f"transformers: cache {hub_cache_dir(self.cache_dir)}, device {device}"

    def __repr__(self) -> str:
        return f"TransformersExperts(cache_dir={str(self.cache_dir) if self.cache_dir else None!r}, device={self._device!r})"


__all__ = ["TransformersExperts", "auto_device", "available", "cached_models", "cached_snapshot", "supported_tasks"]
