"""Stage 4, response generation: the LLM answers from the request and a compact account of each task.

The account gives each task's type, model, the reason it was chosen, its status and its outputs as
text or file paths, with large structured outputs cut short. If the LLM call fails, a deterministic
summary built from the same account is the answer, so a run never ends without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .history import Turn, history_block
from .llm import LLM, OnText, call_llm
from .types import LLMCall, Plan, Selection, TaskResult

RESPOND_PROMPT = """You are HuggingGPT. For the user's request below, expert models ran these tasks; their results follow.

User request: {request}

{context}Task results:
{account}

Write the answer to the user's request from these results. Start with the answer itself (quote the
text results the user asked for, give the path of every file produced), then say in one or two sentences
which models did the work. Only report what the results say; if a task failed, say so and why."""

DIRECT_PROMPT = "You are HuggingGPT, a helpful assistant. No tool was needed for this request; answer it directly."


def account(plan: Plan, selection: Selection | None, results: Mapping[int, TaskResult], limit: int = 400) -> str:
    """One compact paragraph per task; what the LLM and the user read about the execution."""
    lines = []
    for task in plan:
        result = results.get(task.id)
        choice = selection.choices.get(task.id) if selection else None
        model = (result.model if result and result.model else None) or (choice.model if choice else None)
        head = f"- task {task.id} {task.task}"
        if model:
            head += f" with model {model}"
        if choice and choice.reason:
            head += f" (chosen because: {choice.reason})"
        lines.append(head)
        if result is None or result.status == "pending":
            lines.append("  status: not run")
            continue
        if result.status != "done":
            lines.append(f"  status: {result.status}: {result.error or 'no reason given'}")
            continue
        for artifact in result.artifacts:
            lines.append(f"  output ({artifact.kind}): {artifact.describe(limit)}")
    return "\n".join(lines)


def fallback_answer(request: str, plan: Plan, selection: Selection | None, results: Mapping[int, TaskResult]) -> str:
    """A plain summary, used when the LLM cannot write the answer."""
    if not len(plan):
        return "No task was needed for this request, and the LLM could not be reached to answer it."
    done = sum(1 for r in results.values() if r.status == "done")
    return f"Ran {done} of {len(plan)} tasks for: {request}\n\n" + account(plan, selection, results)


class Responder:
    """Stage 4. `respond(...)` returns the answer as Markdown text."""

    def __init__(self, llm: LLM, *, max_tokens: int = 300, history_tokens: int = 600):
        self.llm = llm
        self.max_tokens = max_tokens
        self.history_tokens = history_tokens

    def messages(self, request, plan, selection, results, history: Sequence[Turn] = ()) -> list[dict[str, str]]:
        context = history_block(history, self.history_tokens)
        context = f"Earlier in this conversation:\n{context}\n\n" if context else ""
        if not len(plan):
            return [{"role": "system", "content": DIRECT_PROMPT}, {"role": "user", "content": context + request}]
        prompt = RESPOND_PROMPT.format(request=request, context=context, account=account(plan, selection, results))
        return [{"role": "user", "content": prompt}]

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
        messages = self.messages(request, plan, selection, results, history)
        try:
            reply = call_llm(
                self.llm, messages, stage="respond", calls=calls, max_tokens=self.max_tokens, on_text=on_text
            )
        except Exception:  # any failure of the LLM: the run still gets an answer
            return fallback_answer(request, plan, selection, results)
        answer = without_preamble(reply.text) or fallback_answer(request, plan, selection, results)
        return with_file_paths(answer, results)


#: A first line that announces the answer instead of giving it ("The answer to the user's request is:"),
#: a habit of small models that the prompt's "start with the answer itself" does not always break.
PREAMBLE = re.compile(
    r"\A\s*(?:sure[,!.]?\s*)?(?:here is |here's )?(?:the |my )?(?:answer|response|reply) to (?:the |your )?"
    r"(?:user'?s )?(?:request|question)(?: is)?\s*:\s*\n+",
    re.IGNORECASE,
)


def without_preamble(text: str) -> str:
    """The answer without an announcing first line; unchanged when that line is all there is."""
    text = text.strip()
    rest = PREAMBLE.sub("", text, count=1).strip()
    return rest or text


def with_file_paths(answer: str, results: Mapping[int, TaskResult]) -> str:
    """Append the paths of produced files the LLM left out: the user must always learn where they are."""
    paths = [a.path for r in results.values() for a in r.artifacts if a.path]
    missing = [p for p in paths if p not in answer]
    if not missing:
        return answer
    return answer + "\n\nFiles:\n" + "\n".join(f"- {p}" for p in missing)
