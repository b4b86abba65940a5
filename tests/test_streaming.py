"""The streamed answer: pieces reach the CLI, the magic's output and the editor as they are written; a
broken stream still ends in a complete Run with the deterministic answer."""

from __future__ import annotations

import io
import json

import pytest
from fake_servers import FakeOpenAI, Reply, completion
from test_magic import session, task  # noqa: F401  (the magic's shell fixture)

from hgpt_magic.catalog import Catalog
from hgpt_magic.cli import main
from hgpt_magic.llm import LLMError, OpenAICompatibleLLM, call_llm
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.responder import fallback_answer
from hgpt_magic.streaming import AnswerStream
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import LLMCall, Run

ANSWER = "The summary is short and clear, as asked."
PLAN = json.dumps({"tasks": [{"task": "summarization", "id": 0, "dep": [], "args": {"text": "a long text"}}]})


def pipeline(tmp_path, llm) -> HuggingGPT:
    return HuggingGPT(llm=llm, experts=[TimedExperts(["summarization"])], catalog=Catalog([]), out_dir=tmp_path / "runs")


def test_run_hands_the_answer_over_in_pieces_and_keeps_the_whole(tmp_path):
    pieces: list[str] = []
    run = pipeline(tmp_path, ScriptedLLM([PLAN, ANSWER], piece_chars=6)).run("Summarize: a long text", on_text=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == ANSWER
    assert run.status == "done" and run.answer.startswith(ANSWER)  # the checked whole (facts may follow)


def test_a_stream_that_breaks_leaves_a_complete_run_with_the_deterministic_answer(tmp_path):
    pieces: list[str] = []
    llm = ScriptedLLM([PLAN, ANSWER], piece_chars=6, fail_stream_after=2)
    run = pipeline(tmp_path, llm).run("Summarize: a long text", on_text=pieces.append)
    assert len(pieces) == 2  # the start of the draft was shown
    assert run.status == "done" and run.answer == fallback_answer(run.request, run.plan, run.selection, run.results)
    assert run.llm_calls[-1].stage == "respond" and "stream broke" in run.llm_calls[-1].error
    saved = Run.load(f"{run.run_dir}/run.json")
    assert saved.status == "done" and saved.answer == run.answer


def test_a_consumer_that_fails_mid_stream_still_gets_a_complete_run(tmp_path):
    def broken_display(piece: str) -> None:
        raise RuntimeError("the display went away")

    run = pipeline(tmp_path, ScriptedLLM([PLAN, ANSWER])).run("Summarize: a long text", on_text=broken_display)
    assert run.status == "done" and run.answer == fallback_answer(run.request, run.plan, run.selection, run.results)
    assert Run.load(f"{run.run_dir}/run.json").status == "done"


def test_a_backend_that_cannot_stream_hands_over_the_whole_text_once():
    class Plain:  # an LLM written before streaming: chat() takes no on_text
        name, supports_schema = "plain", False

        def chat(self, messages, *, schema=None, max_tokens=512, temperature=0.0):
            return ScriptedLLM([ANSWER]).chat(messages)

    pieces: list[str] = []
    calls: list[LLMCall] = []
    reply = call_llm(Plain(), [{"role": "user", "content": "hi"}], stage="respond", calls=calls, on_text=pieces.append)
    assert pieces == [ANSWER] and reply.text == ANSWER and calls[0].stage == "respond"


def test_the_http_llm_streams_over_server_sent_events():
    with FakeOpenAI([ANSWER]) as server:
        pieces: list[str] = []
        reply = OpenAICompatibleLLM("tiny", base_url=server.base_url, max_retries=0).chat(
            [{"role": "user", "content": "hi"}], on_text=pieces.append)
        assert server.requests[0].json()["stream"] is True
    assert len(pieces) > 3 and "".join(pieces) == ANSWER == reply.text


def test_a_server_that_ignores_stream_is_asked_again_for_a_plain_answer():
    with FakeOpenAI([Reply(200, completion(ANSWER)), ANSWER]) as server:
        pieces: list[str] = []
        reply = OpenAICompatibleLLM("tiny", base_url=server.base_url, max_retries=0).chat(
            [{"role": "user", "content": "hi"}], on_text=pieces.append)
        assert [r.json().get("stream") for r in server.requests] == [True, None]
    assert pieces == [ANSWER] and reply.text == ANSWER


def test_an_http_stream_that_reports_an_error_is_an_llm_error():
    body = 'data: {"choices": [{"index": 0, "delta": {"content": "The"}}]}\n\ndata: {"error": {"message": "overloaded"}}\n\n'
    with FakeOpenAI([Reply(200, body, {"Content-Type": "text/event-stream"})]) as server:
        pieces: list[str] = []
        llm = OpenAICompatibleLLM("tiny", base_url=server.base_url, max_retries=0)
        with pytest.raises(LLMError):
            llm.chat([{"role": "user", "content": "hi"}], on_text=pieces.append)
    assert pieces == ["The"]


def test_the_draft_shows_whole_words_only_and_masks_tokens(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SecretToken12345")
    stream = AnswerStream()
    out = [stream.add(p) for p in ["Your key is hf_Se", "cretToken12345", " ok", "ay."]]
    assert out == ["Your key is ", "", "*** ", ""]  # the token never shows, not even its first half
    assert stream.rest("Your key is *** okay.") == "okay."
    assert stream.rest("Something else entirely.") is None


class Recorder(io.StringIO):
    """A stdout that remembers each write, to see the answer arrive in pieces."""

    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, text):
        self.writes.append(text)
        return super().write(text)


def test_the_cli_prints_the_answer_in_pieces(tmp_path, monkeypatch):
    with FakeOpenAI(['{"tasks": []}', ANSWER]) as server:
        out = Recorder()
        monkeypatch.setattr("sys.stdout", out)
        code = main(["--llm", f"{server.base_url}#tiny", "--experts", "llm", "--out", str(tmp_path), "Say something"])
    assert code == 0
    answer_writes = [w for w in out.writes if w.strip() and w.strip() in ANSWER]
    assert len(answer_writes) > 1, out.writes  # word by word, not once at the end
    assert out.getvalue().count(ANSWER.split()[-1]) == 1  # the final text completes the stream, no repeat
    assert ANSWER in " ".join(out.getvalue().split())


def test_the_magic_updates_one_display_as_the_answer_streams(session):  # noqa: F811
    session.magics.live_widgets = True
    session.use(json.dumps({"tasks": [task(0, "summarization", text="long text")]}), ANSWER)
    session.llm.piece_chars = 5
    captured = session.cell("--auto", "Summarize: long text")
    drafts = [o for o in captured.outputs if "text/markdown" in o.data and ANSWER[:3] in o.data["text/markdown"]]
    assert len(drafts) > 2 and any(o.update for o in drafts)  # one display, updated as words arrive
    assert drafts[-1].data["text/markdown"] == session.last.answer  # the last update: the checked answer
    assert session.last.answer.startswith(ANSWER)


def test_the_magic_shows_the_deterministic_answer_when_the_stream_breaks(session):  # noqa: F811
    session.magics.live_widgets = True
    session.use(json.dumps({"tasks": [task(0, "summarization", text="long text")]}), ANSWER)
    session.llm.piece_chars, session.llm.fail_stream_after = 5, 3
    captured = session.cell("--auto", "Summarize: long text")
    shown = [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data]
    run = session.last
    assert shown[-1] == fallback_answer(run.request, run.plan, run.selection, run.results)  # not the draft
    assert session.last.status == "done"
    assert Run.load(f"{session.last.run_dir}/run.json").answer == shown[-1]


def test_the_editor_shows_the_answer_as_it_streams_then_the_checked_one(session):  # noqa: F811
    session.magics.live_widgets = True
    session.use(json.dumps({"tasks": [task(0, "summarization", text="long text")]}), ANSWER)
    session.llm.piece_chars = 5
    session.cell("", "Summarize: long text")
    editor = session.magics.last_editor
    seen: list[str] = []
    editor.answer.observe(
        lambda change: seen.extend(o["data"].get("text/markdown", "") for o in change["new"]), names="outputs")
    editor.run_button.click()
    assert editor.wait(10)
    drafts = [text for text in seen if text.endswith(" …")]
    assert len(drafts) > 2 and all(ANSWER.startswith(d[:-2]) for d in drafts)  # whole words, in order
    assert seen[-1] == session.last.answer and session.last.answer.startswith(ANSWER)
