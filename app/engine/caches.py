"""What the engine keeps between turns: the KV cache's contents, conversation snapshots, image embeddings."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.engine.mtmd import Unit, positions


@dataclass
class _Session:
    """What sequence 0 of the KV cache holds: text token ids and image units, in order."""

    units: list[Unit] = field(default_factory=list)

    def pos(self, upto: int | None = None) -> int:
        return positions(self.units[:upto])


# Defaults: ~50 LLaVA-1.5-7B images (9.4 MB each in f32); a few saved 7B conversations (0.5 MB per token).
EMBED_CACHE_BYTES = 512 * 1024**2


SESSION_CACHE_BYTES = 1024**3


class _EmbeddingCache:
    """Image embeddings by (image hash, mmproj fingerprint), least recently used first out, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple[str, str]) -> Any:
        arr = self._items.get(key)
        if arr is not None:
            self._items.move_to_end(key)
        return arr

    def put(self, key: tuple[str, str], arr: Any) -> None:
        if arr.nbytes > self.max_bytes or key in self._items:
            return
        self._items[key] = arr
        self.bytes += arr.nbytes
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


@dataclass
class _SavedSession:
    units: list[Unit]
    state: bytes


class _SessionStore:
    """KV-cache snapshots of conversations not on screen, so switching back costs a copy, not a prefill."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, _SavedSession] = OrderedDict()
        self.bytes = 0

    def pop(self, key: str) -> _SavedSession | None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= len(item.state)
        return item

    def put(self, key: str, item: _SavedSession) -> None:
        self.pop(key)
        if len(item.state) > self.max_bytes:
            return
        self._items[key] = item
        self.bytes += len(item.state)
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= len(old.state)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
