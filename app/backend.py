"""Which llama.cpp backend this machine should get (CUDA, Metal or CPU), and the AMX guard.

Standard library only: the launcher uses it before Iris's environment exists. Every probe of the
machine is a parameter with a real default, so tests can describe any machine (a CUDA toolkit
without a GPU, a GPU without a toolkit, Apple Silicon, an AMX CPU) without owning one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("cpu", "cuda", "metal")
# x86 features a native build compiles for: two machines that differ in these need different wheels.
_X86_FEATURES = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512cd", "avx512bw",
    "avx512dq", "avx512vl", "avx512_vnni", "avx512vbmi", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
)
# ggml's AMX kernels crash on quantized models (llama.cpp issue 20824) and give wrong Q4_0/Q4_1
# results (PR 16315). A native build on an AMX CPU compiles them in; these flags leave them out, and
# GCC and Clang let an explicit -mno-* win over -march=native whatever the order.
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


@dataclass(frozen=True)
class Choice:
    """The backend to build or fetch llama-cpp-python for, and why."""

    backend: str          # cpu | cuda | metal | custom (CMAKE_ARGS given by the user)
    cmake_args: str
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags, lower case (Linux /proc/cpuinfo, macOS sysctl); empty if unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.lower().split())
    if sys.platform == "darwin" and not cpuinfo:
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                                 capture_output=True, text=True, timeout=5).stdout
            return frozenset(out.lower().replace(".", "_").split())
        except (OSError, subprocess.SubprocessError):
            pass
    return frozenset()


def gpu_listed(run: Callable[[list[str]], str | None] | None = None) -> str | None:
    """The first line of `nvidia-smi -L` when the driver lists a GPU, else None."""
    run = run or _output
    out = run(["nvidia-smi", "-L"]) or ""
    for line in out.splitlines():
        if line.strip().startswith("GPU "):
            return line.strip()
    return None


def cuda_toolkit(which: Callable[[str], str | None] = shutil.which, env: Mapping[str, str] | None = None,
                 standard_roots: Sequence[Path] | None = None) -> tuple[Path | None, str]:
    """The root of a CUDA toolkit with nvcc and cuBLAS (headers and library), and what is missing."""
    env = os.environ if env is None else env
    if standard_roots is None:
        standard_roots = [Path("/usr/local/cuda"), *sorted(Path("/usr/local").glob("cuda-*"), reverse=True)]
    nvcc = which("nvcc")
    roots: list[Path] = []
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        if env.get(var):
            roots.append(Path(env[var]))
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent)
    roots += list(standard_roots)
    if not nvcc and not any((r / "bin" / "nvcc").exists() for r in roots):
        return None, "no CUDA toolkit (nvcc) found"
    for root in roots:
        if not root.is_dir():
            continue
        includes = [root / "include", *root.glob("targets/*/include")]
        libs = [root / "lib64", root / "lib", root / "lib" / "x64", *root.glob("targets/*/lib")]
        header = any((d / "cublas_v2.h").exists() for d in includes)
        library = any(any(d.glob("libcublas.so*")) or (d / "cublas.lib").exists() for d in libs if d.is_dir())
        if header and library:
            return root, ""
    return None, "the CUDA toolkit has no cuBLAS (cublas_v2.h and libcublas), which llama.cpp needs"


def choose(env: Mapping[str, str] | None = None, *, system: str | None = None, machine: str | None = None,
           which: Callable[[str], str | None] = shutil.which,
           run: Callable[[list[str]], str | None] | None = None,
           cuda_roots: Sequence[Path] | None = None) -> Choice:
    """Pick the backend: IRIS_BACKEND if set, CUDA with a GPU and a full toolkit, Metal on Apple Silicon, else CPU."""
    env = os.environ if env is None else env
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if env.get("CMAKE_ARGS"):
        return Choice("custom", env["CMAKE_ARGS"], "CMAKE_ARGS is set, so it is used as given")
    forced = env.get("IRIS_BACKEND", "").strip().lower()
    if forced and forced not in BACKENDS:
        raise ValueError(f"IRIS_BACKEND={forced!r} is not one of {', '.join(BACKENDS)}")
    if forced:
        return Choice(forced, cmake_args(forced, system, machine), "set by IRIS_BACKEND")
    if system == "Darwin" and machine == "arm64":
        return Choice("metal", cmake_args("metal", system, machine), "Apple Silicon")
    gpu = gpu_listed(run)
    root, missing = cuda_toolkit(which, env, cuda_roots)
    if gpu and root:
        return Choice("cuda", cmake_args("cuda", system, machine), f"{gpu.split(' (')[0]} and CUDA toolkit at {root}")
    if gpu:
        why = f"an NVIDIA GPU is present but {missing}: install the CUDA toolkit with cuBLAS for GPU speed"
    elif root or which("nvcc"):
        why = "a CUDA toolkit is installed but no GPU answers (nvidia-smi -L lists none)"
    else:
        why = "no GPU found"
    return Choice("cpu", cmake_args("cpu", system, machine), why)


def cmake_args(backend: str, system: str | None = None, machine: str | None = None) -> str:
    """CMAKE_ARGS for llama-cpp-python's build of this backend, with ggml's AMX kernels left out."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    args = {"cpu": ["-DGGML_CUDA=off", "-DGGML_METAL=off"], "cuda": ["-DGGML_CUDA=on"],
            "metal": ["-DGGML_METAL=on"]}[backend]
    args += ["-DGGML_AMX_TILE=off", "-DGGML_AMX_INT8=off", "-DGGML_AMX_BF16=off"]
    if machine in ("x86_64", "amd64", "i686", "x86") and system != "Windows":
        # MSVC never enables AMX unasked; GCC and Clang do under -march=native.
        args += [f"-DCMAKE_C_FLAGS={NO_AMX_FLAGS}", f"-DCMAKE_CXX_FLAGS={NO_AMX_FLAGS}"]
    return shlex.join(args)


def wheel_key(version: str, choice: Choice, flags: frozenset[str] | None = None,
              machine: str | None = None, gpu: str | None = None) -> str:
    """The wheelhouse folder name: llama-cpp-python version, backend, CPU feature set (and build flags)."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    feats = sorted(f for f in flags if f in _X86_FEATURES) or sorted(flags)[:64]
    tier = next((t for t in ("amx_int8", "avx512f", "avx2", "avx", "sse4_2") if t in feats), "base")
    h = hashlib.sha256(" ".join(feats).encode())
    h.update(choice.cmake_args.encode())
    h.update((gpu or "").encode())
    return f"llama-cpp-python-{version}/{choice.backend}-{machine}-{tier.replace('_', '')}-{h.hexdigest()[:10]}"


def library_has_amx(system_info: str) -> bool:
    """Whether a llama.cpp library was built with the AMX kernels (from llama_print_system_info)."""
    return re.search(r"\bAMX_INT8\s*=\s*1\b", system_info, re.IGNORECASE) is not None


def use_extra_buffers(system_info: str, flags: frozenset[str] | None) -> bool:
    """False when ggml's AMX kernels would run: a library built with them on a CPU that has AMX.

    Extra buffer types are how ggml repacks weights for AMX (and, harmlessly, for AVX2); turning
    them off keeps quantized models on the plain kernels. With unknown CPU flags a library that
    has AMX is trusted no further than one that would run it.
    """
    if not library_has_amx(system_info):
        return True
    if not flags:
        return False
    return not ({"amx_int8", "amx_tile"} & set(flags))


def _output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None
