"""The Gradio app: the only module that imports gradio. Handlers convert, call a service, yield."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Gradio's usage analytics would phone home; nothing but model downloads may leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from app.chat import Reply
from app.errors import AppError
from app.images import PreparedImage, prepare_image
from app.services import Services
from app.store import human_size

logger = logging.getLogger(__name__)

CSS = """
#iris-stats { font-size: 0.85em; opacity: 0.8; }
#iris-problems { font-size: 0.85em; color: #b45309; }
.iris-job { margin: 0.4em 0; }
progress { appearance: none; -webkit-appearance: none; border: none; border-radius: 4px;
           background: rgba(127, 127, 127, 0.25); overflow: hidden; }
progress::-webkit-progress-bar { background: rgba(127, 127, 127, 0.25); border-radius: 4px; }
progress::-webkit-progress-value { background: #6366f1; border-radius: 4px; }
progress::-moz-progress-bar { background: #6366f1; }
.iris-job progress { width: 100%; height: 0.9em; }
.iris-job .line { font-size: 0.85em; font-family: ui-monospace, monospace; }
.iris-job .error { color: #b91c1c; }
.iris-gauge { font-size: 0.85em; display: flex; align-items: center; gap: 0.6em; }
.iris-gauge progress { width: 10em; height: 0.7em; flex: none; }
.iris-gauge.warn progress::-webkit-progress-value { background: #d97706; }
.iris-gauge.full progress::-webkit-progress-value { background: #dc2626; }
.iris-gauge.full span, .iris-gauge.warn span { color: #b45309; }
#iris-conversations label { width: 100%; }
@media (max-width: 640px) {
  #iris-chat { height: 55vh !important; }
}
"""


def shows_app_errors(fn: Callable) -> Callable:
    """Show AppError messages in the UI; log anything else and show a generic message."""

    def convert(exc: Exception) -> Exception:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, AppError):
            return gr.Error(toast(exc))
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


def stats_line(stats: dict | None) -> str:
    """The figures under a reply: device, first token, speed, image encoding."""
    if not stats:
        return ""
    parts = [f"{stats.get('device_lm', '?')}", f"first token {stats.get('ttft_s', 0):.2f} s",
             f"{stats.get('decode_tok_s', 0):.1f} tok/s"]
    if stats.get("images_encoded"):
        parts.append(f"image encode {stats.get('image_encode_s', 0):.2f} s")
    if stats.get("finish_reason") == "stopped":
        parts.append("stopped")
    return " · ".join(parts)


def to_chatbot(stored: Any, image_path: Callable[[str], Path]) -> tuple[list[dict], list[int]]:
    """Chatbot messages for a stored conversation, and for each one the stored message it shows."""
    out: list[dict] = []
    index: list[int] = []
    for i, m in enumerate(stored.messages):
        if m.role == "user":
            # Images and text as separate messages (shown in one bubble): Gradio only lets a person edit a
            # message whose content is plain text.
            for sha in m.images:
                out.append({"role": "user", "content": {"path": str(image_path(sha))}})
                index.append(i)
            if m.text or not m.images:
                out.append({"role": "user", "content": m.text})
                index.append(i)
        else:
            out.append({"role": "assistant", "content": m.text or "…"})
            index.append(i)
            line = stats_line(m.stats)
            if line:
                model = f"{m.model} · " if m.model else ""
                out.append({"role": "assistant", "content": "", "metadata": {"title": f"{model}{line}",
                                                                            "status": "done"}})
                index.append(-1)
    return out, index


def conversation_view(services: Services, cid: str | None) -> tuple[list[dict], list[int], str, str]:
    """What switching to a conversation shows: chatbot messages, index map, gauge and title."""
    if not cid:
        return [], [], "", ""
    assert services.history is not None
    stored = services.history.get(cid)
    msgs, index = to_chatbot(stored, services.history.image_path)
    return msgs, index, gauge_html(services.usage(cid, stored)), stored.title


def gauge_html(usage: Any) -> str:
    """The context gauge: tokens used of the context, images counted, a warning near the end."""
    if usage is None or not usage.size:
        return ""
    pct = usage.fraction
    warn = ""
    if pct >= 0.9:
        warn = " — nearly full: the oldest messages will be left out of the next reply"
    elif pct >= 0.75:
        warn = " — filling up; start a new chat for a new topic"
    cls = "full" if pct >= 0.9 else "warn" if pct >= 0.75 else "ok"
    return (f'<div class="iris-gauge {cls}"><progress value="{usage.used}" max="{usage.size}"></progress> '
            f"<span>Context {usage.used:,} / {usage.size:,} tokens · {usage.images} "
            f"image{'s' if usage.images != 1 else ''}{warn}</span></div>")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")


def plain(text: object) -> str:
    """Text shown in Markdown exactly as written: no HTML, links or images from file names or errors."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def toast(text: object) -> str:
    """Text for a toast (rendered as HTML) exactly as written."""
    return html.escape(str(text), quote=False)


def attachment_line(cost: Any) -> str:
    """Under the input box: what the attached images cost before they are sent."""
    if cost is None or not cost.per_image:
        return ""
    n = len(cost.per_image)
    each = " + ".join(f"{c:,}" for c in cost.per_image)
    line = f"{n} image{'s' if n != 1 else ''}: {each}{f' = {cost.total:,}' if n > 1 else ''} tokens"
    if cost.size:
        line += f" · context after sending ≈ {cost.after:,} of {cost.size:,} tokens, plus your question"
    if cost.max_images and n > cost.max_images:
        return f"⚠️ {line}. This model takes at most {cost.max_images} per message."
    if cost.size and cost.after > cost.size:
        return f"⚠️ {line}: that does not fit; older messages will be left out, or remove an image."
    return line


def _values(choices: list[Any]) -> list[str]:
    return [c[1] if isinstance(c, tuple) else c for c in choices]


def _current(services: Services, choices: list[Any]) -> str | None:
    vals = _values(choices)
    if services.loaded and services.loaded.name in vals:
        return services.loaded.name
    return vals[0] if vals else None


@dataclass
class ModelView:
    """Everything the UI shows about the models folder, from one scan of it."""

    choices: list[Any]  # for the Chat tab's picker: names, the demo as (label, name)
    real: list[str]  # installed models (not the bundled demo): what Remove offers
    note: str  # files that cannot be used, and why
    installed: str  # the Models tab's table


def model_view(services: Services) -> ModelView:
    """Scan the models folder once and describe it for every place that lists models."""
    pairs, problems = services.store.scan()
    choices = [(f"{p.name} ({p.label})", p.name) if p.is_demo else p.name for p in pairs]
    note = "\n".join(f"- **{plain(pr.path.name)}**: {plain(pr.reason)}" for pr in problems)
    real = [p for p in pairs if not p.is_demo]
    return ModelView(choices, [p.name for p in real],
                     f"Files in the models folder that Iris cannot use:\n{note}" if note else "",
                     installed_markdown(services, real))


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
            f"{spec.image_facts()} · licence: {lic} · SHA-256 {sha}.{note}")


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


def installed_markdown(services: Services, pairs: list[Any]) -> str:
    """Installed models (pairs, the demo left out) as a Markdown table, with unfinished downloads below."""
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
    from app.settings import SYSTEM_PRESETS

    history = services.history
    assert history is not None, "the UI needs services built with history"

    def conv_choices(search: str = "") -> list[tuple[str, str]]:
        return [(c.title, c.id) for c in history.list(search)]

    def show(cid: str | None) -> tuple[list[dict], list[int], str, str]:
        return conversation_view(services, cid)

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
        gr.Info(f"Loaded {toast(pair.name)}.")
        return _model_status(services, pair.name)

    def refresh() -> tuple[Any, str]:
        view = model_view(services)
        return gr.update(choices=view.choices, value=_current(services, view.choices)), view.note

    @shows_app_errors
    def open_app() -> tuple[Any, ...]:
        pairs = services.store.pairs()
        if services.loaded is None and pairs and all(p.is_demo for p in pairs):
            services.load(pairs[0].name)  # first run: chat works at once on the bundled demo (a few MB)
        convs = conv_choices()
        cid = convs[0][1] if convs else None
        msgs, index, gauge, title = show(cid)
        state = _model_status(services, services.loaded.name) if services.loaded else gr.skip()
        return gr.update(choices=convs, value=cid), cid, msgs, index, gauge, title, state

    @shows_app_errors
    def select_conv(cid: str | None) -> tuple[str | None, list[dict], list[int], str, str, str]:
        # The state follows the selection even when showing it fails, so Delete acts on what is selected.
        try:
            msgs, index, gauge, title = show(cid)
        except AppError as exc:
            gr.Warning(toast(exc))
            return cid, [], [], "", "", ""
        return cid, msgs, index, gauge, title, ""

    def new_chat() -> tuple[Any, None, list, list, str, str, str]:
        return gr.update(value=None), None, [], [], "", "", ""

    def search_convs(text: str, cid: str | None) -> Any:
        convs = conv_choices(text)
        return gr.update(choices=convs, value=cid if any(c[1] == cid for c in convs) else None)

    # The box's change event fires on every keystroke: each attached file is decoded once, not per key.
    previewed: dict[str, PreparedImage] = {}

    def preview_cost(message: dict, cid: str | None) -> str:
        files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files", [])]
        if not files:
            previewed.clear()
            return ""
        if len(previewed) > 64:  # several tabs share it: keep it small
            previewed.clear()
        try:
            for p in files:
                if p not in previewed:
                    previewed[p] = prepare_image(p, name=Path(p).name)
            return attachment_line(services.attachment_cost(cid, [previewed[p] for p in files]))
        except AppError as exc:
            return f"⚠️ {plain(exc)}"

    @shows_app_errors
    def add_user_turn(message: dict, cid: str | None, system: str) -> tuple[Any, ...]:
        text = (message or {}).get("text", "").strip()
        files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files", [])]
        try:
            if not text and not files:
                raise AppError("Type a question or add an image first.")
            if services.loaded is None:
                raise AppError("No model is loaded. Pick one above and press Load, or download one on "
                               "the Models tab.")
            services.check_image_count(len(files))  # before reading them: the limit is the news
            images = [prepare_image(p, name=Path(p).name) for p in files]
            new = not cid
            if not cid:
                cid = history.create(system=system or "")
            try:
                services.ask(cid, text, images)
            except AppError:
                if new:
                    history.delete(cid)
                raise
        except AppError as exc:
            gr.Warning(toast(exc))
            # The message stays in the box to fix; nothing else changes.
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), False
        msgs, index, _, _ = show(cid)
        return cid, msgs, index, gr.update(value=None), gr.update(choices=conv_choices(), value=cid), True

    def stream(cid: str | None, run: Callable[[], Reply]) -> Iterator[tuple[Any, ...]]:
        """Show a reply as it streams, then the saved conversation with its stats."""
        assert cid is not None
        msgs, index, _, _ = show(cid)
        bubble = {"role": "assistant", "content": "…"}
        try:
            reply = run()
            for _delta in reply:
                bubble["content"] = reply.text
                yield msgs + [bubble], gr.skip(), gr.skip(), gr.skip()
        except AppError as exc:
            gr.Warning(toast(exc))
            msgs, index, gauge, _ = show(cid)
            yield msgs, index, gauge, f"⚠️ {plain(exc)}"
            return
        if reply.notice:
            gr.Warning(toast(reply.notice))
        msgs, index, gauge, _ = show(cid)
        yield msgs, index, gauge, plain(reply.notice)

    @shows_app_errors
    def respond(cid: str | None, accepted: bool) -> Iterator[tuple[Any, ...]]:
        if not accepted or not cid:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()  # yielding nothing would blank the outputs
            return
        yield from stream(cid, lambda: services.reply(cid))

    @shows_app_errors
    def regenerate(cid: str | None) -> Iterator[tuple[Any, ...]]:
        if not cid:
            gr.Warning("There is no reply to regenerate yet.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        yield from stream(cid, lambda: services.regenerate(cid))

    @shows_app_errors
    def edit_message(cid: str | None, index: list[int], data: gr.EditData) -> Iterator[tuple[Any, ...]]:
        pos = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        stored_i = index[pos] if cid and 0 <= pos < len(index) else -1
        value = data.value
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str)), "")
        elif isinstance(value, dict):
            value = value.get("text", "")
        if stored_i < 0:
            gr.Warning("Only your own questions can be edited.")
            msgs, idx, gauge, _ = show(cid)
            yield msgs, idx, gauge, ""
            return
        assert cid is not None
        yield from stream(cid, lambda: services.edit(cid, stored_i, str(value)))

    def stop() -> None:
        services.engine.stop()

    @shows_app_errors
    def rename(cid: str | None, title: str, search: str) -> Any:
        if not cid:
            gr.Warning("Start or pick a conversation first.")
            return gr.skip()
        history.rename(cid, title)
        return gr.update(choices=conv_choices(search), value=cid)

    @shows_app_errors
    def delete(cid: str | None, confirmed: Any) -> tuple[Any, ...]:
        if not cid or not confirmed:
            return (gr.skip(),) * 7
        history.delete(cid)
        convs = conv_choices()
        return (gr.update(choices=convs, value=None), None, [], [], "", "", "")

    @shows_app_errors
    def export(cid: str | None, kind: str) -> Any:
        import json
        import tempfile

        if not cid:
            gr.Warning("Pick a conversation to export first.")
            return gr.update(value=None, visible=False)
        out = Path(tempfile.mkdtemp(prefix="iris-export-"))
        if kind == "md":
            path = history.export_markdown(cid, out)
        else:
            data = history.export_json(cid)
            safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in data["title"]).strip() or "conversation"
            path = out / f"{safe[:40]}.json"
            path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    @shows_app_errors
    def import_conv(file: Any) -> tuple[Any, ...]:
        import json

        path = file if isinstance(file, str) else getattr(file, "name", "")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, RecursionError):
            gr.Warning("That file is not a conversation exported by Iris (it is not JSON, or nested too deeply). "
                       "Nothing was imported.")
            return (gr.skip(),) * 6
        try:
            cid = history.import_json(data)
        except AppError as exc:
            gr.Warning(toast(exc))
            return (gr.skip(),) * 6
        msgs, index, gauge, title = show(cid)
        gr.Info(f"Imported “{toast(title)}”.")
        return gr.update(choices=conv_choices(), value=cid), cid, msgs, index, gauge, title

    def save_setting(name: str) -> Callable[[Any], None]:
        def handler(value: Any) -> None:
            services.update_settings(**{name: value})
        return handler

    def pick_preset(preset: str) -> str:
        return SYSTEM_PRESETS.get(preset, "")

    def save_system(cid: str | None, text: str) -> None:
        services.update_settings(system_prompt=text)
        if cid:
            history.set_system(cid, text)

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

    def poll(known: list) -> tuple[str, Any, Any, Any, list]:
        jobs = services.downloads.jobs()
        html_ = downloads_html(jobs)
        # The folder is scanned (every GGUF header read) only when a download has just finished, not every tick.
        finished = [(j.name, id(j)) for j in jobs if j.folder is not None]
        if finished == known:
            return html_, gr.skip(), gr.skip(), gr.skip(), known
        view = model_view(services)
        return (html_, gr.update(choices=view.choices, value=_current(services, view.choices)), view.installed,
                gr.update(choices=view.real, value=None), finished)

    @shows_app_errors
    def remove_model(name: str | None) -> tuple[str, Any, Any]:
        if name:
            try:
                freed = services.remove(name)
                gr.Info(f"Removed {toast(name)}; {human_size(freed)} freed.")
            except AppError as exc:
                gr.Warning(toast(exc))
        view = model_view(services)
        return (view.installed, gr.update(choices=view.real, value=None),
                gr.update(choices=view.choices, value=_current(services, view.choices)))

    view = model_view(services)
    names, note, real = view.choices, view.note, view.real
    st = services.settings
    preferred = st.last_model if st.last_model in _values(names) else _current(services, names)
    with gr.Blocks(title="Iris", analytics_enabled=False) as demo:
        cid_state = gr.State(None)
        index_state = gr.State([])
        accepted = gr.State(False)
        finished_downloads = gr.State([])
        with gr.Sidebar(label="Conversations", elem_id="iris-sidebar", open=True):
            new_btn = gr.Button("+ New chat", variant="primary", elem_id="iris-new-chat")
            search = gr.Textbox(placeholder="Search conversations…", show_label=False, elem_id="iris-search")
            conv_list = gr.Radio(choices=[], label="Conversations", elem_id="iris-conversations")
            with gr.Accordion("This conversation", open=False, elem_id="iris-conv-actions"):
                title_box = gr.Textbox(label="Name", elem_id="iris-title")
                rename_btn = gr.Button("Rename", size="sm", elem_id="iris-rename")
                with gr.Row():
                    md_btn = gr.Button("Export Markdown", size="sm", elem_id="iris-export-md")
                    json_btn = gr.Button("Export JSON", size="sm", elem_id="iris-export-json")
                export_file = gr.File(label="Exported file", visible=False, elem_id="iris-export-file")
                import_btn = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="iris-import")
                delete_btn = gr.Button("Delete conversation", variant="stop", size="sm", elem_id="iris-delete")
        with gr.Tabs(selected="chat" if real else "models"):
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=True):
                    model_dd = gr.Dropdown(choices=names, value=preferred, label="Model", scale=4,
                                           allow_custom_value=False, elem_id="iris-model")
                    load_btn = gr.Button("Load", variant="primary", scale=1, elem_id="iris-load")
                    refresh_btn = gr.Button("Rescan", scale=1)
                status = gr.Markdown(_model_status(services, None) if not names else
                                     "Pick a model and press **Load**.", elem_id="iris-status")
                problems = gr.Markdown(note, elem_id="iris-problems")
                chatbot = gr.Chatbot(
                    label="Chat", height="62vh", buttons=["copy", "copy_all"], editable="user",
                    elem_id="iris-chat", allow_tags=False, sanitize_html=True, group_consecutive_messages=False,
                    latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                      {"left": "\\[", "right": "\\]", "display": True},
                                      {"left": "\\(", "right": "\\)", "display": False}],
                    placeholder="Drop, paste or pick an image, then ask about it.",
                )
                box = gr.MultimodalTextbox(
                    file_types=["image"], file_count="multiple", sources=["upload"],
                    placeholder="Ask about an image: drop, paste or pick one (several are fine)…",
                    show_label=False, elem_id="iris-input",
                )
                cost_line = gr.Markdown("", elem_id="iris-image-cost")
                with gr.Row():
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="iris-stop", size="sm")
                    regen_btn = gr.Button("Regenerate", elem_id="iris-regenerate", size="sm")
                gauge = gr.HTML("", elem_id="iris-gauge")
                notice = gr.Markdown("", elem_id="iris-stats")
                with gr.Accordion("Settings", open=False, elem_id="iris-settings"):
                    preset = gr.Dropdown(choices=list(SYSTEM_PRESETS), value=None, label="System prompt preset")
                    system = gr.Textbox(label="System prompt", lines=2, value=st.system_prompt,
                                        placeholder="Leave empty for the model's default", elem_id="iris-system")
                    with gr.Row():
                        temp = gr.Slider(0.0, 2.0, value=st.temperature, step=0.05, label="Temperature")
                        top_p = gr.Slider(0.05, 1.0, value=st.top_p, step=0.05, label="Top p")
                        max_tok = gr.Slider(16, 4096, value=st.max_tokens, step=16, label="Max tokens")
                    with gr.Row():
                        n_ctx = gr.Slider(0, 32768, value=st.n_ctx, step=512,
                                          label="Context size (0 = the model's own, up to 4096; next Load)")
                        ngl = gr.Slider(-1, 200, value=st.n_gpu_layers, step=1,
                                        label="GPU layers (-1 = automatic; next Load)")

            with gr.Tab("Models", id="models"):
                choices, pick, why = catalog_choices(services)
                if not real and names:
                    why += ("\n\nUntil you download one, the **demo model** is loaded on the Chat tab: a tiny "
                            "model trained by Iris that knows only shapes and colours. Try it with a picture "
                            "of a red circle.")
                gr.Markdown(why, elem_id="iris-recommended")
                with gr.Row(equal_height=True):
                    entry_dd = gr.Dropdown(choices=choices, value=pick, label="Catalog", scale=4,
                                           elem_id="iris-catalog")
                    first_quants = [q.name for q in next(s for s in services.catalog()[1] if s.id == pick).quants]
                    quant_dd = gr.Dropdown(choices=first_quants, value=first_quants[0], label="Quantization",
                                           scale=1)
                    dl_btn = gr.Button("Download", variant="primary", scale=1, elem_id="iris-download")
                    cancel_btn = gr.Button("Cancel download", scale=1, elem_id="iris-cancel-download")
                details = gr.Markdown(catalog_details(services, pick, first_quants[0]))
                jobs_html = gr.HTML(downloads_html(services.downloads.jobs()), elem_id="iris-downloads")
                gr.Markdown("### Installed")
                installed = gr.Markdown(view.installed, elem_id="iris-installed")
                with gr.Row(equal_height=True):
                    remove_dd = gr.Dropdown(choices=real, value=None, label="Remove a model", scale=4,
                                            elem_id="iris-remove-name")
                    remove_btn = gr.Button("Remove", variant="stop", scale=1, elem_id="iris-remove")
                with gr.Accordion("Add my own GGUF files", open=False):
                    gr.Markdown(f"Put an LM `.gguf` and its `mmproj` `.gguf` in a folder under "
                                f"`{services.store.root}` (then **Rescan** on the Chat tab), or load two "
                                "files by path. Iris checks that they fit together first.")
                    with gr.Row():
                        lm_path = gr.Textbox(label="LM .gguf path", scale=3)
                        mm_path = gr.Textbox(label="mmproj .gguf path", scale=3)
                        files_btn = gr.Button("Load these files", scale=1)
                    files_status = gr.Markdown("", elem_id="iris-files-status")
        timer = gr.Timer(1.0)

        shown = [chatbot, index_state, gauge, title_box]  # what showing a conversation updates
        demo.load(open_app, None, [conv_list, cid_state, *shown, status])
        conv_list.input(select_conv, conv_list, [cid_state, *shown, notice])
        new_btn.click(new_chat, None, [conv_list, cid_state, *shown, notice])
        chatbot.clear(new_chat, None, [conv_list, cid_state, *shown, notice])  # the bin icon: a fresh chat
        search.change(search_convs, [search, cid_state], conv_list, show_progress="hidden")
        box.change(preview_cost, [box, cid_state], cost_line, show_progress="hidden", trigger_mode="always_last")
        box.submit(add_user_turn, [box, cid_state, system], [cid_state, chatbot, index_state, box, conv_list,
                                                              accepted]).then(
            respond, [cid_state, accepted], [chatbot, index_state, gauge, notice])
        regen_btn.click(regenerate, cid_state, [chatbot, index_state, gauge, notice])
        chatbot.retry(regenerate, cid_state, [chatbot, index_state, gauge, notice])
        chatbot.edit(edit_message, [cid_state, index_state], [chatbot, index_state, gauge, notice])
        stop_btn.click(stop, None, None, queue=False)
        rename_btn.click(rename, [cid_state, title_box, search], conv_list)
        delete_btn.click(delete, [cid_state, delete_btn], [conv_list, cid_state, *shown, notice],
                         js="(cid, b) => [cid, confirm('Delete this conversation and its images?')]")
        md_btn.click(lambda c: export(c, "md"), cid_state, export_file)
        json_btn.click(lambda c: export(c, "json"), cid_state, export_file)
        import_btn.upload(import_conv, import_btn, [conv_list, cid_state, *shown])

        load_btn.click(load_model, model_dd, status)
        files_btn.click(load_files, [lm_path, mm_path], files_status).then(lambda t: t, files_status, status)
        refresh_btn.click(refresh, None, [model_dd, problems])
        preset.input(pick_preset, preset, system).then(save_system, [cid_state, system], None)
        system.blur(save_system, [cid_state, system], None)
        for comp, name in ((temp, "temperature"), (top_p, "top_p"), (max_tok, "max_tokens"), (n_ctx, "n_ctx"),
                           (ngl, "n_gpu_layers")):
            comp.release(save_setting(name), comp, None, show_progress="hidden")

        entry_dd.change(pick_entry, entry_dd, [quant_dd, details])
        quant_dd.change(lambda i, q: catalog_details(services, i, q), [entry_dd, quant_dd], details)
        dl_btn.click(start_download, [entry_dd, quant_dd], jobs_html, concurrency_limit=None)
        cancel_btn.click(cancel_download, [entry_dd, quant_dd], jobs_html, queue=False)
        timer.tick(poll, finished_downloads, [jobs_html, model_dd, installed, remove_dd, finished_downloads],
                   concurrency_limit=None, show_progress="hidden")
        remove_btn.click(remove_model, remove_dd, [installed, remove_dd, model_dd],
                         js="(n) => (n && confirm('Delete ' + n + ' from disk?')) ? n : null")
    return demo


