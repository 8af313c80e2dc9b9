"""The demo model in PyTorch, in LLaVA-1.5's layout: a CLIP-style ViT, a 2-layer MLP projector, a llama LM.

Written so that llama.cpp computes the same function from the exported GGUF: RoPE rotates adjacent pairs
(llama.cpp's NORM rope for the llama architecture), the encoder uses quick-GELU and pre-LayerNorm, the
projector GELU is the tanh approximation (ggml_gelu), the LM sees the penultimate ViT block's patch features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.gguflayout import CLIP_MEAN, CLIP_STD


@dataclass(frozen=True)
class Config:
    # A 3x3 grid of 24-px patches: each of the world's five places is one patch's centre, so every shape
    # lies inside one image token (with 16-px patches on 64 px, shapes straddled 2-4 patches and the
    # frozen encoder kept too little of their outline to name them).
    image_size: int = 72
    patch: int = 24
    v_width: int = 96
    v_layers: int = 4
    v_heads: int = 4
    v_ff: int = 384
    n_vocab: int = 0
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_ff: int = 352
    n_ctx: int = 2048
    rope_base: float = 10000.0
    eps: float = 1e-5

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2


class VBlock(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.v_width, eps=c.eps)
        self.q = nn.Linear(c.v_width, c.v_width)
        self.k = nn.Linear(c.v_width, c.v_width)
        self.v = nn.Linear(c.v_width, c.v_width)
        self.o = nn.Linear(c.v_width, c.v_width)
        self.ln2 = nn.LayerNorm(c.v_width, eps=c.eps)
        self.up = nn.Linear(c.v_width, c.v_ff)
        self.down = nn.Linear(c.v_ff, c.v_width)
        self.h = c.v_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        y = self.ln1(x)
        q, k, v = (t(y).view(b, n, self.h, d // self.h).transpose(1, 2) for t in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v)  # full attention, scale 1/sqrt(head dim)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, d))
        y = self.up(self.ln2(x))
        y = y * torch.sigmoid(1.702 * y)  # quick-GELU
        return x + self.down(y)


class ViT(nn.Module):
    """CLIP-style: patch convolution, class embedding, position embeddings, pre-LayerNorm, quick-GELU blocks."""

    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.patch = nn.Conv2d(3, c.v_width, c.patch, c.patch, bias=False)
        self.cls = nn.Parameter(torch.randn(c.v_width) * 0.02)
        self.pos = nn.Parameter(torch.randn(c.image_tokens + 1, c.v_width) * 0.02)
        self.pre_ln = nn.LayerNorm(c.v_width, eps=c.eps)
        self.blocks = nn.ModuleList(VBlock(c) for _ in range(c.v_layers))
        self.post_ln = nn.LayerNorm(c.v_width, eps=c.eps)  # CLIP pre-training only; LLaVA does not use it

    def forward(self, pixels: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        # llama.cpp's llava graph (tools/mtmd/models/llava.cpp) appends the class token AFTER the patches,
        # adds position embeddings in that order, and hands the projector rows 1..N (patches 1..N-1 and the
        # class token). Trained the same way, the exported model computes the same function there.
        x = torch.cat([x, self.cls.expand(x.shape[0], 1, -1)], 1) + self.pos
        x = self.pre_ln(x)
        for blk in self.blocks[: upto if upto is not None else len(self.blocks)]:
            x = blk(x)
        return x

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """What llama.cpp feeds the projector: the penultimate block's rows 1..N (see forward)."""
        return self.forward(pixels, upto=self.c.v_layers - 1)[:, 1:]

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.post_ln(self.forward(pixels)[:, -1])  # the class token


