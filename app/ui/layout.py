"""The page: every component in one place (Parts), and which handler each event runs (build_ui)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.services import Services
from app.settings import SYSTEM_PRESETS
from app.ui import handlers as h
from app.ui.handlers import bind
from app.ui.strings import CATALOG, LANGUAGES
from app.ui.views import (
    Shown,
    catalog_choices,
    catalog_details,
    choice_values,
    current_model,
    downloads_html,
    files_help,
    model_status,
    model_view,
    recommendation,
    shortcuts_html,
)
from app.video import EXTENSIONS as VIDEO_EXTENSIONS

I18N = gr.I18n(**CATALOG)


def t(text: str) -> Any:
    """The page's words in the browser's language (app.ui.strings), English when it has no translation."""
    return I18N(text) if text in CATALOG["en"] else text


@dataclass
class Parts:
    """The components that handlers read or change, by name."""

    cid: Any  # gr.State: the conversation on the page (None for a new chat)
    index: Any  # gr.State: for each chatbot message, the stored message it shows
    accepted: Any  # gr.State: whether the last question was saved (so respond answers it)
    finished: Any  # gr.State: downloads already seen finished
    seen: Any  # gr.State: the model this page last showed as loaded (another window may load another)
    map: Any  # the page map for iris.js: versions ('‹ 2/3 ›') and stats rows (views.page_map)
    version_cmd: Any  # hidden: iris.js writes 'message id:step' here and clicks version_go
    version_go: Any
    conversations: Any
    new_chat: Any
    search: Any
    title: Any
    rename: Any
    export_md: Any
    export_json: Any
    export_file: Any
    import_file: Any
    delete: Any
    model: Any
    load: Any
    cancel_load: Any
    rescan: Any
    status: Any
    problems: Any
    chatbot: Any
    copy_all: Any
    box: Any
    cost_line: Any
    stop: Any
    regenerate: Any
    gauge: Any
    notice: Any
    preset: Any
    system: Any
    temperature: Any
    top_p: Any
    max_tokens: Any
    n_ctx: Any
    n_gpu_layers: Any
    video_fps: Any
    video_max_frames: Any
    entry: Any
    quant: Any
    download: Any
    cancel: Any
    details: Any
    jobs: Any
    installed: Any
    remove_name: Any
    remove: Any
    lm_path: Any
    mm_path: Any
    load_files: Any
    files_status: Any
    server_url: Any
    server_key: Any
    add_server: Any
    server_status: Any
    keys: Any  # the keyboard shortcuts box
    language: Any  # Settings: the page's language ('' = the browser's)
    recommended: Any  # the Models tab's recommendation
    files_help: Any  # how to add one's own GGUF files
    timer: Any


def layout(services: Services) -> Parts:
    """Create the page's components (inside a gr.Blocks) and return them by name."""
    view = model_view(services)
    names, real = view.choices, view.real
    st = services.settings
    preferred = st.last_model if st.last_model in choice_values(names) else current_model(services, names)
    c: dict[str, Any] = {"cid": gr.State(None), "index": gr.State([]), "accepted": gr.State(False),
                         "finished": gr.State([]), "seen": gr.State(None)}
    with gr.Sidebar(label=t("Conversations"), elem_id="iris-sidebar", open=True):
        c["new_chat"] = gr.Button(t("+ New chat"), variant="primary", elem_id="iris-new-chat")
        c["search"] = gr.Textbox(label=t("Search conversations"), placeholder=t("Search conversations…"),
                                 show_label=False, elem_id="iris-search")
        c["conversations"] = gr.Radio(choices=[], label=t("Conversations"), elem_id="iris-conversations")
        with gr.Accordion(t("This conversation"), open=False, elem_id="iris-conv-actions"):
            c["title"] = gr.Textbox(label=t("Name"), elem_id="iris-title")
            c["rename"] = gr.Button(t("Rename"), size="sm", elem_id="iris-rename")
            with gr.Row():
                c["export_md"] = gr.Button(t("Export Markdown"), size="sm", elem_id="iris-export-md")
                c["export_json"] = gr.Button(t("Export JSON"), size="sm", elem_id="iris-export-json")
            c["export_file"] = gr.File(label=t("Exported file"), visible=False, elem_id="iris-export-file")
            c["import_file"] = gr.UploadButton(t("Import JSON"), file_types=[".json"], size="sm", elem_id="iris-import")
            c["delete"] = gr.Button(t("Delete conversation"), variant="stop", size="sm", elem_id="iris-delete")
    with gr.Tabs(selected="chat" if real else "models"):
        with gr.Tab(t("Chat"), id="chat"):
            with gr.Row(equal_height=True):
                c["model"] = gr.Dropdown(choices=names, value=preferred, label=t("Model"), scale=4,
                                         allow_custom_value=False, elem_id="iris-model")
                # Small minimum widths: on a phone the three buttons share one line under the picker.
                c["load"] = gr.Button(t("Load"), variant="primary", scale=1, min_width=70, elem_id="iris-load")
                c["cancel_load"] = gr.Button(t("Cancel loading"), scale=1, min_width=70, elem_id="iris-cancel-load")
                c["rescan"] = gr.Button(t("Rescan"), scale=1, min_width=70)
            c["status"] = gr.Markdown(model_status(services, None) if not names else
                                      "Pick a model and press **Load**.", elem_id="iris-status")
            c["problems"] = gr.Markdown(view.note, elem_id="iris-problems")
            # Our own "copy all": Gradio's copies each image as its temporary upload address. (A chatbot button
            # shows gr.I18n's raw marker, so iris.js translates its label.)
            c["copy_all"] = gr.Button("Copy all", size="sm", elem_id="iris-copy-all", render=False)
            c["chatbot"] = gr.Chatbot(
                label=t("Chat"), show_label=False, height="calc(100vh - 510px)", buttons=["copy", c["copy_all"]],
                editable="user",
                elem_id="iris-chat", allow_tags=False, sanitize_html=True, group_consecutive_messages=False,
                latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                  {"left": "\\[", "right": "\\]", "display": True},
                                  {"left": "\\(", "right": "\\)", "display": False}],
                placeholder="Drop, paste or pick an image, then ask about it.",  # open_app: in the page's language
            )
            c["box"] = gr.MultimodalTextbox(
                file_types=["image", *VIDEO_EXTENSIONS], file_count="multiple", sources=["upload"],
                placeholder="Ask about an image or a video: drop, paste or pick one (several images are fine)…",
                show_label=False, elem_id="iris-input",
            )
            c["map"] = gr.HTML(Shown([], [], "", "").map, elem_id="iris-map")
            c["version_cmd"] = gr.Textbox(elem_id="iris-version-cmd", show_label=False, container=False)
            c["version_go"] = gr.Button("Show version", elem_id="iris-version-go")
            c["cost_line"] = gr.Markdown("", elem_id="iris-image-cost")
            with gr.Row():
                c["stop"] = gr.Button(t("Stop"), variant="stop", elem_id="iris-stop", size="sm", min_width=70)
                c["regenerate"] = gr.Button(t("Regenerate"), elem_id="iris-regenerate", size="sm", min_width=70)
                c["gauge"] = gr.HTML("", elem_id="iris-gauge", scale=2, min_width=240)
            c["notice"] = gr.Markdown("", elem_id="iris-stats")
            with gr.Accordion(t("Settings"), open=False, elem_id="iris-settings"):
                c["preset"] = gr.Dropdown(choices=list(SYSTEM_PRESETS), value=None, label=t("System prompt preset"))
                c["system"] = gr.Textbox(label=t("System prompt"), lines=2, value=st.system_prompt,
                                         placeholder=t("Leave empty for the model's default"), elem_id="iris-system")
                with gr.Row():
                    c["temperature"] = gr.Slider(0.0, 2.0, value=st.temperature, step=0.05, label=t("Temperature"))
                    c["top_p"] = gr.Slider(0.05, 1.0, value=st.top_p, step=0.05, label=t("Top p"))
                    c["max_tokens"] = gr.Slider(16, 4096, value=st.max_tokens, step=16, label=t("Max tokens"))
                with gr.Row():
                    c["n_ctx"] = gr.Slider(0, 32768, value=st.n_ctx, step=512,
                                           label=t("Context size (0 = the model's own, up to 4096; next Load)"))
                    c["n_gpu_layers"] = gr.Slider(-1, 200, value=st.n_gpu_layers, step=1,
                                                  label=t("GPU layers (-1 = automatic; next Load)"))
                with gr.Row():
                    c["video_fps"] = gr.Slider(0.1, 4.0, value=st.video_fps, step=0.1,
                                               label=t("Video: frames per second"), elem_id="iris-video-fps")
                    c["video_max_frames"] = gr.Slider(
                        1, 64, value=st.video_max_frames, step=1, elem_id="iris-video-frames",
                        label=t("Video: at most this many frames (fewer when the context is short)"))
                c["language"] = gr.Dropdown(choices=[(t("The browser's language"), ""),
                                                     *((name, code) for code, name in LANGUAGES.items())],
                                            value="", label=t("Language"), elem_id="iris-language")
            c["keys"] = gr.HTML(shortcuts_html(), elem_id="iris-keys")

        with gr.Tab(t("Models"), id="models"):
            choices, pick, why = catalog_choices(services)
            why = recommendation(services, why, real, names)
            c["recommended"] = gr.Markdown(why, elem_id="iris-recommended")
            with gr.Row(equal_height=True):
                c["entry"] = gr.Dropdown(choices=choices, value=pick, label=t("Catalog"), scale=4,
                                         elem_id="iris-catalog")
                first_quants = [q.name for q in next(s for s in services.catalog()[1] if s.id == pick).quants]
                c["quant"] = gr.Dropdown(choices=first_quants, value=first_quants[0], label=t("Quantization"),
                                         scale=1)
                c["download"] = gr.Button(t("Download"), variant="primary", scale=1, elem_id="iris-download")
                c["cancel"] = gr.Button(t("Cancel download"), scale=1, elem_id="iris-cancel-download")
            c["details"] = gr.Markdown(catalog_details(services, pick, first_quants[0]))
            c["jobs"] = gr.HTML(downloads_html(services.downloads.jobs()), elem_id="iris-downloads")
            gr.Markdown(t("### Installed"))
            c["installed"] = gr.Markdown(view.installed, elem_id="iris-installed")
            with gr.Row(equal_height=True):
                c["remove_name"] = gr.Dropdown(choices=real, value=None, label=t("Remove a model"), scale=4,
                                               elem_id="iris-remove-name")
                c["remove"] = gr.Button(t("Remove"), variant="stop", scale=1, elem_id="iris-remove")
            with gr.Accordion(t("Add my own GGUF files"), open=False):
                c["files_help"] = gr.Markdown(files_help(services))
                with gr.Row():
                    c["lm_path"] = gr.Textbox(label=t("LM .gguf path"), scale=3)
                    c["mm_path"] = gr.Textbox(label=t("mmproj .gguf path"), scale=3)
                    c["load_files"] = gr.Button(t("Load these files"), scale=1)
                c["files_status"] = gr.Markdown("", elem_id="iris-files-status")
            with gr.Accordion(t("Use a model on a server (OpenAI API: vLLM, llama-server, Ollama, LM Studio, Iris)"),
                              open=False, elem_id="iris-servers"):
                gr.Markdown(t("A server's models join the list on the Chat tab; images, history and stats work as "
                              "with models on this computer. Keys are kept in Iris's settings file."))
                with gr.Row():
                    c["server_url"] = gr.Textbox(label=t("Server address"), placeholder="http://gpu-box:8000/v1",
                                                 scale=3, elem_id="iris-server-url")
                    c["server_key"] = gr.Textbox(label=t("API key (if it needs one)"), type="password", scale=2,
                                                 elem_id="iris-server-key")
                    c["add_server"] = gr.Button(t("Add server"), scale=1, elem_id="iris-add-server")
                c["server_status"] = gr.Markdown("", elem_id="iris-server-status")
    c["timer"] = gr.Timer(1.0)
    return Parts(**c)


