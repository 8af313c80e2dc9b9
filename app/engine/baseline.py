"""llama-cpp-python's own multimodal chat path, as shipped: what `iris bench` compares Iris with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.engine.llama import LlamaCppEngine, extra_buffers
from app.engine.logsink import _SINK
from app.llamalib import model_params_guard
from app.machine import physical_cores


class StockHandlerBaseline:
    """llama-cpp-python's own multimodal chat path, as shipped (MTMDChatHandler): the `iris bench` baseline."""

    def __init__(self, lm_path: Path, mmproj_path: Path, n_ctx: int, n_threads: int | None = None):
        eng = LlamaCppEngine()
        llama_cpp = eng._import()
        from llama_cpp.llama_chat_format import MTMDChatHandler

        handler = MTMDChatHandler(clip_model_path=str(mmproj_path), verbose=False)
        threads = n_threads or physical_cores()
        with model_params_guard(extra_buffers()):  # the same AMX guard as Iris's own loads
            self.llama = llama_cpp.Llama(model_path=str(lm_path), n_ctx=n_ctx, n_batch=min(n_ctx, 512),
                                         n_ubatch=min(n_ctx, 512), n_threads=threads, n_threads_batch=threads,
                                         chat_handler=handler, verbose=False)
        eng._route_logs()

    def turn(self, messages: list[dict], max_tokens: int) -> tuple[str, dict]:
        """One streamed reply with EOS suppressed; returns the text and its timings."""
        import llama_cpp as L

        eos = self.llama.token_eos()
        _SINK.encode_ms = 0
        calls: list[float] = []

        def clock(_ids: Any, scores: Any) -> Any:
            # Called once per sampled token: the first call marks the end of prompt processing. (The
            # stream itself holds text back for UTF-8 and stop strings, so its chunks arrive late.)
            # EOS is suppressed here too: 0.3.36 drops both processors when logit_bias is also given
            # (`logits_processor = logits_processor.extend(...)` assigns None).
            calls.append(time.perf_counter())
            scores[eos] = -float("inf")
            return scores

        t0 = time.perf_counter()
        text = ""
        for chunk in self.llama.create_chat_completion(
                messages=messages, stream=True, max_tokens=max_tokens, temperature=0.0, seed=0,
                logits_processor=L.LogitsProcessorList([clock])):
            text += chunk["choices"][0].get("delta", {}).get("content") or ""
        n_out = len(calls)
        evaluated = max(self.llama.n_tokens - n_out, 0)
        ttft = (calls[0] if calls else time.perf_counter()) - t0
        decode = (n_out - 1) / (calls[-1] - calls[0]) if n_out > 1 and calls[-1] > calls[0] else 0.0
        return text, {"ttft_s": ttft, "encode_s": _SINK.encode_ms / 1000, "prompt_tokens_evaluated": evaluated,
                      "decode_tok_s": decode, "tokens": n_out}

    def close(self) -> None:
        self.llama.close()


__all__ = ["StockHandlerBaseline"]
