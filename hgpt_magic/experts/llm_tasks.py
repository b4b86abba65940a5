"""The controller LLM as an expert for generative text tasks, as in the HuggingGPT paper.

Summaries, translations, answers and free text need no separate model when the controller LLM
can write them; this backend turns each such task into one chat request. It also labels texts and
tags entities zero-shot under a JSON schema (any labels the request names), the slower but more
flexible alternative to the local sentiment and NER models.
"""

from __future__ import annotations

from typing import Any

from ..catalog import ModelCard
from ..languages import detect_language, in_users_language, language_code
from ..parsing import extract_json
from ..registry import Registry, default_registry
from ..stated_numbers import stated_numbers, with_digits
from ..types import Artifact
from .base import CONTROLLER_LLM_ID, ExpertBackend, ExpertContext, ExpertError

MODEL_ID = CONTROLLER_LLM_ID

_INSTRUCTIONS = {
    "summarization": "Summarize the text below in a few sentences. Reply with the summary only.",
    "translation": "Translate the text below into {language}. Reply with the translation only.",
    "question-answering": "Answer the question from the context. Reply with the answer only.",
    "conversational": "Reply to the message below as a helpful assistant.",
    "text-generation": "Write what the prompt below asks for. Reply with the text only.",
    "text2text-generation": "Do what the text below asks (rewrite, correct or transform it). Reply with the result only.",
}


#: Tasks whose text is written for the user to read: in the user's language, as the answer is (a German
#: request to sum up a German notice got an English summary, read aloud in English). A translation has its
#: own target; a rewrite (text2text-generation) keeps its text's language.
WRITTEN_FOR_THE_USER = {"summarization", "question-answering", "conversational", "text-generation"}

#: Zero-shot tasks answered as JSON under a schema, with what their card tells the planner.
ZERO_SHOT = {
    "text-classification": "The controller LLM labels the text zero-shot under a JSON schema: any labels "
    "(topic, intent, sentiment...) given as `labels` or named in the request. Flexible, a few seconds per text.",
    "token-classification": "The controller LLM lists the named entities (PERSON, ORG, LOCATION, DATE, MONEY, "
    "MISC) zero-shot under a JSON schema; entities not found verbatim in the text are dropped. Slower and less "
    "exact than a trained tagger.",
}
ENTITY_LABELS = ["PERSON", "ORG", "LOCATION", "DATE", "MONEY", "MISC"]
#: Used when a text-classification task names no labels and the request gives none either.
DEFAULT_LABELS = ["positive", "negative", "neutral"]


class LLMExperts(ExpertBackend):
    """Serves the registry's `llm_served` tasks with the controller LLM (`ctx.llm`)."""

    name = "llm"
    offline = True  # as offline as the controller LLM itself

    def __init__(self, registry: Registry | None = None):
        registry = registry or default_registry()
        self.tasks = [t.name for t in registry if t.llm_served]
        self.tasks += [task for task in ZERO_SHOT if task in registry and task not in self.tasks]

    def cards(self) -> list[ModelCard]:
        return [
            ModelCard(
                id=MODEL_ID,
                task=task,
                description=ZERO_SHOT.get(task, "The controller LLM itself writes the text (no extra model to load)."),
                tags=("multilingual",),  # the controller LLM reads and writes the user's language
                backend=self.name,
            )
            for task in self.tasks
        ]

    def can_serve(self, task: str, model: str) -> bool:
        return model == MODEL_ID and task in self.tasks

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        if ctx.llm is None:
            raise ExpertError(f"{task} needs the controller LLM, and none is configured")
        if task == "text-classification":
            return _classify(inputs, ctx)
        if task == "token-classification":
            return _entities(inputs, ctx)
        language = inputs.get("language") or "the language the user asked for"
        instruction = _INSTRUCTIONS.get(task, "Do the task below. Reply with the result only.").format(
            language=language
        )
        if task in WRITTEN_FOR_THE_USER:
            instruction += in_users_language(ctx.request)
        if task == "question-answering":
            body = f"Context:\n{inputs.get('context', '')}\n\nQuestion: {inputs.get('text', '')}"
        elif task == "translation":
            body = sentence_case_if_all_capitals(inputs.get("text", ""))
        else:
            body = inputs.get("text", "")
        if task == "translation":
            return [_translate(instruction, body, language, ctx)]
        return [Artifact(kind="text", text=_write(instruction, body, ctx))]


def _write(instruction: str, body: str, ctx: ExpertContext) -> str:
    """One chat: `instruction` as the system message, `body` as the user's turn; the reply's text."""
    # The user's request is context for the system message only: in the user turn, a small model
    # mistakes it for part of the text to work on (and translates it too).
    system = f"{instruction} No preamble, no notes, no quotes around the result."
    if ctx.request:
        system += f"\n(The user's overall request, for context only: {ctx.request})"
    reply = ctx.llm.chat([{"role": "system", "content": system}, {"role": "user", "content": body}], max_tokens=400)
    return reply.text.strip()


