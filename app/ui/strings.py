"""Every word Iris's page says, in every language Iris speaks (no gradio here): English, the key, and German.

PAGE: labels and buttons, shown through gr.I18n (the browser translates them). SERVER: what the server sends
later (status lines, toasts, errors, reply stats, placeholders), looked up by say() in the language of the
event being handled (set by handlers.bind from the request). SCRIPT: the words iris.js adds to the page.
A person picks a language in Settings (the iris-lang cookie); without one, the browser's language decides.
The model's answers are never translated.
"""

from __future__ import annotations

import contextvars
import json
import re

LANGUAGES = {"en": "English", "de": "Deutsch"}
COOKIE = "iris-lang"

PAGE = {
    "Conversations": "Unterhaltungen",
    "+ New chat": "+ Neuer Chat",
    "Search conversations": "Unterhaltungen durchsuchen",
    "Search conversations…": "Unterhaltungen durchsuchen…",
    "This conversation": "Diese Unterhaltung",
    "Name": "Name",
    "Rename": "Umbenennen",
    "Export Markdown": "Als Markdown exportieren",
    "Export JSON": "Als JSON exportieren",
    "Exported file": "Exportierte Datei",
    "Import JSON": "JSON importieren",
    "Delete conversation": "Unterhaltung löschen",
    "Chat": "Chat",
    "Model": "Modell",
    "Load": "Laden",
    "Cancel loading": "Laden abbrechen",
    "Rescan": "Neu einlesen",
    "Copy all": "Alles kopieren",
    "Stop": "Stopp",
    "Regenerate": "Neu erzeugen",
    "Settings": "Einstellungen",
    "System prompt preset": "Vorlage für den Systemprompt",
    "System prompt": "Systemprompt",
    "Leave empty for the model's default": "Leer lassen für die Vorgabe des Modells",
    "Temperature": "Temperatur",
    "Top p": "Top p",
    "Max tokens": "Höchstens Tokens",
    "Context size (0 = the model's own, up to 4096; next Load)":
        "Kontextgröße (0 = die des Modells, bis 4096; beim nächsten Laden)",
    "GPU layers (-1 = automatic; next Load)": "GPU-Schichten (-1 = automatisch; beim nächsten Laden)",
    "Video: frames per second": "Video: Bilder pro Sekunde",
    "Video: at most this many frames (fewer when the context is short)":
        "Video: höchstens so viele Bilder (weniger, wenn der Kontext knapp ist)",
    "Models": "Modelle",
    "Catalog": "Katalog",
    "Quantization": "Quantisierung",
    "Download": "Herunterladen",
    "Cancel download": "Download abbrechen",
    "Remove a model": "Ein Modell entfernen",
    "Remove": "Entfernen",
    "Add my own GGUF files": "Eigene GGUF-Dateien hinzufügen",
    "LM .gguf path": "Pfad der LM-.gguf",
    "mmproj .gguf path": "Pfad der mmproj-.gguf",
    "Load these files": "Diese Dateien laden",
    "Use a model on a server (OpenAI API: vLLM, llama-server, Ollama, LM Studio, Iris)":
        "Ein Modell auf einem Server nutzen (OpenAI-API: vLLM, llama-server, Ollama, LM Studio, Iris)",
    "Server address": "Serveradresse",
    "API key (if it needs one)": "API-Schlüssel (falls nötig)",
    "Add server": "Server hinzufügen",
}

PAGE.update({
    "Language": "Sprache",
    "The browser's language": "Die Sprache des Browsers",
    "### Installed": "### Installiert",
    "A server's models join the list on the Chat tab; images, history and stats work as with models on this "
    "computer. Keys are kept in Iris's settings file.":
        "Die Modelle eines Servers erscheinen in der Liste auf dem Reiter Chat; Bilder, Verlauf und Messwerte "
        "funktionieren wie bei Modellen auf diesem Computer. Schlüssel stehen in Iris' Einstellungsdatei.",
})

