"""The models folder: finds LM + mmproj pairs in it and says which are usable."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from app import config
from app.errors import AppError, ModelNotFound
from app.ggufinfo import GGUFInfo, check_pair, is_mmproj, read_gguf

logger = logging.getLogger(__name__)

# Written last into a catalog install's folder: without it the folder is not an install.
MANIFEST = "iris-model.json"
# Where unfinished downloads live, hidden from the scan.
DOWNLOADS = ".downloads"
DEMO_NAME = "iris-demo-shapes"
DEMO_LABEL = "Demo — knows only shapes and colours"


def install_name(spec_id: str, quant: str) -> str:
    """Folder name of a catalog install (also its name in 'iris models')."""
    return f"{spec_id}-{quant}"


def read_manifest(folder: Path) -> dict | None:
    """A catalog install's record, or None when the folder has none (or an unreadable one)."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class PartialDownload:
    """A download that stopped before finishing; its bytes are kept for the next try."""

    name: str
    path: Path
    size: int


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

    @property
    def is_demo(self) -> bool:
        return self.catalog_id == "demo"


@dataclass(frozen=True)
class Problem:
    """A .gguf file in the models folder that could not be used, and why."""

    path: Path
    reason: str


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.lower(), b.lower(), strict=False):
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

    def __init__(self, root: Path | None = None, demo_dir: Path | None = None):
        self._root = root
        self._demo_dir = demo_dir

    @property
    def root(self) -> Path:
        return self._root or config.models_dir()

    def scan(self) -> tuple[list[ModelPair], list[Problem]]:
        """Every usable pair, and every .gguf file that could not be read."""
        pairs: list[ModelPair] = []
        problems: list[Problem] = []
        root = self.root
        demo = self._demo()
        if not root.is_dir():
            return pairs + demo, problems
        by_dir: dict[Path, tuple[list[GGUFInfo], list[GGUFInfo]]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if MANIFEST in filenames:
                self._scan_install(Path(dirpath), pairs, problems)
                dirnames[:] = []
                continue
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
                try:
                    check_pair(lm.path, mm.path)  # the engine's own checks, so the list holds only usable pairs
                except AppError as exc:
                    problems.append(Problem(lm.path, str(exc)))
                    continue
                pairs.append(ModelPair(
                    name=self._name(d, lm.path, len(lms)), lm=lm.path, mmproj=mm.path,
                    size=lm.file_size + mm.file_size,
                ))
        return pairs + demo, problems

    def _demo(self) -> list[ModelPair]:
        """The bundled demo model, listed after the installed ones."""
        if self._demo_dir is None:
            return []
        lm, mm = self._demo_dir / f"{DEMO_NAME}.gguf", self._demo_dir / f"{DEMO_NAME}-mmproj.gguf"
        if not (lm.is_file() and mm.is_file()):
            return []
        return [ModelPair(name=DEMO_NAME, lm=lm, mmproj=mm, size=lm.stat().st_size + mm.stat().st_size,
                          chat_format="llava-1-5", catalog_id="demo", label=DEMO_LABEL)]

    def _scan_install(self, d: Path, pairs: list[ModelPair], problems: list[Problem]) -> None:
        man = read_manifest(d)
        try:
            files = {f["role"]: f for f in man["files"]}  # type: ignore[index]
            lm, mm = d / files["lm"]["file"], d / files["mmproj"]["file"]
            for f in files.values():
                if (d / f["file"]).stat().st_size != f["size"]:
                    raise OSError(f"{f['file']} has the wrong size")
        except (TypeError, KeyError, OSError) as exc:
            problems.append(Problem(d / MANIFEST, f"incomplete or damaged install ({exc}); "
                                    f"run 'iris download {d.name}' again or 'iris remove {d.name}'"))
            return
        assert man is not None  # the files above came from it
        pairs.append(ModelPair(
            name=self._name(d, lm, 1), lm=lm, mmproj=mm, size=lm.stat().st_size + mm.stat().st_size,
            chat_format=man.get("chat_format"), catalog_id=man.get("catalog_id"),
            label=f"{man.get('display_name', d.name)} {man.get('quant', '')}".strip(),
        ))

    def partial_downloads(self) -> list[PartialDownload]:
        """Unfinished downloads and the bytes they keep."""
        out = []
        base = self.root / DOWNLOADS
        if base.is_dir():
            for d in sorted(p for p in base.iterdir() if p.is_dir()):
                size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
                out.append(PartialDownload(d.name, d, size))
        return out

    def remove(self, name: str) -> int:
        """Delete an installed model (or an unfinished download) called name; return the bytes freed."""
        for part in self.partial_downloads():
            if part.name == name:
                shutil.rmtree(part.path)
                return part.size
        pair = self.find(name, exact=True)
        if pair.is_demo:
            raise AppError("The demo model is part of Iris and cannot be removed (it is under 20 MB).")
        folder = pair.lm.parent
        if read_manifest(folder) is not None:
            # A catalog install's folder holds only Iris's files: remove it whole, record first.
            (folder / MANIFEST).unlink()
            shutil.rmtree(folder)
            return pair.size
        # A user's own pair: delete just its two files, never anything else they keep there.
        for f in (pair.lm, pair.mmproj):
            f.unlink(missing_ok=True)
        if folder != self.root and not any(folder.iterdir()):
            folder.rmdir()
        return pair.size

    def _name(self, d: Path, lm: Path, n_lms: int) -> str:
        if d == self.root:
            return lm.stem
        rel = d.relative_to(self.root).as_posix()
        return rel if n_lms == 1 else f"{rel}/{lm.stem}"

    def pairs(self) -> list[ModelPair]:
        """Usable pairs only."""
        return self.scan()[0]

    def find(self, name: str, exact: bool = False) -> ModelPair:
        """The pair called name (or the one install of a catalog entry, or a unique prefix unless exact)."""
        pairs = self.pairs()
        for p in pairs:
            if p.name == name:
                return p
        matches = [p for p in pairs if p.catalog_id == name]
        if not exact and not matches:
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
