"""Saved conversations: SQLite + content-addressed images, export/import, and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile

import pytest

from app.history import History, InvalidImport, StoredMessage
from app.images import prepare_image


@pytest.fixture
def history(tmp_path):
    h = History(tmp_path / "data")
    yield h
    h.close()


def test_messages_images_titles_and_search(history, images):
    red = prepare_image(images["red"])
    cid = history.create()
    history.append(cid, StoredMessage("user", "What colour is   this square?", [history.save_image(red)]))
    history.append(cid, StoredMessage("assistant", "It is red.", model="m", stats={"ttft_s": 0.5}))
    other = history.create()
    history.append(other, StoredMessage("user", "And a blue one?", [history.save_image(red)]))
    conv = history.get(cid)
    assert conv.title == "What colour is this square?"
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].model == "m" and conv.messages[1].stats == {"ttft_s": 0.5}
    assert history.image_path(red.sha256).read_bytes() == red.png
    assert len(list(history.images_dir.rglob("*.png"))) == 1  # stored once
    assert [c.id for c in history.list()] == [other, cid]  # newest first
    assert [c.id for c in history.list("red")] == [cid]  # message text
    assert [c.id for c in history.list("blue one")] == [other]
    history.rename(cid, "Red square")
    assert history.list("Red sq")[0].title == "Red square"


def test_truncate_and_edit(history):
    cid = history.create()
    for role, text in (("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")):
        history.append(cid, StoredMessage(role, text))
    history.set_text(cid, 2, "c2")
    history.truncate(cid, 3)
    assert [m.text for m in history.get(cid).messages] == ["a", "b", "c2"]
    history.append(cid, StoredMessage("assistant", "e"))
    assert [m.text for m in history.get(cid).messages] == ["a", "b", "c2", "e"]


def test_delete_keeps_images_other_conversations_use(history, images):
    red, blue = prepare_image(images["red"]), prepare_image(images["blue"])
    a, b = history.create(), history.create()
    history.append(a, StoredMessage("user", "x", [history.save_image(red), history.save_image(blue)]))
    history.append(b, StoredMessage("user", "y", [history.save_image(red)]))
    history.delete(a)
    assert history.image_path(red.sha256).exists() and not history.image_path(blue.sha256).exists()
    assert [c.id for c in history.list()] == [b]


def test_export_json_round_trips_on_another_machine(history, images, tmp_path):
    red = prepare_image(images["red"])
    cid = history.create(system="Be brief.")
    history.append(cid, StoredMessage("user", "What is it?", [history.save_image(red)]))
    history.append(cid, StoredMessage("assistant", "A red square.", model="m"))
    data = json.loads(json.dumps(history.export_json(cid)))
    elsewhere = History(tmp_path / "other")
    new = elsewhere.import_json(data)
    conv = elsewhere.get(new)
    assert (conv.title, conv.system) == ("What is it?", "Be brief.")
    assert [m.text for m in conv.messages] == ["What is it?", "A red square."]
    assert elsewhere.image_path(red.sha256).read_bytes() == red.png
    with pytest.raises(InvalidImport, match="not a conversation exported by Iris"):
        elsewhere.import_json({"messages": []})
    data["messages"][0].pop("role")
    with pytest.raises(InvalidImport, match="damaged"):
        elsewhere.import_json(data)
    elsewhere.close()


def test_export_markdown_zip_has_text_and_images(history, images, tmp_path):
    red = prepare_image(images["red"])
    cid = history.create()
    history.append(cid, StoredMessage("user", "What is it?", [history.save_image(red)]))
    history.append(cid, StoredMessage("assistant", "**Red**.", model="m"))
    path = history.export_markdown(cid, tmp_path / "out")
    with zipfile.ZipFile(path) as zf:
        md = zf.read("conversation.md").decode()
        assert f"![image](images/{red.sha256}.png)" in md and "**Red**." in md and "Assistant (m)" in md
        assert zf.read(f"images/{red.sha256}.png") == red.png


def test_kill_9_loses_nothing_that_was_saved(tmp_path):
    """A writer killed mid-stream: every committed message is there after the restart."""
    code = (
        "import sys, time; from pathlib import Path; from app.history import History, StoredMessage\n"
        "h = History(Path(sys.argv[1])); cid = h.create(); print(cid, flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    h.append(cid, StoredMessage('user' if i % 2 == 0 else 'assistant', f'm{i}')); i += 1\n"
        "    print(i, flush=True); time.sleep(0.01)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d")], stdout=subprocess.PIPE,
                            text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    cid = proc.stdout.readline().strip()
    written = 0
    while written < 20:
        written = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    msgs = History(tmp_path / "d").get(cid).messages
    assert len(msgs) >= written and [m.text for m in msgs[:written]] == [f"m{i}" for i in range(written)]