def _load_failed(services: Services, exc: AppError) -> str:
    gr.Warning(toast(exc))
    still = f"\n\nStill loaded: **{plain(services.loaded.name)}**." if services.loaded else ""
    return f"⚠️ {plain(exc)}{still}"


def _model_status(services: Services, name: str | None) -> str:
    if name is None:
        return (f"No models found in `{services.store.root}`. Put an LM .gguf and its mmproj .gguf "
                "in a folder there, or load two files by path below.")
    model = getattr(services.engine, "model", None)
    if model is None:
        return f"Loaded **{plain(name)}**."
    return (f"Loaded **{plain(name)}** ({human_size(services.loaded.size) if services.loaded else ''}) · "
            f"format `{model.chat_format}` · LM on {model.device_lm} · mmproj on {model.device_mmproj} "
            f"(llama.cpp {getattr(model, 'backend', 'cpu').upper()} build"
            f"{'' if getattr(model, 'extra_buffers', True) else ', AMX kernels off'}) · "
            f"context {model.n_ctx} · {model.image_tokens} tokens for a picture at the encoder's size · up to "
            f"{model.max_images} images per message")


# Phones: start with the conversation list folded away so the chat is what one sees first.
# Images dropped anywhere on the chat go to the input box, as if dropped on it.
JS_ON_LOAD = """
() => {
  const inChat = (e) => e.target && e.target.closest && e.target.closest('#iris-chat');
  document.addEventListener('dragover', (e) => { if (inChat(e)) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    if (!inChat(e) || !e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    const input = document.querySelector('#iris-input input[type=file]');
    if (!input) return;
    const dt = new DataTransfer();
    for (const f of e.dataTransfer.files) dt.items.add(f);
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
  if (window.innerWidth < 768) {
    setTimeout(() => {
      const sb = document.querySelector('#iris-sidebar');
      if (sb && sb.classList.contains('open')) sb.querySelector('button.toggle-button')?.click();
    }, 300);
  }
}
"""


def launch(services: Services, host: str, port: int, open_browser: bool = True, block: bool = True,
           on_ready: Callable[[], None] | None = None, key: str | None = None) -> gr.Blocks:
    """Serve the app (until Ctrl+C or SIGTERM when block); never with a public share link.

    Only requests for this host, from this origin (and with key, when given) reach the app: app.webguard.
    """
    from app import config
    from app.webguard import HostGuard

    assert services.history is not None
    demo = build_ui(services)
    demo.queue(default_concurrency_limit=1)
    favicon = Path(__file__).resolve().parent.parent / "assets" / "iris.png"
    demo.launch(server_name=host, server_port=port, inbrowser=False, share=False, quiet=True,
                show_error=False, css=CSS, js=JS_ON_LOAD, theme=gr.themes.Soft(), footer_links=[],
                favicon_path=str(favicon) if favicon.exists() else None, max_file_size=config.max_upload_bytes(),
                allowed_paths=[str(services.history.images_dir)], prevent_thread_lock=True)
    # Outside everything Gradio built (its CORS layer included): the guard sees each request first.
    app = demo.server_app
    app.middleware_stack = HostGuard(app.middleware_stack or app.build_middleware_stack(),  # type: ignore[assignment]
                                     host, port, key)
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
