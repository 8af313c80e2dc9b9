"""Iris pointed at llama.cpp's llama-server (built from the same llama.cpp: tests/llamaserver.py), with the
tiny pair behind it: a chat with an image, its cache on the follow-up, and the server's refusals in words."""

from __future__ import annotations

import base64
import subprocess
import time
import urllib.request

import openai
import pytest
from llamaserver import find

from app.chat import GenParams
from app.cli import free_port
from app.errors import AppError, ContextTooLong, UnsupportedImage
from app.images import prepare_image
from app.services import build_services

BINARY = find()
pytestmark = pytest.mark.skipif(BINARY is None, reason="llama-server is not built: python tests/llamaserver.py --build")
KEY = "test-key-42"


def start(lm, mmproj=None, n_ctx: int = 2048):
    port = free_port("127.0.0.1", 8300)
    cmd = [str(BINARY), "-m", str(lm), "--host", "127.0.0.1", "--port", str(port), "-c", str(n_ctx), "-np", "1",
           "--api-key", KEY, "-t", "2"]
    if mmproj:
        cmd += ["--mmproj", str(mmproj)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llama-server did not start")


@pytest.fixture(scope="module")
def server(tiny_pair):
    proc, url = start(*tiny_pair)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def iris(tmp_path):
    s = build_services(tmp_path / "none", with_history=True)
    yield s
    s.close()
    s.history.close()


def test_a_chat_with_an_image_on_llama_server(server, iris, images):
    s = iris
    names = s.add_server(server, KEY)
    assert len(names) == 1 and names[0].endswith(f" @ {server[:-3]}")
    s.params = GenParams(temperature=0.0, max_tokens=8, seed=1)
    s.load(names[0])
    cid = s.ask(None, "What colour?", [images["red"]])
    reply = s.reply(cid)
    text = "".join(reply)
    # What the openai package gets from the same server for the same messages: the same text.
    direct = openai.OpenAI(base_url=server, api_key=KEY, max_retries=0).chat.completions.create(
        model=names[0].split(" @ ")[0], temperature=0.0, max_tokens=8, seed=1, top_p=s.params.top_p,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                       + base64.b64encode(prepare_image(images["red"]).png).decode()}},
            {"type": "text", "text": "What colour?"}]}])
    assert text and text == direct.choices[0].message.content  # real text, not two empties
    assert reply.stats.prompt_tokens == direct.usage.prompt_tokens > 16 and reply.stats.completion_tokens > 0
    assert reply.stats.ttft_s > 0 and reply.stats.device_lm == f"server {server[:-3]}"
    saved = s.history.get(cid).messages[-1]
    assert saved.text == text and saved.stats["prompt_tokens"] == reply.stats.prompt_tokens
    s.ask(cid, "And the shape?")
    follow = s.reply(cid)
    "".join(follow)
    # llama-server kept the first turn (image included) in its cache and says so.
    assert 0 < follow.stats.prompt_tokens_evaluated < follow.stats.prompt_tokens - reply.stats.prompt_tokens // 2


def test_llama_server_refusals_in_plain_words(server, iris, tiny_pair, images):
    s = iris
    with pytest.raises(AppError, match="needs an API key, or this one is wrong"):
        s.add_server(server, "wrong")
    text_only, url = start(tiny_pair[0])  # the LM without its projector: a model that sees no images
    try:
        names = s.add_server(url, KEY)
        s.load(names[0])
        cid = s.ask(None, "What colour?", [images["red"]])
        with pytest.raises(UnsupportedImage, match="does not take images"):
            "".join(s.reply(cid))
    finally:
        text_only.terminate()
        text_only.wait(timeout=20)
    small, url = start(*tiny_pair, n_ctx=256)
    try:
        s.load(s.add_server(url, KEY)[0])
        cid = s.ask(None, "red " * 600)
        with pytest.raises(ContextTooLong):
            "".join(s.reply(cid))
    finally:
        small.terminate()
        small.wait(timeout=20)
