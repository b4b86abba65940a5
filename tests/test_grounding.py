"""A session's history and grounded answers: what the planner and the responder see of earlier cells,
and an LLM answer that the run contradicts (a wrong path, status or number) replaced by the run's facts."""

import json

import pytest

from hgpt_magic.catalog import Catalog
from hgpt_magic.grounding import check_answer, complete, number
from hgpt_magic.history import Resource, Turn, history_block, named_files
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.responder import grounded
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Artifact, Plan, Task, TaskResult

FACES = [{"label": "face", "score": 0.997, "box": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}}]


def detection_run():
    """A plan and results: faces found in photo.png, then text-to-speech that failed."""
    plan = Plan(
        [
            Task(0, "object-detection", args={"image": "data/photo.png"}),
            Task(1, "text-to-speech", dep=[0], args={"text": "<GENERATED>-0"}),
        ]
    )
    results = {
        0: TaskResult(
            0,
            "object-detection",
            status="done",
            inputs={"image": "data/photo.png"},
            artifacts=[
                Artifact("image", path="runs/1/0.png", text="image with 1 face boxed"),
                Artifact("data", text="1 face: face 1.00 at (1,2,30,40)", data=FACES),
            ],
        ),
        1: TaskResult(1, "text-to-speech", status="failed", error="no available backend serves text-to-speech"),
    }
    return plan, results


# --------------------------------------------------------------------------- history


def pipeline(tmp_path, replies, tasks=("image-to-text", "automatic-speech-recognition", "translation")):
    llm = ScriptedLLM(replies)
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(tasks)], catalog=Catalog([]), out_dir=tmp_path / "runs")
    return hg, llm


def plan_of(*tasks):
    return json.dumps({"tasks": [{"task": t, "id": i, "dep": [], "args": a} for i, (t, a) in enumerate(tasks)]})


def test_the_planner_sees_earlier_requests_and_resources_never_earlier_answers(tmp_path):
    clip = tmp_path / "memo.wav"
    clip.write_bytes(b"RIFF")
    hg, llm = pipeline(
        tmp_path,
        [
            plan_of(("automatic-speech-recognition", {"audio": str(clip)})),
            "THE-FIRST-ANSWER mentions the memo.",
            plan_of(("translation", {"text": "x", "language": "German"})),
            "Auf Deutsch.",
        ],
    )
    hg.run(f"Transcribe {clip}")
    assert hg.history[0].answer.startswith("THE-FIRST-ANSWER")  # kept for %hugginggpt history
    hg.run("now translate what was said into German")
    planner_prompt = llm.requests[2]["messages"][-1]["content"]
    assert f"Transcribe {clip}" in planner_prompt
    assert f"audio file {clip} (named in the request)" in planner_prompt
    assert "made by task 0 automatic-speech-recognition" in planner_prompt  # the transcript, as a text
    assert f"automatic-speech-recognition(audio={clip})" in planner_prompt
    assert "THE-FIRST-ANSWER" not in planner_prompt
    # the responder sees this run only: neither the earlier answer nor the earlier request
    respond_prompt = llm.requests[3]["messages"][-1]["content"]
    assert "THE-FIRST-ANSWER" not in respond_prompt and "Transcribe" not in respond_prompt
    hg.reset()
    assert hg.history == []


def test_history_block_keeps_the_latest_turns_that_fit_and_cuts_long_texts():
    long_text = "word " * 400
    turns = [
        Turn("Describe a.png", "ignored", [Resource("image", "named in the request", path="a.png")]),
        Turn("Read b.png", "ignored", [Resource("text", "made by task 0 image-to-text", text=long_text)]),
    ]
    block = history_block(turns, 1000)
    assert block.index("Request 1:") < block.index("Request 2:")
    assert "ignored" not in block and "…" in block and len(block) < 600
    assert "Request 1" not in history_block(turns, 100) and "Request 2" in history_block(turns, 100)
    assert history_block([], 1000) == ""


