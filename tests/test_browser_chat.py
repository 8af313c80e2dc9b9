"""The chat in headless Chromium, on a scripted engine so replies are predictable: drop, paste, stop,
regenerate, edit, reload, export, limits, sanitizing, phone width and dark mode."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from browserkit import browser_page, needs_chromium, shot
from fakeengine import FakeEngine
from servekit import serving

from app.services import build_services

pytestmark = needs_chromium


@pytest.fixture
def app(models_dir, tmp_path):
    """Iris in this process on the fake engine, the tiny pair 'installed'; yields (url, engine, services)."""
    engine = FakeEngine(["A red square.", "Another answer.", "Third answer."])
    services = build_services(models_dir, engine=engine, with_history=True)
    with serving(services, 7950) as port:
        yield f"http://127.0.0.1:{port}/", engine, services


def load_model(pg) -> None:
    pg.locator("#iris-load").click()
    pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=20000)


def drop_files(pg, selector: str, files: list[Path]) -> None:
    """Drag files from the desktop onto an element, as a person does."""
    payload = [{"name": f.name, "b64": base64.b64encode(f.read_bytes()).decode()} for f in files]
    pg.evaluate("""([sel, files]) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, {type: f.name.endsWith('.png') ? 'image/png' : 'text/plain'}));
        }
        const el = document.querySelector(sel);
        for (const type of ['dragenter', 'dragover', 'drop'])
            el.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [selector, payload])


def ask(pg, text: str) -> None:
    pg.locator("#iris-input textarea").fill(text)
    pg.locator("#iris-input textarea").press("Enter")


def bot_texts(pg) -> list[str]:
    return [t.strip() for t in pg.locator("#iris-chat .bot-row .message-content").all_inner_texts()]


def test_drop_ask_stream_stop_regenerate_edit_reload_export(app, images, tmp_path):
    url, engine, services = app
    with browser_page(url) as pg:
        load_model(pg)
        drop_files(pg, "#iris-chat", [images["red"]])
        pg.locator("#iris-input img").first.wait_for(timeout=10000)  # a thumbnail before sending
        # The image's cost is shown before sending, from the engine's own figure.
        pg.locator("#iris-image-cost", has_text="1 image: 16 tokens").wait_for(timeout=10000)
        shot(pg, "chat-image-cost-before-sending")
        ask(pg, "What colour is this?")
        pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=20000)
        pg.get_by_text("first token", exact=False).first.wait_for(timeout=10000)
        assert pg.locator("#iris-chat .user-row img").count() == 1
        assert len(engine.asked[-1].turns[-1].images) == 1
        pg.locator("#iris-gauge", has_text="Context").wait_for(timeout=5000)
        shot(pg, "chat-with-image-and-reply")

        # Stop mid-reply: what arrived is kept.
        engine.delay = 0.3
        engine.replies[1] = "one two three four five six seven eight nine ten eleven twelve"
        ask(pg, "Say more")
        pg.locator("#iris-chat .bot-row", has_text="one two").wait_for(timeout=20000)
        pg.locator("#iris-stop").click()
        pg.get_by_text("stopped", exact=False).first.wait_for(timeout=10000)
        kept = services.history.get(services.history.list()[0].id).messages[-1].text
        assert kept.startswith("one two") and "twelve" not in kept
        engine.delay = 0.0

        # Regenerate replaces the last reply.
        pg.locator("#iris-regenerate").click()
        pg.locator("#iris-chat .bot-row", has_text="Third answer.").wait_for(timeout=20000)
        assert not any("one two" in t for t in bot_texts(pg))

        # Edit the first question: a new version of it, answered; what followed stays on the old version.
        first_user = pg.locator("#iris-chat .user-row").first
        first_user.hover()
        pg.locator("#iris-chat button[aria-label='Edit']").first.click()
        editor = pg.locator("#iris-chat textarea").first
        editor.fill("What shape is this?")
        pg.locator("#iris-chat button[aria-label='Submit']").first.click()
        cid = services.history.list()[0].id
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(services.history.get(cid).messages) != 2:
            time.sleep(0.1)
        pg.locator("#iris-chat .user-row", has_text="Say more").wait_for(state="detached", timeout=20000)
        msgs = services.history.get(cid).messages
        assert [m.role for m in msgs] == ["user", "assistant"] and msgs[0].text == "What shape is this?"
        assert msgs[0].images  # the image stays with the edited question

        # Reload: the conversation is in the sidebar and opens with its messages.
        pg.reload()
        pg.locator("#iris-conversations", has_text="What colour is this?").wait_for(timeout=20000)
        pg.locator("#iris-chat .user-row", has_text="What shape is this?").wait_for(timeout=20000)

        # Export as Markdown (zip) and JSON.
        pg.locator("#iris-conv-actions").get_by_text("This conversation").click()
        with pg.expect_download() as dl:
            pg.locator("#iris-export-json").click()
            pg.locator("#iris-export-file a").first.wait_for(timeout=10000)
            pg.locator("#iris-export-file a").first.click()
        saved = tmp_path / "export.json"
        dl.value.save_as(saved)
        assert '"format": "iris-conversation/2"' in saved.read_text()
        shot(pg, "chat-export")


