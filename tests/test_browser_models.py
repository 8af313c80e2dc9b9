"""The Models page in headless Chromium: first run lands there, download with a progress bar, cancel, resume, remove."""

from __future__ import annotations

import pytest
from browserkit import browser_page, iris_server, needs_chromium, shot

pytestmark = needs_chromium


@pytest.fixture
def page(hub, tmp_path):
    import os

    hub.state.rate = 2_000_000  # slow enough to watch the bar and press Cancel
    env = {k: os.environ[k] for k in ("HF_ENDPOINT", "IRIS_CATALOG")}
    with iris_server(tmp_path / "models", tmp_path / "home", **env) as (url, proc):
        with browser_page(url) as pg:
            pg.on("dialog", lambda d: d.accept())
            yield pg, proc


def test_first_run_download_cancel_resume_and_remove(page, hub):
    pg, proc = page
    # No model installed: the app opens on the Models page with this machine's pick selected.
    pg.get_by_text("Recommended for this machine").wait_for(timeout=20000)
    assert pg.get_by_role("tab", name="Models").get_attribute("aria-selected") == "true"
    pg.locator("#iris-download").click()
    pg.locator("#iris-downloads .iris-job[data-state=downloading]").wait_for(timeout=20000)
    pg.wait_for_function(
        "() => { const p = document.querySelector('#iris-downloads progress');"
        " return p && p.value > 0 && p.value < p.max; }", timeout=20000)
    # Speed and time left appear once the first second of bytes is measured.
    pg.locator("#iris-downloads .line", has_text="ETA").wait_for(timeout=20000)
    shot(pg, "models-mid-download")
    line = pg.locator("#iris-downloads .line").inner_text()
    assert "MB/s" in line and "ETA" in line
    pg.locator("#iris-cancel-download").click()
    pg.get_by_text("Paused at", exact=False).wait_for(timeout=20000)
    kept = hub.state.sent("test-llava.gguf")
    hub.state.rate = None
    pg.locator("#iris-download").click()
    pg.get_by_text("Installed. Pick it on the Chat tab", exact=False).wait_for(timeout=30000)
    pg.locator("#iris-installed", has_text="test-llava-F32").wait_for(timeout=10000)
    assert hub.state.sent("test-llava.gguf") < kept + hub.lm.size  # the resume did not start over
    shot(pg, "models-installed")
    # The Chat tab's model list picked up the new install without a reload.
    pg.get_by_role("tab", name="Chat").click()
    pg.get_by_label("Model", exact=True).click()
    pg.get_by_role("option", name="test-llava-F32").wait_for(timeout=5000)
    pg.keyboard.press("Escape")
    pg.get_by_role("tab", name="Models").click()
    pg.get_by_label("Remove a model").click()
    pg.get_by_role("option", name="test-llava-F32").click()
    pg.locator("#iris-remove").click()
    pg.locator("#iris-installed", has_text="No models installed yet").wait_for(timeout=10000)
    assert proc.poll() is None


def test_a_server_added_on_the_models_tab_answers_in_the_chat(models_dir, tmp_path, images):
    """Another Iris (its API on a scripted engine) added by address; its model chats from the Chat tab."""
    from fakeengine import FakeEngine
    from servekit import serving

    from app.services import build_services

    far = build_services(models_dir, engine=FakeEngine(["A red square, from far away."]), with_history=True)
    far.load("tiny-llava")
    near = build_services(tmp_path / "none", engine=FakeEngine(), with_history=True)
    with serving(far, 7930) as far_port, serving(near, 7940) as near_port:
        ports = [far_port, near_port]
        with browser_page(f"http://127.0.0.1:{ports[1]}/") as pg:
            pg.get_by_role("tab", name="Models").click()
            pg.get_by_text("Use a model on a server", exact=False).click()
            pg.locator("#iris-server-url input, #iris-server-url textarea").first.fill("http://127.0.0.1:1/v1")
            pg.locator("#iris-add-server").click()
            pg.locator("#iris-server-status", has_text="cannot reach the server").wait_for(timeout=20000)
            pg.locator("#iris-server-url input, #iris-server-url textarea").first.fill(
                f"http://127.0.0.1:{ports[0]}/v1")
            pg.locator("#iris-add-server").click()
            pg.locator("#iris-server-status", has_text="Pick one on the Chat tab").wait_for(timeout=20000)
            shot(pg, "models-server-added")
            pg.get_by_role("tab", name="Chat").click()
            pg.get_by_label("Model", exact=True).click()
            pg.get_by_role("option", name=f"tiny-llava — on http://127.0.0.1:{ports[0]}").click()
            pg.locator("#iris-load").click()
            pg.locator("#iris-status", has_text="on the server").wait_for(timeout=20000)
            pg.locator("#iris-input textarea").fill("What is it?")
            pg.locator("#iris-input textarea").press("Enter")
            pg.locator("#iris-chat .bot-row", has_text="from far away").wait_for(timeout=20000)
            shot(pg, "chat-on-a-server")
        cid = near.history.list()[0].id
        saved = near.history.get(cid).messages[-1]
        assert saved.text == "A red square, from far away." and saved.model.startswith("tiny-llava @ ")
