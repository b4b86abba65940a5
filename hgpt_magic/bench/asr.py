"""Speech recognition on voices the tests never use: word error rate per language and model, seconds per clip.

Clips are made here with espeak-ng from the sentences in `data/asr_sentences.jsonl` (30 English ones with
numbers, names and dates; 10 each in German, French and Spanish), each in a voice variant, speed and pitch
of its own (the tests use espeak-ng's plain voices only), every third one with white noise added at 15 dB
SNR. A seeded split keeps half of each language as `dev` and half as `held-out`. Each installed local
speech-recognition model transcribes every clip (through the expert backend, as a run would), and the
figures are: WER per language (word edits over reference words, after Whisper's own text normalisers), how often
the language a model recorded was right, seconds per clip (median, p90) and model load time.

Targets (issue 25), for the offline default (the first-ranked model): English WER <= 10 %, each other
language <= 20 %, median <= 3 s per clip of 5-7 s on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import data_path, emit, median, percentile, table

TARGET_WER = {"en": 0.10}
TARGET_OTHER_WER = 0.20
TARGET_SECONDS = 3.0
SPLITS = ("dev", "held-out", "all")

#: espeak-ng voice variants, speeds (words per minute) and pitches (0-99) the clips are spoken in.
VARIANTS = ("m3", "f2", "klatt", "f4", "m7", "Andrea", "m1", "f1", "max", "klatt4")
SPEEDS = (150, 160, 170, 180)
PITCHES = (35, 45, 55, 65)
#: espeak-ng's base voice per language (English: both accents).
BASE_VOICES = {"en": ("en-us", "en-gb"), "de": ("de",), "fr": ("fr-fr",), "es": ("es",)}
NOISE_EVERY, NOISE_SNR_DB = 3, 15.0
#: espeak-ng's own defaults, for `--plain`.
PLAIN_SPEED, PLAIN_PITCH = 175, 50
RATE = 16000


@dataclass(frozen=True)
class Clip:
    """One sentence spoken in one voice: what to say, how, and whether noise is added."""

    id: str
    lang: str
    text: str
    voice: str
    speed: int
    pitch: int
    noise: bool
    split: str


def load_clips(seed: int = 25, split: str = "dev", plain: bool = False) -> list[Clip]:
    """The benchmark's clips: per language a seeded shuffle, its first half `dev`, the rest `held-out`.

    `plain`: the same sentences in espeak-ng's plain voices at its default speed and pitch, no noise (the
    kind of clip the tests use): a reference point, not the benchmark."""
    rows = [json.loads(line) for line in data_path("asr_sentences.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    rng = random.Random(seed)
    clips = []
    for lang in sorted({r["lang"] for r in rows}):
        texts = [r["text"] for r in rows if r["lang"] == lang]
        rng.shuffle(texts)
        for n, text in enumerate(texts):
            base = BASE_VOICES[lang][n % len(BASE_VOICES[lang])]
            variant, speed, pitch = rng.choice(VARIANTS), rng.choice(SPEEDS), rng.choice(PITCHES)
            clips.append(Clip(
                id=f"{lang}-{n:02d}", lang=lang, text=text,
                voice=base if plain else f"{base}+{variant}", speed=PLAIN_SPEED if plain else speed,
                pitch=PLAIN_PITCH if plain else pitch, noise=not plain and n % NOISE_EVERY == NOISE_EVERY - 1,
                split="dev" if n < len(texts) // 2 else "held-out",
            ))
    return [c for c in clips if split == "all" or c.split == split]


def make_clip(clip: Clip, folder: Path, seed: int = 25) -> tuple[Path, float]:
    """The clip as a 16 kHz mono WAV (noise added when asked) and its length in seconds."""
    import numpy as np
    import soundfile

    from ..experts.local.common import resample

    raw = folder / f"{clip.id}-espeak.wav"
    subprocess.run(["espeak-ng", "-v", clip.voice, "-s", str(clip.speed), "-p", str(clip.pitch), "-w", str(raw),
                    "--stdin"], input=clip.text.encode(), capture_output=True, check=True, timeout=60)
    samples, rate = soundfile.read(str(raw), dtype="float32")
    samples = resample(samples, rate, RATE)
    if clip.noise:
        rng = np.random.default_rng([seed, sum(map(ord, clip.id))])
        power = float(np.mean(samples**2))
        noise = rng.normal(0.0, np.sqrt(power / 10 ** (NOISE_SNR_DB / 10)), len(samples)).astype(np.float32)
        samples = np.clip(samples + noise, -1.0, 1.0)
    path = folder / f"{clip.id}.wav"
    soundfile.write(str(path), samples, RATE, subtype="PCM_16")
    return path, len(samples) / RATE


# ----------------------------------------------------------------------------------------- word error rate


@functools.lru_cache(maxsize=2)
def _normaliser(english: bool) -> Callable[[str], str]:
    from whisper_normalization import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer() if english else BasicTextNormalizer()


def normalise(text: str, lang: str = "en") -> list[str]:
    """Words for scoring, by Whisper's own normalisers (OpenAI's code, the `whisper-normalization` package),
    the standard practice for Whisper word error rates: English spellings, numbers and currencies written
    one way on both sides ("seven" = "7", "42 dollars" = "$42", "1,500" = "1500", "colour" = "color"),
    case, punctuation and fillers removed; other languages lower-cased without punctuation or symbols
    (numbers as they are written: "neun" is not "9")."""
    return _normaliser(lang == "en")(text).split()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions, deletions, insertions)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


# ----------------------------------------------------------------------------------------- running


def asr_models(only: Sequence[str] | None = None) -> list[str]:
    """The installed local speech-recognition models, ranked as the selector offers them."""
    from ..experts.local import LocalExperts

    ids = [c.id for c in LocalExperts().cards() if c.task == "automatic-speech-recognition"]
    return [m for m in ids if not only or m in only]


def run_model(model: str, clips: Sequence[Clip], paths: dict[str, tuple[Path, float]], work: Path) -> list[dict]:
    """Transcribe every clip with `model` through the local backend; one row per clip."""
    from ..experts.base import ExpertContext
    from ..experts.local import MODELS, LocalExperts

    experts = LocalExperts()
    rows = []
    for n, clip in enumerate(clips):
        path, seconds = paths[clip.id]
        ctx = ExpertContext(run_dir=work / "runs", task_id=n, task="automatic-speech-recognition")
        start = time.perf_counter()
        [art] = experts.run("automatic-speech-recognition", model, {"audio": str(path)}, ctx)
        elapsed = time.perf_counter() - start
        holder = MODELS.get(model)
        if n == 0 and holder is not None and holder.load_seconds is not None:
            elapsed -= holder.load_seconds  # the first call also loaded the model: reported apart
        hyp = art.data.get("transcript", "") if isinstance(art.data, dict) else art.text
        ref_words, hyp_words = normalise(clip.text, clip.lang), normalise(hyp, clip.lang)
        rows.append({
            "model": model, "clip": clip.id, "lang": clip.lang, "voice": clip.voice, "speed": clip.speed,
            "pitch": clip.pitch, "noise": clip.noise, "audio_seconds": round(seconds, 2),
            "seconds": round(elapsed, 3), "ref": clip.text, "hyp": hyp,
            "language": art.data.get("language") if isinstance(art.data, dict) else None,
            "edits": edit_distance(ref_words, hyp_words), "ref_words": len(ref_words),
        })
    return rows


def summarise(rows: Sequence[dict], load_seconds: dict[str, float | None], split: str) -> dict[str, Any]:
    models = list(dict.fromkeys(r["model"] for r in rows))
    langs = sorted({r["lang"] for r in rows})
    per_model: dict[str, Any] = {}
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        wer = {}
        language_right = {}
        for lang in langs:
            of = [r for r in mine if r["lang"] == lang]
            wer[lang] = sum(r["edits"] for r in of) / max(1, sum(r["ref_words"] for r in of))
            language_right[lang] = sum(r["language"] == lang for r in of) / max(1, len(of))
        noisy = [r for r in mine if r["noise"]]
        per_model[model] = {
            "wer": wer,
            "wer_noisy": sum(r["edits"] for r in noisy) / max(1, sum(r["ref_words"] for r in noisy)),
            "language_right": language_right,
            "median_s": median([r["seconds"] for r in mine]),
            "p90_s": percentile([r["seconds"] for r in mine], 90),
            "load_s": load_seconds.get(model),
        }
    default = models[0] if models else None
    meets = None
    if default:
        got = per_model[default]
        meets = all(got["wer"][lang] <= TARGET_WER.get(lang, TARGET_OTHER_WER) for lang in langs) and (
            (got["median_s"] or 0) <= TARGET_SECONDS)
    audio = [r["audio_seconds"] for r in rows if r["model"] == default]
    return {
        "bench": "asr", "split": split, "clips": len(audio), "clip_seconds_median": median(audio),
        "default": default, "models": per_model, "meets_target": meets,
    }


def readable(figures: dict[str, Any]) -> str:
    langs = sorted(next(iter(figures["models"].values()))["wer"]) if figures["models"] else []
    header = ["model", *(f"WER {lang}" for lang in langs), "WER noisy", *(f"lang {lang}" for lang in langs),
              "median s", "p90 s", "load s"]
    rows = [[model, *(f"{m['wer'][lang]:.1%}" for lang in langs), f"{m['wer_noisy']:.1%}",
             *(f"{m['language_right'][lang]:.0%}" for lang in langs), m["median_s"], m["p90_s"], m["load_s"]]
            for model, m in figures["models"].items()]
    return (table(rows, header) + f"\n\n{figures['clips']} clips ({figures['split']}), median "
            f"{figures['clip_seconds_median']:.1f} s of audio. Targets for the default ({figures['default']}): "
            f"WER en <= {TARGET_WER['en']:.0%}, other languages <= {TARGET_OTHER_WER:.0%}, median <= "
            f"{TARGET_SECONDS:.0f} s per clip: {'met' if figures['meets_target'] else 'NOT met'}.")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m hgpt_magic.bench asr")
    parser.add_argument("--split", choices=SPLITS, default="dev", help="which sentences (default: dev)")
    parser.add_argument("--seed", type=int, default=25, help="seed of the split, voices and noise")
    parser.add_argument("--models", nargs="*", default=None, help="model ids (default: every installed ASR model)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips per language")
    parser.add_argument("--plain", action="store_true",
                        help="espeak-ng's plain voices, default speed and pitch, no noise (a reference, not the target)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--details", default=None, help="write one JSON line per clip and model here")
    return parser


def main(args: argparse.Namespace) -> int:
    if shutil.which("espeak-ng") is None:
        print("bench asr: espeak-ng is needed to make the clips (Debian: apt-get install espeak-ng)")
        return 2
    if importlib.util.find_spec("whisper_normalization") is None:
        print("bench asr: scoring needs Whisper's text normalisers: pip install whisper-normalization")
        return 2
    from ..experts.local import MODELS

    clips = load_clips(args.seed, args.split, plain=args.plain)
    if args.limit:
        clips = [c for lang in sorted({c.lang for c in clips}) for c in [x for x in clips if x.lang == lang][: args.limit]]
    models = asr_models(args.models)
    if not models:
        print("bench asr: no local speech-recognition model is installed")
        return 2
    with tempfile.TemporaryDirectory(prefix="hgpt-bench-asr-") as tmp:
        work = Path(tmp)
        paths = {c.id: make_clip(c, work, args.seed) for c in clips}
        rows: list[dict] = []
        load_seconds: dict[str, float | None] = {}
        for model in models:
            rows += run_model(model, clips, paths, work)
            holder = MODELS.get(model)
            load_seconds[model] = holder.load_seconds if holder is not None else None
    figures = summarise(rows, load_seconds, args.split + (" plain" if args.plain else ""))
    if args.details:
        Path(args.details).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    emit(figures, readable(figures), args.out)
    return 0 if figures["meets_target"] else 1
