"""Hostile model files: each cause of a native crash or traceback found so far, as a regression case
generated here, and a seeded fuzz run whose accepted files are loaded and asked in a child process.

The header checks must refuse with one line naming what is wrong; whatever they accept must answer
(or be refused by llama.cpp with a message), never crash, hang or raise a traceback.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from app.errors import AppError
from app.ggufinfo import check_pair
from families import FAMILIES, write_family_pair
from fuzzgguf import MUTATIONS, VT, QT, check, mutate, read_spec, run_child, write_spec
from modelwriter import Shape, write_pair


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-bases")
    out = {"tiny": write_pair(d / "tiny", Shape(), "tiny")}
    for name in ("qwen2.5-vl", "minicpm-v", "moondream", "gemma-3"):
        out[name] = write_family_pair(d / name, name)
    return out


def _edit(src: Path, dst: Path, fn) -> Path:
    spec = read_spec(src)
    fn(spec)
    return write_spec(spec, dst)


def _set(spec, key, vtype, value, sub=None):
    k = spec.key(key)
    if k is None:
        spec.keys.append([key, vtype, value, sub])
    else:
        k[1], k[2], k[3] = vtype, value, sub


def _tensor(spec, name):
    return next(t for t in spec.tensors if t[0] == name)


def _retype(spec, name, qt):
    t = _tensor(spec, name)
    n = 1
    for d in t[2]:
        n *= d
    t[1], t[3] = int(qt), bytes(n * {QT.I32: 4, QT.F16: 2, QT.F32: 4}[qt])


def _reshape(spec, name, ne):
    t = _tensor(spec, name)
    n = 1
    for d in ne:
        n *= d
    t[2], t[3] = ne, bytes(n * (4 if t[1] == 0 else 2))


def _dup_token(spec):
    tokens = spec.key("tokenizer.ggml.tokens")[2]
    tokens[300] = tokens[301]


# (pair, side, edit, words the refusal must contain): the causes found by the hostile-input runs.
CASES = {
    "mmproj-name-retyped": ("tiny", "mm", lambda s: _set(s, "general.name", VT.UINT32, 7), "general.name"),
    "use-gelu-retyped": ("tiny", "mm", lambda s: _set(s, "clip.use_gelu", VT.UINT32, 1), "clip.use_gelu"),
    "weight-as-i32": ("tiny", "lm", lambda s: _retype(s, "blk.0.attn_q.weight", QT.I32), "i32"),
    "vision-weight-reshaped": ("tiny", "mm", lambda s: _reshape(s, "v.blk.0.attn_q.weight", [32, 16]),
                               "v.blk.0.attn_q"),
    "image-size-past-position-table": ("tiny", "mm", lambda s: _set(s, "clip.vision.image_size", VT.UINT32, 64),
                                       "v.position_embd.weight"),
    "lm-eps-nan": ("tiny", "lm", lambda s: _set(s, "llama.attention.layer_norm_rms_epsilon", VT.FLOAT32,
                                                 float("nan")), "layer_norm_rms_epsilon"),
    "vision-eps-negative": ("tiny", "mm", lambda s: _set(s, "clip.vision.attention.layer_norm_epsilon", VT.FLOAT32,
                                                         -1e-5), "layer_norm_epsilon"),
    "duplicate-token": ("tiny", "lm", _dup_token, "twice"),
    "no-layers": ("tiny", "lm", lambda s: _set(s, "llama.block_count", VT.UINT32, 0), "block_count"),
    "experts-on-a-dense-model": ("tiny", "lm", lambda s: _set(s, "llama.expert_count", VT.UINT32, 8), "expert"),
    "alignment-as-string": ("tiny", "lm", lambda s: _set(s, "general.alignment", VT.STRING, "32"), "alignment"),
    "tiny-context": ("tiny", "lm", lambda s: _set(s, "llama.context_length", VT.UINT32, 4), "context_length"),
    "template-does-not-parse": ("tiny", "lm", lambda s: _set(s, "tokenizer.chat_template", VT.STRING,
                                                             "{% for m in messages %}{{ m"), "chat template"),
    "control-bytes-in-projector-type": ("tiny", "mm", lambda s: _set(s, "clip.projector_type", VT.STRING,
                                                                     "mlp\x1b[31m\x00"), "\\x1b"),
    # Found by the fuzz run below (native crashes before these checks).
    "minicpmv-version-unknown": ("minicpm-v", "mm", lambda s: _set(s, "clip.minicpmv_version", VT.INT32, 65537),
                                 "minicpmv_version"),
    "qwen-attention-bias-missing": ("qwen2.5-vl", "mm", lambda s: s.tensors.remove(_tensor(s, "v.blk.0.attn_k.bias")),
                                    "v.blk.0.attn_k.bias"),
    "qwen-projection-dim": ("qwen2.5-vl", "mm", lambda s: _set(s, "clip.vision.projection_dim", VT.UINT32, 1),
                            "projection_dim"),
    "bias-longer-than-its-layer": ("qwen2.5-vl", "mm", lambda s: _reshape(s, "v.blk.1.ffn_down.bias", [33]),
                                   "v.blk.1.ffn_down.bias"),
    "qwen-second-patch-kernel-missing": ("qwen2.5-vl", "mm", lambda s: s.tensors.remove(_tensor(s, "v.patch_embd.weight.1")),
                                         "v.patch_embd.weight.1"),
    "position-table-longer-than-the-patches": ("gemma-3", "mm", lambda s: _reshape(s, "v.position_embd.weight", [32, 65]),
                                               "v.position_embd.weight"),
    "f16-bias": ("moondream", "lm", lambda s: _retype(s, "blk.1.attn_norm.bias", QT.F16), "blk.1.attn_norm.bias"),
    "resampler-not-square": ("minicpm-v", "mm", lambda s: _reshape(s, "resampler.proj.weight", [256, 128]),
                             "resampler.proj.weight"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_is_refused_in_one_line(pairs, tmp_path, case):
    base, side, edit, words = CASES[case]
    lm, mm = pairs[base]
    bad = _edit(lm if side == "lm" else mm, tmp_path / f"{case}.gguf", edit)
    with pytest.raises(AppError) as err:
        check_pair(*((bad, mm) if side == "lm" else (lm, bad)))
    msg = str(err.value)
    assert words in msg, msg
    assert "\n" not in msg and "\x00" not in msg and "\x1b" not in msg and len(msg) < 400, msg


def test_unmodified_bases_pass(pairs):
    for lm, mm in pairs.values():
        check_pair(lm, mm)


def test_seeded_fuzz_never_crashes_or_raises(pairs, tmp_path, images):
    rng = random.Random(20261202)
    counts = {"refused": 0, "answered": 0, "refused-at-load": 0}
    children = 0
    for i in range(60):
        lm, mm = pairs[rng.choice(sorted(pairs))]
        side = rng.choice(["lm", "mm"])
        out = tmp_path / f"case-{i}.gguf"
        what = mutate(lm if side == "lm" else mm, out, rng, MUTATIONS[i % len(MUTATIONS)])
        pair = (out, mm) if side == "lm" else (lm, out)
        verdict = check(*pair)
        assert verdict["outcome"] != "traceback", (what, verdict)
        if verdict["outcome"] == "refused":
            assert verdict["one_line"], (what, verdict)
            counts["refused"] += 1
            continue
        if children >= 12:  # bounded CI time; benchmarks/fuzz_models.py runs thousands
            continue
        children += 1
        result = run_child(*pair, images["red"], timeout=60)
        assert result["outcome"] in ("answered", "refused"), (what, result)
        counts["answered" if result["outcome"] == "answered" else "refused-at-load"] += 1
        out.unlink()
    print(f"fuzz: {counts}")
    assert counts["refused"] > 0 and counts["answered"] > 0


def test_a_vocabulary_without_token_types_is_answered_or_refused_never_a_traceback(tmp_path, images):
    # Found by the long fuzz run: llama_decode failed and llama-cpp-python's RuntimeError escaped.
    lm, mm = write_family_pair(tmp_path / "smol", "smolvlm")
    bad = _edit(lm, tmp_path / "no-token-types.gguf",
                lambda s: s.keys.remove(s.key("tokenizer.ggml.token_type")))
    result = run_child(bad, mm, images["red"], timeout=60)
    assert result["outcome"] in ("answered", "refused"), result
