"""Untrusted text made safe to show: on a terminal, in HTML, and as Markdown.

Text from the LLM or an expert (an answer, an OCR'd sign, a transcript, a remote model's error) is
shown to the user in three ways, and each has its own way to turn text into action:

- a terminal runs control codes: cursor moves, title changes, concealed text. `terminal` strips every
  escape sequence and control character except newline and tab;
- HTML runs markup: `<img onerror=…>`, `<svg onload=…>`, `<iframe srcdoc=…>`. `html` escapes it;
- Markdown passes raw HTML through and follows `javascript:` links. `markdown` keeps the formatting an
  answer needs (bold, lists, code, links to the files a run made) but escapes raw HTML outside code and
  drops link targets other than http(s), mailto and paths.

All three also mask anything shaped like a secret (`secrets.mask_secrets`), so one call per display
path covers both rules. Pure string work, no Jupyter import: the CLI and the widgets share it.
"""

from __future__ import annotations

import html as _html
import re
from typing import Any

from .secrets import mask_secrets

#: Terminal escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL|ST`), DCS/SOS/PM/APC strings
#: (`ESC P|X|^|_ … ST`), and the two-byte ones (`ESC x`); 8-bit CSI/OSC (U+009B, U+009D) too.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
#: What is left to drop: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional
#: overrides and isolates that make text read differently from what it is (U+202A-E, U+2066-9).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal(text: Any) -> str:
    """`text` as plain text that is safe to print: secrets masked, control codes removed ("\\r\\n" → "\\n")."""
    text = str(text).replace("\r\n", "\n")
    return _CONTROLS.sub("", _ESCAPES.sub("", mask_secrets(text)))


def html(text: Any) -> str:
    """`text` for HTML: safe as in `terminal`, then escaped (quotes too, so it fits in an attribute)."""
    return _html.escape(terminal(text), quote=True)


# --------------------------------------------------------------------------- Markdown

#: Link targets a rendered answer may keep: web pages, mail, and paths (no scheme: the run's files).
SAFE_SCHEMES = ("http", "https", "mailto")
BLOCKED_TARGET = "#unsafe-link-removed"

_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_INLINE_TARGET = re.compile(r"(\]\(\s*)([^\s)]*)")
_REFERENCE_TARGET = re.compile(r"^( {0,3}\[[^\]]+\]:[ \t]*)(\S+)", re.MULTILINE)
_QUOTE_MARKERS = re.compile(r"^((?: {0,3}>)+)", re.MULTILINE)


def safe_link_target(target: str) -> bool:
    """Whether a link target is a path or an http(s)/mailto URL (after what a renderer would drop:
    backslash escapes and white space, so `java\\script:` or `javascript\\:` cannot hide a scheme)."""
    probe = re.sub(r"[\\\s\x00-\x1f]", "", target)
    scheme = _SCHEME.match(probe)
    return scheme is None or scheme.group(1).lower() in SAFE_SCHEMES


def markdown(text: Any) -> str:
    """Markdown from untrusted `text` that renders its formatting and nothing live.

    Outside code, `&` and `<` are escaped (so no tag, comment or entity trick survives) and `>` too, but
    for blockquote markers; link and image targets that are not paths or http(s)/mailto URLs are
    replaced. Code keeps its text: fenced blocks and `code` spans are left as they are when they hold no
    `<`, `>` or `&`, and otherwise written as `<pre><code>` / `<code>` with their text escaped, so that
    even a renderer that reads the code's boundaries differently from here sees no markup.
    """
    lines = terminal(text).split("\n")
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if opened is None or (opened.group(2)[0] == "`" and "`" in opened.group(3)):
            prose.append(lines[i])
            i += 1
            continue
        indent, fence = opened.group(1), opened.group(2)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = lines[i + 1:end]
        out.append(_prose("\n".join(prose)))
        prose = []
        if any(c in line for line in body for c in "<>&"):
            out.append(f"{indent}<pre><code>{_html.escape(chr(10).join(body), quote=False)}</code></pre>")
        else:
            out.append("\n".join(lines[i:end + 1]))
        i = end + 1
    out.append(_prose("\n".join(prose)))
    return "\n".join(part for part in out if part)


def _prose(text: str) -> str:
    """Markdown outside fenced code: code spans kept (see `markdown`), the rest escaped and links checked."""
    if not text:
        return ""
    pieces: list[str] = []
    plain_start = 0
    pos = 0
    while True:
        tick = _next_backticks(text, pos)
        if tick is None:
            break
        start, length = tick
        end = _closing_backticks(text, start + length, length)
        if end is None:  # an unmatched run of backticks is literal text
            pos = start + length
            continue
        pieces.append(_escape_prose(text[plain_start:start]))
        body = text[start + length:end]
        if any(c in body for c in "<>&"):
            shown = body[1:-1] if len(body) > 2 and body[0] == body[-1] == " " and body.strip() else body
            pieces.append(f"<code>{_html.escape(shown.replace(chr(10), ' '), quote=False)}</code>")
        else:
            pieces.append(text[start:end + length])
        plain_start = pos = end + length
    pieces.append(_escape_prose(text[plain_start:]))
    return "".join(pieces)


def _next_backticks(text: str, pos: int) -> tuple[int, int] | None:
    """The next run of backticks from `pos` that is not backslash-escaped: (start, length)."""
    while (start := text.find("`", pos)) >= 0:
        length = len(text) - start - len(text[start:].lstrip("`"))
        slashes = len(text[:start]) - len(text[:start].rstrip("\\"))
        if slashes % 2 == 0:
            return start, length
        if length == 1:
            pos = start + 1
            continue
        return start + 1, length - 1  # the first backtick is escaped; the rest still open a span
    return None


def _closing_backticks(text: str, pos: int, length: int) -> int | None:
    """Where a run of exactly `length` backticks starts after `pos` (a code span's end), or None."""
    for match in re.finditer(r"`+", text[pos:]):
        if len(match.group(0)) == length:
            return pos + match.start()
    return None


def _escape_prose(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    quotes = {m.start(): m.group(1) for m in _QUOTE_MARKERS.finditer(text)}
    if ">" in text:  # every > but blockquote markers at the start of a line
        parts, last = [], 0
        for start, markers in sorted(quotes.items()):
            parts.append(text[last:start].replace(">", "&gt;"))
            parts.append(markers)
            last = start + len(markers)
        parts.append(text[last:].replace(">", "&gt;"))
        text = "".join(parts)
    text = _INLINE_TARGET.sub(_checked_target, text)
    return _REFERENCE_TARGET.sub(_checked_target, text)


def _checked_target(match: re.Match) -> str:
    target = match.group(2)
    return match.group(1) + (target if safe_link_target(target) else BLOCKED_TARGET)


__all__ = ["BLOCKED_TARGET", "SAFE_SCHEMES", "html", "markdown", "safe_link_target", "terminal"]
