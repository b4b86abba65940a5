"""How plans, task results and runs look: display objects for notebooks, readable text for terminals.

Everything here returns either an IPython display object (an image, an audio player, a video) or a
`Rich` value that carries both HTML and plain text, so the same calls serve a live notebook, a
notebook saved to static HTML, and a terminal IPython. No widget library is imported here.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from IPython.display import Audio, Image, Markdown, Video

from .. import safe_text
from ..drawing import draw_boxes
from ..types import GENERATED_RE, Artifact, Choice, Run, Selection, Task, TaskResult

#: Media larger than this is linked by path instead of embedded in HTML (notebooks stay small).
EMBED_LIMIT = 8 << 20

#: A task that has not started is "queued" to the user.
STATE_WORDS = {"pending": "queued"}


def esc(value: Any) -> str:
    """Text from anywhere (the LLM, an expert, a plan) for HTML: escaped, secrets masked, control codes
    dropped (`safe_text.html`). Every piece of text in this module's HTML goes through here."""
    return safe_text.html(value)


class Rich:
    """A value that shows as HTML in notebooks and as plain text in terminals and `repr`.

    `html_text` must be built from `esc`-aped pieces; `text` may be raw: it is made safe here
    (`safe_text.terminal`: secrets masked, terminal control codes dropped)."""

    def __init__(self, html_text: str, text: str):
        self.html = html_text
        self.text = safe_text.terminal(text)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


class ImageFile(Image):
    """An image display that reads as its path in a terminal."""

    def __init__(self, path: str | None = None, *, data: bytes | None = None, caption: str = ""):
        if data is None:
            super().__init__(filename=path)
        else:
            super().__init__(data=data)
        self.caption = caption or (f"image {path}" if path else "image")

    def __repr__(self) -> str:
        return f"[{self.caption}]"


class AudioFile(Audio):
    """An audio player (embedded, so it survives saving) that reads as its path in a terminal."""

    def __init__(self, path: str):
        super().__init__(filename=path)
        self.path = path

    def __repr__(self) -> str:
        return f"[audio {self.path}]"


class VideoFile(Video):
    def __init__(self, path: str):
        super().__init__(path, embed=True)
        self.path = path

    def __repr__(self) -> str:
        return f"[video {self.path}]"


# --------------------------------------------------------------------------- artifacts


def media_mime(path: str | None) -> str | None:
    """The file's MIME type when it is a real image/audio/video file on disk, else None."""
    if not path or not Path(path).is_file():
        return None
    mime, _ = mimetypes.guess_type(path)
    return mime if mime and mime.split("/")[0] in ("image", "audio", "video") else None


def text_block(text: str) -> Rich:
    return Rich(f'<div style="white-space:pre-wrap">{esc(text)}</div>', text)


def artifact_displays(artifact: Artifact) -> list[Any]:
    """Display objects for one artifact: the picture, the player, the text or a table of the data."""
    mime = media_mime(artifact.path)
    if artifact.kind == "image" and mime and mime.startswith("image/"):
        return [ImageFile(artifact.path)]
    if artifact.kind == "audio" and mime and mime.startswith("audio/"):
        return [AudioFile(artifact.path)]
    if artifact.kind == "video" and mime and mime.startswith("video/"):
        if Path(artifact.path).stat().st_size <= EMBED_LIMIT:
            return [VideoFile(artifact.path)]
    if artifact.path:  # a file we cannot show inline: name it
        shown = artifact.text or f"{artifact.kind} file"
        return [Rich(f"{esc(shown)} <code>{esc(artifact.path)}</code>", f"{shown}: {artifact.path}")]
    if artifact.kind == "data":
        return [data_table(artifact.data, artifact.text)]
    return [text_block(artifact.text)]


def data_table(data: Any, caption: str = "") -> Rich:
    """Labels, detections and scores as a table; other structures as indented JSON."""
    rows = data if isinstance(data, list) else [data] if isinstance(data, dict) else None
    if rows and all(isinstance(r, dict) for r in rows):
        columns = list(dict.fromkeys(k for r in rows for k in r))[:6]
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows[:50]
        )
        more = f"<div>… {len(rows) - 50} more rows</div>" if len(rows) > 50 else ""
        cap = f"<caption>{esc(caption)}</caption>" if caption else ""
        text_rows = ["  ".join(columns)] + ["  ".join(_cell(r.get(c)) for c in columns) for r in rows[:50]]
        text = (caption + "\n" if caption else "") + "\n".join(text_rows)
        return Rich(f"<table>{cap}<tr>{head}</tr>{body}</table>{more}", text)
    dumped = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return Rich(f"<pre>{esc(dumped)}</pre>", dumped)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


