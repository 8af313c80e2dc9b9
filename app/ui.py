"""The Gradio app: the only module that imports gradio. Handlers convert, call a service, yield."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Gradio's usage analytics would phone home; nothing but model downloads may leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from app.chat import Conversation, Turn
from app.errors import AppError
from app.images import prepare_image
from app.services import Services
from app.store import human_size

logger = logging.getLogger(__name__)

CSS = """
#iris-stats { font-size: 0.85em; opacity: 0.8; }
#iris-problems { font-size: 0.85em; color: #b45309; }
"""


def shows_app_errors(fn: Callable) -> Callable:
    """Show AppError messages in the UI; log anything else and show a generic message."""

    def convert(exc: Exception) -> Exception:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, AppError):
            return gr.Error(str(exc))
        logger.exception("unexpected error in %s", fn.__name__)
        if os.environ.get("IRIS_RAISE_ERRORS"):
            return exc
        return gr.Error("Something went wrong inside Iris; the details are in the log file.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - converted for the user
                raise convert(exc) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise convert(exc) from exc
    return wrapper


def to_chatbot(entries: list[dict]) -> list[dict]:
    """Display messages from the session's entries ({'turn': Turn, 'paths': [...]})."""
    out: list[dict] = []
    for e in entries:
        turn: Turn = e["turn"]
        if turn.role == "user":
            content: list[Any] = [{"path": p} for p in e.get("paths", [])]
            if turn.text:
                content.append(turn.text)
            out.append({"role": "user", "content": content})
        else:
            out.append({"role": "assistant", "content": turn.text})
    return out


def model_choices(services: Services) -> tuple[list[str], str]:
    """Installed model names, and a Markdown note on files that cannot be used."""
    pairs, problems = services.store.scan()
    names = [p.name for p in pairs]
    note = "\n".join(f"- **{pr.path.name}**: {pr.reason}" for pr in problems)
    return names, (f"Files in the models folder that Iris cannot use:\n{note}" if note else "")


