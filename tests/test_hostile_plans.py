# ruff: noqa: F811 - `notebook` is a fixture imported from test_magic; tests take it as a parameter
"""A plan touches only what the user gave it; faults stay inside the run (issue 13).

Hostile plans come from a scripted LLM; the experts are endpoints on 127.0.0.1 that record every byte
they receive, so "nothing leaked" is checked on what really crossed the wire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_servers import FakeOpenAI, FakeServer, Reply, png_bytes, point_hub_at
from test_magic import session as notebook  # noqa: F401 - test_magic's IPython shell fixture, as `notebook`

from hgpt_magic.catalog import Catalog
from hgpt_magic.cli import Printer
from hgpt_magic.executor import Executor, RunInterrupted, TaskEvent
from hgpt_magic.experts import make_experts
from hgpt_magic.experts.base import ExpertBackend
from hgpt_magic.experts.endpoint import Endpoint, EndpointExperts
from hgpt_magic.llm import LLMError, OpenAICompatibleLLM, gguf
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.registry import Registry, default_registry
from hgpt_magic.resources import MAX_TASKS, Allowed, ResourceError, check_plan, fetch_url
from hgpt_magic.secrets import SECRET_ENV_VARS
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Artifact, Attempt, Candidate, Choice, Plan, Run, Selection, Task, TaskResult

#: HuggingGPT's task types under a name with no shipped demos: planning needs no embedding model.
REGISTRY = Registry.of(list(default_registry()), name="tests")
SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- s3cr3t-b1t5-0f-th3-k3y"
TOKEN = "hf_UserHubToken0123456789abcdef"
REQUEST = "What animal is in my holiday photo?"


def plan_json(*tasks: dict) -> str:
    return json.dumps({"tasks": list(tasks)})


def task(task_id: int, name: str, **args: str) -> dict:
    return {"task": name, "id": task_id, "dep": [], "args": args}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A home with an SSH key and a token file, a working folder with a photo, and recording endpoints."""
    for var in SECRET_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HGPT_ALLOW_PATHS", raising=False)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_bytes(SECRET)
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_bytes(SECRET)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(SECRET)
    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    (work / "photos" / "holiday.png").write_bytes(png_bytes())
    (work / "photos" / "link.png").symlink_to(home / ".ssh" / "id_rsa")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    with FakeServer() as srv:
        point_hub_at(monkeypatch, "http://127.0.0.1:9")  # nothing there: endpoints need no Hub
        for path in ("/vit", "/ocr", "/asr"):
            srv.route("POST", path, Reply(200, [{"label": "tabby cat", "score": 0.9}] if path == "/vit"
                                           else [{"generated_text": "a cat"}] if path == "/ocr" else {"text": "meow"}))
        yield type("World", (), {"tmp": tmp_path, "home": home, "work": work, "server": srv})


def endpoint_experts(srv: FakeServer) -> list[ExpertBackend]:
    return make_experts("endpoint", endpoints={
        "image-classification": srv.url + "/vit",
        "image-to-text": srv.url + "/ocr",
        "automatic-speech-recognition": srv.url + "/asr",
    })


def pipeline(world, replies, **kwargs) -> HuggingGPT:
    return HuggingGPT(llm=ScriptedLLM(replies), experts=endpoint_experts(world.server), registry=REGISTRY,
                      catalog=Catalog([]), out_dir=world.tmp / "runs", **kwargs)


def leaked(*servers: FakeServer) -> bool:
    return any(SECRET in seen.body or SECRET.decode() in json.dumps(seen.headers) for s in servers for seen in s.requests)


# --------------------------------------------------------------------------- 1. the hostile corpus

