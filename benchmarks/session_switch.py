"""Benchmark: what keeping a conversation's KV cache aside costs, and what it saves when switching back.

    .venv/bin/python benchmarks/session_switch.py [--shape small|llava-7b|tiny] [--workdir /tmp/iris-bench]

Conversation A (one image, one question), then B (another image), then a follow-up in A: with snapshots
(the default) and with them switched off (sessions.max_bytes = 0). Each pass runs on its own freshly
loaded engine, so neither inherits the other's KV or embedding cache, and the passes run in both orders.
Then one save and one restore are timed on their own, and one snapshot's size per token of context.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.bench import bench_images, shape_files  # noqa: E402
from app.chat import Conversation, GenParams, Turn  # noqa: E402
from app.engine import LlamaCppEngine  # noqa: E402
from app.engine.mtmd import positions  # noqa: E402
from app.images import prepare_image  # noqa: E402

PARAMS = GenParams(temperature=0.0, max_tokens=16, seed=0, ignore_eos=True, repeat_penalty=1.0)


def one_pass(lm: Path, mm: Path, images: list, keep: bool) -> dict:
    """A, B, back to A on a new engine; A's follow-up figures."""
    eng = LlamaCppEngine()
    eng.load(lm, mm, n_ctx=4096, chat_format="mtmd")
    try:
        eng.sessions.max_bytes = 4 * 1024**3 if keep else 0
        img_a, img_b = images
        conv_a = Conversation(turns=[Turn("user", "Describe this picture.", [img_a])])
        conv_b = Conversation(turns=[Turn("user", "And this one?", [img_b])])
        reply = "".join(eng.stream_reply(conv_a, PARAMS, session="a"))
        "".join(eng.stream_reply(conv_b, PARAMS, session="b"))
        saved = eng.sessions.bytes
        conv_a.turns += [Turn("assistant", reply), Turn("user", "What colours are in it?")]
        follow_up = eng.stream_reply(conv_a, PARAMS, session="a")
        "".join(follow_up)
        st = follow_up.stats
        return {"kept_mb": saved / 1e6, "ttft_s": st.ttft_s, "evaluated": st.prompt_tokens_evaluated,
                "encoded": st.images_encoded, "cached": st.images_cached}
    finally:
        eng.close()


def save_and_restore(lm: Path, mm: Path, images: list, repeats: int = 5) -> tuple[list[float], list[float], float]:
    """Times of one snapshot save and one restore on their own; one snapshot's bytes per context token."""
    eng = LlamaCppEngine()
    eng.load(lm, mm, n_ctx=4096, chat_format="mtmd")
    try:
        conv = Conversation(turns=[Turn("user", "Describe this picture.", [images[0]])])
        "".join(eng.stream_reply(conv, PARAMS, session="a"))
        kv, llama = eng.kv, eng._llama
        saves, restores = [], []
        per_token = 0.0
        for i in range(repeats):
            t = time.perf_counter()
            kv.switch(llama, f"empty{i}")  # saves a; nothing is kept under the new name, so nothing restored
            saves.append(time.perf_counter() - t)
            snap = kv.snapshots._items["a"]
            per_token = len(snap.state) / positions(snap.units)
            kv.conversation = None  # nothing to save on the way back: the next switch only restores
            t = time.perf_counter()
            kv.switch(llama, "a")
            restores.append(time.perf_counter() - t)
        return saves, restores, per_token
    finally:
        eng.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="small", choices=["tiny", "small", "llava-7b"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/iris-bench"))
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    lm, mm = shape_files(a.shape, a.workdir)
    images = [prepare_image(p) for p in bench_images(a.workdir)]
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for order in ((True, False), (False, True)):
        for keep in order:
            runs[keep].append(one_pass(lm, mm, images, keep))
    for keep in (True, False):
        r = runs[keep]
        label = "with snapshots" if keep else "without snapshots"
        firsts = ", ".join(f"{x['ttft_s']:.3f}" for x in r)
        print(f"{a.shape}, {label}: snapshot kept {r[0]['kept_mb']:.1f} MB; A's follow-up: first token "
              f"{firsts} s (each order), {r[0]['evaluated']} tokens evaluated, "
              f"{r[0]['encoded']} image(s) encoded, {r[0]['cached']} from the embedding cache")
    with_s = statistics.median(x["ttft_s"] for x in runs[True])
    without = statistics.median(x["ttft_s"] for x in runs[False])
    print(f"follow-up first token without / with snapshots: {without / with_s:.1f}x")
    saves, restores, per_token = save_and_restore(lm, mm, images)
    print(f"one save {statistics.median(saves) * 1e3:.1f} ms (min {min(saves) * 1e3:.1f}), one restore "
          f"{statistics.median(restores) * 1e3:.1f} ms (min {min(restores) * 1e3:.1f}); one snapshot is "
          f"{per_token / 1e6:.4f} MB per token of context")


if __name__ == "__main__":
    main()
