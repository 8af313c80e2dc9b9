"""Benchmark: switching conversations with 100 saved conversations of 50 messages each (server side).

    .venv/bin/python benchmarks/history_switch.py [--conversations 100] [--messages 50] [--switches 300]

Times what the UI runs when a conversation is picked in the sidebar (app.ui.conversation_view: read it
from SQLite, build the chat messages, compute the context gauge), plus listing and searching the sidebar.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from PIL import Image  # noqa: E402

WORDS = ("the red square sits left of a small blue circle while a green triangle waits near the top "
         "of the picture and nothing else is there").split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=100)
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--switches", type=int, default=300)
    args = ap.parse_args()

    import os

    home = Path(tempfile.mkdtemp(prefix="iris-bench-"))
    os.environ["IRIS_HOME"] = str(home)
    from app.history import StoredMessage
    from app.images import prepare_image
    from app.services import build_services
    from app.ui import conversation_view
    from fakeengine import FakeEngine

    services = build_services(home / "models", engine=FakeEngine(), with_history=True)
    h = services.history
    rng = random.Random(0)
    t0 = time.perf_counter()
    ids = []
    for c in range(args.conversations):
        cid = h.create()
        ids.append(cid)
        for m in range(args.messages):
            if m % 2 == 0:
                imgs = []
                if m % 10 == 0:  # an image every fifth question
                    im = Image.new("RGB", (336, 336), tuple(rng.randrange(256) for _ in range(3)))
                    imgs = [h.save_image(prepare_image(_png(im), name="x.png"))]
                h.append(cid, StoredMessage("user", " ".join(rng.choices(WORDS, k=12)) + "?", imgs))
            else:
                stats = {"device_lm": "CPU", "ttft_s": 0.4, "decode_tok_s": 11.0, "prompt_tokens": 900 + 40 * m,
                         "completion_tokens": 120, "context_size": 4096, "images_encoded": 1,
                         "image_encode_s": 2.0, "finish_reason": "stop"}
                h.append(cid, StoredMessage("assistant", " ".join(rng.choices(WORDS, k=120)) + ".",
                                            model="llava-1.5-7b-Q4_K", stats=stats))
    build_s = time.perf_counter() - t0
    db = home / "data" / "history.sqlite3"

    times = []
    for _ in range(args.switches):
        cid = rng.choice(ids)
        t = time.perf_counter()
        msgs, _, _, _ = conversation_view(services, cid)
        times.append(time.perf_counter() - t)
        assert len(msgs) >= args.messages
    list_t = []
    for q in ("", "triangle", "nothing matches this"):
        t = time.perf_counter()
        h.list(q)
        list_t.append((q or "(all)", time.perf_counter() - t))

    times.sort()
    print(f"history: {args.conversations} conversations x {args.messages} messages "
          f"({args.conversations * args.messages // 10} images), built in {build_s:.1f} s, "
          f"database {db.stat().st_size / 1e6:.1f} MB")
    print(f"switch (server side, {args.switches} random switches): median {statistics.median(times) * 1e3:.2f} ms, "
          f"p95 {times[int(len(times) * 0.95)] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms")
    for q, t in list_t:
        print(f"sidebar list/search {q!r}: {t * 1e3:.2f} ms")
    h.close()


def _png(im: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


if __name__ == "__main__":
    main()
