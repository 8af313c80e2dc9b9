"""Benchmark: what keeping a conversation's KV cache aside costs, and what it saves when switching back.

    .venv/bin/python benchmarks/session_switch.py [--shape small|llava-7b|tiny] [--workdir /tmp/iris-bench]

Conversation A (one image, one question), then B (another image), then a follow-up in A: with snapshots
(the default) and with them switched off (sessions.max_bytes = 0). Prints the snapshot size, the time to
save and restore it, and A's follow-up time to first token both ways. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.bench import bench_images, shape_files  # noqa: E402
from app.chat import Conversation, GenParams, Turn  # noqa: E402
from app.engine import LlamaCppEngine  # noqa: E402
from app.images import prepare_image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="small", choices=["tiny", "small", "llava-7b"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/iris-bench"))
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    lm, mm = shape_files(a.shape, a.workdir)
    img_a, img_b = (prepare_image(p) for p in bench_images(a.workdir))
    params = GenParams(temperature=0.0, max_tokens=16, seed=0, ignore_eos=True)
    eng = LlamaCppEngine()
    eng.load(lm, mm, n_ctx=4096, chat_format="mtmd")
    for keep in (True, False):
        eng.sessions.clear()
        eng.embeddings.clear()
        eng.sessions.max_bytes = 4 * 1024**3 if keep else 0
        conv_a = Conversation(turns=[Turn("user", "Describe this picture.", [img_a])])
        conv_b = Conversation(turns=[Turn("user", "And this one?", [img_b])])
        reply = "".join(eng.stream_reply(conv_a, params, session=f"a{keep}"))
        t = time.perf_counter()
        "".join(eng.stream_reply(conv_b, params, session=f"b{keep}"))
        b_total = time.perf_counter() - t
        saved = eng.sessions.bytes
        conv_a.turns += [Turn("assistant", reply), Turn("user", "What colours are in it?")]
        follow_up = eng.stream_reply(conv_a, params, session=f"a{keep}")
        "".join(follow_up)
        st = follow_up.stats
        label = "with snapshots" if keep else "without snapshots"
        print(f"{a.shape}, {label}: snapshot kept {saved / 1e6:.1f} MB; switching to B took {b_total:.2f} s "
              f"in all; A's follow-up: first token {st.ttft_s:.2f} s, {st.prompt_tokens_evaluated} tokens "
              f"evaluated, {st.images_encoded} image(s) encoded, {st.images_cached} from the embedding cache")
    # Time one save and one restore on their own.
    eng.sessions.max_bytes = 4 * 1024**3
    t = time.perf_counter()
    eng.kv.switch(eng._llama, "x")  # saves the current conversation
    t_save = time.perf_counter() - t
    t = time.perf_counter()
    eng.kv.switch(eng._llama, "bFalse")  # nothing saved under this key: measures the save of x only
    eng.kv.switch(eng._llama, "x")  # restore
    t_restore = time.perf_counter() - t
    per_token = eng.sessions.bytes / max(1, eng.kv.pos())
    print(f"save {t_save * 1e3:.0f} ms, save+restore {t_restore * 1e3:.0f} ms; "
          f"{per_token / 1e6:.3f} MB per token of context")
    eng.close()


if __name__ == "__main__":
    main()
