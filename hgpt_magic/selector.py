"""Stage 2, model selection: rank candidate models per task; the LLM picks where the request can decide.

Candidates for a task are the catalogue's models of that task that some available backend can serve,
ranked by language fit, then backend preference (the order of the backends list), then downloads; the top
K are offered. Language fit: a model whose card names its languages (an "en" tag) and not the language of
what the task reads (its quoted text, else the request) goes below those that speak it or name none, so a
Spanish review is not labelled by an English-only lexicon because that backend comes first.

A task with one candidate takes it. With several, the ask policy (`ask`, `$HGPT_SELECT`) says whether the
LLM chooses, as in HuggingGPT:

- "auto" (default): only when the request speaks to a difference between the candidates, i.e. some word
  of the request is in a lower-ranked candidate's id or description but not in the top one's ("how many
  cats..." against a human-face and a cat-face detector). Otherwise the top-ranked model is taken, with
  a reason that says why it is first. Asking costs an LLM call (seconds on a laptop CPU) that could only
  repeat the ranking when the request names nothing the others are described as better at.
- "always": every task with several candidates is asked; "never": the top-ranked model always.

The tasks that are asked are decided together in one LLM call returning `{task id: {"id", "reason"}}`,
ids constrained to the candidates, reasons bounded. Its system message is the same for every call, so
an LLM server that caches prompt prefixes (llama.cpp) computes it once.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

from . import settings
from .catalog import Catalog, ModelCard
from .experts.base import ExpertBackend
from .languages import LANGUAGE_NAMES, detect_language, language_name
from .llm import LLM, call_llm
from .parsing import extract_json
from .registry import Registry, default_registry
from .text import media_kind, without_files
from .types import Candidate, Choice, LLMCall, Plan, Selection, Task

ASK_POLICIES = ("auto", "always", "never")

#: The longest reason the LLM may write (JSON-schema maxLength: the grammar bounds the tokens it spends).
REASON_CHARS = 120

SELECT_SYSTEM = """You choose the expert model for each task of a plan made for a user's request.
For each task you get its arguments and its candidate models, best-ranked first, each with a description.
Choose the candidate whose description fits the task and the request best; if none fits better, the first.
Reply with JSON only, one entry per task, each with a reason of a few words naming what in the request
decided. Example: {"3": {"id": "acme/opus-en-es", "reason": "the request wants Spanish"}}"""

#: Words that say nothing about which model suits a request: function words and what every request of
#: a task mentions. A request word counts only if it is not here (checked before and after stemming).
IGNORED_WORDS = frozenset("""
a an the and or but if then than so to of in on at by for from with without into onto about as is are was
were be been being do does did done have has had can could will would shall should may might must i me my
we our you your he she it its they them their this that these those there here what which who whom whose
how many much when where why all any some each every no not only also just very more most other please
tell show give get make use using let want need like know see say said one two three first second
image picture text file files model models task request output input result results
png jpg jpeg gif bmp webp wav mp3 flac ogg mp4 txt pdf csv json http https www
""".split())


def no_backend_reason(task: str) -> str:
    return (
        f"no available backend serves {task}: it needs a remote backend "
        "(set HF_TOKEN for Hugging Face Inference Providers, or configure an endpoint)"
    )


def check_ask_policy(value: str | None) -> str | None:
    """`value` if it is an ask policy or None (meaning `$HGPT_SELECT`); a ValueError that lists them if not."""
    if value is not None and value not in ASK_POLICIES:
        raise ValueError(f"the select policy must be one of {', '.join(ASK_POLICIES)} (or None for "
                         f"$HGPT_SELECT), not {value!r}")
    return value


def ask_policy_from_env() -> str:
    """`$HGPT_SELECT`; a value that is not a policy falls back to the default, with a warning (a typo must
    not stop a run)."""
    value = settings.SELECT.text().strip().lower()
    if value in ASK_POLICIES:
        return value
    warnings.warn(f"HGPT_SELECT={value!r} is not one of {', '.join(ASK_POLICIES)}; using "
                  f"{settings.SELECT.default!r}", stacklevel=2)
    return settings.SELECT.default


def stem(word: str) -> str:
    """A word without a possessive or a simple plural ("cats'" -> "cat", "voices" -> "voice"), so the
    request and the descriptions meet on the same form."""
    word = word.removesuffix("'s").rstrip("'")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> set[str]:
    """The telling words of `text`, lower case and stemmed; folders of paths and URLs dropped (a file's
    own name stays: "cat.png" says something, "/tmp/run-3/" does not)."""
    text = re.sub(r"\S*[/\\]", " ", text.lower())
    found = set()
    for word in re.findall(r"[a-z0-9]+(?:'[a-z]*)?", text):
        if word in IGNORED_WORDS or len(word) < 2:
            continue
        word = stem(word)
        if word not in IGNORED_WORDS and len(word) >= 2:
            found.add(word)
    return found


def request_cue(request: str, texts: Sequence[str]) -> tuple[str, int] | None:
    """A word of `request` that a lower-ranked candidate's text (`texts[1:]`; id and description) has and
    the top one's (`texts[0]`) lacks, with that candidate's index; None if the request names no such
    difference, so the ranking stands."""
    asked = words(request)
    if not asked or len(texts) < 2:
        return None
    top = words(texts[0])
    for index, text in enumerate(texts[1:], start=1):
        telling = sorted((asked & words(text)) - top)
        if telling:
            return telling[0], index
    return None


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut after a whole word and marked " ..." when it is longer."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 3].rsplit(" ", 1)[0] + " ..."


def ranked_first_reason(offered: Sequence[Candidate], language: str | None = None) -> str:
    """Why the top candidate leads the runner-up, in the ranking's own terms (language, backend order,
    downloads)."""
    top, runner_up = offered[0], offered[1]
    if speaks(top, language) and not speaks(runner_up, language):
        return (f"ranked first ({language_name(language)} input; {runner_up.id} reads "
                f"{'/'.join(runner_up.languages)} only)")
    if top.backend != runner_up.backend:
        return f"ranked first (preferred backend: {top.backend})"
    if top.downloads > runner_up.downloads:
        return f"ranked first ({top.backend}, most downloads)"
    return f"ranked first ({top.backend}, first in catalogue order)"


def others_named(offered: Sequence[Candidate]) -> str:
    """The lower-ranked candidates, the runner-up by name."""
    rest = len(offered) - 2
    return offered[1].id + (f" and {rest} more" if rest > 0 else "")


def card_languages(card: ModelCard) -> tuple[str, ...]:
    """The languages a card's tags name (ISO 639-1 codes, or "multilingual"); () when it names none."""
    return tuple(t for t in card.tags if t in LANGUAGE_NAMES or t == "multilingual")


