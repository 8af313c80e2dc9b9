"""`iris bench`: one 5-turn image conversation on Iris, llama-cpp-python's stock handler and llama-server.

Turn 1 brings an image, turn 3 a second one, the others are short follow-ups; every answer is exactly
--max-tokens long (end-of-sequence suppressed) so the engines do the same work. Each engine runs in its
own process, one after the other, so timings and peak memory are its own. Prints a table (or JSON);
asserts nothing.

llama-server is optional: build it once, outside the repository, from the llama.cpp copy inside the
llama-cpp-python 0.3.36 sdist, and pass its path with --server (or IRIS_LLAMA_SERVER):

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    cmake -S llama_cpp_python-0.3.36/vendor/llama.cpp -B llama-build -G Ninja -DCMAKE_BUILD_TYPE=Release \\
          -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    cmake --build llama-build --target llama-server          # -> llama-build/bin/llama-server
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

TURNS: list[tuple[str, int | None]] = [
    ("Describe this picture.", 0),
    ("What colours are in it?", None),
    ("Here is another picture. What changed?", 1),
    ("Which one is brighter?", None),
    ("Summarise both in one line.", None),
]
ENGINES = ("iris", "stock", "server")
ROOT = Path(__file__).resolve().parent.parent


def bench_images(folder: Path) -> list[Path]:
    """Two different 640x480 pictures of the same size (identity must come from content)."""
    from PIL import Image, ImageDraw

    out = []
    for i, (bg, fg) in enumerate((((40, 90, 160), (240, 200, 40)), ((200, 60, 50), (30, 160, 90)))):
        p = folder / f"bench-{i}.png"
        if not p.exists():
            im = Image.new("RGB", (640, 480), bg)
            d = ImageDraw.Draw(im)
            for k in range(12):
                x, y = (k * 97 + i * 41) % 560, (k * 53 + i * 29) % 400
                (d.ellipse if (k + i) % 2 else d.rectangle)((x, y, x + 60 + k * 3, y + 50 + k * 2), fill=fg)
            im.save(p)
        out.append(p)
    return out


def shape_files(shape: str, folder: Path, quant: str | None = None) -> tuple[Path, Path]:
    """The test-model writer's pair for a shape (its LM in another quantization if given), written once."""
    # "-2": written by the writer whose bench shapes speak (issue 22); older pairs in the folder are not reused.
    label = (f"{shape}-{quant}" if quant else shape) + "-2"
    lm, mm = folder / label / f"bench-{label}.gguf", folder / label / f"bench-{label}-mmproj.gguf"
    if lm.exists() and mm.exists():
        return lm, mm
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from modelwriter import PRESETS, write_pair
    except ImportError as exc:
        raise SystemExit(f"iris bench: writing the {shape} test models needs the test extras "
                         f"(pip install -e '.[test]'): {exc}") from None
    print(f"writing the {label} test pair into {lm.parent} (once) …", file=sys.stderr, flush=True)
    preset = PRESETS[shape] if not quant else replace(PRESETS[shape], quant=quant)
    return write_pair(lm.parent, preset, f"bench-{label}")


