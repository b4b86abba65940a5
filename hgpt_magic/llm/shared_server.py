"""One embedded-model server that every kernel on the machine shares, found through a file in the cache.

Why: each kernel loading its own copy of the 1.1 GB model costs about 2 GB PSS for the first and 1 GB more for
each other (the GGUF's page cache is shared; the weights llama.cpp repacks for the CPU are not), and the copies
fight for the cores (measured: `python -m hgpt_magic.bench kernels`). Instead the first kernel starts this module as a
detached process (`python -m hgpt_magic.llm.shared_server`); it loads the model once, serves llama.cpp's
OpenAI-compatible API on 127.0.0.1 and publishes where in `$HGPT_CACHE/llm-server.json` (mode 0600: it holds
the random API key other local users must not learn). Later kernels read the file and connect. The server
exits by itself after `HGPT_SHARED_SERVER_IDLE` seconds without a request, removing the file.

`connect()` returns an `OpenAICompatibleLLM` for the live server, starting one when none is live (a file lock
makes two kernels starting at once start ONE server; a file whose process died, or that names another model
file, is replaced). It raises `SharedServerError` when that is not possible, and `make_llm` then loads the
model in-process as before.

What a new server makes ready before it serves (the planner's static prompt prefix, so no kernel's first plan
computes it) is given by the layer that knows the prompts: `connect(..., prefix=...)` takes a callable returning
those chat messages (the pipeline passes its planner's); they reach the server process as a private JSON file.
This module knows nothing of planning.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings
from .base import LLMError

DISCOVERY_NAME = "llm-server.json"
START_TIMEOUT_S = 180.0  # a cold load from a slow disk on a busy machine; a warm one takes ~4 s
WATCH_EVERY_S = 2.0


class SharedServerError(LLMError):
    """No shared server could be found or started; the caller loads the model in-process instead."""


def discovery_file() -> Path:
    return settings.cache_dir() / DISCOVERY_NAME


def model_identity(path: Path) -> dict[str, Any]:
    """What must match for a kernel to use a running server: the same file, unchanged since it loaded."""
    st = path.stat()
    return {"model_path": str(path.resolve()), "model_size": st.st_size, "model_mtime_ns": st.st_mtime_ns}


def _pid_alive(pid: int) -> bool:
    """Whether the process runs (an exited server this kernel started stays a zombie until reaped: dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's: its file would not be readable by us anyway
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we know


def _healthy(info: dict[str, Any], timeout: float = 3.0) -> bool:
    """llama.cpp's /health answers 200 once the model is loaded (no API key needed, no prompt revealed)."""
    url = str(info["base_url"]).removesuffix("/v1") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def read_live(file: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The discovery file's content when it names a live, healthy server of this model; else None."""
    try:
        info = json.loads(file.read_text())
        if any(info.get(k) != v for k, v in identity.items()):
            return None
        if not _pid_alive(int(info["pid"])) or not _healthy(info):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _client(info: dict[str, Any], model_path: Path) -> Any:
    from .openai_compat import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM(
        info["model"], base_url=info["base_url"], api_key=info["api_key"], name=f"shared:{info['model']}"
    )
    llm.server_pid = int(info["pid"])  # for diagnostics and tests; the key stays inside the client
    llm.path = model_path
    return llm


#: Chat messages a new server makes ready before it serves (its prompt-prefix KV state), computed on demand.
Prefix = Callable[[], list[dict[str, str]]]


class SharedServerLLM:
    """The shared server as an LLM that outlives its server: it exits after an idle spell, and the next
    request finds or starts another (once; a live server's errors are the server's answer). `prefix`: what a
    server this client starts makes ready first (see the module docstring)."""

    supports_schema = True

    def __init__(
        self,
        model_path: Path,
        start_timeout: float = START_TIMEOUT_S,
        *,
        prefix: Prefix | None = None,
        on_prefix_compute: Callable[[], None] | None = None,
    ):
        self.path = model_path
        self._start_timeout = start_timeout
        self._prefix = prefix
        self._lock = threading.Lock()
        self._client = connect(model_path, start_timeout=start_timeout, prefix=prefix, on_prefix_compute=on_prefix_compute)
        self.name = self._client.name

    @property
    def server_pid(self) -> int:
        return self._client.server_pid

    def __repr__(self) -> str:
        return f"SharedServerLLM({self.name!r}, pid={self.server_pid})"

    def _reconnected(self, dead: Any) -> Any:
        with self._lock:
            if self._client is dead:  # another thread may have reconnected already
                self._client = connect(self.path, start_timeout=self._start_timeout, prefix=self._prefix)
            return self._client

    def chat(self, messages: list[dict[str, str]], **options: Any) -> Any:
        client = self._client
        if not _pid_alive(client.server_pid):
            client = self._reconnected(client)
        try:
            return client.chat(messages, **options)
        except LLMError:
            if _pid_alive(client.server_pid):
                raise
            return self._reconnected(client).chat(messages, **options)  # it exited while we asked


def connect(
    model_path: Path,
    *,
    start_timeout: float = START_TIMEOUT_S,
    prefix: Prefix | None = None,
    on_prefix_compute: Callable[[], None] | None = None,
) -> Any:
    """An LLM client of the shared server for `model_path`, starting the server if none is live (one that
    makes `prefix()`'s messages ready before it serves, when given; `on_prefix_compute()` is called first when
    it will compute them, saved nowhere yet)."""
    from filelock import FileLock, Timeout

    file = discovery_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    identity = model_identity(model_path)
    info = read_live(file, identity)  # the common case needs no lock
    if info is not None:
        return _client(info, model_path)
    try:
        with FileLock(str(file) + ".lock", timeout=start_timeout):
            info = read_live(file, identity)  # another kernel may have started one while we waited
            if info is None:
                file.unlink(missing_ok=True)  # stale: its process died, or it serves another model file
                info = _start(file, model_path, identity, start_timeout, prefix, on_prefix_compute)
    except Timeout:
        raise SharedServerError(f"another kernel held {file}.lock for {start_timeout:.0f} s") from None
    return _client(info, model_path)


def _start(
    file: Path,
    model_path: Path,
    identity: dict[str, Any],
    timeout: float,
    prefix: Prefix | None = None,
    on_prefix_compute: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Spawn the server detached (it outlives this kernel) and wait until it publishes itself."""
    command = [sys.executable, "-m", "hgpt_magic.llm.shared_server", "--model", str(model_path), "--discovery", str(file)]
    messages = prefix() if prefix is not None else None
    prefix_file = _write_prefix(file, messages) if messages else None
    if prefix_file is not None:
        command += ["--prefix", str(prefix_file)]
        from .local import prefix_to_compute

        if on_prefix_compute is not None and prefix_to_compute(model_path, messages, SLOTS * KERNEL_CONTEXT):
            on_prefix_compute()
    log = file.with_suffix(".log")
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SharedServerError(f"the shared model server exited with status {proc.returncode} (see {log})")
            info = read_live(file, identity) if file.exists() else None
            if info is not None and info.get("pid") == proc.pid:
                return info
            time.sleep(0.1)
        proc.kill()
        raise SharedServerError(f"the shared model server did not start within {timeout:.0f} s (see {log})")
    finally:
        if prefix_file is not None:  # read by the server before it publishes; never left behind
            prefix_file.unlink(missing_ok=True)


def _write_prefix(file: Path, messages: list[dict[str, str]]) -> Path:
    """The prefix's messages in a private file beside the discovery file (a prompt may quote the user's data)."""
    path = file.with_name(f"{file.stem}-prefix-{os.getpid()}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(messages, out)
    return path


# --- the server process ---


def _publish(file: Path, info: dict[str, Any]) -> None:
    """Write the discovery file atomically (readers never see half of it) and private to this user."""
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(info, out)
    os.replace(tmp, file)


def _unpublish(file: Path) -> None:
    """Remove the discovery file if it still names this process (a newer server may have replaced it)."""
    try:
        if json.loads(file.read_text()).get("pid") == os.getpid():
            file.unlink()
    except (OSError, ValueError):
        pass


def _watch_until_idle(server: Any, file: Path, idle_s: float) -> None:
    """Return once no request has touched the server for `idle_s`, or another server took over the file.

    llama.cpp counts prompt and generated tokens and requests in flight in its metrics; any change means use.
    """
    last, since = None, time.monotonic()
    while True:
        time.sleep(WATCH_EVERY_S)
        metrics = str(server.handle_metrics())
        in_flight = "requests_processing 0" not in metrics and "requests_processing" in metrics
        if metrics != last or in_flight:
            last, since = metrics, time.monotonic()
        elif time.monotonic() - since > idle_s:
            return
        try:
            if json.loads(file.read_text()).get("pid") != os.getpid():
                return  # replaced (a kernel judged us dead): do not linger as an orphan
        except (OSError, ValueError):
            return


#: Kernels served at once, and the context each gets (what an in-process `LocalLLM` has).
SLOTS = 2
KERNEL_CONTEXT = 8192


def _warm(llm: Any, messages: list[dict[str, str]] | None) -> str:
    """The prefix the starting kernel gave (the planner's instructions and demos) ready in every slot before
    any kernel connects: restored from the KV file beside the model, else computed once and saved (see
    `LocalLLM.warm_prefix`)."""
    if not messages:
        return "none given"
    try:
        return llm.warm_prefix(messages)
    except Exception as exc:  # the kernels' first plans compute it instead
        return f"not warmed: {type(exc).__name__}"


def _read_prefix(path: Path | None) -> list[dict[str, str]] | None:
    """The messages of a `--prefix` file: a list of {"role", "content"} strings, else None (nothing warmed)."""
    if path is None:
        return None
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    )
    return messages if ok else None


def serve(model_path: Path, file: Path, idle_s: float, prefix: list[dict[str, str]] | None = None) -> None:
    from .local import LocalLLM

    api_key = secrets.token_urlsafe(24)

    class SharedModel(LocalLLM):
        """The embedded model with llama.cpp's API key check, metrics and two slots (two kernels at once),
        each with a kernel's whole context (llama.cpp splits `n_ctx` between the slots)."""

        _api_key = api_key

        def _params(self, threads: int, batch_threads: int, port: int) -> Any:
            params = super()._params(threads, batch_threads, port)
            params.api_keys = [api_key]
            params.endpoint_metrics = True  # counters only; the watchdog reads them in-process
            return params

    llm = SharedModel(model_path, n_ctx=SLOTS * KERNEL_CONTEXT, n_parallel=SLOTS)
    warmed = _warm(llm, prefix)
    info = {
        "pid": os.getpid(),
        "base_url": llm.base_url,
        "model": llm.model,
        "api_key": api_key,
        "threads": llm.threads,
        "load_s": round(llm.load_seconds, 2),
        "prefix": warmed,
        "started": time.time(),
        **model_identity(model_path),
    }
    _publish(file, info)
    print(f"hgpt-magic shared model server pid {os.getpid()} at {llm.base_url}", flush=True)
    try:
        _watch_until_idle(llm._server, file, idle_s)
    finally:
        _unpublish(file)
        print("hgpt-magic shared model server: idle, exiting", flush=True)
        os._exit(0)  # not sys.exit: xllamacpp's ~Server can hang at teardown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The embedded model, shared by every kernel of this user.")
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--discovery", type=Path, default=None, help=f"where to publish (default: cache/{DISCOVERY_NAME})")
    parser.add_argument("--idle", type=float, default=None, help="exit after this many seconds unused")
    parser.add_argument("--prefix", type=Path, default=None, help="JSON chat messages to make ready before serving")
    args = parser.parse_args(argv)
    idle = args.idle if args.idle is not None else settings.SHARED_SERVER_IDLE.number()
    threading.current_thread().name = "hgpt-shared-server"
    serve(args.model, args.discovery or discovery_file(), idle, _read_prefix(args.prefix))


if __name__ == "__main__":
    main()
