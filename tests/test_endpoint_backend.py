"""The `endpoint` backend: config files and `%config` mappings, and real requests to endpoints on 127.0.0.1."""

from __future__ import annotations

import json
import socket

import pytest
from fake_servers import FakeServer, Reply, png_bytes, point_hub_at

from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts import make_experts
from hgpt_magic.experts.base import ExpertContext, ExpertError
from hgpt_magic.experts.endpoint import (
    Endpoint,
    EndpointConfigError,
    EndpointExperts,
    load_endpoints,
    parse_endpoints,
)
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.resilience import RetryPolicy
from hgpt_magic.selector import Selector
from hgpt_magic.testing import ScriptedLLM

HF = "hf_UserHubToken0123456789abcdef"
FAST = RetryPolicy(attempts=2, base_delay=0.02, timeout=5.0)


@pytest.fixture
def server(monkeypatch):
    with FakeServer() as srv:
        point_hub_at(monkeypatch, "http://127.0.0.1:9")  # nothing there: an endpoint must not need the Hub
        monkeypatch.setenv("HF_TOKEN", HF)
        yield srv


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes())
    return str(path)


def ctx(tmp_path, task):
    return ExpertContext(run_dir=tmp_path / "run", task_id=0, task=task)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_file_toml_and_json(tmp_path, monkeypatch):
    toml = tmp_path / "endpoints.toml"
    toml.write_text(
        '[[endpoint]]\ntask = "image-classification"\nurl = "http://127.0.0.1:8080/vit"\n'
        'model = "google/vit-base-patch16-224"\ntoken_env = "MY_TOKEN"\n\n'
        '[[endpoint]]\ntask = "text-to-image"\nurl = "https://sd.example.org"\nname = "my-sd"\n'
    )
    endpoints = load_endpoints(toml)
    assert endpoints[0] == Endpoint("image-classification", "http://127.0.0.1:8080/vit", "google/vit-base-patch16-224",
                                    token_env="MY_TOKEN")
    assert endpoints[1].model_id == "endpoint/my-sd"
    as_json = tmp_path / "endpoints.json"
    as_json.write_text(json.dumps({"endpoints": [e.to_dict() for e in endpoints]}))
    assert load_endpoints(as_json) == endpoints
    monkeypatch.setenv("HGPT_ENDPOINTS", str(as_json))
    (backend,) = make_experts("endpoint")
    assert isinstance(backend, EndpointExperts) and len(backend.endpoints) == 2
    (backend,) = make_experts(f"endpoint:{toml}")
    assert backend.can_serve("image-classification", "google/vit-base-patch16-224")
    assert not backend.can_serve("image-classification", "google/other")


def test_compact_mapping_as_from_percent_config():
    endpoints = parse_endpoints({
        "image-classification": "http://127.0.0.1:8080",
        "text-to-image:stabilityai/sd": "http://127.0.0.1:8081",
        "summarization": {"url": "http://127.0.0.1:8082", "name": "bart"},
    })
    assert [e.model_id for e in endpoints] == ["endpoint/127.0.0.1:8080", "stabilityai/sd", "endpoint/bart"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"image-classification": 3}, "expected a URL"),
        ([{"task": "image-classification"}], "needs both"),
        ([{"task": "image-classification", "url": "ftp://x"}], "http"),
        ([{"task": "canny-control", "url": "http://x"}], "no endpoint protocol"),
        ([{"task": "summarization", "url": "http://x", "colour": "red"}], "unknown key"),
    ],
)
def test_config_errors_say_which_entry(bad, message):
    with pytest.raises(EndpointConfigError, match=message):
        parse_endpoints(bad)


