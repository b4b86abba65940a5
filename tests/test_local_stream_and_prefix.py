"""The embedded LLM streams its reply, and keeps the planner's prompt-prefix KV state on disk (real model).

Slow: each test loads the 1.1 GB model in a fresh process, with a temporary cache (the GGUF is used where
it already is, through HGPT_GGUF), so a saved prefix never leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hgpt_magic.llm.local import ensure_gguf

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

#: Loads the model, warms the planner's prefix as HuggingGPT does, plans once; prints what happened.
FRESH_KERNEL = textwrap.dedent("""
    import json, time
    from hgpt_magic.llm.local import LocalLLM
    from hgpt_magic.pipeline import planner_prefix, warm_planner_prefix
    from hgpt_magic.planning import Planner
    llm = LocalLLM(threads=2)
    planner = Planner(llm)
    start = time.perf_counter()
    how = warm_planner_prefix(llm, planner)
    warmed = time.perf_counter() - start
    calls = []
    plan = planner.plan("Read the text in the image poster.png aloud", calls=calls)
    print(json.dumps({"how": how, "warm_s": warmed, "prompt_tokens": calls[0].prompt_tokens,
                      "tasks": [t.task for t in plan], "key": llm.prefix_key(planner_prefix(planner))}))
""")


def fresh_kernel(cache: Path) -> dict:
    env = {**os.environ, "HGPT_CACHE": str(cache), "HGPT_GGUF": str(ensure_gguf(progress=False)),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", FRESH_KERNEL], capture_output=True, text=True, env=env, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_planner_prefix_is_saved_once_then_restored_by_a_fresh_process(tmp_path):
    first = fresh_kernel(tmp_path)
    assert first["how"] == "computed"
    folder = tmp_path / "kv"
    assert (folder.stat().st_mode & 0o777) == 0o700  # a KV state encodes the prompt: private
    assert [p.name for p in folder.iterdir()] == [f"prefix-{first['key']}.bin"]  # no partial file left
    second = fresh_kernel(tmp_path)
    assert second["how"] == "restored" and second["key"] == first["key"]
    assert second["tasks"] == first["tasks"]  # the restored state plans exactly as the computed one


def test_a_damaged_prefix_file_is_computed_again(tmp_path):
    first = fresh_kernel(tmp_path)
    (tmp_path / "kv" / f"prefix-{first['key']}.bin").write_bytes(b"not a KV state")
    again = fresh_kernel(tmp_path)
    assert again["how"] == "computed" and again["tasks"] == first["tasks"]


def test_the_local_llm_streams_the_same_text_it_answers_whole():
    from hgpt_magic.llm.local import get_local_llm

    llm = get_local_llm()
    messages = [{"role": "user", "content": "Write two short sentences about the sea."}]
    whole = llm.chat(messages, max_tokens=40)
    pieces: list[str] = []
    streamed = llm.chat(messages, max_tokens=40, on_text=pieces.append)
    # the pieces make the reply; its words are the model's usual ones (llama.cpp is not bit-exact between a
    # cached and a fresh prompt, nor between its full and one-thread copies, so no exact match with `whole`)
    assert len(pieces) > 5 and "".join(pieces) == streamed.text
    assert "sea" in streamed.text.lower() and "sea" in whole.text.lower()
    stopped: list[str] = []

    def stop_after_three(piece: str) -> None:
        stopped.append(piece)
        if len(stopped) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the answer streams: the model stops, the interrupt goes on

    with pytest.raises(KeyboardInterrupt):
        llm.chat(messages, max_tokens=40, on_text=stop_after_three)
    assert len(stopped) == 3
    assert "sea" in llm.chat(messages, max_tokens=40).text.lower()  # the model is usable after a stopped stream
