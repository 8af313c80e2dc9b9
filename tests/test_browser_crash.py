"""The model process killed mid-reply, seen in headless Chromium: the page stays, says what happened, keeps
the partial reply, and the next question is answered by the restarted process (real engine, tiny pair)."""

from __future__ import annotations

import os
import signal
import time

from browserkit import browser_page, needs_chromium, shot
from servekit import serving

from app.chat import GenParams
from app.services import build_services

pytestmark = needs_chromium


def test_kill_9_of_the_model_process_mid_reply(models_dir, tmp_path):
    services = build_services(models_dir, with_history=True, worker=True)
    with serving(services, 7960) as port, browser_page(f"http://127.0.0.1:{port}/") as pg:
        pg.locator("#iris-load").click()
        pg.locator("#iris-status", has_text="Loaded tiny-llava").wait_for(timeout=30000)
        services.params = GenParams(temperature=0.0, max_tokens=1900, seed=1, ignore_eos=True)
        services.engine.timeout = 600
        pg.locator("#iris-input textarea").fill("Tell me everything")
        pg.locator("#iris-input textarea").press("Enter")
        pg.locator("#iris-chat .bot-row").first.wait_for(timeout=20000)
        while not services._running:
            time.sleep(0.01)
        time.sleep(0.2)
        os.kill(services.engine.pid, signal.SIGKILL)
        pg.get_by_text("Iris restarted it. Your conversation is saved", exact=False).first.wait_for(timeout=20000)
        shot(pg, "model-process-crashed")
        cid = services.history.list()[0].id
        msgs = services.history.get(cid).messages
        assert [m.role for m in msgs] == ["user", "assistant"] and msgs[1].text
        assert msgs[1].stats["finish_reason"] == "interrupted"
        pg.get_by_text("interrupted", exact=False).first.wait_for(timeout=10000)  # under the kept reply
        services.params = GenParams(temperature=0.0, max_tokens=6, seed=1, ignore_eos=True)
        pg.locator("#iris-input textarea").fill("Are you back?")
        pg.locator("#iris-input textarea").press("Enter")
        for _ in range(300):
            msgs = services.history.get(cid).messages
            if len(msgs) == 4:
                break
            time.sleep(0.1)
        assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
        assert msgs[3].stats["completion_tokens"] == 6 and services.engine.restarts == 1
