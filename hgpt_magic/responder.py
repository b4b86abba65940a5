"""Stage 4, response generation: a short LLM sentence that answers the request, then the run's facts.

The LLM sees this request and this run's results only (earlier answers invite copying; see
`history.py`), written as facts ("Text in sign.png: WELCOME TO THE LIBRARY"), and is asked for one or
two sentences. `grounding.check_answer` rejects a sentence that the run contradicts (a wrong path,
status or number); then the answer is the deterministic one. Either way the code, not the model,
adds the facts the sentence does not quote, the produced files and the failures (`grounding.complete`).
If the LLM call fails, the deterministic answer is the answer, so a run never ends without one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from .grounding import (
    check_answer,
    complete,
    deterministic_answer,
    failed_outcomes,
    failures,
    file_descriptions,
    run_facts,
    succeeded,
)
from .history import Turn, history_block
from .languages import answer_language
from .llm import LLM, OnText, call_llm
from .registry import Registry
from .types import LLMCall, Plan, Selection, TaskResult

log = logging.getLogger(__name__)

RESPOND_PROMPT = """The user asked: {request}

Expert models ran for this request. What they found:
{facts}

Answer the user directly in one or two short sentences, using only what they found: give the result they
asked for (the text, the number, the translation). Files are shown to the user: do not list them, and do
not describe the tasks. If something they asked for could not be done, say so plainly.{language}"""

#: Added to a prompt when the request is not in English: the answer is in the user's language, the facts
#: (numbers, transcripts, file names, quoted texts) stay exactly as the experts gave them.
LANGUAGE_NOTE = " Write your answer in {name}, the language of the request; keep numbers, names and quoted texts as they are."


DIRECT_PROMPT = "You are HuggingGPT, a helpful assistant. No tool was needed for this request; answer it directly."

#: Ends the user message of a direct answer when the session has earlier cells. A question about them ("and
#: how much were the croissants?") is what a request with no task usually is; without this line the small model
#: answered such questions with the unserved-tasks note ("this cannot be done here"). In the system message
#: instead, it crowded out that note for requests that did need it (measured in session 8: three follow-ups in
#: French, German and Spanish, two drawing requests).
FOLLOW_UP_NOTE = (
    "\n\n(When the request asks about something earlier in this session, answer from the earlier results above, "
    "quoting them exactly.)"
)

#: Added to the direct prompt when some task types have no model here: a request for one of them (a drawing
#: offline) gets one honest sentence with the remedy instead of a refusal or a pretended result.
UNSERVED_NOTE = (
    " These kinds of task cannot run with the models available here: {tasks}. If the request needs one of "
    "them, say in one sentence that it cannot be done here and that setting HF_TOKEN (Hugging Face Inference "
    "Providers) or configuring an endpoint makes it possible; never pretend it was done."
)


def results_for_prompt(plan: Plan, results: Mapping[int, TaskResult], registry: Registry | None = None) -> str:
    """The run as the responding LLM reads it: facts, what each file made is (no paths), failures."""
    lines = [f"- {fact.line()}" for fact in run_facts(plan, results, registry)]
    lines += [f"- {task} made a file shown to the user: {text}" for _, text, task in file_descriptions(results)]
    lines += [f"- could not be done: {line}" for line in failures(plan, results)]
    return "\n".join(lines) or "- nothing"


def fallback_answer(
    request: str, plan: Plan, selection: Selection | None, results: Mapping[int, TaskResult], registry: Registry | None = None
) -> str:
    """The answer when the LLM cannot write one: the run's facts, files and failures."""
    if not len(plan):
        return "No task was needed for this request, and the LLM could not be reached to answer it."
    return deterministic_answer(plan, results, registry)