def detections(result: TaskResult) -> list[dict[str, Any]]:
    """The boxes a result reported (`[{"label"|"text", "score", "box"}]`), if any."""
    for artifact in result.artifacts:
        data = artifact.data
        if isinstance(data, list) and data and all(isinstance(d, dict) and "box" in d for d in data):
            return data
    return []


def draw_detections(image_path: str, boxes: Sequence[dict[str, Any]]) -> bytes:
    """The image with each box drawn and labelled, as PNG bytes (see `drawing.draw_boxes`)."""
    from PIL import Image as PILImage

    with PILImage.open(image_path) as image:
        drawn = draw_boxes(image, boxes)
    buffer = io.BytesIO()
    drawn.save(buffer, format="PNG")
    return buffer.getvalue()


def result_header(result: TaskResult) -> Rich:
    """`#0 image-to-text · done · 0.42 s · model (backend)`."""
    parts = [f"#{result.task_id} {result.task}", state_text(result)]
    if result.model:
        parts.append(f"{result.model} ({result.backend})")
    text = " · ".join(parts)
    return Rich(f"<b>#{result.task_id} {esc(result.task)}</b> · {esc(' · '.join(parts[1:]))}", text)


def fallback_view(result: TaskResult) -> Rich | None:
    """"model X failed: reason → model Y" for each fallback, so the user sees which model really answered."""
    lines = result.fallbacks()
    if not lines:
        return None
    return Rich(
        "".join(f'<div style="color:#a06a00">↪ {esc(line)}</div>' for line in lines),
        "\n".join(f"fallback: {line}" for line in lines),
    )


def result_displays(result: TaskResult, *, header: bool = True) -> list[Any]:
    """What a finished task shows: its header, each artifact, boxes drawn on the input, or the error."""
    shown: list[Any] = [result_header(result)] if header else []
    if result.status != "done":
        if result.error:
            shown.append(error_view(f"{result.status}: {result.error}"))
        return shown
    for artifact in result.artifacts:
        shown += artifact_displays(artifact)
    boxes = detections(result)
    has_image = any(a.kind == "image" and media_mime(a.path) for a in result.artifacts)
    source = result.inputs.get("image")
    if boxes and not has_image and media_mime(source):
        try:
            shown.append(ImageFile(data=draw_detections(source, boxes), caption=f"boxes drawn on {source}"))
        except OSError:
            pass  # an unreadable input image: the table above still shows the boxes
    return shown


def state_text(result: TaskResult | None, *, now: float | None = None) -> str:
    """`queued`, `running · 1.2 s`, `done · 0.42 s`, `done · reused`, `failed`…"""
    if result is None:
        return "queued"
    word = STATE_WORDS.get(result.status, result.status)
    if result.status == "done" and result.reused:
        return "done · reused"
    if result.status == "running" and result.started is not None and now is not None:
        return f"running · {max(0.0, now - result.started):.1f} s"
    if result.seconds is not None:
        return f"{word} · {result.seconds:.2f} s"
    return word


def error_view(message: str, details: str | None = None) -> Rich:
    more = f"<details><summary>details</summary><pre>{esc(details)}</pre></details>" if details else ""
    return Rich(
        f'<div style="color:#b00020;border-left:3px solid #b00020;padding-left:6px">{esc(message)}{more}</div>',
        message + (f"\n{details}" if details else ""),
    )


def answer_view(answer: str) -> Markdown:
    """The answer as Markdown, its line breaks kept: a receipt read line by line, or "Text in x: ..." above
    "Translation: ...", would otherwise run together into one paragraph. The answer is untrusted text
    (it quotes OCR'd signs and transcripts): its formatting renders, raw HTML and script links do not
    (`safe_text.markdown`)."""
    return Markdown(hard_line_breaks(safe_text.markdown(answer)))


def hard_line_breaks(text: str) -> str:
    """Markdown in which every single newline is a line break (two spaces before it), lists and blank lines
    left as they are."""
    lines = text.split("\n")
    kept = []
    for line, following in zip(lines, lines[1:] + [""], strict=True):
        plain = line.strip() and following.strip() and not following.lstrip().startswith(("- ", "* ", "1. "))
        kept.append(line.rstrip() + "  " if plain else line)
    return "\n".join(kept)


# --------------------------------------------------------------------------- plans and runs


def _args_text(task: Task) -> str:
    """`image=output of task 0, language='French'`."""
    shown = []
    for name, value in task.args.items():
        ref = GENERATED_RE.fullmatch(value.strip())
        shown.append(f"{name}=output of task {ref.group(1)}" if ref else f"{name}={value!r}")
    return ", ".join(shown)


