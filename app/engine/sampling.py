"""Sampling: the token loop after prefill: exact max_tokens, stop strings, a stop flag checked every token."""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterator
from typing import Any

from app.chat import GenParams, ReplyStats


def end_tokens(llama: Any) -> list[int]:
    """The vocabulary's end-of-generation tokens (one pass over it: computed once per model)."""
    import llama_cpp as L

    vocab = llama._model.vocab
    return [t for t in range(llama.n_vocab()) if L.llama_vocab_is_eog(vocab, t)]


def sample(llama: Any, prompt: list[int], params: GenParams, stats: ReplyStats, t_start: float,
           stop: Any, stops: list[str], eog: list[int]) -> Iterator[str]:
    """Generate after prompt (already evaluated), yielding text deltas; stats are final when it ends.

    Ends at an end-of-generation token, a stop string (not yielded), max_tokens, the context's end, or
    when stop (anything with is_set(), checked every token) is set.
    """
    # Our own loop over Llama.generate rather than create_completion: exact max_tokens,
    # one check of the stop flag per token, and an incremental UTF-8 decoder. (The stock
    # stream re-decodes all held-back bytes on each token when a stop string is set, which
    # turns a run of invalid UTF-8 into seconds of quadratic work.)
    import llama_cpp as L

    room = llama.n_ctx() - llama.n_tokens - 1
    max_tokens = max(1, min(params.max_tokens, room))
    llama.set_seed(params.seed if params.seed is not None else L.LLAMA_DEFAULT_SEED)
    vocab = llama._model.vocab
    processors = None
    if params.ignore_eos:
        # Benchmarks: every reply runs to max_tokens, so lengths match across engines.
        def no_eos(_ids: Any, scores: Any) -> Any:
            scores[eog] = -float("inf")
            return scores

        processors = L.LogitsProcessorList([no_eos])
    gen = llama.generate(prompt, top_k=params.top_k, top_p=params.top_p, min_p=0.05,
                         temp=params.temperature, repeat_penalty=params.repeat_penalty,
                         logits_processor=processors)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    started = False
    t_first = t_last = None
    n_out = 0
    finish = "length"
    try:
        for tok in gen:
            now = time.perf_counter()
            if t_first is None:
                t_first = now
                stats.ttft_s = now - t_start
                # An empty delta at the first token: its text may be held back (a possible stop string, a
                # split UTF-8 sequence), but a stream (the API's) can start now, so its TTFT is the engine's.
                yield ""
            if stop.is_set():
                finish = "stopped"
                break
            if L.llama_vocab_is_eog(vocab, tok):
                finish = "end"
                break
            n_out += 1
            stats.token_ids.append(int(tok))
            t_last = now
            pending += decoder.decode(llama._model.detokenize([tok]))
            if not started:
                pending = pending.lstrip()
                started = bool(pending)
            hit = min((pending.find(x) for x in stops if x in pending), default=-1)
            if hit >= 0:
                if pending[:hit]:
                    yield pending[:hit]
                pending, finish = "", "end"
                break
            keep = _held_back(pending, stops)
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep:]
            if n_out >= max_tokens:
                break
        pending += decoder.decode(b"", final=True)
        if pending:  # a held-back start of a stop string that never completed
            yield pending
    finally:
        gen.close()
        stats.completion_tokens = n_out
        if t_first is None:
            stats.ttft_s = time.perf_counter() - t_start
        if n_out > 1 and t_first is not None and t_last is not None and t_last > t_first:
            stats.decode_tok_s = (n_out - 1) / (t_last - t_first)
        stats.finish_reason = finish


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop string (held until known)."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                best = max(best, n)
                break
    return best