SERVER = {
    # handlers: toasts and lines in place
    "Something went wrong inside Iris; the details are in the log file.":
        "In Iris ist etwas schiefgegangen; die Einzelheiten stehen in der Logdatei.",
    "Loading **{name}** …": "**{name}** wird geladen …",
    "Start or pick a conversation first.": "Beginnen oder wählen Sie zuerst eine Unterhaltung.",
    "Pick a conversation to export first.": "Wählen Sie zuerst die Unterhaltung, die exportiert werden soll.",
    "Imported “{title}”.": "„{title}“ importiert.",
    "There is no reply to regenerate yet.": "Es gibt noch keine Antwort, die neu erzeugt werden könnte.",
    "Only your own questions can be edited.": "Nur Ihre eigenen Fragen lassen sich bearbeiten.",
    "Nothing is being answered in this chat.": "In diesem Chat wird gerade nichts beantwortet.",
    "Pick a model from the list first.": "Wählen Sie zuerst ein Modell aus der Liste.",
    "Nothing is loading.": "Es wird nichts geladen.",
    "Give the paths of both files: the LM .gguf and its mmproj .gguf.":
        "Geben Sie die Pfade beider Dateien an: die LM-.gguf und ihre mmproj-.gguf.",
    "Loaded {name}.": "{name} geladen.",
    "Added {url}: {n} model(s) ({listed}). Pick one on the Chat tab.":
        "{url} hinzugefügt: {n} Modell(e) ({listed}). Wählen Sie eines auf dem Reiter Chat.",
    "none": "keine",
    "Pick a model from the catalog first.": "Wählen Sie zuerst ein Modell aus dem Katalog.",
    "That model is not downloading.": "Dieses Modell wird gerade nicht heruntergeladen.",
    "{name} was loaded in another window; this window's chats use it now.":
        "{name} wurde in einem anderen Fenster geladen; die Chats dieses Fensters nutzen es jetzt.",
    "Removed {name}; {size} freed.": "{name} entfernt; {size} frei geworden.",
    "Pick a model and press **Load**.": "Wählen Sie ein Modell und drücken Sie **Laden**.",
    # app.services and app.history: the errors a person meets most
    "No model is loaded. Pick one above and press Load, or download one on the Models tab.":
        "Kein Modell geladen. Wählen Sie oben eines und drücken Sie Laden, oder laden Sie eines auf dem Reiter "
        "Modelle herunter.",
    "Iris is still answering in this chat. Wait for the answer (or press Stop), then send again; "
    "your message stays in the box.":
        "Iris antwortet in diesem Chat noch. Warten Sie die Antwort ab (oder drücken Sie Stopp) und senden Sie "
        "dann erneut; Ihre Nachricht bleibt im Eingabefeld.",
    "Type a question or add an image first.": "Schreiben Sie zuerst eine Frage oder fügen Sie ein Bild hinzu.",
    "There is no question to answer; type one first.": "Es gibt keine Frage zu beantworten; schreiben Sie zuerst eine.",
    "That conversation no longer exists; it may have been deleted in another window.":
        "Diese Unterhaltung gibt es nicht mehr; vielleicht wurde sie in einem anderen Fenster gelöscht.",
    "That message is no longer in this conversation.": "Diese Nachricht ist nicht mehr in dieser Unterhaltung.",
    "A conversation needs a name; type one first.":
        "Eine Unterhaltung braucht einen Namen; geben Sie zuerst einen ein.",
    "Give the server's address with http:// or https://, e.g. http://gpu-box:8000/v1.":
        "Geben Sie die Adresse des Servers mit http:// oder https:// an, z. B. http://gpu-box:8000/v1.",
    # views: the stats line, the gauge, the cost line, alt text
    "stopped at the token limit": "an der Token-Grenze beendet",
    "stopped": "angehalten",
    "interrupted": "unterbrochen",
    "first token {s} s": "erstes Token {s} s",
    "{x} tok/s": "{x} Token/s",
    "image encode {s} s": "Bildkodierung {s} s",
    "1 token": "1 Token",
    "{n} tokens": "{n} Token",
    "image {k} of {n}": "Bild {k} von {n}",
    "your image": "Ihr Bild",
    " — nearly full: the oldest messages will be left out of the next reply":
        " — fast voll: die ältesten Nachrichten fehlen in der nächsten Antwort",
    " — filling up; start a new chat for a new topic":
        " — füllt sich; beginnen Sie für ein neues Thema einen neuen Chat",
    "Context used": "Belegter Kontext",
    "Context {used} / {size} tokens · {images}": "Kontext {used} / {size} Token · {images}",
    "1 image": "1 Bild",
    "{n} images": "{n} Bilder",
    "{images}: {each} tokens": "{images}: {each} Token",
    " · context after sending ≈ {after} of {size} tokens, plus your question":
        " · Kontext nach dem Senden ≈ {after} von {size} Token, dazu Ihre Frage",
    "{line}. This model takes at most {n} per message.": "{line}. Dieses Modell nimmt höchstens {n} pro Nachricht.",
    "{line}: that does not fit; older messages will be left out, or remove an image.":
        "{line}: das passt nicht; ältere Nachrichten fallen weg, oder entfernen Sie ein Bild.",
    "{name}: {n} frames at {times} (sampled in {s} s): {n} × {each} = {total} tokens":
        "{name}: {n} Bilder bei {times} (entnommen in {s} s): {n} × {each} = {total} Token",
    "video frame at {time}": "Videobild bei {time}",
    # views: models, downloads, the status line
    "Files in the models folder that Iris cannot use:": "Dateien im Modellordner, die Iris nicht nutzen kann:",
    "Models folder: `{root}`": "Modellordner: `{root}`",
    "| Model | Size | From |": "| Modell | Größe | Herkunft |",
    "your own files": "Ihre eigenen Dateien",
    "No models installed yet.": "Noch keine Modelle installiert.",
    "Unfinished download **{name}**: {size} kept; Download resumes it.":
        "Unfertiger Download **{name}**: {size} behalten; Herunterladen setzt ihn fort.",
    "Still loaded: **{name}**.": "Weiterhin geladen: **{name}**.",
    "No models found in `{root}`. Put an LM .gguf and its mmproj .gguf in a folder there, or load two files by "
    "path below.":
        "Keine Modelle in `{root}` gefunden. Legen Sie eine LM-.gguf und ihre mmproj-.gguf in einen Ordner dort, "
        "oder laden Sie unten zwei Dateien über ihren Pfad.",
    "Loaded **{name}**.": "**{name}** geladen.",
    "Using **{name}** on the server {server} (OpenAI API): the server's own context, image limits and hardware; "
    "first-token time and speed are measured here.":
        "**{name}** auf dem Server {server} (OpenAI-API): Kontext, Bildgrenzen und Hardware des Servers; "
        "Zeit bis zum ersten Token und Geschwindigkeit werden hier gemessen.",
    "Loaded **{name}** ({size}) · format `{fmt}` · LM on {lm} · mmproj on {mm} (llama.cpp {backend} build{amx}) · "
    "context {ctx} · {tokens} tokens for a picture at the encoder's size · up to {images} images per message":
        "**{name}** geladen ({size}) · Format `{fmt}` · LM auf {lm} · mmproj auf {mm} (llama.cpp-{backend}-Build"
        "{amx}) · Kontext {ctx} · {tokens} Token für ein Bild in der Größe des Encoders · bis zu {images} Bilder "
        "pro Nachricht",
    ", AMX kernels off": ", AMX-Kernel aus",
    " · loaded in {s} s": " · geladen in {s} s",
    "Paused at {done} of {total}; press Download to resume.":
        "Angehalten bei {done} von {total}; Herunterladen setzt fort.",
    "✓ Installed. Pick it on the Chat tab.": "✓ Installiert. Wählen Sie es auf dem Reiter Chat.",
    "Download of {name}": "Download von {name}",
    "No downloads in this session.": "Keine Downloads in dieser Sitzung.",
    "Recommended for this machine ({machine}): **{name}**.": "Empfohlen für diesen Rechner ({machine}): **{name}**.",
    " · non-commercial": " · nicht kommerziell",
    " — **non-commercial use only**": " — **nur für nicht kommerzielle Nutzung**",
    "pinned in the catalog": "im Katalog festgelegt",
    "checked against the Hub's own hash": "mit dem Hash des Hubs geprüft",
    "Download {size} (`{lm}` + `{mm}` from `{repo}`) · needs about {memory} of memory · context {ctx} · {facts} · "
    "licence: {lic} · SHA-256 {sha}.":
        "Download {size} (`{lm}` + `{mm}` aus `{repo}`) · braucht etwa {memory} Arbeitsspeicher · Kontext {ctx} · "
        "{facts} · Lizenz: {lic} · SHA-256 {sha}.",
    # layout: placeholders and help that the server fills in on page load
    "Drop, paste or pick an image, then ask about it.":
        "Ziehen, fügen oder wählen Sie ein Bild ein und fragen Sie dann danach.",
    "Ask about an image or a video: drop, paste or pick one (several images are fine)…":
        "Fragen Sie nach einem Bild oder Video: hineinziehen, einfügen oder auswählen (auch mehrere Bilder)…",
    "Until you download one, the **demo model** is loaded on the Chat tab: a tiny model trained by Iris that knows "
    "only shapes and colours. Try it with a picture of a red circle.":
        "Bis Sie eines herunterladen, ist auf dem Reiter Chat das **Demo-Modell** geladen: ein winziges, von Iris "
        "trainiertes Modell, das nur Formen und Farben kennt. Probieren Sie es mit dem Bild eines roten Kreises.",
    "Put an LM `.gguf` and its `mmproj` `.gguf` in a folder under `{root}` (then **Rescan** on the Chat tab), or "
    "load two files by path. Iris checks that they fit together first.":
        "Legen Sie eine LM-`.gguf` und ihre `mmproj`-`.gguf` in einen Ordner unter `{root}` (dann **Neu einlesen** "
        "auf dem Reiter Chat), oder laden Sie zwei Dateien über ihren Pfad. Iris prüft zuerst, ob sie zusammenpassen.",
    "Keyboard shortcuts": "Tastenkürzel",
    "New chat": "Neuer Chat",
    "Go to the message box": "Zum Eingabefeld",
    "Stop the reply": "Antwort anhalten",
    "Regenerate the last reply": "Letzte Antwort neu erzeugen",
    "Show or hide this list": "Diese Liste zeigen oder verbergen",
    "On a Mac, <kbd>Cmd</kbd> works where <kbd>Ctrl</kbd> is shown. In the conversation list, the arrow keys move "
    "between conversations.":
        "Auf einem Mac gilt <kbd>Cmd</kbd>, wo <kbd>Strg</kbd> steht. In der Liste der Unterhaltungen wechseln die "
        "Pfeiltasten zwischen den Unterhaltungen.",
    "Ctrl": "Strg",
}