class Responder:
    """Stage 4. `respond(...)` returns the answer as Markdown text.

    `history` is used only for a request that needed no task (then the earlier cells' requests and
    resources are the context, never their answers).
    """

    def __init__(
        self,
        llm: LLM,
        *,
        max_tokens: int = 120,
        history_tokens: int = 600,
        registry: Registry | None = None,
        unserved: Sequence[str] = (),
    ):
        self.llm = llm
        self.registry = registry  # how each task type's result is stated (`TaskType.result_label`)
        self.unserved = list(unserved)  # "text-to-image (draw an image from a description)", ...
        self.max_tokens = max_tokens
        self.history_tokens = history_tokens

    def messages(self, request, plan, selection, results, history: Sequence[Turn] = ()) -> list[dict[str, str]]:
        if not len(plan):
            context = history_block(history, self.history_tokens)
            user = f"Earlier in this session:\n{context}\n\nRequest: {request}{FOLLOW_UP_NOTE}" if context else request
            system = DIRECT_PROMPT + (UNSERVED_NOTE.format(tasks="; ".join(self.unserved)) if self.unserved else "")
            system += self._language_note(request)
            return [{"role": "system", "content": system}, {"role": "user", "content": user}]
        prompt = RESPOND_PROMPT.format(
            request=request, facts=results_for_prompt(plan, results, self.registry), language=self._language_note(request)
        )
        return [{"role": "user", "content": prompt}]

    @staticmethod
    def _language_note(request: str) -> str:
        name = answer_language(request)
        return LANGUAGE_NOTE.format(name=name) if name else ""

    def respond(
        self,
        request: str,
        plan: Plan,
        selection: Selection | None,
        results: Mapping[int, TaskResult],
        *,
        history: Sequence[Turn] = (),
        calls: list[LLMCall] | None = None,
        on_text: OnText | None = None,
    ) -> str:
        """The answer; `on_text` sees the LLM's draft as it is written (the returned text is the checked one)."""
        if len(plan) and (not succeeded(results) or failed_outcomes(plan, results)):
            # nothing ran, or a result the user asked for is missing: the run's facts and failures, not a sentence
            # that may claim the missing part was done (`grounding.failed_outcomes`)
            return deterministic_answer(plan, results, self.registry)
        messages = self.messages(request, plan, selection, results, history)
        max_tokens = self.max_tokens if len(plan) else max(self.max_tokens, 300)
        try:
            reply = call_llm(
                self.llm, messages, stage="respond", calls=calls, max_tokens=max_tokens, on_text=on_text
            )
        except Exception:  # any failure of the LLM: the run still gets an answer
            return fallback_answer(request, plan, selection, results, self.registry)
        sentence = without_preamble(reply.text)
        if not len(plan):
            return sentence or fallback_answer(request, plan, selection, results)
        return grounded(sentence, request, plan, results, self.registry)


def grounded(
    sentence: str, request: str, plan: Plan, results: Mapping[int, TaskResult], registry: Registry | None = None
) -> str:
    """The LLM's sentence, if the run does not contradict it, completed with the run's facts."""
    problems = check_answer(sentence, request, plan, results)
    if problems:
        log.warning("the LLM's answer was replaced: %s (it said: %r)", "; ".join(problems), sentence[:300])
        return deterministic_answer(plan, results, registry)
    return complete(sentence, plan, results, registry)


#: A first line that announces the answer instead of giving it ("The answer to the user's request is:"),
#: a habit of small models that the prompt's "start with the answer itself" does not always break.
PREAMBLE = re.compile(
    r"\A\s*(?:sure[,!.]?\s*)?(?:here is |here's )?(?:the |my )?(?:answer|response|reply) to (?:the |your )?"
    r"(?:user'?s )?(?:request|question)(?: is)?\s*:\s*\n+",
    re.IGNORECASE,
)


#: Opening sentences that retell the prompt instead of answering ("The user asked to ...", "The expert models
#: ran for this request. They found:"): small models echo the instructions they were given.
ECHO = re.compile(
    r"\A\s*(?:(?:the )?user (?:asked|wants|requested|would like)\b[^\n]*?[.!?:](?=\s|\Z)\s*"
    r"|(?:the )?expert models? (?:ran|were run|have run)\b[^\n]*?[.!?:](?=\s|\Z)\s*"
    r"|(?:they|the experts?|the models?) found:\s*"
    r"|(?:the )?results? (?:they|you|the user) (?:asked|wanted|requested)(?: for)? (?:is|are|was|were):?\s+)+",
    re.IGNORECASE,
)


def without_preamble(text: str) -> str:
    """The answer without an announcing first line or sentences that retell the prompt; unchanged when
    that is all there is."""
    text = text.strip()
    rest = PREAMBLE.sub("", text, count=1).strip()
    rest = ECHO.sub("", rest, count=1).strip()
    return rest or text
