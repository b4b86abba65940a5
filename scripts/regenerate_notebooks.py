"""Execute every teaching notebook in place from the current code, so that its stored outputs are today's.

    python scripts/regenerate_notebooks.py                  # all of notebooks/*.ipynb, one after another
    python scripts/regenerate_notebooks.py 07 09            # those whose names start with 07 or 09
    python scripts/regenerate_notebooks.py --no-lock ...    # when the caller already holds the lock
    python scripts/regenerate_notebooks.py --tidy-only      # tidy the stored outputs again, run nothing

Each notebook runs in a fresh kernel (nbclient) with `notebooks/` as its working directory, on the offline
default: `HF_HUB_OFFLINE=1`, no token or `HGPT_*` setting from the caller's environment, a fixed
`PYTHONHASHSEED`. Model-heavy work on a shared machine is serialised by a lock file: each notebook runs
while this script holds `--lock` (default `/tmp/hgpt-heavy.lock`, the same lock as `flock(1)` takes), so the
script can be started from anywhere.

What is stored is then made machine-independent and small (`tidy`): absolute paths become relative ones,
run folders and the random part of task file names become stable names (`RUN-1`, `task1-…-000001`),
execution timestamps are dropped, audio players keep a short low-rate clip, large pictures are shrunk,
and the widget state (the plan editor, saved by nbclient) gets the same treatment. A notebook whose run
fails is left as it was, and the script exits 1 naming it; one over `--max-kb` also fails the script.
It prints the seconds each notebook took (lock wait apart).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import io
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: Above this, a stored notebook is too big to review and to read on GitHub.
MAX_KB = 500
#: Stored audio clips: this rate and at most this many seconds (8-bit mono WAV: 8 KB per second).
CLIP_RATE, CLIP_SECONDS = 8000, 6.0
#: Pictures whose PNG is larger than this are shrunk (at most `PICTURE_SIDE` pixels, 256-colour palette).
PICTURE_BYTES, PICTURE_SIDE = 48_000, 360

RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
TASK_FILE = re.compile(r"\b(task\d+-[\w.-]+?-)([0-9a-f]{12})(?=\.)")
AUDIO_URI = re.compile(r'src="data:audio/(?:x-)?wav;base64,([A-Za-z0-9+/=\s]+)"')


def kernel_env() -> dict[str, str]:
    """The environment a regeneration runs in: the offline default, whatever the caller has set."""
    sys.path.insert(0, str(ROOT))
    from hgpt_magic.testing import SETTINGS_ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV_VARS}
    env.update(HF_HUB_OFFLINE="1", PYTHONHASHSEED="0", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@contextlib.contextmanager
def held(lock: Path | None):
    """Hold `lock` (flock(2), as flock(1) does) for the duration; yield the seconds spent waiting."""
    if lock is None:
        yield 0.0
        return
    start = time.monotonic()
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - start
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def execute(path: Path, timeout: int) -> object:
    """Run every cell of `path` in a fresh kernel (working directory: its folder); the executed notebook."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        store_widget_state=True,
    )
    old_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(kernel_env())  # the kernel inherits this process's environment
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    return nb


# --------------------------------------------------------------------------- tidy


def short_clip(wav: bytes) -> bytes:
    """A WAV as a short 8 kHz 8-bit mono clip: enough to hear what was said, a few KB a second."""
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)[: int(rate * CLIP_SECONDS)]
    if rate != CLIP_RATE and len(mono):
        times = np.arange(0, len(mono) / rate, 1 / CLIP_RATE)
        mono = np.interp(times, np.arange(len(mono)) / rate, mono)
    out = io.BytesIO()
    soundfile.write(out, np.clip(mono, -1, 1), CLIP_RATE, format="WAV", subtype="PCM_U8")
    return out.getvalue()


def small_picture(png: bytes) -> bytes:
    """A picture at most `PICTURE_SIDE` pixels wide and high, as a palette PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGB")
        image.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
        out = io.BytesIO()
        image.quantize(256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _shrink_audio(html_text: str) -> str:
    def replace(match: re.Match) -> str:
        wav = base64.b64decode(re.sub(r"\s", "", match.group(1)))
        try:
            wav = short_clip(wav)
        except Exception:  # not a WAV we can read: keep it
            return match.group(0)
        return f'src="data:audio/wav;base64,{base64.b64encode(wav).decode("ascii")}"'

    return AUDIO_URI.sub(replace, html_text)


def shrink_output(output: dict) -> None:
    """Audio players keep a short clip; a big PNG is shrunk; a JPEG twin of a PNG is dropped."""
    data = output.get("data")
    if not isinstance(data, dict):
        return
    html_text = data.get("text/html")
    if isinstance(html_text, list):
        html_text = "".join(html_text)
    if isinstance(html_text, str) and "data:audio" in html_text:
        data["text/html"] = _shrink_audio(html_text)
    if "image/png" in data and "image/jpeg" in data:
        del data["image/jpeg"]
    png = data.get("image/png")
    if isinstance(png, str) and len(png) * 3 // 4 > PICTURE_BYTES:
        with contextlib.suppress(Exception):
            data["image/png"] = base64.b64encode(small_picture(base64.b64decode(png))).decode("ascii")


def _walk_outputs(value):
    """Every output dict in a notebook, the widget state's (ipywidgets Output) included."""
    if isinstance(value, dict):
        if "output_type" in value:
            yield value
        for item in value.values():
            yield from _walk_outputs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_outputs(item)


