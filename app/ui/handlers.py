"""What each event does: module-level functions that take the services, the page's parts and the event's
inputs, call a service, and return (or yield) a dict of new values keyed by the parts they change.

Parts left out of a returned dict keep their value. User-caused errors become a toast plus a line in
place, not gr.Error: a failed event paints "Error" over its output components and hides the conversation.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from app.chat import Reply
from app.errors import AppError
from app.services import NO_MODEL, Services
from app.settings import SYSTEM_PRESETS
from app.store import human_size
from app.ui import strings
from app.ui.strings import say
from app.ui.views import (
    attachment_line,
    catalog_choices,
    catalog_details,
    conversation_view,
    current_model,
    downloads_html,
    files_help,
    load_failed,
    model_status,
    model_view,
    plain,
    recommendation,
    shortcuts_html,
    toast,
    told,
)

if TYPE_CHECKING:
    from app.ui.layout import Parts

logger = logging.getLogger(__name__)

Update = dict[Any, Any]  # component -> its new value


def shows_app_errors(fn: Callable) -> Callable:
    """Show AppError messages in the UI; log anything else and show a generic message."""

    def convert(exc: Exception) -> Exception:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, AppError):
            return gr.Error(told(exc))
        logger.exception("unexpected error in %s", fn.__name__)
        if os.environ.get("IRIS_RAISE_ERRORS"):
            return exc
        return gr.Error(say("Something went wrong inside Iris; the details are in the log file."))

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


def bind(fn: Callable, services: Services, ui: Parts, **fixed: Any) -> Callable:
    """fn as Gradio calls it: services and parts filled in, errors shown, the event's inputs as parameters, and
    app.ui.strings.say() speaking the request's language (the Settings pick, else the browser's).

    The signature and annotations are the event's own, so Gradio still sees gr.EditData and generators.
    """
    params = list(inspect.signature(fn).parameters.values())[2:]
    params = [p for p in params if p.name not in fixed]
    shown = shows_app_errors(fn)

    def tokens(request: gr.Request | None) -> Any:
        headers = getattr(request, "headers", None) or {}
        cookies = getattr(request, "cookies", None) or {}
        return strings.speak(cookies.get(strings.COOKIE), headers.get("accept-language"))

    if inspect.isgeneratorfunction(fn):
        def call(*args: Any) -> Iterator[Any]:
            *args, request = args  # type: ignore[assignment]
            steps = shown(services, ui, *args, **fixed)
            while True:  # each step may run on another worker thread: the language is set around each one
                spoken = tokens(request)
                try:
                    item = next(steps)
                except StopIteration:
                    return
                finally:
                    strings.unspeak(spoken)
                yield item
    else:
        def call(*args: Any) -> Any:  # type: ignore[misc]
            *args, request = args  # type: ignore[assignment]
            spoken = tokens(request)
            try:
                return shown(services, ui, *args, **fixed)
            finally:
                strings.unspeak(spoken)
    call.__name__ = call.__qualname__ = fn.__name__
    call.__module__ = fn.__module__
    call.__doc__ = fn.__doc__
    # Last and positional: Gradio passes a gr.Request only to a positional parameter annotated with it.
    asked = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
    call.__signature__ = inspect.Signature([*params, asked])  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: fn.__annotations__[p.name] for p in params if p.name in fn.__annotations__}
    call.__annotations__["request"] = gr.Request
    return call


def _files(message: dict | None) -> list[str]:
    return [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files", [])]


def chat_messages(messages: list[dict]) -> list[dict]:
    """views.to_chatbot's messages as the Chatbot takes them: a video's frames become a gallery strip."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, dict) and "frames" in content:
            frames = content["frames"]
            m = {**m, "content": gr.Gallery(value=frames, columns=min(len(frames), 8), rows=1, height=160,
                                            object_fit="contain", allow_preview=True, show_label=False, buttons=[])}
        out.append(m)
    return out


def show(s: Services, ui: Parts, cid: str | None) -> Update:
    """A conversation on the page: messages, index map, gauge, title."""
    shown = conversation_view(s, cid)
    return {ui.chatbot: chat_messages(shown.messages), ui.index: shown.stored_at, ui.gauge: shown.gauge,
            ui.title: shown.title, ui.map: shown.map}


def conv_choices(s: Services, search: str = "") -> list[tuple[str, str]]:
    """The sidebar's conversations (title, id), newest first."""
    assert s.history is not None
    return [(c.title, c.id) for c in s.history.list(search)]


