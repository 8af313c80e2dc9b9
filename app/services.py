"""What the UI and the CLI share: the engine, the model store, and the glue between them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.catalog import ModelSpec, load_catalog
from app.chat import Conversation, GenParams, ReplyStats
from app.downloads import DownloadManager
from app.errors import AppError
from app.store import ModelPair, ModelStore

logger = logging.getLogger(__name__)


class Engine(Protocol):
    """What Iris needs from an inference engine (LlamaCppEngine; a fake in UI tests)."""

    last_stats: ReplyStats | None

    def load(self, lm_path: str | Path, mmproj_path: str | Path, **kwargs: object) -> object: ...
    def stream_reply(self, conv: Conversation, params: GenParams | None = None) -> Iterator[str]: ...
    def stop(self) -> None: ...
    def unload(self) -> None: ...


@dataclass
class Services:
    """The app's services, built once by the CLI and handed to the UI."""

    engine: Engine
    store: ModelStore
    params: GenParams = field(default_factory=GenParams)
    loaded: ModelPair | None = None
    load_options: dict = field(default_factory=dict)
    downloads: DownloadManager = field(default_factory=DownloadManager)

    def catalog(self) -> tuple[dict[str, str], list[ModelSpec]]:
        """The recommended picks and the catalog entries (read each time: it is small)."""
        return load_catalog()

    def remove(self, name: str) -> int:
        """Delete an installed model or an unfinished download; unload it first if it is in use."""
        if any(j.name == name and j.running for j in self.downloads.jobs()):
            raise AppError(f"{name} is downloading right now; cancel the download first.")
        pair = next((p for p in self.store.pairs() if p.name == name), None)
        if pair is not None and self.loaded == pair:
            self.engine.unload()  # Windows cannot delete a mapped file, and the memory should go too
            self.loaded = None
        return self.store.remove(name)

    def load(self, name: str) -> ModelPair:
        """Load the installed pair called name (a no-op when it is already resident)."""
        pair = self.store.find(name)
        if self.loaded == pair:
            return pair
        self.engine.load(pair.lm, pair.mmproj, chat_format=pair.chat_format, **self.load_options)
        self.loaded = pair
        return pair

    def load_files(self, lm: Path, mmproj: Path, chat_format: str | None = None) -> ModelPair:
        """Load a pair given as two paths."""
        self.engine.load(lm, mmproj, chat_format=chat_format, **self.load_options)
        self.loaded = ModelPair(name=lm.stem, lm=lm, mmproj=mmproj,
                                size=lm.stat().st_size + mmproj.stat().st_size)
        return self.loaded

    def close(self) -> None:
        """Free the model (llama-cpp-python complains at exit otherwise)."""
        self.engine.unload()
        self.loaded = None


def build_services(models_dir: Path | None = None, engine: Engine | None = None) -> Services:
    """Services backed by the real llama.cpp engine unless one is given."""
    if engine is None:
        from app.engine import LlamaCppEngine

        engine = LlamaCppEngine()
    return Services(engine=engine, store=ModelStore(models_dir), downloads=DownloadManager(models_dir))
