"""The sessions bench: its checks catch what they name, a suite runs end to end on a scripted LLM, the
shipped suites are as large as the issue asks, and dev and held-out parts are reported apart."""

import json
import wave
from dataclasses import asdict

import pytest

from hgpt_magic.bench import data_path
from hgpt_magic.bench.__main__ import main as bench_main
from hgpt_magic.bench.session_data import make_file, recipe_problem
from hgpt_magic.bench.sessions import (
    SUITES,
    SessionState,
    check_request,
    load_suite,
    report,
    report_parts,
    run_suite,
    select_sessions,
    suite_path,
    suite_problems,
)
from hgpt_magic.bench.splits import family, split_problems, split_suite
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
        "a.png: a recipe names one of ['no_speech', 'photo', 'receipt', 'sign', 'speech'], got {'paint': 1}",
        "x: {data}/b.png is not in the suite's files",
        "x: unknown task type 'ocr'",
    ]


def plan_json(*tasks):
    return json.dumps({"tasks": [{"task": t, "id": i, "dep": [], "args": a} for i, (t, a) in enumerate(tasks)]})


def two_family_suite():
    """Two families of two phrasings each, split by seed 1 (one family held out)."""
    sessions = [
        {"id": f"{name}/{style}", "family": name, "requests": [{"text": text, "tasks": [task], "facts": [fact]}]}
        for name, task, fact, phrasings in [
            ("sign", "image-to-text", "HELLO", ["Read {data}/sign.png", "what does {data}/sign.png say?"]),
            ("similar", "sentence-similarity", "alike", ["compare 'a' and 'b'", "how alike are 'a' and 'b'?"]),
        ]
        for style, text in zip(["imperative", "question"], phrasings, strict=True)
    ]
    return split_suite({"files": {"sign.png": {"sign": ["HELLO"]}}, "sessions": sessions}, seed=1, share=0.5)


def test_the_split_holds_out_whole_families_as_its_seed_says():
    suite = two_family_suite()
    assert split_suite(suite, 1, 0.5) == suite  # the same seed makes the same split
    splits = {family(s): {x["split"] for x in suite["sessions"] if family(x) == family(s)} for s in suite["sessions"]}
    assert sorted(map(sorted, splits.values())) == [["dev"], ["held_out"]]  # each family whole, one of each
    assert split_problems(suite) == []
    moved = {**suite, "sessions": [{**suite["sessions"][0], "split": "held_out" if suite["sessions"][0]["split"] == "dev"
                                    else "dev"}, *suite["sessions"][1:]]}
    assert len(split_problems(moved)) == 1 and "seed 1 puts family" in split_problems(moved)[0]
    unseeded = {"sessions": [{"id": "a", "split": "held_out", "requests": []}]}
    assert split_problems(unseeded) == ["a: a split without a split_seed"]
    assert [s["id"] for s in select_sessions(suite, "held_out")["sessions"]] == [
        s["id"] for s in suite["sessions"] if s["split"] == "held_out"]
    assert len(select_sessions(suite, "all", start=1, limit=2)["sessions"]) == 2


def test_dev_and_held_out_parts_are_reported_apart(tmp_path, capsys):
    suite = two_family_suite()
    held_family = next(family(s) for s in suite["sessions"] if s["split"] == "held_out")
    replies = []
    for session in suite["sessions"]:
        if family(session) == "sign":
            replies.append(plan_json(("image-to-text", {"image": "data/sign.png"})))
            replies.append("It says HELLO.")
        else:
            replies.append(plan_json(("sentence-similarity", {"text1": "a", "text2": "b"})))
            replies.append("They are alike.")
    experts = [TimedExperts(["image-to-text", "sentence-similarity"])]
    llm = ScriptedLLM(replies)
    rows, skipped = run_suite(suite, llm, experts, workdir=tmp_path, catalog=Catalog([]), name="mini")
    assert not skipped and {r.suite for r in rows} == {"mini"}
    assert {r.split for r in rows if r.family == held_family} == {"held_out"}
    # one held-out request misses its fact: only the held-out part shows it
    broken = next(r for r in rows if r.split == "held_out")
    broken.checks = [c if c.kind != "facts" else type(c)("facts", False, "missing") for c in broken.checks]
    parts = report_parts(rows)
    assert set(parts) == {"mini/dev", "mini/held_out"}
    assert parts["mini/dev"]["held"] == 1.0 and parts["mini/dev"]["requests"] == 2
    assert parts["mini/held_out"]["held"] < 1.0 and parts["mini/held_out"]["by_kind"]["facts"]["failed"] == 1
    assert parts["mini/dev"]["invented_files"] == 0 and parts["mini/dev"]["stale_answers"] == 0

    details = tmp_path / "rows.jsonl"
    details.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows), encoding="utf-8")
    assert bench_main(["sessions", "--from-details", str(details)]) == 0
    printed = capsys.readouterr().out.splitlines()
    figures = json.loads(printed[0])
    assert set(figures["parts"]) == {"mini/dev", "mini/held_out"}
    assert figures["parts"]["mini/held_out"]["by_kind"]["facts"]["failed"] == 1
    assert "mini/dev" in printed[1] and "mini/held_out" in printed[1]  # the table's columns
    assert bench_main(["sessions", "--from-details", str(details), "--split", "held_out"]) == 0
    assert set(json.loads(capsys.readouterr().out.splitlines()[0])["parts"]) == {"mini/held_out"}


