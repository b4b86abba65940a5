"""What every local expert shares: the lazy-load-once model holder, package lookups that do not
import, input readers, audio helpers and the `LocalModel` table entry.

Adding an expert is: a loader, a runner and a `LocalModel` in its family's module
(`speech.py`, `vision.py`, `text.py`), registered with `lazy(...)` so it loads once per process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ...catalog import ModelCard
from ...types import Artifact
from ..base import ExpertContext, ExpertError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

T = TypeVar("T")

Runner = Callable[[dict[str, str], ExpertContext], list[Artifact]]


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


#: One per process, shared by every `LocalExperts` instance: model id -> its lazy holder.
MODELS: dict[str, LazyModel[Any]] = {}


def lazy(model_id: str, name: str, loader: Callable[[], T]) -> LazyModel[T]:
    """Register (once) and return the process-wide lazy holder of `model_id`."""
    return MODELS.setdefault(model_id, LazyModel(name, loader))


# --------------------------------------------------------------------------------------------
# Where the bundled files are (found without importing the packages)


def package_dir(module: str) -> Path | None:
    """The directory of an installed package, or None when it is not installed (no import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def has(*modules: str) -> bool:
    """Whether every top-level module can be imported (cheap: finds, does not import)."""
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def packaged_file(module: str, *parts: str) -> Path | None:
    """A data file inside an installed package (weights, labels), or None."""
    package = package_dir(module)
    if package is None:
        return None
    path = package.joinpath(*parts)
    return path if path.is_file() else None


# --------------------------------------------------------------------------------------------
# Reading inputs


def text_input(inputs: dict[str, str], slot: str, task: str) -> str:
    text = (inputs.get(slot) or "").strip()
    if not text:
        raise ExpertError(f"{task}: the text input '{slot}' is empty")
    return text


def file_input(inputs: dict[str, str], slot: str, task: str) -> Path:
    value = (inputs.get(slot) or "").strip()
    if not value:
        raise ExpertError(f"{task}: no file given for the input '{slot}'")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ExpertError(f"{task}: input file not found: {path}")
    return path


def read_image(path: Path) -> Image.Image:
    """An RGB image, upright (EXIF orientation applied), through Pillow (more formats than cv2)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ExpertError(f"cannot read the image {path}: {exc}") from None


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate, from any file libsndfile reads (wav, flac, ogg, mp3)."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise ExpertError(f"cannot read the audio {path}: {exc}") from None
    return samples.mean(axis=1), int(rate)


# --------------------------------------------------------------------------------------------
# Audio helpers


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


def to_int16(samples: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


def write_wav(path: Path, samples_int16: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples_int16.tobytes())


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


# --------------------------------------------------------------------------------------------
# The table entry


@dataclass(frozen=True)
class LocalModel:
    """A card, how to tell whether it can run here, and how to run it."""

    card: ModelCard
    available: Callable[[], bool]
    run: Runner


def card(model_id: str, task: str, description: str, license: str, tags: tuple[str, ...]) -> ModelCard:
    """A local model's catalogue card: what it really does, its speed and its licence, for the LLM."""
    return ModelCard(
        id=model_id,
        task=task,
        description=description + " Runs offline on the CPU; weights ship with the Python package.",
        tags=("offline", "local", *tags),
        license=license,
        backend="local",
    )
