"""The long fuzz run over hostile model files: prints how many were refused, answered, crashed.

    .venv/bin/python benchmarks/fuzz_models.py --cases 2000 [--seed N] [--no-children]

Bases: the tiny LLaVA-1.5 pair and every catalog family's test pair (tests/families.py). Each case
mutates one file (tests/fuzzgguf.py), runs Iris's header checks on the pair, and loads and asks
whatever they accept in a child process. Exit status 1 if any case crashed, hung or raised a traceback.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from PIL import Image  # noqa: E402

from families import FAMILIES, write_family_pair  # noqa: E402
from fuzzgguf import check, mutate, run_child  # noqa: E402
from modelwriter import Shape, write_pair  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-children", action="store_true", help="header checks only (no load)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iris-fuzz-") as tmp:
        d = Path(tmp)
        bases = [write_pair(d / "tiny", Shape(), "tiny")] + [write_family_pair(d / f, f) for f in sorted(FAMILIES)]
        img = d / "red.png"
        Image.new("RGB", (64, 48), (220, 30, 30)).save(img)
        rng = random.Random(args.seed)
        counts: collections.Counter[str] = collections.Counter()
        bad = []
        t0 = time.perf_counter()
        for i in range(args.cases):
            lm, mm = rng.choice(bases)
            side = rng.choice(["lm", "mm"])
            out = d / f"case-{i}.gguf"
            try:
                what = f"{(lm if side == 'lm' else mm).name}: " + mutate(lm if side == "lm" else mm, out, rng)
            except Exception:  # noqa: BLE001 - gguf-py cannot write this mutation; not a case
                counts["not written"] += 1
                continue
            pair = (out, mm) if side == "lm" else (lm, out)
            v = check(*pair)
            outcome = v["outcome"]
            if outcome == "refused" and not v["one_line"]:
                outcome = "refusal not one line"
            if outcome == "accepted" and not args.no_children:
                r = run_child(*pair, img)
                outcome = {"answered": "answered", "refused": "refused by llama.cpp"}.get(r["outcome"], r["outcome"])
                v = r
            counts[outcome] += 1
            if outcome in ("traceback", "crash", "hang", "refusal not one line"):
                bad.append((what, v))
            out.unlink(missing_ok=True)
        elapsed = time.perf_counter() - t0
    print(f"{args.cases} cases, seed {args.seed}, {elapsed:.0f} s")
    for k in ("refused", "answered", "refused by llama.cpp", "accepted", "traceback", "crash", "hang",
              "refusal not one line", "not written"):
        print(f"  {k:22s} {counts.get(k, 0)}")
    for what, v in bad[:20]:
        print(f"  ! {what}: {str(v)[:200]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
