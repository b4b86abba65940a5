"""Reading a request's text: the files and URLs it names, the texts it quotes, its letters.

One parser for "what a request names", shared by planning (which files a plan should use), confinement
(`resources`: which files a plan may use), the session's history and the answer check. It is written for
requests in any language: an apostrophe between letters (French "l'image", "s'il", Italian "dell'immagine",
English "sign's") is part of a word, never the start or end of a quote.

A leaf module: it imports nothing of the package, so every layer may use it.
"""

from __future__ import annotations

import mimetypes
import re

MEDIA_KINDS = ("image", "audio", "video")

#: A URL, up to the first space, quote or bracket.
URL = re.compile(r"https?://[^\s\"'<>`«»“”‘’]+", re.IGNORECASE)

#: Quoted texts: an apostrophe counts as a quote only with no letter before the opening one and none after the
#: closing one, so the elisions of "Lis le texte de l'image, s'il te plaît" are no quotes; inside a quote an
#: apostrophe between letters is part of a word ('The library opens at ten o'clock', 'don't panic').
_QUOTED = (
    r"(?<!\w)'((?:[^'\n]|(?<=\w)'(?=\w))+)'(?!\w)",
    r'"([^"\n]+)"',
    r"`([^`\n]+)`",
    r"“([^”\n]+)”",
    r"(?<!\w)‘([^’\n]+)’(?!\w)",
    r"«\s*([^»\n]+?)\s*»",
    r"„([^“”\n]+)[“”]",
)
QUOTED = re.compile("|".join(_QUOTED))

#: A word-like token: quoted strings whole, else a run of characters that are not spaces, quotes or brackets.
_TOKEN = re.compile("|".join(_QUOTED) + r"|([^\s\"'`<>()\[\]{},;«»“”‘’„]+)")
_BARE = _TOKEN.groups  # the last group: an unquoted token
_TRAILING = ".,:;!?)]}>…"


def is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def tokens(text: str) -> list[str]:
    """The request's tokens in order: quoted strings whole, other runs without trailing punctuation."""
    found = []
    for match in _TOKEN.finditer(text or ""):
        token = next(g for g in match.groups() if g is not None).strip()
        if match.group(_BARE) is not None:
            token = token.rstrip(_TRAILING)
        if token:
            found.append(token)
    return found


def named_paths(text: str) -> list[str]:
    """Every token that could name a file or folder (it has a "/" or a ".", or starts with "~"), URLs
    excluded, each once, in order: what `resources.Allowed` takes as the user's word."""
    found: list[str] = []
    for token in tokens(text):
        if ("/" in token or "." in token or token.startswith("~")) and not is_url(token) and token not in found:
            found.append(token)
    return found


#: What may stand around a name in a sentence: quotes, brackets, punctuation.
_AROUND = "\"'`«»“”‘’„()[]{}<>,;:.!?…"


def prose_and_names(text: str) -> list[str]:
    """`text` cut into prose and names, alternately (odd pieces are names): URLs, and words with letters that
    are paths ("/tmp/run-171/a.png", "C:\\x") or file names ("report.pdf"). Narrower than `named_paths`, which
    errs towards "could be a file" for confinement: here "3.60" and "24/7" are prose, for reading what a
    text states."""
    names = {m.group(0) for m in URL.finditer(text)}
    for word in URL.sub(" ", text).split():
        word = word.strip(_AROUND)
        if any(c.isalpha() for c in word) and ("/" in word or "\\" in word or mimetypes.guess_type(word)[0]):
            names.add(word)
    if not names:
        return [text]
    return re.split("(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + ")", text)


def named_urls(text: str) -> list[str]:
    """The URLs in a text, trailing punctuation dropped, each once, in order."""
    found: list[str] = []
    for url in URL.findall(text or ""):
        url = url.rstrip(_TRAILING)
        if url not in found:
            found.append(url)
    return found


def media_kind(name: str) -> str | None:
    """"image", "audio" or "video" from a file name's extension; None for anything else."""
    if not name or "\n" in name:
        return None
    kind = (mimetypes.guess_type(name.split("?")[0])[0] or "").split("/")[0]
    return kind if kind in MEDIA_KINDS else None


def named_files(text: str) -> list[str]:
    """The media files (paths or URLs of images, audio, video) a text names, in order, each once."""
    found: list[str] = []
    for token in tokens(text):
        candidates = named_urls(token) if "://" in token else [token]
        for name in candidates:
            if media_kind(name) and name not in found:
                found.append(name)
    return found


def files_by_kind(text: str) -> dict[str, list[str]]:
    """`named_files` grouped by media kind: {"image": ["a.jpg"], "audio": [...]}."""
    grouped: dict[str, list[str]] = {}
    for name in named_files(text):
        grouped.setdefault(media_kind(name) or "", []).append(name)
    return grouped


def without_files(text: str) -> str:
    """The text with every file name, path and URL taken out: what is left says what the user wants
    ("photo.png" in "Describe photo.png" is no request for a photo)."""
    text = URL.sub(" ", text or "")
    for path in named_paths(text):
        text = text.replace(path, " ")
    return " ".join(text.split())


def quoted_texts(text: str, min_chars: int = 2, *, backticks: bool = True) -> list[str]:
    """The texts a request quotes ('good morning', "hello", “hi”, «salut»), file names aside. `backticks=False`
    leaves out `code` (in Markdown it is formatting, not a quotation)."""
    found = []
    for groups in QUOTED.findall(text or ""):
        if groups[2] and not backticks:
            continue
        value = next(g for g in groups if g)
        if len(value) >= min_chars and not media_kind(value):
            found.append(value)
    return found


def words(text: str) -> set[str]:
    """The words (3 letters or more) of a text, lower case, any script: for matching requests and descriptions."""
    return {w for w in re.findall(r"[^\W_]+", (text or "").lower()) if len(w) > 2}


def letters(text: str) -> str:
    """Letters and digits only, lower case: a quote that adds a comma or drops a full stop still matches."""
    return re.sub(r"[\W_]+", "", (text or "").lower())


def one_line_quote(text: str) -> str:
    """The text on one line, in double quotes (inner double quotes made single): for prompts."""
    return '"' + " ".join(str(text).split()).replace('"', "'") + '"'
