"""The controller LLM as an expert for generative text tasks, as in the HuggingGPT paper.

Summaries, translations, answers and free text need no separate model when the controller LLM
can write them; this backend turns each such task into one chat request.
"""

from __future__ import annotations

from ..catalog import ModelCard
from ..registry import Registry, default_registry
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


class LLMExperts(ExpertBackend):
    """Serves the registry's `llm_served` tasks with the controller LLM (`ctx.llm`)."""

    name = "llm"
    offline = True  # as offline as the controller LLM itself

    def __init__(self, registry: Registry | None = None):
        self.tasks = [t.name for t in (registry or default_registry()) if t.llm_served]

    def cards(self) -> list[ModelCard]:
        return [
            ModelCard(
                id=MODEL_ID,
                task=task,
                description="The controller LLM itself writes the text (no extra model to load).",
                backend=self.name,
            )
            for task in self.tasks
        ]

    def can_serve(self, task: str, model: str) -> bool:
        return model == MODEL_ID and task in self.tasks

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        if ctx.llm is None:
            raise ExpertError(f"{task} needs the controller LLM, and none is configured")
        language = inputs.get("language") or "the language the user asked for"
        instruction = _INSTRUCTIONS.get(task, "Do the task below. Reply with the result only.").format(
            language=language
        )
        if task == "question-answering":
            body = f"Context:\n{inputs.get('context', '')}\n\nQuestion: {inputs.get('text', '')}"
        else:
            body = inputs.get("text", "")
        # The user's request is context for the system message only: in the user turn, a small model
        # mistakes it for part of the text to work on (and translates it too).
        system = f"{instruction} No preamble, no notes, no quotes around the result."
        if ctx.request:
            system += f"\n(The user's overall request, for context only: {ctx.request})"
        reply = ctx.llm.chat(
            [{"role": "system", "content": system}, {"role": "user", "content": body}], max_tokens=400
        )
        return [Artifact(kind="text", text=reply.text.strip())]
