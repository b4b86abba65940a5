"""The planning prompt: the static system message (task list, reply format, rules), demos as chat turns,
the request with the conversation so far, and the follow-up after an invalid plan.

Everything up to the demos is the same for every request of a session, so an LLM server's prompt-prefix
cache computes it once (see `planner.Planner`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..history import Turn, history_block
from ..registry import Registry
from ..types import GENERATED_RE
from .demos import Demo

SYSTEM_PROMPT = """You are the task planner of HuggingGPT. You split a user's request into tasks that expert AI models can run.

Available tasks, as name(argument: type, ...) -> output type: what it does
{tasks}

Reply with JSON only, of the form {form}.
Rules:
{rules}"""

#: The reply format, in full (HuggingGPT's paper) or compact (ids are positions, deps follow from references).
FORMS = {
    "full": '{"tasks": [{"task": NAME, "id": INT, "dep": [INT, ...], "args": {ARGUMENT: VALUE}}]}',
    "compact": '{"tasks":[{"task":NAME,"args":{ARGUMENT:VALUE}}]}',
}
RULES = {
    "full": '- Ids count from 0. "dep" lists the ids of the tasks whose output this task uses.',
    "compact": "- Tasks are numbered from 0 in the order you list them.",
}
COMMON_RULES = """- To use the output of task N as an argument, write exactly "<GENERATED>-N"; its output type must match the argument's type.
- Copy file names, URLs and quoted texts from the request exactly. Image, audio and video arguments are file names or "<GENERATED>-N".
- Make one task for each step the request asks for, in the order they must run, using only the tasks listed above."""
EMPTY_RULE = (
    '- If the request needs no task (small talk, thanks, a question about the conversation so far), reply {"tasks": []}. '
    "A text the request quotes or pastes, to be labelled, shortened, translated or searched for names, needs its task."
)


def system_prompt(registry: Registry, *, compact: bool = False, allow_empty: bool = True) -> str:
    """The static first message: the task list, the reply format and the rules."""
    form = "compact" if compact else "full"
    rules = [RULES[form], COMMON_RULES, *registry.vocabulary.rules] + ([EMPTY_RULE] if allow_empty else [])
    return SYSTEM_PROMPT.format(tasks=tools_block(registry), form=FORMS[form], rules="\n".join(rules))


def tools_block(registry: Registry) -> str:
    """One line per task type: its signature and what it does, as short as the vocabulary says."""
    lines = []
    for t in registry:
        line = f"- {t.signature()}: {registry.vocabulary.describe(t.description)}"
        lines.append(line + (f' (asked as: "{t.asked_as}")' if t.asked_as else ""))
    return "\n".join(lines)


def retry_message(request: str, errors: Sequence[str]) -> str:
    """The follow-up after an invalid plan: what was wrong, and the request again.

    Restating the request matters for small models: without it they tend to plan the error message.
    """
    return (
        "That plan is invalid:\n- "
        + "\n- ".join(errors)
        + f"\nPlan this request again, fixing those errors: {request}\n"
        + 'Reply with the corrected JSON only: {"tasks": [...]}.'
    )


def demo_reply(demo: Demo, compact: bool = False) -> str:
    """A demo's plan as the assistant would write it, in the planner's reply format."""
    if not compact:
        return json.dumps({"tasks": demo.tasks}, ensure_ascii=False)
    position = {t["id"]: i for i, t in enumerate(demo.tasks)}

    def renumber(value: str) -> str:
        return GENERATED_RE.sub(lambda m: f"<GENERATED>-{position.get(int(m.group(1)), m.group(1))}", value)

    tasks = [{"task": t["task"], "args": {k: renumber(v) for k, v in t["args"].items()}} for t in demo.tasks]
    return json.dumps({"tasks": tasks}, ensure_ascii=False, separators=(",", ":"))


def request_message(request: str, history: Sequence[Turn], history_tokens: int) -> str:
    """The last user message: the request, after the earlier turns that fit `history_tokens`."""
    context = history_block(history, history_tokens)
    return request if not context else f"Earlier in this conversation:\n{context}\n\nNew request: {request}"
