"""An engine that is a server speaking the OpenAI chat API: another Iris, llama-server, vLLM, Ollama,
LM Studio, or Iris's own engine worker (app.worker). It streams replies, measures them, and turns every
way a server can fail into one plain sentence.

What differs between servers, and what this client does about it:
- images always go in the portable form {"type": "image_url", "image_url": {"url": "data:…"}} (Ollama
  takes only base64; vLLM and llama-server take it too, and hash the bytes for their own caches);
- Iris's extensions (the conversation id for KV snapshots, exact figures) are sent only to an Iris;
- servers that do not report context size or image cost get none assumed: nothing is fitted client-side,
  and a server's own "too long" or "too many images" error is shown as it says it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from app import errors
from app.chat import Conversation, GenParams, Reply, ReplyStats
from app.images import PreparedImage
from app.openai_format import app_error, conversation_messages, data_url, stats_from
from app.webguard import is_loopback

logger = logging.getLogger(__name__)


class ServerUnreachable(errors.AppError):
    """The server did not answer: refused, timed out, or the connection broke."""


@dataclass
class RemoteModel:
    """A model a server offers, with what Iris knows of it (0: the server did not say)."""

    name: str
    server: str
    n_ctx: int = 0
    max_images: int = 8
    image_tokens: int = 0
    chat_format: str = "server's own"
    device_lm: str = "server"
    device_mmproj: str = "server"
    backend: str = "remote"
    extra_buffers: bool = True
    vision: bool = True


class RemoteEngine:
    """The Engine protocol over HTTP to an OpenAI-compatible server at url (…/v1 or the bare host)."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 600.0):
        self.timeout = timeout
        self.model: Any = None
        self.is_iris = False
        self._active: set[Reply] = set()
        self._lock = threading.Lock()
        self._http: Any = None
        # A server elsewhere: first token and speed as measured here, the device named as that server.
        # Iris's own model process reports its own exact figures instead.
        self.measure_here = True
        self._connect(url, api_key)

    def _connect(self, url: str, api_key: str | None) -> None:
        """Talk to url from now on (with api_key as a Bearer token)."""
        base = url.rstrip("/")
        self.root = base[:-3] if base.endswith("/v1") else base
        self.api_key = api_key
        host = httpx2.URL(self.root).host
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        old = self._http
        # A proxy set for the internet must not carry requests meant for this machine.
        self._http = httpx2.Client(base_url=self.root, headers=headers, trust_env=not is_loopback(host),
                                   timeout=httpx2.Timeout(self.timeout, connect=10.0))
        if old is not None:
            old.close()

    # -- requests ----------------------------------------------------------------------------------------

    def _where(self) -> str:
        return errors.printable(self.root, 80)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx2.HTTPError as exc:
            raise self._unreachable(exc) from None
        if r.status_code >= 400:
            raise self._refused(r.status_code, r.content)
        try:
            return r.json()
        except ValueError:
            raise errors.AppError(f"The server at {self._where()} answered something that is not JSON "
                                  f"(HTTP {r.status_code}). Is this address an OpenAI-compatible API?") from None

    def _unreachable(self, exc: Exception) -> errors.AppError:
        if isinstance(exc, httpx2.TimeoutException):
            return ServerUnreachable(f"The server at {self._where()} did not answer in time ({type(exc).__name__}). "
                                     "It may be busy or loading a model; try again.")
        if isinstance(exc, httpx2.ConnectError):
            return ServerUnreachable(f"Iris cannot reach the server at {self._where()} (connection refused or no "
                                     "route). Is it running, and are the address and port right?")
        return ServerUnreachable(f"The connection to {self._where()} broke ({type(exc).__name__}: "
                                 f"{errors.printable(str(exc), 120)}).")

    def _refused(self, status: int, content: bytes) -> errors.AppError:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
        if status in (401, 403):
            return errors.AppError(f"The server at {self._where()} refused the request (HTTP {status}): it needs "
                                   "an API key, or this one is wrong. Give it with --api-key or in the Models tab.")
        err = app_error(status, body)
        text = str(err).lower()
        if status == 404 and not isinstance(err, errors.ModelNotFound) and "model" not in text:
            return errors.AppError(f"{self._where()} has no OpenAI chat API (HTTP 404). Give the server's base "
                                   "address, e.g. http://host:8000/v1.")
        if any(w in text for w in ("multimodal", "image input", "vision", "does not support image", "mmproj")):
            name = self.model.name if self.model else "This model"
            return errors.UnsupportedImage(f"{name} on {self._where()} does not take images (the server says: "
                                           f"{errors.printable(str(err), 200)}). Pick a vision model.")
        if "image" in text and ("at most" in text or "too many" in text or "limit" in text):
            # vLLM: "At most 1 image(s) may be provided in one prompt" (--limit-mm-per-prompt).
            return errors.TooManyImages(f"The server at {self._where()} takes fewer images per conversation "
                                        f"(it says: {errors.printable(str(err), 200)}). Send fewer, or start a "
                                        "new chat.")
        if type(err) is errors.AppError and not self.is_iris:
            # Another server's own words, which may not say who is speaking.
            return errors.AppError(f"The server at {self._where()} could not answer (HTTP {status}): {err}")
        return err

    # -- models ------------------------------------------------------------------------------------------

    def models(self) -> list[RemoteModel]:
        """The models the server offers."""
        body = self._request("GET", "/v1/models", timeout=5.0)  # the page lists these: never hang it
        data = body.get("data") if isinstance(body, dict) else None
        out = []
        for m in data if isinstance(data, list) else []:
            if not isinstance(m, dict) or not isinstance(m.get("id"), str):
                continue
            caps = m.get("capabilities")
            iris = m.get("iris")
            if isinstance(iris, dict):
                self.is_iris = True
            vision = not isinstance(caps, list) or bool({"vision", "multimodal"} & set(map(str, caps)))
            out.append(RemoteModel(name=m["id"], server=self.root, vision=vision))
        return out

    def select(self, name: str | None = None) -> RemoteModel:
        """Use the named model (or the server's only or loaded one) for the replies that follow."""
        offered = self.models()
        if not offered:
            raise errors.ModelNotFound(f"The server at {self._where()} offers no models.")
        if name:
            found = next((m for m in offered if m.name == name), None)
            if found is None:
                raise errors.ModelNotFound(f"The server at {self._where()} has no model {errors.printable(name, 80)}"
                                           f"; it offers {', '.join(m.name for m in offered)}.")
        else:
            found = offered[0]
        self.model = found
        return found

    def load(self, lm_path: str | Path, mmproj_path: str | Path, **kwargs: object) -> object:
        """A server loads its own files: pick one of its models by name instead."""
        raise errors.AppError(f"Iris cannot load files on the server at {self._where()}; pick one of its models.")

    # -- replies -----------------------------------------------------------------------------------------

    def request_body(self, conv: Conversation, params: GenParams, session: str | None, stream: bool) -> dict:
        """The chat-completions body for conv (Iris's extensions only for an Iris)."""
        body: dict[str, Any] = {
            "model": self.model.name if self.model else "", "messages": conversation_messages(conv, iris=self.is_iris),
            "stream": stream, "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True  # llama-server and Iris honour it; benchmarks only
        if self.is_iris and session:
            body["iris"] = {"session": session}
        return body

    def stream_reply(self, conv: Conversation, params: GenParams | None = None,
                     session: str | None = None) -> Reply:
        """The server's reply to conv, streamed; stats from the server when it reports them, else measured."""
        stats = ReplyStats(device_lm=f"server {self._where()}", device_mmproj="server")
        cancel = threading.Event()
        reply = Reply(self._stream(lambda: reply, conv, params or GenParams(), session, stats, cancel), stats,
                      cancel=cancel)
        return reply

    def _stream(self, reply_of: Callable[[], Reply], conv: Conversation, params: GenParams, session: str | None,
                stats: ReplyStats, cancel: threading.Event) -> Iterator[str]:
        reply = reply_of()  # the Reply this generator feeds (it is made first, so it is asked for here)
        if self.model is None:
            raise errors.NoModelLoaded("No model is picked on this server. Pick one first.")
        body = self.request_body(conv, params, session, stream=True)
        t0 = time.perf_counter()
        t_first = t_last = None
        n = 0
        finish = "end"
        started = False
        with self._lock:
            self._active.add(reply)
        try:
            with self._http.stream("POST", "/v1/chat/completions", json=body) as r:
                if r.status_code >= 400:
                    raise self._refused(r.status_code, r.read())
                for line in r.iter_lines():
                    if cancel.is_set():
                        finish = "stopped"
                        break  # leaving the block closes the stream: the server cancels its reply
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    if "error" in event:
                        raise self._refused(400, data.encode())
                    choices = event.get("choices") or []
                    delta = choices[0].get("delta", {}) if choices and isinstance(choices[0], dict) else {}
                    text = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(text, str) and "role" not in delta:
                        now = time.perf_counter()
                        if t_first is None:
                            t_first = now
                        t_last = now
                        n += 1
                        if not started:  # as the engine does: a reply starts at its first visible character
                            text = text.lstrip()
                            started = bool(text)
                        if text:
                            yield text
                    if choices and choices[0].get("finish_reason") == "length":
                        finish = "length"
                    if "usage" in event or "timings" in event or "iris" in event:
                        notice = stats_from(event, stats)
                        if notice:
                            reply.notice = notice
        except httpx2.HTTPError as exc:
            self._measured(stats, t0, t_first, t_last, n, final=False)
            stats.finish_reason = "interrupted"
            raise self._unreachable(exc) from None
        finally:
            with self._lock:
                self._active.discard(reply)
        self._measured(stats, t0, t_first, t_last, n, final=True)
        if finish == "stopped" or not stats.finish_reason:
            stats.finish_reason = finish

    def _measured(self, stats: ReplyStats, t0: float, t_first: float | None, t_last: float | None, n: int,
                  final: bool) -> None:
        """Fill in what the client measured: always for a server elsewhere, else when the server's own
        figures never came (the stream broke)."""
        if not stats.completion_tokens:
            stats.completion_tokens = n
        if self.measure_here or not final:
            # First token and speed as this user sees them: measured here, the network included.
            stats.ttft_s = (t_first - t0) if t_first is not None else time.perf_counter() - t0
            if n > 1 and t_first is not None and t_last is not None and t_last > t_first:
                stats.decode_tok_s = (n - 1) / (t_last - t_first)
        if self.measure_here:
            where = f"server {self._where()}"
            if stats.device_lm and not stats.device_lm.startswith("server"):
                where += f" ({stats.device_lm})"
            stats.device_lm = where

    def count_tokens(self, conv: Conversation) -> int:
        """Context cells the prompt takes (only an Iris worker can say; other servers fit their own)."""
        return 0

    def image_cost(self, image: PreparedImage) -> int:
        """Tokens one image takes, when the server can say (0: it cannot)."""
        return 0

    def stop(self) -> None:
        """End every reply this client is streaming (each at its next token)."""
        with self._lock:
            active = list(self._active)
        for reply in active:
            reply.cancel()

    def unload(self) -> None:
        """Stop using the server's model (the server keeps it loaded)."""
        self.stop()
        self.model = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


__all__ = ["RemoteEngine", "RemoteModel", "ServerUnreachable", "data_url"]
