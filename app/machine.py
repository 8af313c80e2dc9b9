"""What kind of machine Iris runs on, to recommend a model: CPU laptop, NVIDIA GPU or Apple Silicon."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Below this much RAM the CPU pick is the lighter model.
LITE_RAM_BYTES = 12 * 1024**3


@dataclass(frozen=True)
class MachineKind:
    """A catalog 'recommended' key and the facts it was chosen from."""

    key: str  # cpu | cpu-lite | cuda | metal
    ram: int | None
    description: str


def total_ram() -> int | None:
    """Physical memory in bytes, or None when the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    if platform.system() == "Darwin":
        try:
            return int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True,
                                      timeout=5).stdout.strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    if os.name == "nt":
        import ctypes

        class _MemStatus(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        st = _MemStatus()
        st.dwLength = ctypes.sizeof(st)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):  # type: ignore[attr-defined]
            return int(st.ullTotalPhys)
    return None


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (the GPU itself is used only if llama.cpp was built with CUDA)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def detect() -> MachineKind:
    """This machine's kind; IRIS_MACHINE (cpu, cpu-lite, cuda, metal) overrides the guess."""
    ram = total_ram()
    gb = f"{ram / 1024**3:.0f} GB RAM" if ram else "unknown RAM"
    forced = os.environ.get("IRIS_MACHINE")
    if forced in ("cpu", "cpu-lite", "cuda", "metal"):
        return MachineKind(forced, ram, f"set by IRIS_MACHINE, {gb}")
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return MachineKind("metal", ram, f"Apple Silicon, {gb}")
    if has_nvidia_gpu():
        return MachineKind("cuda", ram, f"NVIDIA GPU, {gb}")
    if ram is not None and ram < LITE_RAM_BYTES:
        return MachineKind("cpu-lite", ram, f"CPU only, {gb}")
    return MachineKind("cpu", ram, f"CPU only, {gb}")


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core, not per hyperthread)."""
    try:
        if sys.platform.startswith("linux"):
            cores = set()
            phys = core = None
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("physical id"):
                        phys = line.split(":")[1].strip()
                    elif line.startswith("core id"):
                        core = line.split(":")[1].strip()
                    elif not line.strip():
                        if core is not None:
                            cores.add((phys, core))
                        phys = core = None
            if core is not None:
                cores.add((phys, core))
            if cores:
                return len(cores)
        elif sys.platform == "darwin":
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True)
            return max(1, int(out.stdout.strip()))
    except (OSError, ValueError):
        pass
    return max(1, (os.cpu_count() or 2) // 2)


def free_gpu_memory() -> int | None:
    """Free memory on the first NVIDIA GPU in bytes, or None when it cannot be asked."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
        return int(out.stdout.split()[0]) * 1024 * 1024
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def auto_gpu_layers(offload_supported: bool, backend: str, model_bytes: int, n_layer: int,
                    free_bytes: int | None) -> int:
    """All layers when the model fits free GPU memory, a share otherwise, 0 on a CPU build."""
    if not offload_supported:
        return 0
    if backend == "metal" or free_bytes is None:
        return -1  # unified memory, or no way to ask: let llama.cpp place everything
    budget = free_bytes * 0.9 - 512 * 1024 * 1024  # room for KV cache and compute buffers
    if model_bytes <= budget:
        return -1
    return max(0, int(n_layer * budget / model_bytes))
