"""Stage 2: ranking, the single-candidate shortcut, when the LLM is asked, one batched call, fallbacks."""

import json
import time

import pytest

from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts.llm_tasks import LLMExperts
from hgpt_magic.experts.local import (
    ESPEAK_ID,
    HAAR_CATFACE_ID,
    HAAR_FACE_ID,
    LOCAL_MODELS,
    PIPER_ID,
    LocalExperts,
)
from hgpt_magic.llm import LLMError
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.selector import REASON_CHARS, SELECT_SYSTEM, Selector, request_cue, words
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Plan, Task

CARDS = [
    ModelCard("sleep-0", "image-to-text", downloads=10),
    ModelCard("sleep-0.01", "image-to-text", downloads=500),
    ModelCard("fail", "image-to-text", downloads=50),
    ModelCard("not-servable", "image-to-text", downloads=10_000),
    ModelCard("sleep-0", "text-to-speech", downloads=7),
    ModelCard("sleep-0", "summarization", downloads=1),
    ModelCard("sleep-0.02", "summarization", downloads=2),
]


def make_selector(llm, top_k=5, ask="always"):
    experts = TimedExperts(["image-to-text", "text-to-speech", "summarization", "translation"], models=[])
    return Selector(llm, [experts], Catalog(CARDS), top_k=top_k, ask=ask)


def three_task_plan():
    return Plan(
        [
            Task(0, "image-to-text", [], {"image": "a.png"}),
            Task(1, "text-to-speech", [0], {"text": "<GENERATED>-0"}),
            Task(2, "summarization", [0], {"text": "<GENERATED>-0"}),
        ]
    )


class EveryLocalModel(LocalExperts):
    """The offline backend as on a machine with every package installed: its real cards, whatever is here."""

    def _models(self):
        return {(m.card.task, m.card.id): m for m in LOCAL_MODELS}


def offline_selector(llm, ask="auto"):
    """The offline default's backends (local first, then the LLM for text tasks) and their real cards."""
    return Selector(llm, [EveryLocalModel(), LLMExperts()], Catalog([]), ask=ask)


def plan_of(*tasks):
    return Plan([Task(i, name, [], args) for i, (name, args) in enumerate(tasks)])


def pick(**picks):
    """A selection reply: task id -> model id, each with a short reason."""
    return json.dumps({tid.lstrip("t"): {"id": model, "reason": "the request says so"} for tid, model in picks.items()})


# ----------------------------------------------------------------------------- ranking


def test_candidates_are_servable_models_ranked_by_downloads_top_k():
    selector = make_selector(None, top_k=2)
    assert [c.id for c in selector.candidates("image-to-text")] == ["sleep-0.01", "fail"]
    assert [c.id for c in selector.candidates("image-to-text", top_k=5)] == ["sleep-0.01", "fail", "sleep-0"]
    assert selector.candidates("translation") == []


# ----------------------------------------------------------------------------- when the LLM is asked


def test_request_words_are_lower_case_stemmed_and_generic_words_dropped():
    assert words("How many CATS' faces are in /tmp/run-3/cat.png?") == {"cat", "face"}
    assert words("Read it in a robotic voice") == {"read", "robotic", "voice"}
    assert words("the cat's boxes") == {"cat", "box"}


def test_auto_asks_when_the_request_names_what_a_lower_ranked_candidate_is_about():
    """'cats' is in the cat-face detector's description, not in the (top-ranked) human-face one's."""
    selector = offline_selector(ScriptedLLM([pick(t0=HAAR_CATFACE_ID)]))
    offered = selector.candidates("object-detection")
    assert [c.id for c in offered] == [HAAR_FACE_ID, HAAR_CATFACE_ID]
    plan = plan_of(("object-detection", {"image": "cat.png"}))
    assert request_cue("how many cats are in cat.png", [f"{c.id} {selector.shown(c)}" for c in offered]) == ("cat", 1)
    selection = selector.select(plan, "how many cats are in cat.png")
    assert len(selector.llm.requests) == 1
    assert (selection[0].model, selection[0].reason) == (HAAR_CATFACE_ID, "the request says so")


def test_auto_asks_for_a_robotic_voice_and_one_call_serves_every_asked_task():
    llm = ScriptedLLM([pick(t0=HAAR_CATFACE_ID, t1=ESPEAK_ID)])
    selector = offline_selector(llm)
    plan = plan_of(("object-detection", {"image": "cat.png"}), ("text-to-speech", {"text": "<GENERATED>-0"}))
    selection = selector.select(plan, "How many cats are in cat.png? Read the count in a robotic voice")
    assert len(llm.requests) == 1 and set(llm.requests[0]["schema"]["properties"]) == {"0", "1"}
    assert [selection[0].model, selection[1].model] == [HAAR_CATFACE_ID, ESPEAK_ID]


