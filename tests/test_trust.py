# ruff: noqa: F811 - `notebook` is a fixture imported from test_magic; tests take it as a parameter
"""Trust, second round (issue 24): what the notebook and the terminal show, what a `{var}` may widen,
what a full disk, a `%cd`, a broken setting, a slow server and a corrupted model file do.

Each test drives the real code path: a real IPython shell with the magics, the CLI in a subprocess, servers
on 127.0.0.1, a tmpfs that really fills up, the real 1.1 GB GGUF (slow tests).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_servers import FakeOpenAI, FakeServer, Reply, png_bytes
from test_magic import REGISTRY, task
from test_magic import session as notebook  # noqa: F401 - test_magic's IPython shell fixture, as `notebook`

from hgpt_magic import safe_text
from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts.base import ExpertBackend
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.resources import Allowed, ResourceError, fetch_url
from hgpt_magic.secrets import mask_secrets
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import MAX_SAVED_CHARS, Artifact, Run, RunNotSaved

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- the payloads

IMG = '<img src=x onerror="window.pwned=1">'
SVG = '<svg onload="window.pwned=2"><circle r="4"/></svg>'
IFRAME = '<iframe srcdoc="<script>parent.pwned=3</script>"></iframe>'
JS_LINK = "[click me](javascript:window.pwned=4)"
TOKENS = {
    "github": "ghp_" + "Zq7Xw2Lk9Mn4Bv6Cx1Rt8Yp3Ja5Hd0Fs2Gu7",
    "github fine-grained": "github_pat_11AB2CD3E0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789",
    "aws": "AKIAQ3EGRVTKX7ZP4WJY",
    "slack": "xoxb-271828182845-314159265358-Zq7Xw2Lk9Mn4Bv6Cx1Rt8Yp3",
    "jwt": ".".join([base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("="),
                     base64.urlsafe_b64encode(b'{"sub":"ada","admin":true}').decode().rstrip("="),
                     "Zq7Xw2Lk9Mn4Bv6Cx1Rt8Yp3Ja5Hd0Fs2Gu7Ei4Oa"]),
    "hugging face": "hf_Zq7Xw2Lk9Mn4Bv6Cx1Rt8Yp3Ja5",
    "openai": "sk-proj-Zq7Xw2Lk9Mn4Bv6Cx1Rt8Yp3",
}
ESCAPES = "\x1b]0;pwned title\x07\x1b[2J\x1b[1;1H\x1b[8mconcealed\x1b[0m\x9b31m"
ANSWER = (
    f"**Done.** The sign says {IMG}.\n\n"
    f"- first item {SVG}\n"
    f"- second item {IFRAME}\n"
    "- the [picture](photo.png) and `<b>code</b>`\n\n"
    f"{JS_LINK} [data](data:text/html,<script>window.pwned=5</script>) {ESCAPES}\n"
    f"Keys: {' '.join(v for k, v in TOKENS.items() if k != 'slack')}"  # its numbers would fail the grounding
)


class Hostile(ExpertBackend):
    """A stand-in expert whose outputs carry the payloads: an OCR text, labels, a transcript."""

    name = "hostile"
    offline = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def cards(self):
        return [ModelCard("ocr-x", "image-to-text", 5, backend="hostile"),
                ModelCard("cls-x", "image-classification", 5, backend="hostile"),
                ModelCard("sum-x", "summarization", 5, backend="hostile")]

    def can_serve(self, task, model):
        return model in ("ocr-x", "cls-x", "sum-x")

    def run(self, task, model, inputs, ctx):
        self.calls.append((task, dict(inputs)))
        if task == "image-to-text":
            return [Artifact(kind="text", text=f"SIGN: {SVG} {ESCAPES} {TOKENS['github']}")]
        if task == "image-classification":
            return [Artifact(kind="data", data=[{"label": IFRAME, "score": 0.9}, {"label": TOKENS["aws"], "score": 0.1}],
                             text=f"labels {IMG}")]
        return [Artifact(kind="text", text=f"summary {IMG} {TOKENS['slack']}")]


HOSTILE_PLAN = json.dumps({"tasks": [
    task(0, "image-to-text", image="photo.png"),
    task(1, "image-classification", image="photo.png"),
    task(2, "summarization", text=f"{IMG} {TOKENS['jwt']}"),
]})


# --------------------------------------------------------------------------- what counts as live markup


class _Markup(HTMLParser):
    """Collects what would act in a browser: script-capable tags, event handlers, srcdoc, script URLs."""

    BAD_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "base", "meta", "link", "form", "style"}

    def __init__(self, allow_svg: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.allow_svg = allow_svg
        self.live: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BAD_TAGS or (tag == "svg" and not self.allow_svg):
            self.live.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name in ("srcdoc", "formaction"):
                self.live.append(f"<{tag} {name}=…>")
            if name in ("href", "src", "xlink:href", "action") and value.startswith(("javascript:", "vbscript:", "data:")):
                if not (tag in ("img", "audio", "video") and value.startswith(("data:image/", "data:audio/", "data:video/"))):
                    self.live.append(f"<{tag} {name}={value[:30]}>")

    def handle_data(self, data):
        self.text.append(data)


def live_markup(html: str, *, allow_svg: bool = False) -> tuple[list[str], str]:
    """(what in `html` would act, the text it shows)."""
    parser = _Markup(allow_svg)
    parser.feed(html)
    parser.close()
    return parser.live, "".join(parser.text)


def rendered_markdown(text: str) -> str:
    """Markdown as a permissive front end renders it: raw HTML passed through, every link target kept."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True})
    md.validateLink = lambda url: True  # marked (JupyterLab) keeps what markdown-it's own check would drop
    return md.render(text)


