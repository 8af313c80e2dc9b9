"""Benchmark: the model in its own process (WorkerEngine) against the model in this one (LlamaCppEngine).

    .venv/bin/python benchmarks/worker_overhead.py [--shape small] [--rounds 3] [--max-tokens 64]

Runs `iris bench`'s five turns (two pictures, three follow-ups) on the test-model writer's pair for the
shape, the two engines interleaved over the rounds. TTFT is measured the same way for both, in this
process: from asking to the first token (for the worker: the first streamed token event, the HTTP
hop included). Decode is tokens/s after the first. Then kills the worker with SIGKILL and times its
restart to ready (process up and the model loaded again). Prints medians with min-max; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(engine, lm: Path, mm: Path, images: list[Path], max_tokens: int) -> list[tuple[float, float, int]]:
    from app.bench import run_turns

    engine.load(lm, mm, n_ctx=4096, chat_format="mtmd")
    rows = run_turns(engine, images, max_tokens)
    return [(r["ttft_s"], r["decode_tok_s"], r["prompt_tokens_evaluated"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="small", choices=["tiny", "small", "llava-7b"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "iris-bench")
    args = ap.parse_args()
    os.environ.setdefault("IRIS_HOME", tempfile.mkdtemp(prefix="iris-bench-home-"))

    from app.bench import bench_images, shape_files
    from app.engine import LlamaCppEngine
    from app.worker import WorkerEngine

    lm, mm = shape_files(args.shape, args.workdir)
    images = bench_images(args.workdir)
    results: dict[str, list[list[tuple[float, float, int]]]] = {"in-process": [], "worker": []}
    worker = WorkerEngine()
    worker.measure_here = True  # time it from here, the HTTP hop included, as in-process is timed here
    local = LlamaCppEngine()  # one engine each for all rounds: both keep their embedding caches alike
    for r in range(args.rounds):
        for name in (("in-process", "worker") if r % 2 == 0 else ("worker", "in-process")):
            engine = local if name == "in-process" else worker
            results[name].append(run(engine, lm, mm, images, args.max_tokens))
            engine.unload()
    print(f"## {args.shape}: {args.rounds} rounds, engines interleaved, {args.max_tokens} tokens a turn\n")
    print("| turn | evaluated | TTFT s in-process | TTFT s worker | worker/in-process | decode in-process | "
          "decode worker | worker/in-process |")
    print("|---|---|---|---|---|---|---|---|")

    def fmt(xs: list[float], f: str) -> str:
        return f"{statistics.median(xs):{f}} ({min(xs):{f}}–{max(xs):{f}})"

    for t in range(len(results["worker"][0])):
        a = [run_[t] for run_ in results["in-process"]]
        b = [run_[t] for run_ in results["worker"]]
        ta, tb = [x[0] for x in a], [x[0] for x in b]
        da, db = [x[1] for x in a], [x[1] for x in b]
        print(f"| {t + 1} | {a[0][2]} | {fmt(ta, '.3f')} | {fmt(tb, '.3f')} | "
              f"{statistics.median(tb) / statistics.median(ta):.3f} | {fmt(da, '.1f')} | {fmt(db, '.1f')} | "
              f"{statistics.median(db) / statistics.median(da):.3f} |")

    worker.load(lm, mm, n_ctx=4096, chat_format="mtmd")
    restarts = []
    for _ in range(3):
        before = worker.restarts
        os.kill(worker.pid, signal.SIGKILL)
        t0 = time.perf_counter()
        try:
            "".join(worker.stream_reply(_one_turn(images), None))
        except Exception:  # noqa: BLE001 - EngineCrashed: the restart begins
            pass
        while worker.restarts == before:
            time.sleep(0.01)
        restarts.append((time.perf_counter() - t0, worker.restart_s))
    worker.close()
    print(f"\nrestart after SIGKILL to ready (process up, model loaded again): median "
          f"{statistics.median(r[1] for r in restarts):.2f} s (from the kill, detection included: "
          f"{statistics.median(r[0] for r in restarts):.2f} s), 3 kills")


def _one_turn(images: list[Path]):
    from app.chat import Conversation, Turn

    return Conversation(turns=[Turn("user", "hello")])


if __name__ == "__main__":
    main()
