"""The %%hugginggpt / %hugginggpt magics on a real IPython shell, with a scripted LLM and timed experts."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import Audio
from IPython.utils.capture import capture_output
from PIL import Image

from hgpt_magic.catalog import Catalog
from hgpt_magic.experts.base import ExpertBackend
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.registry import Registry, default_registry
from hgpt_magic.secrets import SECRET_ENV_VARS
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Artifact

TASKS = ["image-to-text", "automatic-speech-recognition", "summarization", "translation", "text-to-speech"]
#: HuggingGPT's task types under a name with no shipped demos: the planning prompt then needs no demo
#: retrieval (an embedding model), which keeps these tests fast; the scripted LLM ignores demos anyway.
REGISTRY = Registry.of(list(default_registry()), name="tests")
FILE_RE = re.compile(r"(\S+\.(?:png|wav|jpg|mp3))")


def plan_reply(*tasks: dict):
    """A planner reply (callable) in which FILE stands for the first media file named in the request, FILE2
    for the second."""

    def reply(messages, schema):
        found = FILE_RE.findall(messages[-1]["content"])
        text = json.dumps({"tasks": list(tasks)})
        if len(found) > 1:
            text = text.replace("FILE2", found[1])
        return text.replace("FILE", found[0]) if found else text

    return reply


def task(task_id: int, name: str, **args: str) -> dict:
    return {"task": name, "id": task_id, "dep": [], "args": args}


class PaintExperts(ExpertBackend):
    """A small real backend that makes real media: a PNG for text-to-image, a WAV for text-to-speech."""

    name = "paint"
    offline = True

    def cards(self):
        from hgpt_magic.catalog import ModelCard

        return [ModelCard("paint-1", "text-to-image", 5, backend="paint"), ModelCard("say-1", "text-to-speech", 5, backend="paint")]

    def can_serve(self, task, model):
        return (task, model) in (("text-to-image", "paint-1"), ("text-to-speech", "say-1"))

    def run(self, task, model, inputs, ctx):
        if task == "text-to-image":
            path = ctx.new_path(".png")
            Image.new("RGB", (16, 12), "blue").save(path)
            return [Artifact(kind="image", path=str(path), mime="image/png", text="a blue picture")]
        path = ctx.new_path(".wav")
        soundfile.write(path, np.zeros(800), 8000)
        return [Artifact(kind="audio", path=str(path), mime="audio/wav", text="speech")]


class Session:
    """The shell, the loaded magics and helpers to give them a deterministic pipeline."""

    def __init__(self, shell: InteractiveShell, tmp_path: Path):
        self.shell = shell
        self.magics = shell.magics_manager.registry["HuggingGPTMagics"]
        self.tmp_path = tmp_path
        self.experts = TimedExperts(TASKS)
        self.llm: ScriptedLLM | None = None
        self.magics.live_widgets = False

    def use(self, *replies, experts=None) -> HuggingGPT:
        """Give the magics a pipeline with these LLM replies (each cell: plan, then the answer)."""
        self.llm = ScriptedLLM(replies)
        backends = experts if experts is not None else [self.experts]
        pipeline = HuggingGPT(
            llm=self.llm, experts=backends, registry=REGISTRY, catalog=Catalog([]), out_dir=self.tmp_path / "runs"
        )
        self.magics.pipeline = pipeline
        return pipeline

    def cell(self, line: str, body: str):
        with capture_output() as captured:
            self.shell.run_cell_magic("hugginggpt", line, body)
        return captured

    def line(self, line: str):
        with capture_output() as captured:
            self.shell.run_line_magic("hugginggpt", line)
        return captured

    @property
    def last(self):
        return self.shell.user_ns["_hgpt"]


def texts(captured) -> str:
    """Everything a capture shows as plain text (printed and displayed)."""
    shown = [str(o.data.get("text/plain", "")) for o in captured.outputs]
    return captured.stdout + "\n".join(shown)


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in SECRET_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("hgpt_magic")
    yield Session(shell, tmp_path)
    shell.extension_manager.unload_extension("hgpt_magic")
    shell.config.pop("HuggingGPT", None)  # %config also records its settings in the shell's config
    for name in ("_hgpt", "result", "photo", "pixels", "voice", "clip", "who", "times"):
        shell.user_ns.pop(name, None)


# --------------------------------------------------------------------------- loading, settings, help


def test_load_ext_registers_both_magics_and_the_settings(session):
    manager = session.shell.magics_manager
    assert "hugginggpt" in manager.magics["cell"] and "hugginggpt" in manager.magics["line"]
    assert session.magics.settings in session.shell.configurables
    session.shell.extension_manager.unload_extension("hgpt_magic")
    assert "hugginggpt" not in manager.magics["cell"]
    assert session.magics.settings not in session.shell.configurables
    session.shell.extension_manager.load_extension("hgpt_magic")


def test_config_magic_and_ipython_config_set_the_traits(session):
    session.shell.run_line_magic("config", 'HuggingGPT.llm = "hf:some/model"')
    session.shell.run_line_magic("config", "HuggingGPT.top_k = 3")
    session.shell.run_line_magic("config", "HuggingGPT.top_k = 0")  # refused: stays 3
    settings = session.magics.settings
    assert (settings.llm, settings.top_k) == ("hf:some/model", 3)
    session.shell.extension_manager.unload_extension("hgpt_magic")  # a refused value does not break a reload
    session.shell.extension_manager.load_extension("hgpt_magic")
    assert session.shell.magics_manager.registry["HuggingGPTMagics"].settings.top_k == 5
    session.shell.config.pop("HuggingGPT")

    # values from ipython_config.py arrive through the shell's config when the extension loads
    session.shell.extension_manager.unload_extension("hgpt_magic")
    session.shell.config.HuggingGPT.auto = True
    session.shell.config.HuggingGPT.experts = "llm"
    try:
        session.shell.extension_manager.load_extension("hgpt_magic")
        settings = session.shell.magics_manager.registry["HuggingGPTMagics"].settings
        assert settings.auto is True and settings.experts == "llm"
    finally:
        session.shell.config.pop("HuggingGPT", None)


def test_the_select_setting_reaches_the_pipeline(session):
    """%config HuggingGPT.select = "always": the LLM picks a model the request gives it no reason to."""
    picks = json.dumps({"0": {"id": "sleep-0.1", "reason": "asked anyway"}})
    hg = session.use(plan_reply(task(0, "summarization", text="long text")), picks)
    session.experts.models = ["sleep-0", "sleep-0.1"]
    session.shell.run_line_magic("config", 'HuggingGPT.select = "sometimes"')  # refused: stays unset
    assert session.magics.settings.select is None
    session.shell.run_line_magic("config", 'HuggingGPT.select = "always"')
    session.cell("--plan-only", "Summarize: long text")
    assert hg.select_policy == "always" and [c.stage for c in session.last.llm_calls] == ["plan", "select"]
    assert session.last.selection[0].model == "sleep-0.1"


def test_settings_and_cell_options_choose_the_pipeline_and_history_carries_over(session):
    built = []

    def factory(**kwargs):
        built.append(kwargs)
        return HuggingGPT(llm=ScriptedLLM(['{"tasks": []}', "hi"]), experts=[session.experts],
                          registry=REGISTRY, catalog=Catalog([]), out_dir=kwargs["out_dir"])

    session.magics.factory = factory
    session.shell.run_line_magic("config", 'HuggingGPT.experts = "local,llm"')
    session.shell.run_line_magic("config", 'HuggingGPT.out_dir = "elsewhere"')
    session.cell("--auto", "hello")
    first = session.magics.pipeline
    assert built[-1] == {"llm": None, "experts": "local,llm", "top_k": 5, "out_dir": "elsewhere"}
    session.cell("--auto --llm openai:gpt-x --top-k 2", "hello again")
    assert built[-1]["llm"] == "openai:gpt-x" and len(built) == 2
    assert session.magics._pipeline.top_k == 2
    assert [t.request for t in session.magics._pipeline.history] == ["hello", "hello again"]
    assert session.magics._pipeline is not first


def test_cell_help_option_question_mark_and_help_subcommand(session, capsys):
    captured = session.cell("--help", "ignored")
    for option in ("--llm", "--experts", "--top-k", "--auto", "--plan-only", "--out", "--no-respond"):
        assert option in captured.stdout
    for sub in ("config", "tasks", "models TASK", "history", "reset", "last"):
        assert f"%hugginggpt {sub}" in captured.stdout
    assert "HuggingGPT.llm" in captured.stdout
    assert session.line("help").stdout == captured.stdout == session.line("--help").stdout
    session.shell.run_cell("%%hugginggpt?")
    assert "--plan-only" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%hugginggpt --bogus\nhello", "unrecognized arguments: --bogus"),
        ("%%hugginggpt --top-k 0\nhello", "--top-k must be at least 1"),
        ("%%hugginggpt --top-k many\nhello", "invalid int value: 'many'"),
        ("%%hugginggpt --out 2x\nhello", "--out needs a variable name, not '2x'"),
        ('%%hugginggpt --llm "unclosed\nhello', "cannot read the options"),
        ("%%hugginggpt\n   \n", "the cell is empty"),
        ("%hugginggpt frobnicate", "unknown subcommand 'frobnicate'"),
        ("%hugginggpt models", "usage: %hugginggpt models TASK"),
        ("%hugginggpt models image-to-txt", "unknown task 'image-to-txt'; did you mean image-to-text"),
        ("%hugginggpt reset now", "%hugginggpt reset takes no arguments"),
        ("%hugginggpt run", "nothing to run"),
    ],
)
def test_user_errors_are_one_line_usage_errors(session, capsys, cell, message):
    session.use()
    result = session.shell.run_cell(cell)
    err = capsys.readouterr().err
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert message in str(result.error_in_exec)
    assert err.strip() == f"UsageError: {result.error_in_exec}" and "Traceback" not in err


def test_bad_backend_specs_are_usage_errors(session):
    from IPython.core.error import UsageError

    session.magics.factory = HuggingGPT  # the real factory: specs are parsed for real
    with pytest.raises(UsageError, match="unknown experts spec 'nonsense'"):
        session.cell("--experts nonsense", "hello")
    with pytest.raises(UsageError, match="unknown LLM spec 'nonsense'"):
        session.cell("--llm nonsense --experts llm", "hello")


def test_a_missing_input_file_stops_an_auto_run_before_any_task(session):
    from IPython.core.error import UsageError

    session.use(plan_reply(task(0, "image-to-text", image="nowhere/sign.png")))
    with pytest.raises(UsageError, match=r"task 0 \(image-to-text\): image file not found: nowhere/sign.png"):
        session.cell("--auto", "Read nowhere/sign.png")
    assert session.experts.calls == []


# --------------------------------------------------------------------------- interpolation


def test_text_and_numbers_interpolate_unknown_names_and_other_braces_stay(session):
    session.use('{"tasks": []}')
    session.shell.user_ns.update(who="Ada", times=3)
    with pytest.warns(UserWarning, match=r"\{nobody\} is not a notebook variable"):
        session.cell("--plan-only", 'Greet {who} {times} times, {nobody} {"a": 1} {{who}}')
    expected = 'Greet Ada 3 times, {nobody} {"a": 1} {who}'
    assert session.last.request == expected
    assert session.llm.requests[0]["messages"][-1]["content"] == expected


def test_a_pil_image_and_a_numpy_image_become_files_in_the_run_directory(session):
    session.use(
        plan_reply(task(0, "image-to-text", image="FILE"), task(1, "image-to-text", image="FILE2")), "It is red.",
    )
    session.shell.user_ns["photo"] = Image.new("RGB", (20, 10), "red")
    session.shell.user_ns["pixels"] = np.zeros((6, 4, 3), dtype=float)
    session.cell("--auto", "Describe {photo}, then {pixels}")
    run = session.last
    photo, pixels = FILE_RE.findall(run.request)
    assert Path(photo).parent == Path(run.run_dir) and Path(photo).name == "photo.png"
    assert Image.open(photo).size == (20, 10) and Image.open(photo).getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(pixels).size == (4, 6)
    # the expert received the saved file, and its outputs went to the same run directory
    assert session.experts.calls[0][2]["image"] == str(Path(photo).resolve())
    assert (Path(run.run_dir) / "run.json").is_file() and run.status == "done"


def test_audio_as_samples_and_rate_or_ipython_audio_becomes_a_wav_file(session):
    session.use(plan_reply(task(0, "automatic-speech-recognition", audio="FILE"),
                           task(1, "automatic-speech-recognition", audio="FILE2")), "Silence.")
    samples = np.sin(np.linspace(0, 200, 16000))
    session.shell.user_ns["voice"] = (samples, 16000)
    session.shell.user_ns["clip"] = Audio(np.sin(np.arange(4000) / 5), rate=8000)
    session.cell("--auto", "Transcribe {voice} and {clip}")
    voice, clip = FILE_RE.findall(session.last.request)
    data, rate = soundfile.read(voice)
    assert rate == 16000 and len(data) == 16000 and np.allclose(data, samples, atol=1e-3)
    with wave.open(clip) as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() == 4000
    assert session.experts.calls[0][2]["audio"] == str(Path(voice).resolve())


def test_an_array_that_is_no_image_is_a_usage_error(session):
    from IPython.core.error import UsageError

    session.use()
    session.shell.user_ns["pixels"] = np.zeros(10)
    with pytest.raises(UsageError, match=r"\(10,\) is not an image.*\(pixels, sample_rate\)"):
        session.cell("--auto", "Describe {pixels}")


# --------------------------------------------------------------------------- running


def test_auto_runs_at_once_and_shows_png_audio_and_the_answer_as_outputs(session):
    session.use(
        plan_reply(task(0, "text-to-image", text="a blue square"), task(1, "text-to-speech", text="hello")),
        "I drew **a blue square** and said hello.",
        experts=[PaintExperts()],
    )
    captured = session.cell("--auto --out result", "Draw a blue square and say hello")
    mimes = [set(o.data) for o in captured.outputs]
    assert any("image/png" in m for m in mimes)
    audio = [o.data["text/html"] for o in captured.outputs if "<audio" in o.data.get("text/html", "")]
    assert audio and 'src="data:audio/' in audio[0]
    assert captured.outputs[-1].data["text/markdown"].startswith("I drew **a blue square** and said hello.")
    run = session.shell.user_ns["result"]
    assert run is session.last and run.status == "done" and run.answer.startswith("I drew")
    assert "#0 text-to-image · done" in texts(captured)


def test_no_respond_skips_the_answer(session):
    session.use(plan_reply(task(0, "summarization", text="long text")))
    captured = session.cell("--auto --no-respond", "Summarize: long text")
    assert session.last.status == "done" and session.last.answer is None
    assert all("text/markdown" not in o.data for o in captured.outputs)
    assert [c.stage for c in session.last.llm_calls] == ["plan"]


def test_plan_only_shows_the_plan_and_runs_nothing_until_run(session):
    session.use(plan_reply(task(0, "summarization", text="long text")), "Short.")
    captured = session.cell("--plan-only", "Summarize: long text")
    assert session.last.status == "selected" and session.experts.calls == []
    assert "[0] summarization(text='long text')" in texts(captured)
    assert "model: sleep-0 via timed" in texts(captured)
    captured = session.line("run")
    assert session.last.status == "done" and session.last.answer.startswith("Short.")
    assert len(session.experts.calls) == 1


def test_a_plan_failure_is_shown_in_the_output_and_kept_in_hgpt(session):
    session.use("no plan here", "still no plan")
    captured = session.cell("--auto", "do something")
    assert "Could not work out a plan for this request" in texts(captured)
    assert "Plan this request again" not in texts(captured)  # the re-ask was written for the LLM, not the user
    assert "still no plan" in texts(captured)  # the LLM's reply is shown for inspection
    assert session.last.status == "failed"


def test_an_llm_that_cannot_plan_opens_the_editor_on_suggested_tasks_without_a_traceback(session, tmp_path):
    """Two LLM calls at most; then the editor, with a task for each file the request names and one sentence."""
    from hgpt_magic.widgets.editor import PlanEditor

    session.magics.live_widgets = True
    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), "blue").save(photo)
    session.use("I'm sorry, but I can't assist with that request.", "Still sorry.")
    captured = session.cell("", f"Zeig mir etwas Schönes mit {photo}")
    editor = session.magics.last_editor
    assert isinstance(editor, PlanEditor) and [t.args for t in editor.tasks] == [{"image": str(photo)}]
    assert "Could not work out a plan" in editor.message.value
    assert "Traceback" not in texts(captured) and all("application/vnd.jupyter.error" not in o.data for o in captured.outputs)
    assert len(session.last.llm_calls) == 2 and session.experts.calls == []
    assert editor.errors == [], editor.errors
    editor.start("run")  # the suggested plan runs as a plan the user wrote
    assert editor.wait(30) and editor.run.status == "done" and len(session.experts.calls) == 1


def test_without_auto_the_editor_is_displayed_and_the_magic_returns_before_running(session):
    session.magics.live_widgets = True
    session.use(plan_reply(task(0, "summarization", text="long text")), "Short.")
    captured = session.cell("", "Summarize: long text")
    (output,) = captured.outputs
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert "summarization" in output.data["text/html"]  # the static fallback
    assert session.experts.calls == [] and session.last.status == "selected"
    editor = session.magics.last_editor
    assert editor.run is session.last
    editor.run_button.click()
    assert editor.wait(10)
    assert session.last.status == "done" and session.last.answer.startswith("Short.")


def test_history_spans_cells_and_reset_clears_it(session):
    session.use('{"tasks": []}', "A cat says meow.", '{"tasks": []}', "It is black.", '{"tasks": []}', "Fresh.")
    session.cell("--auto", "what animal says meow?")
    session.cell("--auto", "what colour is it?")
    assert "what animal says meow?" in session.llm.requests[2]["messages"][-1]["content"]
    shown = texts(session.line("history"))
    assert "what animal says meow?" in shown and "It is black." in shown
    assert "cleared" in session.line("reset").stdout
    assert "no history yet" in session.line("history").stdout
    session.cell("--auto", "start again")
    assert "meow" not in session.llm.requests[4]["messages"][-1]["content"]


# --------------------------------------------------------------------------- line subcommands


def test_config_shows_backends_and_masks_tokens(session, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    session.use()
    shown = texts(session.line("config"))
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in shown
    assert "hf_a…(masked)" in shown
    assert "timed (offline)" in shown and "top_k" in shown and "$OPENAI_API_KEY" in shown


def test_tasks_lists_the_registry(session):
    session.use()
    shown = texts(session.line("tasks"))
    assert "25 task types (tests)" in shown and "image-to-text" in shown and "describe an image" in shown
    assert "served here by" in shown and "timed (" in shown and "none here" in shown  # per task: backends, counts


def test_models_lists_candidates_with_downloads_and_backends(session):
    session.use()
    session.experts.models = ["sleep-0", "sleep-0.1"]
    shown = texts(session.line("models summarization"))
    assert "Top 2 models for summarization" in shown
    assert re.search(r"sleep-0\s+timed \(offline\)\s+1,000", shown)
    assert re.search(r"sleep-0.1\s+timed \(offline\)\s+999", shown)
    assert "needs a remote backend" in texts(session.line("models text-to-video"))


def test_last_shows_the_last_run(session):
    session.use(plan_reply(task(0, "summarization", text="long text")), "Short.")
    assert "no run yet" in session.line("last").stdout
    session.cell("--auto", "Summarize: long text")
    shown = texts(session.line("last"))
    assert "Request: Summarize: long text" in shown and "Answer:\nShort." in shown and "run.json" in shown


def test_importing_the_package_loads_no_ipython_and_no_widgets():
    import subprocess
    import sys

    code = "import sys, hgpt_magic; print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
