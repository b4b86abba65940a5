"""What a session remembers between requests, and how much of it a prompt may carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Turn:
    """One earlier exchange of the session, for multi-turn planning ("now read *it* aloud")."""

    request: str
    answer: str


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token) for prompt budgets."""
    return len(text) // 4 + 1


def history_block(history: Sequence[Turn], budget_tokens: int) -> str:
    """The most recent turns that fit the token budget, oldest first."""
    lines: list[str] = []
    used = 0
    for turn in reversed(history):
        entry = f"User: {turn.request}\nAssistant: {turn.answer}"
        cost = estimate_tokens(entry)
        if used + cost > budget_tokens:
            break
        lines.insert(0, entry)
        used += cost
    return "\n".join(lines)
