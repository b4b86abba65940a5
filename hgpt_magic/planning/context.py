"""What a repair may consult: the vocabulary, the request and the files it names, and the session so far.

Shared by the structural repairs (`repair`) and the intent rules (`intents`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry
from ..text import files_by_kind
from ..types import Task
from .validate import read_task

Items = list[Any]


#: An earlier cell as repairs see it: its request and the texts it made (a transcript, a sign's text).
EarlierTurn = tuple[str, Sequence[str]]


@dataclass
class Context:
    """What repairs may consult: the vocabulary, the request and its files by media type, the files
    earlier cells of the session named or made (`earlier`, by media type too) and those cells' requests
    with the texts they made (`earlier_turns`, oldest first)."""

    registry: Registry
    files: dict[str, list[str]] = field(default_factory=dict)
    request: str = ""
    earlier: dict[str, list[str]] = field(default_factory=dict)
    earlier_turns: list[EarlierTurn] = field(default_factory=list)

    @classmethod
    def of(
        cls, registry: Registry, request: str = "", earlier: Sequence[str] = (), earlier_turns: Sequence[EarlierTurn] = ()
    ) -> Context:
        return cls(registry, files_by_kind(request), request, files_by_kind(" ".join(earlier)), list(earlier_turns))

    @property
    def earlier_texts(self) -> list[str]:
        """Every text earlier cells made, oldest first."""
        return [text for _, texts in self.earlier_turns for text in texts]


def readable(items: Items, ctx: Context) -> list[tuple[int, Task]]:
    """(position, task) of every item that reads as a task."""
    found = []
    for position, item in enumerate(items):
        task = read_task(item, ctx.registry)
        if task is not None:
            found.append((position, task))
    return found