def test_auto_takes_the_top_ranked_models_without_asking_and_names_the_runner_up():
    """Two OCR engines, the describer and two voices, but 'Read the sign in sign.png aloud' favours none of the others."""
    llm = ScriptedLLM([])  # any call would raise
    selector = offline_selector(llm)
    plan = plan_of(("image-to-text", {"image": "sign.png"}), ("text-to-speech", {"text": "<GENERATED>-0"}))
    assert [len(selector.candidates(t.task)) for t in plan] == [3, 2]
    assert not selector.will_ask(plan, "Read the sign in sign.png aloud")
    selection = selector.select(plan, "Read the sign in sign.png aloud")
    assert llm.requests == []
    speech = selection[1]
    assert speech.model == PIPER_ID and [c.id for c in speech.candidates] == [PIPER_ID, ESPEAK_ID]
    assert speech.reason == ("ranked first (local, first in catalogue order); the request asks for nothing that "
                             f"another candidate ({ESPEAK_ID}) is described as better at")
    assert "(local/image-findings and 1 more)" in selection[0].reason  # the runner-up: the describer


def test_the_unasked_reason_says_why_the_top_one_leads():
    more = make_selector(None, ask="auto").select(plan_of(("image-to-text", {"image": "a.png"})), "read a.png")
    assert more[0].model == "sleep-0.01"
    assert more[0].reason.startswith("ranked first (timed, most downloads); ")
    assert "(fail and 1 more)" in more[0].reason
    backend = offline_selector(None).select(plan_of(("text-classification", {"text": "fine"})), "is it positive?")
    assert backend[0].reason.startswith("ranked first (preferred backend: local); ") and "controller-llm" in backend[0].reason


def test_always_asks_every_choice_and_never_asks_none():
    plan = plan_of(("image-to-text", {"image": "sign.png"}), ("object-detection", {"image": "cat.png"}))
    request = "Read sign.png and count the cats in cat.png"

    always = offline_selector(ScriptedLLM([pick(t0="local/tesseract-ocr-eng")]), ask="always")
    selection = always.select(plan, request)
    assert len(always.llm.requests) == 1 and set(always.llm.requests[0]["schema"]["properties"]) == {"0", "1"}
    assert selection[0].model == "local/tesseract-ocr-eng"
    assert selection[1].model == HAAR_FACE_ID and "no choice" in selection[1].reason

    never = offline_selector(ScriptedLLM([]), ask="never")
    selection = never.select(plan, request)
    assert never.llm.requests == [] and selection[1].model == HAAR_FACE_ID
    assert "not asked" in selection[1].reason and HAAR_CATFACE_ID not in selection[1].model


def test_the_policy_comes_from_hgpt_select_unless_given(monkeypatch):
    selector = offline_selector(None, ask=None)
    plan = plan_of(("text-to-speech", {"text": "hi"}))
    monkeypatch.setenv("HGPT_SELECT", "always")
    assert selector.ask_policy() == "always" and selector.will_ask(plan, "say hi")
    monkeypatch.setenv("HGPT_SELECT", "never")
    assert not selector.will_ask(plan, "say hi in a robotic voice")
    monkeypatch.setenv("HGPT_SELECT", "sometimes")  # a typo: the default, with a warning
    with pytest.warns(UserWarning, match="HGPT_SELECT"):
        assert selector.ask_policy() == "auto"
    with pytest.raises(ValueError, match="auto, always, never"):
        Selector(None, [], ask="sometimes")
    with pytest.raises(ValueError, match="auto, always, never"):
        HuggingGPT(llm=ScriptedLLM([]), experts=[], select_policy="sometimes")


def test_the_pipeline_loads_no_llm_for_a_selection_it_will_not_ask(tmp_path):
    """The LLM spec points at no model: building it would fail, so only an asked selection may need it."""
    hg = HuggingGPT(llm="gguf:/nonexistent/model.gguf", experts=[EveryLocalModel()], catalog=Catalog([]),
                    out_dir=tmp_path)
    plan = plan_of(("image-to-text", {"image": "sign.png"}), ("text-to-speech", {"text": "<GENERATED>-0"}))
    selection = hg.select(plan, "Read the sign in sign.png aloud")
    assert [c.model for c in selection] == ["local/rapidocr-pp-ocrv4", PIPER_ID]
    assert hg._llm is None
    hg.select_policy = "always"
    with pytest.raises(LLMError, match="nonexistent"):
        hg.select(plan, "Read the sign in sign.png aloud")