# -- opening the page, conversations ----------------------------------------------------------------------

def open_app(s: Services, ui: Parts) -> Update:
    """The page is opened (or reloaded): the saved settings, fresh model lists, the newest conversation; and,
    if no model is loaded, which one load_at_start will load: the last one used, else the only one
    installed, else the bundled demo."""
    out: Update = {}
    if s.loaded is None and (pick := _start_model(s)) is not None:
        # load_at_start, next, loads it: the page is usable meanwhile
        out[ui.status] = say("Loading **{name}** …", name=plain(pick))
    convs = conv_choices(s)
    cid = convs[0][1] if convs else None
    view = model_view(s)
    st = s.settings
    out.update({ui.conversations: gr.update(choices=convs, value=cid), ui.cid: cid, **show(s, ui, cid),
                ui.model: gr.update(choices=view.choices, value=current_model(s, view.choices)),
                ui.installed: view.installed, ui.remove_name: gr.update(choices=view.real, value=None),
                ui.problems: view.note,
                # What was saved, not the values the server started with (another tab may have changed them).
                ui.system: st.system_prompt, ui.temperature: st.temperature, ui.top_p: st.top_p,
                ui.max_tokens: st.max_tokens, ui.n_ctx: st.n_ctx, ui.n_gpu_layers: st.n_gpu_layers,
                ui.video_fps: st.video_fps, ui.video_max_frames: st.video_max_frames})
    if ui.status not in out:
        out[ui.status] = (model_status(s, s.loaded.name) if s.loaded else
                          model_status(s, None) if not view.choices else say("Pick a model and press **Load**."))
    out[ui.seen] = _loaded_name(s)
    # What the server wrote into the page, in this page's language (gr.I18n translates only labels).
    out.update({ui.chatbot: gr.update(value=out[ui.chatbot],
                                      placeholder=say("Drop, paste or pick an image, then ask about it.")),
                ui.box: gr.update(placeholder=say("Ask about an image or a video: drop, paste or pick one "
                                                  "(several images are fine)…")),
                ui.keys: shortcuts_html(), ui.language: strings.chosen(), ui.files_help: files_help(s),
                ui.recommended: recommendation(s, catalog_choices(s)[2], view.real, view.choices),
                ui.details: catalog_details(s, *_first_entry(s))})
    return out


def _first_entry(s: Services) -> tuple[str | None, str | None]:
    """The catalog entry and quantization the Models tab shows first (this machine's pick)."""
    from app.catalog import find_spec

    pick = catalog_choices(s)[1]
    return pick, find_spec(pick, s.catalog()[1]).quants[0].name if pick else None


def _loaded_name(s: Services) -> str | None:
    return s.loaded.name if s.loaded else None


def load_at_start(s: Services, ui: Parts) -> Update:
    """After the page is shown: load the model open_app picked, if nothing is loaded yet."""
    pick = _start_model(s) if s.loaded is None else None
    if pick is None:
        # Another window may have loaded it meanwhile: open_app's "Loading …" gives way to what is loaded.
        return {ui.status: model_status(s, s.loaded.name) if s.loaded else gr.skip(), ui.seen: _loaded_name(s)}
    try:
        s.load(pick)
    except AppError as exc:  # the page stays usable; the status line says why
        return {ui.status: load_failed(s, exc), ui.seen: _loaded_name(s)}
    return {ui.status: model_status(s, pick), ui.seen: _loaded_name(s)}


def _start_model(s: Services) -> str | None:
    pairs = s.store.pairs()
    names = [p.name for p in pairs]
    real = [p.name for p in pairs if not p.is_demo]
    if s.settings.last_model in names:
        return s.settings.last_model
    if len(real) == 1:
        return real[0]
    if pairs and not real:
        return pairs[0].name  # first run: chat works at once on the bundled demo (a few MB)
    return None


def select_conv(s: Services, ui: Parts, cid: str | None) -> Update:
    """A conversation picked in the sidebar."""
    # The state follows the selection even when showing it fails, so Delete acts on what is selected.
    try:
        return {ui.cid: cid, **show(s, ui, cid), ui.notice: ""}
    except AppError as exc:
        gr.Warning(told(exc))
        return {ui.cid: cid, **show(s, ui, None), ui.notice: ""}