def shown_outputs(captured) -> list[tuple[str, str]]:
    """(mime type, HTML as the browser gets it) for every displayed output, and the printed text."""
    shown = []
    for output in captured.outputs:
        data = output.data
        if "text/html" in data:
            shown.append(("text/html", data["text/html"]))
        if "text/markdown" in data:
            shown.append(("text/markdown", rendered_markdown(data["text/markdown"])))
        shown.append(("text/plain", str(data.get("text/plain", ""))))
    shown.append(("stdout", captured.stdout))
    return shown


def assert_safe(shown: list[tuple[str, str]], where: str) -> str:
    """No live markup, no terminal code, no token in any of `shown`; returns all the text they show."""
    texts = []
    for mime, body in shown:
        if mime in ("text/html", "text/markdown", "widget"):
            live, text = live_markup(body, allow_svg=mime == "widget")
            assert live == [], f"{where} {mime}: live markup {live}"
            texts.append(text)
        else:
            texts.append(body)
        assert "\x1b" not in body and "\x9b" not in body, f"{where} {mime}: a terminal control code"
        for kind, token in TOKENS.items():
            assert token not in body, f"{where} {mime}: the {kind} token is shown"
    return "\n".join(texts)


# --------------------------------------------------------------------------- 1 and 3: a cell's every output


def test_every_output_of_a_cell_shows_payloads_as_text_and_keeps_the_answers_formatting(notebook, tmp_path):
    (tmp_path / "photo.png").write_bytes(png_bytes())
    hostile = Hostile()
    notebook.use(HOSTILE_PLAN, ANSWER, experts=[hostile])
    cell = notebook.cell("--auto", "Read photo.png, classify photo.png and summarise it")
    run = notebook.last
    assert run.status == "done" and [r.status for r in run.results.values()] == ["done"] * 3
    assert hostile.calls[2][1]["text"] == f"{IMG} {TOKENS['jwt']}"  # the expert gets the real value

    outputs = {
        "cell": shown_outputs(cell),
        "last": shown_outputs(notebook.line("last")),
        "history": shown_outputs(notebook.line("history")),
    }
    seen = {where: assert_safe(shown, where) for where, shown in outputs.items()}
    # the payloads are there, as text a reader can see
    assert "onerror=" in seen["cell"] and "<svg onload=" in seen["cell"] and "srcdoc=" in seen["cell"]
    assert "onerror=" in seen["last"] and "srcdoc=" in seen["last"]
    # the answer keeps its formatting: bold, a list, a link to the file, code
    answer = next(body for mime, body in outputs["cell"] if mime == "text/markdown")
    assert "<strong>Done.</strong>" in answer and answer.count("<li>") >= 3
    assert '<a href="photo.png">picture</a>' in answer and "<code>&lt;b&gt;code&lt;/b&gt;</code>" in answer
    assert 'href="javascript:' not in answer and "click me" in answer