# ----------------------------------------------------------------------------- the call


def test_single_candidate_needs_no_llm_call_and_several_tasks_share_one_call():
    reply = json.dumps(
        {"0": {"id": "sleep-0", "reason": "smallest"}, "2": {"id": "sleep-0.02", "reason": "better summaries"}}
    )
    llm = ScriptedLLM([reply])
    selection = make_selector(llm).select(three_task_plan(), "read a.png")
    assert len(llm.requests) == 1  # one call for tasks 0 and 2; task 1 has one candidate
    prompt = llm.requests[0]["messages"][1]["content"]
    assert prompt.startswith("Request: read a.png\n")
    assert "Task 0: image-to-text" in prompt and "Task 2: summarization" in prompt and "Task 1" not in prompt
    assert "- sleep-0.01 (500 downloads)" in prompt
    assert set(llm.requests[0]["schema"]["properties"]) == {"0", "2"}
    assert selection[1].model == "sleep-0" and selection[1].reason == "the only available model"
    assert (selection[0].model, selection[0].reason) == ("sleep-0", "smallest")
    assert selection[2].model == "sleep-0.02"
    assert selection[0].backend == "timed"
    assert [c.id for c in selection[0].candidates] == ["sleep-0.01", "fail", "sleep-0"]


def test_the_static_instructions_come_first_and_are_the_same_for_every_request():
    """A prompt-prefix cache (llama.cpp's) can only reuse what comes before the first difference."""
    first = offline_selector(ScriptedLLM([pick(t0=HAAR_CATFACE_ID)]))
    first.select(plan_of(("object-detection", {"image": "cat.png"})), "how many cats are in cat.png")
    second = offline_selector(ScriptedLLM([pick(t0=ESPEAK_ID)]))
    second.select(plan_of(("text-to-speech", {"text": "hello"})), "say hello in a robotic voice")
    a, b = first.llm.requests[0]["messages"], second.llm.requests[0]["messages"]
    assert a[0] == b[0] == {"role": "system", "content": SELECT_SYSTEM}
    assert "cats" in a[1]["content"] and "robotic" in b[1]["content"] and "cats" not in SELECT_SYSTEM


def test_the_schema_constrains_ids_and_bounds_the_reason():
    selector = offline_selector(ScriptedLLM([pick(t0=ESPEAK_ID)]))
    selector.select(plan_of(("text-to-speech", {"text": "hi"})), "say hi in a robotic voice")
    entry = selector.llm.requests[0]["schema"]["properties"]["0"]["properties"]
    assert entry == {"id": {"enum": [PIPER_ID, ESPEAK_ID]}, "reason": {"type": "string", "maxLength": REASON_CHARS}}
    long_reason = json.dumps({"0": {"id": ESPEAK_ID, "reason": "a robotic voice " * 20}})  # the bound ignored
    selection = offline_selector(ScriptedLLM([long_reason])).select(
        plan_of(("text-to-speech", {"text": "hi"})), "say hi in a robotic voice")
    assert selection[0].model == ESPEAK_ID and len(selection[0].reason) <= REASON_CHARS
    kept = selection[0].reason.removesuffix(" ...")
    assert kept != selection[0].reason and set(kept.split()) == {"a", "robotic", "voice"}  # whole words, marked
    at_the_bound = ("a robotic voice " * 8)[:REASON_CHARS]  # as the grammar stops it, mid-word
    assert at_the_bound.endswith(" a roboti")
    selection = offline_selector(ScriptedLLM([json.dumps({"0": {"id": ESPEAK_ID, "reason": at_the_bound}})])).select(
        plan_of(("text-to-speech", {"text": "hi"})), "say hi in a robotic voice")
    assert selection[0].reason.endswith(" voice a ...")


def test_descriptions_shown_to_the_llm_are_cut_at_a_word():
    selector = offline_selector(None)
    cut = 0
    for task in ("object-detection", "text-to-speech", "image-to-text"):
        for c in selector.candidates(task):
            shown = selector.shown(c)
            assert len(shown) <= selector.description_chars
            if shown != c.description:
                cut += 1
                kept = shown.removesuffix(" ...").split()
                assert kept == c.description.split()[: len(kept)]  # whole words only
    assert cut > 0


def test_out_of_list_id_falls_back_to_top_ranked_and_says_so():
    llm = ScriptedLLM([json.dumps({"0": {"id": "gpt-imaginary", "reason": "it is great"}})])
    selection = make_selector(llm).select(three_task_plan())
    assert selection[0].model == "sleep-0.01"
    assert "not a candidate" in selection[0].reason and "gpt-imaginary" in selection[0].reason
    assert selection[2].model == "sleep-0.02"  # no pick for task 2: top-ranked
    assert "no choice" in selection[2].reason


