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
.iris-job { margin: 0.4em 0; }
.iris-job progress { width: 100%; height: 1.1em; accent-color: #6366f1; }
.iris-job .line { font-size: 0.85em; font-family: ui-monospace, monospace; }
.iris-job .error { color: #b91c1c; }
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


def catalog_choices(services: Services) -> tuple[list[tuple[str, str]], str | None, str]:
    """Dropdown choices (label, id), this machine's pick, and a sentence saying why."""
    from app.machine import detect

    recommended, specs = services.catalog()
    kind = detect()
    pick = recommended.get(kind.key) or recommended.get("cpu")
    choices = []
    for s in specs:
        q = s.quants[0]
        star = "★ " if s.id == pick else ""
        nc = " · non-commercial" if s.non_commercial else ""
        choices.append((f"{star}{s.name} — {human_size(q.size)}{nc}", s.id))
    why = f"Recommended for this machine ({kind.description}): **{next(s.name for s in specs if s.id == pick)}**."
    return choices, pick, why


def catalog_details(services: Services, spec_id: str | None, quant: str | None) -> str:
    """Markdown facts about one entry and quantization."""
    if not spec_id:
        return ""
    from app.catalog import find_spec

    spec = find_spec(spec_id, services.catalog()[1])
    q = spec.quant(quant)
    lic = spec.license + (" — **non-commercial use only**" if spec.non_commercial else "")
    sha = "pinned in the catalog" if q.lm.sha256 and q.mmproj.sha256 else "checked against the Hub's own hash"
    note = f"\n\n_{spec.note}_" if spec.note else ""
    return (f"**{spec.name}** ({spec.family}) — {spec.good_for}\n\n"
            f"Download {human_size(q.size)} (`{q.lm.file}` + `{q.mmproj.file}` from `{spec.repo}`) · "
            f"needs about {human_size(spec.memory_needed(q))} of memory · context {spec.context_length} · "
            f"{spec.image_tokens or 'varying'} tokens per image · up to {spec.images_per_message} images "
            f"per message · licence: {lic} · SHA-256 {sha}.{note}")


def downloads_html(jobs: list) -> str:
    """The download list: a progress bar and a status line per job."""
    import html

    rows = []
    for job in jobs:
        p = job.progress
        if job.error:
            status = f'<div class="line error">⚠️ {html.escape(job.error)}</div>'
        elif job.cancelled:
            status = (f'<div class="line">Paused at {human_size(p.done)} of {human_size(p.total)}; '
                      "press Download to resume.</div>")
        elif job.folder is not None:
            status = '<div class="line">✓ Installed. Pick it on the Chat tab.</div>'
        else:
            status = f'<div class="line">{html.escape(p.line())}</div>'
        value = f'value="{p.done}" max="{max(p.total, 1)}"' if p.total else ""
        rows.append(f'<div class="iris-job" data-name="{html.escape(job.name)}" data-state="{p.state}">'
                    f"<b>{html.escape(job.name)}</b><progress {value}></progress>{status}</div>")
    return "".join(rows) or "<i>No downloads in this session.</i>"


def installed_markdown(services: Services) -> str:
    """Installed models as a Markdown table, with unfinished downloads below."""
    pairs = services.store.pairs()
    lines = [f"Models folder: `{services.store.root}`", ""]
    if pairs:
        lines += ["| Model | Size | From |", "|---|---|---|"]
        lines += [f"| {p.name} | {human_size(p.size)} | {p.label or 'your own files'} |" for p in pairs]
    else:
        lines.append("No models installed yet.")
    for part in services.store.partial_downloads():
        lines.append(f"\nUnfinished download **{part.name}**: {human_size(part.size)} kept; Download resumes it.")
    return "\n".join(lines)


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
                raise AppError("No model is loaded. Pick one above and press Load, or download one on the Models tab.")
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

    @shows_app_errors
    def start_download(spec_id: str | None, quant: str | None) -> str:
        from app.catalog import find_spec

        if not spec_id:
            gr.Warning("Pick a model from the catalog first.")
            return downloads_html(services.downloads.jobs())
        services.downloads.start(find_spec(spec_id, services.catalog()[1]), quant)
        return downloads_html(services.downloads.jobs())

    @shows_app_errors
    def cancel_download(spec_id: str | None, quant: str | None) -> str:
        from app.catalog import find_spec
        from app.store import install_name

        if spec_id:
            spec = find_spec(spec_id, services.catalog()[1])
            if not services.downloads.cancel(install_name(spec.id, spec.quant(quant).name)):
                gr.Info("That model is not downloading.")
        return downloads_html(services.downloads.jobs())

    def pick_entry(spec_id: str | None) -> tuple[Any, str]:
        from app.catalog import find_spec

        if not spec_id:
            return gr.update(choices=[], value=None), ""
        spec = find_spec(spec_id, services.catalog()[1])
        names = [q.name for q in spec.quants]
        return gr.update(choices=names, value=names[0]), catalog_details(services, spec_id, names[0])

    def poll(known: list[str]) -> tuple[str, Any, Any, Any, list[str]]:
        names, _ = model_choices(services)
        html_ = downloads_html(services.downloads.jobs())
        if names == known:
            return html_, gr.skip(), gr.skip(), gr.skip(), known
        current = services.loaded.name if services.loaded and services.loaded.name in names else (
            names[0] if names else None)
        return (html_, gr.update(choices=names, value=current), installed_markdown(services),
                gr.update(choices=names, value=None), names)

    @shows_app_errors
    def remove_model(name: str | None) -> tuple[str, Any, Any, list[str]]:
        if name:
            try:
                freed = services.remove(name)
                gr.Info(f"Removed {name}; {human_size(freed)} freed.")
            except AppError as exc:
                gr.Warning(str(exc))
        names, _ = model_choices(services)
        return (installed_markdown(services), gr.update(choices=names, value=None),
                gr.update(choices=names, value=names[0] if names else None), names)

    names, note = model_choices(services)
    with gr.Blocks(title="Iris", analytics_enabled=False) as demo:
        entries = gr.State([])
        accepted = gr.State(False)
        known_models = gr.State(names)
        gr.Markdown("## Iris — chat about your images, on your own machine")
        with gr.Tabs(selected="chat" if names else "models"):
            with gr.Tab("Chat", id="chat"):
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

            with gr.Tab("Models", id="models"):
                choices, pick, why = catalog_choices(services)
                gr.Markdown(why)
                with gr.Row(equal_height=True):
                    entry_dd = gr.Dropdown(choices=choices, value=pick, label="Catalog", scale=4,
                                           elem_id="iris-catalog")
                    first_quants = [q.name for q in next(s for s in services.catalog()[1] if s.id == pick).quants]
                    quant_dd = gr.Dropdown(choices=first_quants, value=first_quants[0], label="Quantization", scale=1)
                    dl_btn = gr.Button("Download", variant="primary", scale=1, elem_id="iris-download")
                    cancel_btn = gr.Button("Cancel download", scale=1, elem_id="iris-cancel-download")
                details = gr.Markdown(catalog_details(services, pick, first_quants[0]))
                jobs_html = gr.HTML(downloads_html(services.downloads.jobs()), elem_id="iris-downloads")
                gr.Markdown("### Installed")
                installed = gr.Markdown(installed_markdown(services), elem_id="iris-installed")
                with gr.Row(equal_height=True):
                    remove_dd = gr.Dropdown(choices=names, value=None, label="Remove a model", scale=4,
                                            elem_id="iris-remove-name")
                    remove_btn = gr.Button("Remove", variant="stop", scale=1, elem_id="iris-remove")
        timer = gr.Timer(1.0)

        entry_dd.change(pick_entry, entry_dd, [quant_dd, details])
        quant_dd.change(lambda i, q: catalog_details(services, i, q), [entry_dd, quant_dd], details)
        dl_btn.click(start_download, [entry_dd, quant_dd], jobs_html, concurrency_limit=None)
        cancel_btn.click(cancel_download, [entry_dd, quant_dd], jobs_html, queue=False)
        timer.tick(poll, known_models, [jobs_html, model_dd, installed, remove_dd, known_models],
                   concurrency_limit=None, show_progress="hidden")
        remove_btn.click(remove_model, remove_dd, [installed, remove_dd, model_dd, known_models],
                         js="(n) => (n && confirm('Delete ' + n + ' from disk?')) ? n : null")

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
