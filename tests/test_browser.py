"""The plan editor in a real browser: JupyterLab on 127.0.0.1, driven by Playwright with Debian's chromium.

Two notebooks, each a copy opened in JupyterLab with every cell run:

- `notebooks/03_editing_plans.ipynb` (`PlanEditor` from Python): pick another voice in the speech task's
  model dropdown, click the editor's Run button, and check that the editor then shows a picture, an audio
  player and the answer, with the unchanged tasks reused;
- `notebooks/07_magic_editor.ipynb` (the editor of a `%%hugginggpt` cell without `--auto`): type another
  image into the reading task's argument field, click Run, and check that the task ran again on it (the
  editor shows the sign's words) while the speech ran on the new text.

Screenshots are saved in the test's temporary folder, and also in `$HGPT_SCREENSHOT_DIR` when that is set
(CI keeps them as artifacts). Both tests load the embedded LLM: run them under the shared lock on a shared
machine (`flock /tmp/hgpt-heavy.lock python -m pytest tests/test_browser.py`).

Needs `/usr/bin/chromium` (`apt-get install chromium`) and the `notebooks` extra (jupyterlab, playwright);
skipped with the reason when they are missing. No browser is downloaded: Playwright drives the system chromium.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hgpt_magic.testing import SETTINGS_ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03_editing_plans.ipynb"
MAGIC_NOTEBOOK = ROOT / "notebooks" / "07_magic_editor.ipynb"
CHROMIUM = Path(os.environ.get("HGPT_CHROMIUM", "/usr/bin/chromium"))
#: What chromium needs here: no sandbox as root, and no background traffic on a closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: JupyterLab settings: every cell in the DOM (no virtual scrolling), and no calls home for news or updates.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}
#: Where JupyterLab shows stderr and errors (a cell that failed shows a traceback there).
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
#: Seconds for the whole notebook (the embedded LLM plans, picks a voice and answers on a small CPU).
RUN_ALL_TIMEOUT = float(os.environ.get("HGPT_BROWSER_TIMEOUT", 1500))

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    for module, extra in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        try:
            __import__(module)
        except ImportError:
            return f"{extra} is not installed (pip install -e '.[notebooks]')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving copies of the notebooks and their data; yields (base URL, token, folder)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "root"
    root.mkdir()
    for notebook in (NOTEBOOK, MAGIC_NOTEBOOK):  # copies: autosave must not touch the repository
        shutil.copy(notebook, root / notebook.name)
    shutil.copytree(NOTEBOOK.parent / "data", root / "data")
    settings = tmp_path / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (tmp_path / "workspaces").mkdir()

    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV_VARS}
    env.update(HF_HUB_OFFLINE="1", JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            f"--LabApp.user_settings_dir={settings}",
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"JupyterLab exited ({server.returncode}):\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start within 120 s")
            time.sleep(0.5)
        yield base, token, root
    finally:
        if server.poll() is None:  # stops the server and its kernels (they are in its process group)
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        log.close()


def _save_screenshot(target, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    target.screenshot(path=str(path))
    extra = os.environ.get("HGPT_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def _open_and_run_all(page, base: str, token: str, name: str, timeout: float = RUN_ALL_TIMEOUT) -> None:
    """Open `name` in JupyterLab, clear its stored outputs, run every cell (within `timeout` seconds), and fail
    on any traceback."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    # wait for the kernel, then clear the saved outputs and run every cell
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=120_000,
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """(stderr) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const failed = [...document.querySelectorAll(stderr)].some(e => e.textContent.includes('Traceback'));
            return failed || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
        }""",
        arg=STDERR,
        timeout=timeout * 1000,
        polling=1000,
    )
    tracebacks = [t for t in page.locator(STDERR).all_text_contents() if "Traceback" in t]
    assert not tracebacks, tracebacks


def _launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)


