"""The task registry: which task types exist, what each takes and what it produces.

The planner receives a `Registry` as a value, so the same planning code works on HuggingGPT's
vocabulary (the default), TaskBench's tool graph (`hgpt_magic.bench.vocabulary`) or a user's own. How the
planner prompts for a registry (its demos, how many to retrieve, whether "no task" is a valid answer, how
long a description may be) is the registry's `Vocabulary`, so nothing in the planner is keyed by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .types import MEDIA_TYPES

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class Slot:
    """A named input of a task type, of one media type."""

    name: str
    type: str
    required: bool = True
    hint: str = ""


@dataclass(frozen=True)
class TaskType:
    """A task the planner may use: inputs as named typed slots, outputs as media types.

    `llm_served` marks generative text tasks that the controller LLM itself can do (as in the paper).
    `asked_as`: how people ask for it, in their own words and languages ("make it bigger", "à voix haute"):
    the planner reads it beside the description, so a request worded unlike the demos still finds its task.
    `result_label`: how the answer introduces its text result ("Text in {src}", `{src}` what it read);
    empty: "Result of <name>". Files it makes are shown by their media type, so that needs no declaring.
    """

    name: str
    description: str
    inputs: tuple[Slot, ...]
    outputs: tuple[str, ...]
    llm_served: bool = False
    asked_as: str = ""
    result_label: str = ""

    def slot(self, name: str) -> Slot | None:
        for slot in self.inputs:
            if slot.name == name:
                return slot
        return None

    def signature(self) -> str:
        """`name(arg: type, ...) -> type`, the form the planning prompt lists."""
        args = ", ".join(f"{s.name}: {s.type}" + ("" if s.required else "?") for s in self.inputs)
        return f"{self.name}({args}) -> {' + '.join(self.outputs) or 'nothing'}"


@dataclass(frozen=True)
class Vocabulary:
    """How the planner prompts for a registry.

    `demos`: a demos JSON file (worked examples; None: none). `retrieve`: how many demos, nearest to the
    request, follow it (None: every demo sits in the cached prompt prefix). `allow_empty`: whether "no
    task" is a valid plan (None: where the demos teach it, i.e. some demo has no task). `description_limit`:
    each task's description is cut to its first sentence and at most this many characters in the prompt.
    `intent_rules`: a JSON file of intent rules (`planning.intents`): a task a request plainly asks for that the
    LLM left out is added, with a note naming the rule (None: no rules). Each rule carries example requests in
    several languages that it must and must not match (tested). `rules`: more lines for the prompt's rules.
    `files_feed_tasks`: every media file a request names must be the input of some task (one re-ask, then a
    task by code: `planning.shaping.file_fallback`).
    """

    demos: str | Path | Traversable | None = None
    retrieve: int | None = None
    allow_empty: bool | None = None
    description_limit: int = 150
    intent_rules: str | Path | Traversable | None = None
    rules: tuple[str, ...] = ()
    files_feed_tasks: bool = False

    def describe(self, description: str) -> str:
        """The first sentence of a description, cut at `description_limit` characters (TaskBench's run to a
        paragraph)."""
        limit = self.description_limit
        first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
        return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


@dataclass
class Registry:
    """An ordered collection of task types, looked up by name, with the vocabulary's prompting settings."""

    types: dict[str, TaskType] = field(default_factory=dict)
    name: str = "custom"
    vocabulary: Vocabulary = field(default_factory=Vocabulary)

    @classmethod
    def of(cls, task_types: Iterable[TaskType], name: str = "custom", vocabulary: Vocabulary | None = None) -> Registry:
        return cls(types={t.name: t for t in task_types}, name=name, vocabulary=vocabulary or Vocabulary())

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def __getitem__(self, name: str) -> TaskType:
        return self.types[name]

    def __iter__(self) -> Iterator[TaskType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)

    @property
    def names(self) -> list[str]:
        return list(self.types)


def _t(
    name: str, description: str, inputs: str, outputs: str, llm_served: bool = False, asked_as: str = "", states: str = ""
) -> TaskType:
    """Compact constructor: inputs as `"name:type, name:type?"` (`?` = optional), outputs as `"text+image"`."""
    slots = []
    for part in filter(None, (p.strip() for p in inputs.split(","))):
        slot_name, media = part.split(":")
        optional = media.endswith("?")
        media = media.rstrip("?")
        assert media in MEDIA_TYPES, media
        slots.append(Slot(slot_name, media, required=not optional))
    return TaskType(name, description, tuple(slots), tuple(outputs.split("+")), llm_served, asked_as, states)