SCRIPT = {
    "Delete this conversation and its images?": "Diese Unterhaltung und ihre Bilder löschen?",
    "Delete {name} from disk?": "{name} von der Festplatte löschen?",
    "Previous version": "Vorherige Version",
    "Next version": "Nächste Version",
    "New chat": "Neuer Chat",
    "Download image": "Bild herunterladen",
    "You": "Sie",
    "Assistant": "Assistent",
    "[image]": "[Bild]",
    "Version {k} of {n} of this message": "Version {k} von {n} dieser Nachricht",
    "Copy all": "Alles kopieren",
}

GERMAN = {**PAGE, **SERVER}
# gr.I18n's catalog: the page's labels only (svelte-i18n would read SERVER's {name} fields as its own syntax).
CATALOG: dict[str, dict[str, str]] = {"en": {k: k for k in PAGE}, "de": PAGE}
_ALL: dict[str, dict[str, str]] = {"de": {**GERMAN, **SCRIPT}}

_lang: contextvars.ContextVar[str] = contextvars.ContextVar("iris_lang", default="en")
_chosen: contextvars.ContextVar[str] = contextvars.ContextVar("iris_lang_chosen", default="")


def say(text: str, **fields: object) -> str:
    """text in the language of the event being handled (English when there is no translation), fields filled in."""
    words = _ALL.get(_lang.get(), {}).get(text, text)
    return words.format(**fields) if fields else words


