"""The numbers a text states, in digits or in words, so a rewrite of it can be checked for them.

A translation must keep its text's facts, and a small model does not always: the embedded model put "opens at
ten o'clock" into Spanish as "abre a las once" (eleven) while "10 o'clock" came through. Numbers written in
words are read with text2num (`alpha2digit`: English, French, Spanish, German, Italian, Portuguese, Dutch;
package `text2num`); in other languages, or without the package, only digits count.

text2num leaves a lone small number in words ("two cats", "zwei Euro"), so values under
`SMALLEST_COMPARED` are not compared on either side: "2 euros" and "dos euros" must not look different.
File names, paths and URLs are no statements: their digits are not compared, and their words are never
rewritten ("data/four_seasons.png" stays as it is).
"""

from __future__ import annotations

import functools
import re

from .text import prose_and_names

SMALLEST_COMPARED = 3

#: Digit runs are read 30 digits at a time: a longer run is no number a person states, and `int()` refuses
#: strings of over 4,300 digits.
_DIGIT_RUN = re.compile(r"\d{1,30}")


@functools.lru_cache(maxsize=1)
def _alpha2digit():
    try:
        from text_to_num import alpha2digit
    except ImportError:
        return None
    return alpha2digit


def with_digits(text: str, language: str | None) -> str:
    """`text` with its numbers in words written in digits ("at ten o'clock" -> "at 10 o'clock") when text2num
    reads `language` (a code: "en", "de" ...); `text` unchanged otherwise. Names stay as they are."""
    pieces = prose_and_names(text)  # odd pieces are names
    return "".join(piece if n % 2 else _in_digits(piece, language) for n, piece in enumerate(pieces))


def _in_digits(prose: str, language: str | None) -> str:
    convert = _alpha2digit()
    if convert is None or not language:
        return prose
    try:
        return convert(prose, language)
    except ValueError:  # a language text2num does not read
        return prose


def stated_numbers(text: str, language: str | None) -> frozenset[int]:
    """The values `text` states (digits, and words in `language`), from `SMALLEST_COMPARED` up.

    "3.60" and "3,60" both state {3, 60}: the groups of a decimal or a time are compared one by one, so the
    separators of different languages do not matter."""
    prose = " ".join(prose_and_names(text)[::2])
    values = (int(run) for run in _DIGIT_RUN.findall(_in_digits(prose, language)))
    return frozenset(value for value in values if value >= SMALLEST_COMPARED)


def numbers_kept(source: str, source_language: str | None, rewrite: str, rewrite_language: str | None) -> bool:
    """Whether `rewrite` (a translation, say) states the same numbers as `source`."""
    return stated_numbers(source, source_language) == stated_numbers(rewrite, rewrite_language)
