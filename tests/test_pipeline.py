"""The four stages composed: HuggingGPT.run, history, Run JSON round trip, interruption, fallbacks."""

import json

import pytest

from hgpt_magic.catalog import Catalog
from hgpt_magic.experts.llm_tasks import MODEL_ID, LLMExperts
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.planning import PlanError
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Run

PLAN = {
    "tasks": [
        {"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "IMAGE"}},
        {"task": "translation", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0", "language": "French"}},
        {"task": "text-to-speech", "id": 2, "dep": [0], "args": {"text": "<GENERATED>-0"}},
    ]
}


def make_hg(tmp_path, replies, models=("sleep-0",), select_policy=None):
    image = tmp_path / "sign.png"
    image.write_bytes(b"not really a png")
    replies = [r.replace("IMAGE", str(image)) if isinstance(r, str) else r for r in replies]
    llm = ScriptedLLM(replies)
    experts = [TimedExperts(["image-to-text", "text-to-speech"], models=models), LLMExperts()]
    # the requests say IMAGE, not the file's name: allow its folder (see test_hostile_plans.py for the rule)
    hg = HuggingGPT(llm=llm, experts=experts, catalog=Catalog([]), out_dir=tmp_path / "runs", allow_paths=[tmp_path],
                    select_policy=select_policy)
    return hg, llm


def test_run_goes_through_four_stages_with_three_llm_calls_at_most(tmp_path):
    hg, llm = make_hg(
        tmp_path,
        [
            json.dumps(PLAN),  # plan
            json.dumps({"0": {"id": "sleep-0.01", "reason": "fast"}}),  # select: only task 0 has a choice
            "Bonjour",  # translation, served by the controller LLM
            "The sign says hello. Files: ...",  # respond
        ],
        models=("sleep-0", "sleep-0.01"),
        select_policy="always",  # the LLM picks task 0's model although the request names no difference
    )
    run = hg.run("Read IMAGE, translate it to French and say it aloud")
    assert run.status == "done"
    assert [c.stage for c in run.llm_calls] == ["plan", "select", "respond"]
    assert run.selection[1].model == MODEL_ID and run.selection[1].backend == "llm"
    assert run.selection[0].model == "sleep-0.01" and run.selection[0].reason == "fast"
    assert run.results[1].artifacts[0].text == "Bonjour"
    translation_prompt = llm.requests[2]["messages"]
    assert "French" in translation_prompt[0]["content"]
    assert run.answer.startswith("The sign says hello. Files: ...")
    speech = run.results[2].artifact("audio").path
    assert f"Files:\n- {speech} (text-to-speech: audio made by text-to-speech(" in run.answer  # the code lists the files, not the LLM
    assert "Translation into French: Bonjour" in run.answer  # and the facts the LLM's sentence left out
    assert set(run.timings) == {"plan", "select", "execute", "respond"}
    assert run.tokens > 0
    # the respond prompt carries this run's results as facts, and what each file is without its path
    respond_prompt = llm.requests[3]["messages"][0]["content"]
    assert "Translation into French: Bonjour" in respond_prompt
    assert "text-to-speech made a file shown to the user: audio made by text-to-speech(" in respond_prompt
    assert speech not in respond_prompt
    # the run directory holds run.json, which loads back to the same Run
    saved = Run.load(f"{run.run_dir}/run.json")
    assert saved.to_dict() == run.to_dict()
    assert Run.from_json(run.to_json()).to_dict() == run.to_dict()
    assert hg.history[-1].request.startswith("Read")


def test_empty_plan_answers_directly(tmp_path):
    hg, llm = make_hg(tmp_path, ['{"tasks": []}', "Hello! I am fine."])
    run = hg.run("hi, how are you?")
    assert run.answer == "Hello! I am fine." and run.results == {}
    assert [c.stage for c in run.llm_calls] == ["plan", "respond"]


def test_plan_error_is_raised_and_the_failed_run_kept(tmp_path):
    hg, _ = make_hg(tmp_path, ["no plan here", "still none"])
    with pytest.raises(PlanError) as info:
        hg.run("do something")
    assert info.value.raw == "still none"
    assert hg.last_run.status == "failed" and "Could not work out a plan" in hg.last_run.error


def test_failing_respond_call_gives_a_deterministic_summary(tmp_path):
    plan = {"tasks": [{"task": "image-to-text", "id": 0, "dep": [], "args": {"image": "IMAGE"}}]}
    hg, _ = make_hg(tmp_path, [json.dumps(plan)])  # no reply left for the respond call: it raises
    run = hg.run("read IMAGE")
    assert run.status == "done"
    assert run.answer.startswith("Text in sign.png: image-to-text(image=")  # the result, stated by the code
    assert run.llm_calls[-1].stage == "respond" and run.llm_calls[-1].error


def test_stages_can_be_called_one_by_one(tmp_path):
    hg, _ = make_hg(tmp_path, [json.dumps(PLAN), "Bonjour", "done"])
    plan = hg.plan("Read IMAGE aloud and in French")
    selection = hg.select(plan)
    assert [c.model for c in selection] == ["sleep-0", MODEL_ID, "sleep-0"]
    results = hg.execute(plan, selection, request="Read IMAGE aloud and in French")
    assert all(r.status == "done" for r in results.values())
    assert hg.respond("Read IMAGE aloud and in French", plan, selection, results).startswith("done")


def test_history_reaches_the_next_plan_and_reset_clears_it(tmp_path):
    hg, llm = make_hg(tmp_path, ['{"tasks": []}', "It is a cat.", '{"tasks": []}', "ok", '{"tasks": []}', "ok"])
    hg.run("what animal says meow?")
    hg.run("and what colour is it?")
    assert "what animal says meow?" in llm.requests[2]["messages"][-1]["content"]
    hg.reset()
    hg.run("fresh start")
    assert "meow" not in llm.requests[4]["messages"][-1]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        "The answer to the user's request is:\n\nWELCOME TO THE LIBRARY",
        "Sure! Here is the answer to your request:\nWELCOME TO THE LIBRARY",
        "  WELCOME TO THE LIBRARY  ",
    ],
)
def test_an_announcing_first_line_is_dropped_from_the_answer(reply):
    from hgpt_magic.responder import without_preamble

    assert without_preamble(reply) == "WELCOME TO THE LIBRARY"
    assert without_preamble("The answer to the user's request is:") == "The answer to the user's request is:"


def test_the_history_says_what_was_not_done_so_the_next_plan_does_not_ask_again(tmp_path):
    """After a video no model here can make, "then at least write a poem about rockets" was planned as the video
    again: the planner saw the earlier request and nothing of what became of it."""
    from hgpt_magic.history import history_block

    video = json.dumps({"tasks": [{"task": "text-to-video", "args": {"text": "a rocket launch"}}]})
    poem = json.dumps({"tasks": [{"task": "text-generation", "args": {"text": "a two-line poem about rockets"}}]})
    llm = ScriptedLLM([video, poem, "Roses are red, rockets fly."])
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["text-generation"])], catalog=Catalog([]), out_dir=tmp_path)
    hg.run("Make a video of a rocket launch")
    assert hg.history[0].not_done == ["text-to-video (no available backend serves text-to-video)"]
    hg.run("Then at least write a two-line poem about rockets")
    planned_with = llm.requests[1]["messages"][-1]["content"]
    assert '- not done: text-to-video (no available backend serves text-to-video)' in planned_with
    assert hg.history[1].not_done == [] and "not done" not in history_block(hg.history[1:], 600)
