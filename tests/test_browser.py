"""The first usable UI in headless Chromium against a real `iris serve` on a test model."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserkit import browser_page, iris_server, needs_chromium, shot

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    with iris_server(models_dir, tmp_path_factory.mktemp("browser-home")) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server[0]) as pg:
        yield pg


def send(page, text: str, files: list[Path]) -> None:
    box = page.locator("#iris-input")
    if files:
        box.locator("input[type=file]").set_input_files([str(f) for f in files])
        page.wait_for_timeout(1500)  # the upload finishes before the message can be sent
    box.locator("textarea").fill(text)
    box.locator("textarea").press("Enter")


def test_image_and_question_stream_a_reply(page, server, images):
    page.locator("#iris-load").click()
    page.locator("#iris-status", has_text="Loaded").wait_for(timeout=30000)
    send(page, "What is in this picture?", [images["red"]])
    page.locator("#iris-chat .bot-row").first.wait_for(timeout=30000)
    stats = page.locator("#iris-chat", has_text="tok/s")
    stats.wait_for(timeout=60000)
    assert page.locator("#iris-chat img").count() >= 1
    assert "image encode" in stats.inner_text() and "first token" in stats.inner_text()
    page.locator("#iris-gauge", has_text="Context").wait_for(timeout=10000)
    shot(page, "chat-with-image")
    assert server[1].poll() is None


def test_a_file_that_is_not_an_image_gives_its_message(page, server, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("not really a picture")
    send(page, "and this?", [bad])
    page.get_by_text("holiday.png is not an image", exact=False).first.wait_for(timeout=20000)
    page.wait_for_timeout(500)
    shot(page, "bad-image")
    assert page.locator("#iris-chat .bot-row").count() >= 1  # the conversation is still shown
    assert server[1].poll() is None


def test_bad_model_files_give_their_message(page, server, tiny_pair, tmp_path):
    bad = tmp_path / "half.gguf"
    bad.write_bytes(tiny_pair[0].read_bytes()[:1000])
    page.get_by_role("tab", name="Models").click()
    page.get_by_text("Add my own GGUF files").click()
    page.get_by_label("LM .gguf path").fill(str(bad))
    page.get_by_label("mmproj .gguf path").fill(str(tiny_pair[1]))
    page.get_by_role("button", name="Load these files").click()
    page.locator("#iris-files-status").get_by_text("half.gguf is truncated", exact=False).wait_for(timeout=20000)
    shot(page, "bad-model")
    assert server[1].poll() is None

