"""UI pieces that need no browser: display conversion and privacy defaults."""

from __future__ import annotations

from app.chat import Turn


def test_gradio_analytics_are_off():
    import os

    import app.ui  # noqa: F401

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_to_chatbot_shows_images_before_text():
    from app.ui import to_chatbot

    msgs = to_chatbot([{"turn": Turn("user", "what?"), "paths": ["/a.png"]},
                       {"turn": Turn("assistant", "a cat")}])
    assert msgs == [{"role": "user", "content": [{"path": "/a.png"}, "what?"]},
                    {"role": "assistant", "content": "a cat"}]


def test_cli_refuses_to_pick_a_taken_port():
    import socket

    from app.cli import free_port, is_loopback

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert free_port("127.0.0.1", taken) != taken
    assert is_loopback("127.0.0.1") and not is_loopback("0.0.0.0")
