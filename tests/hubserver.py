"""A Hugging Face Hub look-alike on 127.0.0.1 for downloader tests, with faults to inject.

Two servers, as on the real Hub: the "hub" answers /{repo}/resolve/{rev}/{file} with a 302 and the
headers huggingface_hub reads (X-Repo-Commit, X-Linked-Etag = SHA-256, X-Linked-Size), and a "CDN" on
another port serves the bytes with Range support. Every request is logged with the bytes it sent.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = "iris-test/test-llava-GGUF"
COMMIT = "5f0c0a6f4b3d2e1c0b9a8f7e6d5c4b3a29181706"


@dataclass
class Blob:
    path: Path
    size: int
    sha256: str


@dataclass
class Hit:
    """One request as the server saw it."""

    server: str
    method: str
    path: str
    range: str | None
    status: int
    sent: int = 0
    auth: bool = False


@dataclass
class HubState:
    """Repos, files and the faults the next requests will meet."""

    repos: dict[str, dict[str, Blob]] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)  # repo -> token that opens it
    drop_after: dict[str, list[int]] = field(default_factory=dict)  # file -> bytes to send before hanging up, per GET
    corrupt: dict[str, int] = field(default_factory=dict)  # file -> how many GETs get one flipped byte
    fail: dict[str, list[int]] = field(default_factory=dict)  # file -> status codes for the next CDN GETs
    rate: float | None = None  # bytes per second on the CDN, None = as fast as possible
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, path: Path) -> Blob:
        data = path.read_bytes()
        blob = Blob(path, len(data), hashlib.sha256(data).hexdigest())
        self.repos.setdefault(repo, {})[path.name] = blob
        return blob

    def blob(self, sha: str) -> tuple[str, Blob] | None:
        for files in self.repos.values():
            for name, b in files.items():
                if b.sha256 == sha:
                    return name, b
        return None

    def sent(self, file: str, method: str = "GET") -> int:
        """Bytes the CDN sent for a file so far."""
        blob = next(b for files in self.repos.values() for n, b in files.items() if n == file)
        return sum(h.sent for h in self.hits if h.server == "cdn" and h.method == method
                   and h.path.endswith(blob.sha256))


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def _handler(state: HubState, server_name: str, cdn_url: list[str]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _hit(self, status: int, sent: int = 0) -> None:
            with state.lock:
                state.hits.append(Hit(server_name, self.command, self.path.split("?")[0],
                                      self.headers.get("Range"), status, sent,
                                      self.headers.get("Authorization") is not None))

        def _error(self, status: int, code: str | None, text: str) -> None:
            body = ('{"error": "%s"}' % text).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", text)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self._hit(status)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route()

        def do_GET(self) -> None:  # noqa: N802
            self._route()

        def _route(self) -> None:
            if server_name == "hub":
                self._resolve()
            else:
                self._serve_blob()

        def _resolve(self) -> None:
            m = _RESOLVE.match(self.path.split("?")[0])
            if not m:
                return self._error(404, None, "Not found")
            repo, rev, file = m["repo"], m["rev"], m["file"]
            if repo not in state.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            if repo in state.gated:
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {state.gated[repo]}":
                    return self._error(401, "GatedRepo", "Access to this repository is restricted")
            if rev not in ("main", COMMIT):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            blob = state.repos[repo].get(file)
            if blob is None:
                return self._error(404, "EntryNotFound", "Entry not found")
            self.send_response(302)
            self.send_header("Location", f"{cdn_url[0]}/blobs/{blob.sha256}?name={file}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Size", str(blob.size))
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._hit(302)

        def _serve_blob(self) -> None:
            sha = self.path.split("?")[0].rsplit("/", 1)[-1]
            found = state.blob(sha)
            if found is None:
                return self._error(404, None, "Not found")
            name, blob = found
            if self.command == "GET":
                with state.lock:
                    codes = state.fail.get(name) or []
                    code = codes.pop(0) if codes else None
                if code:
                    return self._error(code, None, "Service unavailable")
            start = 0
            rng = self.headers.get("Range")
            if rng:
                mm = re.match(r"bytes=(\d+)-$", rng)
                start = int(mm[1]) if mm else 0
            length = blob.size - start
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{blob.size - 1}/{blob.size}")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{blob.sha256}"')
            self.end_headers()
            if self.command == "HEAD":
                return self._hit(206 if start else 200)
            with state.lock:
                drops = state.drop_after.get(name) or []
                limit = drops.pop(0) if drops else None
                flip = state.corrupt.get(name, 0) > 0
                if flip:
                    state.corrupt[name] -= 1
            sent = 0
            try:
                with open(blob.path, "rb") as fh:
                    fh.seek(start)
                    while sent < length:
                        n = 64 * 1024
                        if limit is not None:
                            n = min(n, limit - sent)
                            if n <= 0:
                                break
                        chunk = fh.read(n)
                        if not chunk:
                            break
                        if flip and start + sent <= blob.size // 2 < start + sent + len(chunk):
                            i = blob.size // 2 - start - sent
                            chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if state.rate:
                            time.sleep(len(chunk) / state.rate)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                self._hit(206 if start else 200, sent)
            if limit is not None:
                self.close_connection = True

    return Handler


class HubServer:
    """The hub and its CDN, started in threads; use as a context manager."""

    def __init__(self, state: HubState | None = None):
        self.state = state or HubState()
        cdn_url: list[str] = [""]
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state, "cdn", cdn_url))
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state, "hub", cdn_url))
        for srv in (self._cdn, self._hub):
            srv.daemon_threads = True
        cdn_url[0] = f"http://127.0.0.1:{self._cdn.server_address[1]}"
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"

    def __enter__(self) -> HubServer:
        for srv in (self._cdn, self._hub):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for srv in (self._cdn, self._hub):
            srv.shutdown()
            srv.server_close()


def write_catalog(path: Path, repo: str, lm: Blob, mmproj: Blob, model_id: str = "test-llava",
                  pin_sha: bool = True) -> Path:
    """A catalog with one entry whose single quantization is the given pair."""
    import json

    def f(b: Blob) -> dict:
        return {"file": b.path.name, "size": b.size, "sha256": b.sha256 if pin_sha else None}

    entry = {
        "id": model_id, "name": "Test LLaVA", "family": "llava-1.5", "repo": repo, "revision": None,
        "chat_format": "llava-1-5", "license": "MIT", "non_commercial": False, "context_length": 2048,
        "image_tokens": 16, "images_per_message": 4, "good_for": "tests", "verified": True,
        "kv_bytes_per_token": 1024, "quants": {"F32": {"lm": f(lm), "mmproj": f(mmproj)}},
    }
    path.write_text(json.dumps({"schema": 1, "source": "tests", "recommended": {"cpu": model_id},
                                "models": [entry]}))
    return path


def main() -> None:
    """Serve a folder's .gguf pair as a Hub repo, for trying `iris download` by hand."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("folder", type=Path, help="holds NAME.gguf and NAME-mmproj.gguf (tests/modelwriter.py)")
    ap.add_argument("--catalog", type=Path, required=True, help="where to write the one-entry catalog")
    ap.add_argument("--rate", type=float, default=None, help="bytes per second")
    ap.add_argument("--gated", default=None, help="require this token")
    ap.add_argument("--corrupt", type=int, default=0, help="flip a byte in the LM's next N downloads")
    ap.add_argument("--drop", type=int, default=0, help="hang up the LM's next download after this many bytes")
    ap.add_argument("--hide", default=None, help="serve the repo without this file (404)")
    args = ap.parse_args()
    state = HubState(rate=args.rate)
    mm = next(args.folder.glob("*mmproj*.gguf"))
    lm = next(p for p in args.folder.glob("*.gguf") if p != mm)
    blobs = [state.add(REPO, p) for p in (lm, mm)]
    write_catalog(args.catalog, REPO, *blobs)
    if args.gated:
        state.gated[REPO] = args.gated
    if args.corrupt:
        state.corrupt[lm.name] = args.corrupt
    if args.drop:
        state.drop_after[lm.name] = [args.drop]
    if args.hide:
        del state.repos[REPO][args.hide]
    with HubServer(state) as server:
        print(f"HF_ENDPOINT={server.url} IRIS_CATALOG={args.catalog}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
