"""A translation keeps the numbers of its text: read in digits and in words, checked, translated again once."""

from __future__ import annotations

import pytest

from hgpt_magic import testing
from hgpt_magic.experts.base import ExpertContext
from hgpt_magic.experts.llm_tasks import MODEL_ID, LLMExperts
from hgpt_magic.stated_numbers import numbers_kept, stated_numbers, with_digits


def _has_text2num() -> bool:
    try:
        import text_to_num  # noqa: F401
    except ImportError:
        return False
    return True


needs_text2num = pytest.mark.skipif(not _has_text2num(), reason="text2num is not installed")


def test_digits_count_in_any_language_and_separators_do_not_matter():
    assert stated_numbers("Total: 3.60 EUR, room 305", None) == {3, 60, 305}
    assert numbers_kept("It costs 3.60 euros", None, "Es kostet 3,60 Euro", None)
    assert numbers_kept("at 10:30", "xx", "um 10.30 Uhr", "yy")  # languages text2num does not read: digits only
    assert not numbers_kept("Gate 12", None, "Puerta 21", None)
    assert stated_numbers("2 coffees", None) == set()  # small values are left out on both sides (see module)


@needs_text2num
def test_numbers_in_words_are_read_in_the_texts_language():
    assert stated_numbers("The bakery opens at seven", "en") == {7}
    assert stated_numbers("La panadería abre a las ocho", "es") == {8}
    assert stated_numbers("Die Führung beginnt um vierzehn Uhr", "de") == {14}
    assert numbers_kept("Le musée ferme à dix-huit heures.", "fr", "The museum closes at 18:00.", "en")
    assert not numbers_kept("The bakery opens at seven", "en", "La panadería abre a las ocho", "es")
    assert numbers_kept("I have two cats", "en", "Tengo dos gatos", "es")  # lone small numbers stay words
    assert with_digits("Call me at eight, please", "en") == "Call me at 8, please"
    assert with_digits("Call me at eight, please", "ja") == "Call me at eight, please"  # not a text2num language


def _translate(tmp_path, llm, text: str, language: str = "Spanish"):
    ctx = ExpertContext(run_dir=tmp_path, task_id=1, task="translation", llm=llm, languages={"text": "en"})
    [art] = LLMExperts().run("translation", MODEL_ID, {"text": text, "language": language}, ctx)
    return art


@needs_text2num
def test_a_translation_that_changed_a_number_is_made_again_from_the_text_in_digits(tmp_path):
    llm = testing.ScriptedLLM(["La panadería abre a las ocho.", "La panadería abre a las 7."])
    art = _translate(tmp_path, llm, "The bakery opens at seven.")
    assert art.text == "La panadería abre a las 7."
    assert [r["messages"][-1]["content"] for r in llm.requests] == ["The bakery opens at seven.", "The bakery opens at 7."]
    assert art.data == {"translated_twice": "the first translation changed a number"}


@needs_text2num
def test_the_second_translation_is_kept_only_when_it_has_the_numbers_right(tmp_path):
    llm = testing.ScriptedLLM(["La panadería abre a las ocho.", "La panadería abre a las 9."])
    art = _translate(tmp_path, llm, "The bakery opens at seven.")
    assert art.text == "La panadería abre a las ocho."  # the model's own first try, flagged
    assert art.data == {"numbers_differ": [7]}


def test_a_translation_with_its_numbers_right_takes_one_call(tmp_path):
    llm = testing.ScriptedLLM(["La sala 12 está cerrada.", "unused"])
    art = _translate(tmp_path, llm, "Room 12 is closed.")
    assert art.text == "La sala 12 está cerrada." and art.data is None
    assert len(llm.requests) == 1


def test_a_text_with_its_numbers_in_digits_already_is_not_sent_again(tmp_path):
    llm = testing.ScriptedLLM(["La sala 21 está cerrada.", "unused"])
    art = _translate(tmp_path, llm, "Room 12 is closed.")
    assert art.text == "La sala 21 está cerrada." and art.data == {"numbers_differ": [12]}
    assert len(llm.requests) == 1


def test_a_run_of_thousands_of_digits_is_read_without_error():
    assert stated_numbers("9" * 4500, None) == {int("9" * 30)}  # 150 runs of 30 digits (int() refuses 4,301)


@needs_text2num
def test_file_names_and_urls_are_no_statements_and_stay_as_they_are():
    text = "The photo /tmp/run-171/four_seasons.png from https://example.org/p/42 was taken at ten"
    assert stated_numbers(text, "en") == {10}
    assert with_digits(text, "en") == "The photo /tmp/run-171/four_seasons.png from https://example.org/p/42 was taken at 10"


def test_prices_dates_and_fractions_are_prose_not_file_names():
    assert stated_numbers("3.60 EUR on 12/05/2024, open 24/7, see report.pdf or C:\\run5\\x", None) == {60, 2024, 12, 5, 24, 7, 3}
