"""The conversation Iris sends to a model, the sampling settings, and what a reply reports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from app.images import PreparedImage

Role = Literal["user", "assistant"]


@dataclass
class Turn:
    """One message: text plus any images (user turns only carry images)."""

    role: Role
    text: str
    images: list[PreparedImage] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # text before each image: a video frame's timestamp

    def labelled(self) -> list[tuple[str, PreparedImage]]:
        """Each image with its label ('' when it has none)."""
        return [(self.labels[i] if i < len(self.labels) else "", img) for i, img in enumerate(self.images)]

    def media(self, marker: str, sep: str) -> str:
        """Each image's marker (after its label, if it has one) followed by sep, as a prompt places them."""
        return "".join((f"{label} " if label else "") + marker + sep for label, _ in self.labelled())


@dataclass
class Conversation:
    """A system prompt and the turns so far; the last turn is the user's question."""

    system: str = ""
    turns: list[Turn] = field(default_factory=list)


@dataclass(frozen=True)
class GenParams:
    """Sampling settings for one reply."""

    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    ignore_eos: bool = False  # benchmarks only: never end before max_tokens
    stop: tuple[str, ...] = ()  # the caller's stop strings, besides the chat format's own


@dataclass
class ReplyStats:
    """What one reply cost, reported under it in the UI and by `iris ask --stats`."""

    device_lm: str = ""
    device_mmproj: str = ""
    image_encode_s: float = 0.0
    images_encoded: int = 0
    images_cached: int = 0  # taken from the embedding cache instead of the encoder
    prompt_tokens: int = 0
    image_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    ttft_s: float = 0.0
    completion_tokens: int = 0
    decode_tok_s: float = 0.0
    finish_reason: str = ""
    context_size: int = 0
    token_ids: list[int] = field(default_factory=list)  # what was generated, for exact comparisons

    def summary(self) -> str:
        """A one-line human summary."""
        return (
            f"{self.completion_tokens} tokens · {self.decode_tok_s:.1f} tok/s · "
            f"first token {self.ttft_s:.2f} s · image encode {self.image_encode_s:.2f} s "
            f"({self.images_encoded} img) · prompt {self.prompt_tokens} tok "
            f"({self.image_tokens} image, {self.prompt_tokens_evaluated} evaluated) · "
            f"{self.finish_reason} · LM on {self.device_lm}, mmproj on {self.device_mmproj}"
        )


class Reply:
    """One streamed answer: iterate it for the text as it arrives; afterwards it holds the rest.

    text: everything streamed so far; stats: what the reply cost (filled in as it runs, final once the
    iteration ends); notice: what the user should be told about it (e.g. older turns were left out).
    """

    def __init__(self, deltas: Iterator[str], stats: ReplyStats | None = None, notice: str = "",
                 cancel: threading.Event | None = None):
        self._deltas = deltas
        self.stats = stats if stats is not None else ReplyStats()
        self.notice = notice
        self.text = ""
        self._cancel = cancel if cancel is not None else threading.Event()

    def through(self, deltas: Iterator[str], notice: str = "") -> Reply:
        """This reply seen through deltas (a wrapper's generator over it): the same stats and cancel."""
        return Reply(deltas, self.stats, notice or self.notice, cancel=self._cancel)

    def cancel(self) -> None:
        """Ask this reply, and no other, to end soon (safe from any thread; it ends as 'stopped')."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        for delta in self._deltas:
            self.text += delta
            yield delta

    def close(self) -> None:
        """Stop early (the engine finishes its bookkeeping, the service saves what arrived)."""
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()

    @property
    def finish_reason(self) -> str:
        return self.stats.finish_reason


def fit_conversation(conv: Conversation, count: Callable[[Conversation], int], limit: int) -> tuple[Conversation, int]:
    """Drop the oldest turns until the prompt fits limit tokens; return the fitted copy and how many went.

    The system prompt and the question always stay. When the newest image would go with a dropped turn,
    it moves to the first remaining question, so the model still sees the picture being discussed.
    """
    turns = list(conv.turns)
    dropped = 0
    while len(turns) > 1 and count(Conversation(conv.system, turns)) > limit:
        n = 2 if len(turns) > 2 and turns[1].role == "assistant" else 1
        removed, turns = turns[:n], turns[n:]
        dropped += n
        carried = [img for t in removed for img in t.images]
        if carried and not any(t.images for t in turns):
            newest = next(t for t in reversed(removed) if t.images)
            i = next(i for i, t in enumerate(turns) if t.role == "user")
            # A video's frames move with their times.
            labels = [label for label, _ in newest.labelled() + turns[i].labelled()] if newest.labels else []
            turns[i] = Turn("user", turns[i].text, list(newest.images) + turns[i].images, labels)
    return Conversation(conv.system, turns), dropped
