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

MIN_TOKENS_FOR_SPEED = 8


FINISHED = {"length": "stopped at the token limit", "stopped": "stopped", "interrupted": "interrupted"}


def stats_line(stats: dict | None) -> str:
    """The figures under a reply: device, first token, speed, image encoding, tokens, and how it ended
    when that was not a normal end."""
    if not stats:
        return ""
    parts = [f"{stats.get('device_lm', '?')}", f"first token {stats.get('ttft_s', 0):.2f} s"]
    n = stats.get("completion_tokens")
    if n is None or n >= MIN_TOKENS_FOR_SPEED:  # the speed of 3 tokens is noise
        parts.append(f"{stats.get('decode_tok_s', 0):.1f} tok/s")
    if stats.get("images_encoded"):
        parts.append(f"image encode {stats.get('image_encode_s', 0):.2f} s")
    if n is not None:
        parts.append(f"{n} token{'s' if n != 1 else ''}")
    if stats.get("finish_reason") in FINISHED:
        parts.append(FINISHED[str(stats["finish_reason"])])
    return " · ".join(parts)


def to_chatbot(stored: Any, image_path: Callable[[str], Path]) -> tuple[list[dict], list[int]]:
    """Chatbot messages for a stored conversation, and for each one the stored message it shows."""
    out: list[dict] = []
    index: list[int] = []
    for i, m in enumerate(stored.messages):
        if m.role == "user":
            # Images and text as separate messages (shown in one bubble): Gradio only lets a person edit a
            # message whose content is plain text.
            for k, sha in enumerate(m.images, 1):
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
    return f"image {k} of {len(message.images)}" if len(message.images) > 1 else "your image"


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
            for k in range(1, len(m.images) + 1)]
    data = {"versions": versions, "stats": stats, "alts": alts}
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
        warn = " — nearly full: the oldest messages will be left out of the next reply"
    elif pct >= 0.75:
        warn = " — filling up; start a new chat for a new topic"
    cls = "full" if pct >= 0.9 else "warn" if pct >= 0.75 else "ok"
    return (f'<div class="iris-gauge {cls}"><progress value="{usage.used}" max="{usage.size}" '
            f'aria-label="Context used"></progress> '
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
    choices: list[Any] = [(f"{p.name} ({p.label})", p.name) if p.is_demo else p.name for p in pairs]
    choices += [(name.replace(" @ ", " — on "), name) for name in services.remote_models()]
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
        name = html.escape(job.name)
        rows.append(f'<div class="iris-job" data-name="{name}" data-state="{p.state}">'
                    f'<b>{name}</b><progress {value} aria-label="Download of {name}"></progress>{status}</div>')
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


def load_failed(services: Services, exc: AppError) -> str:
    """The status line after a failed load: what went wrong, and what is still loaded."""
    still = f"\n\nStill loaded: **{plain(services.loaded.name)}**." if services.loaded else ""
    return f"⚠️ {plain(exc)}{still}"


def model_status(services: Services, name: str | None) -> str:
    """The status line under the model picker: what is loaded, on which device, with which limits."""
    if name is None:
        return (f"No models found in `{services.store.root}`. Put an LM .gguf and its mmproj .gguf "
                "in a folder there, or load two files by path below.")
    model = getattr(services.engine, "model", None)
    if model is None:
        return f"Loaded **{plain(name)}**."
    if getattr(model, "backend", "") == "remote":
        return (f"Using **{plain(model.name)}** on the server {plain(model.server)} (OpenAI API): the server's "
                "own context, image limits and hardware; first-token time and speed are measured here.")
    return (f"Loaded **{plain(name)}** ({human_size(services.loaded.size) if services.loaded else ''}) · "
            f"format `{model.chat_format}` · LM on {model.device_lm} · mmproj on {model.device_mmproj} "
            f"(llama.cpp {getattr(model, 'backend', 'cpu').upper()} build"
            f"{'' if getattr(model, 'extra_buffers', True) else ', AMX kernels off'}) · "
            f"context {model.n_ctx} · {model.image_tokens} tokens for a picture at the encoder's size · up to "
            f"{model.max_images} images per message"
            + (f" · loaded in {model.load_s:.1f} s" if getattr(model, "load_s", 0) else ""))
