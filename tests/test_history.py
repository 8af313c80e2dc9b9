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

from app.errors import AppError
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


def texts(history, cid) -> list[str]:
    return [m.text for m in history.get(cid).messages]


def test_versions_are_branches_that_keep_every_message(history):
    """An edit or a regeneration is a new sibling; switching versions shows the newest branch under it."""
    cid = history.create()
    a = history.append(cid, StoredMessage("user", "a"))
    b = history.append(cid, StoredMessage("assistant", "b"))
    c = history.append(cid, StoredMessage("user", "c"))
    history.append(cid, StoredMessage("assistant", "d"))
    # Regenerate d: a sibling answer under c.
    history.set_head(cid, c)
    history.append(cid, StoredMessage("assistant", "d2"), parent=c)
    assert texts(history, cid) == ["a", "b", "c", "d2"]
    assert history.get(cid).messages[-1].version == (2, 2) and history.get(cid).messages[0].version == (1, 1)
    # Edit c: a sibling question under b, answered.
    history.append(cid, StoredMessage("user", "c2"), parent=b)
    history.append(cid, StoredMessage("assistant", "e"))
    assert texts(history, cid) == ["a", "b", "c2", "e"]
    c2 = history.get(cid).messages[2]
    assert c2.version == (2, 2)
    history.switch_version(cid, c2.id, -1)  # back to c, with its newest answer
    assert texts(history, cid) == ["a", "b", "c", "d2"]
    history.switch_version(cid, history.get(cid).messages[3].id, -1)
    assert texts(history, cid) == ["a", "b", "c", "d"]
    history.switch_version(cid, history.get(cid).messages[3].id, -1)  # already the first: stays
    assert texts(history, cid) == ["a", "b", "c", "d"]
    history.switch_version(cid, history.get(cid).messages[2].id, +1)
    assert texts(history, cid) == ["a", "b", "c2", "e"]
    # Edit the first question: a second root.
    history.append(cid, StoredMessage("user", "a2"), parent=None)
    assert texts(history, cid) == ["a2"] and history.get(cid).messages[0].version == (2, 2)
    history.switch_version(cid, history.get(cid).messages[0].id, -1)
    assert texts(history, cid) == ["a", "b", "c2", "e"]
    # Search finds text in any branch; the Markdown export shows the branch on screen.
    assert [x.id for x in history.list("d2")] == [cid]
    with pytest.raises(AppError, match="no longer in this conversation"):
        history.switch_version(cid, a + 10_000, 1)


def test_a_database_from_before_branches_opens_as_one_branch(tmp_path):
    import sqlite3

    root = tmp_path / "old"
    root.mkdir()
    db = sqlite3.connect(root / "history.sqlite3")
    db.executescript("""
        CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, system TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conv_id TEXT NOT NULL, seq INTEGER NOT NULL,
            role TEXT NOT NULL, text TEXT NOT NULL, images TEXT NOT NULL DEFAULT '[]', model TEXT, stats TEXT,
            created REAL NOT NULL, UNIQUE (conv_id, seq));
        INSERT INTO conversations VALUES ('c1', 'Old chat', '', 0, 0);
        INSERT INTO messages (conv_id, seq, role, text, created) VALUES ('c1', 0, 'user', 'q1', 0),
            ('c1', 1, 'assistant', 'a1', 0), ('c1', 2, 'user', 'q2', 0), ('c1', 3, 'assistant', 'a2', 0);
    """)
    db.commit()
    db.close()
    history = History(root)
    assert texts(history, "c1") == ["q1", "a1", "q2", "a2"]
    history.append("c1", StoredMessage("user", "q3"))
    assert texts(history, "c1") == ["q1", "a1", "q2", "a2", "q3"]
    history.close()


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
    # Every branch travels, and the one on screen stays on screen.
    q = history.get(cid).messages[0].id
    history.append(cid, StoredMessage("assistant", "Another answer."), parent=q)
    history.switch_version(cid, history.get(cid).messages[1].id, -1)
    tree = elsewhere.import_json(json.loads(json.dumps(history.export_json(cid))))
    assert [m.text for m in elsewhere.get(tree).messages] == ["What is it?", "A red square."]
    assert elsewhere.get(tree).messages[1].version == (1, 2)
    elsewhere.switch_version(tree, elsewhere.get(tree).messages[1].id, 1)
    assert elsewhere.get(tree).messages[1].text == "Another answer."
    # A file from before branches (format /1, no parents) imports as one branch.
    old = {**data, "format": "iris-conversation/1"}
    assert [m.text for m in elsewhere.get(elsewhere.import_json(old)).messages] == ["What is it?", "A red square."]
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
    "parent-after-itself": lambda d: d["messages"][0].update(parent=1),
    "parent-is-itself": lambda d: d["messages"][1].update(parent=1),
    "parent-is-text": lambda d: d["messages"][1].update(parent="0"),
    "parent-is-true": lambda d: d["messages"][1].update(parent=True),
    "head-out-of-range": lambda d: d.update(head=99),
    "head-is-negative": lambda d: d.update(head=-1),
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
