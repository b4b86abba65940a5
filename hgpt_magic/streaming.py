"""The answer while it streams: what of the LLM's draft may be shown yet, and how the final text completes it.

The LLM is untrusted, so a piece is never shown raw: text is released only up to the last whitespace (a
token split across pieces is whole before any of it shows) and masked (`mask_secrets`). The draft is only
a preview; the checked final answer (`Run.answer`) replaces it where they differ.
"""

from __future__ import annotations

from .secrets import mask_secrets


class AnswerStream:
    """Collects the pieces of a streamed answer (`add`, the `on_text` callback) for one display."""

    def __init__(self) -> None:
        self.text = ""  # everything received, raw: never shown as is
        self.printed = ""  # what `add` has handed out so far (masked)

    @property
    def started(self) -> bool:
        return bool(self.text)

    def shown(self) -> str:
        """The draft that may be displayed now: complete words only, masked."""
        cut = max(self.text.rfind(" "), self.text.rfind("\n"), self.text.rfind("\t"))
        return mask_secrets(self.text[: cut + 1]) if cut >= 0 else ""

    def add(self, piece: str) -> str:
        """Take one piece; return the new text that may be printed after what was printed before."""
        self.text += piece
        shown = self.shown()
        if not shown.startswith(self.printed):  # masking changed text already out (cannot happen for whole words)
            return ""
        new, self.printed = shown[len(self.printed):], shown
        return new

    def rest(self, final: str) -> str | None:
        """What to print after the streamed text so the reader ends with `final` (the checked answer);
        None when `final` does not continue what was printed (a summary replaced a broken stream, say)."""
        if final.startswith(self.printed):
            return final[len(self.printed):]
        printed = self.printed.strip()
        if printed and final.strip().startswith(printed):
            return final.strip()[len(printed):]
        return None
