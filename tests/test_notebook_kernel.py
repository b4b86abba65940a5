"""`%%hugginggpt --auto` in a real Jupyter kernel (nbclient), on the embedded offline default.

Acceptance of the magic issue: in a real kernel, a request that makes an image and a speech clip produces an
`image/png` output, an audio player and the answer, with no key and HF_HUB_OFFLINE=1. It runs the real thing
(the embedded LLM, OpenCV faces, RapidOCR, piper), so it takes a minute or more.
"""

import base64
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from hgpt_magic.testing import SETTINGS_ENV_VARS

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "notebooks" / "data"
REQUEST = (
    "Read the text in the image data/sign.png aloud, and detect the faces in the image data/astronaut.png"
)

pytestmark = pytest.mark.slow


def run_notebook(cells: list[str], cwd: Path):
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def tasks_with_args(nb) -> list[str]:
    """The fourth cell's lines: each task of the run's plan with its image argument."""
    return nb.cells[3].outputs[0]["text"].strip().splitlines()


def bundles(cell) -> list[dict]:
    return [o["data"] for o in cell.outputs if o["output_type"] in ("display_data", "execute_result")]


def test_auto_cell_in_a_real_kernel_shows_an_image_an_audio_player_and_the_answer(tmp_path, monkeypatch):
    shutil.copytree(DATA, tmp_path / "data")
    for key in SETTINGS_ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits this environment

    nb = run_notebook(
        [
            "%load_ext hgpt_magic",
            f"%%hugginggpt --auto --out run\n{REQUEST}",
            "print(run.status)\nprint(*[t.task for t in run.plan])\nprint(run.run_dir)",
            "for t in run.plan: print(t.task, repr(t.args.get('image', '')))",
        ],
        tmp_path,
    )

    errors = [o for cell in nb.cells for o in cell.outputs if o["output_type"] == "error"]
    assert not errors, errors
    status, tasks, run_dir = nb.cells[2].outputs[0]["text"].split("\n")[:3]
    assert status == "done"
    assert {"object-detection", "image-to-text", "text-to-speech"} <= set(tasks.split())
    assert (tmp_path / run_dir / "run.json").is_file()  # the runs went to the notebook's folder

    shown = bundles(nb.cells[1])
    # the detector's picture, as a real PNG of the size of the photo it read: this test is about what a kernel
    # shows; which photo the embedded LLM gives the detector is planning's business (it swapped the two
    # photos in one of four runs: measured by the sessions bench, not asserted here)
    pictures = [Image.open(io.BytesIO(base64.b64decode(b["image/png"]))) for b in shown if "image/png" in b]
    detected = next(t.split("'")[1] for t in tasks_with_args(nb) if t.startswith("object-detection"))
    assert any(p.size == Image.open(tmp_path / detected).size for p in pictures), [p.size for p in pictures]
    # the speech, as an embedded audio player holding a WAV of a few seconds that is not silence
    players = [b["text/html"] for b in shown if "<audio" in b.get("text/html", "")]
    assert players, [list(b) for b in shown]
    wav = re.search(r"data:audio/(?:x-)?wav;base64,([A-Za-z0-9+/=\s]+)", players[0])
    assert wav, players[0][:200]
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(wav.group(1))))
    assert 1.0 < len(samples) / rate < 10.0
    assert np.sqrt(np.mean(np.square(samples))) > 0.01
    # the answer comes last, as Markdown
    answers = [b["text/markdown"] for b in shown if "text/markdown" in b]
    assert answers and answers[-1].strip()
    assert "text/markdown" in shown[-1]
    # and no traceback or token-looking text anywhere in the outputs
    text = nbformat.writes(nb)
    assert "Traceback" not in text
    assert not re.search(r"\bhf_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9]{20,}", text)