def test_unparsable_or_failing_llm_falls_back_for_every_task():
    for llm in (ScriptedLLM(["I like them all"]), ScriptedLLM([])):  # prose; an LLM that raises
        selection = make_selector(llm).select(three_task_plan())
        assert selection[0].model == "sleep-0.01" and selection[2].model == "sleep-0.02"


def test_task_no_backend_serves_is_flagged_with_the_remedy():
    plan = Plan([Task(0, "translation", [], {"text": "hi"})])
    selection = make_selector(ScriptedLLM([])).select(plan)
    assert not selection[0].available
    assert "HF_TOKEN" in selection[0].reason
    assert selection.missing() == [selection[0]]


# ----------------------------------------------------------------------------- the embedded model


@pytest.mark.slow
def test_the_embedded_model_accepts_the_schema_and_picks_with_a_bounded_reason():
    """Two requests that ask: the grammar from the schema (enums, maxLength) loads; the second call finds
    the system message in llama.cpp's prompt cache (the times are printed, not asserted)."""
    from hgpt_magic.llm.local import get_local_llm

    selector = offline_selector(get_local_llm())
    asked = [
        (Plan([Task(0, "object-detection", [], {"image": "cat.png"}),
               Task(1, "text-to-speech", [0], {"text": "<GENERATED>-0"})]),
         "How many cats are in cat.png? Read the count in a robotic voice"),
        (Plan([Task(0, "text-to-speech", [], {"text": "Good morning"})]), "Say good morning in a robotic voice"),
    ]
    for plan, request in asked:
        calls = []
        start = time.perf_counter()
        selection = selector.select(plan, request, calls)
        seconds = time.perf_counter() - start
        print(f"select: {seconds:.1f} s, {calls[0].prompt_tokens} prompt + {calls[0].completion_tokens} generated "
              f"tokens: {[(c.model, c.reason) for c in selection]}")
        assert [c.stage for c in calls] == ["select"] and calls[0].error is None
        for choice in selection:
            assert choice.model in {c.id for c in choice.candidates}
            assert 0 < len(choice.reason) <= REASON_CHARS and "took the top-ranked" not in choice.reason


# --------------------------------------------------------------------------- language fit


def test_a_model_that_reads_only_english_goes_below_one_that_reads_the_texts_language():
    """A Spanish review is labelled by the multilingual LLM, not the English-only lexicon that the backend order
    puts first; an English one still gets the lexicon. German speech goes to Whisper, never pocketsphinx."""
    selector = offline_selector(None)
    spanish = Plan([Task(0, "text-classification", [], {"text": "El servicio fue excelente y la comida deliciosa."})])
    choice = selector.select(spanish, "¿Qué opina este cliente? 'El servicio fue excelente y la comida deliciosa.'").choices[0]
    assert choice.model == "controller-llm"
    assert "Spanish input; local/vader-sentiment reads en only" in choice.reason
    english = Plan([Task(0, "text-classification", [], {"text": "The food was great and the staff were kind."})])
    assert selector.select(english, "Is this review positive?").choices[0].model == "local/vader-sentiment"
    # a quoted text decides over the request's language ("Translate 'Guten Morgen, wie geht es dir?' ...")
    entities = Plan([Task(0, "token-classification", [], {"text": "Angela Merkel besuchte gestern Toyota in Nagoya."})])
    assert selector.select(entities, "List the names in this German sentence").choices[0].model == "controller-llm"
    # what an image shows is not in the request's language: a French request to read a sign keeps the OCR first
    sign = Plan([Task(0, "image-to-text", [], {"image": "data/panneau.png"})])
    assert selector.select(sign, "Que dit le panneau data/panneau.png ?").choices[0].model == "local/rapidocr-pp-ocrv4"
    speech = Plan([Task(0, "automatic-speech-recognition", [], {"audio": "data/termin.wav"})])
    offered = selector.select(speech, "Transkribiere bitte die Aufnahme data/termin.wav.").choices[0].candidates
    assert [c.id for c in offered][-1] == "local/pocketsphinx-en-us" and offered[-1].languages == ("en",)


def test_a_choice_with_languages_survives_the_run_record():
    from hgpt_magic.types import Choice

    choice = offline_selector(None).select(
        Plan([Task(0, "text-classification", [], {"text": "La comida estaba fría y el camarero fue grosero."})]),
        "¿Es negativa esta reseña?").choices[0]
    again = Choice.from_dict(json.loads(json.dumps(choice.to_dict())))
    assert again == choice and again.candidates[-1].languages == ("en",)