def build_ui(services: Services) -> gr.Blocks:
    """The whole app as a Blocks object; nothing is loaded until a person picks a model."""
    assert services.history is not None, "the UI needs services built with history"
    with gr.Blocks(title="Iris", analytics_enabled=False) as demo:
        ui = layout(services)
        wire(demo, services, ui)
    return demo


def wire(demo: gr.Blocks, services: Services, ui: Parts) -> None:
    """Connect each event to its handler; outputs list every part the handler may change."""

    def on(fn: Any, **fixed: Any) -> Any:
        return bind(fn, services, ui, **fixed)

    shown = [ui.chatbot, ui.index, ui.gauge, ui.title, ui.map]  # what showing a conversation updates
    page = [ui.conversations, ui.cid, *shown, ui.notice]  # ... and the sidebar, selection and notice with it
    reply = [*shown, ui.notice]
    settings = [ui.system, ui.temperature, ui.top_p, ui.max_tokens, ui.n_ctx, ui.n_gpu_layers, ui.video_fps,
                ui.video_max_frames]
    lists = [ui.model, ui.installed, ui.remove_name, ui.problems]
    words = [ui.box, ui.keys, ui.language, ui.files_help, ui.recommended, ui.details]  # in the page's language
    demo.load(on(h.open_app), None,
              [ui.conversations, ui.cid, *shown, ui.status, *settings, *lists, ui.seen, *words]).then(
        on(h.load_at_start), None, [ui.status, ui.seen])
    ui.conversations.input(on(h.select_conv), ui.conversations, page)
    ui.new_chat.click(on(h.new_chat), None, page)
    ui.chatbot.clear(on(h.new_chat), None, page)  # the bin icon (iris.js names it "New chat")
    ui.search.change(on(h.search_convs), [ui.search, ui.cid], ui.conversations, show_progress="hidden")
    ui.box.change(on(h.preview_cost), [ui.box, ui.cid], ui.cost_line, show_progress="hidden",
                  trigger_mode="always_last")
    ui.box.submit(on(h.add_user_turn), [ui.box, ui.cid, ui.system],
                  [ui.cid, ui.chatbot, ui.index, ui.map, ui.box, ui.conversations, ui.accepted]).then(
        on(h.respond), [ui.cid, ui.accepted], reply)
    ui.regenerate.click(on(h.regenerate), ui.cid, reply)
    ui.chatbot.retry(on(h.regenerate), ui.cid, reply)
    ui.chatbot.edit(on(h.edit_message), [ui.cid, ui.index], reply)
    ui.copy_all.click(None, None, None, js="() => window.irisCopyAll && window.irisCopyAll()")
    ui.version_go.click(on(h.switch_version), [ui.cid, ui.version_cmd], reply)
    ui.stop.click(on(h.stop), ui.cid, None, concurrency_limit=None, show_progress="hidden")  # at once, with its toast
    ui.rename.click(on(h.rename), [ui.cid, ui.title, ui.search], ui.conversations)
    ui.delete.click(on(h.delete), [ui.cid, ui.delete], page,
                    js="(cid, b) => [cid, confirm(window.irisSay('Delete this conversation and its images?'))]")
    ui.export_md.click(on(h.export, kind="md"), ui.cid, ui.export_file)
    ui.export_json.click(on(h.export, kind="json"), ui.cid, ui.export_file)
    ui.import_file.upload(on(h.import_conv), ui.import_file, [ui.conversations, ui.cid, *shown])

    ui.load.click(on(h.load_model), ui.model, [ui.status, ui.seen])
    ui.cancel_load.click(on(h.cancel_load), None, None, queue=False)
    ui.load_files.click(on(h.load_files), [ui.lm_path, ui.mm_path], [ui.files_status, ui.status, ui.seen])
    ui.rescan.click(on(h.rescan), None, [ui.model, ui.problems])
    ui.add_server.click(on(h.add_server), [ui.server_url, ui.server_key], [ui.server_status, ui.model])
    ui.preset.input(on(h.pick_preset), ui.preset, ui.system).then(on(h.save_system), [ui.cid, ui.system], None)
    ui.system.blur(on(h.save_system), [ui.cid, ui.system], None)
    for name in ("temperature", "top_p", "max_tokens", "n_ctx", "n_gpu_layers", "video_fps", "video_max_frames"):
        slider = getattr(ui, name)
        slider.release(on(h.save_setting, name=name), slider, None, show_progress="hidden")

    ui.entry.change(on(h.pick_entry), ui.entry, [ui.quant, ui.details])
    ui.quant.change(on(h.pick_quant), [ui.entry, ui.quant], ui.details)
    ui.download.click(on(h.start_download), [ui.entry, ui.quant], ui.jobs, concurrency_limit=None)
    ui.cancel.click(on(h.cancel_download), [ui.entry, ui.quant], ui.jobs, queue=False)
    ui.timer.tick(on(h.poll), [ui.finished, ui.seen],
                  [ui.jobs, ui.model, ui.installed, ui.remove_name, ui.finished, ui.status, ui.seen],
                  concurrency_limit=None, show_progress="hidden")
    ui.remove.click(on(h.remove_model), ui.remove_name, [ui.installed, ui.remove_name, ui.model],
                    js="(n) => (n && confirm(window.irisSay('Delete {name} from disk?', {name: n}))) ? n : null")
    ui.language.input(None, ui.language, None, js="(lang) => window.irisSetLanguage(lang)")
