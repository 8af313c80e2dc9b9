"""Installs llama-cpp-python for the chosen backend: from Iris's wheelhouse, a prebuilt wheel, or a build.

Standard library only (the launcher runs it before Iris's environment exists). pip's own wheel
cache is never relied on: it ignores CMAKE_ARGS, so a wheel built for one backend would be reused
for another. Iris keeps every wheel it built or fetched in its own wheelhouse, one folder per
llama-cpp-python version, backend and CPU feature set, and checks each new install in a child
process (`python -m app.llamalib`: quantize, load, decode) before the app may use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.backend import Choice, cmake_args, gpu_listed, wheel_key

PACKAGE = "llama-cpp-python"
ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ".iris-llama.json"
# llama-cpp-python's published wheel indexes (documented defaults; IRIS_WHEEL_INDEX replaces them).
PUBLISHED = "https://abetlen.github.io/llama-cpp-python/whl"
PROBE_TIMEOUT_S = 600
Say = Callable[[str], None]


class InstallFailed(Exception):
    """llama-cpp-python could not be installed for any backend; the message says what to do."""


@dataclass
class Installed:
    """What is installed in the environment, where it came from, and what its check measured."""

    backend: str
    key: str
    source: str            # wheelhouse | prebuilt | built
    wheel: str
    cmake_args: str = ""
    reason: str = ""
    index: str = ""
    probe: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def llama_version(root: Path = ROOT) -> str:
    """The llama-cpp-python version pyproject.toml pins."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'"llama-cpp-python==([^"]+)"', text)
    if not m:
        raise InstallFailed("pyproject.toml does not pin llama-cpp-python==VERSION")
    return m.group(1)


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Iris's user cache folder, as platformdirs names it (IRIS_HOME/cache when IRIS_HOME is set)."""
    env = os.environ if env is None else env
    if env.get("IRIS_HOME"):
        return Path(env["IRIS_HOME"]).expanduser() / "cache"
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "Iris" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "Iris"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "Iris"


def wheelhouse_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where built and fetched llama-cpp-python wheels are kept (IRIS_WHEELHOUSE overrides)."""
    env = os.environ if env is None else env
    if env.get("IRIS_WHEELHOUSE"):
        return Path(env["IRIS_WHEELHOUSE"]).expanduser()
    return user_cache_dir(env) / "wheels"


def wheel_indexes(backend: str, env: Mapping[str, str] | None = None, driver_cuda: str | None = None) -> list[str]:
    """Prebuilt-wheel indexes for a backend: IRIS_WHEEL_INDEX (space-separated, or 'none'), else llama-cpp-python's."""
    env = os.environ if env is None else env
    given = env.get("IRIS_WHEEL_INDEX")
    if given is not None:
        return [] if given.strip().lower() in ("", "none", "off") else given.split()
    if backend == "cpu":
        return [f"{PUBLISHED}/cpu"]
    if backend == "metal":
        return [f"{PUBLISHED}/metal"]
    if backend == "cuda":
        # Published CUDA builds are cu121..cu125; a newer driver runs the newest of them.
        m = re.match(r"(\d+)\.(\d+)", driver_cuda or "")
        minor = 5 if not m or int(m.group(1)) > 12 else max(1, min(5, int(m.group(2))))
        return [f"{PUBLISHED}/cu12{minor}"]
    return []


def read_state(venv_py: Path) -> Installed | None:
    """What the launcher last installed into this environment, if it recorded it."""
    try:
        data = json.loads((_venv_root(venv_py) / STATE_FILE).read_text(encoding="utf-8"))
        return Installed(**data)
    except (OSError, ValueError, TypeError):
        return None


def ensure_llama(venv_py: Path, choice: Choice, *, say: Say, env: Mapping[str, str] | None = None,
                 root: Path = ROOT, build: Callable[..., Path] | None = None,
                 flags: frozenset[str] | None = None) -> Installed:
    """Make venv_py's environment hold a checked llama-cpp-python for choice; return what it holds."""
    env = dict(os.environ if env is None else env)
    version = llama_version(root)
    gpu = (gpu_listed() or "").split(" (UUID")[0] if choice.backend == "cuda" else None
    key = wheel_key(version, choice, flags, gpu=gpu)
    state = read_state(venv_py)
    if state and state.key == key and _imports(venv_py, root, env):
        return state
    house = wheelhouse_dir(env) / key
    build = build or build_from_source

    cached = sorted(house.glob("*.whl")) if house.is_dir() else []
    for wheel in cached:
        probe, why = _install_and_probe(venv_py, wheel, root, env)
        if probe is not None:
            say(f"llama-cpp-python {version} ({choice.backend}) installed from Iris's wheelhouse: {wheel}")
            return _record(venv_py, Installed(choice.backend, key, "wheelhouse", str(wheel), choice.cmake_args,
                                              choice.reason, probe=probe))
        say(f"The kept wheel {wheel.name} failed its check ({why}); removing it.")
        wheel.unlink(missing_ok=True)

    notes: list[str] = []
    if choice.backend != "custom":
        for index in wheel_indexes(choice.backend, env, _driver_cuda() if choice.backend == "cuda" else None):
            say(f"Looking for a prebuilt llama-cpp-python {version} ({choice.backend}) at {index} …")
            fetched, why = fetch_prebuilt(venv_py, index, version, env)
            if fetched is None:
                notes.append(f"no prebuilt wheel from {index}: {why}")
                say(f"No usable prebuilt wheel there ({why}).")
                continue
            wheel = fetched
            probe, why = _install_and_probe(venv_py, wheel, root, env)
            if probe is None:
                notes.append(f"prebuilt wheel {wheel.name} from {index} refused: {why}")
                say(f"The prebuilt wheel {wheel.name} failed its check ({why}); it is not used.")
                _uninstall(venv_py, env)
                continue
            kept = _keep(wheel, house, {"source": "prebuilt", "index": index, "probe": probe})
            say(f"Prebuilt llama-cpp-python installed and checked ({probe.get('seconds', '?')} s); kept in {house}.")
            return _record(venv_py, Installed(choice.backend, key, "prebuilt", str(kept), choice.cmake_args,
                                              choice.reason, index=index, probe=probe, notes=notes))

    attempts = [choice]
    if choice.backend in ("cuda", "metal"):
        attempts.append(Choice("cpu", cmake_args("cpu"), f"the {choice.backend} build did not work"))
    for attempt in attempts:
        akey = key if attempt is choice else wheel_key(version, attempt, flags)
        ahouse = wheelhouse_dir(env) / akey
        try:
            wheel = build(venv_py, version, attempt.cmake_args, say=say, env=env, logdir=wheelhouse_dir(env))
        except InstallFailed as exc:
            if attempt is attempts[-1]:
                raise
            notes.append(f"{attempt.backend} build failed: {exc}")
            say(f"The {attempt.backend} build failed ({exc}); building for the CPU instead.")
            continue
        probe, why = _install_and_probe(venv_py, wheel, root, env)
        if probe is None:
            _uninstall(venv_py, env)
            if attempt is attempts[-1]:
                raise InstallFailed(f"the llama-cpp-python built here fails its check ({why}). "
                                    "Report this with the log above.")
            notes.append(f"{attempt.backend} build fails its check: {why}")
            say(f"The {attempt.backend} build fails its check ({why}); building for the CPU instead.")
            continue
        kept = _keep(wheel, ahouse, {"source": "built", "cmake_args": attempt.cmake_args, "probe": probe})
        if wheel.parent.name.startswith("iris-build-"):
            shutil.rmtree(wheel.parent, ignore_errors=True)  # build_from_source's own scratch folder
        say(f"llama-cpp-python built for {attempt.backend} and checked; kept in {ahouse} for next time.")
        return _record(venv_py, Installed(attempt.backend, akey, "built", str(kept), attempt.cmake_args,
                                          attempt.reason, probe=probe, notes=notes))
    raise InstallFailed("no backend could be installed")  # pragma: no cover - the loop returns or raises


def fetch_prebuilt(venv_py: Path, index: str, version: str,
                   env: Mapping[str, str]) -> tuple[Path | None, str]:
    """Download llama-cpp-python==version as a wheel for venv_py from a PEP 503 index; (wheel, '') or (None, why)."""
    dest = Path(tempfile.mkdtemp(prefix="iris-prebuilt-"))
    # --isolated: only this index, not pip.conf's extra indexes or find-links.
    cmd = [str(venv_py), "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--index-url", index, "--timeout", "15", "--retries", "1",
           "-d", str(dest), f"{PACKAGE}=={version}"]
    if env.get("PIP_CERT"):
        cmd[5:5] = ["--cert", env["PIP_CERT"]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(env))
    except subprocess.TimeoutExpired:
        return None, "the index did not answer within 15 minutes"
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        out = proc.stdout + proc.stderr
        if re.search(r"NewConnectionError|Failed to establish|Name or service not known|Temporary failure in "
                     r"name resolution|ConnectTimeout|Connection refused", out):
            # pip then also says "no matching distribution", which would hide the real cause.
            return None, "the index cannot be reached from this machine"
        return None, _last_error(out) or f"pip exited {proc.returncode}"
    return wheels[0], ""


def build_from_source(venv_py: Path, version: str, cmake: str, *, say: Say, env: Mapping[str, str],
                      logdir: Path) -> Path:
    """Compile llama-cpp-python with CMAKE_ARGS=cmake into a fresh wheel (never pip's cache); its path."""
    out = Path(tempfile.mkdtemp(prefix="iris-build-"))
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"build-{time.strftime('%Y%m%d-%H%M%S')}.log"
    benv = dict(env, CMAKE_ARGS=cmake)
    # Several cores compile in parallel; 2-core machines still take minutes.
    benv.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    cmd = [str(venv_py), "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
           "-w", str(out), f"{PACKAGE}=={version}"]
    say(f"Compiling llama-cpp-python {version} with CMAKE_ARGS={cmake} (about 6 minutes on 2 cores; "
        f"log: {log}). It needs a C/C++ compiler and CMake.")
    rc = run_with_heartbeat(cmd, benv, say, log, "compiling llama.cpp")
    wheels = sorted(out.glob("*.whl"))
    if rc != 0 or not wheels:
        raise InstallFailed(_last_error(log.read_text(errors="replace")) or f"pip wheel exited {rc}; see {log}")
    return wheels[0]


def run_with_heartbeat(cmd: list[str], env: Mapping[str, str], say: Say, log: Path, what: str) -> int:
    """Run cmd with its output in log, saying every 30 s that it is still going; its exit code."""
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(30):
            say(f"… still {what} ({(time.monotonic() - start) / 60:.1f} min so far)")

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        with open(log, "w", encoding="utf-8", errors="replace") as fh:
            return subprocess.run(cmd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT).returncode
    finally:
        done.set()


def probe_install(venv_py: Path, root: Path, env: Mapping[str, str]) -> tuple[dict | None, str]:
    """Run the engine's library check in a child process: (figures, '') or (None, why)."""
    penv = dict(env, GGML_NO_BACKTRACE="1", PYTHONPATH=str(root))
    try:
        proc = subprocess.run([str(venv_py), "-m", "app.llamalib"], cwd=root, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=penv)
    except subprocess.TimeoutExpired:
        return None, f"it hung for {PROBE_TIMEOUT_S} s"
    for line in proc.stdout.splitlines():
        if line.startswith("IRIS-PROBE "):
            try:
                return json.loads(line[len("IRIS-PROBE "):]), ""
            except ValueError:
                break
        if line.startswith("IRIS-PROBE-FAILED "):
            return None, line[len("IRIS-PROBE-FAILED "):][:300]
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return None, f"the test process crashed with {name}"
    return None, _last_error(proc.stdout + proc.stderr) or f"the test process exited {proc.returncode}"


def _install_and_probe(venv_py: Path, wheel: Path, root: Path, env: Mapping[str, str]) -> tuple[dict | None, str]:
    base = [str(venv_py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    proc = subprocess.run([*base, "--force-reinstall", "--no-deps", str(wheel)], capture_output=True, text=True,
                          env=dict(env))
    if proc.returncode == 0:
        # Its own requirements (numpy, jinja2, diskcache) from the usual indexes.
        proc = subprocess.run([*base, str(wheel)], capture_output=True, text=True, env=dict(env))
    if proc.returncode != 0:
        return None, "pip could not install it: " + (_last_error(proc.stdout + proc.stderr) or "see pip's output")
    return probe_install(venv_py, root, env)


def _uninstall(venv_py: Path, env: Mapping[str, str]) -> None:
    subprocess.run([str(venv_py), "-m", "pip", "uninstall", "-y", "-q", PACKAGE], capture_output=True,
                   env=dict(env))
    state = _venv_root(venv_py) / STATE_FILE
    state.unlink(missing_ok=True)


def _imports(venv_py: Path, root: Path, env: Mapping[str, str]) -> bool:
    proc = subprocess.run([str(venv_py), "-c", "import llama_cpp"], cwd=root, capture_output=True,
                          env=dict(env, GGML_NO_BACKTRACE="1"))
    return proc.returncode == 0


def _keep(wheel: Path, house: Path, info: dict) -> Path:
    house.mkdir(parents=True, exist_ok=True)
    dst = house / wheel.name
    if wheel.resolve() != dst.resolve():
        tmp = dst.with_suffix(".part")
        shutil.copyfile(wheel, tmp)
        os.replace(tmp, dst)  # never a half-copied wheel in the wheelhouse
    (house / "info.json").write_text(json.dumps({**info, "wheel": dst.name,
                                                 "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
    return dst


def _record(venv_py: Path, inst: Installed) -> Installed:
    (_venv_root(venv_py) / STATE_FILE).write_text(json.dumps(asdict(inst), indent=1), encoding="utf-8")
    return inst


def _venv_root(venv_py: Path) -> Path:
    # .venv/bin/python or .venv\Scripts\python.exe
    return Path(venv_py).parent.parent


def _driver_cuda() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*([\d.]+)", out)
    return m.group(1) if m else None


def _last_error(text: str) -> str:
    """The line of a tool's output that says what went wrong, cut short."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in (r"CMake Error", r"\berror\b", r"ERROR:", r"No matching distribution", r"Could not"):
        for i, ln in enumerate(lines):
            if re.search(pattern, ln, re.IGNORECASE):
                detail = ln
                if pattern == "CMake Error" and i + 1 < len(lines):
                    detail += " " + lines[i + 1]
                return detail[:300]
    return lines[-1][:300] if lines else ""