def test_older_turns_leave_the_prompt_a_stride_at_a_time_so_its_start_stays_the_same():
    from hgpt_magic.history import DROP_STRIDE

    turns = [Turn(f"request number {i} " + "x" * 80) for i in range(1, 13)]
    starts = []
    for n in range(1, len(turns) + 1):
        block = history_block(turns[:n], 150)  # room for about five turns
        starts.append(int(block.split(":", 1)[0].removeprefix("Request ")))
        assert f"Request {n}:" in block  # the latest turn is always there
    assert all((s - 1) % DROP_STRIDE == 0 for s in starts)  # 1, 5, 9: a multiple of the stride dropped
    assert len(set(starts)) < len(starts) - 4  # the start changed a few times, not at every request


def test_named_files_finds_media_files_only():
    assert named_files("Read /tmp/x/sign.png and hello.wav, not notes.txt nor 12.70") == ["/tmp/x/sign.png", "hello.wav"]


# --------------------------------------------------------------------------- grounding


@pytest.mark.parametrize(
    "answer, problem",
    [
        ("I found one face; the picture is saved as data/faces_boxed.png.", "neither used nor made"),
        ("The file produced is data/photo.png.", "calls an input file produced"),
        ("The object-detection task failed, sorry.", "succeeded did not"),
        ("Task 1 text-to-speech completed successfully.", "did not succeed did"),
        ("There are 1.00 faces in the photo.", "not a whole number"),
        ("There are 3 faces in the photo.", "no detection made"),
        ("The detector is 87% sure.", "no result contains"),
        ("The face is 77 pixels wide.", "no result contains"),
        ('It found 1 face; in Spanish, "una cara".', "quotes a text no result contains"),
        ("1 face.\nTranslation: one face", "no translation task finished"),
        ("There is one face. Summary: a face in a photo.", "no summarization task finished"),
    ],
)
def test_an_answer_the_run_contradicts_is_caught_and_replaced(answer, problem):
    plan, results = detection_run()
    problems = check_answer(answer, "Count the faces in data/photo.png and say it", plan, results)
    assert any(problem in p for p in problems), problems
    final = grounded(answer, "Count the faces in data/photo.png and say it", plan, results)
    assert answer not in final
    assert "Found in photo.png: 1 face" in final
    assert "runs/1/0.png (object-detection: image with 1 face boxed)" in final
    assert "text-to-speech (task 1) failed: no available backend serves text-to-speech" in final


@pytest.mark.parametrize(
    "answer",
    [
        "There is 1 face in the photo; I could not read it aloud.",
        "One face was found (score 1.00, about 99.7% sure), boxed in runs/1/0.png.",
        "It is 40% of the way down (at 40 pixels).",
        'The detector says "1 face: face 1.00" and you asked: "count the faces in data/photo.png".',
        "The photo data/photo.png shows a single face.",
    ],
)
def test_an_answer_the_run_supports_is_kept_and_completed(answer):
    plan, results = detection_run()
    assert check_answer(answer, "Count the faces in data/photo.png", plan, results) == []
    final = grounded(answer, "Count the faces in data/photo.png", plan, results)
    assert final.startswith(answer) and "Files:\n- runs/1/0.png" in final and "Not done:" in final


def test_facts_are_formatted_as_people_write_them():
    assert [number(1.0), number(0.8912), number(12)] == ["1", "0.89", "12"]
    plan = Plan([Task(0, "sentence-similarity", args={"text1": "a", "text2": "b"})])
    results = {0: TaskResult(0, "sentence-similarity", status="done", artifacts=[Artifact("data", "similarity 0.89", data={"score": 0.8912})])}
    assert complete("", plan, results) == "Similarity: 0.89 (cosine similarity, -1 to 1)"
    assert check_answer("They are 0.89 similar (89%).", "How similar are a and b?", plan, results) == []
    assert check_answer("They are 0.95 similar.", "How similar are a and b?", plan, results)


