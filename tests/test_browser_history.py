"""History in a real browser against a real `iris serve`: a conversation survives a server restart."""

from __future__ import annotations

from browserkit import browser_page, iris_server, needs_chromium
from test_browser import send

pytestmark = needs_chromium


def test_conversations_survive_a_restart(models_dir, images, tmp_path):
    home = tmp_path / "home"
    with iris_server(models_dir, home) as (url, _):
        with browser_page(url) as pg:
            pg.locator("#iris-load").click()
            pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=30000)
            send(pg, "Remember this red one", [images["red"]])
            pg.locator("#iris-chat", has_text="tok/s").wait_for(timeout=60000)
    with iris_server(models_dir, home) as (url, _):
        with browser_page(url) as pg:
            pg.locator("#iris-conversations", has_text="Remember this red one").wait_for(timeout=20000)
            pg.locator("#iris-chat .user-row img").first.wait_for(timeout=20000)
            pg.locator("#iris-chat", has_text="tok/s").wait_for(timeout=20000)  # the reply and its stats