def new_chat(s: Services, ui: Parts) -> Update:
    """An empty page; the conversation is created with its first question."""
    return {ui.conversations: gr.update(value=None), ui.cid: None, **show(s, ui, None), ui.notice: ""}


def search_convs(s: Services, ui: Parts, text: str, cid: str | None) -> Update:
    """The sidebar filtered by text, keeping the selection when it still shows."""
    convs = conv_choices(s, text)
    return {ui.conversations: gr.update(choices=convs, value=cid if any(c[1] == cid for c in convs) else None)}


def rename(s: Services, ui: Parts, cid: str | None, title: str, search: str) -> Update:
    """The conversation renamed."""
    if not cid:
        gr.Warning(say("Start or pick a conversation first."))
        return {ui.conversations: gr.skip()}
    assert s.history is not None
    s.history.rename(cid, title)
    return {ui.conversations: gr.update(choices=conv_choices(s, search), value=cid)}


def delete(s: Services, ui: Parts, cid: str | None, confirmed: Any) -> Update:
    """The conversation and its images deleted, once the person confirmed."""
    if not cid or not confirmed:
        return {ui.cid: gr.skip()}
    assert s.history is not None
    s.history.delete(cid)
    return {ui.conversations: gr.update(choices=conv_choices(s), value=None), ui.cid: None, **show(s, ui, None),
            ui.notice: ""}


def export(s: Services, ui: Parts, cid: str | None, *, kind: str) -> Update:
    """The conversation as a file to download: a Markdown .zip or an importable .json."""
    if not cid:
        gr.Warning(say("Pick a conversation to export first."))
        return {ui.export_file: gr.update(value=None, visible=False)}
    assert s.history is not None
    out = Path(tempfile.mkdtemp(prefix="iris-export-"))
    path = s.history.export_markdown(cid, out) if kind == "md" else s.history.export_file(cid, out)
    return {ui.export_file: gr.update(value=str(path), visible=True)}


def import_conv(s: Services, ui: Parts, file: Any) -> Update:
    """An exported .json added as a new conversation, all or nothing."""
    assert s.history is not None
    path = file if isinstance(file, str) else getattr(file, "name", "")
    try:
        cid = s.history.import_file(path)
    except AppError as exc:
        gr.Warning(told(exc))
        return {ui.cid: gr.skip()}
    out = {ui.conversations: gr.update(choices=conv_choices(s), value=cid), ui.cid: cid, **show(s, ui, cid)}
    gr.Info(say("Imported “{title}”.", title=toast(out[ui.title])))
    return out


# -- asking, streaming ------------------------------------------------------------------------------------

def preview_cost(s: Services, ui: Parts, message: dict, cid: str | None) -> Update:
    """Under the input box, as files are attached: what they will cost the loaded model."""
    try:
        return {ui.cost_line: attachment_line(s.attachment_cost(cid, _files(message)))}
    except AppError as exc:
        return {ui.cost_line: f"⚠️ {plain(say(str(exc)))}"}


def add_user_turn(s: Services, ui: Parts, message: dict, cid: str | None, system: str) -> Update:
    """The question saved (the conversation created with it); accepted tells respond to answer it."""
    try:
        cid = s.ask(cid, (message or {}).get("text", ""), _files(message), system=system or "")
    except AppError as exc:
        gr.Warning(told(exc))
        return {ui.accepted: False}  # the message stays in the box to fix; nothing else changes
    shown = conversation_view(s, cid)
    return {ui.cid: cid, ui.chatbot: chat_messages(shown.messages), ui.index: shown.stored_at, ui.map: shown.map,
            ui.box: gr.update(value=None),
            ui.conversations: gr.update(choices=conv_choices(s), value=cid), ui.accepted: True}


def stream(s: Services, ui: Parts, cid: str, run: Callable[[], Reply]) -> Iterator[Update]:
    """Show a reply as it streams, then the saved conversation with its stats and any notice."""
    msgs = chat_messages(conversation_view(s, cid).messages)
    bubble = {"role": "assistant", "content": "…"}
    try:
        reply = run()
        for _delta in reply:
            bubble["content"] = reply.text
            yield {ui.chatbot: msgs + [bubble]}
    except AppError as exc:
        gr.Warning(told(exc))
        yield {**show(s, ui, cid), ui.notice: f"⚠️ {plain(say(str(exc)))}"}
        return
    if reply.notice:
        gr.Warning(told(reply.notice))
    yield {**show(s, ui, cid), ui.notice: plain(say(reply.notice)) if reply.notice else ""}


