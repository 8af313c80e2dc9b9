"""What a reload shows, in headless Chromium: the saved settings (not the server's start values), model lists
as the folder is now, and at start the last model (or the only one) loaded."""

from __future__ import annotations

import shutil

from app.services import build_services
from browserkit import browser_page, needs_chromium, shot
from fakeengine import FakeEngine
from servekit import serving

pytestmark = needs_chromium


def settings_shown(pg) -> list[str]:
    pg.locator("#iris-settings").get_by_text("Settings").first.click()
    boxes = pg.locator("#iris-settings input[type=number]")
    boxes.first.wait_for(timeout=10000)
    return [boxes.nth(i).input_value() for i in range(3)]  # temperature, top p, max tokens


def test_a_reload_shows_what_is_saved_and_what_is_installed(models_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-llava", models / "tiny-llava")
    services = build_services(models, engine=FakeEngine(), with_history=True)
    with serving(services, 7920) as port:
        url = f"http://127.0.0.1:{port}/"
        with browser_page(url) as pg:
            # The only model installed is loaded at start, without pressing Load.
            pg.locator("#iris-status", has_text="Loaded tiny-llava").wait_for(timeout=20000)
            assert settings_shown(pg) == ["0.2", "0.95", "512"]
        # Another tab (or the CLI) saves new settings and a second model appears in the folder.
        services.update_settings(temperature=0.7, max_tokens=256, system_prompt="Be brief.")
        shutil.copytree(models / "tiny-llava", models / "second")
        for f in (models / "second").iterdir():
            f.rename(f.with_name(f.name.replace("tiny-llava", "second")))
        with browser_page(url) as pg:
            pg.locator("#iris-status", has_text="Loaded tiny-llava").wait_for(timeout=20000)
            assert settings_shown(pg) == ["0.7", "0.95", "256"]
            assert pg.locator("#iris-system textarea").input_value() == "Be brief."
            pg.get_by_label("Model", exact=True).click()
            pg.get_by_role("option", name="second").wait_for(timeout=5000)
            pg.keyboard.press("Escape")
            pg.get_by_role("tab", name="Models").click()
            pg.locator("#iris-installed", has_text="second").wait_for(timeout=5000)
            shot(pg, "reload-shows-saved-state")
    # After a restart, the model used last is loaded again (two are installed now).
    services = build_services(models, engine=FakeEngine(), with_history=True)
    services.update_settings(last_model="second")
    with serving(services, 7920) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded second").wait_for(timeout=20000)