def test_paste_non_image_limit_and_script_in_a_reply(app, images, tmp_path):
    url, engine, services = app
    engine.replies[0] = ('Here: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
                         "and **bold** and $$x^2$$")
    with browser_page(url) as pg:
        load_model(pg)
        # Paste an image from the clipboard into the box.
        b64 = base64.b64encode(images["blue"].read_bytes()).decode()
        pg.evaluate("""(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
            document.querySelector('#iris-input textarea').dispatchEvent(
                new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
        }""", b64)
        pg.locator("#iris-input img").first.wait_for(timeout=10000)
        ask(pg, "and this one?")
        pg.locator("#iris-chat .bot-row", has_text="bold").wait_for(timeout=20000)
        pg.wait_for_timeout(500)
        assert pg.evaluate("() => window.__pwned") is None  # nothing from a reply ever runs
        assert pg.locator("#iris-chat .bot-row strong", has_text="bold").count() == 1
        assert pg.locator("#iris-chat .bot-row .katex").count() >= 1

        # A file that is not an image.
        bad = tmp_path / "notes.png"
        bad.write_text("not a picture")
        pg.locator("#iris-input input[type=file]").set_input_files([str(bad)])
        pg.wait_for_timeout(1000)
        ask(pg, "what about this?")
        pg.get_by_text("notes.png is not an image", exact=False).first.wait_for(timeout=10000)

        # More images than the model takes in one message.
        pg.locator("#iris-input input[type=file]").set_input_files([])
        five = []
        for i in range(5):
            p = tmp_path / f"img{i}.png"
            p.write_bytes(images["red"].read_bytes())
            five.append(str(p))
        pg.locator("#iris-input input[type=file]").set_input_files(five)
        pg.wait_for_timeout(1500)
        ask(pg, "compare")
        pg.get_by_text("at most 4 images per message", exact=False).first.wait_for(timeout=10000)


def test_phone_width_and_dark_mode(app, images):
    url, engine, services = app
    with browser_page(url + "?__theme=dark", width=390, height=844) as pg:
        load_model(pg)
        pg.locator("#iris-input input[type=file]").set_input_files([str(images["red"])])
        pg.wait_for_timeout(1000)
        ask(pg, "What colour is this?")
        pg.locator("#iris-chat .bot-row", has_text="A red square.").wait_for(timeout=20000)
        pg.wait_for_timeout(500)
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 400  # no sideways scrolling
        assert "open" not in (pg.locator("#iris-sidebar").get_attribute("class") or "")
        shot(pg, "phone-dark")