def respond(s: Services, ui: Parts, cid: str | None, accepted: bool) -> Iterator[Update]:
    """The answer to the question add_user_turn accepted."""
    if not accepted or not cid:
        yield {ui.notice: gr.skip()}  # yielding nothing would blank the outputs
        return
    yield from stream(s, ui, cid, lambda: s.reply(cid))


def regenerate(s: Services, ui: Parts, cid: str | None) -> Iterator[Update]:
    """The last reply replaced by a new one."""
    if not cid:
        gr.Warning(say("There is no reply to regenerate yet."))
        yield {ui.notice: gr.skip()}
        return
    yield from stream(s, ui, cid, lambda: s.regenerate(cid))


def edit_message(s: Services, ui: Parts, cid: str | None, index: list[int], data: gr.EditData) -> Iterator[Update]:
    """A question edited in place: what followed it goes, and it is answered again."""
    pos = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
    stored_i = index[pos] if cid and 0 <= pos < len(index) else -1
    value = data.value
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str)), "")
    elif isinstance(value, dict):
        value = value.get("text", "")
    if cid is None or stored_i < 0:
        gr.Warning(say("Only your own questions can be edited."))
        yield {**show(s, ui, cid), ui.notice: ""}
        return
    yield from stream(s, ui, cid, lambda: s.edit(cid, stored_i, str(value)))


def switch_version(s: Services, ui: Parts, cid: str | None, command: str) -> Update:
    """'‹' or '›' beside a message (iris.js sends 'message id:step'): another version of it on screen."""
    try:
        mid, step = (int(x) for x in command.split(":"))
        if not cid:
            raise ValueError
    except ValueError:
        return {ui.notice: gr.skip()}
    try:
        s.switch_version(cid, mid, 1 if step > 0 else -1)
    except AppError as exc:
        gr.Warning(told(exc))
    return {**show(s, ui, cid), ui.notice: ""}


def stop(s: Services, ui: Parts, cid: str | None) -> None:
    """The reply in this page's conversation asked to end (other conversations' and API clients' go on)."""
    if not cid or not s.stop(cid):
        gr.Info(say("Nothing is being answered in this chat."))


# -- models and settings ----------------------------------------------------------------------------------

def load_model(s: Services, ui: Parts, name: str | None) -> Update:
    """An installed model loaded (a failure leaves the previous one loaded, and says so)."""
    try:
        if not name:
            raise AppError("Pick a model from the list first.")  # shown through told(), in the page's language
        pair = s.load(name)
    except AppError as exc:
        gr.Warning(told(exc))
        return {ui.status: load_failed(s, exc), ui.seen: _loaded_name(s)}
    return {ui.status: model_status(s, pair.name), ui.seen: _loaded_name(s)}


def cancel_load(s: Services, ui: Parts) -> None:
    """A load in progress stopped (the status line then says so)."""
    if not s.cancel_load():
        gr.Info(say("Nothing is loading."))


def load_files(s: Services, ui: Parts, lm: str, mmproj: str) -> Update:
    """Two files given by path loaded as a pair."""
    try:
        if not lm or not mmproj:
            raise AppError("Give the paths of both files: the LM .gguf and its mmproj .gguf.")
        pair = s.load_files(Path(lm.strip()), Path(mmproj.strip()))
    except AppError as exc:
        gr.Warning(told(exc))
        line = load_failed(s, exc)
        return {ui.files_status: line, ui.status: line, ui.seen: _loaded_name(s)}
    gr.Info(say("Loaded {name}.", name=toast(pair.name)))
    line = model_status(s, pair.name)
    return {ui.files_status: line, ui.status: line, ui.seen: _loaded_name(s)}


def rescan(s: Services, ui: Parts) -> Update:
    """The models folder read again."""
    view = model_view(s)
    return {ui.model: gr.update(choices=view.choices, value=current_model(s, view.choices)), ui.problems: view.note}


