"""Tokens stay out of every output: masking helpers, and a whole run scanned for a recognisable fake token."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from fake_servers import FakeHub, Reply, png_bytes, point_hub_at, wav_bytes

from hgpt_magic.catalog import Catalog, ModelCard
from hgpt_magic.experts import describe_experts
from hgpt_magic.experts.hf import HFExperts
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.resilience import RetryPolicy
from hgpt_magic.secrets import MaskingFilter, Secret, mask, mask_secrets
from hgpt_magic.testing import ScriptedLLM
from hgpt_magic.types import Run

FAKE = "hf_LeakCanary7Q2w9Zx4Rt8Yp3Mn6Kb"


def test_mask_shows_only_a_prefix():
    assert mask(FAKE) == "hf_L…(masked)" and mask(None) == "(not set)" and mask(Secret(FAKE)) == "hf_L…(masked)"


@pytest.mark.parametrize(
    "text",
    [
        f"token {FAKE} leaked",
        "Authorization: Bearer abcdefghijklmnop1234",
        "https://user:p4ssw0rd-secret@example.org/v1",
        "openai key sk-abcdefghijklmnopqrstu",
        'api_key="zzzzzzzzzzzzzzzzzzzzzzzz"',
    ],
)
def test_mask_secrets_hides_token_shapes(text):
    masked = mask_secrets(text)
    for secret in (FAKE, "abcdefghijklmnop1234", "p4ssw0rd-secret", "sk-abcdefghijklmnopqrstu", "z" * 24):
        assert secret not in masked


def test_registered_and_extra_secrets_are_masked():
    odd = "plain-looking-value-9876"
    assert odd in mask_secrets(f"x {odd}")  # not shaped like a token: unknown until registered
    assert odd not in mask_secrets(f"x {odd}", odd)
    Secret(odd)
    assert odd not in mask_secrets(f"x {odd}")


def test_secret_never_shows_itself():
    secret = Secret(FAKE)
    assert FAKE not in repr(secret) + str(secret) + f"{secret}" + repr([secret]) and secret.reveal() == FAKE
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_masking_filter(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", (FAKE,), None)
    assert MaskingFilter().filter(record) and FAKE not in record.getMessage()


def test_log_records_are_masked_whichever_logger_makes_them(monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", FAKE)
    Secret(FAKE)  # any backend holding a token installs the masking
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library.deep.child").debug("headers %s", {"authorization": f"Bearer {FAKE}"})
    try:
        raise RuntimeError(f"server said {FAKE}")
    except RuntimeError:
        logging.getLogger("other").exception("failed")
    assert FAKE not in caplog.text and "***" in caplog.text and "RuntimeError" in caplog.text


def test_no_output_of_a_run_holds_the_token(tmp_path, monkeypatch, caplog, capsys):
    """A whole `HuggingGPT.run` on the `hf` backend with HF_TOKEN set to a fake token; one server echoes
    the Authorization header back in an error. Logs (DEBUG, httpx and huggingface_hub included), stdout,
    stderr, reprs, the Run's JSON and every file of the run directory are scanned: no hit allowed."""
    monkeypatch.setenv("HF_TOKEN", FAKE)
    caplog.set_level(logging.DEBUG)
    for name in ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "hgpt_magic"):
        caplog.set_level(logging.DEBUG, logger=name)
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes())

    with FakeHub() as hub:
        point_hub_at(monkeypatch, hub.url)
        for model, task in [("org/echo", "image-classification"), ("org/vit", "image-classification"),
                            ("org/tts", "text-to-speech")]:
            hub.add_model(model, task)
        # a careless server that repeats the request's credentials in its error body and headers
        hub.serve("org/echo", lambda seen: Reply(
            404, {"error": f"not found; you sent {seen.headers.get('authorization')}"},
            {"X-Error-Message": f"auth was {seen.headers.get('authorization')}"},
        ))
        hub.serve("org/vit", Reply(200, [{"label": "cat", "score": 0.93}]))
        hub.serve("org/tts", Reply(200, wav_bytes()))
        plan = {"tasks": [
            {"task": "image-classification", "id": 0, "dep": [], "args": {"image": str(image)}},
            {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
        ]}
        llm = ScriptedLLM([
            json.dumps(plan),
            json.dumps({"0": {"id": "org/echo", "reason": "first"}}),
            "It is a cat; I said so aloud.",
        ])
        catalog = Catalog([ModelCard("org/echo", "image-classification", downloads=9),
                           ModelCard("org/vit", "image-classification", downloads=1),
                           ModelCard("org/tts", "text-to-speech")])
        backend = HFExperts(policy=RetryPolicy(attempts=2, base_delay=0.01, timeout=5))
        hg = HuggingGPT(llm=llm, experts=[backend], catalog=catalog, out_dir=tmp_path / "runs")
        run = hg.run(f"What is in {image}? Say it aloud.")
        assert all(r.headers.get("authorization") == f"Bearer {FAKE}" for r in hub.seen("POST"))  # it was used

    assert run.status == "done" and run.results[0].model == "org/vit" and run.results[1].status == "done"
    assert "HTTP 404" in run.results[0].attempts[0].error  # the echoing error is kept, masked
    print(run.answer)
    print(describe_experts(hg.experts))

    outputs: dict[str, str] = {
        "run json": run.to_json(),
        "loaded run": repr(Run.load(f"{run.run_dir}/run.json")),
        "reprs": repr([hg, backend, llm, run, run.plan, run.selection, *run.results.values(), *run.artifacts()]),
        "vars": repr([vars(hg), vars(backend), vars(run)]),
        "describe": "\n".join(describe_experts(hg.experts)),
    }
    captured = capsys.readouterr()
    outputs["stdout"], outputs["stderr"] = captured.out, captured.err
    logged = []
    for record in caplog.records:
        logged.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}")
    outputs["logs"] = "\n".join(logged)
    assert any(r.name.startswith(("httpx", "huggingface_hub")) for r in caplog.records), "library logs not captured"
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert len(files) >= 2  # run.json and the speech file
    for path in files:
        outputs[str(path)] = path.read_bytes().decode("latin-1")

    leaks = {where: text.count(FAKE) for where, text in outputs.items() if FAKE in text or FAKE[3:] in text}
    assert leaks == {}
