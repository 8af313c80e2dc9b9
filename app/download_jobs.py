"""Downloads running in the background for the UI: start, follow, cancel; one job per model."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.catalog import ModelSpec
from app.errors import AppError, DownloadCancelled
from app.store import install_name

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One install in progress (or just finished), as the Models page shows it."""

    name: str
    spec: ModelSpec
    quant: str
    progress: object  # app.downloader.Progress, kept untyped so this module needs no Hub import
    cancel: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    cancelled: bool = False
    folder: Path | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class DownloadManager:
    """Runs installs in threads so the chat stays usable; a second request joins the running job."""

    def __init__(self, root: Path | None = None, make_downloader: Callable[[Path | None], object] | None = None):
        self._root = root
        self._make = make_downloader
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _downloader(self):
        if self._make is not None:
            return self._make(self._root)
        from app.downloader import Downloader

        return Downloader(self._root)

    def start(self, spec: ModelSpec, quant: str | None = None) -> Job:
        """Start installing spec/quant, or return the job already doing it."""
        from app.downloader import Progress

        q = spec.quant(quant)
        name = install_name(spec.id, q.name)
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.running:
                return job
            job = Job(name, spec, q.name, Progress(name, total=q.size))
            self._jobs[name] = job
            job.thread = threading.Thread(target=self._run, args=(job,), name=f"download-{name}", daemon=True)
            job.thread.start()
        return job

    def _run(self, job: Job) -> None:
        def progress(p: object) -> None:
            job.progress = p

        try:
            job.folder = self._downloader().install(job.spec, job.quant, progress=progress, cancel=job.cancel)
        except DownloadCancelled:
            job.cancelled = True
        except AppError as exc:
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a background thread must report, not die silently
            logger.exception("download of %s failed", job.name)
            job.error = f"The download failed unexpectedly ({exc}); the details are in the log file."

    def cancel(self, name: str) -> bool:
        """Ask a running job to stop; True when there was one."""
        job = self._jobs.get(name)
        if job is None or not job.running:
            return False
        job.cancel.set()
        return True

    def jobs(self) -> list[Job]:
        """Every job started in this run of the app, newest last."""
        return list(self._jobs.values())

    def wait(self, name: str, timeout: float | None = None) -> Job:
        """Block until a job ends (for the CLI and tests)."""
        job = self._jobs[name]
        if job.thread is not None:
            job.thread.join(timeout)
        return job
