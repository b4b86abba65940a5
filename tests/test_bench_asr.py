"""`python -m hgpt_magic.bench asr`: its sentences, split, voices and scoring (no model loads here)."""

import pytest

from hgpt_magic.bench.__main__ import build_parser
from hgpt_magic.bench.asr import edit_distance, load_clips, normalise, summarise


def test_the_sentences_and_their_seeded_split():
    dev, held = load_clips(25, "dev"), load_clips(25, "held-out")
    everything = load_clips(25, "all")
    assert len(everything) == len(dev) + len(held) and not {c.text for c in dev} & {c.text for c in held}
    per_lang = {lang: sum(c.lang == lang for c in everything) for lang in ("en", "de", "fr", "es")}
    assert per_lang["en"] >= 20 and min(per_lang.values()) >= 5 and set(per_lang) == {c.lang for c in everything}
    assert all(sum(c.lang == lang for c in dev) >= 5 for lang in ("de", "fr", "es")) and sum(c.lang == "en" for c in dev) >= 10
    assert load_clips(25, "dev") == dev and load_clips(26, "dev") != dev  # the seed decides, and only it
    assert all("+" in c.voice for c in everything)  # a variant on every voice: the tests use the plain ones
    assert any(c.noise for c in dev) and not all(c.noise for c in dev)
    english = [c.text for c in everything if c.lang == "en"]
    assert sum(any(ch.isdigit() for ch in t) for t in english) >= 15  # numbers and dates, said as espeak says them


def test_words_are_normalised_by_whispers_own_normalisers():
    """English: numbers, currencies and spellings written one way on both sides (Whisper's standard)."""
    pytest.importorskip("whisper_normalization")
    assert normalise("On March 3, Alice paid 42 dollars, ten percent, at 9:30 for 1,500 tickets after seven rounds.") == [
        "on", "march", "3", "alice", "paid", "$42", "10%", "at", "9", "30", "for", "1500", "tickets", "after", "7", "rounds"]
    assert normalise("She paid $42, 10%, for 1500 tickets after 7 rounds.") == normalise(
        "she paid forty-two dollars, ten percent, for fifteen hundred tickets after seven rounds")
    assert normalise("Mr. Brown likes the colour.") == ["mister", "brown", "likes", "the", "color"]
    # Other languages: case and punctuation only; a spelled number is not a digit.
    assert normalise("Ma sœur habite à Marseille, n'est-ce pas ?", "fr") == ["ma", "sœur", "habite", "à", "marseille", "n", "est", "ce", "pas"]
    assert normalise("um neun Uhr", "de") != normalise("um 9 Uhr", "de")


def test_word_error_rate_counts_substitutions_deletions_and_insertions():
    assert edit_distance("a b c d".split(), "a x c d e".split()) == 2
    assert edit_distance("a b".split(), []) == 2 and edit_distance([], "a".split()) == 1
    rows = [
        {"model": "m1", "lang": "en", "edits": 1, "ref_words": 10, "seconds": 1.0, "noise": False, "language": "en", "audio_seconds": 6},
        {"model": "m1", "lang": "de", "edits": 3, "ref_words": 10, "seconds": 2.0, "noise": True, "language": "en", "audio_seconds": 6},
    ]
    figures = summarise(rows, {"m1": 0.5}, "dev")
    got = figures["models"]["m1"]
    assert got["wer"] == {"de": 0.3, "en": 0.1} and got["language_right"] == {"de": 0.0, "en": 1.0}
    assert got["median_s"] == 1.5 and got["load_s"] == 0.5 and figures["meets_target"] is False  # German over 20 %


def test_the_subcommand_is_registered():
    args = build_parser().parse_args(["asr", "--split", "held-out", "--limit", "2"])
    assert args.split == "held-out" and args.limit == 2 and args.main.__module__ == "hgpt_magic.bench.asr"