def add_server(s: Services, ui: Parts, url: str, key: str) -> Update:
    """An OpenAI-compatible server added: its models join the Chat tab's list."""
    try:
        names = s.add_server(url, key)
    except AppError as exc:
        gr.Warning(told(exc))
        return {ui.server_status: f"⚠️ {plain(say(str(exc)))}"}
    view = model_view(s)
    listed = ", ".join(plain(n.split(" @ ")[0]) for n in names) or say("none")
    return {ui.server_status: say("Added {url}: {n} model(s) ({listed}). Pick one on the Chat tab.",
                                  url=plain(url.strip()), n=len(names), listed=listed),
            ui.model: gr.update(choices=view.choices, value=current_model(s, view.choices))}


def save_setting(s: Services, ui: Parts, value: Any, *, name: str) -> None:
    """One setting saved (sampling applies to the next reply, context and GPU layers to the next load)."""
    s.update_settings(**{name: value})


def pick_preset(s: Services, ui: Parts, preset: str) -> Update:
    """A preset's text in the system prompt box."""
    return {ui.system: SYSTEM_PRESETS.get(preset, "")}


def save_system(s: Services, ui: Parts, cid: str | None, text: str) -> None:
    """The system prompt saved, for new chats and for this one."""
    s.update_settings(system_prompt=text)
    if cid and s.history is not None:
        s.history.set_system(cid, text)


# -- the Models tab ---------------------------------------------------------------------------------------

def pick_entry(s: Services, ui: Parts, spec_id: str | None) -> Update:
    """A catalog entry picked: its quantizations and facts."""
    from app.catalog import find_spec

    if not spec_id:
        return {ui.quant: gr.update(choices=[], value=None), ui.details: ""}
    names = [q.name for q in find_spec(spec_id, s.catalog()[1]).quants]
    return {ui.quant: gr.update(choices=names, value=names[0]), ui.details: catalog_details(s, spec_id, names[0])}


def pick_quant(s: Services, ui: Parts, spec_id: str | None, quant: str | None) -> Update:
    """A quantization picked: the entry's facts for it."""
    return {ui.details: catalog_details(s, spec_id, quant)}


def start_download(s: Services, ui: Parts, spec_id: str | None, quant: str | None) -> Update:
    """A download started (or resumed) in the background."""
    from app.catalog import find_spec

    if not spec_id:
        gr.Warning(say("Pick a model from the catalog first."))
    else:
        s.downloads.start(find_spec(spec_id, s.catalog()[1]), quant)
    return {ui.jobs: downloads_html(s.downloads.jobs())}


def cancel_download(s: Services, ui: Parts, spec_id: str | None, quant: str | None) -> Update:
    """A running download paused (what arrived is kept)."""
    from app.catalog import find_spec
    from app.store import install_name

    if spec_id:
        spec = find_spec(spec_id, s.catalog()[1])
        if not s.downloads.cancel(install_name(spec.id, spec.quant(quant).name)):
            gr.Info(say("That model is not downloading."))
    return {ui.jobs: downloads_html(s.downloads.jobs())}


def poll(s: Services, ui: Parts, known: list, seen: str | None) -> Update:
    """Every second: the download bars, the model lists once a download has finished, and the status line
    once another window (or the API) has loaded another model: there is one engine for every window."""
    jobs = s.downloads.jobs()
    out: Update = {ui.jobs: downloads_html(jobs)}
    name = _loaded_name(s)
    if name != seen and not s.loading:
        out.update({ui.status: model_status(s, name) if name else say(NO_MODEL), ui.seen: name})
        if name:
            out[ui.model] = gr.update(value=name)
            gr.Info(say("{name} was loaded in another window; this window's chats use it now.", name=toast(name)))
    # The folder is scanned (every GGUF header read) only when a download has just finished, not every tick.
    finished = [(j.name, id(j)) for j in jobs if j.folder is not None]
    if finished != known:
        view = model_view(s)
        out.update({ui.model: gr.update(choices=view.choices, value=current_model(s, view.choices)),
                    ui.installed: view.installed, ui.remove_name: gr.update(choices=view.real, value=None),
                    ui.finished: finished})
    return out


def remove_model(s: Services, ui: Parts, name: str | None) -> Update:
    """An installed model deleted from disk, once the person confirmed."""
    if name:
        try:
            freed = s.remove(name)
            gr.Info(say("Removed {name}; {size} freed.", name=toast(name), size=human_size(freed)))
        except AppError as exc:
            gr.Warning(told(exc))
    view = model_view(s)
    return {ui.installed: view.installed, ui.remove_name: gr.update(choices=view.real, value=None),
            ui.model: gr.update(choices=view.choices, value=current_model(s, view.choices))}
