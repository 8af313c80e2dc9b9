"""The models folder: finds LM + mmproj pairs in it and says which are usable."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app import config
from app.errors import AppError, ModelNotFound
from app.ggufinfo import GGUFInfo, is_mmproj, read_gguf

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPair:
    """An installed model: its name, its two files and how big they are."""

    name: str
    lm: Path
    mmproj: Path
    size: int
    chat_format: str | None = None
    catalog_id: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Problem:
    """A .gguf file in the models folder that could not be used, and why."""

    path: Path
    reason: str


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.lower(), b.lower()):
        if x != y:
            break
        n += 1
    return n


def _stem_without_mmproj(name: str) -> str:
    s = name.lower().replace(".gguf", "")
    for token in ("mmproj-model-", "mmproj-", "-mmproj", "_mmproj", "mmproj"):
        s = s.replace(token, "")
    return s


class ModelStore:
    """Lists the pairs under a models folder (default: the user data dir's models/)."""

    def __init__(self, root: Path | None = None):
        self._root = root

    @property
    def root(self) -> Path:
        return self._root or config.models_dir()

    def scan(self) -> tuple[list[ModelPair], list[Problem]]:
        """Every usable pair, and every .gguf file that could not be read."""
        pairs: list[ModelPair] = []
        problems: list[Problem] = []
        root = self.root
        if not root.is_dir():
            return pairs, problems
        by_dir: dict[Path, tuple[list[GGUFInfo], list[GGUFInfo]]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if not fn.lower().endswith(".gguf"):
                    continue
                path = Path(dirpath) / fn
                try:
                    info = read_gguf(path)
                except AppError as exc:
                    problems.append(Problem(path, str(exc)))
                    continue
                lms, mms = by_dir.setdefault(Path(dirpath), ([], []))
                (mms if is_mmproj(info) else lms).append(info)
        for d, (lms, mms) in sorted(by_dir.items()):
            for lm in lms:
                if not mms:
                    problems.append(Problem(lm.path, "no mmproj (vision projector) file beside it; "
                                            "put the model's mmproj .gguf in the same folder"))
                    continue
                mm = max(mms, key=lambda m: _common_prefix(_stem_without_mmproj(m.path.name),
                                                            lm.path.stem))
                pairs.append(ModelPair(
                    name=self._name(d, lm.path, len(lms)), lm=lm.path, mmproj=mm.path,
                    size=lm.file_size + mm.file_size,
                ))
        return pairs, problems

    def _name(self, d: Path, lm: Path, n_lms: int) -> str:
        if d == self.root:
            return lm.stem
        rel = d.relative_to(self.root).as_posix()
        return rel if n_lms == 1 else f"{rel}/{lm.stem}"

    def pairs(self) -> list[ModelPair]:
        """Usable pairs only."""
        return self.scan()[0]

    def find(self, name: str) -> ModelPair:
        """The pair called name; raise ModelNotFound listing what exists."""
        pairs = self.pairs()
        for p in pairs:
            if p.name == name:
                return p
        matches = [p for p in pairs if p.name.lower().startswith(name.lower())]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(p.name for p in pairs) or "none"
        raise ModelNotFound(
            f"No installed model is called '{name}'. Installed: {known}. "
            "Run 'iris models' to list them."
        )


def human_size(n: int) -> str:
    """Bytes as a short human figure (1.2 GB)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
