"""A seeded mutator for GGUF test pairs, and a harness that runs what the header checks accept.

A file is read into a plain spec (keys with their types, tensors with their raw bytes), mutated, and
written again with gguf-py, so that every mutation is a well-formed GGUF whose *content* is hostile:
retyped keys, NaN or out-of-range hyperparameters, retyped or reshaped tensors, a duplicated token,
missing keys or tensors. Byte flips in the header cover the rest. Accepted files are loaded and asked
one image question in a child process, so a native crash is observed, not suffered.

    python -m benchmarks.fuzz_models --cases 2000     (the long run; prints the counts)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType


@dataclass
class Spec:
    """A GGUF file as data: (key, value type, value, array element type) and (name, type, ne shape, bytes)."""

    arch: str
    keys: list[list[Any]] = field(default_factory=list)
    tensors: list[list[Any]] = field(default_factory=list)

    def key(self, name: str) -> list[Any] | None:
        return next((k for k in self.keys if k[0] == name), None)


def read_spec(path: Path) -> Spec:
    """Read a GGUF file into a Spec."""
    r = gguf.GGUFReader(str(path))
    arch = "clip"
    spec = Spec(arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            if name == "general.architecture":
                spec.arch = str(bytes(f.parts[f.data[0]]), "utf-8")
            continue
        vtype = f.types[0]
        sub = f.types[1] if vtype == VT.ARRAY else None
        if vtype == VT.STRING:
            value: Any = str(bytes(f.parts[f.data[0]]), "utf-8")
        elif vtype == VT.ARRAY and sub == VT.STRING:
            value = [str(bytes(f.parts[i]), "utf-8") for i in f.data]
        elif vtype == VT.ARRAY:
            value = [f.parts[i].tolist()[0] for i in f.data]
        else:
            value = f.parts[f.data[0]].tolist()[0]
        spec.keys.append([name, vtype, value, sub])
    for t in r.tensors:
        spec.tensors.append([t.name, int(t.tensor_type), [int(x) for x in t.shape], bytes(t.data.tobytes())])
    return spec


def write_spec(spec: Spec, path: Path) -> Path:
    """Write a Spec as a GGUF file."""
    wr = gguf.GGUFWriter(str(path), spec.arch)
    for name, vtype, value, sub in spec.keys:
        wr.add_key_value(name, value, vtype, sub_type=sub)
    plain = {QT.F32: np.float32, QT.F16: np.float16, QT.I8: np.int8, QT.I16: np.int16, QT.I32: np.int32}
    for name, ttype, ne, data in spec.tensors:
        qt = QT(ttype)
        if qt in plain:
            arr = np.frombuffer(data, dtype=plain[qt]).reshape(list(reversed(ne)))
            wr.add_tensor(name, arr, raw_dtype=qt)
        else:
            block, size = gguf.GGML_QUANT_SIZES[qt]
            row = ne[0] // block * size
            # gguf-py takes quantized data as bytes in its byte shape: the rows, then each row's bytes.
            arr = np.frombuffer(data, dtype=np.uint8).reshape(list(reversed(ne[1:])) + [row])
            wr.add_tensor(name, arr, raw_dtype=qt)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return path


def _nbytes(ttype: int, ne: list[int]) -> int:
    block, size = gguf.GGML_QUANT_SIZES[QT(ttype)]
    n = 1
    for d in ne:
        n *= d
    return n // block * size


def _retype_value(rng: random.Random, k: list[Any]) -> None:
    name, vtype, value, sub = k
    choices = [(VT.UINT32, 7), (VT.INT32, -3), (VT.FLOAT32, 0.5), (VT.BOOL, True), (VT.STRING, "x\x00\x1b[31m"),
               (VT.ARRAY, [1, 2, 3]), (VT.UINT64, 1 << 40), (VT.UINT8, 3)]
    choices = [c for c in choices if c[0] != vtype]
    nt, nv = rng.choice(choices)
    k[1], k[2], k[3] = nt, nv, (VT.INT32 if nt == VT.ARRAY else None)


def _semantic(rng: random.Random, k: list[Any]) -> None:
    name, vtype, value, sub = k
    if vtype == VT.FLOAT32:
        k[2] = rng.choice([float("nan"), float("inf"), -1.0, 0.0, 1e30])
    elif vtype in (VT.UINT32, VT.INT32, VT.UINT64):
        k[2] = rng.choice([0, 1, 3, 2**31 - 1, 65537] + ([-1] if vtype == VT.INT32 else []))
    elif vtype == VT.BOOL:
        k[2] = not value
    elif vtype == VT.STRING:
        k[2] = rng.choice(["", "mlp\x00", "unknown-" + "z" * 300, "{% for %}", "<img src=x>"])
    elif vtype == VT.ARRAY and sub != VT.STRING and value:
        k[2] = rng.choice([[], value[:1], value + value, [float("nan")] * len(value) if sub == VT.FLOAT32 else
                           [-v for v in value]])


MUTATIONS = ("retype_key", "semantic_key", "drop_key", "retype_tensor", "reshape_tensor", "drop_tensor",
             "duplicate_token", "flip_header_byte")


def mutate(src: Path, dst: Path, rng: random.Random, kind: str | None = None) -> str:
    """Write a mutated copy of src to dst; return a one-line description of what was changed."""
    kind = kind or rng.choice(MUTATIONS)
    if kind == "flip_header_byte":
        data = bytearray(src.read_bytes())
        # Only the header: the data section is random weights already.
        header_end = min(len(data), 24 + 64 * 1024)
        at = rng.randrange(8, header_end)
        data[at] ^= 1 << rng.randrange(8)
        dst.write_bytes(bytes(data))
        return f"flip a bit of byte {at}"
    spec = read_spec(src)
    if kind in ("retype_key", "semantic_key", "drop_key"):
        k = rng.choice(spec.keys)
        what = f"{kind} {k[0]}"
        if kind == "retype_key":
            _retype_value(rng, k)
        elif kind == "semantic_key":
            _semantic(rng, k)
        else:
            spec.keys.remove(k)
        what += f" -> {k[1].name if kind != 'drop_key' else ''}:{str(k[2])[:30]!r}" if kind != "drop_key" else ""
    elif kind == "duplicate_token":
        k = spec.key("tokenizer.ggml.tokens")
        if k is None:
            return mutate(src, dst, rng, "semantic_key")
        i, j = rng.sample(range(3, len(k[2])), 2)
        k[2][j] = k[2][i]
        what = f"token {j} duplicates token {i}"
    else:
        t = rng.choice(spec.tensors)
        name, ttype, ne, data = t
        if kind == "drop_tensor":
            spec.tensors.remove(t)
            what = f"drop tensor {name}"
        elif kind == "retype_tensor":
            new = rng.choice([QT.I32, QT.I8, QT.I16, QT.F16, QT.F32, QT.Q8_0])
            if new in (QT.Q8_0,) and ne[0] % 32:
                new = QT.I32
            t[1] = int(new)
            t[3] = bytes(_nbytes(int(new), ne))
            what = f"tensor {name} as {new.name}"
        else:
            ne2 = list(ne)
            # Quantized rows hold whole blocks: only the other dimensions change for them.
            d = rng.randrange(len(ne2)) if ttype in (0, 1) or len(ne2) == 1 else rng.randrange(1, len(ne2))
            ne2[d] = rng.choice([max(1, ne2[d] // 2), ne2[d] * 2, ne2[d] + 1, 1])
            if len(ne2) == 1 and rng.random() < 0.5:
                ne2 = [ne2[0], 1]
            t[2] = ne2
            t[3] = bytes(_nbytes(ttype, ne2)) if ttype in (0, 1) else (data * 4)[: _nbytes(ttype, ne2)]
            what = f"tensor {name} reshaped {ne} -> {ne2}"
    write_spec(spec, dst)
    return what


# The child: load the pair and ask one image question; the parent reads its exit status.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[4])
from app.errors import AppError
from app.engine import LlamaCppEngine
from app.chat import Conversation, GenParams, Turn
from app.images import prepare_image
try:
    eng = LlamaCppEngine()
    eng.load(sys.argv[1], sys.argv[2])
    conv = Conversation(turns=[Turn("user", "what colour?", [prepare_image(sys.argv[3])])])
    "".join(eng.stream_reply(conv, GenParams(max_tokens=4, temperature=0.0)))
    eng.close()
    print(json.dumps({"outcome": "answered"}))
except AppError as exc:
    print(json.dumps({"outcome": "refused", "message": str(exc)}))
"""


