"""Installs catalog models from the Hugging Face Hub: resumable, verified, cancellable, never twice at once.

The only module that imports huggingface_hub. The library builds the URLs, the token and proxy handling
(HF_ENDPOINT, HF_TOKEN, HTTPS_PROXY) and maps the Hub's errors; Iris streams the bytes itself because
huggingface_hub 2.4.0 neither resumes across calls nor checks SHA-256, retries no 5xx on the file GET and
reports progress per 10 MiB (measured in shared/research/hub-client.md).

On disk, under the models folder:
    .downloads/<install>/<file>.part       bytes so far; <file>.part.json says which remote file they are
    .downloads/<install>/<file>            a file that passed its SHA-256 check
    .downloads/<install>.lock              held by whichever process is downloading that install
    <install>/                             the finished install: both files, then iris-model.json, moved
                                           into place in one rename, so a half-done download is never listed
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Iris sends nothing to anyone but the files it asks for; must be set before huggingface_hub is imported.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx2  # noqa: E402 - the imports below come after the setting above
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status  # noqa: E402

from app import config  # noqa: E402
from app.catalog import ModelSpec, Quant, RemoteFile  # noqa: E402
from app.errors import ChecksumMismatch, DownloadCancelled, DownloadError, NotEnoughSpace  # noqa: E402
from app.filelock import FileLock  # noqa: E402
from app.ggufinfo import check_pair  # noqa: E402
from app.store import DOWNLOADS, MANIFEST, ModelStore, human_size, install_name, read_manifest  # noqa: E402

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Waits between tries when nothing arrives; any byte received resets the count.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# How often the bytes on disk are flushed and recorded as safe to resume from (after a crash or reboot).
SYNC_EVERY_S = 1.0
# Left free beyond the download itself so the history database and the OS still have room.
RESERVE_BYTES = 200_000_000
PROGRESS_EVERY_S = 0.2


@dataclass
class Progress:
    """Where an install stands: what the UI's bar and the CLI's line show."""

    model: str
    state: str = "checking"  # checking | waiting | downloading | retrying | verifying | done
    file: str = ""
    done: int = 0
    total: int = 0
    speed: float = 0.0
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current speed, or None when unknown."""
        if self.speed <= 0 or not self.total:
            return None
        return max(self.total - self.done, 0) / self.speed

    def line(self, tr: Callable[[str], str] = str) -> str:
        """One line for a terminal: model, file, bytes, percent, speed, ETA (its words through tr: the page's
        language)."""
        parts = [self.model, tr(self.state)]
        if self.file:
            parts.append(self.file)
        if self.total:
            parts.append(f"{human_size(self.done)} / {human_size(self.total)} ({self.fraction:.0%})")
        if self.state == "downloading" and self.speed > 0:
            parts.append(f"{human_size(int(self.speed))}/s")
            eta = self.eta
            if eta is not None:
                parts.append(f"{tr('ETA')} {format_duration(eta)}")
        if self.message:
            parts.append(tr(self.message))
        return "  ".join(parts)


