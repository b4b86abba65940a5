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
    """

    name: str
    description: str
    inputs: tuple[Slot, ...]
    outputs: tuple[str, ...]
    llm_served: bool = False

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
    `cues`: (task name, a regular expression) pairs: the expression that a request asking for that task matches; a task the
    plan ends with whose cue the request does not match is dropped (`planning.repair.unrequested_tasks`:
    small models append text-to-speech or text-classification to requests that never asked for them).
    Only for task types whose requests always say so in words; empty: no task is dropped.
    """

    demos: str | Path | Traversable | None = None
    retrieve: int | None = None
    allow_empty: bool | None = None
    description_limit: int = 150
    cues: tuple[tuple[str, str], ...] = ()

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


def _t(name: str, description: str, inputs: str, outputs: str, llm_served: bool = False) -> TaskType:
    """Compact constructor: inputs as `"name:type, name:type?"` (`?` = optional), outputs as `"text+image"`."""
    slots = []
    for part in filter(None, (p.strip() for p in inputs.split(","))):
        slot_name, media = part.split(":")
        optional = media.endswith("?")
        media = media.rstrip("?")
        assert media in MEDIA_TYPES, media
        slots.append(Slot(slot_name, media, required=not optional))
    return TaskType(name, description, tuple(slots), tuple(outputs.split("+")), llm_served)


#: HuggingGPT's task vocabulary: the 24 task types of the model catalogue plus canny-control
#: (edge maps, as in the paper's ControlNet tasks). Descriptions are short on purpose: they go in every prompt.
HUGGINGGPT_TASKS = Registry.of(
    [
        _t("text-classification", "label a text (sentiment, topic)", "text:text", "text"),
        _t("token-classification", "tag words in a text (named entities, parts of speech)", "text:text", "text"),
        _t("text2text-generation", "rewrite or transform a text (paraphrase, correct)", "text:text", "text", True),
        _t("summarization", "shorten a text keeping its key points", "text:text", "text", True),
        _t("translation", "translate a text into another language", "text:text, language:text?", "text", True),
        _t("question-answering", "answer a question from a context text", "text:text, context:text", "text", True),
        _t("conversational", "reply to a message in a dialogue", "text:text", "text", True),
        _t("text-generation", "write new text from a prompt", "text:text", "text", True),
        _t("sentence-similarity", "score how similar two texts are", "text1:text, text2:text", "text"),
        _t("tabular-classification", "classify rows of a table given as an image", "image:image", "text"),
        _t("object-detection", "find objects (or faces) in an image, with boxes", "image:image", "text+image"),
        _t("image-classification", "say what an image shows, as labels", "image:image", "text"),
        _t("image-to-image", "transform an image (style, edit)", "image:image, text:text?", "image"),
        _t("image-to-text", "describe an image in words, or read the text in it (OCR)", "image:image", "text"),
        _t("text-to-image", "draw an image from a description", "text:text", "image"),
        _t("text-to-video", "make a short video from a description", "text:text", "video"),
        _t("visual-question-answering", "answer a question about an image", "image:image, text:text", "text"),
        _t("document-question-answering", "answer a question about a document image", "image:image, text:text", "text"),
        _t("image-segmentation", "split an image into labelled regions", "image:image", "image+text"),
        _t("depth-estimation", "estimate the depth of each pixel of an image", "image:image", "image"),
        _t("text-to-speech", "read a text aloud as speech audio", "text:text", "audio"),
        _t("automatic-speech-recognition", "transcribe speech audio into text", "audio:audio", "text"),
        _t("audio-to-audio", "enhance or separate audio (denoise, split voices)", "audio:audio", "audio"),
        _t("audio-classification", "label an audio clip (emotion, sound, command)", "audio:audio", "text"),
        _t("canny-control", "extract the edge map (Canny edges) of an image", "image:image", "image"),
    ],
    name="hugginggpt",
    # Interactive: the first plan of a session must come fast, so the static prompt prefix is the task
    # list alone and the three demos nearest the request follow it.
    vocabulary=Vocabulary(
        demos=resources.files("hgpt_magic").joinpath("prompts", "demos_hugginggpt.json"),
        retrieve=3,
        cues=(
            # Speech is asked for in words about voice or sound ("read it aloud", "tell me with your voice",
            # "say it in German", "an audio announcement"), never by a plain question.
            ("text-to-speech", r"\b(?:aloud|loud|voice\w*|speak\w*|spoken|speech|announc\w*|narrat\w*|pronounc\w*|"
                               r"recite|let me hear|say (?:it|that|this|them|the|these|those|both|my|\W))"),
            # Labelling a text: its sentiment, tone, emotion, category, topic.
            ("text-classification", r"\b(?:sentiment|positive|negative|classif\w*|categor\w*|label\w*|emotion\w*|"
                                   r"tone|mood|spam|toxic\w*|offensive|topic|kind of (?:text|message|review)|opinion)"),
        ),
    ),
)


def default_registry() -> Registry:
    return HUGGINGGPT_TASKS
