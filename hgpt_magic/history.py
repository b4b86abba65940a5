"""What a session remembers between requests, and how much of it a prompt may carry.

A notebook keeps one pipeline, so every cell is planned with the cells before it. What helps the next
plan is what those cells *named and made*: the files (with their paths and media types) and short texts
such as a transcript or the text read from a sign, so that "now translate what was said" finds the
transcript. Earlier *answers* do not help: a small model shown them copies them into the next answer
(seen: every answer after the first repeated the first). So a `Turn` keeps the answer for the user to
look at (`%hugginggpt history`), but `history_block` never puts it in a prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .text import media_kind, named_files, one_line_quote

if TYPE_CHECKING:
    from .types import Run, TaskResult

#: Characters of one earlier text kept for the planner: enough for a transcript or a sign, not a document.
TEXT_CHARS = 300

#: Characters of the latest result repeated at the end of the history (its full text is above).
LATEST_CHARS = 60

#: Characters of the reason a task was not done, in the history.
NOT_DONE_CHARS = 80


@dataclass
class Resource:
    """Something an earlier cell named or made: a media file (`path`) or a short text.

    `origin` says where it came from ("named in the request", "made by task 0 automatic-speech-recognition").
    """

    kind: str
    origin: str
    path: str | None = None
    text: str = ""

    def render(self) -> str:
        if self.path:
            return f"- {self.kind} file {self.path} ({self.origin})"
        text = self.text if len(self.text) <= TEXT_CHARS else self.text[: TEXT_CHARS - 1] + "…"
        return f"- {self.kind} ({self.origin}): {one_line_quote(text)}"


@dataclass
class Turn:
    """One earlier cell: the request, what it named and made, and its answer (shown to the user only)."""

    request: str
    answer: str = ""
    resources: list[Resource] = field(default_factory=list)
    #: The tasks that did not finish, with why ("text-to-video (no available backend serves text-to-video)"):
    #: shown so that the next plan does not ask again for what could not run ("then at least write a poem"
    #: after a video no model here can make was planned as the video again, seen with the embedded model).
    not_done: list[str] = field(default_factory=list)


def turn_from_run(run: Run) -> Turn:
    """The `Turn` a finished run leaves in the history: the files it named and made, and its results as
    a person would read them ("1 face", not the detector's boxes), and one line per task that did not finish
    (it made nothing to refer to, but the next plan should know it could not run)."""
    from .grounding import produced_files, run_facts  # grounding reads file names with this module's helpers

    resources = [
        Resource(media_kind(name) or "file", "named in the request", path=name) for name in named_files(run.request)
    ]
    if run.plan is not None:
        for fact in run_facts(run.plan, run.results):
            resources.append(Resource("text", f"made by task {fact.task_id} {fact.task}", text=fact.value))
    for path, kind, task in produced_files(run.results):
        resources.append(Resource(kind, f"made by {task}", path=path))
    not_done = [f"{task.task} ({_why_not_done(run.results.get(task.id))})" for task in run.plan or []
                if task.id not in run.results or run.results[task.id].status != "done"]
    return Turn(run.request, run.answer or "", resources, not_done)


def _why_not_done(result: TaskResult | None) -> str:
    """The first clause of a task's error ("no available backend serves text-to-video"), else its status."""
    why = ((result.error or result.status) if result is not None else "").strip()
    why = why.splitlines()[0].split(": ")[0] if why else "did not run"
    return why if len(why) <= NOT_DONE_CHARS else why[: NOT_DONE_CHARS - 1] + "…"


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token) for prompt budgets."""
    return len(text) // 4 + 1


def render_turn(number: int, turn: Turn) -> str:
    """One earlier cell as the planner sees it: the request, then what it named and made."""
    lines = [f"Request {number}: {one_line_quote(turn.request)}"]
    lines += [r.render() for r in turn.resources]
    lines += [f"- not done: {line}" for line in turn.not_done]
    return "\n".join(lines)


#: Older turns leave the prompt this many at a time, so the prompt's start stays the same for several
#: requests in a row and an LLM server's prefix cache reuses the history it computed for the last one.
DROP_STRIDE = 4


def history_block(history: Sequence[Turn], budget_tokens: int) -> str:
    """The most recent turns that fit the token budget, oldest first, numbered as in the session.

    Requests and resources only, never answers (see the module docstring). When not all fit, the first turn
    kept is a multiple of `DROP_STRIDE` (see there), so up to that many fewer may be kept. The block ends with
    the latest text result ("that", "it", "what was said" mean it: small models otherwise take the first one
    listed). Empty when there is no history.
    """
    entries = [render_turn(number, turn) for number, turn in enumerate(history, start=1)]
    costs = [estimate_tokens(entry) for entry in entries]
    first = len(entries)  # the oldest turn that fits, counting back from the latest
    used = 0
    while first > 0 and used + costs[first - 1] <= budget_tokens:
        first -= 1
        used += costs[first]
    boundary = -(-first // DROP_STRIDE) * DROP_STRIDE  # some were dropped: start at a stride boundary ...
    if first > 0 and boundary < len(entries):  # ... unless that would leave none of those that fit
        first = boundary
    return "\n".join(entries[first:] + _latest_result(history))


def _latest_result(history: Sequence[Turn]) -> list[str]:
    """'Latest result: "..." (request N, task type)': the session's newest text, as one line (or none)."""
    for number in range(len(history), 0, -1):
        texts = [r for r in history[number - 1].resources if r.text and not r.path]
        if texts:
            latest = texts[-1]
            text = latest.text if len(latest.text) <= LATEST_CHARS else latest.text[: LATEST_CHARS - 1] + "…"
            task = latest.origin.split()[-1] if latest.origin.startswith("made by") else latest.origin
            return [f"Latest result: {one_line_quote(text)} (request {number}, {task})"]
    return []

