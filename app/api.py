"""Iris's OpenAI-compatible API (/v1/models, /v1/chat/completions) as Starlette routes, and the control
routes (/iris/...) the engine worker adds. The same routes serve on Iris's own port (mounted beside the
Gradio app, behind app.webguard) and in the worker process.

Each reply runs on a thread of its own and streams through an asyncio queue; when the client goes away
(or closes the stream) that reply, and only that one, is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from app import config, errors
from app.chat import Conversation, GenParams, Reply
from app.openai_format import (
    ApiError,
    ChatRequest,
    Completion,
    ImageMemo,
    api_error,
    parse_chat_request,
)

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 2**20


class ChatApi:
    """What the routes need: an engine, the model list, which model a request means, the default settings."""

    def __init__(self, engine: Callable[[], Any], *, models: Callable[[], list[dict]],
                 resolve: Callable[[str], str], defaults: Callable[[], GenParams], fetch_urls: bool = False,
                 fit: Callable[[Conversation, GenParams], tuple[Conversation, str]] | None = None):
        self._engine = engine
        self.models = models
        self.resolve = resolve
        self.defaults = defaults
        self.fetch_urls = fetch_urls
        self.fit = fit
        self.memo = ImageMemo()

    @property
    def engine(self) -> Any:
        """The engine answering now (the app's changes when a server's model is picked)."""
        return self._engine()


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(f"The request is larger than {MAX_BODY // 2**20} MB.", status=413)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("The request body is not valid JSON.") from None


def _sse(obj: object) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _pump(reply: Reply) -> AsyncGenerator[tuple[str, Any], None]:
    """Run reply on its own thread; yield ('delta', text), then ('done', None) or ('error', exc)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def run() -> None:
        try:
            for delta in reply:
                loop.call_soon_threadsafe(queue.put_nowait, ("delta", delta))
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the request
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    threading.Thread(target=run, name="iris-api-reply", daemon=True).start()
    finished = False
    try:
        while True:
            item = await queue.get()
            if item[0] != "delta":
                finished = True
            yield item
            if finished:
                return
    finally:
        if not finished:
            reply.cancel()  # the client went away: end this reply at its next token


def routes(api: ChatApi, *, worker: bool = False) -> list[BaseRoute]:
    """The /v1 routes (and, for the worker, /iris control routes) over api."""

    async def models(request: Request) -> Response:
        data = await asyncio.to_thread(api.models)
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        try:
            body = await _json(request)
            req = await asyncio.to_thread(parse_chat_request, body, api.defaults(), api.memo,
                                          fetch_urls=api.fetch_urls, max_image_bytes=config.max_upload_bytes())
            name = await asyncio.to_thread(api.resolve, req.model)
            notice = ""
            if req.fit and api.fit is not None:
                req.conv, notice = await asyncio.to_thread(api.fit, req.conv, req.params)
            reply = api.engine.stream_reply(req.conv, req.params, session=req.session)
        except ApiError as exc:
            return _error(exc)
        except errors.AppError as exc:
            return _error(api_error(exc))
        if req.stream:
            return await _stream(reply, req, Completion(name), notice)
        text, failed = [], None
        async for kind, value in _pump(reply):
            if kind == "delta":
                text.append(value)
            elif kind == "error":
                failed = value
        if failed is not None:
            return _failure(failed)
        return JSONResponse(Completion(name).whole("".join(text), reply.stats, notice))

    async def _stream(reply: Reply, req: ChatRequest, done: Completion, notice: str) -> Response:
        events = _pump(reply)
        # The first event is awaited before answering, so a request the engine refuses (too many images,
        # context too long) gets an HTTP error rather than a stream that breaks.
        first = await events.__anext__()
        if first[0] == "error":
            await events.aclose()
            return _failure(first[1])

        async def body() -> AsyncIterator[str]:
            try:
                yield _sse(done.chunk({"role": "assistant", "content": ""}))
                item = first
                while True:
                    kind, value = item
                    if kind == "delta":
                        yield _sse(done.chunk({"content": value}))
                    elif kind == "error":
                        yield _sse(_failure_body(value))
                        return
                    else:
                        break
                    item = await events.__anext__()
                yield _sse(done.last_chunk(reply.stats, notice))
                if req.include_usage:
                    yield _sse(done.usage_chunk(reply.stats))
                yield "data: [DONE]\n\n"
            finally:
                await events.aclose()

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    table: list[BaseRoute] = [Route("/v1/models", models, methods=["GET"]),
                              Route("/v1/chat/completions", chat, methods=["POST"])]
    if worker:
        table += _control_routes(api)
    return table


