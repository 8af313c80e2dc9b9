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


# Modules whose errors never reach the page: the API's clients and the terminal get English, and catalog, prompt
# and library errors are for developers (the engine words them for people where it calls them).
NOT_SHOWN = {"api.py", "openai_format.py", "cli.py", "bench.py", "installer.py", "worker.py", "startpage.py",
             "webguard.py", "catalog.py", "llamalib.py", "prompts.py", "backend.py"}


def raised_texts(every: bool = False) -> dict[str, str]:
    """Every error text raised (or built) in app/ with an AppError class, as a pattern: {} for each value (every
    text of those modules, with every=True)."""
    import ast

    from app import errors, history

    classes = {n for m in (errors, history) for n in dir(m)
               if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), errors.AppError)}

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = text(node.left), text(node.right)
            return None if left is None or right is None else left + right
        return None

    found = {}
    root = Path(strings.__file__).parent.parent
    for path in sorted(root.rglob("*.py")):
        if path.name in NOT_SHOWN or path.parent.name == "ui":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if every and (t := text(node)) is not None:
                found[t] = f"{path.name}:{getattr(node, 'lineno', 0)}"
            elif isinstance(node, ast.Call) and node.args:
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in classes and (t := text(node.args[0])) is not None:
                    found[t] = f"{path.name}:{node.lineno}"
    return found


def test_every_error_a_person_can_meet_speaks_german_with_its_values_kept():
    raised = raised_texts()
    assert len(raised) > 90
    spoken = speak(None, "de")
    try:
        untranslated = []
        for pattern, where in raised.items():
            example = pattern.replace("{}", "«x{7}»")  # a value with braces, as a file name may have
            german = say(example)
            kept = pattern.count("{}") - ERRORS_SKIPPED.get(pattern, 0)
            if german == example or german.count("«x{7}»") != kept:
                untranslated.append(f"{where}: {pattern}")
        assert not untranslated, "\n".join(untranslated)
        assert say("clip.mp4 has only sound: there is no video track to look at.") == \
            "clip.mp4 enthält nur Ton: es gibt keine Videospur zum Ansehen."
    finally:
        unspeak(spoken)
    assert say("clip.mp4 has only sound: there is no video track to look at.").startswith("clip.mp4 has only")
    written = raised_texts(every=True)
    stale = [k for k in strings.ERRORS if k not in written]
    assert not stale  # an error reworded in the code needs its catalog entry reworded too


# Values the German leaves out on purpose: the English plural ending ('s').
ERRORS_SKIPPED = {"{} accepts at most {} image{} per message; this one has {}. Send them in separate messages.": 1,
                  "This model accepts at most {} image{} per message; this message has {}. Send them in separate "
                  "messages.": 1,
                  "This conversation no longer fits the model's context ({} tokens), so the oldest {} message{} "
                  "were left out of this reply. They are still saved here.": 1}
