"""Writes random-weight LLaVA-1.5-architecture GGUF pairs (llama LM + CLIP mmproj with an MLP projector).

The files are real: llama.cpp loads them and runs them through the same code paths as a
downloaded LLaVA. Facts and pitfalls: shared/research/tiny-llava-gguf.md. Shapes are checked in
Python before anything is written, because several bad shapes abort llama.cpp's process.

    python tests/modelwriter.py OUT_DIR [--preset NAME] [--quant f32|f16|q4_0|q8_0|q4_k_m]

NAME is a shape below (tiny, small, llava-7b, q4_0, q8_0, q4_k_m) or a catalog family (llava-1.5,
llava-1.6, moondream, nanollava, minicpm-v, qwen2-vl, qwen2.5-vl, gemma-3, smolvlm: tests/families.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import sys

import numpy as np
import gguf

# Run as a script too (python tests/modelwriter.py): the key layout lives in the repository's training package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.gguflayout import finish, lm_header, mmproj_header, tokenizer_header  # noqa: E402

# A Vicuna/LLaVA-style template that renders OpenAI content lists; image parts arrive as
# {"type": "text", "text": "<__media__>"} from llama-cpp-python's MTMD handler. No BOS: mtmd adds it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %}{% endif %}"
    "{{ '\\n' }}"
    "{% elif message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}"
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %}{% endif %}"
    "{{ eos_token }}{{ '\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)

WORDS = ["the", "a", "is", "what", "this", "image", "shape", "colour", "red", "blue", "green",
         "circle", "square", "USER", "ASSISTANT", "picture", "and", "of", "in", "you", "I", "it"]


@dataclass(frozen=True)
class Shape:
    """Every size a test pair is made of."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 4
    n_ff: int = 128
    n_vocab: int = 512
    n_ctx: int = 2048
    image_size: int = 32
    patch: int = 8
    v_width: int = 32
    v_layers: int = 2
    v_heads: int = 4
    v_ff: int = 64
    quant: str = "f32"          # LM 2-D weights: f32, f16, q4_0, q8_0 or q4_k_m (llama.cpp's quantizer)
    mmproj_dtype: str = "f32"   # mmproj 2-D weights: f32 or f16
    pinpoints: bool = False     # write llava-1.6 tiling keys
    chat_template: bool = True
    seed: int = 0
    # Greedy output is words: the output rows of control, byte and unused tokens are zero, so a word
    # piece (random logits, half of them above zero) always wins. Replies are real text that the next
    # turn re-tokenizes, so comparisons of replies compare something.
    speaks: bool = False

    def validate(self) -> None:
        """Refuse shapes that llama.cpp would crash on rather than reject."""
        problems = []
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            problems.append("n_head must split n_embd into even-sized heads (RoPE)")
        if self.n_head % self.n_head_kv:
            problems.append("n_head_kv must divide n_head")
        if self.v_width % self.v_heads:
            problems.append("v_heads must divide v_width")
        if self.image_size < self.patch:
            problems.append("image_size must be at least one patch")
        if self.n_vocab < 259 + 1 + 94:
            problems.append("n_vocab must hold the control, byte and ASCII tokens (354)")
        if self.v_layers < 1 or self.n_layer < 1:
            problems.append("need at least one layer on each side")
        if self.quant in ("q4_0", "q8_0") and (self.n_embd % 32 or self.n_ff % 32):
            problems.append(f"{self.quant} needs widths that are multiples of 32")
        if self.quant not in LM_QUANTS or self.mmproj_dtype not in ("f32", "f16"):
            problems.append("unknown dtype")
        if problems:
            raise ValueError("bad test-model shape: " + "; ".join(problems))

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2


LM_QUANTS = ("f32", "f16", "q4_0", "q8_0", "q4_k_m")
# The formats users download, on an LM whose widths are whole Q4_K super-blocks (256), so that
# llama.cpp's Q4_K_M recipe really writes Q4_K and Q6_K rather than falling back to Q5_0.
_QUANT_SHAPE = Shape(n_embd=256, n_head=4, n_head_kv=4, n_ff=768, n_vocab=512, speaks=True)

