"""The backend decision and the AMX guard, with fake nvcc / nvidia-smi on PATH and described CPUs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from app.backend import (
    Choice,
    choose,
    cmake_args,
    cpu_flags,
    library_has_amx,
    use_extra_buffers,
    wheel_key,
)

SMI_GPU = "GPU 0: NVIDIA H200 (UUID: GPU-0f3c2a61-aaaa-bbbb-cccc-000000000000)\n"
AMX_LIB = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
           "AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
PLAIN_LIB = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | REPACK = 1 |"
SAPPHIRE = frozenset("fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8".split())
EPYC = frozenset("fpu sse4_2 avx avx2 fma f16c bmi2".split())


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A PATH holding only what the test puts there (plus sh for the scripts)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/bin:/usr/bin")
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT", "CMAKE_ARGS", "IRIS_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    return bin_dir


def _toolkit(root: Path, cublas: bool) -> Path:
    _script(root / "bin" / "nvcc", "echo 'Cuda compilation tools, release 13.0'\n")
    if cublas:
        (root / "include").mkdir(parents=True)
        (root / "include" / "cublas_v2.h").write_text("/* fake */\n")
        (root / "lib64").mkdir(parents=True)
        (root / "lib64" / "libcublas.so.13").write_bytes(b"\x7fELF fake")
    return root / "bin" / "nvcc"


def _gpu(bin_dir: Path) -> None:
    _script(bin_dir / "nvidia-smi", f"[ \"$1\" = -L ] && printf '{SMI_GPU}' && exit 0\nexit 0\n")


def _decide(**kw) -> Choice:
    import os

    return choose(dict(os.environ), system=kw.pop("system", "Linux"), machine=kw.pop("machine", "x86_64"),
                  cuda_roots=(), **kw)


def test_toolkit_without_gpu_builds_for_cpu(fake_bin, tmp_path):
    # This project's own machines: nvcc 13 on PATH, no cuBLAS, no GPU.
    (fake_bin / "nvcc").symlink_to(_toolkit(tmp_path / "cuda", cublas=False))
    c = _decide()
    assert c.backend == "cpu" and "-DGGML_CUDA=off" in c.cmake_args
    assert "no GPU answers" in c.reason


def test_full_toolkit_without_gpu_still_builds_for_cpu(fake_bin, tmp_path):
    (fake_bin / "nvcc").symlink_to(_toolkit(tmp_path / "cuda", cublas=True))
    assert _decide().backend == "cpu"


def test_gpu_without_toolkit_builds_for_cpu_and_says_what_to_install(fake_bin):
    _gpu(fake_bin)
    c = _decide()
    assert c.backend == "cpu"
    assert "NVIDIA GPU is present" in c.reason and "no CUDA toolkit" in c.reason


def test_gpu_with_toolkit_lacking_cublas_builds_for_cpu(fake_bin, tmp_path):
    _gpu(fake_bin)
    (fake_bin / "nvcc").symlink_to(_toolkit(tmp_path / "cuda", cublas=False))
    c = _decide()
    assert c.backend == "cpu" and "cuBLAS" in c.reason


def test_gpu_and_full_toolkit_build_for_cuda(fake_bin, tmp_path):
    _gpu(fake_bin)
    (fake_bin / "nvcc").symlink_to(_toolkit(tmp_path / "cuda", cublas=True))
    c = _decide()
    assert c.backend == "cuda" and "-DGGML_CUDA=on" in c.cmake_args
    assert "NVIDIA H200" in c.reason and str(tmp_path / "cuda") in c.reason


def test_cuda_home_toolkit_is_found_without_nvcc_on_path(fake_bin, tmp_path, monkeypatch):
    _gpu(fake_bin)
    _toolkit(tmp_path / "cuda-13.0", cublas=True)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda-13.0"))
    assert _decide().backend == "cuda"


def test_neither_gpu_nor_toolkit(fake_bin):
    c = _decide()
    assert c.backend == "cpu" and c.reason == "no GPU found"


def test_apple_silicon_builds_for_metal_without_x86_flags(fake_bin):
    c = _decide(system="Darwin", machine="arm64")
    assert c.backend == "metal" and "-DGGML_METAL=on" in c.cmake_args
    assert "-mno-amx" not in c.cmake_args  # clang on arm64 would reject x86 flags


def test_intel_mac_is_cpu(fake_bin):
    assert _decide(system="Darwin", machine="x86_64").backend == "cpu"


def test_iris_backend_overrides_and_cmake_args_win(fake_bin, monkeypatch, tmp_path):
    _gpu(fake_bin)
    (fake_bin / "nvcc").symlink_to(_toolkit(tmp_path / "cuda", cublas=True))
    monkeypatch.setenv("IRIS_BACKEND", "cpu")
    assert _decide().backend == "cpu" and _decide().reason == "set by IRIS_BACKEND"
    monkeypatch.setenv("IRIS_BACKEND", "vulkan")
    with pytest.raises(ValueError, match="not one of cpu, cuda, metal"):
        _decide()
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_VULKAN=on")
    c = _decide()
    assert c.backend == "custom" and c.cmake_args == "-DGGML_VULKAN=on"


def test_cpu_and_cuda_builds_leave_amx_out():
    for backend in ("cpu", "cuda"):
        args = shlex.split(cmake_args(backend, "Linux", "x86_64"))
        assert "-DGGML_AMX_INT8=off" in args
        assert "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in args
        assert "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in args
    assert "-mno-amx" not in cmake_args("cpu", "Windows", "AMD64")  # MSVC has no such flag


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_no_amx_flags_beat_march_native_on_an_amx_cpu():
    # A native build on a Sapphire Rapids defines __AMX_INT8__, which compiles ggml's AMX kernels in;
    # the flags Iris adds must switch it off whatever their order relative to -march.
    flags = shlex.split(cmake_args("cpu", "Linux", "x86_64"))
    cflags = next(f for f in flags if f.startswith("-DCMAKE_C_FLAGS=")).split("=", 1)[1].split()

    def defines(*args: str) -> str:
        return subprocess.run(["gcc", *args, "-dM", "-E", "-"], input="", capture_output=True, text=True).stdout

    assert "__AMX_INT8__" in defines("-march=sapphirerapids")
    assert "__AMX_INT8__" not in defines(*cflags, "-march=sapphirerapids")
    assert "__AMX_INT8__" not in defines("-march=sapphirerapids", *cflags)
    assert "__AVX512VNNI__" in defines(*cflags, "-march=sapphirerapids")  # the rest of native stays


@pytest.mark.parametrize("info, flags, expected", [
    (AMX_LIB, SAPPHIRE, False),       # the crash: AMX kernels on an AMX CPU
    (AMX_LIB, EPYC, True),            # the kernels are compiled in but this CPU never runs them
    (AMX_LIB, frozenset(), False),    # unknown CPU: do not gamble
    (PLAIN_LIB, SAPPHIRE, True),      # Iris's own build: no AMX kernels, keep the AVX2 repack
    (PLAIN_LIB, EPYC, True),
])
def test_amx_guard_decision(info, flags, expected):
    assert use_extra_buffers(info, flags) is expected


def test_library_amx_report_is_read_from_system_info():
    assert library_has_amx(AMX_LIB) and not library_has_amx(PLAIN_LIB)
    assert not library_has_amx("AMX_INT8 = 0 |")


def test_cpu_flags_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_int8\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert cpu_flags(text) == frozenset({"fpu", "avx2", "amx_tile", "amx_int8"})
    assert cpu_flags("Features\t: fp asimd\n") == frozenset({"fp", "asimd"})


def test_wheel_key_separates_backends_cpus_and_versions():
    cpu = Choice("cpu", cmake_args("cpu", "Linux", "x86_64"), "")
    cuda = Choice("cuda", cmake_args("cuda", "Linux", "x86_64"), "")
    keys = {
        wheel_key("0.3.36", cpu, EPYC, "x86_64"),
        wheel_key("0.3.36", cpu, SAPPHIRE, "x86_64"),
        wheel_key("0.3.36", cuda, EPYC, "x86_64", gpu="GPU 0: NVIDIA H200"),
        wheel_key("0.3.37", cpu, EPYC, "x86_64"),
    }
    assert len(keys) == 4
    assert wheel_key("0.3.36", cpu, EPYC, "x86_64").startswith("llama-cpp-python-0.3.36/cpu-x86_64-avx2-")
    assert wheel_key("0.3.36", cpu, EPYC, "x86_64") == wheel_key("0.3.36", cpu, EPYC | {"fpu"}, "x86_64")
