#!/usr/bin/env python3
"""Double-click entry for Iris: prepares its own environment once, then starts the app.

    python launcher.py [--backend cpu|cuda|metal] [--no-browser] [--port N] [--host H] [--key K] [--models-dir DIR]
    python launcher.py --test [pytest args]     # prepare the environment with test tools, run the suite

Phase 1 runs on any Python 3.10+ with the standard library only: it creates .venv beside this
file, installs a llama-cpp-python checked for this machine's backend (from Iris's wheelhouse, a
prebuilt wheel, or a ~6-minute build on 2 cores; app/installer.py), then Iris. Phase 2 runs inside
that environment.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("IRIS_VENV", ROOT / ".venv"))
PHASE2 = "IRIS_LAUNCHER_PHASE2"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _backend_choice():
    """The llama.cpp backend for this machine (app.backend is standard-library only)."""
    sys.path.insert(0, str(ROOT))
    from app.backend import choose

    try:
        return choose()
    except ValueError as exc:
        _say(f"{exc}. Unset it or use cpu, cuda or metal.")
        raise SystemExit(2) from None


def _stamp(extras: str, choice) -> str:
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    h.update(extras.encode())
    h.update(f"{choice.backend}|{choice.cmake_args}".encode())
    return h.hexdigest()


def _say(msg: str) -> None:
    # Double-clicked without a console (pythonw) there is nowhere to print; the log file has the details.
    if sys.stdout is not None:
        print(f"[iris] {msg}", flush=True)


def ensure_environment(extras: str = "") -> Path:
    """Create .venv with a checked llama-cpp-python and Iris (with extras) unless current; return its python."""
    from app.installer import InstallFailed, ensure_llama, read_state, run_with_heartbeat, wheelhouse_dir

    choice = _backend_choice()
    marker = VENV / f".iris-installed{('-' + extras) if extras else ''}"
    py = venv_python()
    if py.exists() and marker.exists() and marker.read_text() == _stamp(extras, choice):
        state = read_state(py)
        if state:
            _say(f"llama.cpp backend: {state.backend} ({state.reason}; {state.source} wheel)")
        return py
    t0 = time.monotonic()
    if not py.exists():
        _say(f"First run: creating a Python environment in {VENV} …")
        venv.EnvBuilder(with_pip=True).create(VENV)
    _say(f"llama.cpp backend: {choice.backend} ({choice.reason}). Set IRIS_BACKEND=cpu|cuda|metal to choose.")
    try:
        inst = ensure_llama(py, choice, say=_say)
    except InstallFailed as exc:
        _say(f"Could not install llama-cpp-python: {exc}")
        _say("A prebuilt wheel needs only Python; building one needs a C/C++ compiler and CMake. "
             "Install those (or set IRIS_WHEEL_INDEX to a wheel index for this machine) and run again.")
        raise SystemExit(1) from None
    if inst.backend != choice.backend:
        _say(f"Using the {inst.backend} backend instead of {choice.backend}: {'; '.join(inst.notes)}")
    _say("Installing Iris and its libraries …")
    target = f".[{extras}]" if extras else "."
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-e", target]
    log = wheelhouse_dir() / "pip-install-iris.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if run_with_heartbeat(cmd, dict(os.environ), _say, log, "installing Iris's libraries") != 0:
        _say(f"Installing Iris's libraries failed; the last lines of {log}:")
        for line in log.read_text(errors="replace").splitlines()[-15:]:
            _say("  " + line)
        raise SystemExit(1)
    marker.write_text(_stamp(extras, choice))
    _say(f"Environment ready in {time.monotonic() - t0:.0f} s.")
    return py


def setup_logging() -> Path:
    """Log to a rotating file in the user log dir, and warnings to the console when there is one."""
    from app.logfile import configure

    return configure(console=True)


def phase2(argv: list[str]) -> int:
    """Inside the environment: configure logging, then run `iris serve`."""
    sys.path.insert(0, str(ROOT))
    log = setup_logging()
    import logging

    from app.cli import main
    from app.installer import read_state

    _say(f"Logging to {log}")
    state = read_state(Path(sys.executable))
    if state:
        logging.getLogger("launcher").info("llama.cpp backend %s (%s), %s wheel %s", state.backend, state.reason,
                                           state.source, state.wheel)
    return main(["serve", *argv])


def main(argv: list[str]) -> int:
    if os.environ.get(PHASE2):
        return phase2(argv)
    if "--backend" in argv:
        # Same as IRIS_BACKEND; set here so that phase 2 and the installer see it too.
        i = argv.index("--backend")
        if i + 1 >= len(argv):
            _say("--backend needs a value: cpu, cuda or metal")
            return 2
        os.environ["IRIS_BACKEND"] = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
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