def test_invented_files_and_stale_answers_are_counted_and_suites_summed():
    state = SessionState(named={"data/a.png"}, earlier_facts=["WET FLOOR"])
    tasks = [Task(0, "image-to-text", args={"image": "data/b.png"}), Task(1, "canny-control", args={"image": "c.png"})]
    results = {0: TaskResult(0, "image-to-text", status="done", artifacts=[Artifact("text", "x")]),
               1: TaskResult(1, "canny-control", status="done", artifacts=[Artifact("text", "y")])}
    from hgpt_magic.bench.sessions import RequestRow

    rows = []
    for suite, split, lang in [("one", "dev", "en"), ("two", "held_out", "de"), ("two", "held_out", "fr")]:
        checks = check_request({"allow": ["image-to-text", "canny-control"]},
                               a_run(tasks, results, "It still says WET FLOOR."), state)
        rows.append(RequestRow("s", "r", suite=suite, split=split, lang=lang, checks=checks))
    parts = report_parts(rows)
    assert set(parts) == {"one/dev", "two/held_out", "all/dev", "all/held_out"}
    assert parts["one/dev"]["invented_files"] == 2 and parts["one/dev"]["stale_answers"] == 1
    assert parts["all/held_out"]["invented_files"] == 4 and parts["all/held_out"]["requests"] == 2
    assert set(parts["two/held_out"]["by_language"]) == {"de", "fr"} and "by_language" not in parts["one/dev"]


def wav_samples(path):
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), wav.readframes(wav.getnframes())


def test_speech_in_another_language_is_the_same_clip_on_every_run(tmp_path):
    german = {"speech": "Der Zug nach Berlin fährt um acht Uhr", "lang": "de"}
    first, again = make_file(tmp_path / "a.wav", german), make_file(tmp_path / "b.wav", german)
    rate, samples = wav_samples(first)
    assert len(samples) / 2 / rate > 1.0 and samples == wav_samples(again)[1]  # over a second, deterministic
    assert wav_samples(make_file(tmp_path / "fr.wav", {**german, "lang": "fr"}))[1] != samples  # another voice
    noisy = make_file(tmp_path / "n.wav", {**german, "noise": 0.05})
    assert wav_samples(noisy)[1] != samples and wav_samples(noisy) == wav_samples(make_file(tmp_path / "m.wav",
                                                                                            {**german, "noise": 0.05}))
    rate, quiet = wav_samples(make_file(tmp_path / "q.wav", {"no_speech": 2.0}))
    assert len(quiet) / 2 / rate == 2.0
    assert recipe_problem({"speech": "x", "voice": "y"}) == "speech takes no option voice"
    with pytest.raises(ValueError, match="cannot speak"):
        make_file(tmp_path / "x.wav", {"speech": "hallo", "lang": "xx"})


def test_every_shipped_suite_is_well_formed_and_as_large_as_its_kind_needs():
    suites = {name: load_suite(suite_path(name)) for name in SUITES}
    for name, suite in suites.items():
        assert suite_problems(suite) == [], name
    paraphrases = suites["paraphrases"]
    families = {family(s) for s in paraphrases["sessions"]}
    assert len(families) >= 15
    assert all(sum(len(s["requests"]) for s in paraphrases["sessions"] if family(s) == f) >= 5 for f in families)
    languages = [r.get("lang", "en") for s in suites["languages"]["sessions"] for r in s["requests"]]
    assert sum(lang != "en" for lang in languages) >= 30 and len(set(languages) - {"en"}) >= 3
    for name in ("paraphrases", "languages"):
        assert {s["split"] for s in suites[name]["sessions"]} == {"dev", "held_out"}, name
    # the checks that keep them so
    thin = {"kind": "paraphrases", "files": {}, "sessions": [
        {"id": "f/1", "family": "f", "requests": [{"text": "a", "style": "imperative"}]}]}
    assert suite_problems(thin) == ["family f: 1 phrasings, fewer than 5",
                                    "family f: no question, need, indirect, typo phrasing"]
    english = {"kind": "languages", "files": {}, "sessions": [{"id": "s", "requests": [
        {"text": "a", "lang": "de"}, {"text": "b"}, {"text": "c", "lang": "German"}]}]}
    assert suite_problems(english) == ["s: lang 'German' is not a two-letter language code",
                                       "2 requests in other languages than English, fewer than 30",
                                       "requests in 2 other languages than English, fewer than 3"]