def test_a_quoted_result_is_not_repeated_and_a_wrong_path_from_the_llm_is_replaced_in_a_run(tmp_path):
    sign = tmp_path / "sign.png"
    sign.write_bytes(b"png")
    hg, _ = pipeline(
        tmp_path,
        [plan_of(("image-to-text", {"image": str(sign)})), "It says hello; the audio is in SPEECH.wav."],
    )
    run = hg.run(f"What does {sign} say?")
    assert "SPEECH.wav" not in run.answer
    assert run.answer.startswith(f"Text in sign.png: image-to-text(image={sign})")
    hg2, _ = pipeline(tmp_path, [plan_of(("image-to-text", {"image": str(sign)})), "It reads: image-to-text(image=" + str(sign) + ")."])
    run = hg2.run(f"What does {sign} say?")
    assert run.answer == f"It reads: image-to-text(image={sign})."  # the quoted fact is not added again


def test_when_no_task_succeeds_the_failures_are_the_answer_and_the_llm_is_not_asked(tmp_path):
    hg, llm = pipeline(tmp_path, [plan_of(("text-to-image", {"text": "a red bicycle"}))])
    run = hg.run("generate an image of a red bicycle")
    assert [c.stage for c in run.llm_calls] == ["plan"]
    assert run.answer.startswith("Not done:\n- text-to-image (task 0) failed: no available backend serves text-to-image")


def test_a_turn_keeps_results_as_people_read_them_and_failures_as_one_line_each():
    from hgpt_magic.history import render_turn, turn_from_run
    from hgpt_magic.types import Run

    plan, results = detection_run()
    run = Run("Count the faces in data/photo.png and say it", plan=plan, results=results, answer="One face.")
    shown = render_turn(1, turn_from_run(run))
    assert shown.splitlines() == [
        'Request 1: "Count the faces in data/photo.png and say it"',
        "- image file data/photo.png (named in the request)",
        '- text (made by task 0 object-detection): "1 face"',
        "- image file runs/1/0.png (made by object-detection)",
        "- not done: text-to-speech (no available backend serves text-to-speech)",  # made nothing to refer to
    ]


def test_a_label_claims_a_task_only_when_that_task_did_not_finish():
    plan, results = detection_run()
    plan = Plan(list(plan) + [Task(2, "translation", args={"text": "<GENERATED>-0", "language": "German"})])
    results = {**results, 2: TaskResult(2, "translation", status="done", artifacts=[Artifact("text", text="1 Gesicht")])}
    assert check_answer("1 face.\nTranslation: 1 Gesicht", "Count the faces in data/photo.png", plan, results) == []


def test_an_answer_that_retells_the_prompt_starts_with_what_it_found():
    from hgpt_magic.responder import without_preamble

    assert without_preamble("The user asked to count the faces in data/a.png. There is 1 face.") == "There is 1 face."
    echo = "The expert models ran for this request. They found:\n- Transcript of a.wav: hello"
    assert without_preamble(echo) == "- Transcript of a.wav: hello"
    assert without_preamble("The user asked a question.") == "The user asked a question."  # all there is: kept
    assert without_preamble("The result they asked for is 15.70.") == "15.70."


def test_an_answer_shown_as_markdown_keeps_its_line_breaks():
    from hgpt_magic.widgets.render import answer_view

    shown = answer_view("Text in bakery.png: CORNER BAKERY\nTOTAL 12.70\n\nFiles:\n- a.wav\n- b.png").data
    assert shown == "Text in bakery.png: CORNER BAKERY  \nTOTAL 12.70\n\nFiles:\n- a.wav\n- b.png"


def test_a_request_needing_a_task_no_model_serves_gets_the_remedy_in_the_direct_answers_prompt(tmp_path):
    """Asked for a picture of a bird offline, the embedded model refused with no word on the gap and its remedy."""
    from hgpt_magic.catalog import Catalog
    from hgpt_magic.pipeline import HuggingGPT
    from hgpt_magic.testing import ScriptedLLM, TimedExperts

    llm = ScriptedLLM(['{"tasks": []}', "Drawing needs a remote model here: set HF_TOKEN."])
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["image-to-text"])], catalog=Catalog([]), out_dir=tmp_path)
    run = hg.run("Paint me a bird on a branch")
    system = llm.requests[1]["messages"][0]["content"]
    assert "text-to-image (draw an image from a description)" in system and "HF_TOKEN" in system
    assert "image-to-text" not in system.split("available here:")[1]  # served: not listed
    assert run.answer.startswith("Drawing needs a remote model")


