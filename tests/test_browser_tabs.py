"""Real use in headless Chromium: a question sent while a reply streams is refused in words and kept in the
box (never lost, never answered out of order); the same image attached twice goes out twice; Stop in one tab
ends only that tab's reply; a model loaded in one tab is named in the other tab's status line."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from browserkit import browser_page, needs_chromium, shot
from fakeengine import FakeEngine
from servekit import serving

from app.services import build_services

pytestmark = needs_chromium

LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"


def ask(pg, text: str) -> None:
    pg.locator("#iris-input textarea").fill(text)
    pg.locator("#iris-input textarea").press("Enter")


def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_question_sent_while_a_reply_streams_is_kept_and_answered_in_order(models_dir, tmp_path):
    engine = FakeEngine([LONG, "The second answer."], delay=0.15)
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7960) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
        ask(pg, "First question")
        pg.locator("#iris-chat .bot-row", has_text="one two").wait_for(timeout=20000)
        ask(pg, "Second question")
        pg.get_by_text("still answering in this chat", exact=False).first.wait_for(timeout=10000)
        assert pg.locator("#iris-input textarea").input_value() == "Second question"  # kept to send again
        shot(pg, "busy-question-refused")
        pg.locator("#iris-chat .bot-row", has_text="sixteen").wait_for(timeout=30000)
        cid = services.history.list()[0].id
        wait_until(lambda: not services.answering(cid))
        pg.locator("#iris-input textarea").press("Enter")
        pg.locator("#iris-chat .bot-row", has_text="The second answer.").wait_for(timeout=20000)
        msgs = services.history.get(cid).messages
        assert [(m.role, m.text) for m in msgs] == [
            ("user", "First question"), ("assistant", LONG), ("user", "Second question"),
            ("assistant", "The second answer.")]
        assert [t.text for t in engine.asked[-1].turns] == ["First question", LONG, "Second question"]


def test_the_same_image_attached_again_goes_out_again(models_dir, images):
    engine = FakeEngine(["A red square.", "Still red."])
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7965) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
        for n in range(2):
            with pg.expect_file_chooser() as chooser:
                pg.locator("#iris-input [data-testid=upload-button]").click()
            # A browser fires no change event when the picked file equals the input's current value, so the
            # input must be empty as the picker opens (Gradio 6.31's upload button empties it).
            assert pg.evaluate("() => document.querySelector('#iris-input input[type=file]').value") == ""
            chooser.value.set_files(str(images["red"]))
            pg.locator("#iris-input img").first.wait_for(timeout=10000)
            ask(pg, f"question {n}")
            pg.locator("#iris-chat .bot-row").nth(n).wait_for(timeout=20000)
            wait_until(lambda n=n: len(engine.asked) == n + 1)
            assert len(engine.asked[-1].turns[-1].images) == 1


def test_stop_ends_only_this_tabs_reply_and_a_model_switch_is_named_in_the_other_tab(models_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-llava", models / "tiny-llava")
    shutil.copytree(models / "tiny-llava", models / "second")
    for f in (models / "second").iterdir():
        f.rename(f.with_name(f.name.replace("tiny-llava", "second")))
    engine = FakeEngine([LONG, "Answer in tab two."], delay=0.15)
    services = build_services(models, engine=engine, with_history=True)
    services.update_settings(last_model="tiny-llava")
    with serving(services, 7970) as port:
        url = f"http://127.0.0.1:{port}/"
        with browser_page(url) as one:
            two = one.context.browser.new_context().new_page()  # a second window: its own Gradio session
            two.goto(url)
            for pg in (one, two):
                pg.locator("#iris-status", has_text="Loaded tiny-llava").wait_for(timeout=20000)
            ask(one, "Tab one asks")
            one.locator("#iris-chat .bot-row", has_text="one two").wait_for(timeout=20000)
            two.locator("#iris-new-chat").click()
            two.locator("#iris-stop").click()  # nothing of tab two's is running
            two.get_by_text("Nothing is being answered in this chat", exact=False).first.wait_for(timeout=10000)
            one.locator("#iris-chat .bot-row", has_text="sixteen").wait_for(timeout=30000)
            cid = services.history.list()[0].id
            wait_until(lambda: len(services.history.get(cid).messages) == 2)
            assert services.history.get(cid).messages[-1].stats["finish_reason"] != "stopped"

            # Tab two loads the other model: tab one's status line names it within a few seconds.
            two.locator("#iris-model input").click()
            two.get_by_role("option", name="second").click()
            two.locator("#iris-load").click()
            two.locator("#iris-status", has_text="Loaded second").wait_for(timeout=20000)
            one.locator("#iris-status", has_text="Loaded second").wait_for(timeout=10000)
            one.get_by_text("was loaded in another window", exact=False).first.wait_for(timeout=10000)
            shot(one, "model-switched-in-another-tab")


def test_regenerate_and_edit_keep_versions_that_the_arrows_bring_back(models_dir, images):
    engine = FakeEngine(["A red square.", "Another answer.", "A square, edited."])
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7975) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
        pg.locator("#iris-input input[type=file]").set_input_files([str(images["red"])])
        pg.locator("#iris-input img").first.wait_for(timeout=10000)
        ask(pg, "What is it?")
        pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=20000)
        pg.locator("#iris-regenerate").click()
        pg.locator("#iris-chat .bot-row", has_text="Another answer.").wait_for(timeout=20000)
        nav = pg.locator("#iris-chat .bot-row .iris-versions")
        nav.get_by_text("2/2").wait_for(timeout=10000)
        nav.get_by_role("button", name="Previous version").click()
        pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=10000)
        nav.get_by_text("1/2").wait_for(timeout=10000)
        assert pg.locator("#iris-chat .bot-row", has_text="Another answer.").count() == 0

        # Edit the question: a second version of it, answered; the first comes back with its newest answer.
        pg.locator("#iris-chat .user-row").last.hover()
        pg.locator("#iris-chat button[aria-label='Edit']").last.click()
        pg.locator("#iris-chat textarea").first.fill("What shape is it?")
        pg.locator("#iris-chat button[aria-label='Submit']").first.click()
        pg.locator("#iris-chat .bot-row", has_text="A square, edited.").wait_for(timeout=20000)
        user_nav = pg.locator("#iris-chat .user-row .iris-versions")
        user_nav.get_by_text("2/2").wait_for(timeout=10000)
        assert len(engine.asked[-1].turns[-1].images) == 1  # the edited question keeps its image
        shot(pg, "chat-with-a-branch")
        user_nav.get_by_role("button", name="Previous version").click()
        pg.locator("#iris-chat .user-row", has_text="What is it?").wait_for(timeout=10000)
        pg.locator("#iris-chat .bot-row", has_text="Another answer.").wait_for(timeout=10000)
        cid = services.history.list()[0].id
        assert [m.text for m in services.history.get(cid).messages] == ["What is it?", "Another answer."]
        # Search finds text in the other branch too.
        pg.locator("#iris-search textarea, #iris-search input").first.fill("edited")
        pg.locator("#iris-conversations", has_text="What is it?").wait_for(timeout=10000)


def test_what_a_person_needs_is_on_screen_on_a_laptop_and_a_phone(models_dir):
    engine = FakeEngine(["A red square."])
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7980) as port:
        url = f"http://127.0.0.1:{port}/"
        with browser_page(url, width=1366, height=900) as pg:
            pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
            ask(pg, "What is it?")
            pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=20000)
            for sel in ("#iris-input", "#iris-stop", "#iris-regenerate", "#iris-settings"):
                box = pg.locator(sel).bounding_box()
                assert box and box["y"] + box["height"] <= 900, (sel, box)  # above the fold
            pg.locator("#iris-chat button[aria-label='New chat']").wait_for(timeout=5000)  # the bin says what it does
            shot(pg, "laptop-1366x900")
        with browser_page(url, width=390, height=844) as pg:
            pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
            pg.wait_for_timeout(800)
            shot(pg, "phone-at-start")
            box = pg.locator("#iris-input").bounding_box()
            assert box and box["y"] + box["height"] <= 844, box
            sidebar = pg.locator("#iris-sidebar")
            assert "open" not in (sidebar.get_attribute("class") or "")
            sidebar.locator("button.toggle-button").click()
            pg.wait_for_function("() => document.querySelector('#iris-sidebar').classList.contains('open')")
            pg.locator("#iris-new-chat").click()
            pg.wait_for_function("() => !document.querySelector('#iris-sidebar').classList.contains('open')",
                                 timeout=5000)
            shot(pg, "phone-after-new-chat")


AXE = Path.home() / ".cache" / "Iris" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def axe_problems(pg) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    pg.add_script_tag(path=str(AXE))
    result = pg.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} - {v['nodes'][0]['html'][:120]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_a_keyboard_and_a_screen_reader_can_use_it(models_dir, images):
    from app.history import StoredMessage

    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (.ci/run installs it from npm)")
    engine = FakeEngine(["A red square."])
    services = build_services(models_dir, engine=engine, with_history=True)
    for i in range(22):
        cid = services.history.create()
        services.history.append(cid, StoredMessage("user", f"question {i}"))
    with serving(services, 7985) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
        pg.locator("#iris-conversations", has_text="question 3").wait_for(timeout=20000)
        # The conversation list is one Tab stop; the arrow keys move through it and open what they reach.
        pg.locator("#iris-search input, #iris-search textarea").first.focus()
        pg.keyboard.press("Tab")
        assert pg.evaluate("() => document.activeElement.closest('#iris-conversations') !== null")
        pg.keyboard.press("ArrowDown")
        pg.locator("#iris-chat .user-row", has_text="question 20").wait_for(timeout=10000)
        pg.keyboard.press("Tab")
        assert pg.evaluate("() => document.activeElement.closest('#iris-conversations') === null")
        # Shortcuts: new chat, the message box, the help list.
        pg.keyboard.press("Control+Shift+O")
        pg.locator("#iris-chat .user-row").first.wait_for(state="detached", timeout=10000)
        pg.keyboard.press("Shift+Escape")
        assert pg.evaluate("() => document.activeElement.closest('#iris-input') !== null")
        pg.keyboard.press("Control+/")
        pg.locator("#iris-keys", has_text="Stop the reply").wait_for(timeout=5000)
        shot(pg, "keyboard-focus-and-shortcuts")

        pg.locator("#iris-input input[type=file]").set_input_files([str(images["red"])])
        pg.locator("#iris-input img").first.wait_for(timeout=10000)
        ask(pg, "What is it?")
        pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=20000)
        assert pg.locator("#iris-chat img[alt='your image']").count() == 1
        # "Copy all" copies the conversation as text: no temporary upload addresses, no stats lines.
        pg.locator("#iris-chat").get_by_role("button", name="Copy all").click()
        assert pg.evaluate("() => window.irisCopyAll()") == "You: [image]\nWhat is it?\n\nAssistant: A red square."
        problems = axe_problems(pg)
        pg.get_by_role("tab", name="Models").click()
        pg.locator("#iris-catalog").wait_for(timeout=10000)
        problems += axe_problems(pg)
        pg.get_by_role("tab", name="Chat").click()
        pg.locator("#iris-settings").get_by_text("Settings").first.click()
        pg.locator("#iris-system textarea").wait_for(timeout=10000)
        problems += axe_problems(pg)
        assert problems == [], "\n".join(problems)


def test_the_page_speaks_the_browsers_language_and_the_one_picked_in_settings(models_dir):
    from playwright.sync_api import sync_playwright

    from browserkit import CHROMIUM, FLAGS

    engine = FakeEngine(["Ein rotes Quadrat mit vielen Worten darin, die gezählt werden können."])
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7990) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for locale, words in (("de-DE", ("Laden", "Neu erzeugen", "Modelle", "Einstellungen")),
                                  ("en-US", ("Load", "Regenerate", "Models", "Settings"))):
                pg = browser.new_context(locale=locale).new_page()
                pg.goto(f"http://127.0.0.1:{port}/")
                pg.locator("#iris-load", has_text=words[0]).wait_for(timeout=20000)
                pg.locator("#iris-regenerate", has_text=words[1]).wait_for(timeout=5000)
                pg.get_by_role("tab", name=words[2]).wait_for(timeout=5000)
                pg.locator("#iris-settings", has_text=words[3]).wait_for(timeout=5000)
                if locale == "de-DE":
                    # What the server sends speaks German too: status line, placeholder, toast, stats line, help.
                    pg.locator("#iris-status", has_text="geladen").wait_for(timeout=20000)
                    box = pg.locator("#iris-input textarea")
                    assert "Fragen Sie nach einem Bild" in (box.get_attribute("placeholder") or "")
                    pg.locator("#iris-stop").click()
                    pg.get_by_text("In diesem Chat wird gerade nichts beantwortet.").first.wait_for(timeout=10000)
                    ask(pg, "Welche Farbe?")
                    pg.locator("#iris-chat", has_text="erstes Token").wait_for(timeout=20000)
                    pg.locator("#iris-keys summary", has_text="Tastenkürzel").wait_for(timeout=5000)
                    pg.locator("#iris-chat").get_by_role("button", name="Alles kopieren").wait_for(timeout=5000)
                    shot(pg, "german")
                    pg.get_by_role("tab", name="Modelle").click()
                    pg.locator("#iris-recommended", has_text="Empfohlen für diesen Rechner").wait_for(timeout=5000)
                    pg.get_by_text("Arbeitsspeicher · Kontext").first.wait_for(timeout=5000)  # the entry's facts
                    shot(pg, "german-models")
                    pg.get_by_role("tab", name="Chat").click()
                    # Picked in Settings: English, whatever the browser says; and back to the browser's.
                    pg.locator("#iris-settings").get_by_text("Einstellungen").first.click()
                    pick_language(pg, "English")
                    pg.locator("#iris-load", has_text="Load").wait_for(timeout=20000)
                    pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
                    assert "Ask about an image" in (pg.locator("#iris-input textarea").get_attribute("placeholder")
                                                    or "")
                    pg.locator("#iris-chat", has_text="first token").wait_for(timeout=20000)
                    pg.locator("#iris-settings").get_by_text("Settings").first.click()
                    pick_language(pg, "The browser's language")
                    pg.locator("#iris-load", has_text="Laden").wait_for(timeout=20000)
                else:
                    pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)
                    pg.locator("#iris-settings").get_by_text("Settings").first.click()
                    pg.locator("#iris-language").scroll_into_view_if_needed()
                    shot(pg, "settings-language-and-video")
                    pick_language(pg, "Deutsch")
                    pg.locator("#iris-load", has_text="Laden").wait_for(timeout=20000)
                    pg.locator("#iris-status", has_text="geladen").wait_for(timeout=20000)
        finally:
            browser.close()


def pick_language(pg, name: str) -> None:
    """Settings → Language → name (the page reloads in that language)."""
    pg.locator("#iris-language input").click()
    pg.get_by_role("option", name=name).click()
    pg.wait_for_load_state("load")
