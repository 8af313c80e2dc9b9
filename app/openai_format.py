"""The OpenAI chat-completions format, both ways, as plain data: a request into Iris's Conversation and
sampling settings, a reply out as a completion or stream chunks with usage and llama-server-style
timings, errors as OpenAI error objects, and a Conversation back into messages for a remote server.

No web framework here: app.api serves these, app.remote sends them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import time
import urllib.request
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields

from app import errors
from app.chat import Conversation, GenParams, ReplyStats, Turn
from app.images import PreparedImage, prepare_image

MAX_STOPS = 4


class ApiError(Exception):
    """A request Iris refuses, with the HTTP status and OpenAI's error type and code."""

    def __init__(self, message: str, status: int = 400, code: str | None = None,
                 type: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.type, self.param = status, code, type, param

    def body(self) -> dict:
        """The JSON body OpenAI's clients read the message from."""
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


# What each AppError means to an API client: status and code.
_ERRORS: list[tuple[type[errors.AppError], int, str]] = [
    (errors.NoModelLoaded, 503, "model_not_loaded"),
    (errors.TooManyImages, 400, "too_many_images"),
    (errors.ContextTooLong, 400, "context_length_exceeded"),
    (errors.UnsupportedImage, 400, "invalid_image"),
    (errors.ModelNotFound, 404, "model_not_found"),
]


def api_error(exc: errors.AppError) -> ApiError:
    """An AppError as the API reports it (its message unchanged)."""
    for kind, status, code in _ERRORS:
        if isinstance(exc, kind):
            return ApiError(str(exc), status, code)
    return ApiError(str(exc), 400, type(exc).__name__)


def app_error(status: int, body: object) -> errors.AppError:
    """An error body from an OpenAI-compatible server back into the AppError it stands for."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message, code = str(err.get("message") or ""), err.get("code")
    elif isinstance(err, str):  # some servers send {"error": "text"}
        message, code = err, None
    else:
        message, code = "", None
    message = errors.printable(message, 500) if message else f"the server answered HTTP {status}"
    for kind, _status, known in _ERRORS:
        if code == known:
            return kind(message)
    if status == 400 and "context" in message.lower() and ("exceed" in message.lower() or "long" in message.lower()):
        return errors.ContextTooLong(message)
    return errors.AppError(message)


@dataclass
class ChatRequest:
    """A chat-completions request as Iris runs it."""

    conv: Conversation
    params: GenParams
    model: str = ""
    stream: bool = False
    include_usage: bool = False
    session: str | None = None  # Iris extension: the conversation, for its KV snapshot
    fit: bool = False  # Iris extension: leave out the oldest turns that do not fit (else: an error)


class ImageMemo:
    """Images by the SHA-256 of the bytes received, so a history sent again is not decoded again."""

    def __init__(self, max_items: int = 256):
        self.max_items = max_items
        self._items: OrderedDict[str, PreparedImage] = OrderedDict()

    def prepare(self, raw: bytes, name: str) -> PreparedImage:
        key = hashlib.sha256(raw).hexdigest()
        img = self._items.get(key)
        if img is None:
            img = prepare_image(raw, name=name)
            self._items[key] = img
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return img


def _image_bytes(url: object, n: int, fetch_urls: bool, max_bytes: int) -> bytes:
    if not isinstance(url, str) or not url:
        raise ApiError(f"Image {n} has no URL: send {{\"type\": \"image_url\", \"image_url\": {{\"url\": "
                       "\"data:image/png;base64,…\"}}.", param="messages")
    if url.startswith("data:"):
        head, sep, payload = url.partition(",")
        if not sep or ";base64" not in head:
            raise ApiError(f"Image {n} is a data: URL without base64 content.", param="messages")
        if len(payload) > max_bytes * 4 // 3 + 4:
            raise ApiError(f"Image {n} is larger than {max_bytes // 2**20} MB.", param="messages")
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise ApiError(f"Image {n} is not valid base64.", param="messages") from None
    if url.startswith(("http://", "https://")):
        if not fetch_urls:
            raise ApiError(f"Image {n} is a web address; Iris does not fetch images from the internet unless "
                           "it is started with --allow-image-urls (nothing leaves this machine by default). "
                           "Send the image itself as a data: URL.", param="messages", code="image_url_refused")
        return _fetch(url, n, max_bytes)
    raise ApiError(f"Image {n}: only data: URLs (and http(s) URLs when allowed) are accepted.", param="messages")


def _fetch(url: str, n: int, max_bytes: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:  # noqa: S310 - http(s) only, checked above
            data = r.read(max_bytes + 1)
    except OSError as exc:
        raise ApiError(f"Image {n} could not be fetched from {errors.printable(url, 80)} ({exc}).",
                       param="messages") from None
    if len(data) > max_bytes:
        raise ApiError(f"Image {n} is larger than {max_bytes // 2**20} MB.", param="messages")
    return data


def _number(body: dict, key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ApiError(f"'{key}' must be a number from {lo} to {hi}.", param=key)
    return float(v)


def parse_chat_request(body: object, defaults: GenParams, memo: ImageMemo, *, fetch_urls: bool = False,
                       max_image_bytes: int = 50 * 2**20) -> ChatRequest:
    """Check a chat-completions body and turn it into a ChatRequest; ApiError says what is wrong."""
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError("'messages' must be a non-empty list.", param="messages")
    for key in ("tools", "functions", "tool_choice", "response_format"):
        if body.get(key):
            raise ApiError(f"'{key}' is not supported by Iris.", param=key)
    if body.get("n") not in (None, 1):
        raise ApiError("Only n=1 is supported.", param="n")
    system: list[str] = []
    turns: list[Turn] = []
    n_image = 0
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise ApiError(f"Message {i} is not an object.", param="messages")
        role = m.get("role")
        content = m.get("content")
        texts: list[str] = []
        images: list[PreparedImage] = []
        labels: list[str] = []  # Iris's own extension: a video frame's time, on its image part
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if content is None and role == "assistant":
            parts = []
        if not isinstance(parts, list):
            raise ApiError(f"Message {i} has content that is neither text nor a list of parts.", param="messages")
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                n_image += 1
                if role != "user":
                    raise ApiError(f"Message {i}: images are taken in user messages only.", param="messages")
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                raw = _image_bytes(url, n_image, fetch_urls, max_image_bytes)
                try:
                    images.append(memo.prepare(raw, f"image {n_image}"))
                except errors.UnsupportedImage as exc:
                    raise ApiError(str(exc), code="invalid_image", param="messages") from None
                label = part.get("iris_label")
                labels.append(" ".join(label.split())[:MAX_LABEL] if isinstance(label, str) else "")
            else:
                raise ApiError(f"Message {i} has a part of type {errors.printable(str(kind), 40)}; Iris takes "
                               "'text' and 'image_url' parts.", param="messages")
        text = "\n".join(texts)
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            if not any(labels):
                labels = []
            if turns and turns[-1].role == role:  # two in a row: one turn, as the chat formats expect
                before = turns[-1]
                both = [lb for lb, _ in before.labelled()] + (labels or [""] * len(images)) \
                    if before.labels or labels else []
                turns[-1] = Turn(role, f"{before.text}\n\n{text}".strip(), before.images + images, both)
            else:
                turns.append(Turn(role, text, images, labels))
        else:
            raise ApiError(f"Message {i} has the role {errors.printable(str(role), 20)}; Iris takes system, "
                           "user and assistant messages.", param="messages")
    if not turns or turns[-1].role != "user":
        raise ApiError("The last message must be the user's.", param="messages")

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ApiError("'max_tokens' must be a positive integer.", param="max_tokens")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(f"'stop' must be a string or a list of up to {MAX_STOPS} strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError("'seed' must be an integer.", param="seed")
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    params = GenParams(
        temperature=defaults.temperature if temperature is None else temperature,
        top_p=defaults.top_p if top_p is None else max(top_p, 0.01),
        top_k=defaults.top_k, repeat_penalty=defaults.repeat_penalty,
        max_tokens=defaults.max_tokens if max_tokens is None else max_tokens,
        seed=seed if seed is not None else defaults.seed, stop=tuple(stops),
        ignore_eos=body.get("ignore_eos") is True,  # llama-server's extension, for benchmarks
    )
    opts = body.get("stream_options")
    raw_ext = body.get("iris")
    ext: dict = raw_ext if isinstance(raw_ext, dict) else {}
    session = ext.get("session")
    model = body.get("model")
    return ChatRequest(
        conv=Conversation(system="\n\n".join(s for s in system if s), turns=turns), params=params,
        model=model if isinstance(model, str) else "",
        stream=bool(body.get("stream")), include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")),
        session=session if isinstance(session, str) and session else None, fit=bool(ext.get("fit")),
    )


FINISH = {"end": "stop", "length": "length", "stopped": "stop", "": "stop"}


def usage(stats: ReplyStats) -> dict:
    """OpenAI's usage object, with the prompt tokens taken from the cache."""
    cached = max(0, stats.prompt_tokens - stats.prompt_tokens_evaluated)
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached}}


