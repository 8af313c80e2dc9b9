"""UI pieces that need no browser: display conversion and privacy defaults."""

from __future__ import annotations

import html
import json


def test_gradio_analytics_are_off():
    import os

    import app.ui  # noqa: F401

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_to_chatbot_shows_images_before_text_and_stats_under_replies():
    from pathlib import Path

    from app.history import StoredConversation, StoredMessage
    from app.ui import to_chatbot
    from app.ui.views import page_map

    conv = StoredConversation("c", "t", "", [
        StoredMessage("user", "what?", ["ab" * 32]),
        StoredMessage("assistant", "a cat", model="m", stats={"device_lm": "CPU", "ttft_s": 0.25,
                                                              "decode_tok_s": 12.0, "images_encoded": 1,
                                                              "image_encode_s": 1.5}),
        StoredMessage("user", "and?"),
    ])
    msgs, index = to_chatbot(conv, lambda sha: Path("/img") / f"{sha}.png")
    assert msgs[0] == {"role": "user", "content": {"path": f"/img/{'ab' * 32}.png", "alt_text": "your image"}}
    assert msgs[1] == {"role": "user", "content": "what?"}  # plain text, so it can be edited
    assert msgs[2] == {"role": "assistant", "content": "a cat"}
    assert index == [0, 0, 1, 2] and len(msgs) == 4
    # The stats line goes under the reply as plain text (iris.js, from the page map), not as a message.
    data = json.loads(html.unescape(page_map(conv, index).split('data-map="')[1].split('"')[0]))
    assert data["stats"] == [[2, "m · CPU · first token 0.25 s · 12.0 tok/s · image encode 1.50 s"]]
    conv.messages[1].stats.update(completion_tokens=3, finish_reason="length")
    data = json.loads(html.unescape(page_map(conv, index).split('data-map="')[1].split('"')[0]))
    assert data["stats"][0][1] == ("m · CPU · first token 0.25 s · image encode 1.50 s · 3 tokens · "
                                   "stopped at the token limit")  # no tok/s for 3 tokens


def test_gauge_warns_before_the_context_is_full():
    from app.services import Usage
    from app.ui import gauge_html

    assert "warn" not in gauge_html(Usage(100, 4096, 1))
    assert "filling up" in gauge_html(Usage(3200, 4096, 2))
    assert "nearly full" in gauge_html(Usage(3900, 4096, 2)) and "2 images" in gauge_html(Usage(3900, 4096, 2))


def test_model_output_cannot_run_script():
    import gradio as gr

    from app.history import History  # noqa: F401 - the UI needs history
    from app.services import build_services
    from app.ui import build_ui

    demo = build_ui(build_services(with_history=True))
    bots = [b for b in demo.blocks.values() if isinstance(b, gr.Chatbot)]
    assert bots and all(b.sanitize_html and b.allow_tags is False for b in bots)


def test_cli_refuses_to_pick_a_taken_port():
    import socket

    from app.cli import free_port, is_loopback

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert free_port("127.0.0.1", taken) != taken
    assert is_loopback("127.0.0.1") and not is_loopback("0.0.0.0")


def test_names_and_errors_from_files_are_shown_as_text(tmp_path):
    from app.services import build_services
    from app.ui import model_view, plain, toast
    from fakeengine import FakeEngine

    hostile = "evil<img src=http:x onerror=alert(1)>[site](http:evil).gguf"
    models = tmp_path / "models"
    (models / "bad").mkdir(parents=True)
    (models / "bad" / hostile).write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 40)
    services = build_services(models, engine=FakeEngine())
    note = model_view(services).note
    assert "evil" in note and "<img" not in note and "](http" not in note
    assert "&lt;img" in note and "\\[site\\]" in note
    assert toast("<b>x</b> (y)") == "&lt;b&gt;x&lt;/b&gt; (y)"
    assert plain("a_b*c") == "a\\_b\\*c"


def test_printable_escapes_control_bytes_and_cuts_long_values():
    from app.errors import printable

    assert printable(b"mlp\x00\x1b[31m") == "mlp\\x00\\x1b[31m"
    assert printable("x" * 500).endswith("…") and len(printable("x" * 500)) == 80


def test_handlers_return_named_values_and_refuse_in_place(models_dir, images):
    """Handlers called directly with the page's parts: a refused question changes nothing but `accepted`."""
    import gradio as gr

    from app.services import build_services
    from app.ui import handlers as h
    from app.ui.layout import layout
    from fakeengine import FakeEngine

    services = build_services(models_dir, engine=FakeEngine(["A red square."]), with_history=True)
    with gr.Blocks():
        ui = layout(services)
    refused = h.add_user_turn(services, ui, {"text": "hi", "files": []}, None, "")
    assert refused == {ui.accepted: False} and services.history.list() == []  # no model: nothing saved
    services.load("tiny-llava")
    got = h.add_user_turn(services, ui, {"text": "What colour?", "files": [str(images["red"])]}, None, "Be brief.")
    cid = got[ui.cid]
    assert got[ui.accepted] is True and services.history.get(cid).system == "Be brief."
    assert [m["role"] for m in got[ui.chatbot]] == ["user", "user"]  # the image, then the text
    *streamed, last = list(h.respond(services, ui, cid, True))
    assert streamed and all(set(u) == {ui.chatbot} for u in streamed)
    assert last[ui.chatbot][-1]["content"] == "A red square." and "first token" in last[ui.map] and last[ui.notice] == ""
    assert set(last) == {ui.chatbot, ui.index, ui.gauge, ui.title, ui.map, ui.notice}
    gone = h.delete(services, ui, cid, True)
    assert gone[ui.cid] is None and services.history.list() == []
    services.history.close()


def test_speed_is_shown_only_for_replies_long_enough_to_measure():
    from app.ui import stats_line

    short = {"device_lm": "CPU", "ttft_s": 0.2, "decode_tok_s": 8.0, "completion_tokens": 3}
    assert "tok/s" not in stats_line(short) and "first token 0.20 s" in stats_line(short)
    assert "8.0 tok/s" in stats_line({**short, "completion_tokens": 40})
