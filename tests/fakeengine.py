"""A stand-in engine for UI tests only: scripted replies at a chosen pace, no model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.chat import Conversation, GenParams, Reply, ReplyStats


@dataclass
class FakeModel:
    n_ctx: int = 4096
    max_images: int = 4
    chat_format: str = "fake"
    device_lm: str = "CPU"
    device_mmproj: str = "CPU"
    image_tokens: int = 16


class FakeEngine:
    """Replies with replies[n] (cycling), one word every delay seconds; records what it was asked."""

    def __init__(self, replies: list[str] | None = None, delay: float = 0.0):
        self.replies = replies or ["A red square."]
        self.delay = delay
        self.model: FakeModel | None = None
        self.asked: list[Conversation] = []
        self._stop = threading.Event()

    def load(self, lm_path: str | Path, mmproj_path: str | Path, **kwargs: object) -> FakeModel:
        self.model = FakeModel()
        return self.model

    def image_cost(self, image: object) -> int:
        return self.model.image_tokens if self.model else 16

    def count_tokens(self, conv: Conversation) -> int:
        return sum(len(t.text.split()) + 16 * len(t.images) for t in conv.turns)

    def stream_reply(self, conv: Conversation, params: GenParams | None = None,
                     session: str | None = None) -> Reply:
        stats = ReplyStats()
        cancel = threading.Event()
        return Reply(self._words(conv, stats, cancel), stats, cancel=cancel)

    def _words(self, conv: Conversation, stats: ReplyStats, cancel: threading.Event) -> Iterator[str]:
        self._stop.clear()
        self.asked.append(conv)
        text = self.replies[(len(self.asked) - 1) % len(self.replies)]
        stats.__dict__.update(device_lm="CPU", device_mmproj="CPU", context_size=4096, ttft_s=0.01,
                              prompt_tokens=self.count_tokens(conv), decode_tok_s=100.0,
                              images_encoded=sum(len(t.images) for t in conv.turns), finish_reason="stop")
        for i, word in enumerate(text.split(" ")):
            if self._stop.is_set() or cancel.is_set():
                stats.finish_reason = "stopped"
                return
            time.sleep(self.delay)
            stats.completion_tokens += 1
            yield word if i == 0 else " " + word

    def stop(self) -> None:
        self._stop.set()

    def unload(self) -> None:
        self.model = None
