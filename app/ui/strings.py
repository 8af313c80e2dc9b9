"""The page's own words in every language Iris speaks (no gradio here): English, the key, and German.

layout.py shows each through gr.I18n, which picks the browser's language. Text the server sends later
(status lines, toasts, errors, reply stats) is English for now.
"""

from __future__ import annotations

GERMAN = {
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

CATALOG: dict[str, dict[str, str]] = {"en": {k: k for k in GERMAN}, "de": GERMAN}
