#!/usr/bin/env python3
"""Double-click entry for Iris: prepares its own environment once, then starts the app.

    python launcher.py [--no-browser] [--port N] [--host H] [--models-dir DIR]
    python launcher.py --test [pytest args]     # prepare the environment with test tools, run the suite

Phase 1 runs on any Python 3.10+ with the standard library only: it creates .venv beside this
file and installs Iris into it (llama-cpp-python is compiled from source there, about 9 minutes on
2 cores, once; pip keeps the built wheel in its cache). Phase 2 runs inside that environment.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("IRIS_VENV", ROOT / ".venv"))
PHASE2 = "IRIS_LAUNCHER_PHASE2"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build_flags() -> str:
    """CMAKE_ARGS for llama-cpp-python: CUDA when a toolkit is present, Metal on Apple Silicon."""
    if os.environ.get("CMAKE_ARGS"):
        return os.environ["CMAKE_ARGS"]
    if shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").exists():
        return "-DGGML_CUDA=on"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "-DGGML_METAL=on"
    return ""


def _stamp(extras: str) -> str:
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    h.update(extras.encode())
    h.update(build_flags().encode())
    return h.hexdigest()


def _say(msg: str) -> None:
    # Double-clicked without a console (pythonw) there is nowhere to print; the log file has the details.
    if sys.stdout is not None:
        print(f"[iris] {msg}", flush=True)


def ensure_environment(extras: str = "") -> Path:
    """Create .venv and install Iris (with extras) unless it is already current; return its python."""
    marker = VENV / f".iris-installed{('-' + extras) if extras else ''}"
    py = venv_python()
    if py.exists() and marker.exists() and marker.read_text() == _stamp(extras):
        return py
    if not py.exists():
        _say(f"First run: creating a Python environment in {VENV} …")
        venv.EnvBuilder(with_pip=True).create(VENV)
    flags = build_flags()
    env = dict(os.environ)
    if flags:
        env["CMAKE_ARGS"] = flags
        _say(f"Building llama-cpp-python with {flags}.")
    _say("Installing Iris and its libraries. llama-cpp-python is compiled from source: this takes "
         "about 9 minutes on a 2-core machine the first time (later runs reuse the built wheel).")
    target = f".[{extras}]" if extras else "."
    cmd = [str(py), "-m", "pip", "install", "--progress-bar", "on", "-e", target]
    _run_with_heartbeat(cmd, env)
    marker.write_text(_stamp(extras))
    _say("Environment ready.")
    return py


def _run_with_heartbeat(cmd: list[str], env: dict) -> None:
    """Run pip, echo its output, and say every 30 s that a long build is still going."""
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(30):
            mins = (time.monotonic() - start) / 60
            _say(f"… still installing ({mins:.1f} min so far; the llama.cpp build takes ~9 min on 2 cores)")

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env)
    finally:
        done.set()
    if proc.returncode != 0:
        _say("Installation failed (see the messages above). A C/C++ compiler and CMake are needed "
             "to build llama-cpp-python; install them and run the launcher again.")
        raise SystemExit(proc.returncode)


def setup_logging() -> Path:
    """Log to a rotating file in the user log dir, and warnings to the console when there is one."""
    from app.logfile import configure

    return configure(console=True)


def phase2(argv: list[str]) -> int:
    """Inside the environment: configure logging, then run `iris serve`."""
    sys.path.insert(0, str(ROOT))
    log = setup_logging()
    from app.cli import main

    _say(f"Logging to {log}")
    return main(["serve", *argv])


def main(argv: list[str]) -> int:
    if os.environ.get(PHASE2):
        return phase2(argv)
    if argv[:1] == ["--test"]:
        py = ensure_environment("test")
        return subprocess.call([str(py), "-m", "pytest", *argv[1:]], cwd=ROOT)
    py = ensure_environment()
    if Path(sys.executable).name.lower() == "pythonw.exe" and py.with_name("pythonw.exe").exists():
        py = py.with_name("pythonw.exe")  # no console window for the app either
    env = dict(os.environ, **{PHASE2: "1"})
    proc = subprocess.Popen([str(py), str(Path(__file__).resolve()), *argv], env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl+C reached the app too: let it close its server and save, rather than killing it.
            try:
                proc.wait(15)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                proc.kill()
            return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