def test_the_cli_runs_the_chosen_suite_and_part_and_refuses_a_broken_suite(tmp_path, monkeypatch, capsys):
    sessions = [
        {"id": "greet/imperative", "family": "greet", "requests": [
            {"text": "Translate 'hello world' into Spanish", "tasks": ["translation"], "facts": ["hola"]}]},
        {"id": "greet/question", "family": "greet", "requests": [
            {"text": "How is 'hello world' said in Spanish?", "tasks": ["translation"], "facts": ["hola"]}]},
        {"id": "thanks/imperative", "family": "thanks", "requests": [{"text": "Say thanks"}]},
    ]
    suite = split_suite({"files": {}, "sessions": sessions}, seed=3, share=0.5)
    held = {s["split"] for s in suite["sessions"] if family(s) == "greet"}.pop()
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite), encoding="utf-8")
    plan = plan_json(("translation", {"text": "hello world"}))
    llm = ScriptedLLM([lambda messages, schema: plan if schema else "Hola mundo."] * 12)
    monkeypatch.setattr("hgpt_magic.bench.load_llm", lambda spec, threads=None: llm)
    monkeypatch.chdir(tmp_path)
    details = tmp_path / "rows.jsonl"
    assert bench_main(["sessions", "--suite", str(path), "--experts", "llm", "--details", str(details),
                       "--quiet", "--split", held]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[0])
    assert list(figures["parts"]) == [f"suite/{held}"]  # a suite file is called by its stem
    part = figures["parts"][f"suite/{held}"]
    assert part["requests"] == 2 and part["held"] == 1.0 and part["sessions"] == 2
    assert [json.loads(line)["split"] for line in details.read_text().splitlines()] == [held, held]

    path.write_text(json.dumps({**suite, "sessions": [*suite["sessions"], {"id": "x", "requests": [
        {"text": "Read {data}/nowhere.png"}]}]}), encoding="utf-8")
    assert bench_main(["sessions", "--suite", str(path), "--experts", "llm", "--quiet"]) == 2
    assert "x: {data}/nowhere.png is not in the suite's files" in capsys.readouterr().err


def test_a_made_file_fact_needs_a_file_this_run_made():
    state = SessionState(named={"data/memo.wav"})
    tasks = [Task(0, "text-to-speech", args={"text": "hello"})]
    results = {0: TaskResult(0, "text-to-speech", status="done",
                             artifacts=[Artifact("audio", "speech", path="runs/r1/task0-text-to-speech-ab12.wav")])}
    spec = {"tasks": ["text-to-speech"], "facts": ["{made}.wav"]}
    assert kinds_failed(check_request(spec, a_run(tasks, results, "Spoken: runs/r1/task0-text-to-speech-ab12.wav"),
                                      state)) == []
    assert kinds_failed(check_request(spec, a_run(tasks, results, "I read data/memo.wav aloud."), state)) == ["facts"]
    assert kinds_failed(check_request({**spec, "facts": ["{made}.png"]}, a_run(
        tasks, results, "Spoken: runs/r1/task0-text-to-speech-ab12.wav"), state)) == ["facts"]


def test_a_file_name_states_no_fact():
    state = SessionState(named={"data/cat.png"})
    tasks = [Task(0, "image-to-text", args={"image": "data/cat.png"})]
    results = {0: TaskResult(0, "image-to-text", status="done", artifacts=[Artifact("text", "O")])}
    spec = {"tasks": ["image-to-text"], "facts": ["cat|tabby"]}
    assert kinds_failed(check_request(spec, a_run(tasks, results, "The text in cat.png is O."), state)) == ["facts"]
    assert kinds_failed(check_request(spec, a_run(tasks, results, "A tabby (labels for cat.png)."), state)) == []
    assert kinds_failed(check_request({**spec, "facts": [".png", "15.70"]}, a_run(
        tasks, results, "Total 15.70 in cat.png"), state)) == []


def test_speech_must_say_what_the_request_asked_to_hear():
    state = SessionState(named={"data/sign.png", "data/astronaut.png"})
    tasks = [Task(0, "object-detection", args={"image": "data/astronaut.png"}),
             Task(1, "text-to-speech", dep=[0], args={"text": "<GENERATED>-0"})]
    wav = Artifact("audio", "speech", path="runs/r/task1-text-to-speech-aa.wav")
    results = {0: TaskResult(0, "object-detection", status="done", artifacts=[Artifact("text", "1 face found")]),
               1: TaskResult(1, "text-to-speech", status="done", inputs={"text": "1 face found"}, artifacts=[wav])}
    spec = {"tasks": ["object-detection", "text-to-speech"], "speaks": ["WELCOME TO THE LIBRARY|welcome"]}
    checks = check_request(spec, a_run(tasks, results, "Read aloud: runs/r/task1-text-to-speech-aa.wav"), state)
    assert kinds_failed(checks) == ["speech"] and "1 face found" in [c for c in checks if not c.ok][0].detail
    results[1].inputs["text"] = "WELCOME TO THE LIBRARY"
    assert kinds_failed(check_request(spec, a_run(tasks, results, "Read aloud."), state)) == []
