"""The user's settings, kept in settings.json in the config dir between runs."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from app import config
from app.chat import GenParams

logger = logging.getLogger(__name__)

SYSTEM_PRESETS = {
    "Model default": "",
    "Describe carefully": "You are a careful visual assistant. Describe only what is visible in the image; "
                          "say so when you are unsure.",
    "Short answers": "Answer in one or two sentences.",
    "Read the text": "Transcribe all text visible in the image exactly, then answer the question.",
    "Explain for a child": "Explain what you see simply, as to a curious ten-year-old.",
}


@dataclass(frozen=True)
class Settings:
    """Sampling, context and GPU settings, the default system prompt, and the last model used."""

    system_prompt: str = ""
    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = 512
    n_ctx: int = 0  # 0: the model's training context, at most 4096
    n_gpu_layers: int = -1  # -1: automatic
    last_model: str | None = None
    servers: tuple[tuple[str, str], ...] = ()  # OpenAI-compatible servers added by the user: (url, API key)
    video_fps: float = 1.0  # frames sampled per second of video
    video_max_frames: int = 8  # at most this many (fewer when the context cannot hold them)

    def params(self) -> GenParams:
        return GenParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    def load_options(self) -> dict:
        return {"n_ctx": self.n_ctx or None, "n_gpu_layers": None if self.n_gpu_layers < 0 else self.n_gpu_layers}

    def clamp(self) -> Settings:
        """The same settings with every value in its valid range."""
        return replace(
            self, temperature=min(max(float(self.temperature), 0.0), 2.0), top_p=min(max(float(self.top_p), 0.05), 1.0),
            max_tokens=min(max(int(self.max_tokens), 16), 8192),
            n_ctx=0 if int(self.n_ctx) <= 0 else min(max(int(self.n_ctx), 512), 131072),
            n_gpu_layers=max(int(self.n_gpu_layers), -1),
            video_fps=min(max(float(self.video_fps), 0.05), 30.0),
            video_max_frames=min(max(int(self.video_max_frames), 1), 64),
            servers=tuple((str(s[0]), str(s[1] or "")) for s in self.servers
                          if isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str))[:16],
        )


def settings_path() -> Path:
    return config.config_dir() / "settings.json"


def load_settings() -> Settings:
    """Saved settings, or the defaults (a damaged file is set aside, not fatal)."""
    path = settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Settings)}
        return Settings(**{k: v for k, v in raw.items() if k in known}).clamp()
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("settings file %s unreadable (%s); using defaults", path, exc)
        try:
            os.replace(path, path.with_suffix(".json.bad"))
        except OSError:
            pass
        return Settings()


def save_settings(s: Settings) -> None:
    """Write settings atomically."""
    path = settings_path()
    config.ensure(path.parent)
    # A name of its own: two tabs (or a load and a slider) may save at the same moment.
    tmp = path.with_suffix(f".json.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(asdict(s.clamp()), indent=1), encoding="utf-8")
    os.replace(tmp, path)
