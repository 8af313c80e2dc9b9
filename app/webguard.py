"""The door of Iris's web server: it answers only at its own address, only to its own pages, and, when
it listens beyond this computer, only with the key printed at start.

An ASGI wrapper (standard library only) around the whole app, outside Gradio's own CORS handling:
- Host must be a loopback name (127.0.0.1, localhost, [::1]) or the host Iris was bound to; anything
  else (DNS rebinding: a foreign name that resolves to 127.0.0.1) gets 421.
- A request that carries an Origin must come from exactly this origin (scheme, host and port), so a
  page on another site or on another local port cannot read chats or upload files; 'null' is refused.
- With a key (required when bound to a non-loopback address), every request needs it: in the
  'iris_key' cookie, an 'Authorization: Bearer' header, or once as '?key=' (which sets the cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from app.errors import AppError

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
COOKIE = "iris_key"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this computer can reach."""
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def free_port(host: str, start: int, tries: int = 50) -> int:
    """The first port from start on which nothing listens."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AppError(f"No free port between {start} and {start + tries - 1}. Pass --port.")


def new_key() -> str:
    """A fresh random access key."""
    return secrets.token_urlsafe(18)


def split_host(value: str) -> tuple[str, str]:
    """('name', 'port') from a Host header value such as '127.0.0.1:7860' or '[::1]:7860'."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest.lstrip(":")
    name, _, port = value.partition(":")
    return name, port


class HostGuard:
    """Refuse requests for other host names, from other origins, or without the key (see module doc)."""

    def __init__(self, app: Callable[..., Awaitable[None]], bound_host: str, port: int, key: str | None = None,
                 extra_hosts: Iterable[str] = ()):
        self.app = app
        self.port = str(port)
        self.key = key
        bound = bound_host.strip("[]").lower()
        # Bound to every interface: any name may reach us, so the key is what protects the server.
        self.any_host = bound in ("0.0.0.0", "::", "")
        self.hosts = set(LOOPBACK_NAMES) | {bound} | {h.strip("[]").lower() for h in extra_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        name, port = split_host(headers.get("host", ""))
        if not self.any_host and name not in self.hosts:
            await _refuse(scope, send, 421, "This Iris server answers only at its own address "
                                            "(for example http://127.0.0.1:" + self.port + "/).")
            return
        origin = headers.get("origin")
        raw_scheme = str(scope.get("scheme") or "http")
        scheme = {"ws": "http", "wss": "https"}.get(raw_scheme, raw_scheme)
        if origin is not None and not self._same_origin(origin, scheme, name, port):
            await _refuse(scope, send, 403, "Requests from other web pages are not accepted.")
            return
        if self.key is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.get("key")
            if given is not None and hmac.compare_digest(given, self.key):
                await _set_cookie_and_redirect(scope, send, self.key, query)
                return
            if not self._has_key(headers):
                await _refuse(scope, send, 401, "This Iris server needs its access key: open the address "
                                                "with ?key=… that Iris printed when it started.")
                return
        await self.app(scope, receive, send)

    def _same_origin(self, origin: str, scheme: str, host_name: str, host_port: str) -> bool:
        if origin == "null":
            return False
        parts = urlsplit(origin)
        if parts.scheme != scheme or not parts.hostname:
            return False
        o_port = str(parts.port or (443 if parts.scheme == "https" else 80))
        h_port = host_port or ("443" if parts.scheme == "https" else "80")
        return parts.hostname.lower() == host_name and o_port == h_port

    def _has_key(self, headers: dict[str, str]) -> bool:
        assert self.key is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip(), self.key):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no key
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value, self.key)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_redirect(scope: Scope, send: Send, key: str, query: dict[str, str]) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    rest = {k: v for k, v in query.items() if k != "key"}
    location = scope.get("path", "/") + ("?" + urlencode(rest) if rest else "")
    cookie = f"{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


__all__ = ["HostGuard", "is_loopback", "new_key", "split_host", "free_port", "COOKIE"]
