"""Shared by the browser tests: start `iris serve` in a subprocess, drive headless Chromium, save screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.cli import free_port
from app.startpage import HEADER as START_HEADER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Debian's chromium, never a downloaded one; no network chatter from the browser itself.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@contextmanager
def iris_server(models_dir: Path, home: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`iris serve` on a free port with its own IRIS_HOME; yields (url, process) once it answers."""
    port = free_port("127.0.0.1", 7900)
    full_env = dict(os.environ, IRIS_HOME=str(home), **env)
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # a pipe nobody reads would fill up and stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--no-browser", "--port", str(port),
             "--models-dir", str(models_dir)], env=full_env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if not r.headers.get(START_HEADER):  # the app itself, not its start page
                        break
                time.sleep(0.1)
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                time.sleep(0.3)
        try:
            yield url, proc
        finally:
            proc.terminate()
            proc.wait(10)
            print(log_path.read_text()[-3000:])


@contextmanager
def browser_page(url: str, width: int = 1280, height: int = 900):
    """A Chromium page opened on url."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": width, "height": height})
        pg.goto(url)
        try:
            yield pg
        finally:
            browser.close()


def shot(page, name: str) -> None:
    """Save a full-page screenshot under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
