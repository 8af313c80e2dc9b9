"""Serving the app: Gradio's server on this machine only, behind app.webguard, never with a share link."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from app.services import Services
from app.ui.layout import I18N, build_ui
from app.ui.strings import head_script


def _asset(name: str) -> str:
    """The page's stylesheet or start-up script, kept beside this module."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def theme() -> gr.themes.Base:
    """Gradio's Soft theme with labels dark enough to read (WCAG AA contrast: axe-core's check)."""
    return gr.themes.Soft().set(block_label_text_color="*primary_800", block_title_text_color="*primary_800",
                                button_primary_background_fill="*primary_600",
                                button_primary_background_fill_hover="*primary_700",
                                body_text_color_subdued="*neutral_600")


class HeadFirst:
    """Puts a script first in the app page's <head>, before Gradio's own scripts read the browser's language
    (launch(head=…) is added by Gradio's script later, too late for that)."""

    def __init__(self, app: Any, script: str) -> None:
        self.app, self.script = app, script.encode("utf-8")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") not in ("/", ""):
            await self.app(scope, receive, send)
            return
        start: dict = {}
        body = bytearray()

        async def hold(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            page = bytes(body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            kind = dict(start.get("headers", [])).get(b"content-type", b"")
            if kind.startswith(b"text/html") and b"<head>" in page:
                page = page.replace(b"<head>", b"<head>" + self.script, 1)
            await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, hold)


def launch(services: Services, host: str, port: int, open_browser: bool = False, block: bool = True,
           on_ready: Callable[[], None] | None = None, key: str | None = None,
           fetch_image_urls: bool = False, before_bind: Callable[[], None] | None = None) -> gr.Blocks:
    """Serve the app and its OpenAI-compatible API at /v1 (until Ctrl+C or SIGTERM when block); never
    with a public share link.

    Only requests for this host, from this origin (and with key, when given) reach either: app.webguard.
    before_bind runs just before the server takes the port (the start page lets go of it there).
    """
    from app import config
    from app.api import routes, services_api
    from app.webguard import HostGuard

    assert services.history is not None
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=1)
    favicon = Path(__file__).resolve().parents[2] / "assets" / "iris.png"
    if before_bind is not None:
        before_bind()
    # Uploads go to disk: the page takes files as large as a video; each image is checked for its own limit.
    largest = max(config.max_upload_bytes(), config.max_video_bytes())
    demo.launch(server_name=host, server_port=port, inbrowser=False, share=False, quiet=True,
                show_error=False, css=_asset("iris.css"), js=_asset("iris.js"), theme=theme(), footer_links=[],
                favicon_path=str(favicon) if favicon.exists() else None, max_file_size=largest,
                allowed_paths=[str(services.history.images_dir)], prevent_thread_lock=True, i18n=I18N)
    app = demo.server_app
    # /v1 first: Gradio's own routes never see API paths.
    app.router.routes[0:0] = routes(services_api(services, fetch_urls=fetch_image_urls))
    # Outside everything Gradio built (its CORS layer included): the guard sees each request first.
    inner = HeadFirst(app.middleware_stack or app.build_middleware_stack(), head_script())
    app.middleware_stack = HostGuard(inner, host, port, key)  # type: ignore[assignment]
    if open_browser:
        import webbrowser

        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        webbrowser.open(f"http://{shown}:{port}/" + (f"?key={key}" if key else ""))
    if on_ready is not None:
        on_ready()
    if block:
        try:
            while demo.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return demo