def test_editor_in_jupyterlab_runs_after_a_model_change(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token, root = lab
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            _open_and_run_all(page, base, token, NOTEBOOK.name)

            # the editor: the output that holds the request box and the Run button
            editor = page.locator(".jp-OutputArea-output").filter(has_text="Re-plan uses it").first
            expect(editor).to_be_visible()
            message = editor.locator(".widget-html").filter(has_text="tasks done").first
            expect(message).to_contain_text("Done in", timeout=60_000)
            before = message.inner_text()
            assert "reused" in before, before  # the notebook's own re-run reused faces and text

            # pick the other voice in the speech task's model dropdown (ipywidgets render a <select>):
            # the shipped voices, Piper and eSpeak NG (Debian's espeak-ng, which .ci/run installs)
            dropdown = (
                editor.locator("select")
                .filter(has=page.locator("option", has_text="espeak-ng"))
                .filter(has=page.locator("option", has_text="piper"))
                .first
            )
            labels = dropdown.locator("option").all_text_contents()
            current = dropdown.evaluate("s => s.options[s.selectedIndex].textContent")
            other = next(label for label in labels if label != current)
            dropdown.select_option(label=other)
            expect(editor).to_contain_text("changed: runs again", timeout=30_000)  # the kernel saw the change
            _save_screenshot(editor, tmp_path, "editor-before-run.png")

            editor.locator("button").filter(has_text=re.compile(r"^\s*Run\s*$")).click()
            expect(editor.locator(".widget-html").filter(has_text=re.compile(r"^Running…$"))).to_be_visible(
                timeout=60_000
            )
            expect(message).to_be_visible(timeout=600_000)  # "Done in ...: 4 of 4 tasks done (3 reused)."
            after = message.inner_text()
            assert after != before, after
            assert "reused" in after and "failed" not in after, after
            assert "changed: runs again" not in editor.inner_text()

            # a picture (faces boxed, edge map), an audio player and the answer, inside the editor
            expect(editor.locator("img").first).to_be_visible()
            assert editor.locator("audio").count() >= 1
            answer = editor.locator(".jp-RenderedMarkdown").last
            expect(answer).to_be_visible()
            assert len(answer.inner_text().strip()) > 20, answer.inner_text()

            editor.scroll_into_view_if_needed()
            shot = _save_screenshot(editor, tmp_path, "editor-after-run.png")
            _save_screenshot(page, tmp_path, "jupyterlab.png")
            print(f"screenshots: {shot.parent}")
        finally:
            browser.close()


# --------------------------------------------------------------------------- hostile markup (issue 24)

#: Each payload sets `window.pwned` (the iframe's script: its parent's) if it ever runs.
PAYLOADS = {
    "img": '<img src=x onerror="window.pwned=1">',
    "svg": '<svg onload="window.pwned=2"><circle r="4"/></svg>',
    "iframe": '<iframe srcdoc="<script>parent.pwned=3</script>"></iframe>',
    "link": "[click me](javascript:window.pwned=4)",
    "script": "<script>window.pwned=5</script>",
}
ANSWER = (f"**Done.** The sign says {PAYLOADS['img']}.\n\n- first {PAYLOADS['svg']}\n- second {PAYLOADS['iframe']}\n"
          f"- the [picture](photo.png)\n\n{PAYLOADS['link']} {PAYLOADS['script']}")
SETUP = '''%load_ext hgpt_magic
import json
from PIL import Image
from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts.base import ExpertBackend
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.registry import Registry, default_registry
from hgpt_magic.testing import ScriptedLLM
from hgpt_magic.types import Artifact

P = json.loads({payloads!r})
ANSWER = json.loads({answer!r})


class Hostile(ExpertBackend):
    """A stand-in expert whose outputs are the payloads: an OCR'd sign, labels, a summary."""

    name, offline = "hostile", True

    def cards(self):
        return [ModelCard(m, t, 5, backend="hostile") for m, t in
                [("ocr-x", "image-to-text"), ("cls-x", "image-classification"), ("sum-x", "summarization")]]

    def can_serve(self, task, model):
        return model in ("ocr-x", "cls-x", "sum-x")

    def run(self, task, model, inputs, ctx):
        if task == "image-to-text":
            return [Artifact(kind="text", text="SIGN: " + P["svg"] + P["script"])]
        if task == "image-classification":
            return [Artifact(kind="data", data=[{{"label": P["iframe"], "score": 0.9}}], text=P["img"])]
        return [Artifact(kind="text", text="summary " + P["img"])]


Image.new("RGB", (32, 24), "red").save("photo.png")
plan = json.dumps({{"tasks": [
    {{"task": "image-to-text", "id": 0, "dep": [], "args": {{"image": "photo.png"}}}},
    {{"task": "image-classification", "id": 1, "dep": [], "args": {{"image": "photo.png"}}}},
    {{"task": "summarization", "id": 2, "dep": [], "args": {{"text": P["img"] + P["iframe"]}}}},
]}})
magics = get_ipython().magics_manager.registry["HuggingGPTMagics"]
magics.pipeline = HuggingGPT(llm=ScriptedLLM([plan, ANSWER, plan, ANSWER]), experts=[Hostile()],
                             registry=Registry.of(list(default_registry()), name="tests"), catalog=Catalog([]))
'''
REQUEST = "Read photo.png, classify photo.png and summarise it"


def _payload_notebook(path: Path) -> None:
    setup = SETUP.format(payloads=json.dumps(PAYLOADS), answer=json.dumps(ANSWER))
    sources = [setup, f"%%hugginggpt --auto\n{REQUEST}", "%hugginggpt last", "%hugginggpt history",
               f"%%hugginggpt\n{REQUEST}"]
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))


