"""The engine worker: llama.cpp in a child process, so a native crash or an out-of-memory kill takes the
model down but not Iris.

The child (`python -m app.worker`) serves app.api's routes on 127.0.0.1 with a fresh key: the OpenAI
chat API plus /iris/load, /iris/count, /iris/image_cost and /iris/status. The app talks to it with
WorkerEngine, which is RemoteEngine (the client it uses for any server) plus the process: it starts it,
notices when it dies, says so in plain words, restarts it and loads the model again.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app import config, errors
from app.chat import Conversation, GenParams, Reply, ReplyStats
from app.images import PreparedImage
from app.openai_format import conversation_messages, data_url
from app.remote import RemoteEngine, ServerUnreachable

logger = logging.getLogger(__name__)

READY = "IRIS-WORKER-PORT"
START_TIMEOUT_S = 120.0
MAX_LOAD_CRASHES = 2  # a model whose load crashes the process this many times in a row is not retried


class EngineCrashed(errors.AppError):
    """The model process died (a signal, an out-of-memory kill, an exit) while working."""


def _how(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "a signal"
        extra = ": killed, often because the computer ran out of memory" if -code == 9 else ""
        return f"crashed (signal {-code}, {name}{extra})"
    return f"exited (code {code})"


def _answer(r: Any) -> dict:
    """The model process's JSON answer; its refusal raised as the AppError kind the engine raised."""
    body = r.json()
    if r.status_code >= 400:
        err = body.get("error", {})
        kind = getattr(errors, str(err.get("type")), errors.AppError)
        if not (isinstance(kind, type) and issubclass(kind, errors.AppError)):
            kind = errors.AppError
        raise kind(str(err.get("message") or f"the model process answered HTTP {r.status_code}"))
    return body


