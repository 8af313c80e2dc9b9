"""The prompt as libmtmd splits it: text token ids and image chunks, freed when the `with` block ends."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, NamedTuple

from app.errors import ContextTooLong, UnsupportedImage


class ImageUnit(NamedTuple):
    """One image chunk in the prompt: its id (image hash and tile), the cells it takes, the positions it spans."""

    id: str
    n_tokens: int
    n_pos: int


Unit = int | ImageUnit  # a text token id, or an image chunk


def cells(units: Sequence[Unit]) -> int:
    """KV cells the units take."""
    return sum(u.n_tokens if isinstance(u, ImageUnit) else 1 for u in units)


def positions(units: Sequence[Unit]) -> int:
    """Positions the units span (an M-RoPE image spans fewer than its cells)."""
    return sum(u.n_pos if isinstance(u, ImageUnit) else 1 for u in units)


class MtmdPrompt:
    """mtmd_tokenize of text with images: .units, and .chunk_at (unit index -> mtmd chunk) while open."""

    def __init__(self, mctx: Any, text: str, images: Sequence[Any]):
        from llama_cpp import mtmd_cpp as M

        self._M = M
        self.units: list[Unit] = []
        self.chunk_at: dict[int, Any] = {}
        self._bitmaps: list[Any] = []
        self._chunks: Any = None
        try:
            self._tokenize(mctx, text, images)
        except BaseException:
            self.close()
            raise

    def _tokenize(self, mctx: Any, text: str, images: Sequence[Any]) -> None:
        M = self._M
        for img in images:
            buf = (ctypes.c_uint8 * len(img.png)).from_buffer_copy(img.png)
            bm = M.mtmd_helper_bitmap_init_from_buf(mctx, buf, len(img.png), False)
            if bm is None:
                raise UnsupportedImage(f"{img.name}: the vision encoder could not decode this image.")
            # Identity comes from content, never from size: two same-sized images must differ.
            M.mtmd_bitmap_set_id(bm, img.sha256.encode())
            self._bitmaps.append(bm)
        self._chunks = M.mtmd_input_chunks_init()
        itext = M.mtmd_input_text()
        raw = text.encode("utf-8")
        itext.text, itext.text_len = raw, len(raw)
        itext.add_special, itext.parse_special = True, True
        arr = (M.mtmd_bitmap_p_ctypes * len(self._bitmaps))(*self._bitmaps)
        rc = M.mtmd_tokenize(mctx, self._chunks, ctypes.byref(itext), arr, len(self._bitmaps))
        if rc == 2:
            sizes = ", ".join(f"{i.width}×{i.height}" for i in images)
            raise UnsupportedImage(f"This model's vision encoder cannot use an image of this shape ({sizes} "
                                   "pixels). Crop it closer to a square, or resize it, and try again.")
        if rc != 0:
            raise ContextTooLong(f"The prompt could not be split into text and images (code {rc}).")
        last_id, run = None, 0
        for i in range(M.mtmd_input_chunks_size(self._chunks)):
            c = M.mtmd_input_chunks_get(self._chunks, i)
            if M.mtmd_input_chunk_get_type(c) == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ptr = M.mtmd_input_chunk_get_tokens_text(c, ctypes.byref(n))
                self.units.extend(ptr[j] for j in range(n.value))
                continue
            cid = (M.mtmd_input_chunk_get_id(c) or b"").decode()
            # Tiled images (LLaVA-1.6, MiniCPM-V, SmolVLM) give one chunk per tile, all with the image's
            # id: the tile's place in the run of that id keeps their embeddings apart.
            run = run + 1 if cid == last_id else 0
            last_id = cid
            self.chunk_at[len(self.units)] = c
            self.units.append(ImageUnit(f"{cid}#{run}", M.mtmd_input_chunk_get_n_tokens(c),
                                        M.mtmd_input_chunk_get_n_pos(c)))

    def close(self) -> None:
        """Free the chunks and bitmaps (chunk_at is no longer valid afterwards)."""
        if self._chunks is not None:
            self._M.mtmd_input_chunks_free(self._chunks)
            self._chunks = None
        for b in self._bitmaps:
            self._M.mtmd_bitmap_free(b)
        self._bitmaps = []
        self.chunk_at = {}

    def __enter__(self) -> MtmdPrompt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MtmdPrompt", "ImageUnit", "Unit", "cells", "positions"]
