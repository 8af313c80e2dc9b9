"""The curated model catalog (models/catalog.json): pure data, checked when read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.engine import CHAT_HANDLERS

CATALOG_PATH = Path(__file__).resolve().parent.parent / "models" / "catalog.json"


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
    note: str | None = None


def load_catalog(path: Path = CATALOG_PATH) -> tuple[dict[str, str], list[ModelSpec]]:
    """The recommended picks and every entry; raise ValueError naming the bad field."""
    data = json.loads(path.read_text(encoding="utf-8"))
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