def test_missing_explicit_file_is_an_error_and_default_is_none(tmp_path, monkeypatch):
    with pytest.raises(EndpointConfigError, match="does not exist"):
        load_endpoints(tmp_path / "nope.toml")
    monkeypatch.delenv("HGPT_ENDPOINTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_endpoints() == []


def test_request_goes_to_the_url_without_the_hf_token(server, image, tmp_path):
    server.route("POST", "/models/vit", Reply(200, [{"label": "tabby", "score": 0.8}]))
    backend = EndpointExperts({"image-classification": server.url + "/models/vit"}, policy=FAST)
    (model,) = [c.id for c in backend.cards()]
    out = backend.run("image-classification", model, {"image": image}, ctx(tmp_path, "image-classification"))
    assert out[0].text == "tabby 0.80"
    (sent,) = server.requests
    assert sent.path == "/models/vit" and sent.body == png_bytes()
    assert "authorization" not in sent.headers  # the user's HF token stays with Hugging Face


def test_token_env_is_sent_as_bearer(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_ENDPOINT_TOKEN", "endpoint-secret-0123456789")
    server.route("POST", "/", Reply(200, [{"summary_text": "short"}]))
    backend = EndpointExperts(
        [Endpoint("summarization", server.url + "/", model="facebook/bart-large-cnn", token_env="MY_ENDPOINT_TOKEN")],
        policy=FAST,
    )
    out = backend.run("summarization", "facebook/bart-large-cnn", {"text": "long"}, ctx(tmp_path, "summarization"))
    assert out[0].text == "short"
    assert server.requests[0].headers["authorization"] == "Bearer endpoint-secret-0123456789"
    assert "endpoint-secret" not in repr(backend) + backend.describe() + str(vars(backend))


def test_hf_hosted_endpoint_gets_the_hf_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF)
    backend = EndpointExperts({"summarization": "https://abc.us-east-1.aws.endpoints.huggingface.cloud"})
    kwargs, url = backend._target("summarization", backend.cards()[0].id)
    assert kwargs["token"] == HF and url.endswith("huggingface.cloud")


def test_unreachable_endpoint_falls_back_to_the_next(server, image, tmp_path):
    server.route("POST", "/second", Reply(200, [{"label": "tabby", "score": 0.8}]))
    dead = f"http://127.0.0.1:{free_port()}/first"
    backend = EndpointExperts(
        [Endpoint("image-classification", dead, name="first"),
         Endpoint("image-classification", server.url + "/second", name="second")],
        policy=FAST,
    )
    catalog = Catalog([])
    offered = Selector(None, [backend], catalog).candidates("image-classification")
    assert [c.id for c in offered] == ["endpoint/first", "endpoint/second"] and offered[0].backend == "endpoint"
    with pytest.raises(ExpertError) as info:
        backend.run("image-classification", "endpoint/first", {"image": image}, ctx(tmp_path, "image-classification"))
    assert info.value.model_level and "cannot connect after 2 tries" in str(info.value)

    plan = json.dumps({"tasks": [{"task": "image-classification", "id": 0, "dep": [], "args": {"image": image}}]})
    llm = ScriptedLLM([plan, json.dumps({"0": {"id": "endpoint/first", "reason": "first"}}), "A tabby."])
    run = HuggingGPT(llm=llm, experts=[backend], catalog=catalog, out_dir=tmp_path / "runs").run(f"what is in {image}?")
    result = run.results[0]
    assert result.status == "done" and result.model == "endpoint/second"
    assert [a.model for a in result.attempts] == ["endpoint/first", "endpoint/second"]


def test_auto_puts_configured_endpoints_before_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF)
    config = tmp_path / "endpoints.json"
    config.write_text(json.dumps({"image-classification:google/vit-base-patch16-224": "http://127.0.0.1:8080"}))
    monkeypatch.setenv("HGPT_ENDPOINTS", str(config))
    names = [b.name for b in make_experts("auto")]
    assert names.index("endpoint") < names.index("hf")
    backends = make_experts("auto")
    selector = Selector(None, backends, Catalog([ModelCard("google/vit-base-patch16-224", "image-classification")]))
    assert selector.serving_backend("image-classification", "google/vit-base-patch16-224").name == "endpoint"


def test_a_refused_endpoint_token_concerns_that_endpoint_only(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN_A", "token-a-0123456789abcdef")
    server.route("POST", "/a", Reply(401, {"error": "bad token"}))
    server.route("POST", "/b", Reply(200, [{"summary_text": "short"}]))
    backend = EndpointExperts(
        [Endpoint("summarization", server.url + "/a", name="a", token_env="TOKEN_A"),
         Endpoint("summarization", server.url + "/b", name="b")],
        policy=FAST,
    )
    with pytest.raises(ExpertError) as info:
        backend.run("summarization", "endpoint/a", {"text": "x"}, ctx(tmp_path, "summarization"))
    assert info.value.model_level and "HTTP 401" in str(info.value) and "token_env" in str(info.value)
    assert "token-a-0123456789abcdef" not in str(info.value)
    with pytest.raises(ExpertError):  # remembered: no second request to /a
        backend.run("summarization", "endpoint/a", {"text": "x"}, ctx(tmp_path, "summarization"))
    assert len(server.seen("POST", "/a")) == 1
    out = backend.run("summarization", "endpoint/b", {"text": "x"}, ctx(tmp_path, "summarization"))
    assert out[0].text == "short"


def test_make_experts_takes_a_mapping_as_percent_config_gives_it(monkeypatch):
    monkeypatch.delenv("HGPT_ENDPOINTS", raising=False)
    (backend,) = make_experts("endpoint", endpoints={"summarization": "http://127.0.0.1:8082"})
    assert [c.id for c in backend.cards()] == ["endpoint/127.0.0.1:8082"]
    names = [b.name for b in make_experts("auto", endpoints={"summarization": "http://127.0.0.1:8082"})]
    assert "endpoint" in names


def test_tgi_style_text_generation_and_chat(server, tmp_path):
    server.route("POST", "/tgi/v1/chat/completions", Reply(200, {
        "id": "1", "object": "chat.completion", "created": 0, "model": "tgi",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }))
    server.route("POST", "/tgi", Reply(200, [{"generated_text": "once upon a time"}]))
    backend = EndpointExperts({"text-generation": server.url + "/tgi", "conversational": server.url + "/tgi"}, policy=FAST)
    gen, chat = (c.id for c in backend.cards())
    assert backend.run("text-generation", gen, {"text": "Tell"}, ctx(tmp_path, "text-generation"))[0].text == "once upon a time"
    assert backend.run("conversational", chat, {"text": "hello"}, ctx(tmp_path, "conversational"))[0].text == "hi there"
    first, second = server.requests
    assert first.path == "/tgi" and first.json()["inputs"] == "Tell" and first.json()["parameters"]["max_new_tokens"] == 400
    assert second.path == "/tgi/v1/chat/completions" and second.json()["messages"] == [{"role": "user", "content": "hello"}]
