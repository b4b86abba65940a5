"""The shared model server: which discovery files count as live, fallback to in-process, and (slow) two
processes getting one real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hgpt_magic.llm import LLMError, make_llm
from hgpt_magic.llm.shared_server import (
    SharedServerError,
    _publish,
    _unpublish,
    connect,
    discovery_file,
    model_identity,
    read_live,
)

REPO = Path(__file__).resolve().parents[1]


class Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_which_discovery_files_are_live(tmp_path, health_server):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    identity = model_identity(model)
    file = tmp_path / "llm-server.json"
    info = {"pid": os.getpid(), "base_url": health_server, "model": "m", "api_key": "k", **identity}
    _publish(file, info)
    assert file.stat().st_mode & 0o777 == 0o600  # it holds the API key
    assert read_live(file, identity) == info
    _publish(file, {**info, "pid": dead_pid()})
    assert read_live(file, identity) is None  # its process died
    _publish(file, {**info, "base_url": "http://127.0.0.1:9/v1"})
    assert read_live(file, identity) is None  # alive but not answering
    _publish(file, info)
    model.write_bytes(b"GGUF" + bytes(61))  # the model file was replaced since the server loaded it
    assert read_live(file, model_identity(model)) is None
    file.write_text("{not json")
    assert read_live(file, identity) is None
    _publish(file, {**info, "pid": 1})
    _unpublish(file)
    assert file.exists()  # another server's file is not ours to remove
    _publish(file, info)
    _unpublish(file)
    assert not file.exists()


def test_a_server_that_cannot_load_is_reported_and_make_llm_falls_back(tmp_path, monkeypatch):
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + bytes(100))  # not a loadable model: the spawned server exits with an error
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path / "cache"))
    stale = {"pid": dead_pid(), "base_url": "http://127.0.0.1:9/v1", "model": "x", "api_key": "k"}
    discovery_file().parent.mkdir(parents=True)
    _publish(discovery_file(), {**stale, **model_identity(fake)})
    with pytest.raises(SharedServerError, match="exited with status"):
        connect(fake, start_timeout=120)
    assert not discovery_file().exists()  # the stale file was removed before starting a new server
    monkeypatch.setenv("HGPT_SHARED_SERVER", "1")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(LLMError, match="could not load"):
        warnings.simplefilter("always")
        make_llm(f"gguf:{fake}")  # fell back to loading in-process, which fails on its own terms
    assert any("loading the model in this process" in str(w.message) for w in caught)


CLIENT = """
import json, sys
from hgpt_magic.pipeline import HuggingGPT
llm = HuggingGPT("local", experts=[]).llm  # the pipeline gives the server its planner's prefix to ready
reply = llm.chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
print(json.dumps({"pid": llm.server_pid, "text": reply.text, "repr": repr(llm)}))
"""


@pytest.mark.slow
def test_two_processes_share_one_real_server_and_a_stale_file_is_replaced(tmp_path, monkeypatch):
    from hgpt_magic.llm.local import ensure_gguf
    from hgpt_magic.llm.shared_server import SharedServerLLM

    gguf = ensure_gguf(progress=False)
    env = {**os.environ, "HGPT_CACHE": str(tmp_path), "HGPT_GGUF": str(gguf), "HGPT_SHARED_SERVER": "1",
           "HGPT_SHARED_SERVER_IDLE": "6", "PYTHONPATH": str(REPO)}
    file = tmp_path / "llm-server.json"
    file.write_text(json.dumps({"pid": dead_pid(), "base_url": "http://127.0.0.1:9/v1", **model_identity(gguf)}))
    clients = [subprocess.Popen([sys.executable, "-c", CLIENT], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    outs = [json.loads(c.communicate(timeout=240)[0].strip().splitlines()[-1]) for c in clients]
    info = json.loads(file.read_text())
    pids = [info["pid"]]
    try:
        assert outs[0]["pid"] == outs[1]["pid"] == info["pid"]  # one server, the stale file replaced
        assert info["prefix"] == "computed"  # the planner's demos ready in both slots, and saved
        assert all(o["text"] for o in outs)
        assert info["api_key"] not in outs[0]["repr"]
        for name in ("HGPT_CACHE", "HGPT_SHARED_SERVER_IDLE"):
            monkeypatch.setenv(name, env[name])
        llm = SharedServerLLM(gguf)
        assert llm.server_pid == info["pid"] and info["api_key"] not in repr(llm)
        deadline = time.monotonic() + 30
        while file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not file.exists()  # unused for HGPT_SHARED_SERVER_IDLE seconds: it exited and cleaned up
        assert llm.chat([{"role": "user", "content": "Say OK."}], max_tokens=4).text  # a new server answers
        pids.append(llm.server_pid)
        assert pids[1] != pids[0]
    finally:
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
