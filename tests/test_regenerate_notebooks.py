"""What `scripts/regenerate_notebooks.py` does to an executed notebook, and `RecordingLLM` (fast, no kernel)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.testing import RecordingLLM, ScriptedLLM, TimedExperts

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("regenerate_notebooks", ROOT / "scripts" / "regenerate_notebooks.py")
regenerate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(regenerate)


def wav_bytes(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(out, 0.5 * np.sin(2 * np.pi * 440 * t), rate, format="WAV")
    return out.getvalue()


def png_bytes(side: int) -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")
    return out.getvalue()


def executed_notebook(folder: Path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    wav = base64.b64encode(wav_bytes(10.0)).decode("ascii")
    png = base64.b64encode(png_bytes(600)).decode("ascii")
    cell = new_code_cell("%%hugginggpt --auto\nRead data/sign.png aloud")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-01T15:20:53.438603Z"}
    cell.outputs = [
        new_output("stream", name="stdout", text=f"boxes drawn on {folder}/data/sign.png\n"),
        new_output("display_data", data={
            "text/plain": "[audio hgpt-runs/20261201-152102-d12d94/task1-text-to-speech-3d5e5fa5e41c.wav]",
            "text/html": f'<audio controls src="data:audio/x-wav;base64,{wav}"></audio>',
        }),
        new_output("display_data", data={"text/plain": "<PIL image>", "image/png": png, "image/jpeg": png}),
        new_output("stream", name="stdout", text="again hgpt-runs/20261201-152102-d12d94/run.json\n"),
    ]
    nb = new_notebook(cells=[cell])
    return nb


def test_tidy_makes_outputs_relative_stable_and_small(tmp_path):
    folder = tmp_path / "notebooks"
    executed = executed_notebook(folder)
    before = len(nbformat.writes(executed))
    nb = regenerate.tidy(executed, folder)
    text = nbformat.writes(nb)
    cell = nb.cells[0]

    assert "execution" not in cell.metadata
    assert str(tmp_path) not in text and "boxes drawn on data/sign.png" in text
    assert "20261201-152102-d12d94" not in text and text.count("hgpt-runs/RUN-1/") == 2
    assert "task1-text-to-speech-000001.wav" in text
    # the audio player keeps a short 8 kHz clip that still plays
    html_text = cell.outputs[1]["data"]["text/html"]
    clip = base64.b64decode(html_text.split("base64,")[1].split('"')[0])
    samples, rate = soundfile.read(io.BytesIO(clip))
    assert rate == regenerate.CLIP_RATE and 5.9 < len(samples) / rate <= regenerate.CLIP_SECONDS
    assert np.abs(samples).max() > 0.3  # the tone, not silence
    # the picture is shrunk, its JPEG twin dropped
    picture = cell.outputs[2]["data"]
    assert "image/jpeg" not in picture
    assert max(Image.open(io.BytesIO(base64.b64decode(picture["image/png"]))).size) <= regenerate.PICTURE_SIDE
    assert len(text) < before / 3


def test_widget_state_outputs_are_tidied_too(tmp_path):
    folder = tmp_path / "notebooks"
    nb = executed_notebook(folder)
    nested = {"outputs": [dict(o) for o in nb.cells[0].outputs]}
    output_widget = "a" * 32
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": {output_widget: {"model_name": "OutputModel", "state": nested}}}
    }
    nb.cells[0].outputs.append(nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": output_widget, "version_major": 2, "version_minor": 0},
    }))
    text = nbformat.writes(regenerate.tidy(nb, folder))
    assert str(tmp_path) not in text
    state = json.loads(text)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"][output_widget]
    assert "image/jpeg" not in state["state"]["outputs"][2]["data"]


def test_the_kernel_environment_is_the_offline_default(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    monkeypatch.setenv("HGPT_LLM", "openai:gpt-4o")
    env = regenerate.kernel_env()
    assert "HF_TOKEN" not in env and "HGPT_LLM" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONHASHSEED"] == "0"


def test_recording_llm_keeps_what_each_stage_sent_and_got(tmp_path):
    plan = json.dumps([{"task": "translation", "args": {"text": "hello", "language": "French"}}])
    inner = ScriptedLLM([plan, "Bonjour."], name="scripted-teacher")
    llm = RecordingLLM(inner)
    hg = HuggingGPT(llm=llm, experts=[TimedExperts(["translation"])], out_dir=tmp_path)
    streamed = []
    run = hg.run("Translate hello into French", on_text=streamed.append)

    assert run.status == "done"
    assert [e["reply"] for e in llm.exchanges] == [plan, "Bonjour."]
    assert llm.exchanges[0]["messages"][-1]["content"].endswith("Translate hello into French")
    assert llm.exchanges[0]["schema"] is not None and llm.exchanges[1]["schema"] is None
    assert "".join(streamed) == "Bonjour."  # the answer still streams through the wrapper
    assert llm.name == "scripted-teacher" and llm.requests is inner.requests  # other attributes: the wrapped LLM's


def test_only_widgets_an_output_shows_are_kept(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    ids = {name: f"{n:032x}" for n, name in enumerate(["box", "child", "layout", "closed", "closed_layout"], 1)}
    state = {
        ids["box"]: model("VBoxModel", children=[f"IPY_MODEL_{ids['child']}"], layout=f"IPY_MODEL_{ids['layout']}"),
        ids["child"]: model("HTMLModel", value="<b>#0</b>"),
        ids["layout"]: model("LayoutModel", width="240px", height=None, display=None),
        ids["closed"]: model("HTMLModel", value="a row the editor rebuilt", layout=f"IPY_MODEL_{ids['closed_layout']}"),
        ids["closed_layout"]: model("LayoutModel", width=None),
    }
    cell = new_code_cell("editor")
    cell.outputs = [new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": ids["box"], "version_major": 2, "version_minor": 0},
        "text/plain": "editor",
    })]
    nb = new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2}}

    kept = regenerate.tidy(nb, tmp_path).metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert set(kept) == {ids["box"], ids["child"], ids["layout"]}
    assert kept[ids["layout"]]["state"] == {"width": "240px"}