def run_child(lm: Path, mm: Path, image: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Load and ask in a child process: answered, refused (AppError), traceback, crash or hang."""
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    root = str(Path(__file__).resolve().parent.parent)
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, str(lm), str(mm), str(image), root], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang"}
    if p.returncode < 0 or p.returncode in (134, 139):
        return {"outcome": "crash", "signal": -p.returncode, "stderr": p.stderr[-400:]}
    if p.returncode != 0:
        return {"outcome": "traceback", "stderr": p.stderr[-800:]}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"outcome": "traceback", "stderr": p.stdout[-400:]}


def check(lm: Path, mm: Path) -> dict[str, Any]:
    """The header checks' verdict in this process: refused (AppError, one line) or accepted."""
    from app.errors import AppError
    from app.ggufinfo import check_pair

    try:
        check_pair(lm, mm)
    except AppError as exc:
        msg = str(exc)
        return {"outcome": "refused", "message": msg, "one_line": "\n" not in msg and "Traceback" not in msg}
    except Exception as exc:  # noqa: BLE001 - a traceback is what the fuzzer looks for
        return {"outcome": "traceback", "message": f"{type(exc).__name__}: {exc}"}
    return {"outcome": "accepted"}


__all__ = ["Spec", "read_spec", "write_spec", "mutate", "run_child", "check", "MUTATIONS"]