class WorkerEngine(RemoteEngine):
    """The Engine protocol for an engine running in a child process that this object starts and restarts."""

    def __init__(self, *, start: bool = True):
        self._proc: subprocess.Popen[str] | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._last_load: tuple[str, str, dict] | None = None
        self._load_crashes = 0
        self._crash_key: tuple[str, str] | None = None
        self._gave_up: str | None = None
        self._ready = threading.Event()
        self._starting = threading.Lock()
        self.restarts = 0
        self._closed = False
        self._loading = False
        self._cancelled = False
        self.restart_s: float | None = None  # how long the last restart took, to the model loaded again
        super().__init__("http://127.0.0.1:1", None)
        self.is_iris = True
        self.measure_here = False  # the process's own figures are exact (no network between)
        if start:
            self._start()
            self._ready.set()

    def start_soon(self) -> None:
        """Start the process on a thread (the app's page comes up meanwhile); the first request waits for it."""
        def boot() -> None:
            with self._starting:
                try:
                    self._start()
                except errors.AppError as exc:
                    logger.error("%s", exc)  # the first request starts it again and shows why
                finally:
                    self._ready.set()

        threading.Thread(target=boot, name="iris-worker-start", daemon=True).start()

    # -- the process -------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise EngineCrashed("Iris is shutting down.")
        key = secrets.token_urlsafe(18)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen([sys.executable, "-m", "app.worker", "--key-from-stdin"], cwd=root, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(key + "\n")  # never on the command line, where other users' `ps` would see it
        proc.stdin.close()
        port = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY):
                port = int(line.split()[1])
                break
            self._tail.append(line.rstrip())
        if port is None:
            proc.kill()
            raise errors.ModelLoadFailed(f"Iris could not start its model process ({_how(proc.wait())}). "
                                         f"{self._last_lines()}")
        self._proc = proc
        threading.Thread(target=self._drain, args=(proc,), name="iris-worker-log", daemon=True).start()
        self._connect(f"http://127.0.0.1:{port}", key)
        logger.info("model process %d serving on 127.0.0.1:%d", proc.pid, port)

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        """Copy the child's output to Iris's log, keeping the last lines for a crash report."""
        assert proc.stdout is not None
        child = logging.getLogger("app.worker.child")
        for line in proc.stdout:
            line = line.rstrip()
            self._tail.append(line)
            child.debug("%s", line)

    def _last_lines(self) -> str:
        lines = [x for x in self._tail if x.strip()][-8:]
        return ("Its last log lines: " + " | ".join(lines)) if lines else ""

    def _died(self) -> int | None:
        """The exit code if the process is gone (waiting a moment for it), else None."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None

    def _crashed(self, doing: str) -> EngineCrashed:
        """Record a death, restart the process (and the model) in the background, and say what happened."""
        assert self._proc is not None
        code = self._proc.returncode
        what = _how(code)
        logger.error("the model process %s while %s. %s", what, doing, "\n".join(self._tail))
        self._ready.clear()
        threading.Thread(target=self._recover, name="iris-worker-restart", daemon=True).start()
        return EngineCrashed(f"The model process {what} while {doing}; Iris restarted it. Your conversation is saved.")

    def _recover(self) -> None:
        t0 = time.perf_counter()
        with self._starting:
            try:
                self._start()
                if self._last_load is not None and self._gave_up is None:
                    lm, mm, opts = self._last_load
                    self._load_now(lm, mm, opts)
                self.restarts += 1
                self.restart_s = time.perf_counter() - t0
                logger.info("model process restarted in %.2f s", self.restart_s)
            except errors.AppError as exc:
                logger.error("restarting the model process failed: %s", exc)
            finally:
                self._ready.set()

    def _wait_ready(self) -> None:
        if not self._ready.wait(timeout=START_TIMEOUT_S):
            raise EngineCrashed("The model process is still restarting; try again in a moment.")
        if self._proc is None or self._proc.poll() is not None:
            with self._starting:
                if self._proc is None or self._proc.poll() is not None:
                    self._start()

    # -- the Engine protocol -----------------------------------------------------------------------------

    def load(self, lm_path: str | Path, mmproj_path: str | Path, **kwargs: object) -> object:
        """Load a pair in the model process (checks, errors and AMX guard as in-process)."""
        self._wait_ready()
        key = (str(lm_path), str(mmproj_path))
        if self._crash_key != key:  # crashes are counted per pair
            self._load_crashes, self._gave_up, self._crash_key = 0, None, key
        if self._gave_up is not None:
            raise errors.ModelLoadFailed(self._gave_up)
        self._last_load = (key[0], key[1], dict(kwargs))
        return self._load_now(key[0], key[1], dict(kwargs))

    def cancel_load(self) -> bool:
        """Stop a load in progress (the process is ended and started again, empty); False if none was."""
        if not self._loading or self._proc is None:
            return False
        self._cancelled = True
        self._proc.kill()
        return True

    def _load_now(self, lm: str, mm: str, opts: dict) -> object:
        self._loading, self._cancelled = True, False
        try:
            r = self._http.post("/iris/load", json={"lm": lm, "mmproj": mm, "options": opts}, timeout=None)
        except Exception as exc:  # noqa: BLE001 - httpx2 errors: the process may have died loading
            code = self._died()
            if code is None:
                raise self._unreachable(exc) from None
            if self._cancelled:
                self._last_load, self.model = None, None
                self._ready.clear()
                threading.Thread(target=self._recover, daemon=True).start()
                raise errors.ModelLoadFailed(f"Loading {Path(lm).name} was cancelled; no model is loaded.") from None
            self._load_crashes += 1
            self._last_load = None  # the restarted process comes up empty: no reload of what just crashed
            name = Path(lm).name
            logger.error("the model process %s while loading %s. %s", _how(code), name, "\n".join(self._tail))
            self._ready.clear()
            if self._load_crashes >= MAX_LOAD_CRASHES:
                self._gave_up = (f"The model process {_how(code)} each time it loaded {name} "
                                 f"({self._load_crashes} times), so Iris stopped trying. The file may be damaged "
                                 "or too big for this computer; pick another model.")
                threading.Thread(target=self._recover, daemon=True).start()
                raise errors.ModelLoadFailed(self._gave_up) from None
            threading.Thread(target=self._recover, daemon=True).start()
            raise errors.ModelLoadFailed(f"The model process {_how(code)} while loading {name}; Iris restarted "
                                         "it. Press Load to try once more.") from None
        finally:
            self._loading = False
        body = _answer(r)
        self._load_crashes = 0
        self.model = types.SimpleNamespace(name=Path(lm).stem, **body["model"])
        return self.model

    def _stream(self, reply_of: Callable[[], Reply], conv: Conversation, params: GenParams, session: str | None,
                stats: ReplyStats, cancel: threading.Event) -> Iterator[str]:
        """The reply from the model process; if the process dies meanwhile, EngineCrashed (the text so far kept)."""
        self._wait_ready()
        if self.model is not None:  # what the process will report; kept if it dies first
            stats.device_lm = getattr(self.model, "device_lm", "")
            stats.device_mmproj = getattr(self.model, "device_mmproj", "")
            stats.context_size = int(getattr(self.model, "n_ctx", 0))
        try:
            yield from super()._stream(reply_of, conv, params, session, stats, cancel)
        except ServerUnreachable:
            if self._died() is None:
                raise
            stats.finish_reason = "interrupted"
            raise self._crashed("answering") from None

    def _post_count(self, path: str, body: dict) -> int:
        self._wait_ready()
        try:
            r = self._http.post(path, json=body)
        except Exception as exc:  # noqa: BLE001
            if self._died() is None:
                raise self._unreachable(exc) from None
            raise self._crashed("reading the prompt") from None
        return int(_answer(r)["tokens"])

    def count_tokens(self, conv: Conversation) -> int:
        """Context cells the prompt takes, counted by the model process (which keeps the split for the reply)."""
        return self._post_count("/iris/count", {"messages": conversation_messages(conv, iris=True)})

    def image_cost(self, image: PreparedImage) -> int:
        """Cells one image takes with the loaded model."""
        return self._post_count("/iris/image_cost", {"url": data_url(image)})

    def unload(self) -> None:
        """Free the model in the process (the process stays, ready for the next load)."""
        self.stop()
        self.model = None
        self._last_load = None
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._http.post("/iris/unload", timeout=60)
            except Exception:  # noqa: BLE001 - it is going anyway
                logger.debug("unload: the model process did not answer")

    def close(self) -> None:
        """Stop the process (and start no other)."""
        self.unload()
        with self._starting:  # a restart in progress finishes first, then nothing starts again
            self._closed = True
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        super().close()

    @property
    def pid(self) -> int | None:
        """The model process's id (tests kill it)."""
        return self._proc.pid if self._proc is not None else None


