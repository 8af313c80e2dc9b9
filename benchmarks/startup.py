"""Benchmark: `iris serve` from process start to its first HTTP 200 and to the app's page, and where the time goes.

    .venv/bin/python benchmarks/startup.py [--rounds 5] [--models N] [--importtime]

Each round starts `python -m app serve --no-browser` in a fresh IRIS_HOME (with N installed test pairs
when --models is given, so the model scan has work to do) and polls the page every 10 ms until it
answers 200: first the start page (app.startpage, up while Gradio imports), then the app's own page.
Prints the medians with min-max. With --importtime, also runs one start under
`python -X importtime` and prints the slowest top-level imports (cumulative), so the cost of each
library is visible. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_home(home: Path, models: int) -> None:
    if models:
        from app import config
        from tests.modelwriter import write_pair

        os.environ["IRIS_HOME"] = str(home)
        for i in range(models):
            write_pair(config.models_dir() / f"test-{i}", name=f"test-{i}")


def one_start(home: Path, extra: list[str] | None = None, timeout: float = 60.0) -> tuple[float, float, str]:
    """Seconds from spawning `iris serve` to its first HTTP 200 (the start page) and to the app's own page
    (a 200 without the start page's header), and the child's stderr (after it was stopped)."""
    from app.startpage import HEADER

    port = _free_port()
    env = dict(os.environ, IRIS_HOME=str(home), PYTHONDONTWRITEBYTECODE="")
    cmd = [sys.executable, *(extra or []), "-m", "app", "serve", "--no-browser", "--port", str(port)]
    # stderr to a file: a pipe nobody reads fills up with -X importtime's lines and stalls the child.
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    first = app = float("nan")
    try:
        while time.perf_counter() - t0 < timeout:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        now = time.perf_counter() - t0
                        first = now if first != first else first
                        if not r.headers.get(HEADER):
                            app = now
                            break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None:
                break
            # Every 10 ms until something answers; then every 50 ms, so that the polling (each request a
            # thread in the child) does not slow down the import it is waiting for.
            time.sleep(0.01 if first != first else 0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        err = log.read()
        log.close()
    return first, app, err.decode(errors="replace")


def import_costs(stderr: str, top: int = 15) -> list[tuple[float, str]]:
    """The slowest top-level imports in a `-X importtime` log, as (seconds, module)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        if not cumulative.strip().isdigit():
            continue
        if name.startswith(" ") and not name.startswith("  "):  # depth 1: imported by __main__ itself
            rows.append((int(cumulative) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", type=int, default=0, help="test pairs installed before each start")
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    firsts, apps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        _prepare_home(home, args.models)
        one_start(home)  # first start writes the settings, history and bytecode; not counted
        for _ in range(args.rounds):
            first, app, err = one_start(home)
            if app != app:
                print("Iris did not answer:\n" + "\n".join(err.splitlines()[-15:]))
                raise SystemExit(1)
            firsts.append(first)
            apps.append(app)
        for label, times in (("first HTTP 200 (the start page)", firsts), ("the app's page", apps)):
            print(f"iris serve to {label}: median {statistics.median(times):.2f} s "
                  f"({min(times):.2f}-{max(times):.2f}) over {len(times)} starts, {args.models} models installed")
        if args.importtime:
            _, _, err = one_start(home, ["-X", "importtime"])
            print("slowest imports (cumulative s):")
            for secs, name in import_costs(err):
                print(f"  {secs:6.3f}  {name}")


if __name__ == "__main__":
    main()