HOSTILE = {
    "home key via ~": task(0, "image-classification", image="~/.ssh/id_rsa"),
    "absolute path": task(0, "image-to-text", image="ABS/etc/passwd"),
    "token file": task(0, "automatic-speech-recognition", audio="~/.cache/huggingface/token"),
    "dot-dot out of the photo folder": task(0, "image-classification", image="photos/../../home/.ssh/id_rsa"),
    "symlink in an allowed folder": task(0, "image-classification", image="photos/link.png"),
    "internal URL": task(0, "image-classification", image="INTERNAL/secret"),
    "metadata URL": task(0, "image-classification", image="http://169.254.169.254/latest/meta-data/"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_plan_is_refused_before_anything_runs_and_nothing_leaks(world, name):
    with FakeServer() as intranet:
        intranet.route("GET", "/secret", Reply(200, SECRET))
        spec = json.loads(json.dumps(HOSTILE[name]).replace("ABS", str(world.tmp)).replace("INTERNAL", intranet.url))
        hg = pipeline(world, [plan_json(spec), "It is a cat."], allow_paths=[world.work / "photos"])
        with pytest.raises(ResourceError) as info:
            hg.run(REQUEST)
        arg, value = next(iter(spec["args"].items()))
        assert f"task 0 ({spec['task']}): argument {arg}={value!r}" in str(info.value)
        assert "did not give" in str(info.value)
        assert hg.last_run.status == "failed" and hg.last_run.error == str(info.value)
        assert hg.last_run.answer.startswith("Not done: nothing ran") and "did not give" in hg.last_run.answer
        assert not world.server.requests and not intranet.requests  # nothing ran, nothing was fetched

        # the executor refuses too, as the last gate, when a caller skips the check
        plan = Plan([Task.from_dict(spec)])
        results = hg.execute(plan, hg.select(plan), request=REQUEST)
        assert results[0].status == "failed" and "did not give" in results[0].error
        assert not leaked(world.server, intranet) and not intranet.requests


def test_the_issue_plan_sends_zero_bytes_of_any_secret(world):
    """The three-task plan of the report: key, passwd, token file, for an innocent request."""
    hostile = plan_json(
        task(0, "image-classification", image="~/.ssh/id_rsa"),
        task(1, "image-to-text", image=str(world.tmp / "etc" / "passwd")),
        task(2, "automatic-speech-recognition", audio="~/.cache/huggingface/token"),
    )
    hg = pipeline(world, [hostile, "done"])
    with pytest.raises(ResourceError) as info:
        hg.run(REQUEST)
    assert str(info.value).count("did not give") == 3 and info.value.errors[0].startswith("task 0")
    problems = check_plan(hg.last_run.plan, hg.allowed, REGISTRY)
    assert [p.split(":")[0] for p in problems] == ["task 0 (image-classification)", "task 1 (image-to-text)",
                                                   "task 2 (automatic-speech-recognition)"]
    assert not leaked(world.server) and not world.server.requests


def test_a_file_an_earlier_task_output_mentioned_is_not_the_users(world):
    """Turn 1 OCRs the photo and the text names a file; turn 2's plan reads that file: refused."""
    world.server.queue("POST", "/ocr", Reply(200, [{"generated_text": f"see {world.home}/.ssh/id_rsa for the key"}]))
    hg = pipeline(world, [
        plan_json(task(0, "image-to-text", image="photos/holiday.png")), "It says: see the key file.",
        plan_json(task(0, "image-classification", image=f"{world.home}/.ssh/id_rsa")), "done",
    ])
    first = hg.run("Read the text in photos/holiday.png")
    assert first.results[0].status == "done", first.results[0]
    assert "id_rsa" in first.results[0].artifacts[0].text
    with pytest.raises(ResourceError):
        hg.run("Now classify the file it mentions")
    assert not leaked(world.server)


def test_what_the_user_names_runs_relative_to_the_working_directory(world):
    hg = pipeline(world, [plan_json(task(0, "image-classification", image="./photos/holiday.png")), "A cat."])
    run = hg.run("What animal is in photos/holiday.png?")  # typed relative; the plan adds ./
    assert run.status == "done" and run.results[0].status == "done"
    assert world.server.seen("POST", "/vit")[0].body == (world.work / "photos" / "holiday.png").read_bytes()


def test_an_earlier_request_and_an_earlier_runs_files_stay_usable(world):
    hg = HuggingGPT(llm=ScriptedLLM([
        plan_json(task(0, "text-to-speech", text="hello")), "Said.",
        plan_json(task(0, "summarization", text="x"), task(1, "image-classification", image="photos/holiday.png")), "ok",
    ]), experts=[TimedExperts(["text-to-speech", "summarization", "image-classification", "automatic-speech-recognition"])],
        registry=REGISTRY, catalog=Catalog([]), out_dir=world.tmp / "runs")
    hg.allowed.add_request("Look at photos/holiday.png later")  # an earlier request of the session
    first = hg.run("Say hello")
    speech = first.results[0].artifact("audio").path
    plan = Plan([Task(0, "automatic-speech-recognition", [], {"audio": speech})])
    assert check_plan(plan, hg.allowed, REGISTRY) == []  # made by an earlier run of this session
    second = hg.run("Summarise x and classify the photo")
    assert second.status == "done"


def test_allow_paths_and_the_environment_widen_it_to_chosen_folders(world, monkeypatch):
    plan = Plan([Task(0, "image-classification", [], {"image": "~/.ssh/id_rsa"})])
    assert check_plan(plan, Allowed.for_session(), REGISTRY)
    assert check_plan(plan, Allowed.for_session([world.home]), REGISTRY) == []
    monkeypatch.setenv("HGPT_ALLOW_PATHS", f"/nonexistent{os.pathsep}{world.home / '.ssh'}")
    assert check_plan(plan, Allowed.for_session(), REGISTRY) == []


def test_an_explicit_accept_is_the_users_word_and_is_recorded_in_the_run(world):
    hg = pipeline(world, [plan_json(task(0, "image-classification", image="photos/holiday.png")), "A cat."])
    run = hg.run(REQUEST, plan_only=True)  # the editor shows the refusal on the row; nothing ran
    assert check_plan(run.plan, hg.allowed, REGISTRY)
    with pytest.raises(ResourceError):
        hg.finish(run)
    hg.allowed.accept("photos/holiday.png")
    hg.finish(run)
    assert run.status == "done" and run.accepted == ["photos/holiday.png"]
    assert Run.load(Path(run.run_dir) / "run.json").accepted == ["photos/holiday.png"]


# --------------------------------------------------------------------------- URLs


def test_a_url_the_user_gave_is_fetched_by_the_guard_and_its_bytes_forwarded(world):
    picture = png_bytes((8, 8))
    with FakeServer() as web:
        web.route("GET", "/cat.png", Reply(200, picture, {"Content-Type": "image/png"}))
        url = web.url.replace("127.0.0.1", "localhost") + "/cat.png"
        hg = pipeline(world, [plan_json(task(0, "image-classification", image=url)), "A cat."])
        run = hg.run(f"What is in {url}?")
    assert run.results[0].status == "done" and run.results[0].inputs["image"] == url
    assert world.server.seen("POST", "/vit")[0].body == picture


def test_a_redirect_to_a_non_public_address_the_user_did_not_give_is_refused(world):
    with FakeServer() as web:
        web.route("GET", "/secret", Reply(200, SECRET))
        web.route("GET", "/cat.png", Reply(302, b"", {"Location": web.url + "/secret"}))  # to 127.0.0.1
        url = web.url.replace("127.0.0.1", "localhost") + "/cat.png"
        hg = pipeline(world, [plan_json(task(0, "image-classification", image=url)), "A cat."])
        run = hg.run(f"What is in {url}?")
        assert [s.path for s in web.requests] == ["/cat.png"]  # the redirect was not followed
    result = run.results[0]
    assert result.status == "failed" and "non-public address 127.0.0.1" in result.error
    assert not leaked(world.server)


def test_fetch_url_refuses_urls_not_given_and_follows_redirects_on_a_given_host(tmp_path):
    with FakeServer() as web:
        web.route("GET", "/a", Reply(301, b"", {"Location": "/b"}))
        web.route("GET", "/b", Reply(200, b"bytes of b"))
        allowed = Allowed.for_session()
        with pytest.raises(ResourceError, match="did not give"):
            fetch_url(web.url + "/a", allowed, tmp_path)
        allowed.add_request(f"fetch {web.url}/a please.")
        assert fetch_url(web.url + "/a", allowed, tmp_path).read_bytes() == b"bytes of b"


# --------------------------------------------------------------------------- 2. tokens


@pytest.mark.parametrize("url, gets_token", [
    ("https://api-inference.huggingface.co/models/x", True),
    ("https://huggingface.co/x", True),
    ("https://abc.us-east-1.aws.endpoints.huggingface.cloud", True),
    ("https://me-space.hf.space", True),
    ("https://evilhuggingface.co/x", False),
    ("https://huggingface.co.evil.com/x", False),
    ("https://evil.com/huggingface.co", False),
    ("https://nothf.space", False),
    ("http://huggingface.co/x", False),  # not in clear
    ("https://user:pw@evilhuggingface.co", False),
])
def test_the_hf_token_goes_only_to_hf_hosts(monkeypatch, url, gets_token):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert (EndpointExperts._token_for(Endpoint("image-classification", url)) == TOKEN) is gets_token


def test_an_echoed_key_is_masked_in_the_answer_run_json_and_printed_output(world, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hg = HuggingGPT(llm=ScriptedLLM([plan_json(task(0, "summarization", text=f"the key is {TOKEN}")),
                                     f"Your key is {TOKEN}, and OPENAI sk-abcdefghijklmnop."]),
                    experts=[TimedExperts(["summarization"])], registry=REGISTRY, catalog=Catalog([]),
                    out_dir=world.tmp / "runs")
    run = hg.run(f"Summarise: the key is {TOKEN}")  # a {var} that held the key
    assert TOKEN not in run.answer and "sk-abcdefghijklmnop" not in run.answer
    saved = (Path(run.run_dir) / "run.json").read_text()
    assert TOKEN not in saved and Run.load(Path(run.run_dir) / "run.json").status == "done"
    say = Printer(sys.stdout)
    say.plan(run)
    for result in run.results.values():
        say.event(TaskEvent("finished", result))
    assert TOKEN not in capsys.readouterr().out


# --------------------------------------------------------------------------- 3. a bad expert cannot crash the run


class Bad(ExpertBackend):
    """An expert that misbehaves in the way its model id says."""

    name = "bad"
    offline = True

    def can_serve(self, task, model):
        return True

    def run(self, task, model, inputs, ctx):
        if model == "exit":
            raise SystemExit(3)
        if model == "ctrl-c":
            raise KeyboardInterrupt
        if model == "none":
            return None
        if model == "strings":
            return ["a cat"]
        if model == "wrong-kind":
            return [Artifact(kind="audio", path=str(ctx.new_path(".wav")))]
        if model == "outside":
            return [Artifact(kind="image", path="/etc/hostname")]
        if model == "missing":
            return [Artifact(kind="image", path=str(ctx.run_dir / "nothing.png"))]
        raise AssertionError(model)


def bad_run(tmp_path, model, name="canny-control"):
    plan = Plan([Task(0, name, [], {"text": "x"} if name == "summarization" else {"image": str(tmp_path / "in.png")})])
    (tmp_path / "in.png").write_bytes(png_bytes())
    selection = Selection({0: Choice(0, model, "bad", "test", [Candidate(model, "bad")])})
    executor = Executor([Bad()], allowed=Allowed.for_session([tmp_path]), registry=REGISTRY)
    return executor.execute(plan, selection, tmp_path / "run")[0]


@pytest.mark.parametrize("model, reason", [
    ("exit", "SystemExit: 3"),
    ("none", "returned NoneType, not a list of Artifacts"),
    ("strings", "a list holding str"),
    ("wrong-kind", "returned a 'audio' artifact; canny-control makes image"),
    ("outside", "outside the run directory"),
    ("missing", "does not exist"),
])
def test_a_bad_expert_fails_its_task_with_a_clear_reason(tmp_path, model, reason):
    result = bad_run(tmp_path, model)
    assert result.status == "failed" and reason in result.error


def test_keyboard_interrupt_from_an_expert_becomes_the_runs_interrupt(tmp_path):
    with pytest.raises(RunInterrupted) as info:
        bad_run(tmp_path, "ctrl-c")
    assert info.value.results[0].status == "cancelled"


def test_ctrl_c_during_the_answer_ends_interrupted_and_run_json_loads(world):
    def interrupt(messages, schema):
        raise KeyboardInterrupt

    hg = HuggingGPT(llm=ScriptedLLM([plan_json(task(0, "summarization", text="x")), interrupt]),
                    experts=[TimedExperts(["summarization"])], registry=REGISTRY, catalog=Catalog([]),
                    out_dir=world.tmp / "runs")
    with pytest.raises(RunInterrupted) as info:
        hg.run("Summarise x")
    run = info.value.run
    saved = Run.load(Path(run.run_dir) / "run.json")
    assert saved.status == "interrupted" and saved.results[0].status == "done"


def test_an_expert_crash_ends_the_run_done_with_the_task_failed(world):
    hg = HuggingGPT(llm=ScriptedLLM([plan_json(task(0, "canny-control", image="photos/holiday.png")), "sorry"]),
                    experts=[Bad()], registry=REGISTRY, catalog=Catalog([]), out_dir=world.tmp / "runs")
    plan = Plan([Task(0, "canny-control", [], {"image": "photos/holiday.png"})])
    run = Run(request="edges of photos/holiday.png", plan=plan,
              selection=Selection({0: Choice(0, "exit", "bad", "test")}))
    hg.allowed.add_request(run.request)
    hg.finish(run)
    saved = Run.load(Path(run.run_dir) / "run.json")
    assert saved.status == "done" and saved.results[0].status == "failed" and "SystemExit" in saved.results[0].error


# --------------------------------------------------------------------------- 4. time limits bound the process


def cli(*args, env=None, **kwargs):
    """The CLI as a terminal starts it. A test run started in the background (`cmd &`, nohup) inherits SIGINT
    "ignored" and would pass that to the child, which then never sees Ctrl-C: while the child starts, this
    process holds Python's own handler, so the child begins with SIGINT's default, as from a shell prompt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, "-m", "hgpt_magic.cli", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def slow_cli(world, tmp_path):
    """A CLI run whose only task hangs at its endpoint for 30 s: the LLM and the endpoint are on 127.0.0.1."""
    slow = world.server
    slow.route("POST", "/hang", Reply(200, [{"label": "cat", "score": 1.0}], delay=30))
    config = tmp_path / "endpoints.json"
    config.write_text(json.dumps({"image-classification": slow.url + "/hang"}))
    with FakeOpenAI([plan_json(task(0, "image-classification", image="photos/holiday.png")), "It timed out."]) as llm:
        env = {**os.environ, "HGPT_ENDPOINTS": str(config), "HGPT_LLM_RETRIES": "0", "HGPT_OUT": str(tmp_path / "runs"),
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        yield lambda *extra: cli("--llm", f"{llm.base_url}#tiny", "--experts", "endpoint", *extra,
                                 "What is in photos/holiday.png?", env=env, cwd=world.work)


def wait_for_line(proc, text: str, limit: float = 60.0) -> float:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return time.monotonic()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{text!r} never printed")


def test_the_cli_exits_within_2_s_after_a_task_timeout(slow_cli):
    proc = slow_cli("--timeout", "1")
    seen = wait_for_line(proc, "timed out after 1 s")
    proc.wait(timeout=20)
    assert time.monotonic() - seen < 2.0 and proc.returncode == 1


def test_the_cli_exits_within_2_s_after_ctrl_c(slow_cli):
    proc = slow_cli("--timeout", "60")
    wait_for_line(proc, "running on")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert time.monotonic() - sent < 2.0 and proc.returncode == 130


@pytest.mark.parametrize("args", [
    ["--timeout", "0"], ["--timeout", "-5"], ["--timeout", "nan"], ["--timeout", "inf"],
    ["--llm", "bogus"], ["--experts", "bogus"],
])
def test_bad_limits_and_specs_are_usage_errors(args):
    proc = subprocess.run([sys.executable, "-m", "hgpt_magic.cli", *args, "hello"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_refused_plan_is_one_line_and_exit_1_from_the_cli(world, tmp_path):
    with FakeOpenAI([plan_json(task(0, "image-classification", image="~/.ssh/id_rsa"))]) as llm:
        env = {**os.environ, "HGPT_OUT": str(tmp_path / "runs"), "HGPT_LLM_RETRIES": "0",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.run([sys.executable, "-m", "hgpt_magic.cli", "--llm", f"{llm.base_url}#tiny",
                               "--experts", "local", REQUEST], capture_output=True, text=True, env=env,
                              cwd=world.work, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and "argument image='~/.ssh/id_rsa'" in last[0], proc.stderr


# --------------------------------------------------------------------------- 5. limits on what an LLM asks for


def test_a_plan_over_the_cap_is_refused_with_the_reason(world):
    tasks = [task(i, "summarization", text=f"t{i}") for i in range(MAX_TASKS + 1)]
    llm = ScriptedLLM([plan_json(*tasks), plan_json(*tasks)])  # asked again once, it insists
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["summarization"])],
                    registry=REGISTRY, catalog=Catalog([]), out_dir=world.tmp / "runs")
    with pytest.raises(ResourceError, match=f"the plan has {MAX_TASKS + 1} tasks; at most {MAX_TASKS}"):
        hg.run("summarise many")
    assert f"at most {MAX_TASKS}" in llm.requests[1]["messages"][-1]["content"]  # the re-ask said why


def test_the_planner_asks_again_when_a_plan_names_a_file_the_user_did_not_give(world):
    """An invented file is a validation error: the LLM is re-asked with the reason, and its fix runs."""
    llm = ScriptedLLM([
        plan_json(task(0, "image-classification", image="portrait.png")),
        plan_json(task(0, "image-classification", image="photos/holiday.png")),
        "A tabby cat.",
    ])
    hg = HuggingGPT(llm=llm, experts=endpoint_experts(world.server), registry=REGISTRY,
                    catalog=Catalog([]), out_dir=world.tmp / "runs")
    run = hg.run("What animal is in photos/holiday.png?")
    retry = llm.requests[1]["messages"][-1]["content"]
    assert "image='portrait.png'" in retry and "did not give" in retry
    assert "the files you may use: photos/holiday.png" in retry  # shown the session's files, it picks one
    assert run.status == "done" and run.plan.tasks[0].args["image"] == "photos/holiday.png"
    assert [r.status for r in run.results.values()] == ["done"]


def test_run_json_writes_stay_o_tasks_for_a_1000_task_plan(tmp_path, monkeypatch):
    writes = []
    original = Run.save
    monkeypatch.setattr(Run, "save", lambda self, path: writes.append(len(self.results)) or original(self, path))
    n = 1000
    plan = Plan([Task(i, "summarization", [], {"text": f"text {i} " * 20}) for i in range(n)])
    selection = Selection({i: Choice(i, "sleep-0", "timed", "t", [Candidate("sleep-0", "timed")]) for i in range(n)})
    hg = HuggingGPT(llm=ScriptedLLM([]), experts=[TimedExperts(["summarization"])], catalog=Catalog([]), out_dir=tmp_path)
    run = Run(request="many", plan=plan, selection=selection)
    results = hg.execute(plan, selection, run=run)
    assert sum(r.status == "done" for r in results.values()) == n
    assert len(writes) < 100  # was one full rewrite per task: 1,001 writes of up to 1,000 results
    assert len(Run.load(Path(run.run_dir) / "run.json").results) == n


# --------------------------------------------------------------------------- 6. the embedded model file


@pytest.fixture
def small_gguf(tmp_path, monkeypatch):
    """The GGUF machinery on a 3-part, 300 kB stand-in: same code, small bytes."""
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(os.urandom(100_000))
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    import hashlib

    monkeypatch.setattr(gguf, "GGUF_SIZE", len(whole))
    monkeypatch.setattr(gguf, "GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(gguf, "part_files", lambda: parts)
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HGPT_GGUF", raising=False)
    return whole


def test_the_gguf_is_verified_once_then_checked_by_its_stamp(small_gguf, monkeypatch):
    path = gguf.ensure_gguf(progress=False)
    assert path.read_bytes() == small_gguf
    hashed = []
    original = gguf._sha256
    monkeypatch.setattr(gguf, "_sha256", lambda p: hashed.append(p) or original(p))
    assert gguf.ensure_gguf(progress=False) == path and hashed == []  # unchanged: a stat, no hash


def test_a_gguf_corrupted_in_place_is_detected_and_rebuilt(small_gguf):
    path = gguf.ensure_gguf(progress=False)
    with open(path, "r+b") as f:  # random bytes in the middle, same size
        f.seek(100_000)
        f.write(os.urandom(50_000))
    assert path.read_bytes() != small_gguf
    assert not gguf._is_ready(path)
    assert gguf.ensure_gguf(progress=False).read_bytes() == small_gguf


# --------------------------------------------------------------------------- 7. clear errors for the rest


@pytest.mark.parametrize("body, headers, expected", [
    ("<html><head><title>Sign in to Corp</title></head><body>login</body></html>", {"Content-Type": "text/html"},
     "not an OpenAI-compatible chat server; it answered an HTML page ('Sign in to Corp')"),
    ("garbage \x01 reply", {}, "it answered 'garbage reply'"),
    (b"{not json", {"Content-Type": "application/json"}, "the server's answer is not JSON: '{not json'"),
])
def test_an_llm_server_answering_html_or_garbage_gets_one_line(body, headers, expected):
    with FakeOpenAI([Reply(200, body, headers)]) as server:
        llm = OpenAICompatibleLLM("tiny", base_url=server.base_url, max_retries=0)
        with pytest.raises(LLMError) as info:
            llm.chat([{"role": "user", "content": "hi"}])
    message = str(info.value)
    assert message.startswith(server.base_url) and expected in message and "\n" not in message


def test_a_wav_with_zero_frames_is_a_clear_task_error(tmp_path):
    import wave

    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    plan = Plan([Task(0, "automatic-speech-recognition", [], {"audio": str(empty)})])
    selection = Selection({0: Choice(0, "sleep-0", "timed", "t")})
    executor = Executor([TimedExperts(["automatic-speech-recognition"])], allowed=Allowed.for_session([tmp_path]))
    result = executor.execute(plan, selection, tmp_path / "run")[0]
    assert result.status == "failed" and "holds no sound (a WAV with 0 frames)" in result.error


# --------------------------------------------------------------------------- 8. fallbacks are shown


def test_a_fallback_is_shown_in_cli_progress(capsys):
    result = TaskResult(0, "image-classification", status="done", model="endpoint/b", started=0.0, ended=1.0,
                        attempts=[Attempt("endpoint/a", "endpoint", "cannot connect after 2 tries"),
                                  Attempt("endpoint/b", "endpoint", None)])
    Printer(sys.stdout).event(TaskEvent("finished", result))
    assert "model endpoint/a failed: cannot connect after 2 tries → model endpoint/b" in capsys.readouterr().out


def test_a_real_fallback_is_recorded_and_described(tmp_path):
    plan = Plan([Task(0, "summarization", [], {"text": "x"})])
    selection = Selection({0: Choice(0, "model-gone", "timed", "t",
                                     [Candidate("model-gone", "timed"), Candidate("sleep-0", "timed")])})
    result = Executor([TimedExperts(["summarization"], models=("model-gone", "sleep-0"))]).execute(
        plan, selection, tmp_path)[0]
    assert result.status == "done" and result.fallbacks() == [
        "model model-gone failed: model not found (404) → model sleep-0"]



# --------------------------------------------------------------------------- 7 and 8 in a notebook


@pytest.mark.parametrize("line, setup, message", [
    ("--auto --out print", {}, "--out print would hide the builtin print()"),
    ("--auto --out df", {"df": [1, 2]}, "--out df would overwrite your list variable df"),
])
def test_out_refuses_to_shadow_a_builtin_or_a_variable(notebook, line, setup, message):
    from IPython.core.error import UsageError

    notebook.use()
    notebook.shell.user_ns.update(setup)
    with pytest.raises(UsageError, match=message):
        notebook.cell(line, "hello")
    notebook.shell.user_ns.pop("df", None)


def test_out_may_replace_an_earlier_run(notebook):
    notebook.use(plan_json(), "Hi.")
    notebook.shell.user_ns["result"] = Run(request="earlier")
    notebook.cell("--auto --out result", "hello")
    assert notebook.shell.user_ns["result"].request == "hello"


@pytest.mark.parametrize("value, message", [
    (lambda np: np.zeros((0, 0, 3)), "is empty"),
    (lambda np: np.full((4, 4), np.nan), "NaN or infinite"),
    (lambda np: type("Weird", (), {"__str__": lambda self: 1 / 0})(), "cannot turn the Weird into text"),
])
def test_bad_variables_are_usage_errors(notebook, value, message):
    import numpy as np
    from IPython.core.error import UsageError

    notebook.use()
    notebook.shell.user_ns["pixels"] = value(np)
    with pytest.raises(UsageError, match=message):
        notebook.cell("--auto", "Describe {pixels}")
    notebook.shell.user_ns.pop("pixels", None)


def test_an_unwritable_out_dir_is_a_usage_error(notebook, tmp_path):
    from IPython.core.error import UsageError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    notebook.use().out_dir = blocker / "runs"
    with pytest.raises(UsageError, match="cannot write run directories in"):
        notebook.cell("--auto", "hello")


def test_an_undefined_name_warns(notebook):
    notebook.use(plan_json(), "Hi.")
    with pytest.warns(UserWarning, match=r"\{nobody\} is not a notebook variable"):
        notebook.cell("--auto", "Say hi to {nobody}")


def test_auto_refuses_a_hostile_plan_in_one_line_and_shows_fallbacks(notebook, tmp_path):
    from IPython.core.error import UsageError

    hostile = plan_json(task(0, "summarization", text="~/.ssh/id_rsa"), task(1, "image-to-text", image="/etc/hostname"))
    notebook.use(hostile, hostile)  # re-asked once, the LLM insists
    with pytest.raises(UsageError, match=r"task 1 \(image-to-text\): argument image='/etc/hostname'"):
        notebook.cell("--auto", "What is in my photo?")
    experts = [TimedExperts(["summarization"], models=("model-gone", "sleep-0"))]
    notebook.use(plan_json(task(0, "summarization", text="x")), json.dumps({"0": {"id": "model-gone", "reason": "r"}}),
                "Done.", experts=experts)
    out = notebook.cell("--auto", "Summarise x")
    assert "task 0: model model-gone failed: model not found (404) → model sleep-0" in out.stdout