def serve(key: str) -> None:
    """Run in the child: load nothing, answer on a free loopback port, print it, serve until killed."""
    import uvicorn
    from starlette.applications import Starlette

    from app.api import ChatApi, routes
    from app.engine import LlamaCppEngine
    from app.webguard import HostGuard

    # The token loop and the HTTP loop share the GIL: switch often, so a token goes out as soon as it exists.
    sys.setswitchinterval(0.0005)
    engine: Any = LlamaCppEngine()
    # Fault injection for the tests, no other use: a load of a file whose name has this text crashes, or
    # every load takes this many seconds longer.
    crash_on = os.environ.get("IRIS_TEST_CRASH_LOADING")
    slow = float(os.environ.get("IRIS_TEST_SLOW_LOADING") or 0)
    if crash_on or slow:
        real_load = engine.load

        def load(lm: str, mm: str, **kw: Any) -> Any:
            if crash_on and crash_on in str(lm):
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(slow)
            return real_load(lm, mm, **kw)

        engine.load = load

    def models() -> list[dict]:
        m = engine.model
        return [] if m is None else [{"id": Path(m.lm_path).stem, "object": "model", "created": 0,
                                      "owned_by": "iris", "capabilities": ["vision"], "iris": {"loaded": True}}]

    def resolve(name: str) -> str:
        if engine.model is None:
            raise errors.NoModelLoaded("No model is loaded in the model process.")
        return Path(engine.model.lm_path).stem

    api = ChatApi(lambda: engine, models=models, resolve=resolve, defaults=GenParams)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Each token is its own small write: Nagle's algorithm would hold one back for the client's ACK (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app: Any = HostGuard(Starlette(routes=routes(api, worker=True)), "127.0.0.1", port, key)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    parent = os.getppid()

    def orphaned() -> None:  # Iris was killed without closing us: go too, rather than hold the model's memory
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, name="iris-worker-parent", daemon=True).start()
    print(f"{READY} {port}", flush=True)
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.worker", description="Iris's model process (started by Iris)")
    ap.add_argument("--key-from-stdin", action="store_true", help="read the access key from the first stdin line")
    args = ap.parse_args(argv)
    key = sys.stdin.readline().strip() if args.key_from_stdin else ""
    if not key:
        print("the model process needs its key on stdin", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    config.ensure(config.log_dir())
    serve(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
