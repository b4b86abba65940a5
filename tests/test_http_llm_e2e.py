"""The whole pipeline with the controller LLM reached over HTTP, through the real `openai` client.

The server is the embedded model's own OpenAI-compatible endpoint (llama.cpp's server, on 127.0.0.1):
the same code path that talks to vLLM, Ollama, LM Studio or the Hugging Face router.
"""

from pathlib import Path

import pytest

from hgpt_magic.llm import OpenAICompatibleLLM, make_llm
from hgpt_magic.llm.local import get_local_llm
from hgpt_magic.pipeline import HuggingGPT

SIGN = Path(__file__).resolve().parent.parent / "notebooks" / "data" / "sign.png"

pytestmark = pytest.mark.slow


def test_http_spec_runs_the_four_stages_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("HGPT_API_KEY", raising=False)
    local = get_local_llm()
    spec = f"{local.serve()}#{local.model}"
    llm = make_llm(spec)
    assert isinstance(llm, OpenAICompatibleLLM) and llm.name == spec

    hg = HuggingGPT(llm=spec, out_dir=tmp_path)
    run = hg.run(f"Read the text in the image {SIGN} aloud")

    assert run.llm == spec
    assert [t.task for t in run.plan] == ["image-to-text", "text-to-speech"]
    assert run.status == "done" and all(r.status == "done" for r in run.results.values())
    assert "LIBRARY" in run.results[0].artifacts[0].text.upper()
    wav = run.results[1].artifact("audio").path
    assert Path(wav).stat().st_size > 10_000 and wav in run.answer
    stages = [c.stage for c in run.llm_calls]
    assert stages[0] == "plan" and stages[-1] == "respond" and len(stages) <= 3
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in run.llm_calls)  # usage came over HTTP