#: HuggingGPT's task vocabulary: the 24 task types of the model catalogue plus canny-control
#: (edge maps, as in the paper's ControlNet tasks). Descriptions are short on purpose: they go in every prompt.
#: `asked_as` lists how people ask, a few languages mixed in: the LLM generalises from them to other wordings.
HUGGINGGPT_TASKS = Registry.of(
    [
        _t("text-classification", "label a text (sentiment, topic)", "text:text", "text",
           asked_as="is it positive or negative, how does the writer feel, what mood or tone, which category, ¿es positivo?", states="Labels"),
        _t("token-classification", "find the names in a text: people, places, organisations, dates", "text:text", "text",
           asked_as="which people, places, companies are mentioned, pull out the names, welche Namen kommen vor", states="Entities"),
        _t("text2text-generation", "rewrite or transform a text (paraphrase, correct)", "text:text", "text", True,
           asked_as="fix the grammar, rephrase, corrige ce texte", states="Rewritten"),
        _t("summarization", "shorten a text keeping its key points", "text:text", "text", True,
           asked_as="sum it up, the gist, a shorter version, in one sentence, résume, fasse zusammen, resume", states="Summary"),
        _t("translation", "translate a text into another language", "text:text, language:text?", "text", True,
           asked_as="in French, into German, auf Englisch, en español, in italiano, traduis, übersetze", states="Translation"),
        _t("question-answering", "answer a question from a context text (a transcript, a sign, a passage)",
           "text:text, context:text", "text", True,
           asked_as="how much is the total, do I need an umbrella, what time does it start", states="Answer"),
        _t("conversational", "reply to a message in a dialogue", "text:text", "text", True, states="Reply"),
        _t("text-generation", "write new text from a prompt", "text:text", "text", True,
           asked_as="write a poem, a story, an email", states="Text"),
        _t("sentence-similarity", "score how similar two texts are", "text1:text, text2:text", "text",
           asked_as="do they mean the same, how alike are they, compare, ähnlich, parecidos", states="Similarity"),
        _t("tabular-classification", "classify rows of a table given as an image", "image:image", "text", states="Classes in {src}"),
        _t("object-detection", "find objects, people or faces in an image, with boxes, and count them", "image:image",
           "text+image", asked_as="how many faces, is anyone in it, wie viele Gesichter, cuántas caras, trouve les visages", states="Found in {src}"),
        _t("image-classification", "say what an image shows, as labels", "image:image", "text",
           asked_as="what kind of animal, which breed, what is this object", states="Labels for {src}"),
        _t("image-to-image", "transform an image: enlarge or sharpen it (super-resolution), restyle or edit it",
           "image:image, text:text?", "image",
           asked_as="make it twice as big, upscale, higher resolution, sharper, agrandis, vergrößere, amplía"),
        _t("image-to-text", "describe an image in words, or read the text in it (OCR)", "image:image", "text",
           asked_as="what does the sign say, read the text, describe the photo, what is in it, décris, beschreibe, describe", states="Text in {src}"),
        _t("text-to-image", "draw an image from a description", "text:text", "image",
           asked_as="draw, paint, make a picture of, dessine, zeichne, dibuja"),
        _t("text-to-video", "make a short video from a description", "text:text", "video"),
        _t("visual-question-answering", "answer a question about an image", "image:image, text:text", "text",
           asked_as="what colour is the car in the photo, is the person smiling", states="Answer about {src}"),
        _t("document-question-answering", "answer a question about a document image", "image:image, text:text", "text",
           asked_as="when is the invoice due, who signed the letter", states="Answer from {src}"),
        _t("image-segmentation", "split an image into labelled regions", "image:image", "image+text", states="Regions in {src}"),
        _t("depth-estimation", "estimate the depth of each pixel of an image", "image:image", "image"),
        _t("text-to-speech", "read a text aloud as speech audio", "text:text", "audio",
           asked_as="read it aloud, say it, with your voice, dub it, lis à voix haute, lies laut vor, léelo en voz alta"),
        _t("automatic-speech-recognition", "transcribe speech audio into text", "audio:audio", "text",
           asked_as="what is said in the recording, listen to it, transcris, was wird gesagt, ¿qué dice el audio?", states="Transcript of {src}"),
        _t("audio-to-audio", "enhance or separate audio (denoise, split voices)", "audio:audio", "audio",
           asked_as="remove the noise or static, clean up the recording, entrauschen"),
        _t("audio-classification", "label an audio clip (speech or not, sound, emotion)", "audio:audio", "text",
           asked_as="is anyone speaking in it, is it just noise or silence, what sound is this", states="Labels for {src}"),
        _t("canny-control", "extract the edge map (Canny edges) of an image", "image:image", "image",
           asked_as="show its edges, outlines, contours, los bordes, die Kanten, les contours"),
    ],
    name="hugginggpt",
    # Every demo sits in the static prompt prefix, in a fixed order: its KV state is computed once per
    # machine and restored from disk (`LocalLLM.warm_prefix`), so a plan computes only the session's
    # history and the request, and the next request of the session reuses the history computed before.
    vocabulary=Vocabulary(
        demos=resources.files("hgpt_magic").joinpath("prompts", "demos_hugginggpt.json"),
        retrieve=None,
        description_limit=200,
        intent_rules=resources.files("hgpt_magic").joinpath("prompts", "intent_rules.json"),
        rules=(
            "- Every file the request names is the input of some task. Add no step the request does not ask for.",
            "- Requests come in any language: plan them as you would the same request in English; keep file names "
            "and quoted texts as written.",
            '- "that", "it", "the total", "what was said" mean the latest fitting result of the conversation.',
        ),
        files_feed_tasks=True,
    ),
)


def default_registry() -> Registry:
    return HUGGINGGPT_TASKS