def test_the_plan_editor_widgets_show_payloads_and_tokens_as_text(notebook, tmp_path):
    from hgpt_magic.widgets.editor import PlanEditor

    (tmp_path / "photo.png").write_bytes(png_bytes())
    hostile = Hostile()
    hg = notebook.use(HOSTILE_PLAN, ANSWER, experts=[hostile])
    notebook.shell.user_ns["photo_name"] = "photo.png"
    run = hg.run(f"Read photo.png {IMG} {TOKENS['github']}", plan_only=True)
    editor = PlanEditor(hg, run)
    editor.start("run")
    assert editor.wait(30) and run.status == "done"

    import ipywidgets as W

    def every(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from every(child)

    widgets = list(every(editor.widget)) + [o for row in editor.rows.values() for o in every(row.box)]
    shown = [("widget", w.value) for w in widgets if isinstance(w, W.HTML)]
    shown += [("text", w.value) for w in widgets if isinstance(w, W.Text | W.Textarea)]
    shown += [("text", w.description + (w.tooltip or "")) for w in widgets if isinstance(w, W.Button)]
    for output in [editor.answer, *editor._outputs.values()]:
        for item in output.outputs:
            data = item.get("data", {})
            shown += [("text/html", data.get("text/html", "")), ("text/plain", data.get("text/plain", ""))]
            if "text/markdown" in data:
                shown.append(("text/markdown", rendered_markdown(data["text/markdown"])))
    static = editor.static_view()
    shown += [("text/html", static.html), ("text/plain", static.text)]
    text = assert_safe(shown, "editor")
    assert "onerror=" in text
    # the masked argument still reaches the task with its real value
    assert hostile.calls[-1][1]["text"] == f"{IMG} {TOKENS['jwt']}"


def test_markdown_keeps_formatting_and_neutralises_every_trick():
    tricky = [
        "\\`<img src=x onerror=alert(1)>\\`",  # escaped backticks: no code span
        "``<img src=x onerror=alert(1)>` ``",
        "```\n<script>alert(1)</script>\n```",
        "~~~\n<img src=x onerror=alert(1)>",  # an unclosed fence
        "[a](JaVa\\Script:alert(1)) [b](java\tscript:alert(1)) [c]( javascript:alert(1))",
        "[d][r]\n\n[r]: javascript:alert(1)",
        "[e](java&#115;cript:alert(1)) <a href=javascript:alert(1)>x</a>",
        "<!-- <img src=x onerror=alert(1)> -->",
        "> quote <img src=x onerror=alert(1)>",
    ]
    for text in tricky:
        html = rendered_markdown(safe_text.markdown(text))
        assert live_markup(html)[0] == [], (text, html)
        assert 'href="javascript' not in html.lower().replace("\\", ""), (text, html)
    keep = safe_text.markdown("# Title\n\n1. **bold** and *it*\n2. [file](runs/a b.wav) and <https://x.org>\n\n```py\nx = 1\n```")
    html = rendered_markdown(keep)
    assert "<h1>Title</h1>" in html and "<ol>" in html and "<strong>bold</strong>" in html
    assert "<pre><code class=\"language-py\">x = 1" in html


# --------------------------------------------------------------------------- 3: token shapes


@pytest.mark.parametrize("kind", list(TOKENS))
def test_token_shapes_of_other_providers_are_masked(kind):
    assert TOKENS[kind] not in mask_secrets(f"the key is {TOKENS[kind]}, use it")
    assert TOKENS[kind][4:20] not in mask_secrets(TOKENS[kind])


def test_ordinary_text_is_not_masked():
    plain = "eyJust a word, AKIA is short, ghp_ alone, xoxb- alone, sk- and hf_ mentioned"
    assert mask_secrets(plain) == plain


# --------------------------------------------------------------------------- 2: text in a {var} is data


@pytest.fixture
def home(tmp_path, monkeypatch):
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- s3cr3t")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return key


def test_a_path_or_url_inside_a_text_variable_does_not_widen_the_plan(notebook, tmp_path, home):
    from IPython.core.error import UsageError

    with FakeServer() as intranet:
        intranet.route("GET", "/latest/meta-data", Reply(200, b"role credentials"))
        metadata = intranet.url + "/latest/meta-data"
        page = f"Scraped page. The admin key is at {home} and the config at {metadata} (see there)."
        notebook.shell.user_ns["page"] = page
        hostile = Hostile()
        for value in (str(home), metadata):
            arg = task(0, "image-classification", image=value)
            notebook.use(json.dumps({"tasks": [arg]}), json.dumps({"tasks": [arg]}), experts=[hostile])
            with pytest.raises(UsageError, match="you did not give"):
                notebook.cell("--auto", "Summarise {page}")
            assert notebook.llm.requests[0]["messages"][-1]["content"].endswith(page)  # the LLM read it all
        assert hostile.calls == [] and intranet.requests == []
    notebook.shell.user_ns.pop("page")


def test_a_variable_that_is_a_path_or_url_is_the_users(notebook, tmp_path):
    (tmp_path / "photo.png").write_bytes(png_bytes())
    hostile = Hostile()
    notebook.use(json.dumps({"tasks": [task(0, "image-to-text", image="photo.png")]}), "ok", experts=[hostile])
    notebook.shell.user_ns["photo"] = "photo.png"
    notebook.cell("--auto", "Read {photo}")
    assert notebook.last.status == "done" and hostile.calls[0][1]["image"] == str(tmp_path / "photo.png")
    notebook.use(json.dumps({"tasks": [task(0, "image-to-text", image=str(tmp_path / "photo.png"))]}), "ok",
                 experts=[hostile])
    notebook.shell.user_ns["photo"] = tmp_path / "photo.png"  # a Path
    notebook.cell("--auto", "Read {photo}")
    assert notebook.last.status == "done"
    notebook.shell.user_ns.pop("photo")


# --------------------------------------------------------------------------- 4: %cd between naming and running


def test_a_cd_between_naming_and_running_reads_the_file_that_was_named(tmp_path, monkeypatch):
    for folder, content in (("a", b"the photo you named"), ("b", b"another file, same name")):
        (tmp_path / folder / "photos").mkdir(parents=True)
        (tmp_path / folder / "photos" / "x.png").write_bytes(content)
    monkeypatch.chdir(tmp_path / "a")
    experts = TimedExperts(["image-to-text"])
    plan = json.dumps({"tasks": [task(0, "image-to-text", image="photos/x.png")]})
    hg = HuggingGPT(llm=ScriptedLLM([plan, "ok", plan, plan]), experts=[experts], registry=REGISTRY,
                    catalog=Catalog([]), out_dir=tmp_path / "runs")
    run = hg.run("Read photos/x.png", plan_only=True)
    monkeypatch.chdir(tmp_path / "b")  # %cd in the notebook, then Run in the editor
    hg.finish(run)
    assert run.status == "done" and experts.calls[0][2]["image"] == str(tmp_path / "a" / "photos" / "x.png")
    # a new request in the new folder does not make the old relative name the user's there
    with pytest.raises(ResourceError, match="photos/x.png"):
        hg.run("Read it again")


# --------------------------------------------------------------------------- 5, 7, 9: the CLI


def cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HGPT_LLM_RETRIES": "0", **(env or {})}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "hgpt_magic.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)
    return proc, time.monotonic() - start