class Names:
    """Stable stand-ins for run folder names and task file ids, numbered in order of appearance."""

    def __init__(self):
        self.runs: dict[str, str] = {}
        self.files: dict[str, str] = {}

    def run(self, match: re.Match) -> str:
        return self.runs.setdefault(match.group(0), f"RUN-{len(self.runs) + 1}")

    def file(self, match: re.Match) -> str:
        return match.group(1) + self.files.setdefault(match.group(2), f"{len(self.files) + 1:06d}")


def relative_paths(text: str, folder: Path) -> str:
    """Absolute paths of this machine as the notebook's relative ones (its folder, the repository, home)."""
    for base, shown in ((folder, ""), (ROOT, "../"), (Path.home(), "~/")):
        for spelling in {str(base), str(base.resolve())}:
            text = text.replace(spelling + "/", shown).replace(spelling, shown.rstrip("/") or ".")
    return text


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_REF = re.compile(r'IPY_MODEL_([0-9a-f]{32})|"model_id": "([0-9a-f]{32})"')


def prune_widgets(nb) -> None:
    """Keep only the widgets a stored output shows, and the widgets those contain.

    nbclient stores every widget the kernel ever made; the plan editor rebuilds its rows on each edit and
    closes the old ones, which would otherwise stay in the file (hundreds of KB) with nothing showing them.
    Unset layout properties are dropped as ipywidgets' own embedding does (`drop_defaults`).
    """
    store = nb.metadata.get("widgets", {}).get(WIDGET_STATE)
    if not store or "state" not in store:
        return
    state = store["state"]
    todo = [o["data"][WIDGET_VIEW]["model_id"] for o in _walk_outputs(nb.cells) if WIDGET_VIEW in o.get("data", {})]
    keep: set[str] = set()
    while todo:
        model = todo.pop()
        if model in keep or model not in state:
            continue
        keep.add(model)
        todo += [a or b for a, b in WIDGET_REF.findall(json.dumps(state[model]))]
    store["state"] = {model: value for model, value in state.items() if model in keep}
    for value in store["state"].values():  # a layout's unset properties (null) are its defaults: leave them out
        if value.get("model_name") == "LayoutModel":
            value["state"] = {k: v for k, v in value["state"].items() if v is not None}
    if not store["state"]:
        del nb.metadata["widgets"]


def tidy(nb, folder: Path):
    """The executed notebook made machine-independent and small (see the module docstring)."""
    import nbformat

    prune_widgets(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    for output in _walk_outputs(nb):
        shrink_output(output)
    names = Names()
    text = relative_paths(nbformat.writes(nb), folder)
    text = RUN_ID.sub(names.run, text)
    text = TASK_FILE.sub(names.file, text)
    return nbformat.reads(text, as_version=4)


# --------------------------------------------------------------------------- main


def chosen(prefixes: list[str]) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in prefixes)]
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes (e.g. 07); default: every notebook")
    parser.add_argument("--lock", type=Path, default=Path("/tmp/hgpt-heavy.lock"), help="lock file held per notebook")
    parser.add_argument("--no-lock", action="store_true", help="take no lock (the caller holds it)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--tidy-only", action="store_true", help="run nothing: tidy the stored notebooks again")
    parser.add_argument("--max-kb", type=int, default=MAX_KB, help=f"largest stored notebook (default {MAX_KB})")
    args = parser.parse_args(argv)
    import nbformat

    paths = chosen(args.notebooks)
    if not paths:
        parser.error("no notebook matches")
    failed = []
    for path in paths:
        if args.tidy_only:
            nbformat.write(tidy(nbformat.read(path, as_version=4), path.parent), path)
            print(f"{path.name}: tidied, {path.stat().st_size / 1024:.0f} KB")
            continue
        with held(None if args.no_lock else args.lock) as waited:
            start = time.monotonic()
            try:
                nb = execute(path, args.timeout)
            except Exception as exc:  # a cell failed or timed out: keep the stored notebook
                seconds = time.monotonic() - start
                lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
                print(f"{path.name}: FAILED after {seconds:.0f} s: {lines[-1]}")
                print("    " + "\n    ".join(lines[-25:]), flush=True)  # the cell's traceback, for the fix
                failed.append(path.name)
                continue
            seconds = time.monotonic() - start
        nb = tidy(nb, path.parent)
        nbformat.write(nb, path)
        kb = path.stat().st_size / 1024
        too_big = kb > args.max_kb
        if too_big:
            failed.append(path.name)
        print(f"{path.name}: {seconds:.0f} s (waited {waited:.0f} s for the lock), {kb:.0f} KB"
              + (f" > {args.max_kb} KB" if too_big else ""), flush=True)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
