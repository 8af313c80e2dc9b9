"""`iris ask` and `iris models` as a user runs them: a real process, a real model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelwriter import Shape, corrupt_copy, write_lm


def iris(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, IRIS_HOME=str(home))
    env.pop("IRIS_RAISE_ERRORS", None)
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_ask_streams_an_answer_and_stats(tiny_pair, images, iris_home):
    r = iris("ask", "--lm", str(tiny_pair[0]), "--mmproj", str(tiny_pair[1]), "--image",
             str(images["red"]), "--stats", "--max-tokens", "8", "--temperature", "0",
             "what is this?", home=iris_home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "image encode" in r.stderr and "(16 image" in r.stderr and "LM on CPU" in r.stderr
    assert "llama_context" not in r.stderr  # llama.cpp's chatter goes to the log, not the terminal


def test_models_lists_installed_pairs(models_dir, iris_home):
    r = iris("--models-dir", str(models_dir), "models", home=iris_home)
    assert r.returncode == 0
    row = next(line for line in r.stdout.splitlines() if line.startswith("tiny-llava "))
    assert "(your own files)" in row and "tiny-llava-mmproj.gguf" in row


def test_catalog_table_names_what_download_takes(iris_home):
    r = iris("models", "--catalog", home=iris_home)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "QUANT", "DOWNLOAD", "MEMORY"]
    assert any(line.startswith("llava-1.5-7b ") and "Q4_K" in line for line in lines)
    assert "[NON-COMMERCIAL]" in next(line for line in lines if line.startswith("qwen2.5-vl-3b"))
    assert "recommended for this machine" in r.stdout


def test_ask_by_model_name(models_dir, iris_home):
    r = iris("ask", "--models-dir", str(models_dir), "--model", "tiny-llava", "--max-tokens", "4",
             "hi", home=iris_home)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case,expected", [
    ("garbage", "is not a GGUF model file"),
    ("truncate", "is truncated"),
    ("empty", "is empty (0 bytes)"),
    ("mismatch", "expects a 64-wide model; the LM (wide.gguf) is 128-wide"),
    ("badimage", "notes.txt is not an image"),
    ("noimage", "missing.png: file not found"),
])
def test_refusals_are_one_line_and_nonzero(tiny_pair, tmp_path, iris_home, case, expected):
    lm, mm = tiny_pair
    extra: list[str] = []
    if case in ("garbage", "truncate", "empty"):
        lm = corrupt_copy(lm, tmp_path / "bad.gguf", case)
    elif case == "mismatch":
        lm = write_lm(tmp_path / "wide.gguf", Shape(n_embd=128))
    elif case == "badimage":
        (tmp_path / "notes.txt").write_text("hi")
        extra = ["--image", str(tmp_path / "notes.txt")]
    else:
        extra = ["--image", str(tmp_path / "missing.png")]
    r = iris("ask", "--lm", str(lm), "--mmproj", str(mm), *extra, "q", home=iris_home)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("iris: ") and expected in lines[0], r.stderr


def test_a_second_start_finds_the_running_iris_and_sigterm_stops_it_cleanly(models_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    env = dict(os.environ, IRIS_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "app", "--models-dir", str(models_dir), "serve", "--no-browser"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = first.stdout.readline()
    while "Iris is running at" not in line:
        assert first.poll() is None, line
        line = first.stdout.readline()
    url = line.split("Iris is running at ")[1].strip()
    urllib.request.urlopen(url, timeout=5).close()
    t0 = time.monotonic()
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and f"already running at {url}" in second.stdout
    assert time.monotonic() - t0 < 30
    first.send_signal(signal.SIGTERM)
    rest = first.communicate(timeout=30)[0]
    assert first.returncode == 0 and "Iris stopped." in rest
    assert not (tmp_path / "home" / "run" / "server.json").exists()


def test_bench_runs_iris_and_the_stock_handler_and_prints_json(tmp_path):
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "app", "bench", "--shape", "tiny", "--engine", "iris", "--engine",
                        "stock", "--engine", "server", "--server", str(tmp_path / "absent"), "--max-tokens", "4",
                        "--workdir", str(tmp_path), "--rounds", "2", "--json"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    assert sorted((x["engine"], x["round"], x["turn"]) for x in records) == sorted(
        (e, r, t) for e in ("iris", "stock") for r in (1, 2) for t in range(1, 6))
    assert set(records[0]) >= {"engine", "shape", "round", "turn", "ttft_s", "encode_s", "prompt_tokens_evaluated",
                               "decode_tok_s", "tokens", "text"}
    iris = {x["turn"]: x for x in records if x["engine"] == "iris" and x["round"] == 1}
    stock = {x["turn"]: x for x in records if x["engine"] == "stock" and x["round"] == 1}
    assert all(x["tokens"] == 4 for x in records)  # end-of-sequence suppressed: the same work everywhere
    # Follow-ups evaluate only the new text on Iris; the stock handler evaluates everything again.
    assert iris[4]["prompt_tokens_evaluated"] < stock[4]["prompt_tokens_evaluated"] / 3
    assert iris[2]["encode_s"] == 0 and stock[2]["encode_s"] >= 0
    assert "llama-server column skipped" in r.stderr
