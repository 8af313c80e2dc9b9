"""Saved conversations: SQLite + content-addressed images, export/import, and crash safety."""

from __future__ import annotations

import base64
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
    with pytest.raises(InvalidImport, match="message 1 has the role"):
        elsewhere.import_json(data)
    elsewhere.close()


def test_export_file_round_trips_and_a_bad_file_is_one_line(history, images, tmp_path):
    red = prepare_image(images["red"])
    cid = history.create(title="a/b: <c>")
    history.append(cid, StoredMessage("user", "What is it?", [history.save_image(red)]))
    path = history.export_file(cid, tmp_path / "out")
    assert path.parent == tmp_path / "out" and path.name == "a_b_ _c_.json"
    elsewhere = History(tmp_path / "other")
    new = elsewhere.import_file(path)
    assert elsewhere.get(new).messages[0].images == [red.sha256]
    for bad in (b"not json", b"[" * 100_000, b"\xff\xfe"):
        (tmp_path / "bad.json").write_bytes(bad)
        with pytest.raises(InvalidImport, match="not a conversation exported by Iris.*Nothing was imported"):
            elsewhere.import_file(tmp_path / "bad.json")
    with pytest.raises(InvalidImport, match="Nothing was imported"):
        elsewhere.import_file(tmp_path / "missing.json")
    assert [c.id for c in elsewhere.list()] == [new]
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


def _export(history, images):
    red = prepare_image(images["red"])
    cid = history.create(system="Be brief.")
    history.append(cid, StoredMessage("user", "What is it?", [history.save_image(red)]))
    history.append(cid, StoredMessage("assistant", "A red square.", model="m", stats={"ttft_s": 0.5}))
    return json.loads(json.dumps(history.export_json(cid)))


def _deep(n):
    out = []
    for _ in range(n):
        out = [out]
    return out


HOSTILE = {
    "stats-is-a-list": lambda d: d["messages"][1].update(stats=[1, 2]),
    "role-is-a-dict": lambda d: d["messages"][0].update(role={"x": 1}),
    "images-is-a-string": lambda d: d["messages"][0].update(images="abc"),
    "image-not-in-file": lambda d: d["messages"][0].update(images=["0" * 64]),
    "text-is-a-number": lambda d: d["messages"][0].update(text=5),
    "messages-is-a-dict": lambda d: d.update(messages={"a": 1}),
    "image-not-base64": lambda d: d["images"].update({k: "%%%" for k in d["images"]}),
    "image-not-an-image": lambda d: d["images"].update({k: base64.b64encode(b"not a png").decode() for k in d["images"]}),
    "title-is-a-list": lambda d: d.update(title=["x"]),
    "model-is-a-number": lambda d: d["messages"][1].update(model=3),
    "second-message-broken": lambda d: d["messages"].append({"role": "user", "text": None}),
    "deep-nesting": lambda d: d["messages"][1].update(stats={"x": _deep(50)}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_import_is_refused_and_leaves_nothing_behind(history, images, tmp_path, case):
    data = _export(history, images)
    HOSTILE[case](data)
    before = [c.id for c in history.list()]
    try:
        cid = history.import_json(data)
    except InvalidImport as exc:
        assert "Nothing was imported" in str(exc) and "\n" not in str(exc)
        assert [c.id for c in history.list()] == before  # no half conversation left behind
        return
    # Accepted (e.g. figures it could clean up): it must open, rename, export and delete.
    conv = history.get(cid)
    assert conv.messages
    history.rename(cid, "renamed")
    json.dumps(history.export_json(cid))
    history.delete(cid)


def test_a_stored_conversation_opens_whatever_its_rows_hold(history, images):
    data = _export(history, images)
    cid = history.import_json(data)
    with history._lock:  # what an older version or a hand-edited database may hold
        history._db.execute("UPDATE messages SET stats = '[1, 2]', images = '{\"a\": 1}' WHERE conv_id = ?", (cid,))
        history._db.execute("UPDATE conversations SET title = ? WHERE id = ?", ("a\x00b\x1b", cid))
    conv = history.get(cid)
    assert conv.title == "ab" and all(m.stats is None and m.images == [] for m in conv.messages)
    json.dumps(history.export_json(cid))
    history.delete(cid)
    assert cid not in [c.id for c in history.list()]


def test_title_with_nul_exports(history):
    cid = history.create(title="bad\x00title")
    history.append(cid, StoredMessage("user", "hi"))
    assert "\x00" not in history.get(cid).title
    json.dumps(history.export_json(cid))


def test_a_full_disk_keeps_what_was_saved(history, images, monkeypatch):
    import errno
    from pathlib import Path

    from app.history import HistoryDiskFull

    cid = history.create()
    history.append(cid, StoredMessage("user", "kept"))

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", full)
        with pytest.raises(HistoryDiskFull, match="is full"):
            history.save_image(prepare_image(images["blue"]))
    assert [m.text for m in history.get(cid).messages] == ["kept"]
