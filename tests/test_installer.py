"""The llama-cpp-python installer: prebuilt wheels from a PEP 503 index on 127.0.0.1, refusal of broken
wheels with fallback, and the wheelhouse. Real pip, real venvs, the real wheel this environment runs."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from app.backend import Choice, cmake_args
from app.installer import (
    InstallFailed,
    ensure_llama,
    llama_version,
    read_state,
    wheel_indexes,
    wheelhouse_dir,
)
from wheelindex import BROKEN, WheelIndex, write_wheel

CHOICE = Choice("cpu", cmake_args("cpu"), "test")


@pytest.fixture(scope="module")
def real_wheel() -> Path:
    """The llama-cpp-python wheel the launcher installed into this environment (built or fetched)."""
    state = read_state(Path(sys.executable))
    if state is None or not Path(state.wheel).is_file():
        pytest.skip("this environment's llama-cpp-python was not installed by launcher.py (no wheel to serve)")
    return Path(state.wheel)


def _bare_venv(where: Path) -> Path:
    """A new venv without llama-cpp-python that sees this environment's other packages (and pip) after its own."""
    venv.EnvBuilder(with_pip=False).create(where)
    py = where / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (Path(purelib) / "iris-outer.pth").write_text("\n".join(outer) + "\n")
    return py


def _inner_llama(py: Path) -> str:
    """Where py imports llama_cpp from, or the error."""
    proc = subprocess.run([str(py), "-c", "import llama_cpp, sys; print(llama_cpp.__file__)"], capture_output=True,
                          text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "ERROR " + proc.stderr.strip().splitlines()[-1]


def _env(tmp_path: Path, index: str) -> dict[str, str]:
    import os

    return dict(os.environ, IRIS_WHEEL_INDEX=index, IRIS_WHEELHOUSE=str(tmp_path / "wheelhouse"))


def _no_build(*_a, **_k):
    raise AssertionError("the source build must not run here")


def test_prebuilt_wheel_from_a_loopback_index_is_installed_checked_and_kept(real_wheel, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / real_wheel.name).write_bytes(real_wheel.read_bytes())
    py = _bare_venv(tmp_path / "venv")
    assert _inner_llama(py).startswith(str(Path(sys.prefix)))  # before: only this environment's copy
    said: list[str] = []
    with WheelIndex(served) as idx:
        inst = ensure_llama(py, CHOICE, say=said.append, env=_env(tmp_path, idx.url), build=_no_build)
    assert inst.source == "prebuilt" and inst.index == idx.url
    assert inst.probe["version"] == llama_version() and inst.probe["seconds"] > 0
    assert _inner_llama(py).startswith(str(tmp_path / "venv"))  # now its own
    kept = list((tmp_path / "wheelhouse").glob("llama-cpp-python-*/cpu-*/*.whl"))
    assert [k.name for k in kept] == [real_wheel.name]
    assert read_state(py).key == inst.key
    # A second checkout on this machine installs from the wheelhouse: no index, no build.
    py2 = _bare_venv(tmp_path / "venv2")
    inst2 = ensure_llama(py2, CHOICE, say=said.append, env=_env(tmp_path, "none"), build=_no_build)
    assert inst2.source == "wheelhouse" and _inner_llama(py2).startswith(str(tmp_path / "venv2"))


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_prebuilt_wheel_is_refused_and_the_build_takes_over(real_wheel, tmp_path, kind):
    served = tmp_path / "served"
    write_wheel(served / f"llama_cpp_python-{llama_version()}-py3-none-any.whl", BROKEN[kind])
    py = _bare_venv(tmp_path / "venv")
    said: list[str] = []
    built: list[str] = []

    def build(venv_py, version, cmake, **_k):
        built.append(cmake)
        out = tmp_path / "built" / real_wheel.name  # what the compiler would have produced
        out.parent.mkdir()
        out.write_bytes(real_wheel.read_bytes())
        return out

    with WheelIndex(served) as idx:
        inst = ensure_llama(py, CHOICE, say=said.append, env=_env(tmp_path, idx.url), build=build)
    assert built == [CHOICE.cmake_args]
    assert inst.source == "built"
    assert any("refused" in n for n in inst.notes), inst.notes
    assert any("failed its check" in s for s in said), said
    assert _inner_llama(py).startswith(str(tmp_path / "venv"))  # the good one replaced the broken one
    kept = list((tmp_path / "wheelhouse").glob("llama-cpp-python-*/cpu-*/*.whl"))
    assert [k.name for k in kept] == [real_wheel.name]  # the broken wheel was never kept


def test_a_crashing_wheel_reports_the_signal(real_wheel, tmp_path):
    served = tmp_path / "served"
    write_wheel(served / f"llama_cpp_python-{llama_version()}-py3-none-any.whl", BROKEN["segfault"])
    py = _bare_venv(tmp_path / "venv")
    said: list[str] = []

    def build(*_a, **_k):
        raise InstallFailed("no compiler here")

    with WheelIndex(served) as idx, pytest.raises(InstallFailed, match="no compiler here"):
        ensure_llama(py, CHOICE, say=said.append, env=_env(tmp_path, idx.url), build=build)
    assert any("SIGSEGV" in s for s in said), said
    assert _inner_llama(py).startswith(str(Path(sys.prefix)))  # the broken wheel was uninstalled


def test_unreachable_index_falls_through_quickly(real_wheel, tmp_path):
    py = _bare_venv(tmp_path / "venv")
    said: list[str] = []
    built = tmp_path / "built" / real_wheel.name
    built.parent.mkdir()
    built.write_bytes(real_wheel.read_bytes())
    inst = ensure_llama(py, CHOICE, say=said.append, env=_env(tmp_path, "http://127.0.0.1:9/simple"),
                        build=lambda *a, **k: built)
    assert inst.source == "built" and "no prebuilt wheel" in inst.notes[0]
    assert "cannot be reached" in inst.notes[0]


def test_index_defaults_and_override(monkeypatch):
    assert wheel_indexes("cpu", {}) == ["https://abetlen.github.io/llama-cpp-python/whl/cpu"]
    assert wheel_indexes("metal", {}) == ["https://abetlen.github.io/llama-cpp-python/whl/metal"]
    assert wheel_indexes("cuda", {}, "12.4") == ["https://abetlen.github.io/llama-cpp-python/whl/cu124"]
    assert wheel_indexes("cuda", {}, "13.0") == ["https://abetlen.github.io/llama-cpp-python/whl/cu125"]
    assert wheel_indexes("cpu", {"IRIS_WHEEL_INDEX": "none"}) == []
    assert wheel_indexes("cpu", {"IRIS_WHEEL_INDEX": "http://a/simple http://b/simple"}) == [
        "http://a/simple", "http://b/simple"]
    assert wheelhouse_dir({"IRIS_HOME": "/x"}) == Path("/x/cache/wheels")