def _translate(instruction: str, text: str, language: str, ctx: ExpertContext) -> Artifact:
    """The translation of `text`, checked for the numbers it states: a translation that changed one ("ten
    o'clock" -> "las once") is made once more from the text with its numbers in digits, which the model
    copies; the second is kept only when it has the numbers right, so the check never makes a result worse.
    A text whose numbers are in digits already is not sent again: the model would answer the same."""
    source_language = ctx.languages.get("text") or detect_language(text).code
    target_language = language_code(language)
    wanted = stated_numbers(text, source_language)
    translation = _write(instruction, text, ctx)
    if stated_numbers(translation, target_language) == wanted:
        return Artifact(kind="text", text=translation)
    in_digits = with_digits(text, source_language)
    if in_digits != text:  # the same text again would get the same translation
        again = _write(instruction, in_digits, ctx)
        if stated_numbers(again, target_language) == wanted:
            return Artifact(kind="text", text=again, data={"translated_twice": "the first translation changed a number"})
    return Artifact(kind="text", text=translation, data={"numbers_differ": sorted(wanted)})


def sentence_case_if_all_capitals(text: str) -> str:
    """`text` with each line in sentence case when all its letters are capitals, else `text` unchanged.

    Signs and labels read by OCR come in capitals, and a small model takes words in capitals for names or
    codes and copies them untranslated: the embedded model gave "APOTHEKE" for "APOTHEKE / NOTDIENST HEUTE"
    into Italian and "Farmacia" for "Apotheke / Notdienst heute"; in 10 such signs, 7 were copied or garbled
    in capitals and right in sentence case, none the other way round.
    """
    cased = [c for c in text if c.lower() != c.upper()]  # letters with a capital form (not digits, not CJK)
    if not cased or not all(c.isupper() for c in cased):
        return text
    return "\n".join(_sentence_case(line) for line in text.split("\n"))


def _sentence_case(line: str) -> str:
    lowered = line.lower()
    first = next((i for i, c in enumerate(lowered) if c.isalpha()), None)
    return lowered if first is None else lowered[:first] + lowered[first].upper() + lowered[first + 1:]


def _labels(inputs: dict[str, str]) -> list[str]:
    """The candidate labels: the task's `labels` input ("a, b, c"), else sentiment's three."""
    labels = [label.strip() for label in (inputs.get("labels") or "").split(",") if label.strip()]
    return list(dict.fromkeys(labels)) or DEFAULT_LABELS


def _ask_json(ctx: ExpertContext, system: str, text: str, schema: dict[str, Any]) -> Any:
    """One chat under `schema`; the reply is untrusted, so a reply that is not JSON is an error."""
    if ctx.request:
        system += f"\n(The user's overall request, for context only: {ctx.request})"
    reply = ctx.llm.chat(
        [{"role": "system", "content": system}, {"role": "user", "content": text}], schema=schema, max_tokens=300
    )
    try:
        return extract_json(reply.text)
    except ValueError:
        raise ExpertError(f"{ctx.task}: the LLM did not answer in JSON: {reply.text[:200]!r}") from None


def _classify(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = (inputs.get("text") or "").strip()
    if not text:
        raise ExpertError(f"{ctx.task}: the text input 'text' is empty")
    labels = _labels(inputs)
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    system = f"Label the text below with exactly one of these labels: {', '.join(labels)}. Reply in JSON."
    answer = _ask_json(ctx, system, text, schema)
    label = answer.get("label") if isinstance(answer, dict) else None
    if label not in labels:  # a server without structured output may still stray
        raise ExpertError(f"{ctx.task}: the LLM answered {label!r}, not one of {labels}")
    return [Artifact(kind="data", text=f"{label} (zero-shot by the controller LLM)", data={"label": label, "labels": labels})]


def _entities(inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    text = (inputs.get("text") or "").strip()
    if not text:
        raise ExpertError(f"{ctx.task}: the text input 'text' is empty")
    schema = {
        "type": "object",
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "label": {"type": "string", "enum": ENTITY_LABELS}},
                    "required": ["text", "label"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["entities"],
        "additionalProperties": False,
    }
    system = (
        "List the named entities in the text below, each copied exactly as written, with one label of: "
        f"{', '.join(ENTITY_LABELS)}. Reply in JSON."
    )
    answer = _ask_json(ctx, system, text, schema)
    raw = answer.get("entities") if isinstance(answer, dict) else None
    entities = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or item.get("label") not in ENTITY_LABELS:
            continue
        surface = str(item.get("text") or "").strip()
        start = text.find(surface) if surface else -1
        if start >= 0:  # an entity the LLM made up (not in the text) is dropped
            entities.append({"text": surface, "label": item["label"], "start": start, "end": start + len(surface)})
    summary = "; ".join(f"{e['text']} ({e['label']})" for e in entities) or "no named entities found"
    return [Artifact(kind="data", text=summary, data=entities)]
