"""The page a browser gets while Iris starts: Gradio takes seconds to import, so the port answers at once.

A standard-library HTTP server holds Iris's port from the first tenth of a second until the app is built.
GET / answers 200 with a small page that says Iris is starting and reloads itself once the real app
answers (its responses lack the X-Iris-Starting header); anything else (the API, Gradio's routes) gets
503 with Retry-After, so scripts wait rather than read a page. Requests for other host names get 421, as
the real server's guard answers. The page carries no data, so it needs no key; the reload keeps ?key=.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.webguard import LOOPBACK_NAMES, split_host

logger = logging.getLogger(__name__)

HEADER = "X-Iris-Starting"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Iris – starting</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;display:flex;align-items:center;justify-content:center;height:90vh;
      margin:0;background:#fafafa;color:#222}
 @media (prefers-color-scheme: dark){body{background:#111;color:#eee}}
 main{text-align:center} .bar{width:14em;height:4px;margin:1.2em auto;background:#ddd;overflow:hidden;
      border-radius:2px} .bar::after{content:"";display:block;width:35%;height:100%;background:#6d5bd0;
      animation:go 1.1s ease-in-out infinite} @keyframes go{from{margin-left:-35%}to{margin-left:100%}}
 @media (prefers-reduced-motion: reduce){.bar::after{animation:none;width:100%}}
</style></head>
<body><main role="status" aria-live="polite"><h1>Iris is starting…</h1>
<div class="bar" aria-hidden="true"></div>
<p>The chat opens here by itself in a few seconds.</p></main>
<script>
(function poll() {
  fetch(location.href, {cache: "no-store", redirect: "manual"}).then(function (r) {
    if (!r.headers.has("X-Iris-Starting")) { location.reload(); } else { setTimeout(poll, 250); }
  }, function () { setTimeout(poll, 250); });
})();
</script></body></html>
"""


class StartPage:
    """Serve the start page on host:port on a thread until close()."""

    def __init__(self, host: str, port: int):
        bound = host.strip("[]").lower()
        any_host = bound in ("0.0.0.0", "::", "")
        allowed = set(LOOPBACK_NAMES) | {bound}

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                name, _ = split_host(self.headers.get("Host", ""))
                if not any_host and name not in allowed:
                    self._send(421, "text/plain", b"This Iris server answers only at its own address.\n")
                elif self.command == "GET" and self.path.split("?", 1)[0] == "/":
                    self._send(200, "text/html", PAGE.encode())
                else:
                    self._send(503, "text/plain", b"Iris is starting; try again in a few seconds.\n",
                               (("Retry-After", "2"),))

            def _send(self, status: int, kind: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header(HEADER, "1")
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                logger.debug("start page: " + format, *args)

        family = socket.AF_INET6 if ":" in bound else socket.AF_INET
        server_class = type("StartServer", (ThreadingHTTPServer,), {"address_family": family})
        self._server = server_class((bound or "0.0.0.0", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="iris-start-page", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop answering and free the port for the real server."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["StartPage", "HEADER"]