class TextEncoder(nn.Module):
    """The small text tower CLIP pre-training contrasts the ViT against (not exported)."""

    def __init__(self, n_vocab: int, width: int = 96, layers: int = 2, max_len: int = 48):
        super().__init__()
        self.emb = nn.Embedding(n_vocab, width)
        self.pos = nn.Parameter(torch.randn(max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, width * 4, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers)
        self.ln = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.enc(self.emb(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=~mask)
        x = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.ln(x)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate adjacent pairs (x0,x1), (x2,x3)…: llama.cpp's NORM rope, so weights export unpermuted."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = pos[:, None].float() * inv[None]
    cos, sin = ang.cos(), ang.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


class LBlock(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.attn_norm = RMSNorm(c.n_embd, c.eps)
        self.q = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.k = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.v = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.o = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.ffn_norm = RMSNorm(c.n_embd, c.eps)
        self.gate = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.up = nn.Linear(c.n_embd, c.n_ff, bias=False)
        self.down = nn.Linear(c.n_ff, c.n_embd, bias=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, past: tuple | None) -> tuple[torch.Tensor, tuple]:
        b, n, d = x.shape
        h = self.c.n_head
        y = self.attn_norm(x)
        q, k, v = (t(y).view(b, n, h, d // h).transpose(1, 2) for t in (self.q, self.k, self.v))
        q, k = rope(q, pos, self.c.rope_base), rope(k, pos, self.c.rope_base)
        mask = None
        if past is not None:
            pk, pv = past
            k = torch.cat([pk.expand(b, -1, -1, -1), k], 2)
            v = torch.cat([pv.expand(b, -1, -1, -1), v], 2)
            p = pk.shape[2]
            mask = torch.ones(n, p + n, dtype=torch.bool).tril(p)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, d))
        y = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y)), (k, v)


class LM(nn.Module):
    """A llama-architecture LM: RMSNorm, RoPE, SwiGLU, untied output."""

    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c.n_vocab, c.n_embd)
        self.blocks = nn.ModuleList(LBlock(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.n_embd, c.eps)
        self.out = nn.Linear(c.n_embd, c.n_vocab, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, start: int = 0, past: list | None = None) -> tuple[torch.Tensor, list]:
        """Logits for embeddings x (batch, n, E) at positions start…; past: per-layer (k, v) of a shared prefix."""
        pos = torch.arange(start, start + x.shape[1])
        kv = []
        for i, blk in enumerate(self.blocks):
            x, cache = blk(x, pos, past[i] if past is not None else None)
            kv.append(cache)
        return self.out(self.norm(x)), kv


class Projector(nn.Module):
    """LLaVA-1.5's MLP: linear, GELU, linear."""

    def __init__(self, c: Config):
        super().__init__()
        self.fc1 = nn.Linear(c.v_width, c.n_embd)
        self.fc2 = nn.Linear(c.n_embd, c.n_embd)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(f), approximate="tanh"))


class TinyLlava(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.vit = ViT(c)
        self.proj = Projector(c)
        self.lm = LM(c)

    def embed(self, ids: torch.Tensor, pixels: torch.Tensor | None, feats: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with image slots (id -1) filled by projected patch features, in order."""
        e = self.lm.embed(ids.clamp(min=0))
        if pixels is not None or feats is not None:
            if feats is None:
                feats = self.vit.patch_features(pixels)
            feats = self.proj(feats)  # (b, image_tokens, E)
            slot = ids < 0
            e = e.masked_scatter(slot[..., None], feats.reshape(-1, feats.shape[-1])[: int(slot.sum())])
        return e


def preprocess(img, size: int) -> torch.Tensor:
    """A PIL image as llama.cpp's CLIP preprocessor makes it: keep aspect, bicubic, pad with the mean, normalise."""
    import numpy as np

    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False).clamp(0, 1)
    out = torch.tensor([122, 116, 104], dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size) / 255.0
    out = out.clone()
    out[:, :, :nh, :nw] = x
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((out - mean) / std)[0]


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


__all__ = ["Config", "TinyLlava", "TextEncoder", "preprocess", "count_params", "CLIP_MEAN", "CLIP_STD", "math"]
