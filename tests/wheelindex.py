"""A PEP 503 'simple' package index on 127.0.0.1 serving the wheels in one folder, and broken wheels to serve.

    python tests/wheelindex.py DIR [--port N]     # serve DIR's wheels by hand
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import re
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _project(wheel_name: str) -> str:
    return re.sub(r"[-_.]+", "-", wheel_name.split("-", 1)[0]).lower()


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        root = Path(self.directory)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/simple", ""):
            names = sorted({_project(p.name) for p in root.glob("*.whl")})
            return self._page("".join(f'<a href="/simple/{n}/">{n}</a><br>' for n in names))
        m = re.fullmatch(r"/simple/([^/]+)", path)
        if m:
            wanted = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            links = []
            for p in sorted(root.glob("*.whl")):
                if _project(p.name) == wanted:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                    links.append(f'<a href="/files/{html.escape(p.name)}#sha256={digest}">{html.escape(p.name)}</a><br>')
            if not links:
                self.send_error(404)
                return
            return self._page("".join(links))
        if path.startswith("/files/"):
            self.path = "/" + path[len("/files/"):]
            return super().do_GET()
        self.send_error(404)

    def _page(self, body: str) -> None:
        data = f"<!DOCTYPE html><html><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class WheelIndex:
    """Serves DIR's wheels as a PEP 503 index; use as a context manager; .url is the index URL."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = folder
        self.server = ThreadingHTTPServer(("127.0.0.1", port), partial(_Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def __enter__(self) -> "WheelIndex":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_wheel(path: Path, files: dict[str, str | bytes], name: str = "llama_cpp_python",
                version: str = "0.3.36") -> Path:
    """Write a minimal valid wheel holding files (e.g. a llama_cpp package that crashes on import)."""
    dist = f"{name}-{version}.dist-info"
    entries: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    entries[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                   f"Version: {version}\n").encode()
    entries[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: iris-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for k, v in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b"=").decode()
        record.append(f"{k},sha256={digest},{len(v)}")
    record.append(f"{dist}/RECORD,,")
    entries[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in entries.items():
            zf.writestr(k, v)
    return path


# Broken llama-cpp-python wheels as a wrong index might serve them: a native crash on first use,
# a missing native library, and a library that loads but computes nothing useful.
BROKEN = {
    "segfault": {"llama_cpp/__init__.py": "import ctypes\nctypes.string_at(0)\n"},
    "no-library": {"llama_cpp/__init__.py": "raise OSError('libllama.so: cannot open shared object file')\n"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    with WheelIndex(args.folder, args.port) as idx:
        print(f"serving {args.folder} at {idx.url} (Ctrl+C stops)")
        threading.Event().wait()


if __name__ == "__main__":
    main()
