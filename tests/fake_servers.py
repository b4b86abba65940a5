"""Real HTTP servers on 127.0.0.1 that speak the Hub's, the Inference API's and OpenAI's protocols.

The clients under test (huggingface_hub's `InferenceClient` and `HfApi`, the `openai` SDK) make real
requests to them; each server records what it received (method, path, headers, body) so a test can
check what the client actually sent, and answers from a script: queued replies first (errors, delays),
then a standing route.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer. `body` may be bytes, text or JSON-able; `delay` waits before answering."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        return json.dumps(self.body).encode(), "application/json"


@dataclass
class Seen:
    """A request as the server received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Route = Callable[[Seen], Reply]


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with scripted replies; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queues: dict[tuple[str, str], list[Reply]] = {}
        self._routes: list[tuple[str, str, Route]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # scripting ----------------------------------------------------------------------

    def route(self, method: str, path_prefix: str, reply: Route | Reply) -> None:
        """A standing answer for requests whose path starts with `path_prefix` (the longest prefix wins)."""
        fn = reply if callable(reply) else (lambda _seen, r=reply: r)
        self._routes.append((method, path_prefix, fn))
        self._routes.sort(key=lambda r: -len(r[1]))

    def queue(self, method: str, path: str, *replies: Reply) -> None:
        """Answers used once each, in order, for requests to exactly `path`, before any route."""
        with self._lock:
            self._queues.setdefault((method, path), []).extend(replies)

    def seen(self, method: str | None = None, path_prefix: str = "") -> list[Seen]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    def _answer(self, seen: Seen) -> Reply:
        with self._lock:
            queued = self._queues.get((seen.method, seen.path))
            if queued:
                return queued.pop(0)
        for method, prefix, fn in self._routes:
            if method == seen.method and seen.path.startswith(prefix):
                return fn(seen)
        return Reply(404, {"error": f"no route for {seen.method} {seen.path}"}, {"X-Error-Code": "RepoNotFound"})

    # lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, self._body())
                with owner._lock:
                    owner.requests.append(seen)
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    reply = owner._answer(seen)
                    if reply.delay:
                        owner._stopping.wait(reply.delay)
                    body, content_type = reply.encoded()
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, **reply.headers, "Content-Length": str(len(body))}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # type: ignore[method-assign]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------
# The Hub and its router


class FakeHub(FakeServer):
    """The Hub's model API (`/api/models/...`) and the router's `hf-inference` task endpoints.

    `add_model(id, task)` makes the model known with an `hf-inference` provider mapping; inference
    answers come from `infer(id, *replies)` (queued) or `serve(id, reply)` (standing).
    """

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, dict[str, Any]] = {}
        self.route("GET", "/api/models/", self._model_info)
        self.route("GET", "/api/models", self._list_models)

    def add_model(self, model: str, task: str, providers: tuple[str, ...] = ("hf-inference",), **extra: Any) -> None:
        self.models[model] = {
            "id": model,
            "modelId": model,
            "pipeline_tag": task,
            "tags": [task, "transformers"],
            "downloads": extra.pop("downloads", 1000),
            "likes": extra.pop("likes", 10),
            "inferenceProviderMapping": {
                p: {"status": "live", "providerId": model, "task": task} for p in providers
            },
            **extra,
        }

    def _model_info(self, seen: Seen) -> Reply:
        model = seen.path[len("/api/models/") :]
        if model not in self.models:
            return Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return Reply(200, self.models[model])

    def _list_models(self, seen: Seen) -> Reply:
        tag = (seen.query.get("pipeline_tag") or [None])[0]
        limit = int((seen.query.get("limit") or ["1000"])[0])
        found = [m for m in self.models.values() if tag is None or m["pipeline_tag"] == tag]
        found.sort(key=lambda m: -m["downloads"])
        return Reply(200, found[:limit])

    def task_path(self, model: str, task: str | None = None) -> str:
        suffix = f"/pipeline/{task}" if task in ("feature-extraction", "sentence-similarity") else ""
        return f"/hf-inference/models/{model}{suffix}"

    def infer(self, model: str, *replies: Reply, task: str | None = None) -> None:
        self.queue("POST", self.task_path(model, task or self.models.get(model, {}).get("pipeline_tag")), *replies)

    def serve(self, model: str, reply: Reply | Route, task: str | None = None) -> None:
        self.route("POST", self.task_path(model, task or self.models.get(model, {}).get("pipeline_tag")), reply)


def point_hub_at(monkeypatch: Any, url: str) -> None:
    """Send huggingface_hub's Hub and router calls to `url` and lift offline mode, for one test.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported, and builds the hf-inference
    helpers' base URL then, so the module constants and those helpers are what a test must change.
    """
    from huggingface_hub import constants
    from huggingface_hub.inference._providers import PROVIDERS, _common, hf_inference

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "INFERENCE_PROXY_TEMPLATE", url + "/{provider}")
    for helper in PROVIDERS["hf-inference"].values():
        monkeypatch.setattr(helper, "base_url", url + "/hf-inference")
    _common._fetch_inference_provider_mapping.cache_clear()
    hf_inference._check_supported_task.cache_clear()
    hf_inference._fetch_recommended_models.cache_clear()


# ------------------------------------------------------------------------------------------
# OpenAI-compatible chat completions


class FakeOpenAI(FakeServer):
    """`POST /v1/chat/completions` answering scripted contents in order (a `Reply` is sent as is)."""

    def __init__(self, replies: list[str | Reply | Callable[[dict], str]] | None = None) -> None:
        super().__init__()
        self.replies: list[str | Reply | Callable[[dict], str]] = list(replies or [])
        self.route("POST", "/v1/chat/completions", self._chat)
        self.route("GET", "/v1/models", lambda _s: Reply(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]}))

    def _chat(self, seen: Seen) -> Reply:
        request = seen.json()
        with self._lock:
            reply = self.replies.pop(0) if self.replies else "(no scripted reply left)"
        if isinstance(reply, Reply):
            return reply
        content = reply(request) if callable(reply) else reply
        if request.get("stream"):
            return Reply(200, event_stream(content, request.get("model", "tiny")), {"Content-Type": "text/event-stream"})
        return Reply(200, completion(content, request.get("model", "tiny")))

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def completion(content: str, model: str = "tiny") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def event_stream(content: str, model: str = "tiny", piece_chars: int = 5) -> str:
    """A streamed completion as OpenAI sends it (server-sent events): a role chunk, content in pieces of
    `piece_chars` characters, a finish chunk, then `[DONE]`."""

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body)}\n\n"

    pieces = [content[i:i + piece_chars] for i in range(0, len(content), piece_chars)]
    return (chunk({"role": "assistant"}) + "".join(chunk({"content": p}) for p in pieces)
            + chunk({}, "stop") + "data: [DONE]\n\n")


# ------------------------------------------------------------------------------------------
# Small media made on the spot


def png_bytes(size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.2, rate: int = 16000) -> bytes:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, (0.1 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mask_b64(size: tuple[int, int] = (32, 24)) -> str:
    """A segmentation mask as the Inference API sends it: base64 PNG, left half white."""
    from PIL import Image

    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