def format_duration(seconds: float) -> str:
    """Seconds as '42s', '3m 05s' or '1h 02m'."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


ProgressFn = Callable[[Progress], None]


@dataclass
class _Remote:
    """One file as the Hub describes it now, and the hash it must have."""

    role: str
    spec: RemoteFile
    url: str
    location: str
    size: int
    etag: str
    commit: str | None
    sha256: str | None


class _Tracker:
    """Aggregates bytes over an install's files and calls the progress callback at a steady pace."""

    def __init__(self, model: str, callback: ProgressFn | None):
        self.p = Progress(model)
        self._callback = callback
        self._samples: deque[tuple[float, int]] = deque()
        self._last = 0.0

    def set(self, force: bool = True, **changes: object) -> None:
        for k, v in changes.items():
            setattr(self.p, k, v)
        self._emit(force)

    def add(self, n: int) -> None:
        self.p.done += n
        now = time.monotonic()
        self._samples.append((now, self.p.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 5.0:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        if now - t0 > 0.2:
            self.p.speed = (self.p.done - d0) / (now - t0)
        self._emit(False)

    def _emit(self, force: bool) -> None:
        now = time.monotonic()
        if self._callback is None or (not force and now - self._last < PROGRESS_EVERY_S):
            return
        self._last = now
        self._callback(Progress(**vars(self.p)))


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _is_sha256(s: str | None) -> bool:
    return s is not None and len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in ("1", "true", "yes", "on") or constants.is_offline_mode()


class Downloader:
    """Downloads a catalog entry's LM and mmproj into the models folder."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        free_space: Callable[[Path], int] | None = None,
        token: str | bool | None = None,
    ):
        self._store = ModelStore(root)
        self.retry_delays = tuple(retry_delays)
        self._free_space = free_space or (lambda p: shutil.disk_usage(p).free)
        self._token = token

    @property
    def root(self) -> Path:
        return self._store.root

    @staticmethod
    def endpoint() -> str:
        """The Hub address: HF_ENDPOINT read now (a mirror or a test server), else the library's default."""
        return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")

    def installed(self, spec: ModelSpec, quant: Quant) -> Path | None:
        """The finished install's folder, or None."""
        folder = self.root / install_name(spec.id, quant.name)
        return folder if read_manifest(folder) is not None else None

    def install(
        self,
        spec: ModelSpec,
        quant_name: str | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Download, verify and install one quantization; return its folder. Resumes what an earlier try left."""
        quant = spec.quant(quant_name)
        cancel = cancel or threading.Event()
        name = install_name(spec.id, quant.name)
        tracker = _Tracker(name, progress)
        done = self.installed(spec, quant)
        if done is not None:
            tracker.set(state="done", message="already installed")
            return done
        if _offline():
            raise DownloadError(
                "HF_HUB_OFFLINE is set, so Iris may not download anything. Unset it and try again, "
                "or add a model's two .gguf files yourself."
            )
        staging = self.root / DOWNLOADS / name
        lock = FileLock(self.root / DOWNLOADS / f"{name}.lock")
        try:
            while not lock.try_acquire():
                # Another tab or process is downloading this very model: follow its progress, then share its result.
                tracker.set(state="waiting", done=self._bytes_in(staging), total=quant.size,
                            message="another Iris window or command is downloading this model")
                if cancel.wait(0.5):
                    raise DownloadCancelled(f"Stopped waiting for {name}.")
            done = self.installed(spec, quant)
            if done is not None:
                tracker.set(state="done", done=quant.size, total=quant.size, message="installed by the other download")
                return done
            try:
                return self._install_locked(spec, quant, staging, tracker, cancel)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                    raise
                short = max(quant.size - self._bytes_in(staging), 0)
                raise NotEnoughSpace(
                    f"The disk holding {self.root} is full: {name} still needs about {human_size(short)}. Free "
                    "that much space and press Download again; it resumes where it stopped."
                ) from None
        finally:
            lock.close()

    # -- one install, lock held ------------------------------------------------------------------------

    def _install_locked(self, spec: ModelSpec, quant: Quant, staging: Path, tracker: _Tracker,
                        cancel: threading.Event) -> Path:
        name = install_name(spec.id, quant.name)
        config.ensure(staging)
        tracker.set(state="checking", total=quant.size, message="asking the Hub about the files")
        remotes = [self._metadata(spec, role, f, cancel, tracker)
                   for role, f in (("lm", quant.lm), ("mmproj", quant.mmproj))]
        total = sum(r.size for r in remotes)
        have = sum(self._have(staging, r) for r in remotes)
        tracker.set(total=total, done=have, message="")
        self._check_space(name, staging, total - have)
        paths = {r.role: self._fetch(r, staging, tracker, cancel) for r in remotes}
        tracker.set(state="verifying", file="", message="checking the pair")
        info = check_pair(paths["lm"], paths["mmproj"])  # the same checks as loading; a bad pair is not installed
        manifest = {
            "catalog_id": spec.id, "display_name": spec.name, "quant": quant.name, "repo": spec.repo,
            "revision": spec.revision, "commit": remotes[0].commit, "chat_format": spec.chat_format,
            "license": spec.license, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": [{"role": r.role, "file": r.spec.file, "size": r.size, "sha256": r.sha256} for r in remotes],
            "lm_width": info.lm.n_embd,
        }
        for side in staging.glob("*.part.json"):
            side.unlink()
        tmp = staging / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _fsync_file(tmp)
        os.replace(tmp, staging / MANIFEST)
        final = self.root / name
        if final.exists():
            # A folder without a record (a crash between rename and... or a user's copy): keep it aside.
            os.replace(final, final.with_name(f"{name}.old-{int(time.time())}"))
        os.replace(staging, final)  # the install appears whole, in one step
        tracker.set(state="done", done=total, total=total, file="", message=f"installed in {final}")
        logger.info("installed %s in %s", name, final)
        return final

    def _metadata(self, spec: ModelSpec, role: str, f: RemoteFile, cancel: threading.Event,
                  tracker: _Tracker) -> _Remote:
        url = hf_hub_url(spec.repo, f.file, revision=spec.revision or "main", endpoint=self.endpoint())
        meta = self._with_retries(
            lambda: get_hf_file_metadata(url, token=self._token, endpoint=self.endpoint()),
            spec, f.file, cancel, tracker,
        )
        if meta.size is None:
            raise DownloadError(f"The Hub did not say how big {f.file} is; try again later.")
        etag = (meta.etag or "").lower()
        if f.sha256 and _is_sha256(etag) and etag != f.sha256:
            raise ChecksumMismatch(
                f"The Hub's {f.file} in {spec.repo} (SHA-256 {etag[:12]}…) is not the file Iris's catalog "
                f"names ({f.sha256[:12]}…): the repository has changed. Nothing was downloaded; update Iris "
                "for a new catalog, or download the files yourself and add them as your own model."
            )
        if not f.size_approx and f.size != meta.size:
            raise ChecksumMismatch(
                f"The Hub's {f.file} is {meta.size:,} bytes, the catalog says {f.size:,}: the repository has "
                "changed. Nothing was downloaded; update Iris for a new catalog."
            )
        sha = f.sha256 or (etag if _is_sha256(etag) else None)
        if sha is None:
            logger.warning("%s: no SHA-256 published; only its size can be checked", f.file)
        return _Remote(role, f, url, meta.location or url, meta.size, etag, meta.commit_hash, sha)

    def _check_space(self, name: str, staging: Path, needed: int) -> None:
        free = self._free_space(staging)
        if needed + RESERVE_BYTES > free:
            raise NotEnoughSpace(
                f"Not enough disk space for {name}: it needs {human_size(needed)} more "
                f"(plus {human_size(RESERVE_BYTES)} kept free) and {self.root} has {human_size(free)} free. "
                "Free some space, pick a smaller quantization, or use another models folder (--models-dir)."
            )

    # -- one file --------------------------------------------------------------------------------------

    @staticmethod
    def _bytes_in(staging: Path) -> int:
        try:
            return sum(p.stat().st_size for p in staging.iterdir() if not p.name.endswith(".json"))
        except OSError:
            return 0

    def _have(self, staging: Path, r: _Remote) -> int:
        """Bytes of this file already on disk that a resume will keep."""
        if (staging / r.spec.file).is_file():
            return r.size
        return self._kept(staging / (r.spec.file + ".part"), r)[0]

    @staticmethod
    def _kept(part: Path, r: _Remote) -> tuple[int, int]:
        """(bytes in the part file, bytes of it known to have reached the disk) for this remote file."""
        side = part.with_name(part.name + ".json")
        try:
            rec = json.loads(side.read_text(encoding="utf-8"))
            if rec.get("etag") != r.etag or rec.get("size") != r.size:
                return 0, 0  # the remote file changed since: those bytes belong to another file
            size = min(part.stat().st_size, r.size)
            return size, min(size, int(rec.get("synced", 0)))
        except (OSError, ValueError):
            return 0, 0

    def _reuse(self, r: _Remote, dest: Path) -> bool:
        """Link (or copy) an identical file another install already verified, e.g. a shared mmproj."""
        if r.sha256 is None:
            return False
        for man_path in self.root.glob(f"*/{MANIFEST}"):
            man = read_manifest(man_path.parent) or {}
            for f in man.get("files", []):
                src = man_path.parent / f.get("file", "")
                if f.get("sha256") == r.sha256 and f.get("size") == r.size and src.is_file():
                    try:
                        os.link(src, dest)
                    except OSError:
                        shutil.copyfile(src, dest)
                    logger.info("reused %s from %s", r.spec.file, man_path.parent.name)
                    return True
        return False

    def _fetch(self, r: _Remote, staging: Path, tracker: _Tracker, cancel: threading.Event) -> Path:
        dest = staging / r.spec.file
        if dest.is_file():
            return dest  # verified by an earlier try
        part = staging / (r.spec.file + ".part")
        if self._reuse(r, dest):
            tracker.add(r.size - self._kept(part, r)[0])
            part.unlink(missing_ok=True)
            part.with_name(part.name + ".json").unlink(missing_ok=True)
            return dest
        # Resume from every byte on disk (a killed app leaves them intact). If the result fails its check, the
        # bytes written after the last fsync may be what is wrong (a crash of the OS): try again from that point,
        # and only then from scratch.
        kept, synced = self._kept(part, r)
        starts = [kept] + ([synced] if synced < kept else []) + [0]
        if kept == 0:
            starts = [0, 0]
        for i, start in enumerate(starts):
            digest = self._stream(r, part, start, tracker, cancel)
            if r.sha256 is None or digest == r.sha256:
                _fsync_file(part)
                os.replace(part, dest)
                return dest
            tracker.p.done -= r.size - (starts[i + 1] if i + 1 < len(starts) else 0)
            msg = f"{r.spec.file} failed its SHA-256 check (expected {r.sha256[:12]}…, got {digest[:12]}…)"
            if i + 1 < len(starts) and starts[i + 1] == 0:
                part.unlink(missing_ok=True)
                part.with_name(part.name + ".json").unlink(missing_ok=True)
                msg += "; the bad file was removed"
            logger.warning(msg)
            if i + 1 < len(starts):
                tracker.set(state="retrying", message=f"{msg}, downloading it again")
        part.unlink(missing_ok=True)
        part.with_name(part.name + ".json").unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{r.spec.file} failed its SHA-256 check twice (expected {(r.sha256 or '?')[:12]}…); the bad file was "
            "removed. "
            "Something between you and the Hub (a proxy, antivirus or a flaky disk) is changing the data. "
            "Try again later or from another network."
        )

    def _stream(self, r: _Remote, part: Path, offset: int, tracker: _Tracker, cancel: threading.Event) -> str:
        """Bring part up to the full file, keeping its first offset bytes; return its SHA-256."""
        side = part.with_name(part.name + ".json")
        hasher = hashlib.sha256()
        tracker.set(state="verifying" if offset else "downloading", file=r.spec.file,
                    message="checking the bytes kept from the last try" if offset else "")
        mode = "r+b" if part.exists() else "w+b"
        with open(part, mode) as fh:
            fh.truncate(offset)
            fh.seek(0)
            left = offset
            while left:
                block = fh.read(min(left, 1 << 20))
                hasher.update(block)
                left -= len(block)
                if cancel.is_set():
                    raise DownloadCancelled(f"Stopped {r.spec.file} at {human_size(offset)}.")
            fh.seek(offset)
            state: dict[str, Any] = {"offset": offset, "synced_at": time.monotonic()}

            def sync() -> None:
                fh.flush()
                os.fsync(fh.fileno())
                _write_json(side, {"etag": r.etag, "size": r.size, "url": r.url, "synced": state["offset"]})
                state["synced_at"] = time.monotonic()

            sync()
            failures = 0
            try:
                while state["offset"] < r.size:
                    if cancel.is_set():
                        raise DownloadCancelled(
                            f"Download of {r.spec.file} stopped at {human_size(state['offset'])} of "
                            f"{human_size(r.size)}; it resumes from there next time."
                        )
                    got = 0
                    try:
                        tracker.set(state="downloading", message="")
                        with self._open(r, state["offset"]) as resp:
                            if state["offset"] and resp.status_code == 200:
                                # The server ignored our Range: start the file over rather than append a second copy.
                                tracker.add(-state["offset"])
                                state["offset"] = 0
                                fh.seek(0)
                                fh.truncate(0)
                                hasher = hashlib.sha256()
                            # No chunk_size: a re-chunking buffer would lose its partial chunk when the line drops.
                            for chunk in resp.iter_bytes():
                                if cancel.is_set():
                                    break
                                if state["offset"] + len(chunk) > r.size:
                                    raise DownloadError(
                                        f"The server sent more than {r.size:,} bytes for {r.spec.file}.")
                                fh.write(chunk)
                                hasher.update(chunk)
                                state["offset"] += len(chunk)
                                got += len(chunk)
                                tracker.add(len(chunk))
                                if time.monotonic() - state["synced_at"] >= SYNC_EVERY_S:
                                    sync()
                        if state["offset"] < r.size and not cancel.is_set():
                            raise httpx2.RemoteProtocolError("the connection closed before the end of the file")
                    except Exception as exc:  # noqa: BLE001 - sorted into transient or final just below
                        if not self._transient(exc):
                            raise self._explain(exc, r.spec.file, tracker) from exc
                        failures = 0 if got else failures + 1
                        if failures > len(self.retry_delays):
                            raise self._explain(exc, r.spec.file, tracker) from exc
                        delay = self.retry_delays[max(failures - 1, 0)] if failures else 0.0
                        logger.warning("%s: %s; retrying from byte %d in %.1f s", r.spec.file, exc,
                                       state["offset"], delay)
                        tracker.set(state="retrying", message=f"{_short(exc)}; retrying")
                        if delay and cancel.wait(delay):
                            continue
                        if isinstance(exc, HfHubHTTPError) and not _same_origin(r.url, r.location):
                            # A CDN link can expire during a long download: ask the Hub for a fresh one.
                            r.location = self._refresh_location(r)
            finally:
                sync()
        return hasher.hexdigest()

    def _open(self, r: _Remote, offset: int):  # -> context manager of httpx2.Response
        headers = build_hf_headers(token=self._token)
        headers["Accept-Encoding"] = "identity"
        if not _same_origin(r.url, r.location):
            headers.pop("authorization", None)  # a token never goes to the CDN, as in huggingface_hub
        if offset:
            headers["Range"] = f"bytes={offset}-"
        timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT, connect=10.0)
        return _checked_stream(get_session().stream("GET", r.location, headers=headers, timeout=timeout), offset)

    def _refresh_location(self, r: _Remote) -> str:
        try:
            return get_hf_file_metadata(r.url, token=self._token, endpoint=self.endpoint()).location or r.location
        except Exception:  # noqa: BLE001 - keep the old link; the next try reports the real error
            return r.location

    # -- errors ----------------------------------------------------------------------------------------

    @staticmethod
    def _transient(exc: BaseException) -> bool:
        if isinstance(exc, httpx2.ProxyError):
            return False
        if isinstance(exc, HfHubHTTPError):
            resp = getattr(exc, "response", None)
            return resp is not None and resp.status_code in TRANSIENT_STATUS
        return isinstance(exc, httpx2.TransportError)

    def _with_retries(self, call: Callable, spec: ModelSpec, file: str, cancel: threading.Event,
                      tracker: _Tracker):
        # Before any byte arrives, a few quick tries: someone offline should hear so in seconds, not a minute.
        delays = self.retry_delays[:3]
        for attempt in range(len(delays) + 1):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - sorted into transient or final just below
                if not self._transient(exc) or attempt == len(delays):
                    raise self._explain(exc, file, tracker, spec) from exc
                tracker.set(state="retrying", message=f"the Hub did not answer ({_short(exc)}); retrying")
                if cancel.wait(delays[attempt]):
                    raise DownloadCancelled(f"Stopped before {file} started.") from None
        raise AssertionError("unreachable")

    def _explain(self, exc: BaseException, file: str, tracker: _Tracker, spec: ModelSpec | None = None) -> Exception:
        """A library or network exception as an error that says what happened and what to do."""
        if isinstance(exc, DownloadError):
            return exc
        kept = f" What was downloaded ({human_size(tracker.p.done)}) is kept; the next try resumes from there." \
            if tracker.p.done else ""
        repo = spec.repo if spec else "the repository"
        endpoint = self.endpoint()
        status = exc.response.status_code if isinstance(exc, HfHubHTTPError) and exc.response is not None else None
        if status == 401 and "invalid credentials" in (getattr(exc, "server_message", None) or "").lower():
            return DownloadError("The Hub refused the token in HF_TOKEN (invalid credentials). Create a new read "
                                 f"token at {endpoint}/settings/tokens, set HF_TOKEN to it and try again.")
        if isinstance(exc, OfflineModeIsEnabled):
            return DownloadError("HF_HUB_OFFLINE is set, so Iris may not download anything. Unset it and try again.")
        if isinstance(exc, GatedRepoError) or (
            isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code in (401, 403)
            and not isinstance(exc, RepositoryNotFoundError)
        ):
            return DownloadError(
                f"{repo} is gated: its owners want you to accept their terms first. Open "
                f"{endpoint}/{repo} while logged in and accept them, then give Iris a read token: create one at "
                f"{endpoint}/settings/tokens and set HF_TOKEN=hf_… before starting Iris (or run 'hf auth login')."
            )
        if isinstance(exc, RevisionNotFoundError):
            return DownloadError(f"{repo} has no revision '{spec.revision if spec else ''}' any more; "
                                 "update Iris for a new catalog.")
        if isinstance(exc, RemoteEntryNotFoundError):
            return DownloadError(f"{file} is not in {repo} (404). The catalog entry is out of date; "
                                 "update Iris, or pick another model.")
        if isinstance(exc, RepositoryNotFoundError):
            return DownloadError(f"{repo} was not found on the Hub (404). It was removed or made private; "
                                 "if you have access, set HF_TOKEN to a token that can read it.")
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            code = exc.response.status_code
            return DownloadError(f"The Hub answered {code} for {file} after several tries; try again later.{kept}")
        if isinstance(exc, httpx2.ProxyError):
            return DownloadError(f"The proxy refused the connection to {endpoint} ({_short(exc)}). "
                                 f"Check HTTPS_PROXY / HTTP_PROXY.{kept}")
        if isinstance(exc, httpx2.TransportError):
            return DownloadError(
                f"Could not reach {endpoint} ({_short(exc)}). Check your internet connection or proxy."
                f"{kept}"
            )
        return exc if isinstance(exc, Exception) else DownloadError(str(exc))


class _checked_stream:  # noqa: N801 - used like a function in a with statement
    """Enter an httpx stream, raising the Hub's mapped error on 4xx/5xx and refusing a misplaced 206."""

    def __init__(self, cm, offset: int):
        self._cm = cm
        self._offset = offset

    def __enter__(self) -> httpx2.Response:
        resp = self._cm.__enter__()
        try:
            if resp.status_code >= 400:
                resp.read()  # the error mapping reads the body
                hf_raise_for_status(resp)
            if resp.status_code == 206:
                start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
                if not start.isdigit() or int(start) != self._offset:
                    raise httpx2.RemoteProtocolError(f"asked for byte {self._offset}, got range {start or '?'}")
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise
        return resp

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def _short(exc: BaseException) -> str:
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError)):
        return "the connection dropped"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


__all__ = ["Downloader", "Progress", "format_duration"]