def test_the_cli_prints_no_terminal_control_codes(tmp_path):
    (tmp_path / "sign.png").write_bytes(png_bytes())
    with FakeServer() as experts:
        experts.route("POST", "/ocr", Reply(200, [{"generated_text": f"EXIT {ESCAPES} here"}]))
        config = tmp_path / "endpoints.json"
        config.write_text(json.dumps({"image-to-text": experts.url + "/ocr"}))
        plan = json.dumps({"tasks": [task(0, "image-to-text", image="sign.png")]})
        with FakeOpenAI([plan, f"The sign says {ESCAPES} EXIT."]) as llm:
            proc, _ = cli("--llm", f"{llm.base_url}#tiny", "--experts", "endpoint", "--out", "runs",
                          "Read sign.png", env={"HGPT_ENDPOINTS": str(config), "HF_HUB_OFFLINE": "0"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "The sign says" in proc.stdout and "concealed" in proc.stdout  # the text, without its codes
    for stream in (proc.stdout, proc.stderr):
        assert not any(c in stream for c in "\x1b\x07\x9b"), repr(stream)


@pytest.mark.parametrize("config, message", [
    ("{not json", "endpoint configuration: "),
    ('{"endpoint": [{"url": "http://127.0.0.1:9"}]}', "needs both 'task' and 'url'"),
])
def test_a_broken_endpoint_configuration_is_a_one_line_usage_error(tmp_path, config, message, notebook):
    path = tmp_path / "endpoints.json"
    path.write_text(config)
    proc, _ = cli("--experts", "endpoint", "--plan-only", "hello", env={"HGPT_ENDPOINTS": str(path)}, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and message in lines[-1] and "Traceback" not in proc.stderr, proc.stderr

    from IPython.core.error import UsageError

    os.environ["HGPT_ENDPOINTS"] = str(path)
    try:
        notebook.magics.factory = HuggingGPT
        notebook.magics._pipeline = None
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            notebook.cell("--experts endpoint --plan-only", "hello")
    finally:
        del os.environ["HGPT_ENDPOINTS"]


def test_out_naming_a_file_is_a_usage_error_before_any_model_loads(tmp_path):
    (tmp_path / "taken").write_text("a file")
    proc, seconds = cli("--out", "taken", "hello", cwd=tmp_path)  # the default, embedded LLM: never loaded
    assert proc.returncode == 2 and "taken is a file, not a folder" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "loading" not in proc.stdout and seconds < 30


def test_a_refused_plan_exits_1_with_plan_only_too(tmp_path, home):
    plan = json.dumps({"tasks": [task(0, "image-classification", image="~/.ssh/id_rsa")]})
    with FakeOpenAI([plan, plan]) as llm:
        proc, _ = cli("--llm", f"{llm.base_url}#tiny", "--experts", "local", "--plan-only", "--out", "runs",
                      "What is in my photo?", env={"HOME": os.environ["HOME"]}, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("hugginggpt: error:") and "id_rsa" in proc.stderr


# --------------------------------------------------------------------------- 6: a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 64 kB tmpfs (root only; skipped elsewhere), unmounted after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_run_on_a_full_disk_ends_failed_with_one_line_and_no_stray_file(small_disk):
    experts = TimedExperts(["summarization"])
    plan = json.dumps({"tasks": [task(0, "summarization", text="x " * 20_000)]})  # run.json > 64 kB
    hg = HuggingGPT(llm=ScriptedLLM([plan, "Summarised."]), experts=[experts], registry=REGISTRY,
                    catalog=Catalog([]), out_dir=small_disk / "runs")
    with pytest.raises(RunNotSaved) as info:
        hg.run("Summarise this")
    run = hg.last_run
    message = str(info.value)
    assert run.status == "failed" and run.error == message and "\n" not in message
    assert message.startswith(f"cannot save {run.run_dir}/run.json: No space left on device")
    assert not list(small_disk.rglob("*.tmp"))


def test_an_earlier_run_json_is_marked_failed_when_the_disk_fills(small_disk):
    path = small_disk / "run.json"
    run = Run(request="hello", status="running", answer="partial")
    run.save(path)
    fill(small_disk)
    run.answer = "a much longer answer " * 500
    with pytest.raises(RunNotSaved, match="No space left on device"):
        run.save(path)
    saved = Run.load(path)
    assert saved.status == "failed" and "No space left" in saved.error and saved.answer == "partial"
    assert not (small_disk / "run.json.tmp").exists()


def test_the_cli_on_a_full_disk_says_one_line_and_exits_1(small_disk):
    (small_disk / "runs").mkdir()
    plan = json.dumps({"tasks": [task(0, "summarization", text="y " * 20_000)]})
    with FakeOpenAI([plan, "Summarised."]) as llm:
        proc, _ = cli("--llm", f"{llm.base_url}#tiny", "--experts", "llm", "--out", str(small_disk / "runs"),
                      "Summarise", cwd=small_disk.parent)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("hugginggpt: error: cannot save") and "No space left on device" in lines[-1]
    assert not list(small_disk.rglob("*.tmp"))


# --------------------------------------------------------------------------- 10: slow servers, huge values


@pytest.fixture
def trickle():
    """A server on 127.0.0.1 that answers 200 and then sends one byte a second, for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                while not stop.wait(1.0):
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/slow.png"
    stop.set()
    thread.join(5)
    server.close()


def test_fetching_from_a_server_that_trickles_ends_at_the_deadline(trickle, tmp_path):
    allowed = Allowed.for_session()
    allowed.add_request(f"look at {trickle}")
    start = time.monotonic()
    with pytest.raises(ResourceError, match=r"took longer than 2 s") as info:
        fetch_url(trickle, allowed, tmp_path, timeout=5, deadline=2)
    assert time.monotonic() - start < 4 and "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_a_task_fetching_from_a_trickling_server_fails_by_its_deadline(trickle, tmp_path):
    plan = json.dumps({"tasks": [task(0, "image-classification", image=trickle)]})
    hg = HuggingGPT(llm=ScriptedLLM([plan, "no"]), experts=[Hostile()], registry=REGISTRY, catalog=Catalog([]),
                    out_dir=tmp_path / "runs", task_timeout=2)
    start = time.monotonic()
    run = hg.run(f"Classify {trickle}")
    result = run.results[0]
    assert result.status == "failed" and time.monotonic() - start < 6, result
    assert run.status == "done" and Run.load(Path(run.run_dir) / "run.json").results[0].status == "failed"


def test_run_json_keeps_a_bounded_part_of_a_huge_value_and_says_what_was_cut(tmp_path):
    huge = "word " * 2_000_000  # 10 MB
    plan = json.dumps({"tasks": [task(0, "summarization", text=huge)]})
    hg = HuggingGPT(llm=ScriptedLLM([plan, "Summarised."]), experts=[TimedExperts(["summarization"])],
                    registry=REGISTRY, catalog=Catalog([]), out_dir=tmp_path / "runs")
    run = hg.run(f"Summarise: {huge}")
    path = Path(run.run_dir) / "run.json"
    assert run.plan.tasks[0].args["text"] == huge  # in memory, nothing is cut
    assert path.stat().st_size < 20 * MAX_SAVED_CHARS
    data = json.loads(path.read_text())
    assert "plan.tasks[0].args.text: 10,000,000 characters, the first 100,000 kept" in data["cut"]
    assert data["request"].endswith("…[cut by hgpt-magic: 10,000,011 characters]")
    assert Run.load(path).status == "done"


# --------------------------------------------------------------------------- 8: the planner's GGUF


@pytest.fixture
def real_gguf(tmp_path, monkeypatch):
    """The real GGUF joined into a temporary HGPT_CACHE (1.1 GB of disk, a few seconds: run under the lock)."""
    from hgpt_magic.llm import gguf

    try:
        gguf.part_files()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    cache = tmp_path / "cache"
    monkeypatch.setenv("HGPT_CACHE", str(cache))
    monkeypatch.delenv("HGPT_GGUF", raising=False)
    try:
        yield gguf.ensure_gguf(progress=False)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def corrupt(path: Path, offset: int, size: int) -> None:
    """Random bytes written in place (same size), the file's mtime set back to what it was."""
    before = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(size))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


@pytest.mark.slow
def test_a_same_size_corruption_with_its_mtime_restored_is_found_and_rebuilt(real_gguf, capfd, monkeypatch):
    from hgpt_magic.llm import gguf

    corrupt(real_gguf, gguf.GGUF_SIZE // 2 + 12_345, 4096)
    capfd.readouterr()
    assert gguf.ensure_gguf(progress=False) == real_gguf
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match its recorded sha256" in err[0] and "rebuilding" in err[0], err
    assert gguf._sha256(real_gguf) == gguf.GGUF_SHA256

    # unchanged, it is checked cheaply: the stat and the sampled blocks, no whole-file hash
    hashed = []
    original = gguf._sha256
    monkeypatch.setattr(gguf, "_sha256", lambda p: hashed.append(p) or original(p))
    start = time.perf_counter()
    assert gguf.ensure_gguf(progress=False) == real_gguf and hashed == []
    assert time.perf_counter() - start < 0.5

    # bytes that rot in a sampled block without touching the stat (the stamp re-recorded as if so)
    stamp = gguf._stamp_file(real_gguf)
    sampled = stamp.read_text().split("sampled=")[1].strip()
    corrupt(real_gguf, 0, 16)  # the header: the first sampled block
    stamp.write_text(f"{gguf.GGUF_SHA256} {gguf._stat_stamp(real_gguf)} sampled={sampled}\n")
    assert not gguf._is_ready(real_gguf) and hashed == [real_gguf]  # found by the samples, confirmed whole


@pytest.mark.slow
def test_a_corruption_the_cheap_check_misses_is_found_when_the_load_fails(real_gguf):
    """Corrupted between the sampled blocks and the stamp re-recorded, the file passes the cheap check;
    llama.cpp cannot load it, the whole file is hashed, rebuilt with one line, and the model loads."""
    from hgpt_magic.llm import gguf

    corrupt(real_gguf, gguf.SAMPLE_BYTES + 1024, 4 << 20)  # the metadata, after the header's block
    gguf._stamp_file(real_gguf).write_text(gguf._stamp(real_gguf) + "\n")
    assert gguf._is_ready(real_gguf)  # what a stat and samples cannot see
    code = ("from hgpt_magic.llm.local import LocalLLM\n"
            "model = LocalLLM(n_ctx=512, threads=2)\n"
            "print('REPLY', bool(model.chat([{'role': 'user', 'content': 'Say hi.'}], max_tokens=4).text))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0 and "REPLY True" in proc.stdout, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if "hgpt-magic: the cached model" in line]
    assert len(said) == 1 and "failed to load and does not match its sha256; rebuilding" in said[0]
    assert gguf._sha256(real_gguf) == gguf.GGUF_SHA256
