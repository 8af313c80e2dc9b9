"""An exclusive, non-blocking lock on a file across threads and processes: the filelock package's OS lock."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock as _OSLock
from filelock import Timeout

from app import config


class FileLock:
    """Held from try_acquire() returning True until close(); the OS drops it if the process dies."""

    def __init__(self, path: Path):
        config.ensure(path.parent)
        self.path = path
        # flock / msvcrt only: the package's soft fallback (a marker file) would outlive a killed process.
        # Not thread-local: one Iris process holds it for all its threads (a second window must wait).
        self._lock = _OSLock(str(path), timeout=0, thread_local=False, fallback_to_soft=False,
                             preserve_lock_file=True)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if self._lock.is_locked:
            return False  # this object already holds it: a second hold would only count up
        try:
            self._lock.acquire()
        except Timeout:
            return False
        return True

    def close(self) -> None:
        """Let go of the lock (if held)."""
        if self._lock.is_locked:
            self._lock.release(force=True)
