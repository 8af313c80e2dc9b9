"""What the engine keeps between turns: the KV cache's contents, conversation snapshots, image embeddings."""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.engine.mtmd import ImageUnit, Unit, positions

# Defaults: ~50 LLaVA-1.5-7B images (9.4 MB each in f32); a few saved 7B conversations (0.5 MB per token).
EMBED_CACHE_BYTES = 512 * 1024**2


SESSION_CACHE_BYTES = 1024**3


class EmbeddingCache:
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
class Snapshot:
    """A conversation's KV state (llama_state_seq_get_data) and the units it holds."""

    units: list[Unit]
    state: bytes


class SnapshotStore:
    """KV-cache snapshots of conversations not on screen, so switching back costs a copy, not a prefill."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self.bytes = 0

    def pop(self, key: str) -> Snapshot | None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= len(item.state)
        return item

    def put(self, key: str, item: Snapshot) -> None:
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


class KVCache:
    """Sequence 0 of llama.cpp's KV cache as Iris tracks it: the units it holds in order, which
    conversation they belong to, and the snapshots of conversations switched away from.

    Every change to the cache's contents goes through here, so `units` always says what the cache holds.
    """

    def __init__(self, snapshot_bytes: int):
        self.units: list[Unit] = []
        self.conversation: str | None = None
        self.snapshots = SnapshotStore(snapshot_bytes)

    def pos(self) -> int:
        """Positions the cached units span: where the next unit goes."""
        return positions(self.units)

    def forget(self) -> None:
        """A new model: nothing cached belongs to it (snapshots included)."""
        self.units, self.conversation = [], None
        self.snapshots.clear()

    def switch(self, llama: Any, conversation: str) -> None:
        """Keep the current conversation's cache aside and bring back conversation's, if it was kept."""
        import llama_cpp as L

        ctx = llama._ctx.ctx
        old = self.conversation
        if old is not None and self.units and llama.n_tokens == self.pos():
            size = L.llama_state_seq_get_size(ctx, 0)
            if size <= self.snapshots.max_bytes:
                buf = (ctypes.c_uint8 * size)()
                got = L.llama_state_seq_get_data(ctx, buf, size, 0)
                self.snapshots.put(old, Snapshot(list(self.units), bytes(buf[:got])))
        self.conversation = conversation
        saved = self.snapshots.pop(conversation)
        if saved is None:
            return  # the cache keeps whatever prefix the next prompt shares with it
        mem = L.llama_get_memory(ctx)
        L.llama_memory_clear(mem, True)
        buf = (ctypes.c_uint8 * len(saved.state)).from_buffer_copy(saved.state)
        if L.llama_state_seq_set_data(ctx, buf, len(saved.state), 0) == 0:
            L.llama_memory_clear(mem, True)
            self.units, llama.n_tokens = [], 0
            return
        self.units = list(saved.units)
        n = 0
        for u in saved.units:
            if isinstance(u, ImageUnit):
                llama.input_ids[n:n + u.n_pos] = 0  # image slots, as the engine leaves them
                n += u.n_pos
            else:
                llama.input_ids[n] = u
                n += 1
        llama.n_tokens = n

    def keep_prefix(self, llama: Any, new: Sequence[Unit], reuse: bool) -> int:
        """Drop from the cache what new does not start with; return how many of new's units it still holds."""
        import llama_cpp as L

        mem = L.llama_get_memory(llama._ctx.ctx)
        if not reuse or llama.n_tokens != self.pos():
            self.units = []
            L.llama_memory_clear(mem, True)
            llama.n_tokens = 0
        k = 0
        for a, b in zip(new, self.units, strict=False):  # the common prefix
            if a != b:
                break
            k += 1
        if k == len(new):
            k -= 1  # the last token must be evaluated again for fresh logits
        keep = positions(new[:k])
        n_swa = L.llama_model_n_swa(llama._model.model)
        if n_swa > 0 and keep > 0 and L.llama_memory_seq_pos_min(mem, 0) > max(0, keep - n_swa):
            # A sliding-window cache (Gemma 3) has already dropped the cells that the kept prefix's
            # last window needs; reusing it would answer from a truncated context (as llama-server).
            L.llama_memory_clear(mem, True)
            self.units, llama.n_tokens = [], 0
            k, keep = 0, 0
        if k < len(self.units):
            if not L.llama_memory_seq_rm(mem, 0, keep, -1):
                L.llama_memory_clear(mem, True)
                k, keep = 0, 0
            self.units = self.units[:k]
            llama.n_tokens = keep
        return k

    def roll_back(self, llama: Any) -> None:
        """Remove what went into the cache after the last unit recorded whole (a failed or stopped prefill)."""
        import llama_cpp as L

        L.llama_memory_seq_rm(L.llama_get_memory(llama._ctx.ctx), 0, self.pos(), -1)
        llama.n_tokens = self.pos()