def timings(stats: ReplyStats) -> dict:
    """llama-server's timings object, plus the image figures Iris measures."""
    prompt_ms = stats.ttft_s * 1000
    predicted_ms = (stats.completion_tokens / stats.decode_tok_s * 1000) if stats.decode_tok_s else 0.0
    return {"cache_n": max(0, stats.prompt_tokens - stats.prompt_tokens_evaluated),
            "prompt_n": stats.prompt_tokens_evaluated, "prompt_ms": round(prompt_ms, 3),
            "prompt_per_second": round(stats.prompt_tokens_evaluated / stats.ttft_s, 3) if stats.ttft_s else 0.0,
            "predicted_n": stats.completion_tokens, "predicted_ms": round(predicted_ms, 3),
            "predicted_per_second": round(stats.decode_tok_s, 3),
            "image_encode_ms": round(stats.image_encode_s * 1000, 3), "images_encoded": stats.images_encoded,
            "images_cached": stats.images_cached}


def _iris(stats: ReplyStats, notice: str) -> dict:
    return {"stats": {k: v for k, v in asdict(stats).items() if k != "token_ids"}, "notice": notice}


class Completion:
    """The pieces of one reply in OpenAI's shapes (one id and creation time for all its chunks)."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def _base(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, delta: dict, finish: str | None = None) -> dict:
        """A stream chunk carrying delta."""
        return {**self._base("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def last_chunk(self, stats: ReplyStats, notice: str = "") -> dict:
        """The chunk that ends the choice: finish reason, timings and Iris's own figures."""
        return {**self.chunk({}, FINISH.get(stats.finish_reason, "stop")), "timings": timings(stats),
                "iris": _iris(stats, notice)}

    def usage_chunk(self, stats: ReplyStats) -> dict:
        """The extra chunk stream_options.include_usage asks for: no choices, the usage."""
        return {**self._base("chat.completion.chunk"), "choices": [], "usage": usage(stats)}

    def whole(self, text: str, stats: ReplyStats, notice: str = "") -> dict:
        """The non-streamed completion."""
        return {**self._base("chat.completion"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": FINISH.get(stats.finish_reason, "stop")}],
                "usage": usage(stats), "timings": timings(stats), "iris": _iris(stats, notice)}


@functools.lru_cache(maxsize=32)
def data_url(img: PreparedImage) -> str:
    """An image as the portable image_url every server takes (Ollama takes only this form).

    Cached: every turn sends the conversation's images again, and their base64 does not change.
    """
    return "data:image/png;base64," + base64.b64encode(img.png).decode()


MAX_LABEL = 80  # characters of a frame's label ("Frame at 1:02:03:") an Iris takes from a request


def conversation_messages(conv: Conversation, *, iris: bool = False) -> list[dict]:
    """A Conversation as OpenAI messages: images first in their user message, as data: URLs.

    A video frame's time goes before it as a text part, as any server reads it; to an Iris (iris=True) it goes
    on the image part as "iris_label", so the other side puts it back exactly where Iris's own prompt has it.
    """
    out: list[dict] = [{"role": "system", "content": conv.system}] if conv.system else []
    for t in conv.turns:
        if t.images:
            parts: list[dict] = []
            for label, img in t.labelled():
                if label and not iris:
                    parts.append({"type": "text", "text": label})
                part = {"type": "image_url", "image_url": {"url": data_url(img)}}
                if label and iris:
                    part["iris_label"] = label
                parts.append(part)
            out.append({"role": t.role, "content": parts + [{"type": "text", "text": t.text}]})
        else:
            out.append({"role": t.role, "content": t.text})
    return out


def stats_from(event: dict, into: ReplyStats) -> str:
    """Fill into from a final chunk or completion (Iris's own figures, else usage and timings); return its notice."""
    iris = event.get("iris")
    if isinstance(iris, dict) and isinstance(iris.get("stats"), dict):
        names = {f.name for f in fields(ReplyStats)} - {"token_ids"}
        for k, v in iris["stats"].items():
            if k in names and isinstance(v, type(getattr(into, k))):
                setattr(into, k, v)
        return str(iris.get("notice") or "")
    u = event.get("usage")
    if isinstance(u, dict):
        into.prompt_tokens = int(u.get("prompt_tokens") or 0)
        into.completion_tokens = int(u.get("completion_tokens") or into.completion_tokens)
        cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
        if isinstance(cached, int):
            into.prompt_tokens_evaluated = max(0, into.prompt_tokens - cached)
    t = event.get("timings")
    if isinstance(t, dict):
        if isinstance(t.get("prompt_n"), int):
            into.prompt_tokens_evaluated = t["prompt_n"]
        if isinstance(t.get("predicted_per_second"), (int, float)):
            into.decode_tok_s = float(t["predicted_per_second"])
        if isinstance(t.get("image_encode_ms"), (int, float)):
            into.image_encode_s = t["image_encode_ms"] / 1000
    return ""


__all__ = ["ApiError", "ChatRequest", "Completion", "ImageMemo", "api_error", "app_error", "parse_chat_request",
           "usage", "timings", "conversation_messages", "data_url", "stats_from"]