def _failure_body(exc: BaseException) -> dict:
    if isinstance(exc, errors.AppError):
        return api_error(exc).body()
    logger.error("reply failed", exc_info=exc)
    return ApiError("The engine failed while answering; the details are in Iris's log file.", status=500,
                    type="server_error").body()


def _failure(exc: BaseException) -> JSONResponse:
    body = _failure_body(exc)
    status = api_error(exc).status if isinstance(exc, errors.AppError) else 500
    return JSONResponse(body, status_code=status)


def _control_routes(api: ChatApi) -> list[BaseRoute]:
    """The worker's own routes: load and unload a pair, count a prompt, cost an image, stop, status."""
    def model_info() -> dict | None:
        m = api.engine.model
        if m is None:
            return None
        info = {k: (str(v) if k.endswith("_path") else v) for k, v in asdict(m).items()}
        return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None}

    def refused(exc: errors.AppError) -> JSONResponse:
        # The kind travels too, so the app raises the same AppError subclass the engine did.
        return JSONResponse({"error": {"message": str(exc), "type": type(exc).__name__}}, status_code=400)

    async def status(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid(), "model": model_info()})

    async def load(request: Request) -> Response:
        body = await request.json()
        try:
            await asyncio.to_thread(api.engine.load, body["lm"], body["mmproj"], **body.get("options", {}))
        except errors.AppError as exc:
            return refused(exc)
        return JSONResponse({"model": model_info()})

    async def unload(request: Request) -> Response:
        await asyncio.to_thread(api.engine.unload)
        return JSONResponse({"model": None})

    async def counted(request: Request, messages: Callable[[dict], list], count: Callable[[Any], int]) -> Response:
        try:
            body = await _json(request)
            req = await asyncio.to_thread(parse_chat_request, {"messages": messages(body)}, api.defaults(),
                                          api.memo, max_image_bytes=config.max_upload_bytes())
            n = await asyncio.to_thread(count, req.conv)
        except (KeyError, TypeError):
            return _error(ApiError("The request lacks 'messages' (or 'url' for an image)."))
        except ApiError as exc:
            return _error(exc)
        except errors.AppError as exc:
            return refused(exc)
        return JSONResponse({"tokens": n})

    async def count(request: Request) -> Response:
        return await counted(request, lambda body: body["messages"], lambda conv: api.engine.count_tokens(conv))

    async def image_cost(request: Request) -> Response:
        def one(body: dict) -> list:
            return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": body["url"]}}]}]

        return await counted(request, one, lambda conv: api.engine.image_cost(conv.turns[0].images[0]))

    async def stop(request: Request) -> Response:
        api.engine.stop()
        return JSONResponse({})

    return [Route("/iris/status", status, methods=["GET"]), Route("/iris/load", load, methods=["POST"]),
            Route("/iris/unload", unload, methods=["POST"]), Route("/iris/count", count, methods=["POST"]),
            Route("/iris/image_cost", image_cost, methods=["POST"]), Route("/iris/stop", stop, methods=["POST"])]


def services_api(services: Any, fetch_urls: bool = False) -> ChatApi:
    """The API over the app's services: the installed models, the loaded one answering (loaded on demand)."""

    def models() -> list[dict]:
        loaded = services.loaded.name if services.loaded else None
        out = []
        for p in services.store.pairs():
            out.append({"id": p.name, "object": "model", "created": 0, "owned_by": "iris",
                        "capabilities": ["vision"], "iris": {"loaded": p.name == loaded}})
        if loaded and all(m["id"] != loaded for m in out):  # loaded by path
            out.append({"id": loaded, "object": "model", "created": 0, "owned_by": "iris",
                        "capabilities": ["vision"], "iris": {"loaded": True}})
        return out

    def resolve(name: str) -> str:
        loaded = services.loaded.name if services.loaded else None
        if not name or name == loaded or name == "iris":
            if loaded is None:
                raise errors.NoModelLoaded("No model is loaded in Iris. Load one in the app, or name an installed "
                                           "model in 'model' (GET /v1/models lists them).")
            return loaded
        names = [p.name for p in services.store.pairs()]
        if name not in names:
            raise ApiError(f"There is no model called {errors.printable(name, 80)} in Iris. Installed: "
                           f"{', '.join(names) or 'none'}.", status=404, code="model_not_found", param="model")
        services.load(name)  # as Ollama and LM Studio do: the named model is loaded for the request
        return name

    return ChatApi(lambda: services.engine, models=models, resolve=resolve, defaults=lambda: services.params,
                   fetch_urls=fetch_urls)