def language(chosen: str | None, accept_language: str | None) -> str:
    """The language to speak: the one picked in Settings, else the browser's first that Iris speaks, else English."""
    if chosen in LANGUAGES:
        return str(chosen)
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        ranked.append((-weight, i, tag.split("-")[0].lower()))
    return next((tag for _, _, tag in sorted(ranked) if tag in LANGUAGES), "en")


def speak(chosen: str | None, accept_language: str | None) -> tuple[contextvars.Token, contextvars.Token]:
    """Make say() speak this request's language in this thread until unspeak(); chosen() tells the Settings pick."""
    return (_lang.set(language(chosen, accept_language)),
            _chosen.set(chosen if chosen in LANGUAGES else ""))


def unspeak(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    """Back to the language before speak()."""
    _lang.reset(tokens[0])
    _chosen.reset(tokens[1])


def chosen() -> str:
    """The language picked in Settings for this request ('' when the browser's language decides)."""
    return _chosen.get()


def head_script() -> str:
    """The <head> script: the language picked in Settings (a cookie) becomes the browser's language before
    Gradio reads it, and iris.js's words in every language (window.irisSay)."""
    words = json.dumps({"de": SCRIPT}, ensure_ascii=False).replace("</", "<\\/")
    return ("<script>(() => {\n"
            f"  const m = document.cookie.match(/(?:^|; ){re.escape(COOKIE)}=(\\w+)/);\n"
            f"  const picked = m && {json.dumps(list(LANGUAGES))}.includes(m[1]) ? m[1] : null;\n"
            "  if (picked) {\n"
            "    Object.defineProperty(navigator, 'language', { get: () => picked, configurable: true });\n"
            "    Object.defineProperty(navigator, 'languages', { get: () => [picked], configurable: true });\n"
            "  }\n"
            f"  const words = {words};\n"
            "  window.irisSay = (text, fields) => {\n"
            "    let s = (words[(navigator.language || 'en').slice(0, 2)] || {})[text] || text;\n"
            "    for (const [k, v] of Object.entries(fields || {})) s = s.replace('{' + k + '}', v);\n"
            "    return s;\n"
            "  };\n"
            "  window.irisSetLanguage = (lang) => {\n"
            f"    document.cookie = lang ? '{COOKIE}=' + lang + '; path=/; max-age=31536000; samesite=strict'\n"
            f"                           : '{COOKIE}=; path=/; max-age=0; samesite=strict';\n"
            "    location.reload();\n"
            "  };\n"
            "})();</script>")
