"""A first run says at once that it prepares the planner's prompt, once (about a minute), instead of sitting
silent between "LLM: ..." and "Plan:"; a run that finds the prompt saved says nothing.

The fast tests use a stand-in model file: the check runs before the model loads (it needs the file's identity,
not its weights), so the note appears and then the load fails on the stand-in. The slow test runs the real CLI
on a fresh cache and times the note against the LLM line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hgpt_magic.llm import LLMError
from hgpt_magic.pipeline import FIRST_RUN_NOTE, HuggingGPT, static_planner_prefix

REPO = Path(__file__).resolve().parents[1]
REQUEST = "Read the text in the image notebooks/data/sign.png aloud"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A file named like a model (not one), and an empty cache: no prompt prefix saved yet."""
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HGPT_SHARED_SERVER", raising=False)
    model = tmp_path / "stand-in.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    return model


def test_the_pipeline_says_before_the_model_loads_that_it_prepares_the_prompt_once(stand_in, tmp_path):
    said: list[str] = []
    hg = HuggingGPT(llm=f"gguf:{stand_in}", experts=[], out_dir=tmp_path / "runs", on_progress=said.append)
    with pytest.raises(LLMError, match="could not load"):
        hg.plan(REQUEST)
    assert said == [FIRST_RUN_NOTE]
    assert "once" in FIRST_RUN_NOTE and "minute" in FIRST_RUN_NOTE


def test_a_run_that_finds_the_prompt_saved_says_nothing(stand_in, tmp_path):
    import xllamacpp

    from hgpt_magic.llm.local import kv_types, prefix_key

    key = prefix_key(stand_in, 8192, kv_types(xllamacpp.CommonParams()), static_planner_prefix())
    folder = tmp_path / "cache" / "kv"
    folder.mkdir(parents=True)
    (folder / f"prefix-{key}.bin").write_bytes(b"saved by an earlier process")
    said: list[str] = []
    hg = HuggingGPT(llm=f"gguf:{stand_in}", experts=[], out_dir=tmp_path / "runs", on_progress=said.append)
    with pytest.raises(LLMError):
        hg.plan(REQUEST)
    assert said == []


def test_a_shared_server_start_says_it_once_and_leaves_no_prefix_file(stand_in, tmp_path, monkeypatch):
    """HGPT_SHARED_SERVER=1: the note comes before the server is spawned; the stand-in makes the server fail, the
    model then loads in-process (and fails too) without saying it twice; the prefix file given to the server
    (it may quote the user's data) is gone."""
    monkeypatch.setenv("HGPT_SHARED_SERVER", "1")
    said: list[str] = []
    hg = HuggingGPT(llm=f"gguf:{stand_in}", experts=[], out_dir=tmp_path / "runs", on_progress=said.append)
    with pytest.warns(UserWarning, match="no shared model server"), pytest.raises(LLMError, match="could not load"):
        hg.plan(REQUEST)
    assert said == [FIRST_RUN_NOTE]
    assert (tmp_path / "cache" / "llm-server.log").is_file()  # a server was spawned (and failed on the stand-in)
    assert not list((tmp_path / "cache").glob("*prefix*.json"))


def test_the_cli_prints_the_note_right_after_the_llm_line(stand_in, tmp_path):
    env = {**os.environ, "HGPT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "hgpt_magic", "--llm", f"gguf:{stand_in}", "--experts", "llm", "--plan-only", REQUEST],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )
    lines = out.stdout.splitlines()
    assert out.returncode == 1 and "could not load" in out.stderr
    assert lines[0].startswith("LLM: gguf:") and lines[1].startswith("Experts: ") and lines[2] == FIRST_RUN_NOTE


def test_the_magic_shows_the_note_in_the_cell(stand_in, tmp_path, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    monkeypatch.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("hgpt_magic")
    try:
        with capture_output() as captured, pytest.raises(UsageError, match="could not load"):
            shell.run_cell_magic("hugginggpt", f"--llm gguf:{stand_in} --experts llm --plan-only", REQUEST)
    finally:
        shell.extension_manager.unload_extension("hgpt_magic")
        shell.config.pop("HuggingGPT", None)
    assert f"HuggingGPT: {FIRST_RUN_NOTE}" in captured.stdout


@pytest.mark.slow
def test_a_real_first_run_on_a_fresh_cache_says_so_within_two_seconds_of_the_llm_line(tmp_path):
    """The real CLI, a fresh cache (no saved prompt prefix): the note comes within 2 s of "LLM: ...", before the
    minute of computing; the next run restores the prefix and prints no note."""
    from hgpt_magic.llm.local import ensure_gguf

    env = {**os.environ, "HGPT_CACHE": str(tmp_path / "cache"), "HGPT_GGUF": str(ensure_gguf(progress=False)),
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("HGPT_SHARED_SERVER", None)

    def run() -> list[tuple[float, str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hgpt_magic", "--plan-only", "--out", str(tmp_path / "runs"), REQUEST],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
        )
        timer = threading.Timer(600, proc.kill)
        timer.start()
        lines = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
        timer.cancel()
        assert proc.wait() == 0, lines
        return lines

    first = run()
    texts = [text for _, text in first]
    llm_at = next(at for at, text in first if text.startswith("LLM: "))
    note_at = next(at for at, text in first if text == FIRST_RUN_NOTE)
    plan_at = next(at for at, text in first if text == "Plan:")
    assert note_at - llm_at <= 2.0, texts
    assert plan_at > note_at, texts
    assert FIRST_RUN_NOTE not in [text for _, text in run()]  # saved: the next run restores it, silently
