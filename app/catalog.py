"""The curated model catalog (models/catalog.json): pure data, checked when read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app import config
from app.prompts import CHAT_HANDLERS

# Compute buffers and runtime beside the weights and the KV cache (llama.cpp + CLIP graph), roughly.
RUNTIME_BYTES = 500_000_000
MEMORY_CONTEXT = 4096


@dataclass(frozen=True)
class RemoteFile:
    """One file in a Hub repository, with what is known to check it against."""

    file: str
    size: int
    sha256: str | None
    size_approx: bool = False


@dataclass(frozen=True)
class Quant:
    """A quantization: the LM file and the mmproj chosen together with it."""

    name: str
    lm: RemoteFile
    mmproj: RemoteFile

    @property
    def size(self) -> int:
        return self.lm.size + self.mmproj.size


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry."""

    id: str
    name: str
    family: str
    repo: str
    revision: str | None
    chat_format: str
    license: str
    non_commercial: bool
    context_length: int
    image_tokens: int | None
    images_per_message: int
    good_for: str
    verified: bool
    quants: tuple[Quant, ...]
    kv_bytes_per_token: int
    note: str | None = None
    image_tokens_min: int | None = None  # set where the cost depends on the image (tiles, slices, dynamic size)
    image_size: int | None = None        # the encoder's native side in pixels; None: dynamic resolution

    def image_facts(self) -> str:
        """What one image costs this model, in words: '336 px · 576 tokens per image'."""
        if self.image_tokens is None:
            cost = "a varying number of tokens per image"
        elif self.image_tokens_min:
            cost = f"{self.image_tokens_min:,}–{self.image_tokens:,} tokens per image (more for larger images)"
        else:
            cost = f"{self.image_tokens:,} tokens per image"
        size = f"{self.image_size} px" + (" tiles" if self.image_tokens_min and self.image_size else "") \
            if self.image_size else "any resolution (28 px per token)"
        n = self.images_per_message
        return f"{size} · {cost} · up to {n} image{'s' if n != 1 else ''} per message"

    def quant(self, name: str | None = None) -> Quant:
        """The named quantization (case-insensitive), or the first one listed."""
        if name is None:
            return self.quants[0]
        for q in self.quants:
            if q.name.lower() == name.lower():
                return q
        from app.errors import ModelNotFound

        offered = ", ".join(q.name for q in self.quants)
        raise ModelNotFound(f"{self.name} has no quantization '{name}'. Offered: {offered}.")

    def memory_needed(self, quant: Quant) -> int:
        """Estimated RAM (or VRAM) to run this quantization at up to 4096 tokens of context."""
        return quant.size + self.kv_bytes_per_token * min(self.context_length, MEMORY_CONTEXT) + RUNTIME_BYTES


def load_catalog(path: Path | None = None) -> tuple[dict[str, str], list[ModelSpec]]:
    """The recommended picks and every entry; raise ValueError naming the bad field."""
    data = json.loads((path or config.catalog_path()).read_text(encoding="utf-8"))
    specs = []
    for raw in data["models"]:
        quants = tuple(
            Quant(q, RemoteFile(**v["lm"]), RemoteFile(**v["mmproj"])) for q, v in raw["quants"].items()
        )
        fields = {k: v for k, v in raw.items() if k != "quants"}
        spec = ModelSpec(quants=quants, **fields)
        _check(spec)
        specs.append(spec)
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError("catalog: duplicate ids")
    for kind, pick in data["recommended"].items():
        if pick not in ids:
            raise ValueError(f"catalog: recommended[{kind}] = {pick} is not an entry")
    return data["recommended"], specs


def _check(s: ModelSpec) -> None:
    where = f"catalog entry {s.id}"
    if s.chat_format not in CHAT_HANDLERS:
        raise ValueError(f"{where}: unknown chat_format {s.chat_format}")
    if s.kv_bytes_per_token <= 0:
        raise ValueError(f"{where}: kv_bytes_per_token is required")
    if "/" not in s.repo or not s.quants or not s.license or not s.good_for:
        raise ValueError(f"{where}: repo, quants, license and good_for are required")
    for q in s.quants:
        for f in (q.lm, q.mmproj):
            if not f.file.endswith(".gguf") or f.size <= 0:
                raise ValueError(f"{where}/{q.name}: bad file {f.file}")
            if f.sha256 is not None and (len(f.sha256) != 64 or not all(c in "0123456789abcdef" for c in f.sha256)):
                raise ValueError(f"{where}/{q.name}: bad sha256 for {f.file}")
        if "mmproj" not in q.mmproj.file.lower():
            raise ValueError(f"{where}/{q.name}: the mmproj file must be the projector")


def find_spec(spec_id: str, specs: list[ModelSpec]) -> ModelSpec:
    """The entry with that id."""
    for s in specs:
        if s.id == spec_id:
            return s
    from app.errors import ModelNotFound

    raise ModelNotFound(f"No catalog entry is called '{spec_id}'. Run 'iris models --catalog'.")
