"""Benchmark: a generated 60-second 1080p clip at the default video settings (1 frame a second, at most 8) on
a bench shape: sampling time, frame encode time, first token, and peak memory of this process.

    .venv/bin/python benchmarks/video.py [--shape small|llava-7b] [--workdir /tmp/iris-bench] [--seconds 60]

The clip (a red square crossing grey, H.264, 30 fps) is written once into the workdir. Sampling and the
reply each run in a fresh process state: peak RSS is read before the model loads (sampling alone) and at
the end (sampling, model and reply). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app.bench import shape_files  # noqa: E402
from app.chat import Conversation, GenParams, Turn  # noqa: E402
from app.services import frame_labels  # noqa: E402
from app.video import DEFAULT_FPS, DEFAULT_MAX_FRAMES, sample  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="small")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/iris-bench"))
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    clip = a.workdir / f"clip-{a.seconds}s-1080p.mp4"
    if not clip.exists():
        from videos import moving_square

        a.workdir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        moving_square(clip, seconds=a.seconds, fps=30, size=(1920, 1080), gop=60)
        print(f"wrote {clip} ({clip.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    base = peak_mb()
    t = time.perf_counter()
    sampled = sample(clip, fps=DEFAULT_FPS, max_frames=DEFAULT_MAX_FRAMES)
    sample_s = time.perf_counter() - t
    after_sampling = peak_mb()
    print(f"sampled {len(sampled.frames)} frames at {sampled.times} from {sampled.width}x{sampled.height}, "
          f"{sampled.duration:.1f} s: {sample_s:.2f} s; peak RSS {base:.0f} MB before, {after_sampling:.0f} MB after")
    from app.engine import LlamaCppEngine

    lm, mm = shape_files(a.shape, a.workdir)
    engine = LlamaCppEngine()
    engine.load(lm, mm, n_ctx=4096)
    conv = Conversation(turns=[Turn("user", "What happens in this video?", list(sampled.frames),
                                    frame_labels(sampled.times))])
    reply = engine.stream_reply(conv, GenParams(temperature=0.0, max_tokens=16, seed=0))
    "".join(reply)
    s = reply.stats
    print(f"{a.shape}: {s.images_encoded} frames encoded in {s.image_encode_s:.2f} s ({s.image_tokens} image tokens "
          f"of {s.prompt_tokens}); first token {s.ttft_s:.2f} s; peak RSS {peak_mb():.0f} MB with the model")
    engine.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
