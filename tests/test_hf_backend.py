"""The `hf` backend with the real InferenceClient against a Hub + router on 127.0.0.1.

Each test checks what the client really sent (path, headers, body) and what the backend made of the
answer; the error tests cover retries (429 with Retry-After, 503), fallback (404), fail-fast auth (401),
timeouts, bounded concurrency, and the catalogue refresh over the Hub's list API.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import pytest
from fake_servers import FakeHub, Reply, mask_b64, png_bytes, point_hub_at, wav_bytes
from PIL import Image

from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts import ExpertSpecError, make_experts
from hgpt_magic.experts.base import ExpertContext, ExpertError
from hgpt_magic.experts.hf import AuthError, HFExperts, is_hub_id
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.resilience import RetryPolicy, backoff_delay, parse_retry_after, retry_call
from hgpt_magic.testing import ScriptedLLM

TOKEN = "hf_TestToken0123456789abcdefXYZ"
FAST = RetryPolicy(attempts=3, base_delay=0.02, max_delay=2.0, timeout=5.0, total=20.0)


@pytest.fixture
def hub(monkeypatch):
    with FakeHub() as server:
        point_hub_at(monkeypatch, server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


@pytest.fixture
def media(tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes())
    audio = tmp_path / "clip.wav"
    audio.write_bytes(wav_bytes())
    return {"image": str(image), "audio": str(audio)}


def ctx_for(tmp_path, task, task_id=0):
    return ExpertContext(run_dir=tmp_path / "run", task_id=task_id, task=task)


def posts(hub):
    return hub.seen("POST")


# ------------------------------------------------------------------------- one per task family


def test_image_in_json_out(hub, media, tmp_path):
    hub.add_model("google/vit-base-patch16-224", "image-classification")
    hub.serve("google/vit-base-patch16-224", Reply(200, [{"label": "cat", "score": 0.93}, {"label": "dog", "score": 0.04}]))
    out = HFExperts(policy=FAST).run(
        "image-classification", "google/vit-base-patch16-224", {"image": media["image"]}, ctx_for(tmp_path, "image-classification")
    )
    assert [a.kind for a in out] == ["data"]
    assert out[0].text == "cat 0.93, dog 0.04"
    assert out[0].data[0] == {"label": "cat", "score": 0.93}
    (sent,) = posts(hub)
    assert sent.path == "/hf-inference/models/google/vit-base-patch16-224"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["content-type"] == "image/png"
    assert sent.body == png_bytes()  # raw bytes, as the Inference API expects
    # the provider was looked up on the Hub first (provider "auto")
    assert any(r.query.get("expand") == ["inferenceProviderMapping"] for r in hub.seen("GET", "/api/models/"))


def test_image_in_boxes_out_draws_them(hub, media, tmp_path):
    hub.add_model("facebook/detr-resnet-50", "object-detection")
    boxes = [{"label": "person", "score": 0.98, "box": {"xmin": 1, "ymin": 2, "xmax": 20, "ymax": 22}}]
    hub.serve("facebook/detr-resnet-50", Reply(200, boxes))
    out = HFExperts(policy=FAST).run(
        "object-detection", "facebook/detr-resnet-50", {"image": media["image"]}, ctx_for(tmp_path, "object-detection")
    )
    assert [a.kind for a in out] == ["data", "image"]
    assert out[0].text == "1 object: person"  # a sentence for people (a next task reads it) ...
    assert out[0].data[0]["box"] == {"xmin": 1, "ymin": 2, "xmax": 20, "ymax": 22}  # ... the boxes stay in the data
    with Image.open(out[1].path) as drawn:
        assert drawn.size == (32, 24)
        assert drawn.getpixel((1, 10)) != (200, 30, 30)  # the box's left edge is painted


def test_image_in_image_out(hub, media, tmp_path):
    hub.add_model("timbrooks/instruct-pix2pix", "image-to-image")
    hub.serve("timbrooks/instruct-pix2pix", Reply(200, png_bytes((16, 16), (0, 0, 255)), {"Content-Type": "image/png"}))
    out = HFExperts(policy=FAST).run(
        "image-to-image",
        "timbrooks/instruct-pix2pix",
        {"image": media["image"], "text": "make it blue"},
        ctx_for(tmp_path, "image-to-image"),
    )
    assert [a.kind for a in out] == ["image"] and out[0].path.endswith(".png")
    with Image.open(out[0].path) as made:
        assert made.getpixel((0, 0)) == (0, 0, 255)
    sent = posts(hub)[0].json()  # with a prompt the image travels base64 in JSON
    assert base64.b64decode(sent["inputs"]) == png_bytes()
    assert sent["parameters"]["prompt"] == "make it blue"
    assert posts(hub)[0].headers["accept"] == "image/png"


def test_segmentation_masks_become_an_overlay(hub, media, tmp_path):
    hub.add_model("nvidia/segformer", "image-segmentation")
    hub.serve("nvidia/segformer", Reply(200, [{"label": "sky", "score": 0.9, "mask": mask_b64()}]))
    out = HFExperts(policy=FAST).run("image-segmentation", "nvidia/segformer", {"image": media["image"]},
                                     ctx_for(tmp_path, "image-segmentation"))
    assert [a.kind for a in out] == ["image", "data"]
    assert out[1].text == "sky 0.90"
    with Image.open(out[0].path) as overlay:
        assert overlay.getpixel((2, 2)) != overlay.getpixel((30, 2))  # left half coloured, right half not


def test_text_in_image_out(hub, tmp_path):
    hub.add_model("stabilityai/sd", "text-to-image")
    hub.serve("stabilityai/sd", Reply(200, png_bytes((8, 8)), {"Content-Type": "image/png"}))
    out = HFExperts(policy=FAST).run("text-to-image", "stabilityai/sd", {"text": "a red square"}, ctx_for(tmp_path, "text-to-image"))
    assert out[0].kind == "image" and out[0].mime == "image/png"
    assert posts(hub)[0].json()["inputs"] == "a red square"


def test_audio_in_text_out(hub, media, tmp_path):
    hub.add_model("openai/whisper-tiny", "automatic-speech-recognition")
    hub.serve("openai/whisper-tiny", Reply(200, {"text": " hello world"}))
    out = HFExperts(policy=FAST).run("automatic-speech-recognition", "openai/whisper-tiny", {"audio": media["audio"]},
                                     ctx_for(tmp_path, "automatic-speech-recognition"))
    assert out[0].kind == "text" and out[0].text == "hello world"
    sent = posts(hub)[0]
    assert sent.body == wav_bytes() and sent.headers["content-type"] in ("audio/wav", "audio/x-wav")


def test_text_in_audio_out(hub, tmp_path):
    hub.add_model("facebook/mms-tts-eng", "text-to-speech")
    hub.serve("facebook/mms-tts-eng", Reply(200, wav_bytes(), {"Content-Type": "audio/flac"}))  # the header lies
    out = HFExperts(policy=FAST).run("text-to-speech", "facebook/mms-tts-eng", {"text": "hi"}, ctx_for(tmp_path, "text-to-speech"))
    assert out[0].kind == "audio" and out[0].path.endswith(".wav") and out[0].mime == "audio/wav"
    import soundfile as sf

    assert sf.info(out[0].path).samplerate == 16000
    assert posts(hub)[0].json()["inputs"] == "hi"


@pytest.mark.parametrize(
    "task, inputs, answer, expected, sent_json, path_suffix",
    [
        ("text-classification", {"text": "great"}, [[{"label": "POSITIVE", "score": 0.99}]], "POSITIVE 0.99",
         {"inputs": "great"}, ""),
        ("token-classification", {"text": "Ada lives in Paris"},
         [{"entity_group": "LOC", "word": "Paris", "score": 0.97, "start": 13, "end": 18}], "Paris LOC 0.97",
         {"inputs": "Ada lives in Paris"}, ""),
        ("sentence-similarity", {"text1": "a cat", "text2": "a kitten"}, [0.83], "similarity 0.83",
         {"inputs": {"source_sentence": "a cat", "sentences": ["a kitten"]}}, "/pipeline/sentence-similarity"),
        ("question-answering", {"text": "Where?", "context": "In Paris."},
         {"answer": "Paris", "score": 0.9, "start": 3, "end": 8}, "Paris",
         {"inputs": {"question": "Where?", "context": "In Paris."}}, ""),
        ("summarization", {"text": "long text"}, [{"summary_text": "short"}], "short", {"inputs": "long text"}, ""),
    ],
)
def test_text_in_json_out(hub, tmp_path, task, inputs, answer, expected, sent_json, path_suffix):
    hub.add_model("org/model", task)
    hub.serve("org/model", Reply(200, answer))
    out = HFExperts(policy=FAST).run(task, "org/model", inputs, ctx_for(tmp_path, task))
    assert out[0].text == expected
    sent = posts(hub)[0]
    assert sent.path == f"/hf-inference/models/org/model{path_suffix}"
    body = sent.json()
    for key, value in sent_json.items():
        assert body[key] == value


def test_visual_question_answering_sends_image_and_question(hub, media, tmp_path):
    hub.add_model("dandelin/vilt", "visual-question-answering")
    hub.serve("dandelin/vilt", Reply(200, [{"answer": "two", "score": 0.7}, {"answer": "one", "score": 0.2}]))
    out = HFExperts(policy=FAST).run("visual-question-answering", "dandelin/vilt",
                                     {"image": media["image"], "text": "How many?"}, ctx_for(tmp_path, "visual-question-answering"))
    assert out[0].kind == "text" and out[0].text == "two" and len(out[0].data) == 2
    body = posts(hub)[0].json()
    assert body["question"] == "How many?" and base64.b64decode(body["image"]) == png_bytes()


# ------------------------------------------------------------------------- resilience


def test_429_with_retry_after_then_success(hub, tmp_path):
    hub.add_model("org/clf", "text-classification")
    hub.infer("org/clf", Reply(429, {"error": "slow down"}, {"Retry-After": "0.4"}))
    hub.serve("org/clf", Reply(200, [[{"label": "OK", "score": 1.0}]]))
    backend = HFExperts(policy=FAST)
    start = time.monotonic()
    out = backend.run("text-classification", "org/clf", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert out[0].text == "OK 1.00"
    assert time.monotonic() - start >= 0.4  # waited as the server asked
    assert len(posts(hub)) == 2 and backend.stats["retries"] == 1


def test_503_loading_then_success(hub, tmp_path):
    hub.add_model("org/clf", "text-classification")
    hub.infer("org/clf", Reply(503, {"error": "Model org/clf is currently loading", "estimated_time": 1.0}))
    hub.serve("org/clf", Reply(200, [[{"label": "OK", "score": 1.0}]]))
    out = HFExperts(policy=FAST).run("text-classification", "org/clf", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert out[0].text == "OK 1.00" and len(posts(hub)) == 2


def test_503_after_the_retries_is_model_level(hub, tmp_path):
    hub.add_model("org/clf", "text-classification")
    hub.serve("org/clf", Reply(503, {"error": "Model org/clf is currently loading"}))
    with pytest.raises(ExpertError) as info:
        HFExperts(policy=FAST).run("text-classification", "org/clf", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert info.value.model_level and "HTTP 503" in str(info.value) and "after 3 tries" in str(info.value)
    assert len(posts(hub)) == 3


def plan_for(task, args):
    return json.dumps({"tasks": [{"task": task, "id": 0, "dep": [], "args": args}]})


def test_404_falls_back_to_the_next_candidate_and_the_run_records_it(hub, tmp_path):
    hub.add_model("org/gone", "text-classification", downloads=10_000)
    hub.add_model("org/works", "text-classification", downloads=10)
    hub.serve("org/gone", Reply(404, {"error": "Model org/gone does not exist"}))
    hub.serve("org/works", Reply(200, [[{"label": "POSITIVE", "score": 0.9}]]))
    catalog = Catalog([ModelCard("org/gone", "text-classification", downloads=10_000),
                       ModelCard("org/works", "text-classification", downloads=10)])
    llm = ScriptedLLM([
        plan_for("text-classification", {"text": "I love it"}),
        json.dumps({"0": {"id": "org/gone", "reason": "most downloaded"}}),
        "It is positive.",
    ])
    hg = HuggingGPT(llm=llm, experts=[HFExperts(policy=FAST)], catalog=catalog, out_dir=tmp_path / "runs")
    run = hg.run("Is 'I love it' positive?")
    result = run.results[0]
    assert result.status == "done" and result.model == "org/works" and result.backend == "hf"
    assert [a.model for a in result.attempts] == ["org/gone", "org/works"]
    assert "HTTP 404" in result.attempts[0].error and result.attempts[1].error is None
    saved = json.loads((tmp_path / "runs").glob("*/run.json").__next__().read_text())
    assert saved["results"]["0"]["attempts"][0]["error"].startswith("hf org/gone: model not available (HTTP 404")


def test_model_unknown_to_the_hub_falls_back_too(hub, tmp_path):
    hub.add_model("org/works", "text-classification")
    hub.serve("org/works", Reply(200, [[{"label": "OK", "score": 1.0}]]))
    with pytest.raises(ExpertError) as info:
        HFExperts(policy=FAST).run("text-classification", "org/missing", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert info.value.model_level and "not found on the Hub" in str(info.value)


def test_not_served_by_the_pinned_provider_is_model_level(hub, tmp_path):
    hub.add_model("org/elsewhere", "text-to-image", providers=("fal-ai",))
    with pytest.raises(ExpertError) as info:
        HFExperts("together", policy=FAST).run("text-to-image", "org/elsewhere", {"text": "x"}, ctx_for(tmp_path, "text-to-image"))
    assert info.value.model_level and "not served" in str(info.value)
    assert not posts(hub)  # nothing was sent to any provider


def test_401_fails_fast_with_a_clear_message_and_stops_the_backend(hub, tmp_path):
    hub.add_model("org/a", "text-classification")
    hub.add_model("org/b", "text-classification")
    hub.serve("org/a", Reply(401, {"error": "Invalid credentials in Authorization header"}))
    backend = HFExperts(policy=FAST)
    start = time.monotonic()
    with pytest.raises(AuthError) as info:
        backend.run("text-classification", "org/a", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    message = str(info.value)
    assert "HTTP 401" in message and "HF_TOKEN" in message and "Inference Providers" in message
    assert TOKEN not in message and not info.value.model_level and info.value.fatal
    assert len(posts(hub)) == 1 and time.monotonic() - start < 1.0  # no retry
    with pytest.raises(AuthError):  # every later call fails at once, without a request
        backend.run("text-classification", "org/b", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert len(posts(hub)) == 1


def test_401_in_a_run_does_not_fall_back(hub, tmp_path):
    hub.add_model("org/a", "text-classification", downloads=2)
    hub.add_model("org/b", "text-classification", downloads=1)
    hub.serve("org/a", Reply(403, {"error": "This token lacks the permission to call Inference Providers"}))
    catalog = Catalog([ModelCard("org/a", "text-classification", downloads=2), ModelCard("org/b", "text-classification", downloads=1)])
    llm = ScriptedLLM([plan_for("text-classification", {"text": "x"}), json.dumps({"0": {"id": "org/a", "reason": "r"}}), "no"])
    run = HuggingGPT(llm=llm, experts=[HFExperts(policy=FAST)], catalog=catalog, out_dir=tmp_path / "runs").run("classify x")
    result = run.results[0]
    assert result.status == "failed" and len(result.attempts) == 1
    assert "HTTP 403" in result.error and "Inference Providers" in result.error


def test_timeout_is_model_level_and_bounded(hub, tmp_path):
    hub.add_model("org/slow", "text-classification")
    hub.serve("org/slow", Reply(200, [[{"label": "late", "score": 1}]], delay=3.0))
    policy = RetryPolicy(attempts=3, base_delay=0.02, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(ExpertError) as info:
        HFExperts(policy=policy).run("text-classification", "org/slow", {"text": "x"}, ctx_for(tmp_path, "text-classification"))
    assert time.monotonic() - start < 2.0
    assert info.value.model_level and "no answer within 0.3 s" in str(info.value)
    assert len(posts(hub)) == 1  # a timeout is not retried: the task's time is better spent on the next model


def test_concurrency_is_bounded_per_backend(hub, tmp_path):
    hub.add_model("org/clf", "text-classification")
    hub.serve("org/clf", Reply(200, [[{"label": "OK", "score": 1.0}]], delay=0.15))
    backend = HFExperts(policy=FAST, max_concurrency=2)
    errors = []

    def one(i):
        try:
            backend.run("text-classification", "org/clf", {"text": str(i)}, ctx_for(tmp_path, "text-classification", i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(posts(hub)) == 5
    assert hub.max_in_flight == 2


def test_offline_mode_says_so(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.add_model("org/clf", "text-classification")
    with pytest.raises(ExpertError, match="HF_HUB_OFFLINE"):
        HFExperts(policy=FAST).run("text-classification", "org/clf", {"text": "x"}, ctx_for(tmp_path, "text-classification"))


# ------------------------------------------------------------------------- serving and specs


def test_can_serve_needs_a_token_and_a_hub_id(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    backend = HFExperts()
    assert backend.can_serve("image-classification", "google/vit-base-patch16-224")
    assert not backend.can_serve("canny-control", "lllyasviel/sd-controlnet-canny")  # no such task on the API
    assert not backend.can_serve("text-to-speech", "local/piper-en_US-joe-medium")
    assert not backend.can_serve("summarization", "controller-llm")
    assert not backend.can_serve("text-generation", "gpt2")  # the controller LLM writes free text
    assert TOKEN not in repr(backend) and TOKEN not in str(vars(backend)) and TOKEN not in backend.describe()
    assert is_hub_id("gpt2") and not is_hub_id("http://127.0.0.1/x")


def test_specs(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    env_only = lambda: os.environ.get("HF_TOKEN")  # noqa: E731 - no `hf auth login` token from this machine
    monkeypatch.setattr("hgpt_magic.secrets.hf_token", env_only)
    monkeypatch.setattr("hgpt_magic.experts.hf.hf_token", env_only)
    with pytest.raises(ExpertSpecError, match="HF_TOKEN"):
        make_experts("hf")
    assert "hf" not in [b.name for b in make_experts("llm")]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (backend,) = make_experts("hf:hf-inference")
    assert isinstance(backend, HFExperts) and backend.provider == "hf-inference"
    with pytest.raises(ExpertSpecError, match="unknown Inference Provider"):
        make_experts("hf:no-such-provider")
    with pytest.raises(ExpertSpecError, match="unknown experts spec"):
        make_experts("cloud")


# ------------------------------------------------------------------------- retry helper


def test_retry_after_forms():
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    for i in range(6):
        assert 0 <= backoff_delay(i, 0.5, 4.0) <= min(4.0, 0.5 * 2**i)


def test_retry_call_gives_up_on_long_retry_after_and_when_cancelled():
    class Busy(Exception):
        def __init__(self, after):
            self.response = type("R", (), {"status_code": 429, "headers": {"retry-after": after}})()

    calls = []

    def busy_long():
        calls.append(1)
        raise Busy("3600")

    with pytest.raises(Busy):
        retry_call(busy_long, attempts=5, max_delay=10)
    assert len(calls) == 1  # an hour's wait is not worth holding a task for

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Busy):
        retry_call(lambda: (_ for _ in ()).throw(Busy("5")), attempts=5, max_delay=10, cancel=cancel)


# ------------------------------------------------------------------------- catalogue refresh


def test_catalog_refresh_from_the_hub(hub, tmp_path, monkeypatch, capsys):
    from hgpt_magic.catalog_cli import main

    monkeypatch.setenv("HGPT_CATALOG", str(tmp_path / "catalog.jsonl"))
    hub.add_model("org/popular", "image-classification", downloads=900, tags=["image-classification", "license:mit", "en"])
    hub.add_model("org/niche", "image-classification", downloads=5)
    hub.add_model("org/third", "image-classification", downloads=50)
    assert main(["refresh", "--per-task", "2", "--task", "image-classification"]) == 0
    cards = Catalog().for_task("image-classification")
    assert [c.id for c in cards] == ["org/popular", "org/third"]
    assert cards[0].license == "mit" and cards[0].downloads == 900
    listed = hub.seen("GET", "/api/models")[-1]
    assert listed.path == "/api/models" and listed.query["pipeline_tag"] == ["image-classification"]
    assert listed.query["sort"] == ["downloads"] and listed.query["limit"] == ["2"]
    assert Catalog().for_task("text-to-speech")  # other tasks keep their snapshot cards
    assert main(["show"]) == 0 and str(tmp_path / "catalog.jsonl") in capsys.readouterr().out
    assert main(["reset"]) == 0 and not (tmp_path / "catalog.jsonl").exists()


def test_catalog_refresh_fails_clearly_offline(monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    from hgpt_magic.catalog_cli import main

    monkeypatch.setenv("HGPT_CATALOG", str(tmp_path / "catalog.jsonl"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["refresh"]) == 1
    assert "offline" in capsys.readouterr().err and not (tmp_path / "catalog.jsonl").exists()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert main(["refresh", "--endpoint", "http://127.0.0.1:9"]) == 1  # nothing listens there
    assert "cannot reach the Hub" in capsys.readouterr().err
