"""Iris as the client of an OpenAI-compatible server: here another Iris (both real, the tiny pair behind it)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servekit import serving

from app.chat import Conversation, GenParams
from app.errors import AppError, ModelNotFound, TooManyImages
from app.history import StoredMessage
from app.images import prepare_image
from app.services import build_services

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(models_dir, request):
    """An Iris answering at /v1 with the tiny pair loaded; yields (url, its services)."""
    services = build_services(models_dir, with_history=True)
    services.params = GenParams(temperature=0.0, max_tokens=10, seed=1)
    services.load("tiny-llava")
    with serving(services, 8200, getattr(request, "param", None)) as port:
        yield f"http://127.0.0.1:{port}/v1", services


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
    assert text and text == "".join(direct) and reply.stats.completion_tokens == direct.stats.completion_tokens
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
    cli = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]
    out = subprocess.run([*cli, "ask", "--engine", url, "--image", str(images["red"]), "--max-tokens", "6",
                          "--temperature", "0", "--stats", "What colour?"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "6 tokens" in out.stderr and "(1 img)" in out.stderr and f"LM on server {url[:-3]} (CPU)" in out.stderr


def test_a_server_that_never_answers_times_out_in_words(client_services):
    """A port that accepts connections and then says nothing (a hung server): the model list gives up in words."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(AppError, match="did not answer in time"):
            client_services.add_server(f"http://127.0.0.1:{port}/v1")
        assert time.perf_counter() - t0 < 30


def test_server_error_bodies_become_the_right_refusal():
    """What vLLM, llama-server and Ollama send back, as Iris says it."""
    import json

    from app.errors import ContextTooLong, UnsupportedImage
    from app.remote import RemoteEngine

    eng = RemoteEngine("http://127.0.0.1:9/v1")
    cases = [
        ({"error": {"message": "At most 1 image(s) may be provided in one prompt.", "code": 400}}, TooManyImages),
        ({"error": {"message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error"}}, ContextTooLong),
        ({"error": {"message": "image input is not supported - hint: if this is unexpected, you may need to "
                               "provide the mmproj"}}, UnsupportedImage),
        ({"error": "model 'llava' not found"}, AppError),
    ]
    for body, kind in cases:
        got = eng._refused(400, json.dumps(body).encode())
        assert type(got) is kind, (body, got)
    said = str(eng._refused(400, json.dumps({"error": "model 'llava' not found"}).encode()))
    assert said.endswith("could not answer (HTTP 400): model 'llava' not found")
    eng.close()
