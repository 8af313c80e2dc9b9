"""What the page shows, as text and HTML built from plain data: no gradio here, so tests call these directly."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from app.errors import AppError
from app.services import Services
from app.store import human_size
from app.ui.strings import say
from app.video import stamp

MIN_TOKENS_FOR_SPEED = 8


FINISHED = {"length": "stopped at the token limit", "stopped": "stopped", "interrupted": "interrupted"}  # say()


def stats_line(stats: dict | None) -> str:
    """The figures under a reply: device, first token, speed, image encoding, tokens, and how it ended
    when that was not a normal end."""
    if not stats:
        return ""
    parts = [f"{stats.get('device_lm', '?')}", say("first token {s} s", s=f"{stats.get('ttft_s', 0):.2f}")]
    n = stats.get("completion_tokens")
    if n is None or n >= MIN_TOKENS_FOR_SPEED:  # the speed of 3 tokens is noise
        parts.append(say("{x} tok/s", x=f"{stats.get('decode_tok_s', 0):.1f}"))
    if stats.get("images_encoded"):
        parts.append(say("image encode {s} s", s=f"{stats.get('image_encode_s', 0):.2f}"))
    if n is not None:
        parts.append(say("1 token") if n == 1 else say("{n} tokens", n=n))
    if stats.get("finish_reason") in FINISHED:
        parts.append(say(FINISHED[str(stats["finish_reason"])]))
    return " · ".join(parts)


def to_chatbot(stored: Any, image_path: Callable[[str], Path]) -> tuple[list[dict], list[int]]:
    """Chatbot messages for a stored conversation, and for each one the stored message it shows."""
    out: list[dict] = []
    index: list[int] = []
    for i, m in enumerate(stored.messages):
        if m.role == "user":
            # Images and text as separate messages (shown in one bubble): Gradio only lets a person edit a
            # message whose content is plain text. A video's frames are one strip, each with its time
            # (handlers.chat_messages makes it a gallery).
            if m.frames:
                out.append({"role": "user", "content": {"frames": [
                    (str(image_path(sha)), stamp(t)) for sha, t in zip(m.images, m.frames, strict=True)]}})
                index.append(i)
            for k, sha in enumerate([] if m.frames else m.images, 1):
                out.append({"role": "user", "content": {"path": str(image_path(sha)), "alt_text": image_alt(k, m)}})
                index.append(i)
            if m.text or not m.images:
                out.append({"role": "user", "content": m.text})
                index.append(i)
        else:
            out.append({"role": "assistant", "content": m.text or "…"})
            index.append(i)
    return out, index


def image_alt(k: int, message: Any) -> str:
    """A name a screen reader can say for image k of a message (stored images keep no file name)."""
    frames = getattr(message, "frames", None)
    if frames and k <= len(frames):
        return say("video frame at {time}", time=stamp(frames[k - 1]))
    return say("image {k} of {n}", k=k, n=len(message.images)) if len(message.images) > 1 else say("your image")


def page_map(stored: Any, index: list[int]) -> str:
    """What iris.js adds under chat messages: '‹ k/n ›' on messages that have other versions, and the stats
    line under each reply (plain text, outside the message, so copying a reply copies only the reply)."""
    messages = stored.messages if stored is not None else []
    last_row = {i: j for j, i in enumerate(index)}
    versions = [[last_row[i], m.id, *m.version] for i, m in enumerate(messages)
                if len(m.versions) > 1 and i in last_row]
    stats = [[last_row[i], (f"{m.model} · " if m.model else "") + line] for i, m in enumerate(messages)
             if m.role == "assistant" and i in last_row and (line := stats_line(m.stats))]
    # Gradio 6.31 leaves alt_text off the <img> it renders: iris.js puts it there.
    first_row = {i: j for j, i in reversed(list(enumerate(index)))}
    alts = [[first_row[i] + k - 1, image_alt(k, m)] for i, m in enumerate(messages) if i in first_row
            and not getattr(m, "frames", None) for k in range(1, len(m.images) + 1)]
    # A video's strip: each frame's name for a screen reader, in order.
    frames = [[first_row[i], [image_alt(k, m) for k in range(1, len(m.images) + 1)]]
              for i, m in enumerate(messages) if i in first_row and getattr(m, "frames", None)]
    data = {"versions": versions, "stats": stats, "alts": alts, "frames": frames}
    return f'<div class="iris-map" data-map="{html.escape(json.dumps(data))}"></div>'


class Shown(NamedTuple):
    """What showing a conversation puts on the page."""

    messages: list[dict]  # for the Chatbot
    stored_at: list[int]  # for each message, the stored message it shows
    gauge: str
    title: str
    map: str = page_map(None, [])  # page_map: versions and stats lines, for iris.js


def conversation_view(services: Services, cid: str | None) -> Shown:
    """What switching to a conversation shows: chatbot messages, index map, gauge, title and page map."""
    if not cid:
        return Shown([], [], "", "")
    history = services.history
    assert history is not None
    stored = history.get(cid)
    msgs, index = to_chatbot(stored, history.image_path)
    return Shown(msgs, index, gauge_html(services.usage(cid, stored)), stored.title, page_map(stored, index))


def gauge_html(usage: Any) -> str:
    """The context gauge: tokens used of the context, images counted, a warning near the end."""
    if usage is None or not usage.size:
        return ""
    pct = usage.fraction
    warn = ""
    if pct >= 0.9:
        warn = say(" — nearly full: the oldest messages will be left out of the next reply")
    elif pct >= 0.75:
        warn = say(" — filling up; start a new chat for a new topic")
    cls = "full" if pct >= 0.9 else "warn" if pct >= 0.75 else "ok"
    words = say("Context {used} / {size} tokens · {images}", used=f"{usage.used:,}", size=f"{usage.size:,}",
                images=images(usage.images))
    return (f'<div class="iris-gauge {cls}"><progress value="{usage.used}" max="{usage.size}" '
            f'aria-label="{say("Context used")}"></progress> <span>{words}{warn}</span></div>')


def images(n: int) -> str:
    """'1 image', '3 images' in the language being spoken."""
    return say("1 image") if n == 1 else say("{n} images", n=n)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")


def plain(text: object) -> str:
    """Text shown in Markdown exactly as written: no HTML, links or images from file names or errors."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def toast(text: object) -> str:
    """Text for a toast (rendered as HTML) exactly as written."""
    return html.escape(str(text), quote=False)


