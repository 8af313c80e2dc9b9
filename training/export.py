"""Vocabulary and GGUF export for the demo model, laid out as real LLaVA-1.5 files (llama LM + clip mmproj)."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import numpy as np
import torch

from training.gguflayout import finish, lm_header, mmproj_header
from training.model import Config, TinyLlava

# Control tokens, then the 256 byte tokens (llama.cpp takes the newline from <0x0A>; unknown characters
# fall back to bytes), then the characters, then every prefix of every word with and without the SPM
# space mark: llama.cpp's SPM tokenizer merges adjacent symbols only into pieces in the vocabulary, and
# with every prefix present each known word always merges into one token.
SPACE = "\u2581"


def build_vocab(texts: list[str], phrases: list[str] = ()) -> list[str]:
    """The SPM vocabulary for texts, then each phrase (a word group kept whole) with every word-boundary
    prefix, for the same reason as words: "▁on▁the", then "▁on▁the▁left"."""
    words: set[str] = set()
    for t in texts:
        words.update(w for w in re.findall(r"[A-Za-z']+", t))
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [SPACE]
    pieces += [chr(c) for c in range(33, 127)]
    seen = set(pieces)
    for w in sorted(words):
        for form in (SPACE + w, w):
            for k in range(2, len(form) + 1):
                p = form[:k]
                if p not in seen:
                    seen.add(p)
                    pieces.append(p)
    for phrase in phrases:
        words_in = phrase.split()
        for k in range(2, len(words_in) + 1):
            p = SPACE + SPACE.join(words_in[:k])
            # "▁Red▁shapes:" is merged from "▁Red▁shapes" and ":"
            for q in (p.rstrip(",.:?"), p):
                if q not in seen:
                    seen.add(q)
                    pieces.append(q)
    return pieces


def _f(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def write_lm(path: Path, model: TinyLlava, vocab: list[str], name: str, dtype: str = "f16") -> Path:
    c = model.c
    lm = model.lm
    wr = gguf.GGUFWriter(str(path), "llama")
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (len(vocab) - 259)
    lm_header(wr, name=name, n_ctx=c.n_ctx, n_embd=c.n_embd, n_layer=c.n_layer, n_ff=c.n_ff, n_head=c.n_head,
              n_head_kv=c.n_head, file_type=1 if dtype == "f16" else 0, tokens=vocab,
              scores=[-float(len(p)) if i > 258 else 0.0 for i, p in enumerate(vocab)], types=types,
              eps=c.eps, rope_base=c.rope_base)

    def mat(n: str, t) -> None:
        a = _f(t)
        wr.add_tensor(n, a.astype(np.float16) if dtype == "f16" else a)

    wr.add_tensor("token_embd.weight", _f(lm.embed.weight))
    wr.add_tensor("output_norm.weight", _f(lm.norm.weight))
    mat("output.weight", lm.out.weight)
    for i, b in enumerate(lm.blocks):
        wr.add_tensor(f"blk.{i}.attn_norm.weight", _f(b.attn_norm.weight))
        mat(f"blk.{i}.attn_q.weight", b.q.weight)
        mat(f"blk.{i}.attn_k.weight", b.k.weight)
        mat(f"blk.{i}.attn_v.weight", b.v.weight)
        mat(f"blk.{i}.attn_output.weight", b.o.weight)
        wr.add_tensor(f"blk.{i}.ffn_norm.weight", _f(b.ffn_norm.weight))
        mat(f"blk.{i}.ffn_gate.weight", b.gate.weight)
        mat(f"blk.{i}.ffn_up.weight", b.up.weight)
        mat(f"blk.{i}.ffn_down.weight", b.down.weight)
    finish(wr)
    return path


def mmproj_tensors(model: TinyLlava) -> list[tuple[str, torch.Tensor, bool]]:
    """The mmproj's tensors in file order: (GGUF name, parameter, stored as f16 when a matrix)."""
    v = model.vit
    out = [("v.patch_embd.weight", v.patch.weight, True), ("v.class_embd", v.cls, False),
           ("v.position_embd.weight", v.pos, False), ("v.pre_ln.weight", v.pre_ln.weight, False),
           ("v.pre_ln.bias", v.pre_ln.bias, False)]
    for i, b in enumerate(v.blocks):
        for part, lin in (("attn_q", b.q), ("attn_k", b.k), ("attn_v", b.v), ("attn_out", b.o)):
            out += [(f"v.blk.{i}.{part}.weight", lin.weight, True), (f"v.blk.{i}.{part}.bias", lin.bias, False)]
        for part, ln in (("ln1", b.ln1), ("ln2", b.ln2)):
            out += [(f"v.blk.{i}.{part}.weight", ln.weight, False), (f"v.blk.{i}.{part}.bias", ln.bias, False)]
        for part, lin in (("ffn_up", b.up), ("ffn_down", b.down)):
            out += [(f"v.blk.{i}.{part}.weight", lin.weight, True), (f"v.blk.{i}.{part}.bias", lin.bias, False)]
    for k, lin in (("0", model.proj.fc1), ("2", model.proj.fc2)):
        out += [(f"mm.{k}.weight", lin.weight, True), (f"mm.{k}.bias", lin.bias, False)]
    return out


def write_mmproj(path: Path, model: TinyLlava, name: str, dtype: str = "f16") -> Path:
    c = model.c
    wr = gguf.GGUFWriter(str(path), "clip")
    mmproj_header(wr, name=name, image_size=c.image_size, patch=c.patch, width=c.v_width, ff=c.v_ff,
                  proj_dim=c.n_embd, heads=c.v_heads, layers=c.v_layers, eps=c.eps)
    for n, t, matrix in mmproj_tensors(model):
        a = _f(t)
        wr.add_tensor(n, a.astype(np.float16) if matrix and dtype == "f16" else a)
    finish(wr)
    return path


__all__ = ["build_vocab", "write_lm", "write_mmproj", "mmproj_tensors", "Config"]