def test_no_payload_from_the_llm_or_an_expert_runs_in_jupyterlab(lab, tmp_path):
    """A notebook whose answer, task outputs, plan, `last`, `history` and live plan editor all carry
    markup payloads: after every cell ran and the editor's Run was clicked, none of them has run."""
    from playwright.sync_api import expect, sync_playwright

    base, token, root = lab
    _payload_notebook(root / "payloads.ipynb")
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            _open_and_run_all(page, base, token, "payloads.ipynb", timeout=300)

            editor = page.locator(".jp-OutputArea-output").filter(has_text="Re-plan uses it").first
            expect(editor).to_be_visible(timeout=60_000)
            editor.locator("button").filter(has_text=re.compile(r"^\s*Run\s*$")).click()
            expect(editor.locator(".widget-html").filter(has_text="tasks done").first).to_contain_text(
                "Done in", timeout=120_000)
            expect(editor.locator(".jp-RenderedMarkdown").last).to_contain_text("Done.", timeout=60_000)
            page.locator(".jp-RenderedMarkdown a").first.wait_for(timeout=10_000)
            hrefs = [(link.get_attribute("href") or "").strip().lower()  # a script link would run on click
                     for link in page.locator(".jp-OutputArea-output a").all()]
            time.sleep(2)  # an image's onerror fires once its load fails

            outputs = page.locator(".jp-OutputArea-output")
            live = outputs.locator("img[onerror], svg[onload], iframe, script, [srcdoc]").count()
            shown = " ".join(outputs.all_inner_texts())
            pwned = page.evaluate("() => window.pwned ?? null")
            _save_screenshot(page, tmp_path, "payloads.png")
        finally:
            browser.close()
    assert pwned is None, f"a payload ran: window.pwned = {pwned}"
    assert live == 0
    assert not [h for h in hrefs if h.startswith(("javascript:", "data:", "vbscript:"))], hrefs
    for text in ('onerror="window.pwned=1"', 'onload="window.pwned=2"', "srcdoc=", "Done."):
        assert text in shown, text  # the payloads are shown as the text they are
def test_magic_editor_in_jupyterlab_edits_a_task_and_runs_it(lab, tmp_path):
    """07: the `%%hugginggpt` cell's own editor; a task's argument typed in the browser, then Run."""
    from playwright.sync_api import expect, sync_playwright

    base, token, root = lab
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            _open_and_run_all(page, base, token, MAGIC_NOTEBOOK.name)

            # the editor the magic displayed (the first output of the %%hugginggpt cell)
            editor = page.locator(".jp-OutputArea-output").filter(has_text="Re-plan uses it").first
            expect(editor).to_be_visible()
            message = editor.locator(".widget-html").filter(has_text="tasks done").first
            expect(message).to_contain_text("Done in", timeout=60_000)  # the notebook's own Run
            # the reading task's image field: the notebook typed data/document.png; type the sign instead
            fields = [f for f in editor.locator("input[type='text']").all() if f.input_value() == "data/document.png"]
            assert len(fields) == 1, [f.input_value() for f in editor.locator("input[type='text']").all()]
            fields[0].fill("data/sign.png")
            expect(editor).to_contain_text("changed: runs again", timeout=30_000)  # the kernel saw the edit
            _save_screenshot(editor, tmp_path, "magic-editor-before-run.png")

            editor.locator("button").filter(has_text=re.compile(r"^\s*Run\s*$")).click()
            expect(editor.locator(".widget-html").filter(has_text=re.compile(r"^Running…$"))).to_be_visible(
                timeout=60_000
            )
            expect(message).to_be_visible(timeout=600_000)
            after = message.inner_text()
            assert "Done in" in after and "failed" not in after, after
            assert "changed: runs again" not in editor.inner_text()
            # the reading ran again on the sign, and the speech read its words: a player and the answer
            expect(editor).to_contain_text("WELCOME", timeout=30_000)
            assert editor.locator("audio").count() >= 1
            answer = editor.locator(".jp-RenderedMarkdown").last
            expect(answer).to_be_visible()
            assert "WELCOME" in answer.inner_text().upper(), answer.inner_text()

            editor.scroll_into_view_if_needed()
            shot = _save_screenshot(editor, tmp_path, "magic-editor-after-run.png")
            print(f"screenshots: {shot.parent}")
        finally:
            browser.close()