def test_a_question_about_earlier_results_is_pointed_at_them_and_a_first_request_is_not():
    """Seen with the embedded model: "Et combien coûtaient les croissants ?" after a receipt was read got the
    unserved-tasks note's "this cannot be done here"; the user message now ends by pointing at the earlier results."""
    from hgpt_magic.responder import FOLLOW_UP_NOTE, Responder

    llm = ScriptedLLM(["Les croissants coûtaient 3.60."] * 2)
    responder = Responder(llm, unserved=["text-to-image (draw an image from a description)"])
    earlier = [Turn("Quel est le total du ticket data/ticket.png ?", resources=[
        Resource("text", "made by task 0 image-to-text", text="Croissant x3 3.60 TOTAL 4.80")])]
    assert responder.respond("Et combien coûtaient les croissants ?", Plan([]), None, {}, history=earlier).endswith("3.60.")
    system, user = llm.requests[0]["messages"]
    assert user["content"].startswith("Earlier in this session:") and "Croissant x3 3.60" in user["content"]
    assert user["content"].endswith("Request: Et combien coûtaient les croissants ?" + FOLLOW_UP_NOTE)
    assert "HF_TOKEN" in system["content"]  # the remedy for a drawing stays in force
    responder.respond("Paint me a bird on a branch", Plan([]), None, {})
    assert llm.requests[1]["messages"][1]["content"] == "Paint me a bird on a branch"


def test_when_a_result_the_user_asked_for_is_missing_the_answer_is_the_runs_own(tmp_path):
    """A transcript made and a drawing that no model here can make: an LLM sentence would say "I drew it"
    (in any language, so no word check can catch it); the answer is the transcript, and what was not done."""
    speech = tmp_path / "a.wav"
    speech.write_bytes(b"RIFF")
    plan = json.dumps({"tasks": [
        {"task": "automatic-speech-recognition", "args": {"audio": str(speech)}},
        {"task": "text-to-image", "args": {"text": "<GENERATED>-0"}},
    ]})
    llm = ScriptedLLM([plan, "Here is your drawing of the bird on the branch."])
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["automatic-speech-recognition"])], catalog=Catalog([]),
                    out_dir=tmp_path)
    run = hg.run(f"Transcribe {speech} and draw what it describes")
    assert [c.stage for c in run.llm_calls] == ["plan"]  # no answer sentence was asked for
    assert "drawing" not in run.answer and "Not done:" in run.answer and "HF_TOKEN" in run.answer
    assert run.results[0].status == "done" and run.results[1].status != "done"


def test_an_answer_that_only_repeats_the_request_is_replaced_by_the_runs_facts():
    plan = Plan([Task(0, "text-to-speech", args={"text": "The appointment is on Tuesday"})])
    results = {0: TaskResult(0, "text-to-speech", status="done", inputs={"text": "The appointment is on Tuesday"},
                             artifacts=[Artifact("audio", path="runs/1/0.wav", text="speech audio (2.0 s, English)")])}
    request = "Und lies die englische Fassung laut vor."
    assert check_answer("Die englische Fassung laut vor.", request, plan, results) == [
        "repeats the request instead of reporting the results"]
    final = grounded("Die englische Fassung laut vor.", request, plan, results)
    assert final.startswith("Files:\n- runs/1/0.wav")
    german = Plan([Task(0, "text-to-speech", args={"text": "Die Bibliothek ist bis Mai zu."})])
    assert check_answer("Die Zusammenfassung laut vor.", "Lies die Zusammenfassung laut vor.", german, results) == [
        "repeats the request instead of reporting the results"]  # "die" is in a result, and says nothing
    # a sentence of its own, a word of a result, or a number is an answer
    for answer in ("Ich habe die englische Fassung vorgelesen.", "Die Fassung: The appointment is on Tuesday.",
                   "Es waren noch mal 1 Gesichter."):
        assert check_answer(answer, request + " Es waren noch mal Gesichter", plan, results) == [], answer
