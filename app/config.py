"""Where Iris keeps its data and settings; read at call time so IRIS_HOME can change under tests."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "Iris"
DEFAULT_PORT = 7860
DEFAULT_HOST = "127.0.0.1"


def _dirs() -> PlatformDirs:
    return PlatformDirs(APP_NAME, appauthor=False)


def home_override() -> Path | None:
    """The IRIS_HOME directory when set: everything then lives below it."""
    value = os.environ.get("IRIS_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Directory for models, history and images."""
    home = home_override()
    return home / "data" if home else _dirs().user_data_path


def models_dir() -> Path:
    """Default models folder (overridden by --models-dir)."""
    return data_dir() / "models"


def config_dir() -> Path:
    """Directory for settings files."""
    home = home_override()
    return home / "config" if home else _dirs().user_config_path


def log_dir() -> Path:
    """Directory for the log file."""
    home = home_override()
    return home / "logs" if home else _dirs().user_log_path


def runtime_dir() -> Path:
    """Directory for the single-instance lock and the running server's address."""
    home = home_override()
    return home / "run" if home else _dirs().user_cache_path


def catalog_path() -> Path:
    """The model catalog: models/catalog.json in the app, or IRIS_CATALOG (tests, mirrors)."""
    value = os.environ.get("IRIS_CATALOG")
    return Path(value).expanduser() if value else Path(__file__).resolve().parent.parent / "models" / "catalog.json"


def demo_dir() -> Path:
    """The bundled demo model (assets/demo), or IRIS_DEMO_DIR."""
    value = os.environ.get("IRIS_DEMO_DIR")
    return Path(value).expanduser() if value else Path(__file__).resolve().parent.parent / "assets" / "demo"


def ensure(path: Path) -> Path:
    """Create a directory if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def _megabytes(variable: str, default: float) -> int:
    """A size limit given in MB by an environment variable (read at call time), in bytes; at least 1 MB."""
    try:
        mb = float(os.environ.get(variable, default))
    except ValueError:
        mb = default
    return int(max(mb, 1.0) * 1024 * 1024)


def max_video_bytes() -> int:
    """Largest video the web page takes: IRIS_MAX_VIDEO_MB, default 2048 (uploads go to disk, not memory)."""
    return _megabytes("IRIS_MAX_VIDEO_MB", 2048)


def max_upload_bytes() -> int:
    """Largest upload the web server takes (images, imported chats): IRIS_MAX_UPLOAD_MB, default 50."""
    return _megabytes("IRIS_MAX_UPLOAD_MB", 50)