def told(what: object) -> str:
    """An error or notice for a toast, in the page's language (a name goes through toast() as it is)."""
    return toast(say(str(what)))


def attachment_line(cost: Any) -> str:
    """Under the input box: what the attached images (or a video's frames) cost before they are sent."""
    if cost is None or not cost.per_image:
        return ""
    n = len(cost.per_image)
    each = " + ".join(f"{c:,}" for c in cost.per_image)
    if getattr(cost, "video", ""):
        line = say("{name}: {n} frames at {times} (sampled in {s} s): {n} × {each} = {total} tokens",
                   name=plain(cost.video), n=n, times=", ".join(stamp(t) for t in cost.times), s=f"{cost.sample_s:.2f}",
                   each=f"{cost.per_image[0]:,}", total=f"{cost.total:,}")
    else:
        line = say("{images}: {each} tokens", images=images(n), each=each + (f" = {cost.total:,}" if n > 1 else ""))
    strip = ""
    if getattr(cost, "thumbs", None):  # data: URIs made here from the frames, not text from a file
        strip = '<div class="iris-strip">' + "".join(
            f'<img src="{uri}" alt="{html.escape(say("video frame at {time}", time=stamp(t)))}" height="56">'
            for uri, t in zip(cost.thumbs, cost.times, strict=False)) + "</div>\n\n"
    if cost.size:
        line += say(" · context after sending ≈ {after} of {size} tokens, plus your question",
                    after=f"{cost.after:,}", size=f"{cost.size:,}")
    if cost.max_images and n > cost.max_images and not getattr(cost, "video", ""):
        return "⚠️ " + say("{line}. This model takes at most {n} per message.", line=line, n=cost.max_images)
    if cost.size and cost.after > cost.size:
        return strip + "⚠️ " + say("{line}: that does not fit; older messages will be left out, or remove an image.",
                                   line=line)
    return strip + line


def choice_values(choices: list[Any]) -> list[str]:
    """The values of dropdown choices given as names or (label, name)."""
    return [c[1] if isinstance(c, tuple) else c for c in choices]


