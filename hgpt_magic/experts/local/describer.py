"""The offline answer to "describe this photo": what the local vision experts find, said as such.

No captioning model runs offline here (none ships in a package), and a "caption" written by the LLM from
classifier labels invents a scene (the astronaut became "a person holding a bobsled"). So this expert
runs the local models that can truly say something about a photo, the ImageNet classifier (labels with
their probabilities), the face and cat-face detectors and OCR, and writes one sentence that names each
source ("labels from an image classifier: Egyptian cat 0.71, ..."), then one line with the remedy for a
real caption. Every figure and word it reports is in `data`, so an answer can be checked against it.
"""

from __future__ import annotations

from typing import Any

from ...types import Artifact
from ..base import ExpertContext, ExpertError
from . import vision
from .common import LocalModel, card, file_input, read_image

DESCRIBER_ID = "local/image-findings"

#: Labels the classifier gives below this probability are left out of the sentence (kept in `data`).
MIN_LABEL_SCORE = 0.05
#: OCR lines read with less confidence than this are not reported.
MIN_TEXT_SCORE = 0.6
#: Characters of OCR text quoted in the sentence.
TEXT_CHARS = 200

REMEDY = (
    "This is not a caption: no captioning model runs offline. For one, set HF_TOKEN (Hugging Face Inference "
    "Providers) or configure an image-to-text endpoint, and choose that model for image-to-text."
)


def _classifier_available() -> bool:
    return next(m for m in vision.MODELS_TABLE if m.card.id == vision.EFFICIENTNET_ID).available()


def _detector_available(model_id: str) -> bool:
    return next(m for m in vision.MODELS_TABLE if m.card.id == model_id).available()


def _available() -> bool:
    return _classifier_available() or vision.ocr_available() or _detector_available(vision.HAAR_FACE_ID)


def findings(path: Any) -> dict[str, Any]:
    """What each available local expert finds in the image at `path`: `labels` (ImageNet, with scores),
    `faces` and `cat_faces` (detections), `text` (OCR lines); an expert that is not installed is absent."""
    import numpy as np

    image = read_image(path)
    found: dict[str, Any] = {"experts": []}
    if _classifier_available():
        found["labels"] = vision.classify(image)
        found["experts"].append(vision.EFFICIENTNET_ID)
    rgb = np.asarray(image)
    for key, model_id in (("faces", vision.HAAR_FACE_ID), ("cat_faces", vision.HAAR_CATFACE_ID)):
        if _detector_available(model_id):
            found[key] = vision.detect(model_id, rgb)
            found["experts"].append(model_id)
    if vision.ocr_available():
        found["text"] = [line for line in vision.ocr(path) if line["score"] >= MIN_TEXT_SCORE]
        found["experts"].append(vision.RAPIDOCR_ID)
    return found


def _counted(n: int, noun: str) -> str:
    return f"{'no' if n == 0 else n} {noun}{'' if n == 1 else 's'}"


def sentence(name: str, found: dict[str, Any]) -> str:
    """One factual sentence of what the experts found, each part naming the kind of model that said it."""
    parts = []
    if "labels" in found:
        labels = [item for item in found["labels"] if item["score"] >= MIN_LABEL_SCORE] or found["labels"][:1]
        shown = ", ".join(f"{item['label']} {item['score']:.2f}" for item in labels)
        parts.append(f"labels from an image classifier (ImageNet classes, with probabilities): {shown}")
    if "faces" in found:
        parts.append(f"a face detector found {_counted(len(found['faces']), 'human face')}")
    if "cat_faces" in found and found["cat_faces"]:
        parts.append(f"a cat-face detector found {_counted(len(found['cat_faces']), 'cat face')}")
    if "text" in found:
        text = " / ".join(line["text"] for line in found["text"])
        if len(text) > TEXT_CHARS:
            text = text[: TEXT_CHARS - 1] + "…"
        parts.append(f'OCR read the text "{text}"' if text else "OCR read no text")
    return f"In {name}, " + "; ".join(parts) + "." if parts else f"No local model could look at {name}."


def run_describer(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "image", ctx.task)
    if not _available():
        raise ExpertError("no local vision model is installed to look at the image", model_level=True)
    found = findings(path)
    text = sentence(path.name, found) + "\n" + REMEDY
    return [Artifact(kind="text", text=text, data={**found, "findings_only": True, "remedy": REMEDY})]


MODELS_TABLE: tuple[LocalModel, ...] = (
    LocalModel(
        card(
            DESCRIBER_ID,
            "image-to-text",
            "Describes a photo or captions it (what is in it) as far as local models can tell, naming which model found "
            "what: ImageNet labels with probabilities, human and cat faces, printed words; ~0.5 s. Honest "
            "rather than fluent: invents no scene.",
            "Apache-2.0 (EfficientNet-Lite, PP-OCRv4); OpenCV cascades BSD-style",
            ("describe", "caption", "photo", "labels", "faces"),
        ),
        _available,
        run_describer,
    ),
)