def kv_bytes(lm: Path, n_ctx: int) -> int:
    """f16 K+V cache for n_ctx tokens, from the LM's header."""
    from app.ggufinfo import read_gguf

    info = read_gguf(lm)
    arch = info.get("general.architecture")
    n_layer = info.get(f"{arch}.block_count")
    n_embd = info.get(f"{arch}.embedding_length")
    heads = info.get(f"{arch}.attention.head_count")
    kv_heads = info.get(f"{arch}.attention.head_count_kv") or heads
    return 2 * n_layer * n_ctx * (n_embd // heads * kv_heads) * 2


def _data_uri(p: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


# -- workers (each in its own process) ----------------------------------------------------------------

def run_turns(eng: Any, images: list[Path], max_tokens: int) -> list[dict]:
    """TURNS on a loaded engine (any Engine: in-process, the model process, a server); one record a turn."""
    from app.chat import Conversation, GenParams, Turn
    from app.images import prepare_image

    # Plain greedy, as the other engines run it (no repeat penalty): the same tokens, the same work.
    params = GenParams(temperature=0.0, max_tokens=max_tokens, seed=0, ignore_eos=True, repeat_penalty=1.0)
    conv = Conversation()
    rows = []
    for q, img in TURNS:
        conv.turns.append(Turn("user", q, [prepare_image(images[img])] if img is not None else []))
        t0 = time.perf_counter()
        reply = eng.stream_reply(conv, params, session="bench")
        t_first = None
        text = ""
        for delta in reply:  # the first (empty) delta comes at the first generated token
            t_first = t_first or time.perf_counter()
            text += delta
        st = reply.stats
        rows.append({"ttft_s": (t_first or time.perf_counter()) - t0, "encode_s": st.image_encode_s,
                     "prompt_tokens_evaluated": st.prompt_tokens_evaluated, "decode_tok_s": st.decode_tok_s,
                     "tokens": st.completion_tokens, "text": text})
        conv.turns.append(Turn("assistant", text))
    return rows


def work_iris(lm: Path, mm: Path, images: list[Path], n_ctx: int, max_tokens: int, threads: int | None) -> list[dict]:
    from app.engine import LlamaCppEngine

    eng = LlamaCppEngine()
    t0 = time.perf_counter()
    # The GGUF's own chat template, as the stock handler and llama-server use: the same prompt for all three.
    eng.load(lm, mm, n_ctx=n_ctx, n_threads=threads, chat_format="mtmd")
    load_s = time.perf_counter() - t0
    rows = run_turns(eng, images, max_tokens)
    rows[0]["load_s"] = load_s
    split = _rss_split()  # measured with the model still loaded
    eng.close()
    rows[-1].update({"rss_" + k.lower(): v for k, v in split.items()})
    return rows


def _messages(images: list[Path]) -> list[tuple[dict, int | None]]:
    out = []
    for q, img in TURNS:
        content: list[dict] = []
        if img is not None:
            content.append({"type": "image_url", "image_url": {"url": _data_uri(images[img])}})
        content.append({"type": "text", "text": q})
        out.append(({"role": "user", "content": content}, img))
    return out


def work_stock(lm: Path, mm: Path, images: list[Path], n_ctx: int, max_tokens: int, threads: int | None) -> list[dict]:
    from app.engine.baseline import StockHandlerBaseline

    t0 = time.perf_counter()
    base = StockHandlerBaseline(lm, mm, n_ctx, threads)
    load_s = time.perf_counter() - t0
    history: list[dict] = []
    rows = []
    for msg, _ in _messages(images):
        history.append(msg)
        text, row = base.turn(history, max_tokens)
        rows.append({**row, "text": text})
        history.append({"role": "assistant", "content": text})
    base.close()
    rows[0]["load_s"] = load_s
    return rows


def work_server(server: Path, lm: Path, mm: Path, images: list[Path], n_ctx: int, max_tokens: int,
                threads: int | None) -> tuple[list[dict], int]:
    from app.machine import physical_cores
    from app.webguard import free_port

    port = free_port("127.0.0.1", 8300)
    log_path = Path(tempfile.mkdtemp(prefix="iris-bench-server-")) / "server.log"
    t = str(threads or physical_cores())
    cmd = [str(server), "-m", str(lm), "--mmproj", str(mm), "--host", "127.0.0.1", "--port", str(port),
           "-c", str(n_ctx), "-np", "1", "-t", t, "-tb", t, "-b", "512", "-ub", "512", "--no-webui"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    t_start = time.perf_counter()
    try:
        deadline = time.time() + 600
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("llama-server did not start:\n" + log_path.read_text()[-2000:]) from None
                time.sleep(0.05)
        load_s = time.perf_counter() - t_start  # process start, model load and warm-up
        history: list[dict] = []
        rows = []
        for msg, _ in _messages(images):
            history.append(msg)
            seen = len(log_path.read_text(errors="replace"))
            body = json.dumps({"messages": history, "stream": True, "max_tokens": max_tokens, "temperature": 0,
                               "seed": 0, "ignore_eos": True, "cache_prompt": True,
                               "timings_per_token": True}).encode()
            req = urllib.request.Request(base + "/v1/chat/completions", body, {"Content-Type": "application/json"})
            t0 = time.perf_counter()
            t_first = None
            text = ""
            timings: dict[str, Any] = {}
            with urllib.request.urlopen(req, timeout=3600) as r:
                for raw in r:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    timings = chunk.get("timings") or timings
                    for ch in chunk.get("choices", []):
                        # The server sends a chunk for its first generated token whatever its text (the
                        # role delta); later chunks only when there is text to send.
                        t_first = t_first or time.perf_counter()
                        text += (ch.get("delta") or {}).get("content") or ""
            new_log = log_path.read_text(errors="replace")[seen:]
            # llama-server 0.3.36's log has no image-encode time at any verbosity (mtmd's helper logs are
            # not routed to it): None, shown as "not reported", rather than a made-up 0.
            found = re.findall(r"slice encoded in (\d+) ms", new_log)
            encode_s = sum(int(m) for m in found) / 1000 if found else None
            n = int(timings.get("predicted_n", 0))
            ms = float(timings.get("predicted_ms", 0.0))
            # predicted_ms runs from the first token to the last: n - 1 intervals, as the other engines count.
            rows.append({"ttft_s": (t_first or time.perf_counter()) - t0, "encode_s": encode_s,
                         "prompt_tokens_evaluated": int(timings.get("prompt_n", -1)),
                         "decode_tok_s": (n - 1) / (ms / 1000) if n > 1 and ms > 0 else 0.0,
                         "server_prompt_s": float(timings.get("prompt_ms", 0.0)) / 1000,
                         "tokens": n, "text": text})
            history.append({"role": "assistant", "content": text})
        rows[0]["load_s"] = load_s
        status = Path(f"/proc/{proc.pid}/status")
        rss = 0
        if status.exists():
            m = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            rss = int(m.group(1)) * 1024 if m else 0
        return rows, rss
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def worker_main(a: argparse.Namespace) -> None:
    images = [Path(p) for p in a.images]
    lm, mm = Path(a.lm), Path(a.mmproj)
    if a.worker == "server":
        rows, rss = work_server(Path(a.server), lm, mm, images, a.n_ctx, a.max_tokens, a.threads)
    else:
        fn = work_iris if a.worker == "iris" else work_stock
        rows = fn(lm, mm, images, a.n_ctx, a.max_tokens, a.threads)
        rss = _peak_rss()
    print("IRIS-BENCH " + json.dumps({"rows": rows, "peak_rss": rss, **_rss_split()}), flush=True)


def _rss_split() -> dict:
    """Resident memory now, anonymous (really used) vs file-backed (mapped model pages the OS can drop)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return {}
    text = status.read_text()
    return {k: int(m.group(1)) * 1024 for k in ("RssAnon", "RssFile")
            if (m := re.search(rf"{k}:\s+(\d+) kB", text))}


# -- driver -------------------------------------------------------------------------------------------

def _failure(eng: str, out: subprocess.CompletedProcess) -> str:
    """What a failed engine run says: its exit signal or status and the last lines it logged."""
    import signal

    rc = out.returncode
    how = f"exit status {rc}" if rc else "no result line"
    if rc < 0:
        try:
            how = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            how = f"killed by signal {-rc}"
    tail = "\n".join((out.stderr or "").strip().splitlines()[-15:])
    return f"iris bench: the {eng} run failed ({how}); its last log lines:\n{tail}"


def run(shapes: list[str], engines: list[str], server: Path | None, n_ctx: int, max_tokens: int,
        threads: int | None, workdir: Path, quant: str | None = None,
        rounds: int = 3) -> tuple[list[dict], list[dict]]:
    """Every engine on every shape, each run in its own process, engines interleaved round by round.

    Returns per-turn records (with their round) and per-run memory records.
    """
    images = bench_images(workdir)
    records: list[dict] = []
    memory: list[dict] = []
    if "server" in engines and (server is None or not server.exists()):
        print("iris bench: llama-server column skipped: no --server binary (see `iris bench --help` for "
              "how to build it from the llama-cpp-python 0.3.36 sdist)", file=sys.stderr)
        engines = [e for e in engines if e != "server"]
    for base in shapes:
        lm, mm = shape_files(base, workdir, quant)
        shape = f"{base}-{quant}" if quant else base
        for rnd in range(1, rounds + 1):
            # Each round starts with another engine, so no engine always runs on a cold page cache.
            order = engines[(rnd - 1) % len(engines):] + engines[:(rnd - 1) % len(engines)]
            for eng in order:
                cmd = [sys.executable, "-m", "app.bench", "--worker", eng, "--lm", str(lm), "--mmproj", str(mm),
                       "--n-ctx", str(n_ctx), "--max-tokens", str(max_tokens), "--images", *map(str, images)]
                if threads:
                    cmd += ["--threads", str(threads)]
                if eng == "server":
                    cmd += ["--server", str(server)]
                print(f"round {rnd}/{rounds}: {eng} on the {shape} shape …", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("IRIS-BENCH ")), None)
                if out.returncode != 0 or line is None:
                    raise SystemExit(_failure(eng, out))
                res = json.loads(line[len("IRIS-BENCH "):])
                for i, row in enumerate(res["rows"], 1):
                    records.append({"engine": eng, "shape": shape, "round": rnd, "turn": i, **row})
                files = lm.stat().st_size + mm.stat().st_size
                memory.append({"engine": eng, "shape": shape, "round": rnd, "peak_rss": res["peak_rss"],
                               "files": files, "kv_cache": kv_bytes(lm, n_ctx), "wall_s": time.perf_counter() - t0,
                               "load_s": res["rows"][0].get("load_s")})
    return records, memory


def _spread(values: list[float | None], fmt: str = "{:.2f}") -> str:
    """Median (min–max) of a few runs; "not reported" where the engine does not say."""
    import statistics

    known = [v for v in values if v is not None]
    if len(known) < len(values):
        return "not reported"
    if not known:
        return "-"
    med = fmt.format(statistics.median(known))
    return med if len(known) == 1 else f"{med} ({fmt.format(min(known))}–{fmt.format(max(known))})"


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else 0.0


def table(records: list[dict], memory: list[dict]) -> str:
    """Per-turn medians (min–max over rounds), the ratios the targets are set on, and memory."""
    lines = []
    by: dict[tuple, list[dict]] = {}
    for r in records:
        by.setdefault((r["engine"], r["shape"], r["turn"]), []).append(r)
    rounds = max((r.get("round", 1) for r in records), default=1)
    for shape in dict.fromkeys(r["shape"] for r in records):
        lines.append(f"\n## {shape} ({rounds} round{'s' if rounds != 1 else ''}, engines interleaved; "
                     "median (min–max))\n")
        lines.append("| turn | engine | TTFT s | image encode s | prompt tok evaluated | decode tok/s | tokens |")
        lines.append("|---|---|---|---|---|---|---|")
        for turn in range(1, len(TURNS) + 1):
            for eng in ENGINES:
                rs = by.get((eng, shape, turn))
                if rs:
                    lines.append(f"| {turn} | {eng} | {_spread([r['ttft_s'] for r in rs])} | "
                                 f"{_spread([r['encode_s'] for r in rs])} | {rs[0]['prompt_tokens_evaluated']} | "
                                 f"{_spread([r['decode_tok_s'] for r in rs])} | {rs[0].get('tokens', '-')} |")
        lines.append("")
        lines.append("| turn | stock TTFT / Iris TTFT | Iris TTFT / server TTFT | Iris decode / server decode "
                     "| replies: Iris = server |")
        lines.append("|---|---|---|---|---|")
        for turn in range(1, len(TURNS) + 1):
            i, s, v = (by.get((e, shape, turn)) for e in ENGINES)
            if not i:
                continue
            ti = _median([r["ttft_s"] for r in i])
            a = f"{_median([r['ttft_s'] for r in s]) / ti:.1f}x" if s and ti else "-"
            b = f"{ti / _median([r['ttft_s'] for r in v]):.2f}" if v else "-"
            dv = _median([r["decode_tok_s"] for r in v]) if v else 0.0
            c = f"{_median([r['decode_tok_s'] for r in i]) / dv:.2f}" if dv else "-"
            same = ("yes" if i[0].get("text") == v[0].get("text") else "no") if v else "-"
            lines.append(f"| {turn} | {a} | {b} | {c} | {same} |")
        sample = by.get(("iris", shape, 2)) or by.get((ENGINES[0], shape, 2))
        if sample and sample[0].get("text") is not None:
            lines.append(f"\nIris's reply to turn 2: {sample[0]['text'][:80]!r}")
    if memory:
        lines.append("\n| shape | engine | peak RSS GB | files GB | KV cache GB | RSS / (files + KV) | load s "
                     "| wall s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        mem: dict[tuple, list[dict]] = {}
        for m in memory:
            mem.setdefault((m["shape"], m["engine"]), []).append(m)
        for (shape, eng), ms in mem.items():
            ratio = [m["peak_rss"] / (m["files"] + m["kv_cache"]) for m in ms]
            lines.append(f"| {shape} | {eng} | {_spread([m['peak_rss'] / 1e9 for m in ms])} | "
                         f"{ms[0]['files'] / 1e9:.2f} | {ms[0]['kv_cache'] / 1e9:.2f} | {_spread(ratio)} | "
                         f"{_spread([m.get('load_s') for m in ms])} | {_spread([m['wall_s'] for m in ms], '{:.0f}')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="iris bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", action="append", choices=["tiny", "small", "llava-7b"],
                    help="default: small and llava-7b (tiny: a quick check)")
    ap.add_argument("--engine", action="append", choices=list(ENGINES), help="default: all three")
    ap.add_argument("--server", type=Path, default=os.environ.get("IRIS_LLAMA_SERVER"))
    ap.add_argument("--quant", choices=["f32", "f16", "q4_0", "q8_0", "q4_k_m"], default=None,
                    help="the LM's weights (default: the shape's own, Q4_0 for small and llava-7b)")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each engine, interleaved (default 3)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "iris-bench")
    ap.add_argument("--json", action="store_true", help="print the per-turn records as JSON")
    ap.add_argument("--save", type=Path, default=None, help="also write records and memory figures to this JSON file")
    # Internal: one engine's run in its own process.
    ap.add_argument("--worker", choices=list(ENGINES), help=argparse.SUPPRESS)
    ap.add_argument("--lm", help=argparse.SUPPRESS)
    ap.add_argument("--mmproj", help=argparse.SUPPRESS)
    ap.add_argument("--images", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker_main(a)
        return 0
    a.workdir.mkdir(parents=True, exist_ok=True)
    records, memory = run(a.shape or ["small", "llava-7b"], a.engine or list(ENGINES), a.server, a.n_ctx,
                          a.max_tokens, a.threads, a.workdir, a.quant, max(1, a.rounds))
    if a.save:
        a.save.write_text(json.dumps({"records": records, "memory": memory}, indent=1))
    if a.json:
        print(json.dumps(records, indent=1))
    else:
        print(table(records, memory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
