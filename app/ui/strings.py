"""Every word Iris's page says, in every language Iris speaks (no gradio here): English, the key, and German.

PAGE: labels and buttons, shown through gr.I18n (the browser translates them). SERVER: what the server sends
later (status lines, toasts, reply stats, placeholders), looked up by say() in the language of the event
being handled (set by handlers.bind from the request). ERRORS: what app's own errors say, as patterns (values
kept). SCRIPT: the words iris.js adds to the page.
A person picks a language in Settings (the iris-lang cookie); without one, the browser's language decides.
The model's answers are never translated.
"""

from __future__ import annotations

import contextvars
import functools
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
    "a varying number of tokens per image": "eine wechselnde Zahl Token pro Bild",
    "{low}–{high} tokens per image (more for larger images)": "{low}–{high} Token pro Bild (mehr für größere Bilder)",
    "{n} tokens per image": "{n} Token pro Bild",
    "{n} px tiles": "Kacheln zu {n} px",
    "{n} px": "{n} px",
    "any resolution (28 px per token)": "jede Auflösung (28 px pro Token)",
    "up to 1 image per message": "bis zu 1 Bild pro Nachricht",
    "up to {n} images per message": "bis zu {n} Bilder pro Nachricht",
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
    "[video: {n} frames]": "[Video: {n} Bilder]",
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
    """text in the language of the event being handled (English when there is no translation), fields filled in.

    A text that is not a key is tried against ERRORS' patterns: an error raised below the UI, its values kept.
    """
    lang = _lang.get()
    table = _ALL.get(lang, {})
    words = table.get(text)
    if words is None:
        words = _error(text, lang) if lang != "en" else None
        if words is None:
            words = text
    return words.format(**fields) if fields else words


_patterns: list[tuple[re.Pattern[str], str]] = []


def _error(text: str, lang: str) -> str | None:
    """An error's text in lang, by the ERRORS pattern it fits (None when none does); values stay as they were,
    short ones that are themselves in ERRORS ('only sound') translated."""
    if not _patterns:
        for english in ERRORS:
            parts = [re.escape(p) for p in english.split("{}")]
            _patterns.append((re.compile("(.*?)".join(parts) + r"\Z", re.DOTALL), english))
    words = _ERRORS_IN.get(lang, {})
    for pattern, english in _patterns:
        m = pattern.match(text)
        if m and english in words:
            values: list[str] = [words.get(v) or (_error(v, lang) if v else None) or v for v in m.groups()]
            # Braces inside values (a file name) must not be read as fields: fill in by position, once.
            return re.sub(r"\{(\d+)\}", functools.partial(_fill, values), words[english])
    return None


def _fill(values: list[str], field: re.Match[str]) -> str:
    return values[int(field.group(1))]


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

