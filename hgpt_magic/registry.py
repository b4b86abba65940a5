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
    `asks`: the other direction, (task name, expression) pairs: a request matching the expression asks for
    that task, so a plan without it gets it added (`planning.repair.requested_tasks`: "read it out loud"
    planned without text-to-speech). Narrow on purpose ("voice memo.wav" is no request for speech).
    """

    demos: str | Path | Traversable | None = None
    retrieve: int | None = None
    allow_empty: bool | None = None
    description_limit: int = 150
    cues: tuple[tuple[str, str], ...] = ()
    asks: tuple[tuple[str, str], ...] = ()

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


#: Languages a request may name ("in Spanish", "into German"): an alternation for regular expressions.
FOREIGN_LANGUAGES = (
    "spanish|french|german|italian|portuguese|dutch|chinese|mandarin|cantonese|japanese|korean|russian|arabic|"
    "hindi|turkish|polish|swedish|norwegian|danish|finnish|greek|hebrew|czech|hungarian|romanian|ukrainian|"
    "vietnamese|thai|indonesian|malay|catalan|latin|persian|farsi|urdu|bengali|swahili|irish|welsh"
)
LANGUAGES = "english|" + FOREIGN_LANGUAGES


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
    # Every demo sits in the static prompt prefix, in a fixed order: its KV state is computed once per
    # machine and restored from disk (`LocalLLM.warm_prefix`), so a plan computes only the session's
    # history and the request, and the next request of the session reuses the history computed before.
    vocabulary=Vocabulary(
        demos=resources.files("hgpt_magic").joinpath("prompts", "demos_hugginggpt.json"),
        retrieve=None,
        cues=(
            # Speech is asked for in words about voice or sound ("read it aloud", "tell me with your voice",
            # "say it in German", "an audio announcement"), never by a plain question.
            ("text-to-speech", r"\b(?:aloud|loud|voice\w*|speak\w*|spoken|speech|announc\w*|narrat\w*|pronounc\w*|"
                               r"recite|hear|audio|say (?:it|that|this|them|the|these|those|both|my|\W))"),
            # Labelling a text: its sentiment, tone, emotion, category, topic.
            ("text-classification", r"\b(?:sentiment|positive|negative|classif\w*|categor\w*|label\w*|emotion\w*|"
                                   r"tone|mood|spam|toxic\w*|offensive|topic|kind of (?:text|message|review)|opinion)"),
            # Edge maps are asked for as edges, outlines, contours or line drawings.
            ("canny-control", r"\b(?:edges?|outlin\w*|contours?|canny|sketch\w*|lines?|line[- ]?art|drawing|control)"),
            # Finding things: faces, people, objects, where they are, how many.
            ("object-detection", r"\b(?:detect\w*|find\w*|locat\w*|where|count\w*|how many|number of|faces?|"
                                 r"objects?|box\w*|people|persons?|anyone|anybody|someone|who|cats?|dogs?|animals?|"
                                 r"spot\w*|any\b|there)"),
            # Shortening: summary, gist, key points, "in one sentence".
            ("summarization", r"\b(?:summar\w*|sum (?:it |this |that )?up|short\w*|brief\w*|gist|tl;?dr|key points?|"
                              r"main (?:points?|ideas?)|overview|essence|condens\w*|recap|abridg\w*|in (?:one|a|two|"
                              r"three|few|\d+) (?:sentences?|lines?|words?|bullet))"),
            # Translating names a language, or says translate.
            ("translation", rf"\b(?:translat\w*|{LANGUAGES}|language|foreign)"),
            ("depth-estimation", r"\b(?:depth|deep|distance\w*|far|near\w*|close\w*|3d|3-d)"),
            ("sentence-similarity", r"\b(?:similar\w*|same|alike|compar\w*|differ\w*|close\w*|match\w*|related|"
                                    r"paraphras\w*|versus|vs)"),
            ("audio-to-audio", r"\b(?:nois\w*|denois\w*|clean\w*|enhanc\w*|separat\w*|remov\w*|isolat\w*|split\w*|"
                               r"quality|background|hiss\w*|echo\w*|clear\w*|filter\w*|improv\w*|louder|quieter)"),
            ("image-segmentation", r"\b(?:segment\w*|regions?|masks?|areas?|parts?|split\w*|separat\w*|outlin\w*|"
                                   r"pixels?|background|foreground|cut\w* out)"),
            ("image-to-image", r"\b(?:styl\w*|transform\w*|edit\w*|turn\w*|convert\w*|chang\w*|modif\w*|version|"
                               r"cartoon\w*|paint\w*|watercolou?r|look\w* like|make (?:it|the|this)|filter\w*|colou?r\w*|"
                               r"variation\w*|redraw\w*|draw\w*|sketch\w*|anime|sepia|black and white)"),
            ("text-to-image", r"\b(?:draw\w*|paint\w*|generat\w*|creat\w*|mak\w*|imag\w*|pictur\w*|photo\w*|"
                              r"illustrat\w*|render\w*|sketch\w*|design\w*|art\w*|visuali[sz]\w*|show\w*)"),
            ("audio-classification", r"\b(?:classif\w*|label\w*|kind|type|emotion\w*|mood|feel\w*|sounds?\b|"
                                     r"speech|voice|silen\w*|music|detect\w*|categor\w*|recogni[sz]\w*|tone|angry|happy|sad)"),
            ("token-classification", r"\b(?:entit\w*|names?|named|people|persons?|places?|locations?|organi[sz]\w*|"
                                     r"compan\w*|dates?|ner|tag\w*|who|where|when|parts? of speech|nouns?|verbs?|"
                                     r"extract\w*|mention\w*)"),
        ),
        asks=(
            # Only words that want sound made: "read it aloud", "with your voice", "say it", "an audio version".
            ("text-to-speech", r"\b(?:aloud|out loud|read (?:it|this|that|them|both)(?: \w+)? to me|(?:with|in) (?:your|a) "
                               r"\w* ?voice|speak (?:it|this|that)|say (?:it|that|this|them|both)\b(?! (?:say|said|mean))|"
                               r"pronounce|narrat\w*|announce|announcement|recite|let me hear|as (?:speech|audio)|"
                               r"audio (?:version|file|clip|recording) of)"),
            # Translating: the word itself, or "in/into" a language other than English (which fills "language").
            ("translation", rf"\btranslat\w*|\b(?:in|into) (?P<language>{FOREIGN_LANGUAGES})\b"),
            # Comparing two texts the request quotes ("'I love pizza' versus 'The market fell'").
            ("sentence-similarity", r"\b(?:similar\w*|versus|vs\b|compar\w*|alike)"),
            # The tasks of one file, added only on the file the request itself names (`requested_tasks`).
            ("canny-control", r"\b(?:edges?|edge[- ]map|outlines?|contours?|canny)\b"),
            ("object-detection", r"\b(?:faces?|detect\w*|bounding box\w*|boxes)\b"),
            ("automatic-speech-recognition", r"\btranscri\w*|\bwhat (?:does|did) .{0,40}\bsa(?:y|ys|id)\b"),
        ),
    ),
)


def default_registry() -> Registry:
    return HUGGINGGPT_TASKS