PRESETS = {
    "tiny": Shape(),
    "q4_0": replace(_QUANT_SHAPE, quant="q4_0"),
    "q8_0": replace(_QUANT_SHAPE, quant="q8_0"),
    "q4_k_m": replace(_QUANT_SHAPE, quant="q4_k_m"),
    # A 0.5B-class LM with a ViT-B/16-224 encoder: small but realistic proportions.
    "small": Shape(n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864, n_vocab=4096,
                   n_ctx=4096, image_size=224, patch=16, v_width=768, v_layers=12, v_heads=12,
                   v_ff=3072, quant="q4_0", mmproj_dtype="f16", speaks=True),
    # LLaVA-1.5-7B: Vicuna-7B LM as Q4_0, CLIP ViT-L/14-336 as f16.
    "llava-7b": Shape(n_embd=4096, n_layer=32, n_head=32, n_head_kv=32, n_ff=11008, n_vocab=32000,
                      n_ctx=4096, image_size=336, patch=14, v_width=1024, v_layers=24, v_heads=16,
                      v_ff=4096, quant="q4_0", mmproj_dtype="f16", speaks=True),
}


def _vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    pieces = ["\u2581"] + [chr(c) for c in range(33, 127)]
    pieces += ["\u2581" + w for w in WORDS] + list(WORDS)
    for p in pieces:
        if len(tokens) >= n_vocab:
            break
        if p in tokens:
            continue
        tokens.append(p)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-100.0 + 10.0 * len(p))  # longer pieces merge first
    while len(tokens) < n_vocab:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(gguf.TokenType.UNUSED)
        scores.append(-1000.0)
    return tokens, scores, [int(t) for t in types]