def current_model(services: Services, choices: list[Any]) -> str | None:
    """The choice to show as selected: the loaded model, else the first."""
    vals = choice_values(choices)
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
    choices: list[Any] = [(f"{p.name} ({say(p.label)})", p.name) if p.is_demo else p.name for p in pairs]
    choices += [(name.replace(" @ ", " — on "), name) for name in services.remote_models()]
    note = "\n".join(f"- **{plain(pr.path.name)}**: {plain(say(str(pr.reason)))}" for pr in problems)
    real = [p for p in pairs if not p.is_demo]
    return ModelView(choices, [p.name for p in real],
                     f"{say('Files in the models folder that Iris cannot use:')}\n{note}" if note else "",
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
        nc = say(" · non-commercial") if s.non_commercial else ""
        choices.append((f"{star}{s.name} — {human_size(q.size)}{nc}", s.id))
    why = say("Recommended for this machine ({machine}): **{name}**.", machine=say(kind.description),
              name=next(s.name for s in specs if s.id == pick))
    return choices, pick, why


def catalog_details(services: Services, spec_id: str | None, quant: str | None) -> str:
    """Markdown facts about one entry and quantization."""
    if not spec_id:
        return ""
    from app.catalog import find_spec

    spec = find_spec(spec_id, services.catalog()[1])
    q = spec.quant(quant)
    lic = spec.license + (say(" — **non-commercial use only**") if spec.non_commercial else "")
    sha = say("pinned in the catalog") if q.lm.sha256 and q.mmproj.sha256 else say("checked against the Hub's own hash")
    note = f"\n\n_{spec.note}_" if spec.note else ""
    return (f"**{spec.name}** ({spec.family}) — {spec.good_for}\n\n"
            + say("Download {size} (`{lm}` + `{mm}` from `{repo}`) · needs about {memory} of memory · context {ctx} · "
                  "{facts} · licence: {lic} · SHA-256 {sha}.", size=human_size(q.size), lm=q.lm.file, mm=q.mmproj.file,
                  repo=spec.repo, memory=human_size(spec.memory_needed(q)), ctx=spec.context_length,
                  facts=image_facts(spec), lic=lic, sha=sha) + note)


def image_facts(spec: Any) -> str:
    """What one image costs a catalog model, in the page's language: '336 px · 576 tokens per image · …'."""
    if spec.image_tokens is None:
        cost = say("a varying number of tokens per image")
    elif spec.image_tokens_min:
        cost = say("{low}–{high} tokens per image (more for larger images)", low=f"{spec.image_tokens_min:,}",
                   high=f"{spec.image_tokens:,}")
    else:
        cost = say("{n} tokens per image", n=f"{spec.image_tokens:,}")
    if spec.image_size:
        size = say("{n} px tiles" if spec.image_tokens_min else "{n} px", n=spec.image_size)
    else:
        size = say("any resolution (28 px per token)")
    n = spec.images_per_message
    return f"{size} · {cost} · " + (say("up to 1 image per message") if n == 1 else
                                     say("up to {n} images per message", n=n))


def downloads_html(jobs: list) -> str:
    """The download list: a progress bar and a status line per job."""
    rows = []
    for job in jobs:
        p = job.progress
        if job.error:
            status = f'<div class="line error">⚠️ {html.escape(say(job.error))}</div>'
        elif job.cancelled:
            paused = say("Paused at {done} of {total}; press Download to resume.", done=human_size(p.done),
                         total=human_size(p.total))
            status = f'<div class="line">{paused}</div>'
        elif job.folder is not None:
            status = f'<div class="line">{say("✓ Installed. Pick it on the Chat tab.")}</div>'
        else:
            status = f'<div class="line">{html.escape(p.line(say))}</div>'
        value = f'value="{p.done}" max="{max(p.total, 1)}"' if p.total else ""
        name = html.escape(job.name)
        rows.append(f'<div class="iris-job" data-name="{name}" data-state="{p.state}">'
                    f'<b>{name}</b><progress {value} aria-label="{say("Download of {name}", name=name)}"></progress>'
                    f'{status}</div>')
    return "".join(rows) or f"<i>{say('No downloads in this session.')}</i>"


def installed_markdown(services: Services, pairs: list[Any]) -> str:
    """Installed models (pairs, the demo left out) as a Markdown table, with unfinished downloads below."""
    lines = [say("Models folder: `{root}`", root=services.store.root), ""]
    if pairs:
        lines += [say("| Model | Size | From |"), "|---|---|---|"]
        lines += [f"| {p.name} | {human_size(p.size)} | {p.label or say('your own files')} |" for p in pairs]
    else:
        lines.append(say("No models installed yet."))
    for part in services.store.partial_downloads():
        lines.append("\n" + say("Unfinished download **{name}**: {size} kept; Download resumes it.", name=part.name,
                                size=human_size(part.size)))
    return "\n".join(lines)


def load_failed(services: Services, exc: AppError) -> str:
    """The status line after a failed load: what went wrong, and what is still loaded."""
    still = "\n\n" + say("Still loaded: **{name}**.", name=plain(services.loaded.name)) if services.loaded else ""
    return f"⚠️ {plain(say(str(exc)))}{still}"


def model_status(services: Services, name: str | None) -> str:
    """The status line under the model picker: what is loaded, on which device, with which limits."""
    if name is None:
        return say("No models found in `{root}`. Put an LM .gguf and its mmproj .gguf in a folder there, or load "
                   "two files by path below.", root=services.store.root)
    model = getattr(services.engine, "model", None)
    if model is None:
        return say("Loaded **{name}**.", name=plain(name))
    if getattr(model, "backend", "") == "remote":
        return say("Using **{name}** on the server {server} (OpenAI API): the server's own context, image limits and "
                   "hardware; first-token time and speed are measured here.", name=plain(model.name),
                   server=plain(model.server))
    return (say("Loaded **{name}** ({size}) · format `{fmt}` · LM on {lm} · mmproj on {mm} (llama.cpp {backend} "
                "build{amx}) · context {ctx} · {tokens} tokens for a picture at the encoder's size · up to {images} "
                "images per message", name=plain(name),
                size=human_size(services.loaded.size) if services.loaded else "", fmt=model.chat_format,
                lm=model.device_lm, mm=model.device_mmproj, backend=getattr(model, "backend", "cpu").upper(),
                amx="" if getattr(model, "extra_buffers", True) else say(", AMX kernels off"), ctx=model.n_ctx,
                tokens=model.image_tokens, images=model.max_images)
            + (say(" · loaded in {s} s", s=f"{model.load_s:.1f}") if getattr(model, "load_s", 0) else ""))


SHORTCUTS = [("<kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>O</kbd>", "New chat"),
             ("<kbd>Shift</kbd>+<kbd>Esc</kbd>", "Go to the message box"),
             ("<kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>X</kbd>", "Stop the reply"),
             ("<kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>Enter</kbd>", "Regenerate the last reply"),
             ("<kbd>Ctrl</kbd>+<kbd>/</kbd>", "Show or hide this list")]


def shortcuts_html() -> str:
    """The keyboard shortcuts box under the chat (iris.js handles the keys)."""
    ctrl = say("Ctrl")
    rows = "".join(f"<tr><td>{keys.replace('Ctrl', ctrl)}</td><td>{say(what)}</td></tr>" for keys, what in SHORTCUTS)
    mac = say("On a Mac, <kbd>Cmd</kbd> works where <kbd>Ctrl</kbd> is shown. In the conversation list, the arrow keys "
              "move between conversations.")
    return f"<details><summary>{say('Keyboard shortcuts')}</summary><table>{rows}</table><p>{mac}</p></details>"


def recommendation(services: Services, why: str, real: list[str], names: list[Any]) -> str:
    """The Models tab's recommendation, and while only the demo is installed, what the demo is."""
    if not real and names:
        why += "\n\n" + say("Until you download one, the **demo model** is loaded on the Chat tab: a tiny model "
                             "trained by Iris that knows only shapes and colours. Try it with a picture of a red "
                             "circle.")
    return why


def files_help(services: Services) -> str:
    """How to add one's own GGUF files."""
    return say("Put an LM `.gguf` and its `mmproj` `.gguf` in a folder under `{root}` (then **Rescan** on the Chat "
               "tab), or load two files by path. Iris checks that they fit together first.", root=services.store.root)
