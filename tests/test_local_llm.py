"""The embedded LLM on the real runtime and the real weights (no mocks).

Tests that load the model are marked `slow`. The concurrent-join test copies the 1.1 GB GGUF once per
session into a temporary cache that is removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from hgpt_magic.llm import LLM, LLMError, OpenAICompatibleLLM, make_llm
from hgpt_magic.llm import local as local_llm
from hgpt_magic.llm.local import GGUF_NAME, GGUF_SHA256, GGUF_SIZE, LocalLLM, ensure_gguf, get_local_llm

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "task": {
                        "type": "string",
                        "enum": ["image-to-text", "text-to-speech", "object-detection"],
                    },
                },
                "required": ["id", "task"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["tasks"],
    "additionalProperties": False,
}
PLAN_MESSAGES = [
    {
        "role": "system",
        "content": "Split the user's request into tasks. Available tasks: image-to-text, text-to-speech, "
        "object-detection. Reply with JSON only.",
    },
    {"role": "user", "content": "Describe photo.jpg, then read the description aloud."},
]


def assert_valid_plan(text: str) -> None:
    """The checks PLAN_SCHEMA makes, written out so the test needs no jsonschema."""
    plan = json.loads(text)
    assert set(plan) == {"tasks"} and plan["tasks"]
    for task in plan["tasks"]:
        assert set(task) == {"id", "task"}
        assert isinstance(task["id"], int)
        assert task["task"] in PLAN_SCHEMA["properties"]["tasks"]["items"]["properties"]["task"]["enum"]


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("HGPT_GGUF", raising=False)
        yield


def run_python(code: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- the GGUF: cheap tests -------------------------------------------------------------------------------


def test_import_loads_nothing_heavy():
    code = "import sys, hgpt_magic.llm.local; assert 'xllamacpp' not in sys.modules, 'xllamacpp imported'"
    result = run_python(code, dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr


def test_part_files_are_the_22_parts_in_order():
    parts = local_llm.part_files()
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == GGUF_SIZE


def test_hgpt_gguf_overrides_the_embedded_model(tmp_path, monkeypatch):
    custom = tmp_path / "custom.gguf"
    custom.write_bytes(b"GGUF")
    monkeypatch.setenv("HGPT_GGUF", str(custom))
    assert ensure_gguf(progress=False) == custom
    monkeypatch.setenv("HGPT_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(RuntimeError, match="HGPT_GGUF"):
        ensure_gguf(progress=False)


def test_missing_parts_say_how_to_install(tmp_path, monkeypatch):
    # Without site-packages on sys.path, importlib.metadata finds none of the weight packages.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r'pip install "hgpt-magic\[local\]"'):
        ensure_gguf(progress=False)
    assert not (tmp_path / GGUF_NAME).exists()


# --- the GGUF: one real join, by two processes at once ----------------------------------------------------


@pytest.fixture(scope="module")
def joined_cache(tmp_path_factory):
    """Two processes join the parts into one empty cache at the same time; removed after the module."""
    cache = tmp_path_factory.mktemp("hgpt-cache")
    env = dict(os.environ, HGPT_CACHE=str(cache), HF_HUB_OFFLINE="1")
    env.pop("HGPT_GGUF", None)
    code = "from hgpt_magic.llm.local import ensure_gguf; print(ensure_gguf())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    yield cache, results
    shutil.rmtree(cache, ignore_errors=True)


def test_concurrent_ensure_gguf_writes_one_correct_file(joined_cache):
    cache, results = joined_cache
    target = cache / GGUF_NAME
    for returncode, stdout, stderr in results:
        assert returncode == 0, stderr
        assert stdout.strip() == str(target)
    writers = [stderr for _, _, stderr in results if "assembling local model" in stderr]
    assert len(writers) == 1, "exactly one process should have joined the parts; the other waits on the lock"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [GGUF_NAME, GGUF_NAME + ".sha256", GGUF_NAME + ".verified", GGUF_NAME + ".lock"]
    ), "no temp files left behind"
    digest = hashlib.sha256()
    with open(target, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    assert target.stat().st_size == GGUF_SIZE
    assert digest.hexdigest() == GGUF_SHA256


def test_ensure_gguf_is_idempotent_and_cheap(joined_cache, monkeypatch):
    cache, _ = joined_cache
    monkeypatch.setenv("HGPT_CACHE", str(cache))
    target = cache / GGUF_NAME
    before = target.stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_gguf(progress=False) == target
    assert ensure_gguf(progress=False) == target
    assert time.perf_counter() - start < 1.0, "a verified cache must not be re-hashed or re-joined"
    assert target.stat().st_mtime_ns == before


# --- the model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm() -> LocalLLM:
    return get_local_llm()


@pytest.mark.slow
def test_get_local_llm_is_one_model_per_process(llm):
    assert get_local_llm() is llm
    assert make_llm("local") is llm
    found: list[LocalLLM] = []
    threads = [threading.Thread(target=lambda: found.append(get_local_llm())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(x is llm for x in found)
    assert isinstance(llm, LLM) and llm.supports_schema
    assert llm.name == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert "LocalLLM(" in repr(llm) and len(repr(llm)) < 120


@pytest.mark.slow
def test_chat_with_schema_returns_matching_json(llm):
    reply = llm.chat(PLAN_MESSAGES, schema=PLAN_SCHEMA, max_tokens=128)
    assert_valid_plan(reply.text)
    assert reply.prompt_tokens > 20 and reply.completion_tokens > 5
    assert reply.seconds > 0


@pytest.mark.slow
def test_chat_from_several_threads_at_once(llm):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    answers: dict[int, Any] = {}

    def ask(n: int) -> None:
        reply = llm.chat(
            [{"role": "user", "content": f"What is {n} + {n}? Answer in JSON."}], schema=schema, max_tokens=24
        )
        answers[n] = json.loads(reply.text)["answer"]

    threads = [threading.Thread(target=ask, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(answers) == {1, 2, 3} and all(isinstance(a, int) for a in answers.values())


@pytest.mark.slow
def test_runtime_errors_become_llm_errors(llm):
    too_long = [{"role": "user", "content": "word " * (llm.n_ctx + 500)}]
    with pytest.raises(LLMError, match="context"):
        llm.chat(too_long, max_tokens=4)
    with pytest.raises(LLMError, match=llm.name):
        llm.chat([{"role": "user", "content": "hi"}], schema={"type": "no-such-type"}, max_tokens=4)


@pytest.mark.slow
def test_serve_answers_the_openai_client_over_http(llm):
    url = llm.serve()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert llm.serve() == url
    client = OpenAICompatibleLLM(llm.model, base_url=url, timeout=300)
    reply = client.chat(PLAN_MESSAGES, schema=PLAN_SCHEMA, max_tokens=128)
    assert_valid_plan(reply.text)
    assert client.supports_schema, "the server must accept json_schema, not fall back"
    assert reply.prompt_tokens > 20 and reply.completion_tokens > 5
    with pytest.raises(LLMError, match="already serves"):
        llm.serve(port=1)


@pytest.mark.slow
def test_a_custom_gguf_loads_and_unloads_cleanly(llm, tmp_path):
    """HGPT_GGUF picks another file; dropping a LocalLLM must not hang (xllamacpp's ~Server race)."""
    custom = tmp_path / "custom.gguf"
    custom.symlink_to(llm.path)
    code = """
        import json
        from hgpt_magic.llm.local import LocalLLM
        model = LocalLLM(n_ctx=512)
        reply = model.chat([{"role": "user", "content": "Say hi."}], max_tokens=4)
        print(json.dumps({"name": model.name, "text": reply.text}))
        del model
        print("unloaded")
    """
    env = dict(os.environ, HGPT_GGUF=str(custom), HF_HUB_OFFLINE="1")
    result = run_python(code, env, timeout=300)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()[-2:]
    assert json.loads(first)["name"] == "gguf:custom.gguf"
    assert json.loads(first)["text"]
    assert second == "unloaded"
