"""The engine's lowest layer: the llama.cpp library itself, how it was built, and guarded loading.

Part of the engine (the only code that imports llama_cpp), kept apart from app.engine because the
installer runs `python -m app.llamalib` in a child process to check a freshly installed
llama-cpp-python before the rest of Iris's libraries exist. A wheel that crashes, misses its
native library or computes garbage fails that check and is replaced; it never reaches the app.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.backend import cpu_flags, library_has_amx, use_extra_buffers

logger = logging.getLogger(__name__)

# File types llama_model_quantize writes (llama.h's LLAMA_FTYPE_MOSTLY_*).
QUANT_FTYPES = {"q4_0": 2, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
_DEMO_LM = Path(__file__).resolve().parent.parent / "assets" / "demo" / "iris-demo-shapes.gguf"


def system_info() -> str:
    """What the loaded llama.cpp library was built with (llama_print_system_info)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace")


def extra_buffers_allowed() -> bool:
    """Whether models may load with ggml's extra buffer types on this library and CPU (the AMX guard)."""
    return use_extra_buffers(system_info(), cpu_flags())


@contextlib.contextmanager
def model_params_guard(extra_buffers: bool) -> Iterator[None]:
    """Make llama_cpp.Llama load with use_extra_bufts as given (its constructor has no such argument)."""
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp
    original = lib.llama_model_default_params
    if extra_buffers:
        yield
        return

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


_QUANT_LOG_CB: Any = None  # kept alive: llama.cpp holds the pointer


def quantize(src: Path, dst: Path, kind: str, threads: int = 1) -> Path:
    """Write src re-quantized as kind (q4_0, q8_0, q4_k_m, ...) with llama.cpp's own quantizer."""
    import llama_cpp

    if kind not in QUANT_FTYPES:
        raise ValueError(f"unknown quantization {kind!r}; one of {', '.join(QUANT_FTYPES)}")
    global _QUANT_LOG_CB
    if _QUANT_LOG_CB is None:
        # The quantizer reports every tensor; that belongs in the log file, not on the terminal.
        def _to_log(_level: int, text: bytes, _user: Any) -> None:
            logger.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

        _QUANT_LOG_CB = llama_cpp.llama_log_callback(_to_log)
    llama_cpp.llama_log_set(_QUANT_LOG_CB, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[kind]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.exists():
        raise RuntimeError(f"llama_model_quantize returned {rc} for {src.name} -> {kind}")
    return dst


def probe(model: Path = _DEMO_LM, gpu: bool = True) -> dict[str, Any]:
    """Quantize a model to Q4_0, load it as the engine would and decode; figures, or an exception."""
    import llama_cpp

    info = system_info()
    out: dict[str, Any] = {
        "version": getattr(llama_cpp, "__version__", "?"), "system_info": info,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()), "amx_library": library_has_amx(info),
        "cpu_amx": bool({"amx_int8", "amx_tile"} & cpu_flags()),
    }
    out["extra_buffers"] = use_extra_buffers(info, cpu_flags())
    with tempfile.TemporaryDirectory(prefix="iris-probe-") as tmp:
        q = quantize(model, Path(tmp) / "probe-q4_0.gguf", "q4_0")
        t0 = time.perf_counter()
        with model_params_guard(out["extra_buffers"]):
            llm = llama_cpp.Llama(model_path=str(q), n_ctx=64, n_batch=32, n_ubatch=32, verbose=False,
                                  n_gpu_layers=-1 if gpu and out["gpu_offload"] else 0)
        def last_logits() -> list[float]:
            # llama-cpp-python keeps no scores unless logits_all; read the context's last output row.
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            return [float(ptr[i]) for i in range(llm.n_vocab())]

        try:
            llm.eval(llm.tokenize(b"Where is the red circle?"))
            logits = last_logits()
            nxt = max(range(len(logits)), key=logits.__getitem__)
            llm.eval([nxt])  # one more token: the decode path, not only prefill
            logits2 = last_logits()
        finally:
            llm.close()
        bad = [x for x in logits + logits2 if not math.isfinite(x)]
        if bad or max(logits) == min(logits):
            raise RuntimeError("the model's logits are not finite or all equal: the library computes garbage")
        out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def main(argv: list[str]) -> int:
    """Installer's check: print one JSON line and exit 0, or a reason and exit 1 (or crash)."""
    paths = [a for a in argv if not a.startswith("--")]
    model = Path(paths[0]) if paths else _DEMO_LM
    try:
        result = probe(model, gpu="--cpu" not in argv)
    except Exception as exc:  # noqa: BLE001 - anything at all means the install is unusable
        print(f"IRIS-PROBE-FAILED {type(exc).__name__}: {exc}", flush=True)
        return 1
    print("IRIS-PROBE " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
