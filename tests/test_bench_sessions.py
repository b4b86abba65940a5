"""The sessions bench: its checks catch what they name, and a suite runs end to end on a scripted LLM."""

import json

from hgpt_magic.bench import data_path
from hgpt_magic.bench.sessions import (
    SessionState,
    check_request,
    load_suite,
    report,
    run_suite,
    suite_problems,
)
from hgpt_magic.catalog import Catalog
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Artifact, Plan, Run, Task, TaskResult


def a_run(tasks, results, answer, request="req"):
    return Run(request=request, plan=Plan(tasks), results=results, answer=answer, status="done")


def kinds_failed(checks):
    return sorted({c.kind for c in checks if not c.ok})


def test_each_check_catches_its_failure():
    state = SessionState(named={"data/sign.png"}, earlier_facts=["NO PARKING"])
    spec = {"tasks": ["image-to-text", "text-to-speech"], "facts": ["WELCOME"]}
    tasks = [
        Task(0, "object-detection", args={"image": "portrait.png"}),  # invented file, unrequested task
        Task(1, "text-to-speech", dep=[0], args={"text": "<GENERATED>-0"}),
    ]
    results = {
        0: TaskResult(0, "object-detection", status="done", artifacts=[Artifact("data", "1 face: face 1.00 at (1,2,3,4)")]),
        1: TaskResult(1, "text-to-speech", status="failed", inputs={"text": "1 face: face 1.00 at (1,2,3,4)"}, error="x"),
    }
    answer = "The sign says NO PARKING. The object-detection task failed."
    checks = check_request(spec, a_run(tasks, results, answer), state)
    assert kinds_failed(checks) == ["facts", "files", "speech", "stale", "status", "tasks", "unrequested"]


def test_an_answer_from_the_history_may_repeat_earlier_facts_but_not_absent_ones():
    state = SessionState(named={"data/weather.wav"}, earlier_facts=["cold and rainy"])
    answer = "No: the recording says it is cold and rainy today."
    assert kinds_failed(check_request({}, a_run([], {}, answer), state)) == []
    assert kinds_failed(check_request({"absent": ["cold and rainy"]}, a_run([], {}, answer), state)) == ["stale"]
    with_task = [Task(0, "automatic-speech-recognition", args={"audio": "data/weather.wav"})]
    done = {0: TaskResult(0, "automatic-speech-recognition", status="done", artifacts=[Artifact("text", "dinner")])}
    assert kinds_failed(check_request({"allow": ["automatic-speech-recognition"]}, a_run(with_task, done, answer),
                                      state)) == ["stale"]


def test_a_good_request_holds_every_check():
    state = SessionState(named={"data/sign.png"}, earlier_facts=["1 face"])
    spec = {"tasks": ["image-to-text|document-question-answering"], "facts": ["welcome to the library"]}
    tasks = [Task(0, "image-to-text", args={"image": "data/sign.png"}), Task(1, "text-to-image", args={"text": "x"})]
    results = {
        0: TaskResult(0, "image-to-text", status="done", artifacts=[Artifact("text", "WELCOME TO THE\nLIBRARY")]),
        1: TaskResult(1, "text-to-image", status="failed", error="no available backend serves text-to-image"),
    }
    spec["allow"] = ["text-to-image"]
    answer = "The sign reads WELCOME TO THE LIBRARY.\n\nNot done:\n- text-to-image (task 1) failed: no backend"
    checks = check_request(spec, a_run(tasks, results, answer), state)
    assert kinds_failed(checks) == [], [c for c in checks if not c.ok]


def test_a_suite_runs_end_to_end_and_reports_shares(tmp_path):
    suite = {
        "files": {"sign.png": {"sign": ["HELLO"]}},
        "sessions": [
            {
                "id": "s1",
                "requests": [
                    {"text": "What does {data}/sign.png say?", "tasks": ["image-to-text"], "facts": ["image-to-text(image="]},
                    {"text": "and read it aloud", "tasks": ["text-to-speech"], "facts": [".txt"]},
                ],
            },
            {"id": "needs-a-missing-file", "requests": [{"text": "Read {data}/nowhere.png"}]},
        ],
    }

    def plan(*tasks):
        return json.dumps({"tasks": [{"task": t, "id": i, "dep": [], "args": a} for i, (t, a) in enumerate(tasks)]})

    llm = ScriptedLLM(
        [
            plan(("image-to-text", {"image": "data/sign.png"})),
            "It says hello.",
            plan(("text-to-speech", {"text": "hello"})),
            "Here it is, in data/other.wav.",  # a file the run did not make: the grounding check replaces it
        ]
    )
    experts = [TimedExperts(["image-to-text", "text-to-speech"])]
    rows, skipped = run_suite(suite, llm, experts, workdir=tmp_path, catalog=Catalog([]))
    assert [r.plan for r in rows] == [["image-to-text"], ["text-to-speech"]]
    assert skipped and skipped[0].startswith("needs-a-missing-file")
    assert (tmp_path / "data" / "sign.png").stat().st_size > 0
    assert rows[0].answer_replaced == "" and "data/other.wav" in rows[1].answer_replaced
    figures = report(rows, skipped)
    assert figures["requests"] == 2 and figures["held"] == 1.0, [c for r in rows for c in r.checks if not c.ok]
    assert set(figures["by_kind"]) >= {"plan", "tasks", "files", "facts", "stale", "status"}


def test_the_dev_suite_is_well_formed_and_large_enough():
    suite = load_suite(data_path("sessions_dev.json"))
    assert suite_problems(suite) == []
    assert len(suite["sessions"]) >= 30 and sum(len(s["requests"]) for s in suite["sessions"]) >= 100
    assert suite_problems({"files": {"a.png": {"paint": 1}}, "sessions": [{"id": "x", "requests": [
        {"text": "Read {data}/b.png", "tasks": ["ocr"]}]}]}) == [
        "a.png: unknown recipe {'paint': 1}",
        "x: {data}/b.png is not in the suite's files",
        "x: unknown task type 'ocr'",
    ]