def speaks(candidate: Candidate, language: str | None) -> bool:
    """Whether `candidate` can read text in `language`: yes unless its card names languages without it."""
    langs = candidate.languages
    return not language or not langs or language in langs or "multilingual" in langs


def input_language(task: Task, request: str, registry: Registry | None = None) -> str | None:
    """The language of what `task` reads, when the detector is sure: its own quoted text, else the request's
    (a German request about a recording most likely concerns German speech); None when unsure, and for a task
    that reads an image or a video (a French request says nothing of the language of a sign's text)."""
    registry = registry or default_registry()
    if task.task in registry and any(slot.type in ("image", "video") for slot in registry[task.task].inputs):
        return None
    literal = max((v for v in map(str, task.args.values()) if "<GENERATED>" not in v and not media_kind(v)),
                  key=len, default="")
    text = literal if len(literal.split()) >= 3 else without_files(request)
    detected = detect_language(text)
    return detected.code if detected.source == "detected" else None


class Selector:
    """Stage 2. `candidates(task)` is the ranked list; `select(plan, request)` returns a `Selection`.

    `ask`: "auto", "always" or "never" (see the module docstring); None reads `$HGPT_SELECT` at each
    selection, so a notebook may change it between cells.
    """

    def __init__(
        self,
        llm: LLM | None,
        backends: Sequence[ExpertBackend],
        catalog: Catalog | None = None,
        *,
        top_k: int = 5,
        description_chars: int = 160,
        ask: str | None = None,
        registry: Registry | None = None,
    ):
        self.llm = llm
        self.registry = registry or default_registry()  # the task types' input slots (for language fit)
        self.backends = list(backends)
        base = catalog or Catalog()
        self.catalog = base.with_cards([card for b in self.backends for card in b.cards()])
        self.top_k = top_k
        self.description_chars = description_chars
        self.ask = ask

    @property
    def ask(self) -> str | None:
        return self._ask_policy

    @ask.setter
    def ask(self, value: str | None) -> None:
        self._ask_policy = check_ask_policy(value)

    def ask_policy(self) -> str:
        """The policy in force: the one given, else `$HGPT_SELECT`."""
        return self._ask_policy or ask_policy_from_env()

    def serving_backend(self, task: str, model: str) -> ExpertBackend | None:
        """The first backend (in preference order) that can run `model` for `task`."""
        for backend in self.backends:
            if backend.can_serve(task, model):
                return backend
        return None

    def candidates(self, task: str, top_k: int | None = None, language: str | None = None) -> list[Candidate]:
        """Models that can run `task` here, best first: those that speak `language` (the language of what the
        task reads, when known), then preferred backend, then most downloads."""
        ranked: list[tuple[int, Candidate]] = []
        for card in self.catalog.for_task(task):  # already sorted by downloads
            backend = self.serving_backend(task, card.id)
            if backend is None:
                continue
            rank = self.backends.index(backend)
            ranked.append(
                (
                    rank,
                    Candidate(
                        id=card.id,
                        backend=backend.name,
                        downloads=card.downloads,
                        likes=card.likes,
                        description=card.description,
                        license=card.license,
                        offline=backend.offline,
                        languages=card_languages(card),
                    ),
                )
            )
        # stable: keeps the download order within a backend
        ranked.sort(key=lambda pair: (not speaks(pair[1], language), pair[0]))
        return [c for _, c in ranked][: top_k or self.top_k]

    def shown(self, candidate: Candidate) -> str:
        """A candidate's description as the LLM sees it: at most `description_chars`, cut at a word."""
        return clip(candidate.description, self.description_chars)

    def should_ask(self, offered: Sequence[Candidate], request: str, policy: str | None = None) -> bool:
        """Whether the LLM chooses among `offered` for this request (see the module docstring)."""
        policy = policy or self.ask_policy()
        if len(offered) < 2 or policy == "never":
            return False
        if policy == "always":
            return True
        return request_cue(request, [f"{c.id} {self.shown(c)}" for c in offered]) is not None

    def will_ask(self, plan: Plan, request: str = "") -> bool:
        """Whether `select(plan, request)` would call the LLM (so a caller loads it only then)."""
        policy = self.ask_policy()
        return any(self.should_ask(self.offered(t, request)[1], request, policy) for t in plan)

    def offered(self, task: Task, request: str = "") -> tuple[str | None, list[Candidate]]:
        """The language of what `task` reads (`input_language`) and its candidates ranked for it."""
        language = input_language(task, request, self.registry)
        return language, self.candidates(task.task, language=language)

    def select(self, plan: Plan, request: str = "", calls: list[LLMCall] | None = None) -> Selection:
        policy = self.ask_policy()
        choices: dict[int, Choice] = {}
        to_ask: dict[int, tuple[Task, list[Candidate]]] = {}
        for task in plan:
            language, offered = self.offered(task, request)
            if not offered:
                choices[task.id] = Choice(task.id, None, None, no_backend_reason(task.task), [])
            elif len(offered) == 1:
                only = offered[0]
                choices[task.id] = Choice(task.id, only.id, only.backend, "the only available model", offered)
            elif self.should_ask(offered, request, policy):
                to_ask[task.id] = (task, offered)
            else:
                top = offered[0]
                choices[task.id] = Choice(task.id, top.id, top.backend, self._unasked_reason(offered, policy, language),
                                          offered)
        if to_ask:
            choices.update(self._ask(to_ask, request, calls))
        return Selection(choices={t.id: choices[t.id] for t in plan})

    @staticmethod
    def _unasked_reason(offered: Sequence[Candidate], policy: str, language: str | None = None) -> str:
        """Why the top-ranked model was taken without asking, naming the runner-up (a teacher can show it)."""
        first = ranked_first_reason(offered, language)
        if policy == "never":
            return f"{first}; the LLM is not asked (select policy 'never')"
        return (f"{first}; the request asks for nothing that another candidate "
                f"({others_named(offered)}) is described as better at")

    def _ask(
        self, to_ask: dict[int, tuple[Task, list[Candidate]]], request: str, calls: list[LLMCall] | None
    ) -> dict[int, Choice]:
        """One LLM call for every task that is asked; fall back to the top one."""
        picks: dict[str, Any] = {}
        note = ""
        if self.llm is None:
            note = "no LLM to choose; took the top-ranked model"
        else:
            try:
                reply = call_llm(
                    self.llm,
                    self.messages(to_ask, request),
                    stage="select",
                    calls=calls,
                    schema=self.schema(to_ask),
                    max_tokens=80 * len(to_ask) + 40,
                )
                parsed = extract_json(reply.text)
                picks = parsed if isinstance(parsed, dict) else {}
                if not picks:
                    note = "the LLM's selection reply was not an object; took the top-ranked model"
            except Exception as exc:  # unreachable, refusing or unparsable: the top-ranked model
                note = f"model selection by the LLM failed ({exc}); took the top-ranked model"

        choices = {}
        for task_id, (_, offered) in to_ask.items():
            pick = picks.get(str(task_id)) or picks.get(task_id)  # type: ignore[call-overload]
            ids = {c.id: c for c in offered}
            if isinstance(pick, dict) and pick.get("id") in ids:
                chosen = ids[pick["id"]]
                # a reason that reached the bound was cut there, likely mid-word: end it after a whole word
                reason = clip(str(pick.get("reason") or "chosen by the LLM"), REASON_CHARS - 1)
            else:
                chosen = offered[0]
                if isinstance(pick, dict) and pick.get("id"):
                    reason = f"the LLM chose {pick['id']!r}, which is not a candidate; took the top-ranked model"
                else:
                    reason = note or "the LLM made no choice for this task; took the top-ranked model"
            choices[task_id] = Choice(task_id, chosen.id, chosen.backend, reason, offered)
        return choices

    def messages(self, to_ask: dict[int, tuple[Task, list[Candidate]]], request: str) -> list[dict[str, str]]:
        """The static instructions first (a system message identical for every call, so a prompt-prefix
        cache reuses it), then the request and the tasks."""
        return [{"role": "system", "content": SELECT_SYSTEM}, {"role": "user", "content": self.prompt(to_ask, request)}]

    def prompt(self, to_ask: dict[int, tuple[Task, list[Candidate]]], request: str) -> str:
        """The user message: the request, then each task with its candidates (downloads where known)."""
        blocks = [f"Request: {request}"]
        for task_id, (task, offered) in to_ask.items():
            lines = [f"Task {task_id}: {task.task}, args {json.dumps(task.args, ensure_ascii=False)}"]
            for c in offered:
                popularity = f" ({c.downloads:,} downloads)" if c.downloads else ""
                lines.append(f"- {c.id}{popularity}: {self.shown(c)}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    @staticmethod
    def schema(to_ask: dict[int, tuple[Task, list[Candidate]]]) -> dict[str, Any]:
        """Each task id maps to one of its candidate ids and a reason of bounded length."""
        properties = {
            str(task_id): {
                "type": "object",
                "properties": {
                    "id": {"enum": [c.id for c in offered]},
                    "reason": {"type": "string", "maxLength": REASON_CHARS},
                },
                "required": ["id", "reason"],
                "additionalProperties": False,
            }
            for task_id, (_, offered) in to_ask.items()
        }
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
