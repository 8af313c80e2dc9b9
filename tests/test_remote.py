"""Iris as the client of an OpenAI-compatible server: here another Iris (both real, the tiny pair behind it)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.chat import Conversation, GenParams
from app.cli import free_port
from app.errors import AppError, ModelNotFound, TooManyImages
from app.history import StoredMessage
from app.images import prepare_image
from app.services import build_services

ROOT = Path(__file__).resolve().parent.parent


def _wait(port: int) -> None:
    for _ in range(200):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("HEAD", "/")
            return
        except OSError:
            time.sleep(0.1)


@pytest.fixture
def server(models_dir, request):
    """An Iris answering at /v1 with the tiny pair loaded; yields (url, its services)."""
    from app.ui import launch

    key = getattr(request, "param", None)
    services = build_services(models_dir, with_history=True)
    services.params = GenParams(temperature=0.0, max_tokens=10, seed=1)
    services.load("tiny-llava")
    port = free_port("127.0.0.1", 8200)
    demo = launch(services, "127.0.0.1", port, open_browser=False, block=False, key=key)
    _wait(port)
    yield f"http://127.0.0.1:{port}/v1", services
    demo.close()
    services.close()
    services.history.close()


@pytest.fixture
def client_services(tmp_path):
    s = build_services(tmp_path / "no-models", with_history=True)
    s.params = GenParams(temperature=0.0, max_tokens=10, seed=1)
    yield s
    s.close()
    s.history.close()


def test_a_conversation_on_a_server_is_answered_saved_and_reuses_its_cache(server, client_services, images):
    url, remote = server
    s = client_services
    names = s.add_server(url)
    assert f"tiny-llava @ {url[:-3]}" in names
    s.params = GenParams(temperature=0.0, max_tokens=10, seed=1)  # adding a server saved the settings
    s.load(f"tiny-llava @ {url[:-3]}")
    cid = s.ask(None, "What colour?", [images["red"]])
    reply = s.reply(cid)
    text = "".join(reply)
    # The same question asked of the server's engine directly gives the same tokens.
    asked = Conversation(turns=s.conversation(cid).turns[:1])
    direct = remote.engine.stream_reply(asked, GenParams(temperature=0.0, max_tokens=10, seed=1))
    assert text == "".join(direct) and reply.stats.completion_tokens == direct.stats.completion_tokens
    saved = s.history.get(cid).messages[-1]
    assert saved.role == "assistant" and saved.text == text and saved.model.startswith("tiny-llava @ ")
    assert saved.stats["images_encoded"] == 1 and saved.stats["prompt_tokens"] > 16
    s.ask(cid, "And the shape?")
    follow = s.reply(cid)
    "".join(follow)
    assert follow.stats.prompt_tokens - follow.stats.prompt_tokens_evaluated >= reply.stats.prompt_tokens
    assert follow.stats.images_encoded == 0
    assert s.settings.servers == ((url[:-3], ""),)  # remembered for the next start


def test_server_failures_are_one_plain_sentence(server, client_services, images):
    url, remote = server
    s = client_services
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with pytest.raises(AppError, match="cannot reach the server.*Is it running"):
        s.add_server(f"http://127.0.0.1:{dead}/v1")
    with pytest.raises(AppError, match="http:// or https://"):
        s.add_server("gpu-box:8000")
    s.add_server(url)
    with pytest.raises(ModelNotFound, match="has no model gpt-5"):
        s.load(f"gpt-5 @ {url[:-3]}")
    s.load(f"tiny-llava @ {url[:-3]}")
    too_many = [images["red"]] * (remote.engine.model.max_images + 1)
    cid = s.history.create()
    s.history.append(cid, StoredMessage("user", "all", [s.history.save_image(prepare_image(i)) for i in too_many]))
    with pytest.raises(TooManyImages, match="at most"):  # the server's own limit, in its words
        "".join(s.reply(cid))


@pytest.mark.parametrize("server", ["sekrit-key-123"], indirect=True)
def test_a_wrong_key_says_so(server, client_services):
    url, _ = server
    with pytest.raises(AppError, match="needs an API key, or this one is wrong"):
        client_services.add_server(url, "wrong")
    assert client_services.add_server(url, "sekrit-key-123")


def test_iris_ask_takes_an_engine_url(server, images):
    url, _ = server
    out = subprocess.run([sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", "ask", "--engine", url, "--image", str(images["red"]),
                          "--max-tokens", "6", "--temperature", "0", "--stats", "What colour?"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "6 tokens" in out.stderr and "(1 img)" in out.stderr and f"LM on server {url[:-3]} (CPU)" in out.stderr