# Errors raised below the UI (app.services, history, images, video, the engine, the GGUF checks, the downloader,
# remote servers): the English exactly as raised, each {} a value filled in there; the German says where each
# value goes ({0} is the first). say() finds the pattern an error's text fits. Technical details inside an
# error (a tensor's shape, llama.cpp's own words) stay as they are.
ERRORS = {
    # services, history
    "Give the server's address with http:// or https://, e.g. http://gpu-box:8000/v1.":
        "Geben Sie die Adresse des Servers mit http:// oder https:// an, z. B. http://gpu-box:8000/v1.",
    "A video goes in a message of its own: send one video, and any images in another message.":
        "Ein Video braucht eine eigene Nachricht: Senden Sie ein Video und Bilder in einer anderen Nachricht.",
    "{} takes one image per message, so it cannot watch a video (its frames go in as several images). "
    "Models that can: {}.":
        "{0} nimmt ein Bild pro Nachricht und kann deshalb kein Video ansehen (seine Bilder gehen als mehrere "
        "Bilder hinein). Modelle, die es können: {1}.",
    "Not even one frame of {} fits in what is left of the context ({} tokens a frame). Start a new chat, or "
    "raise the context size in Settings and load the model again.":
        "Nicht einmal ein Bild aus {0} passt in den verbleibenden Kontext ({1} Token pro Bild). Beginnen Sie einen "
        "neuen Chat, oder erhöhen Sie die Kontextgröße in den Einstellungen und laden Sie das Modell neu.",
    "{} is downloading right now; cancel the download first.":
        "{0} wird gerade heruntergeladen; brechen Sie zuerst den Download ab.",
    "History is not available in this mode.": "Der Verlauf ist in diesem Modus nicht verfügbar.",
    "{} accepts at most {} image{} per message; this one has {}. Send them in separate messages.":
        "{0} nimmt höchstens {1} Bild(er) pro Nachricht; diese hat {3}. Senden Sie sie in getrennten Nachrichten.",
    "{} is not a .gguf file Iris can read. Give the full path of the LM .gguf and of its mmproj .gguf.":
        "{0} ist keine .gguf-Datei, die Iris lesen kann. Geben Sie den vollständigen Pfad der LM-.gguf und ihrer "
        "mmproj-.gguf an.",
    "No installed model is called '{}'. Installed: {}. Run 'iris models' to list them.":
        "Kein installiertes Modell heißt „{0}“. Installiert: {1}. 'iris models' listet sie auf.",
    "The demo model is part of Iris and cannot be removed (it is under 20 MB).":
        "Das Demo-Modell gehört zu Iris und lässt sich nicht entfernen (es ist kleiner als 20 MB).",
    "An image of this conversation is missing from {} ({}).": "Ein Bild dieser Unterhaltung fehlt in {0} ({1}).",
    "The disk holding {} is full, so this was not saved. Free some space (a few MB is enough for text; images need "
    "their size) and try again; everything saved before is kept.":
        "Der Datenträger mit {0} ist voll, daher wurde dies nicht gespeichert. Schaffen Sie Platz (für Text genügen "
        "wenige MB; Bilder brauchen ihre Größe) und versuchen Sie es erneut; alles bisher Gespeicherte bleibt.",
    "This conversation file cannot be imported: {}. Nothing was imported.":
        "Diese Unterhaltungsdatei lässt sich nicht importieren: {0}. Es wurde nichts importiert.",
    "This file is not a conversation exported by Iris (its format is not '{}'). Nothing was imported.":
        "Diese Datei ist keine von Iris exportierte Unterhaltung (ihr Format ist nicht „{0}“). Es wurde nichts "
        "importiert.",
    "That file is not a conversation exported by Iris (it is not JSON, or nested too deeply). Nothing was imported.":
        "Diese Datei ist keine von Iris exportierte Unterhaltung (kein JSON, oder zu tief verschachtelt). Es wurde "
        "nichts importiert.",
    # images
    "{} is empty (0 bytes). Pick another image.": "{0} ist leer (0 Byte). Wählen Sie ein anderes Bild.",
    "{} is too large to open safely (over {} megapixels). Shrink it and try again.":
        "{0} ist zu groß, um es sicher zu öffnen (über {1} Megapixel). Verkleinern Sie es und versuchen Sie es erneut.",
    "{} is not an image Iris can read. Use PNG, JPEG, WebP, GIF, BMP or TIFF.":
        "{0} ist kein Bild, das Iris lesen kann. Verwenden Sie PNG, JPEG, WebP, GIF, BMP oder TIFF.",
    "{} is {} MB; Iris takes images up to {} MB. Shrink it and try again.":
        "{0} hat {1} MB; Iris nimmt Bilder bis {2} MB. Verkleinern Sie es und versuchen Sie es erneut.",
    "{} is {} MB; Iris takes videos up to {} MB (IRIS_MAX_VIDEO_MB). Cut it shorter and try again.":
        "{0} hat {1} MB; Iris nimmt Videos bis {2} MB (IRIS_MAX_VIDEO_MB). Kürzen Sie es und versuchen Sie es "
        "erneut.",
    "{} is damaged or truncated ({}). Pick another copy.":
        "{0} ist beschädigt oder unvollständig ({1}). Wählen Sie eine andere Kopie.",
    "{}: file not found.": "{0}: Datei nicht gefunden.",
    "{}: cannot be read ({}).": "{0}: lässt sich nicht lesen ({1}).",
    "{} is {}×{} pixels ({} megapixels); Iris accepts up to {} megapixels. Shrink it and try again.":
        "{0} hat {1}×{2} Pixel ({3} Megapixel); Iris nimmt bis zu {4} Megapixel. Verkleinern Sie es und versuchen "
        "Sie es erneut.",
    "{} is {}×{} pixels; Iris takes images up to {} pixels a side and at most {} times as long as wide. Crop it and "
    "try again.":
        "{0} hat {1}×{2} Pixel; Iris nimmt Bilder bis {3} Pixel Seitenlänge und höchstens {4}-mal so lang wie "
        "breit. Schneiden Sie es zu und versuchen Sie es erneut.",
    # video
    "Frames per second must be between 0 and 30 (not {}).": "Bilder pro Sekunde müssen zwischen 0 und 30 liegen "
                                                             "(nicht {0}).",
    "The number of frames must be between 1 and {} (not {}).":
        "Die Zahl der Bilder muss zwischen 1 und {0} liegen (nicht {1}).",
    "{} is empty (0 bytes). Pick another video.": "{0} ist leer (0 Byte). Wählen Sie ein anderes Video.",
    "{} has no frames that can be decoded; it may be truncated. Pick another copy.":
        "{0} hat keine Bilder, die sich dekodieren lassen; vielleicht ist es unvollständig. Wählen Sie eine andere "
        "Kopie.",
    "{} is cut short: its pictures stop at {} of the {} it claims. Pick a complete copy.":
        "{0} ist abgeschnitten: seine Bilder enden bei {1} der angegebenen {2}. Wählen Sie eine vollständige Kopie.",
    "{} is not a video Iris can read (or it is damaged). Use MP4, WebM, MOV, MKV or an animated GIF.":
        "{0} ist kein Video, das Iris lesen kann (oder es ist beschädigt). Verwenden Sie MP4, WebM, MOV, MKV oder "
        "ein animiertes GIF.",
    "{} could not be decoded ({}). It may be truncated; pick another copy.":
        "{0} ließ sich nicht dekodieren ({1}). Vielleicht ist es unvollständig; wählen Sie eine andere Kopie.",
    "{} has {}: there is no video track to look at.": "{0} enthält {1}: es gibt keine Videospur zum Ansehen.",
    "only sound": "nur Ton",
    "no pictures": "keine Bilder",
    "{} is {}×{} pixels a frame; Iris takes video up to {} pixels a side.":
        "{0} hat {1}×{2} Pixel pro Bild; Iris nimmt Videos bis {3} Pixel Seitenlänge.",
    # the engine
    "Iris does not know how to talk to this model: its projector type is '{}', its architecture '{}', and the LM "
    "carries no chat template. Choose a chat format explicitly (one of: {}).":
        "Iris weiß nicht, wie es mit diesem Modell sprechen soll: Projektortyp „{0}“, Architektur „{1}“, und das "
        "LM enthält keine Chat-Vorlage. Wählen Sie ausdrücklich ein Chat-Format (eines von: {2}).",
    "Unknown chat format '{}'. Use one of: {}.": "Unbekanntes Chat-Format „{0}“. Verwenden Sie eines von: {1}.",
    "{} carries no chat template, which the generic 'mtmd' format needs. Pick the model's dedicated chat format or "
    "a GGUF that includes its template.":
        "{0} enthält keine Chat-Vorlage, die das allgemeine Format 'mtmd' braucht. Wählen Sie das eigene Chat-Format "
        "des Modells oder eine GGUF, die ihre Vorlage enthält.",
    "No model is loaded. Pick a model first.": "Kein Modell geladen. Wählen Sie zuerst ein Modell.",
    "The image tokens could not be evaluated (code {}).": "Die Bild-Token ließen sich nicht auswerten (Code {0}).",
    "This model accepts at most {} image{} per message; this message has {}. Send them in separate messages.":
        "Dieses Modell nimmt höchstens {0} Bild(er) pro Nachricht; diese Nachricht hat {2}. Senden Sie sie in "
        "getrennten Nachrichten.",
    "This conversation needs {} tokens ({} of them for images) but the model's context holds {}. Start a new "
    "conversation, remove images, or raise the context size in Settings.":
        "Diese Unterhaltung braucht {0} Token ({1} davon für Bilder), der Kontext des Modells fasst aber {2}. "
        "Beginnen Sie eine neue Unterhaltung, entfernen Sie Bilder oder erhöhen Sie die Kontextgröße in den "
        "Einstellungen.",
    "The vision encoder failed on an image (code {}).": "Der Bild-Encoder ist an einem Bild gescheitert (Code {0}).",
    "llama.cpp could not load {} ({}). The file may be from a newer llama.cpp than this Iris uses, or damaged; "
    "try another quantization or download it again.":
        "llama.cpp konnte {0} nicht laden ({1}). Die Datei stammt vielleicht von einem neueren llama.cpp als dem "
        "dieses Iris, oder sie ist beschädigt; versuchen Sie eine andere Quantisierung oder laden Sie sie neu "
        "herunter.",
    "llama.cpp could not load the vision projector {} with {} ({}). Pick the mmproj from the same repository as "
    "the LM.":
        "llama.cpp konnte den Bildprojektor {0} nicht mit {1} laden ({2}). Wählen Sie die mmproj aus demselben "
        "Repository wie das LM.",
    "{}: {}. Choose the model's dedicated chat format instead of 'mtmd'.":
        "{0}: {1}. Wählen Sie statt 'mtmd' das eigene Chat-Format des Modells.",
    "llama.cpp could not evaluate this prompt with {} ({}). The model file may be damaged; download it again.":
        "llama.cpp konnte diesen Prompt mit {0} nicht auswerten ({1}). Die Modelldatei ist vielleicht beschädigt; "
        "laden Sie sie erneut herunter.",
    "This model's vision encoder cannot use an image of this shape ({} pixels). Crop it closer to a square, or "
    "resize it, and try again.":
        "Der Bild-Encoder dieses Modells kann ein Bild dieser Form nicht verwenden ({0} Pixel). Schneiden Sie es "
        "näher an ein Quadrat zu oder ändern Sie seine Größe, und versuchen Sie es erneut.",
    "The prompt could not be split into text and images (code {}).":
        "Der Prompt ließ sich nicht in Text und Bilder aufteilen (Code {0}).",
    "{}: the vision encoder could not decode this image.": "{0}: Der Bild-Encoder konnte dieses Bild nicht dekodieren.",
    # GGUF files
    "{} is damaged: {}. Download the file again from the model's repository.":
        "{0} ist beschädigt: {1}. Laden Sie die Datei erneut aus dem Repository des Modells herunter.",
    "{} has the projector type '{}', which this llama.cpp does not know. Use a GGUF of a model in Iris's catalog, "
    "or a newer Iris.":
        "{0} hat den Projektortyp „{1}“, den dieses llama.cpp nicht kennt. Verwenden Sie die GGUF eines Modells aus "
        "Iris' Katalog oder ein neueres Iris.",
    "{} is not a complete vision projector: it lacks {}. Download the file again from the model's repository.":
        "{0} ist kein vollständiger Bildprojektor: es fehlt {1}. Laden Sie die Datei erneut aus dem Repository des "
        "Modells herunter.",
    "{} is damaged: unknown metadata type {}.": "{0} ist beschädigt: unbekannter Metadatentyp {1}.",
    "{} does not exist or is not a file. Check the path.": "{0} existiert nicht oder ist keine Datei. Prüfen Sie den "
                                                          "Pfad.",
    "{} is empty (0 bytes). Download it again.": "{0} ist leer (0 Byte). Laden Sie sie erneut herunter.",
    "{} is truncated: it has {} bytes but its tensors need {}. The download was probably interrupted; download the "
    "file again.":
        "{0} ist unvollständig: sie hat {1} Byte, ihre Tensoren brauchen aber {2}. Der Download wurde "
        "wahrscheinlich unterbrochen; laden Sie die Datei erneut herunter.",
    "{} is not a complete {}: it lacks {}. It may come from an old or broken converter; download the file again "
    "from the model's repository.":
        "{0} ist kein vollständiges {1}: es fehlt {2}. Sie stammt vielleicht von einem alten oder fehlerhaften "
        "Konverter; laden Sie die Datei erneut aus dem Repository des Modells herunter.",
    "{} is not a complete {}: it lacks the tensors {}. Download the file again from the model's repository.":
        "{0} ist kein vollständiges {1}: es fehlen die Tensoren {2}. Laden Sie die Datei erneut aus dem Repository "
        "des Modells herunter.",
    "{} is a vision projector (mmproj), not a language model. Pick the model's main .gguf file as the LM and this "
    "one as the mmproj.":
        "{0} ist ein Bildprojektor (mmproj), kein Sprachmodell. Wählen Sie die Haupt-.gguf des Modells als LM und "
        "diese als mmproj.",
    "{} lacks general.architecture; it is not a usable model.":
        "{0} fehlt general.architecture; sie ist kein brauchbares Modell.",
    "{} is a language model, not a vision projector (mmproj). Pick the file whose name contains 'mmproj' from the "
    "same repository.":
        "{0} ist ein Sprachmodell, kein Bildprojektor (mmproj). Wählen Sie die Datei mit 'mmproj' im Namen aus "
        "demselben Repository.",
    "{} has no vision encoder; Iris needs one to see images.":
        "{0} hat keinen Bild-Encoder; Iris braucht einen, um Bilder zu sehen.",
    "{} is malformed: {} vision heads do not divide its width {}.":
        "{0} ist fehlerhaft: {1} Bild-Köpfe teilen ihre Breite {2} nicht.",
    "The two files are swapped: {} is the vision projector and {} the language model. Pass them the other way "
    "round.":
        "Die beiden Dateien sind vertauscht: {0} ist der Bildprojektor und {1} das Sprachmodell. Geben Sie sie "
        "umgekehrt an.",
    "This projector ({}) expects a {}-wide model; the LM ({}) is {}-wide. Pick the mmproj from the same repository "
    "as the LM.":
        "Dieser Projektor ({0}) erwartet ein Modell der Breite {1}; das LM ({2}) hat die Breite {3}. Wählen Sie die "
        "mmproj aus demselben Repository wie das LM.",
    "{} is truncated: its header ends early. The download was probably interrupted; download the file again.":
        "{0} ist unvollständig: ihr Kopf endet zu früh. Der Download wurde wahrscheinlich unterbrochen; laden Sie "
        "die Datei erneut herunter.",
    "{} is damaged: a header string claims {} bytes.":
        "{0} ist beschädigt: eine Zeichenkette im Kopf gibt {1} Byte an.",
    "{} is not a GGUF model file. Iris needs the .gguf files of a model (an LM and its mmproj), as published in "
    "GGUF repositories on the Hugging Face Hub.":
        "{0} ist keine GGUF-Modelldatei. Iris braucht die .gguf-Dateien eines Modells (ein LM und seine mmproj), "
        "wie sie in GGUF-Repositories auf dem Hugging Face Hub erscheinen.",
    "{} uses GGUF version {}; Iris reads versions 2 and 3.": "{0} nutzt GGUF-Version {1}; Iris liest die Versionen "
                                                             "2 und 3.",
    "{} is damaged: its header counts are implausible.": "{0} ist beschädigt: die Zählwerte im Kopf sind unplausibel.",
    "{} is damaged: general.alignment is not a power of two. Download the file again.":
        "{0} ist beschädigt: general.alignment ist keine Zweierpotenz. Laden Sie die Datei erneut herunter.",
    "{} is damaged: key {} has the wrong type. Download the file again from the model's repository.":
        "{0} ist beschädigt: der Schlüssel {1} hat den falschen Typ. Laden Sie die Datei erneut aus dem Repository "
        "des Modells herunter.",
    "{} carries a chat template that does not parse ({}). Download the file again, or use a GGUF of this model "
    "from another repository.":
        "{0} enthält eine Chat-Vorlage, die sich nicht lesen lässt ({1}). Laden Sie die Datei erneut herunter oder "
        "nutzen Sie eine GGUF dieses Modells aus einem anderen Repository.",
    "{} is malformed: {} attention heads do not split its width {} into even-sized heads. Download the file again.":
        "{0} ist fehlerhaft: {1} Attention-Köpfe teilen ihre Breite {2} nicht in gleich große Köpfe. Laden Sie die "
        "Datei erneut herunter.",
    "{} lacks {}; it is not a complete vision projector.": "{0} fehlt {1}; sie ist kein vollständiger Bildprojektor.",
    "{} is malformed: its projector takes {}-wide features but the encoder gives {}. Download the file again.":
        "{0} ist fehlerhaft: ihr Projektor nimmt Merkmale der Breite {1}, der Encoder liefert aber {2}. Laden Sie "
        "die Datei erneut herunter.",
    "{} is malformed: its projector layers do not fit together.":
        "{0} ist fehlerhaft: die Schichten ihres Projektors passen nicht zusammen.",
    "{} is damaged: an array claims {} items.": "{0} ist beschädigt: ein Feld gibt {1} Einträge an.",
    "{} is damaged: it holds an array of arrays, which GGUF does not allow.":
        "{0} ist beschädigt: sie enthält ein Feld aus Feldern, was GGUF nicht erlaubt.",
    "{} is damaged: tensor {} has {} dimensions.": "{0} ist beschädigt: der Tensor {1} hat {2} Dimensionen.",
    # downloads
    "{} failed its SHA-256 check twice (expected {}…); the bad file was removed. Something between you and the Hub "
    "(a proxy, antivirus or a flaky disk) is changing the data. Try again later or from another network.":
        "{0} hat die SHA-256-Prüfung zweimal nicht bestanden (erwartet {1}…); die fehlerhafte Datei wurde entfernt. "
        "Etwas zwischen Ihnen und dem Hub (ein Proxy, ein Virenscanner oder eine unzuverlässige Festplatte) "
        "verändert die Daten. Versuchen Sie es später oder aus einem anderen Netz erneut.",
    "HF_HUB_OFFLINE is set, so Iris may not download anything. Unset it and try again, or add a model's two .gguf "
    "files yourself.":
        "HF_HUB_OFFLINE ist gesetzt, daher darf Iris nichts herunterladen. Entfernen Sie die Variable und versuchen "
        "Sie es erneut, oder fügen Sie die zwei .gguf-Dateien eines Modells selbst hinzu.",
    "The Hub did not say how big {} is; try again later.":
        "Der Hub hat nicht gesagt, wie groß {0} ist; versuchen Sie es später erneut.",
    "The Hub's {} in {} (SHA-256 {}…) is not the file Iris's catalog names ({}…): the repository has changed. "
    "Nothing was downloaded; update Iris for a new catalog, or download the files yourself and add them as your "
    "own model.":
        "{0} in {1} auf dem Hub (SHA-256 {2}…) ist nicht die Datei aus Iris' Katalog ({3}…): das Repository hat "
        "sich geändert. Es wurde nichts heruntergeladen; aktualisieren Sie Iris für einen neuen Katalog, oder laden "
        "Sie die Dateien selbst herunter und fügen Sie sie als eigenes Modell hinzu.",
    "The Hub's {} is {} bytes, the catalog says {}: the repository has changed. Nothing was downloaded; update Iris "
    "for a new catalog.":
        "{0} auf dem Hub hat {1} Byte, der Katalog nennt {2}: das Repository hat sich geändert. Es wurde nichts "
        "heruntergeladen; aktualisieren Sie Iris für einen neuen Katalog.",
    "Not enough disk space for {}: it needs {} more (plus {} kept free) and {} has {} free. Free some space, pick a "
    "smaller quantization, or use another models folder (--models-dir).":
        "Nicht genug Speicherplatz für {0}: es braucht {1} mehr (dazu {2} Reserve), und {3} hat {4} frei. Schaffen "
        "Sie Platz, wählen Sie eine kleinere Quantisierung oder einen anderen Modellordner (--models-dir).",
    "The Hub refused the token in HF_TOKEN (invalid credentials). Create a new read token at {}/settings/tokens, "
    "set HF_TOKEN to it and try again.":
        "Der Hub hat das Token in HF_TOKEN abgelehnt (ungültige Zugangsdaten). Erstellen Sie ein neues Lese-Token "
        "unter {0}/settings/tokens, setzen Sie HF_TOKEN darauf und versuchen Sie es erneut.",
    "HF_HUB_OFFLINE is set, so Iris may not download anything. Unset it and try again.":
        "HF_HUB_OFFLINE ist gesetzt, daher darf Iris nichts herunterladen. Entfernen Sie die Variable und versuchen "
        "Sie es erneut.",
    "{} is gated: its owners want you to accept their terms first. Open {}/{} while logged in and accept them, then "
    "give Iris a read token: create one at {}/settings/tokens and set HF_TOKEN=hf_… before starting Iris (or run "
    "'hf auth login').":
        "{0} ist zugangsbeschränkt: die Eigentümer verlangen zuerst die Zustimmung zu ihren Bedingungen. Öffnen Sie "
        "angemeldet {1}/{2} und stimmen Sie zu, dann geben Sie Iris ein Lese-Token: erstellen Sie eines unter "
        "{3}/settings/tokens und setzen Sie HF_TOKEN=hf_… vor dem Start von Iris (oder führen Sie 'hf auth login' "
        "aus).",
    "{} has no revision '{}' any more; update Iris for a new catalog.":
        "{0} hat die Revision „{1}“ nicht mehr; aktualisieren Sie Iris für einen neuen Katalog.",
    "{} is not in {} (404). The catalog entry is out of date; update Iris, or pick another model.":
        "{0} ist nicht in {1} (404). Der Katalogeintrag ist veraltet; aktualisieren Sie Iris oder wählen Sie ein "
        "anderes Modell.",
    "{} was not found on the Hub (404). It was removed or made private; if you have access, set HF_TOKEN to a token "
    "that can read it.":
        "{0} wurde auf dem Hub nicht gefunden (404). Es wurde entfernt oder privat gemacht; wenn Sie Zugang haben, "
        "setzen Sie HF_TOKEN auf ein Token, das es lesen darf.",
    "The Hub answered {} for {} after several tries; try again later.{}":
        "Der Hub antwortete nach mehreren Versuchen {0} für {1}; versuchen Sie es später erneut.{2}",
    "The proxy refused the connection to {} ({}). Check HTTPS_PROXY / HTTP_PROXY.{}":
        "Der Proxy hat die Verbindung zu {0} abgelehnt ({1}). Prüfen Sie HTTPS_PROXY / HTTP_PROXY.{2}",
    "Could not reach {} ({}). Check your internet connection or proxy.{}":
        "{0} war nicht erreichbar ({1}). Prüfen Sie Ihre Internetverbindung oder den Proxy.{2}",
    "Stopped waiting for {}.": "Warten auf {0} beendet.",
    "The disk holding {} is full: {} still needs about {}. Free that much space and press Download again; it "
    "resumes where it stopped.":
        "Der Datenträger mit {0} ist voll: {1} braucht noch etwa {2}. Schaffen Sie so viel Platz und drücken Sie "
        "erneut Herunterladen; es geht dort weiter, wo es aufgehört hat.",
    "Stopped {} at {}.": "{0} bei {1} angehalten.",
    "Download of {} stopped at {} of {}; it resumes from there next time.":
        "Download von {0} bei {1} von {2} angehalten; beim nächsten Mal geht es dort weiter.",
    "Stopped before {} started.": "Angehalten, bevor {0} begann.",
    "The server sent more than {} bytes for {}.": "Der Server hat mehr als {0} Byte für {1} gesendet.",
    # servers (OpenAI API)
    "Iris cannot load files on the server at {}; pick one of its models.":
        "Iris kann auf dem Server {0} keine Dateien laden; wählen Sie eines seiner Modelle.",
    "The server at {} refused the request (HTTP {}): it needs an API key, or this one is wrong. Give it with "
    "--api-key or in the Models tab.":
        "Der Server {0} hat die Anfrage abgelehnt (HTTP {1}): er braucht einen API-Schlüssel, oder dieser ist "
        "falsch. Geben Sie ihn mit --api-key oder auf dem Reiter Modelle an.",
    "{} has no OpenAI chat API (HTTP 404). Give the server's base address, e.g. http://host:8000/v1.":
        "{0} hat keine OpenAI-Chat-API (HTTP 404). Geben Sie die Basisadresse des Servers an, z. B. "
        "http://host:8000/v1.",
    "{} on {} does not take images (the server says: {}). Pick a vision model.":
        "{0} auf {1} nimmt keine Bilder (der Server sagt: {2}). Wählen Sie ein Bildmodell.",
    "The server at {} takes fewer images per conversation (it says: {}). Send fewer, or start a new chat.":
        "Der Server {0} nimmt weniger Bilder pro Unterhaltung (er sagt: {1}). Senden Sie weniger, oder beginnen Sie "
        "einen neuen Chat.",
    "The server at {} could not answer (HTTP {}): {}": "Der Server {0} konnte nicht antworten (HTTP {1}): {2}",
    "The server at {} offers no models.": "Der Server {0} bietet keine Modelle an.",
    "No model is picked on this server. Pick one first.": "Auf diesem Server ist kein Modell gewählt. Wählen Sie "
                                                          "zuerst eines.",
    "The server at {} answered something that is not JSON (HTTP {}). Is this address an OpenAI-compatible API?":
        "Der Server {0} hat etwas geantwortet, das kein JSON ist (HTTP {1}). Ist diese Adresse eine "
        "OpenAI-kompatible API?",
    "The server at {} has no model {}; it offers {}.": "Der Server {0} hat kein Modell {1}; er bietet {2} an.",
    # download progress (app.downloader's states and messages), the machine, the demo
    "checking": "prüfen", "waiting": "warten", "downloading": "herunterladen", "retrying": "neuer Versuch",
    "verifying": "prüfen", "done": "fertig", "ETA": "noch",
    "already installed": "bereits installiert",
    "another Iris window or command is downloading this model":
        "ein anderes Iris-Fenster oder ein Befehl lädt dieses Modell herunter",
    "installed by the other download": "durch den anderen Download installiert",
    "asking the Hub about the files": "frage den Hub nach den Dateien",
    "checking the pair": "prüfe das Paar",
    "installed in {}": "installiert in {0}",
    "checking the bytes kept from the last try": "prüfe die vom letzten Versuch behaltenen Bytes",
    "{}; retrying": "{0}; neuer Versuch",
    "the Hub did not answer ({}); retrying": "der Hub hat nicht geantwortet ({0}); neuer Versuch",
    "{}, downloading it again": "{0}, wird erneut heruntergeladen",
    "{} failed its SHA-256 check (expected {}…, got {}…)":
        "{0} hat die SHA-256-Prüfung nicht bestanden (erwartet {1}…, erhalten {2}…)",
    "set by IRIS_MACHINE, {}": "durch IRIS_MACHINE festgelegt, {0}",
    "Apple Silicon, {}": "Apple Silicon, {0}",
    "NVIDIA GPU, {}": "NVIDIA-GPU, {0}",
    "CPU only, {}": "nur CPU, {0}",
    "Demo — knows only shapes and colours": "Demo — kennt nur Formen und Farben",
    # notices under a reply
    "This conversation no longer fits the model's context ({} tokens), so the oldest {} message{} were left out "
    "of this reply. They are still saved here.":
        "Diese Unterhaltung passt nicht mehr in den Kontext des Modells ({0} Token), daher fehlen in dieser Antwort "
        "die ältesten {1} Nachricht(en). Sie bleiben hier gespeichert.",
}

_ERRORS_IN: dict[str, dict[str, str]] = {"de": ERRORS}
