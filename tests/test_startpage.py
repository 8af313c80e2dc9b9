"""The start page holds Iris's port while Gradio imports: 200 at /, 503 elsewhere, 421 for other hosts,
and the port is free again once it closes."""

from __future__ import annotations

import http.client
import socket

from app.startpage import HEADER, StartPage
from app.webguard import free_port


def get(port: int, path: str, host: str = "127.0.0.1", method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers={"Host": f"{host}:{port}"})
    r = conn.getresponse()
    r.body = r.read()  # type: ignore[attr-defined]
    conn.close()
    return r


def test_the_start_page_answers_at_once_and_lets_go_of_the_port():
    port = free_port("127.0.0.1", 7990)
    page = StartPage("127.0.0.1", port)
    try:
        r = get(port, "/?key=abc")
        assert r.status == 200 and r.getheader(HEADER) == "1"
        assert b"Iris is starting" in r.body and b"location.reload()" in r.body
        api = get(port, "/v1/chat/completions", method="POST")
        assert api.status == 503 and api.getheader("Retry-After") == "2"
        # DNS rebinding: a foreign name that resolves here is refused, as the app's own guard does.
        assert get(port, "/", host="evil.example").status == 421
    finally:
        page.close()
    with socket.socket() as s:  # the app binds right after close() (uvicorn with SO_REUSEADDR, as here)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_iris_serve_shows_the_start_page_first_then_the_app(models_dir, tmp_path):
    import os
    import subprocess
    import sys
    import time

    port = free_port("127.0.0.1", 7995)
    env = dict(os.environ, IRIS_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "app", "--models-dir", str(models_dir), "serve", "--no-browser",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                r = get(port, "/")
            except OSError:
                time.sleep(0.02)
                continue
            seen.append((r.status, r.getheader(HEADER)))
            if r.status == 200 and not r.getheader(HEADER):
                break
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(20)
    assert seen[0] == (200, "1"), seen[:3]  # the start page, long before Gradio is imported
    assert seen[-1] == (200, None), seen[-3:]  # then the app itself, at the same address
