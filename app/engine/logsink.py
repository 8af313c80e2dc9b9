"""llama.cpp's and libmtmd's log lines, routed to Python logging through one process-wide callback."""

from __future__ import annotations

import ctypes
import logging
import re
from typing import Any

llama_log = logging.getLogger("app.engine.llama")


class _LogSink:
    """Routes llama.cpp and libmtmd log lines to Python logging and remembers device lines."""

    DEVICE_RE = re.compile(
        r"(using device \S+ \(([^)]*)\)|Device \d+: ([^,\n]+)|CLIP using (\S+) backend|"
        r"ggml_metal_init: found device: (.+)|GPU name:\s+(.+))"
    )

    ENCODE_RE = re.compile(r"encoded in (\d+) ms")
    # "CPU_REPACK model buffer size = ...", "AMX model buffer size": which weight layouts were used.
    BUFFER_RE = re.compile(r"(\S+) model buffer size")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._pending = ""
        self.encode_ms = 0  # libmtmd's own report of image encoding, for the stock-handler benchmark

    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
    LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}

    def __call__(self, level: int, text: bytes, _user: Any) -> None:
        msg = self._pending + text.decode("utf-8", errors="replace")
        if level != 5:
            self._level = self.LEVELS.get(level, logging.DEBUG)
        if not msg.endswith("\n"):
            self._pending = msg
            return
        self._pending = ""
        for line in msg.splitlines():
            if self.DEVICE_RE.search(line) or self.BUFFER_RE.search(line):
                self.lines.append(line.strip())
                del self.lines[:-50]
            m = self.ENCODE_RE.search(line)
            if m:
                self.encode_ms += int(m.group(1))
            llama_log.log(getattr(self, "_level", logging.DEBUG), "%s", line)


_SINK = _LogSink()


_LOG_CB: Any = None


def route_logs() -> None:
    """Point llama.cpp's and libmtmd's loggers at the sink (again: loading a model resets mtmd's)."""
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd_cpp

    global _LOG_CB
    if _LOG_CB is None:
        # One callback that is never freed: llama.cpp's logger is global, and a callback freed with
        # its engine would be called later and crash the process.
        _LOG_CB = llama_cpp.llama_log_callback(_SINK)
    llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_log_set(_LOG_CB, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_LOG_CB, ctypes.c_void_p(0))


__all__ = ["route_logs", "llama_log"]