class _Weights:
    """Random tensors; big models reuse one buffer per shape so writing 4 GB stays cheap."""

    def __init__(self, seed: int, reuse: bool):
        self.rng = np.random.default_rng(seed)
        self.reuse = reuse
        self.cache: dict[tuple, np.ndarray] = {}

    def dense(self, shape: tuple[int, ...], dtype: str, scale: float = 0.02) -> np.ndarray:
        key = ("d", shape, dtype)
        if self.reuse and key in self.cache:
            return self.cache[key]
        arr = (self.rng.standard_normal(shape, dtype=np.float32) * scale)
        arr = arr.astype(np.float16 if dtype == "f16" else np.float32)
        if self.reuse:
            self.cache[key] = arr
        return arr

    def q4_0(self, rows: int, cols: int, scale: float = 0.02) -> np.ndarray:
        """Raw Q4_0 blocks: an f16 scale then 16 bytes of nibbles, per 32 values."""
        key = ("q", rows, cols, scale)
        if self.reuse and key in self.cache:
            return self.cache[key]
        nblk = rows * cols // 32
        out = np.empty((nblk, 18), dtype=np.uint8)
        # Nibbles uniform in 0..15 (value - 8) have a spread of about 4.6: d gives the weights the
        # requested spread, as the dense writer does. Finite, small scales: no NaNs from noise.
        d = np.full(nblk, scale / 4.6, dtype=np.float16)
        out[:, :2] = d.view(np.uint8).reshape(nblk, 2)
        out[:, 2:] = self.rng.integers(0, 256, size=(nblk, 16), dtype=np.uint8)
        out = out.reshape(rows, cols // 32 * 18)
        if self.reuse:
            self.cache[key] = out
        return out

    def add_matrix(self, wr: gguf.GGUFWriter, name: str, quant: str, n_in: int, n_out: int,
                   scale: float = 0.02, zero_rows: list[int] | None = None) -> None:
        """A 2-D weight in the LM's format; numpy shape (n_out, n_in) is the reverse of ggml's ne.

        zero_rows: output rows written as zeros (a Q4_0 row: every block's scale 0).
        """
        if quant == "q4_0":
            arr = self.q4_0(n_out, n_in, scale)
            if zero_rows:
                arr = arr.copy()
                blocks = arr.reshape(n_out, n_in // 32, 18)
                blocks[zero_rows, :, :2] = 0
            wr.add_tensor(name, arr, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
            return
        dense = self.dense((n_out, n_in), "f32" if quant == "q8_0" else quant, scale)
        if zero_rows:
            dense = dense.copy()
            dense[zero_rows] = 0
        if quant == "q8_0":
            wr.add_tensor(name, gguf.quants.quantize(dense, gguf.GGMLQuantizationType.Q8_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            wr.add_tensor(name, dense)

    def ones(self, n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def small(self, n: int) -> np.ndarray:
        return (self.rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)


def write_lm(path: Path, s: Shape) -> Path:
    """Write the llama-architecture LM."""
    s.validate()
    if s.quant == "q4_k_m":
        # K-quants come from llama.cpp's own quantizer, as in the files users download.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from app.llamalib import quantize

        f16 = write_lm(path.with_name(path.stem + "-f16.gguf"), replace(s, quant="f16"))
        try:
            return quantize(f16, path, "q4_k_m")
        finally:
            f16.unlink()
    w = _Weights(s.seed, reuse=s.n_embd >= 1024)
    wr = gguf.GGUFWriter(str(path), "llama")
    tokens, scores, types = _vocab(s.n_vocab)
    file_type = {"q4_0": 2, "q8_0": 7, "f16": 1}.get(s.quant, 0)
    lm_header(wr, name="iris-test-lm", n_ctx=s.n_ctx, n_embd=s.n_embd, n_layer=s.n_layer, n_ff=s.n_ff,
              n_head=s.n_head, n_head_kv=s.n_head_kv, file_type=file_type, tokens=tokens, scores=scores,
              types=types, chat_template=CHAT_TEMPLATE if s.chat_template else None)
    hd = s.n_embd // s.n_head
    kv = s.n_head_kv * hd

    def mat(name: str, n_in: int, n_out: int, scale: float = 0.02, zero_rows: list[int] | None = None) -> None:
        w.add_matrix(wr, name, s.quant, n_in, n_out, scale, zero_rows)

    # Embeddings stay dense: llama.cpp reads rows of token_embd on the CPU.
    wr.add_tensor("token_embd.weight", w.dense((s.n_vocab, s.n_embd), "f16" if s.quant != "f32" else "f32", 0.5))
    wr.add_tensor("output_norm.weight", w.ones(s.n_embd))
    silent = [i for i, t in enumerate(types) if t != int(gguf.TokenType.NORMAL)] if s.speaks else None
    mat("output.weight", s.n_embd, s.n_vocab, zero_rows=silent)
    for i in range(s.n_layer):
        wr.add_tensor(f"blk.{i}.attn_norm.weight", w.ones(s.n_embd))
        mat(f"blk.{i}.attn_q.weight", s.n_embd, s.n_embd)
        mat(f"blk.{i}.attn_k.weight", s.n_embd, kv)
        # Unit-gain values and outputs: what the prompt (images included) holds reaches the logits.
        mat(f"blk.{i}.attn_v.weight", s.n_embd, kv, 1.0 / s.n_embd ** 0.5)
        mat(f"blk.{i}.attn_output.weight", s.n_embd, s.n_embd, 2.0 / s.n_embd ** 0.5)
        wr.add_tensor(f"blk.{i}.ffn_norm.weight", w.ones(s.n_embd))
        mat(f"blk.{i}.ffn_gate.weight", s.n_embd, s.n_ff)
        mat(f"blk.{i}.ffn_up.weight", s.n_embd, s.n_ff)
        mat(f"blk.{i}.ffn_down.weight", s.n_ff, s.n_embd)
    finish(wr)
    return path


def write_mmproj(path: Path, s: Shape) -> Path:
    """Write the CLIP vision encoder with LLaVA-1.5's 2-layer MLP projector."""
    s.validate()
    w = _Weights(s.seed + 1, reuse=s.v_width >= 512)
    dt = s.mmproj_dtype
    D, F, P, E = s.v_width, s.v_ff, s.patch, s.n_embd
    n_pos = (s.image_size // P) ** 2 + 1
    wr = gguf.GGUFWriter(str(path), "clip")
    mmproj_header(wr, name="iris-test-mmproj", image_size=s.image_size, patch=P, width=D, ff=F, proj_dim=E,
                  heads=s.v_heads, layers=s.v_layers)
    if s.pinpoints:
        sz = s.image_size
        wr.add_array("clip.vision.image_grid_pinpoints", [sz, sz, sz, 2 * sz, 2 * sz, sz, 2 * sz, 2 * sz])
        wr.add_string("clip.vision.mm_patch_merge_type", "spatial_unpad")
    wr.add_tensor("v.patch_embd.weight", w.dense((D, 3, P, P), "f16" if dt == "f16" else "f32", 0.3))
    wr.add_tensor("v.class_embd", w.small(D))
    wr.add_tensor("v.position_embd.weight", w.dense((n_pos, D), "f32"))
    wr.add_tensor("v.pre_ln.weight", w.ones(D))
    wr.add_tensor("v.pre_ln.bias", w.small(D))
    for i in range(s.v_layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            wr.add_tensor(f"v.blk.{i}.{part}.weight", w.dense((D, D), dt))
            wr.add_tensor(f"v.blk.{i}.{part}.bias", w.small(D))
        wr.add_tensor(f"v.blk.{i}.ln1.weight", w.ones(D))
        wr.add_tensor(f"v.blk.{i}.ln1.bias", w.small(D))
        wr.add_tensor(f"v.blk.{i}.ln2.weight", w.ones(D))
        wr.add_tensor(f"v.blk.{i}.ln2.bias", w.small(D))
        wr.add_tensor(f"v.blk.{i}.ffn_up.weight", w.dense((F, D), dt))
        wr.add_tensor(f"v.blk.{i}.ffn_up.bias", w.small(F))
        wr.add_tensor(f"v.blk.{i}.ffn_down.weight", w.dense((D, F), dt))
        wr.add_tensor(f"v.blk.{i}.ffn_down.bias", w.small(D))
    # Strong projector weights so that what an image shows visibly changes the LM's output.
    wr.add_tensor("mm.0.weight", w.dense((E, D), dt, 1.0 / D ** 0.5))
    wr.add_tensor("mm.0.bias", w.small(E))
    wr.add_tensor("mm.2.weight", w.dense((E, E), dt, 4.0 / E ** 0.5))
    wr.add_tensor("mm.2.bias", w.small(E))
    finish(wr)
    return path


def write_pair(out_dir: Path, shape: Shape | None = None, name: str = "tiny-llava") -> tuple[Path, Path]:
    """Write NAME.gguf and NAME-mmproj.gguf into out_dir and return their paths."""
    shape = shape or Shape()
    shape.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = write_lm(out_dir / f"{name}.gguf", shape)
    mm = write_mmproj(out_dir / f"{name}-mmproj.gguf", shape)
    return lm, mm


def corrupt_copy(src: Path, dst: Path, how: str) -> Path:
    """Write a damaged variant of a file: 'truncate', 'empty', 'garbage'."""
    data = src.read_bytes()
    if how == "truncate":
        dst.write_bytes(data[: len(data) * 2 // 3])
    elif how == "empty":
        dst.write_bytes(b"")
    elif how == "garbage":
        dst.write_bytes(b"this is not a model\n" * 100)
    else:
        raise ValueError(how)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    from families import FAMILIES, write_family_pair

    ap.add_argument("--preset", choices=sorted(PRESETS) + sorted(FAMILIES), default="tiny")
    ap.add_argument("--name", default=None)
    ap.add_argument("--quant", choices=LM_QUANTS, default=None, help="the LM's weights (default: the preset's)")
    args = ap.parse_args()
    if args.preset in FAMILIES:
        fam = FAMILIES[args.preset]
        if args.quant:
            fam = replace(fam, quant=args.quant)
        for p in write_family_pair(args.out_dir, fam, args.name):
            print(f"{p}  {p.stat().st_size:,} bytes")
        return
    shape = PRESETS[args.preset]
    if args.quant:
        shape = replace(shape, quant=args.quant)
    lm, mm = write_pair(args.out_dir, shape, args.name or f"test-{args.preset}")
    for p in (lm, mm):
        print(f"{p}  {p.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()


__all__ = ["Shape", "PRESETS", "write_pair", "write_lm", "write_mmproj", "corrupt_copy", "replace"]