def plan_view(
    tasks: Iterable[Task],
    selection: Selection | Mapping[int, Choice] | None = None,
    results: Mapping[int, TaskResult] | None = None,
    *,
    errors: Sequence[str] = (),
    notes: Sequence[str] = (),
    now: float | None = None,
) -> Rich:
    """The plan as a table (id, task, arguments, model, backend, why, state); errors and notes below."""
    tasks = list(tasks)
    choices = selection.choices if isinstance(selection, Selection) else (selection or {})
    results = results or {}
    if not tasks:
        return Rich("<p><i>No task needed: the LLM answers directly.</i></p>", "No task needed: the LLM answers directly.")
    rows_html, rows_text = [], []
    for task in tasks:
        choice = choices.get(task.id)
        model = choice.model if choice and choice.available else "(none)"
        backend = (choice.backend if choice else None) or "-"
        why = choice.reason if choice else ""
        state = state_text(results.get(task.id), now=now) if task.id in results else "queued"
        fallbacks = results[task.id].fallbacks() if task.id in results else []
        cells = [f"#{task.id}", task.task, _args_text(task), model, backend, why, state]
        rows_html.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells[:-1])
                         + f"<td>{esc(state)}{''.join(f'<br/>↪ {esc(f)}' for f in fallbacks)}</td></tr>")
        deps = f" after {task.dep}" if task.dep else ""
        rows_text.append(f"  [{task.id}] {task.task}({_args_text(task)}){deps}\n      model: {model} via {backend}"
                         + (f" ({why})" if why else "") + f"\n      state: {state}"
                         + "".join(f"\n      fallback: {f}" for f in fallbacks))
    head = "".join(f"<th>{h}</th>" for h in ("id", "task", "arguments", "model", "backend", "why", "state"))
    extra_html = "".join(f'<div style="color:#b00020">✗ {esc(e)}</div>' for e in errors)
    extra_html += "".join(f'<div style="color:#666">note: {esc(n)}</div>' for n in notes)
    text = "Plan:\n" + "\n".join(rows_text)
    text += "".join(f"\n  ✗ {e}" for e in errors) + "".join(f"\n  note: {n}" for n in notes)
    return Rich(f"<table><tr>{head}</tr>{''.join(rows_html)}</table>{extra_html}", text)


def _inline_media(artifact: Artifact) -> str:
    """An artifact as self-contained HTML (base64 media), for saved notebooks and `%hugginggpt last`."""
    mime = media_mime(artifact.path)
    if mime and Path(artifact.path).stat().st_size <= EMBED_LIMIT:
        data = base64.b64encode(Path(artifact.path).read_bytes()).decode("ascii")
        if mime.startswith("image/"):
            return f'<img src="data:{mime};base64,{data}" style="max-width:480px" title="{esc(artifact.path)}"/>'
        if mime.startswith("audio/"):
            return f'<audio controls src="data:{mime};base64,{data}"></audio>'
        return f'<video controls style="max-width:480px" src="data:{mime};base64,{data}"></video>'
    if artifact.path:
        return f"{esc(artifact.text or artifact.kind)} <code>{esc(artifact.path)}</code>"
    if artifact.kind == "data":
        return data_table(artifact.data, artifact.text).html
    return text_block(artifact.text).html


def run_view(run: Run) -> Rich:
    """A whole `Run`: request, plan with states, each task's outputs, and the answer."""
    parts_html = [f"<p><b>Request:</b> {esc(run.request)}<br/><b>LLM:</b> {esc(run.llm)} · "
                  f"<b>status:</b> {esc(run.status)}</p>"]
    parts_text = [f"Request: {run.request}", f"LLM: {run.llm} · status: {run.status}"]
    if run.error:
        parts_html.append(error_view(run.error).html)
        parts_text.append(f"error: {run.error}")
    if run.plan is not None:
        table = plan_view(run.plan, run.selection, run.results, notes=run.plan.repairs)
        parts_html.append(table.html)
        parts_text.append(table.text)
    for task_id in sorted(run.results):
        result = run.results[task_id]
        if result.status == "pending":
            continue
        header = result_header(result)
        fallbacks = fallback_view(result)
        body = "".join(_inline_media(a) for a in result.artifacts) if result.status == "done" else esc(result.error)
        parts_html.append(f"<div>{header.html}{fallbacks.html if fallbacks else ''}<div>{body}</div></div>")
        parts_text.append(header.text + "".join(f"\n    {line}" for line in (fallbacks.text.splitlines() if fallbacks else []))
                          + "".join(f"\n    {a.kind}: {a.describe(200)}" for a in result.artifacts))
    if run.answer:
        parts_html.append(f'<div style="white-space:pre-wrap;margin-top:6px"><b>Answer:</b>\n{esc(run.answer)}</div>')
        parts_text.append(f"Answer:\n{run.answer}")
    if run.run_dir:
        parts_html.append(f'<div style="color:#666">saved in <code>{esc(run.run_dir)}/run.json</code></div>')
        parts_text.append(f"saved in {run.run_dir}/run.json")
    return Rich("".join(parts_html), "\n".join(parts_text))

