"""One Iris per user: a second start finds the running server and opens the browser on it."""

from __future__ import annotations

import json
import os
import urllib.request

from app import config
from app.filelock import FileLock


class SingleInstance:
    """The lock and the address file in the runtime dir."""

    def __init__(self) -> None:
        self._dir = config.ensure(config.runtime_dir())
        self._lock = FileLock(self._dir / "iris.lock")
        self.held = False

    def acquire(self) -> bool:
        """True when this process is now the one Iris; False when another one runs."""
        self.held = self._lock.try_acquire()
        return self.held

    def publish(self, url: str) -> None:
        """Record where this instance serves, for the next start to find."""
        tmp = self._dir / "server.json.tmp"
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
        os.replace(tmp, self._dir / "server.json")

    def running_url(self, timeout: float = 3.0) -> str | None:
        """The running instance's address if it answers."""
        try:
            url = json.loads((self._dir / "server.json").read_text(encoding="utf-8"))["url"]
            urllib.request.urlopen(url, timeout=timeout).close()
            return url
        except (OSError, ValueError, KeyError):
            return None

    def release(self) -> None:
        if self.held:
            (self._dir / "server.json").unlink(missing_ok=True)
        self._lock.close()
