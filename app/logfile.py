"""The log file in the user log dir; set up once by whichever entry point starts the process."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from app import config


def configure(console: bool) -> Path:
    """Log everything to <log dir>/iris.log (rotated), and warnings to stderr when console is true."""
    path = config.ensure(config.log_dir()) / "iris.log"
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    fh = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    if console and sys.stderr is not None:
        ch = logging.StreamHandler()
        ch.setLevel(logging.WARNING)
        ch.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(ch)
    # Quieten libraries that log every HTTP request at INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "asyncio", "gradio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
