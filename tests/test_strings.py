"""The catalog of the page's words: the language chosen per request, German for every sentence the server
sends, and the same fields in both languages (a missing one would raise where the sentence is shown)."""

from __future__ import annotations

import re
from pathlib import Path

from app.ui import strings
from app.ui.strings import PAGE, SCRIPT, SERVER, language, say, speak, unspeak
from app.ui.views import gauge_html, shortcuts_html, stats_line

FIELD = re.compile(r"\{(\w*)\}")


def test_the_language_is_the_one_picked_else_the_browsers_first_that_iris_speaks():
    assert language(None, "de-DE,de;q=0.9,en;q=0.8") == "de"
    assert language(None, "fr-FR, en;q=0.5, de;q=0.7") == "de"
    assert language(None, "fr-FR") == "en"
    assert language(None, None) == "en"
    assert language("en", "de-DE") == "en"
    assert language("de", "en-US") == "de"
    assert language("xx", "de") == "de"  # a made-up cookie is ignored
    assert language(None, "de;q=nonsense, en") == "en"


def test_every_translation_keeps_the_fields_of_its_english():
    for catalog in (PAGE, SERVER, SCRIPT):
        for english, german in catalog.items():
            assert sorted(FIELD.findall(english)) == sorted(FIELD.findall(german)), english


def test_views_speak_the_language_of_the_request_and_english_otherwise():
    stats = {"device_lm": "CPU", "ttft_s": 0.5, "decode_tok_s": 12.0, "completion_tokens": 20,
             "finish_reason": "length"}

    class Usage:
        used, size, images, fraction = 3900, 4096, 2, 0.95

    spoken = speak(None, "de-DE")
    try:
        german = stats_line(stats), gauge_html(Usage()), shortcuts_html()
    finally:
        unspeak(spoken)
    assert german[0] == "CPU · erstes Token 0.50 s · 12.0 Token/s · 20 Token · an der Token-Grenze beendet"
    assert "Kontext 3,900 / 4,096 Token · 2 Bilder — fast voll" in german[1]
    assert "Tastenkürzel" in german[2] and "<kbd>Strg</kbd>" in german[2]
    assert stats_line(stats) == "CPU · first token 0.50 s · 12.0 tok/s · 20 tokens · stopped at the token limit"
    assert say("Nothing is loading.") == "Nothing is loading."


def test_every_sentence_the_ui_says_is_in_the_catalog():
    """Each literal passed to say() in app/ui has its German, so no sentence falls back to English unseen."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(strings.__file__).parent.glob("*.py"))
    said = re.findall(r'say\(\s*"((?:[^"\\]|\\.)*)"((?:\s*"(?:[^"\\]|\\.)*")*)', source)
    assert len(said) > 40
    missing = []
    for first, rest in said:
        text = first + "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', rest))
        text = text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
        if text not in SERVER and text not in PAGE:
            missing.append(text)
    assert not missing
