"""An exclusive, non-blocking lock on a file, across threads and processes (flock / msvcrt)."""

from __future__ import annotations

import os
from pathlib import Path

from app import config


class FileLock:
    """Held from try_acquire() returning True until close(); the OS drops it if the process dies."""

    def __init__(self, path: Path):
        config.ensure(path.parent)
        self.path = path
        self._f = open(path, "a+b")  # noqa: SIM115 - held for the lock's lifetime

    def try_acquire(self) -> bool:
        try:
            if os.name == "nt":
                import msvcrt

                self._f.seek(0)
                msvcrt.locking(self._f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def close(self) -> None:
        # Closing the file releases the lock on every platform.
        self._f.close()
