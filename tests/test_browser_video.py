"""A video dropped in the browser: its frames and their token cost under the input box before sending, the
frames as a strip in the chat, the real engine's encode time under the reply."""

from __future__ import annotations

from browserkit import browser_page, needs_chromium, shot
from servekit import serving
from videos import moving_square

from app.services import build_services

pytestmark = needs_chromium


def test_a_video_shows_its_frames_and_cost_then_goes_out_as_a_strip(models_dir, tmp_path):
    clip = moving_square(tmp_path / "square.mp4", seconds=5, fps=10, size=(160, 120))
    services = build_services(models_dir, with_history=True)  # the real engine on the tiny pair
    services.update_settings(max_tokens=16)
    with serving(services, 7995) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=30000)
        pg.locator("#iris-input input[type=file]").set_input_files([str(clip)])
        line = pg.locator("#iris-image-cost", has_text="5 frames at 0:00, 0:01, 0:02, 0:03, 0:04")
        line.wait_for(timeout=20000)
        assert "5 × 16 = 80 tokens" in line.inner_text()
        strip = pg.locator("#iris-image-cost .iris-strip img")
        assert strip.count() == 5 and strip.nth(4).get_attribute("alt") == "video frame at 0:04"
        shot(pg, "video-before-sending")
        pg.locator("#iris-input textarea").fill("What happens?")
        pg.locator("#iris-input textarea").press("Enter")
        pg.locator("#iris-chat .iris-stats-line", has_text="image encode").wait_for(timeout=60000)
        frames = pg.locator("#iris-chat .gallery-container img")  # one strip in the question's bubble
        frames.first.wait_for(timeout=10000)
        assert frames.count() == 5
        assert frames.nth(2).get_attribute("alt") == "video frame at 0:02"
        boxes = [frames.nth(i).bounding_box() for i in range(5)]
        assert len({round(b["y"]) for b in boxes}) == 1 and boxes[0]["x"] < boxes[4]["x"]  # one row, in order
        assert pg.locator("#iris-chat .gallery-container", has_text="0:04").count() == 1  # each frame's time
        assert pg.evaluate("() => window.irisCopyAll()").startswith("You: [video: 5 frames]\nWhat happens?")
        frames.first.scroll_into_view_if_needed()
        shot(pg, "video-strip")
        stored = services.history.get(services.history.list()[0].id).messages
        assert stored[0].frames == [0.5, 1.5, 2.5, 3.5, 4.5] and stored[1].stats["images_encoded"] == 5


def test_the_app_as_launched_answers_about_a_video_with_the_demo_model(tmp_path):
    """`iris serve` as the launcher starts it (the model in its own process), the bundled demo model loaded at
    start: a red square's video dropped in, the colour named."""
    from browserkit import iris_server

    clip = moving_square(tmp_path / "red-square.mp4", seconds=4, fps=10, size=(224, 224), colour=(220, 40, 40),
                         background=(225, 225, 225))
    (tmp_path / "models").mkdir()
    with iris_server(tmp_path / "models", tmp_path / "home") as (url, _proc), browser_page(url) as pg:
        pg.get_by_role("tab", name="Chat").click()  # a first start opens on the Models tab
        pg.locator("#iris-status", has_text="Loaded").wait_for(timeout=60000)
        pg.locator("#iris-input input[type=file]").set_input_files([str(clip)])
        pg.locator("#iris-image-cost", has_text="4 frames at 0:00, 0:01, 0:02, 0:03").wait_for(timeout=30000)
        pg.locator("#iris-input textarea").fill("What colour is the square?")
        pg.locator("#iris-input textarea").press("Enter")
        pg.locator("#iris-chat .bot-row", has_text="The square is red.").wait_for(timeout=60000)
        assert pg.locator("#iris-chat .gallery-container img").count() == 4
        shot(pg, "demo-video-answer")
