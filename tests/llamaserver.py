"""llama.cpp's llama-server for the tests that point Iris at a real OpenAI-compatible server.

Built once, outside the repository, from the llama.cpp copy inside the llama-cpp-python sdist (the same
llama.cpp Iris runs): `python tests/llamaserver.py --build` (about 6 minutes on 2 cores; .ci/run does it).
The binary goes to <user cache dir>/Iris/llama-server-<version>/bin/llama-server; IRIS_LLAMA_SERVER
points elsewhere. Tests skip, and say so, when it is not there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.3.36"


def default_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("Iris", appauthor=False)) / f"llama-server-{VERSION}" / "bin" / "llama-server"


def find() -> Path | None:
    """The llama-server to test against, if one was built."""
    given = os.environ.get("IRIS_LLAMA_SERVER")
    path = Path(given) if given else default_path()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def build() -> Path:
    """Download the sdist, build llama-server (AMX kernels off, as Iris's own build), return its path."""
    out = default_path().parent.parent
    work = Path(tempfile.mkdtemp(prefix="iris-llama-server-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={VERSION}", "-d", str(work)], check=True)
    with tarfile.open(next(work.glob("llama_cpp_python-*.tar.gz"))) as tf:
        tf.extractall(work, filter="data")
    src = work / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    no_amx = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    subprocess.run(["cmake", "-S", str(src), "-B", str(work / "build"), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF", "-DBUILD_SHARED_LIBS=OFF",
                    f"-DCMAKE_C_FLAGS={no_amx}", f"-DCMAKE_CXX_FLAGS={no_amx}"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(work / "build"), "--target", "llama-server"], check=True,
                   stdout=subprocess.DEVNULL)
    (out / "bin").mkdir(parents=True, exist_ok=True)
    target = out / "bin" / "llama-server"
    (work / "build" / "bin" / "llama-server").replace(target)
    return target


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help="build it unless it is there already")
    args = ap.parse_args()
    found = find()
    if args.build and found is None:
        found = build()
    print(found or "not built (python tests/llamaserver.py --build)")
