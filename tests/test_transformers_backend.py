"""The `transformers` backend end to end, on tiny randomly initialised models that the test builds and
puts in a Hugging Face cache of its own (no download). Skipped when the `[transformers]` extra is missing."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from fake_servers import png_bytes  # noqa: E402

from hgpt_magic.catalog import Catalog, ModelCard  # noqa: E402
from hgpt_magic.experts.transformers_backend import TransformersExperts, cached_models, supported_tasks  # noqa: E402
from hgpt_magic.pipeline import HuggingGPT  # noqa: E402
from hgpt_magic.testing import ScriptedLLM  # noqa: E402

REVISION = "0123456789abcdef0123456789abcdef01234567"


def put_in_cache(cache, repo_id: str, pipeline_tag: str, save) -> None:
    """Lay a model out as huggingface_hub's cache does: snapshots/REV/..., refs/main = REV."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    save(snapshot)
    (snapshot / "README.md").write_text(f"---\npipeline_tag: {pipeline_tag}\nlicense: mit\n---\n# tiny\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizer,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf-cache")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "love", "it", "hate", "this", "movie"]

    def save_bert(folder):
        (folder / "vocab.txt").write_text("\n".join(words) + "\n")
        BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
        config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64,
                            id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
        BertForSequenceClassification(config).save_pretrained(folder)

    def save_vit(folder):
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
        config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1})
        ViTForImageClassification(config).save_pretrained(folder)

    put_in_cache(root, "tiny-org/tiny-sentiment", "text-classification", save_bert)
    put_in_cache(root, "tiny-org/tiny-vit", "image-classification", save_vit)
    return root


def test_cached_models_are_found_without_importing_torch(cache):
    assert cached_models(cache) == [("tiny-org/tiny-sentiment", "text-classification"),
                                    ("tiny-org/tiny-vit", "image-classification")]
    backend = TransformersExperts(cache_dir=cache)
    assert {(c.id, c.task) for c in backend.cards()} == {
        ("tiny-org/tiny-sentiment", "text-classification"), ("tiny-org/tiny-vit", "image-classification")
    }
    assert backend.can_serve("image-classification", "tiny-org/tiny-vit")
    assert not backend.can_serve("image-classification", "google/vit-base-patch16-224")  # not in this cache
    assert not backend.can_serve("canny-control", "tiny-org/tiny-vit")
    assert "text-classification" in supported_tasks()


def test_a_run_through_the_pipeline_on_tiny_local_models(cache, tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes((40, 30)))
    plan = {"tasks": [
        {"task": "image-classification", "id": 0, "dep": [], "args": {"image": str(image)}},
        {"task": "text-classification", "id": 1, "dep": [], "args": {"text": "i love this movie"}},
    ]}
    llm = ScriptedLLM([json.dumps(plan), "A random cat, and a random sentiment."])
    backend = TransformersExperts(cache_dir=cache)
    # a catalogue model that happens to be cached is served too
    catalog = Catalog([ModelCard("tiny-org/tiny-vit", "image-classification", downloads=5)])
    hg = HuggingGPT(llm=llm, experts=[backend], catalog=catalog, out_dir=tmp_path / "runs")
    run = hg.run(f"What is in {image}, and is 'i love this movie' positive?")

    assert run.status == "done", {k: r.error for k, r in run.results.items()}
    assert [run.selection[i].backend for i in (0, 1)] == ["transformers", "transformers"]
    image_out, text_out = run.results[0].artifacts[0], run.results[1].artifacts[0]
    assert image_out.kind == "data" and {d["label"] for d in image_out.data} == {"cat", "dog"}
    assert text_out.kind == "data" and {d["label"] for d in text_out.data} == {"NEGATIVE", "POSITIVE"}
    assert abs(sum(d["score"] for d in text_out.data) - 1.0) < 1e-3
    assert backend.device in ("cpu", "cuda", "mps")
    # the pipeline is loaded once and reused
    assert backend.pipeline("text-classification", "tiny-org/tiny-sentiment") is backend.pipeline(
        "text-classification", "tiny-org/tiny-sentiment"
    )