def build_ui(services: Services) -> gr.Blocks:
    """The whole app as a Blocks object; nothing is loaded until a person picks a model."""

    # User-caused errors become a toast plus a line in place, not gr.Error: a failed event
    # paints "Error" over its output components and hides the conversation behind it.
    @shows_app_errors
    def load_model(name: str | None) -> str:
        try:
            if not name:
                raise AppError("Pick a model from the list first.")
            pair = services.load(name)
        except AppError as exc:
            return _load_failed(services, exc)
        return _model_status(services, pair.name)

    @shows_app_errors
    def load_files(lm: str, mmproj: str) -> str:
        try:
            if not lm or not mmproj:
                raise AppError("Give the paths of both files: the LM .gguf and its mmproj .gguf.")
            pair = services.load_files(Path(lm.strip()), Path(mmproj.strip()))
        except AppError as exc:
            return _load_failed(services, exc)
        return _model_status(services, pair.name)

    def refresh() -> tuple[Any, str]:
        names, note = model_choices(services)
        current = services.loaded.name if services.loaded and services.loaded.name in names else (
            names[0] if names else None)
        return gr.update(choices=names, value=current), note

    @shows_app_errors
    def add_user_turn(message: dict, entries: list[dict]) -> tuple[list[dict], Any, Any, bool]:
        text = (message or {}).get("text", "").strip()
        files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files", [])]
        try:
            if not text and not files:
                raise AppError("Type a question or add an image first.")
            if services.loaded is None:
                raise AppError("No model is loaded. Pick one above and press Load.")
            images = [prepare_image(p, name=Path(p).name) for p in files]
        except AppError as exc:
            gr.Warning(str(exc))
            return entries, gr.skip(), gr.skip(), False  # the message stays in the box to fix
        entries = entries + [{"turn": Turn("user", text, images), "paths": files}]
        return entries, to_chatbot(entries), gr.update(value=None), True

    @shows_app_errors
    def respond(entries: list[dict], system: str, accepted: bool) -> Iterator[tuple[list[dict], list[dict], str]]:
        if not accepted:
            yield gr.skip(), gr.skip(), gr.skip()  # yielding nothing would blank the outputs
            return
        conv = Conversation(system=system or "", turns=[e["turn"] for e in entries])
        reply = Turn("assistant", "")
        shown = entries + [{"turn": reply}]
        try:
            for delta in services.engine.stream_reply(conv, services.params):
                reply.text += delta
                yield shown, to_chatbot(shown), ""
        except AppError as exc:
            # The failed question is taken back so it can be edited and sent again.
            gr.Warning(str(exc))
            yield entries[:-1], to_chatbot(entries[:-1]), f"⚠️ {exc}"
            return
        stats = services.engine.last_stats
        yield shown, to_chatbot(shown), (stats.summary() if stats else "")

    def stop() -> None:
        services.engine.stop()

    def clear() -> tuple[list, list, str]:
        return [], [], ""

    names, note = model_choices(services)
    with gr.Blocks(title="Iris", analytics_enabled=False) as demo:
        entries = gr.State([])
        accepted = gr.State(False)
        gr.Markdown("## Iris — chat about your images, on your own machine")
        with gr.Row(equal_height=True):
            model_dd = gr.Dropdown(choices=names, value=names[0] if names else None,
                                   label="Model", scale=4, allow_custom_value=False)
            load_btn = gr.Button("Load", variant="primary", scale=1)
            refresh_btn = gr.Button("Rescan models folder", scale=1)
        status = gr.Markdown(_model_status(services, None) if not names else
                             f"Models folder: `{services.store.root}`. Pick a model and press **Load**.")
        problems = gr.Markdown(note, elem_id="iris-problems")
        with gr.Accordion("Use my own GGUF files", open=False):
            with gr.Row():
                lm_path = gr.Textbox(label="LM .gguf path", scale=3)
                mm_path = gr.Textbox(label="mmproj .gguf path", scale=3)
                files_btn = gr.Button("Load these files", scale=1)
        with gr.Accordion("System prompt", open=False):
            system = gr.Textbox(label="System prompt", lines=2, placeholder="Leave empty for the model's default")
        chatbot = gr.Chatbot(label="Chat", height=480, buttons=["copy"], elem_id="iris-chat")
        box = gr.MultimodalTextbox(
            file_types=["image"], file_count="multiple", sources=["upload"],
            placeholder="Ask about an image: drop, paste or pick one (several are fine)…",
            show_label=False, elem_id="iris-input",
        )
        with gr.Row():
            stop_btn = gr.Button("Stop", variant="stop", elem_id="iris-stop")
            clear_btn = gr.Button("New chat")
        stats = gr.Markdown("", elem_id="iris-stats")

        load_btn.click(load_model, model_dd, status)
        files_btn.click(load_files, [lm_path, mm_path], status)
        refresh_btn.click(refresh, None, [model_dd, problems])
        box.submit(add_user_turn, [box, entries], [entries, chatbot, box, accepted]).then(
            respond, [entries, system, accepted], [entries, chatbot, stats])
        stop_btn.click(stop, None, None, queue=False)
        clear_btn.click(clear, None, [entries, chatbot, stats])
    return demo


def _load_failed(services: Services, exc: AppError) -> str:
    gr.Warning(str(exc))
    still = f"\n\nStill loaded: **{services.loaded.name}**." if services.loaded else ""
    return f"⚠️ {exc}{still}"


def _model_status(services: Services, name: str | None) -> str:
    if name is None:
        return (f"No models found in `{services.store.root}`. Put an LM .gguf and its mmproj .gguf "
                "in a folder there, or load two files by path below.")
    model = getattr(services.engine, "model", None)
    if model is None:
        return f"Loaded **{name}**."
    return (f"Loaded **{name}** ({human_size(services.loaded.size) if services.loaded else ''}) · "
            f"format `{model.chat_format}` · LM on {model.device_lm} · mmproj on {model.device_mmproj} · "
            f"context {model.n_ctx} · {model.image_tokens} tokens per image · up to "
            f"{model.max_images} images per message")


def launch(services: Services, host: str, port: int, open_browser: bool = True) -> None:
    """Serve the app until Ctrl+C; never with a public share link."""
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=1)
    print(f"Iris is running at http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}", flush=True)
    demo.launch(server_name=host, server_port=port, inbrowser=open_browser, share=False,
                show_error=False, css=CSS, theme=gr.themes.Soft())
