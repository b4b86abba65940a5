"""Every `HGPT_*` environment variable: its name, default, parsing and meaning, in one place.

Modules ask a `Setting` for its value (`LLM_TIMEOUT.number()`), never `os.environ` directly, so the
defaults and the parsing cannot drift apart between modules. The table in `docs/settings.md` is
`markdown_table()`'s output (a test keeps them equal); the README links it.

Values are read when asked for, not at import: a notebook may set a variable after `import hgpt_magic`.
A number that does not parse falls back to the default (a typo must not stop a run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One environment variable. `default` is what applies when it is unset or empty."""

    name: str
    default: str
    meaning: str

    def text(self) -> str:
        """The value as written, or the default when unset or empty."""
        return os.environ.get(self.name) or self.default

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))

    def number(self) -> float:
        """The value as a number; the default when unset, empty or not a number."""
        try:
            return float(self.text())
        except ValueError:
            return float(self.default)

    def integer(self) -> int:
        return int(self.number())

    def path(self) -> Path | None:
        """The value as a path with `~` expanded; None when unset (the caller picks the folder)."""
        return Path(self.text()).expanduser() if self.text() else None


LLM = Setting("HGPT_LLM", "local", "The controller LLM spec (`local`, `gguf:PATH`, `openai:MODEL`, `hf:MODEL`, `URL#MODEL`).")
GGUF = Setting("HGPT_GGUF", "", "Run this GGUF file as the embedded model instead of the shipped Qwen2.5-Coder-1.5B.")
CACHE = Setting("HGPT_CACHE", "", "Folder for the joined GGUF and the demo embeddings (default: the user cache folder).")
LLM_THREADS = Setting("HGPT_LLM_THREADS", "0", "CPU threads of the embedded model (0: every usable core, and a one-thread copy of the model while other processes keep the cores busy: about 0.9 GB more, loaded once the model has sat idle 5 s after a request; a number turns the copy off).")
SHARED_SERVER = Setting("HGPT_SHARED_SERVER", "0", "1: kernels share one embedded-model server process (started on demand, found through the cache folder) instead of loading the model each; 0: in-process.")
SHARED_SERVER_IDLE = Setting("HGPT_SHARED_SERVER_IDLE", "600", "Seconds without a request after which the shared embedded-model server exits.")
LOCAL_PORT = Setting("HGPT_LOCAL_PORT", "0", "Port of the embedded model's OpenAI-compatible server (0: any free port).")
LLM_TIMEOUT = Setting("HGPT_LLM_TIMEOUT", "120", "Seconds per request to an OpenAI-compatible LLM server.")
LLM_RETRIES = Setting("HGPT_LLM_RETRIES", "3", "Retries (with backoff) of a failed LLM request.")
API_KEY = Setting("HGPT_API_KEY", "", "API key sent to a `URL#MODEL` LLM server (a secret: never shown).")
REMOTE_TIMEOUT = Setting("HGPT_REMOTE_TIMEOUT", "60", "Seconds per request to a remote expert (`hf`, `endpoint`).")
REMOTE_CONCURRENCY = Setting("HGPT_REMOTE_CONCURRENCY", "4", "Requests in flight per remote expert backend (at least 1).")
ENDPOINTS = Setting("HGPT_ENDPOINTS", "", "The endpoints file (TOML or JSON) for `experts=endpoint` (default: `endpoints.toml` in the user config folder).")
CATALOG = Setting("HGPT_CATALOG", "", "The model catalogue file that `catalog refresh` writes and runs use (default: in the user data folder).")
SELECT = Setting("HGPT_SELECT", "auto", "When the LLM picks a task's model among several candidates: `auto` (only when the request names something a lower-ranked candidate is described as better at; else the top-ranked one), `always`, `never`.")
OUT = Setting("HGPT_OUT", "hgpt-runs", "Folder where run directories go.")
ALLOW_PATHS = Setting("HGPT_ALLOW_PATHS", "", "Folders (separated by `os.pathsep`) whose files a plan may use without the request naming them.")

#: Every setting, in the order of the documented table.
SETTINGS: tuple[Setting, ...] = (
    LLM, GGUF, CACHE, LLM_THREADS, SHARED_SERVER, SHARED_SERVER_IDLE, LOCAL_PORT, LLM_TIMEOUT, LLM_RETRIES, API_KEY,
    REMOTE_TIMEOUT, REMOTE_CONCURRENCY, ENDPOINTS, CATALOG, SELECT, OUT, ALLOW_PATHS,
)


def cache_dir() -> Path:
    """`$HGPT_CACHE`, else the user's cache folder: the joined GGUF and cached demo embeddings live here."""
    path = CACHE.path()
    if path is not None:
        return path
    import platformdirs

    return Path(platformdirs.user_cache_dir("hgpt-magic"))


def markdown_table() -> str:
    """The settings as the Markdown table of `docs/settings.md`."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {f'`{s.default}`' if s.default else '(see meaning)'} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"

