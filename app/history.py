"""Saved conversations: SQLite in the user data dir, images stored once by content hash beside it.

Every message is committed as soon as it exists (WAL journal), so a crash or kill -9 loses at most the
reply being generated.

Messages form a tree: each has a parent (the message before it), so an edited question or a regenerated
answer is a new sibling and the old version stays. A conversation's head is the last message of the
branch on screen; get() walks from it to the root.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import math
import os
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from app import config
from app.errors import AppError, printable
from app.images import PreparedImage
from app.video import stamp

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    system TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    head INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conv_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    images TEXT NOT NULL DEFAULT '[]',
    model TEXT,
    stats TEXT,
    created REAL NOT NULL,
    parent INTEGER,
    frames TEXT,
    UNIQUE (conv_id, seq)
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated DESC);
"""
# Databases written before branches: each message's parent is the one before it, the head the last one.
MIGRATE_TREE = """
ALTER TABLE conversations ADD COLUMN head INTEGER;
ALTER TABLE messages ADD COLUMN parent INTEGER;
UPDATE messages SET parent = (SELECT p.id FROM messages p WHERE p.conv_id = messages.conv_id
                              AND p.seq = messages.seq - 1);
UPDATE conversations SET head = (SELECT m.id FROM messages m WHERE m.conv_id = conversations.id
                                 ORDER BY m.seq DESC LIMIT 1);
"""
# Databases written before video: frames (each image's time in its video, as JSON) is NULL for every message.
MIGRATE_FRAMES = "ALTER TABLE messages ADD COLUMN frames TEXT;"
EXPORT_FORMAT = "iris-conversation/2"  # /2: messages carry their parent (branches); /1 (linear) still imports
OLD_FORMATS = ("iris-conversation/1",)


@dataclass
class StoredMessage:
    """One saved message; images are content hashes in the image store.

    id and versions are filled in by History.get: versions lists the ids of this message and its other
    versions (edits of the same question, regenerations of the same answer), oldest first.
    """

    role: str
    text: str
    images: list[str] = field(default_factory=list)
    model: str | None = None
    stats: dict | None = None
    id: int | None = None
    versions: list[int] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)  # when the images are a video's frames: each one's time (s)

    @property
    def version(self) -> tuple[int, int]:
        """(k, n): this is version k of n."""
        return (self.versions.index(self.id) + 1, len(self.versions)) if self.id in self.versions else (1, 1)


@dataclass
class StoredConversation:
    """A saved conversation with all its messages, oldest first."""

    id: str
    title: str
    system: str
    messages: list[StoredMessage]
    updated: float = 0.0


@dataclass(frozen=True)
class ConversationSummary:
    """What the sidebar lists."""

    id: str
    title: str
    updated: float


class InvalidImport(AppError):
    """A file that is not an Iris conversation export."""


T = TypeVar("T")


class HistoryDiskFull(AppError):
    """The disk holding the history is full."""


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _writes(fn: Callable[..., T]) -> Callable[..., T]:
    """A write that meets a full disk says so in one line; what was saved before stays (one transaction each)."""
    import functools

    @functools.wraps(fn)
    def wrapper(self: History, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except (OSError, sqlite3.OperationalError) as exc:
            if not _disk_full(exc):
                raise
            raise HistoryDiskFull(
                f"The disk holding {self.root} is full, so this was not saved. Free some space (a few MB is "
                "enough for text; images need their size) and try again; everything saved before is kept."
            ) from None
    return wrapper


MAX_TEXT = 1_000_000      # characters in one message or system prompt
MAX_MESSAGES = 10_000
MAX_IMPORT_IMAGES = 500
_HEX = set("0123456789abcdef")


def _text(value: object, limit: int) -> str:
    """A string without NUL or other control characters (newlines and tabs kept), at most limit long."""
    if not isinstance(value, str):
        return ""
    if value.isprintable():  # nearly always: skip the per-character pass (conversations open often)
        return value[:limit]
    return "".join(c for c in value if c.isprintable() or c in "\n\t")[:limit]


# NaN and Infinity, which json accepts, come back as None: every float read is finite.
_decode = json.JSONDecoder(parse_constant=lambda _name: None).decode


def _shas(raw: object) -> list[str]:
    if raw == "[]":
        return []
    try:
        val = _decode(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        return []
    return [s for s in val if isinstance(s, str) and len(s) == 64 and set(s) <= _HEX] if isinstance(val, list) else []


def _times(raw: object, n: int) -> list[float]:
    """A video message's frame times: n finite times in seconds, or [] (not a video, or not readable)."""
    try:
        val = _decode(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        return []
    if not isinstance(val, list) or len(val) != n or not n:
        return []
    ok = all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 1e7 for t in val)
    return [float(t) for t in val] if ok else []


def _stats(raw: object) -> dict | None:
    """Reply figures as the UI shows them: a flat dict of finite numbers, short strings and flags."""
    if isinstance(raw, str):
        clean = _stats_text(raw)
        return dict(clean) if clean is not None else None  # a copy: the cached one stays as read
    return _clean_stats(raw)


@functools.lru_cache(maxsize=8192)
def _stats_text(raw: str) -> dict | None:
    # Cached: opening a conversation reads the same rows again and again, and each is cleaned the same way.
    try:
        return _clean_stats(_decode(raw))
    except (ValueError, RecursionError):
        return None


def _clean_stats(val: object) -> dict | None:
    if not isinstance(val, dict):
        return None
    out: dict = {}
    for k, v in list(val.items())[:64]:
        if not isinstance(k, str):
            continue
        if isinstance(v, bool) or v is None:
            out[k] = v
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out[k] = v
        elif isinstance(v, str):
            out[k] = _text(v, 200)
    return out or None


class Imported(NamedTuple):
    """An exported conversation, checked: messages in order, each one's parent (a position before it)."""

    title: str
    system: str
    messages: list[StoredMessage]
    parents: list[int | None]
    head: int | None
    images: dict[str, PreparedImage]


def validate_import(data: object) -> Imported:
    """Check a whole exported conversation before anything is written; raise InvalidImport naming the problem."""
    from app.images import prepare_image

    def bad(what: str) -> InvalidImport:
        return InvalidImport(f"This conversation file cannot be imported: {what}. Nothing was imported.")

    if not isinstance(data, dict) or data.get("format") not in (EXPORT_FORMAT, *OLD_FORMATS):
        raise InvalidImport("This file is not a conversation exported by Iris (its format is not "
                            f"'{EXPORT_FORMAT}'). Nothing was imported.")
    title, system = data.get("title", ""), data.get("system", "")
    if not isinstance(title, str) or not isinstance(system, str):
        raise bad("its title or system prompt is not text")
    raw_msgs, raw_imgs = data.get("messages"), data.get("images", {})
    if not isinstance(raw_msgs, list) or not isinstance(raw_imgs, dict):
        raise bad("its messages are not a list or its images not a table")
    if len(raw_msgs) > MAX_MESSAGES or len(raw_imgs) > MAX_IMPORT_IMAGES:
        raise bad(f"it holds more than {MAX_MESSAGES} messages or {MAX_IMPORT_IMAGES} images")
    messages = []
    parents: list[int | None] = []
    tree = data.get("format") == EXPORT_FORMAT
    for n, m in enumerate(raw_msgs, 1):
        if not isinstance(m, dict):
            raise bad(f"message {n} is not a message")
        parent = m.get("parent") if tree else n - 2
        if parent == -1:
            parent = None
        # A parent stands before its message: no cycles, no dangling branches.
        if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int)
                                   or not 0 <= parent < n - 1):
            raise bad(f"message {n}'s parent is not a message before it")
        parents.append(parent)
        role, text, imgs = m.get("role"), m.get("text", ""), m.get("images", [])
        if role not in ("user", "assistant"):
            raise bad(f"message {n} has the role {printable(role, 40)!r} (user or assistant expected)")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise bad(f"message {n}'s text is not text or is too long")
        if not isinstance(imgs, list) or not all(isinstance(s, str) and s in raw_imgs for s in imgs):
            raise bad(f"message {n} refers to images the file does not hold")
        model, stats = m.get("model"), m.get("stats")
        if model is not None and not isinstance(model, str):
            raise bad(f"message {n}'s model name is not text")
        if stats is not None and not isinstance(stats, dict):
            raise bad(f"message {n}'s reply figures are not a table")
        frames = m.get("frames", [])
        if frames and _times(frames, len(imgs)) != frames:
            raise bad(f"message {n}'s frame times are not one time in seconds per image")
        messages.append(StoredMessage(role, text, list(imgs), _text(model, 200) or None,
                                      _stats(stats), frames=list(frames or [])))
    images = {}
    for sha, b64 in raw_imgs.items():
        if not isinstance(b64, str):
            raise bad("an image is not base64 text")
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            raise bad("an image is not valid base64") from None
        try:
            images[sha] = prepare_image(raw, name=f"{printable(sha, 12)}.png")
        except AppError as exc:
            raise bad(f"an image in it cannot be used ({exc})") from None
    if len(system) > MAX_TEXT:
        raise bad("its system prompt is too long")
    head = data.get("head", len(messages) - 1) if tree else len(messages) - 1
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < len(messages)):
        raise bad("the message it shows last is not one of its messages")
    return Imported(_text(" ".join(title.split()), 120) or "Imported chat", system, messages, parents,
                    head if messages else None, images)


def _file_stem(title: str, limit: int) -> str:
    """A file name from a title: letters, digits, dashes, underscores and spaces only."""
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in title).strip() or "conversation"
    return safe[:limit]


def default_title(text: str, n_images: int) -> str:
    """A conversation's first title: the start of the first question."""
    words = " ".join(text.split())
    if not words:
        return "Image chat" if n_images else "New chat"
    return words if len(words) <= 60 else words[:57].rstrip() + "…"


def _branch(rows: list[tuple], head: object) -> tuple[list[tuple], dict[object, list[int]]]:
    """The rows from the root to head (each row starts with id, parent), and each parent's children in order."""
    by_id = {r[0]: r for r in rows}
    children: dict[object, list[int]] = {}
    for r in rows:
        children.setdefault(r[1], []).append(r[0])
    if head not in by_id:  # no head recorded (or a stale one): the newest message
        head = rows[-1][0] if rows else None
    path: list[tuple] = []
    seen: set[int] = set()
    node = by_id.get(head)
    while node is not None and node[0] not in seen:  # a hand-made cycle ends the walk
        seen.add(node[0])
        path.append(node)
        node = by_id.get(node[1])
    return path[::-1], children


class History:
    """The conversation store. Thread-safe: one connection guarded by a lock (Gradio runs handlers in threads)."""

    def __init__(self, root: Path | None = None):
        self.root = config.ensure(root or config.data_dir())
        self.images_dir = config.ensure(self.root / "images")
        self._db = sqlite3.connect(self.root / "history.sqlite3", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # committed = survives a crash of the app
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
            if "parent" not in columns:
                self._db.executescript("BEGIN;" + MIGRATE_TREE + "COMMIT;")
            if "frames" not in columns:
                self._db.executescript("BEGIN;" + MIGRATE_FRAMES + "COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- images ----------------------------------------------------------------------------------------

    def image_path(self, sha: str) -> Path:
        return self.images_dir / sha[:2] / f"{sha}.png"

    @_writes
    def save_image(self, img: PreparedImage) -> str:
        """Store an image once, named by its hash; return the hash."""
        path = self.image_path(img.sha256)
        if not path.exists():
            config.ensure(path.parent)
            tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(img.png)
            os.replace(tmp, path)
        return img.sha256

    def load_image(self, sha: str) -> PreparedImage:
        """An image from the store, ready for the engine (stored already prepared: no decoding again)."""
        from PIL import Image

        path = self.image_path(sha)
        try:
            png = path.read_bytes()
            with Image.open(path) as im:  # reads the header only, for the size
                width, height = im.size
        except OSError as exc:
            raise AppError(f"An image of this conversation is missing from {self.images_dir} ({exc}).") from exc
        return PreparedImage(png=png, sha256=sha, name=f"{sha[:8]}.png", width=width, height=height)

    # -- conversations ---------------------------------------------------------------------------------

    @_writes
    def create(self, system: str = "", title: str = "New chat") -> str:
        """A new, empty conversation; return its id."""
        cid = uuid.uuid4().hex
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO conversations (id, title, system, created, updated) VALUES (?, ?, ?, ?, ?)",
                             (cid, title, system, now, now))
        return cid

    def list(self, search: str = "", limit: int = 500) -> list[ConversationSummary]:
        """Conversations, newest first; search matches titles and message text."""
        q = "SELECT id, title, updated FROM conversations"
        args: tuple = ()
        if search.strip():
            like = f"%{search.strip()}%"
            q += (" WHERE title LIKE ? OR id IN (SELECT conv_id FROM messages WHERE text LIKE ?)")
            args = (like, like)
        q += " ORDER BY updated DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(q, (*args, limit)).fetchall()
        return [ConversationSummary(*r) for r in rows]

    def get(self, cid: str) -> StoredConversation:
        """One conversation with the messages of the branch on screen (root to head)."""
        with self._lock:
            row = self._db.execute("SELECT title, system, updated, head FROM conversations WHERE id = ?",
                                   (cid,)).fetchone()
            if row is None:
                raise AppError("That conversation no longer exists; it may have been deleted in another window.")
            rows = self._db.execute(
                "SELECT id, parent, role, text, images, model, stats, frames FROM messages WHERE conv_id = ? "
                "ORDER BY seq", (cid,)).fetchall()
        path, children = _branch(rows, row[3])
        # Whatever a row holds (an old version, a hand-edited database), the conversation still opens.
        return StoredConversation(cid, _text(row[0], 200) or "Untitled", row[1] if isinstance(row[1], str) else "", [
            StoredMessage(r if r in ("user", "assistant") else "user", t if isinstance(t, str) else "",
                          (shas := _shas(i)), _text(m, 200) if m else None, _stats(s), mid, children.get(parent, [mid]),
                          _times(f, len(shas)))
            for mid, parent, r, t, i, m, s, f in path
        ], row[2] if isinstance(row[2], (int, float)) else 0.0)

    @_writes
    def append(self, cid: str, msg: StoredMessage, parent: int | None | str = "head") -> int:
        """Add a message after parent (by default the head), committed at once; it becomes the head. Its id."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if parent == "head":
                    (parent,) = self._db.execute("SELECT head FROM conversations WHERE id = ?", (cid,)).fetchone() \
                        or (None,)
                (n,) = self._db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conv_id = ?",
                                        (cid,)).fetchone()
                cur = self._db.execute(
                    "INSERT INTO messages (conv_id, seq, role, text, images, model, stats, created, parent, frames)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cid, n, msg.role, msg.text, json.dumps(msg.images), msg.model,
                     json.dumps(msg.stats) if msg.stats else None, now, parent,
                     json.dumps(msg.frames) if msg.frames else None))
                mid = cur.lastrowid
                if n == 0 and msg.role == "user":
                    self._db.execute("UPDATE conversations SET title = ? WHERE id = ? AND title = 'New chat'",
                                     (default_title(msg.text, len(msg.images)), cid))
                self._db.execute("UPDATE conversations SET updated = ?, head = ? WHERE id = ?", (now, mid, cid))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        assert mid is not None
        return mid

    @_writes
    def set_head(self, cid: str, mid: int | None) -> None:
        """Show the branch that ends at message mid (None: before the first message)."""
        with self._lock:
            self._db.execute("UPDATE conversations SET head = ? WHERE id = ? AND (? IS NULL OR EXISTS "
                             "(SELECT 1 FROM messages WHERE id = ? AND conv_id = ?))", (mid, cid, mid, mid, cid))

    def switch_version(self, cid: str, mid: int, step: int) -> None:
        """Show another version of message mid (step -1: the one before, +1: the one after), with the newest
        messages that follow it."""
        with self._lock:
            rows = self._db.execute("SELECT id, parent FROM messages WHERE conv_id = ? ORDER BY seq",
                                    (cid,)).fetchall()
        parents = dict(rows)
        if mid not in parents:
            raise AppError("That message is no longer in this conversation.")
        children = _branch(rows, None)[1]
        versions = children[parents[mid]]
        node = versions[max(0, min(len(versions) - 1, versions.index(mid) + step))]
        while children.get(node):
            node = children[node][-1]  # the newest reply under it, and so on down
        self.set_head(cid, node)

    @_writes
    def rename(self, cid: str, title: str) -> None:
        title = _text(" ".join(title.split()), 120)
        if not title:
            raise AppError("A conversation needs a name; type one first.")
        with self._lock:
            self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, cid))

    @_writes
    def set_system(self, cid: str, system: str) -> None:
        with self._lock:
            self._db.execute("UPDATE conversations SET system = ? WHERE id = ?", (system, cid))

    def delete(self, cid: str) -> None:
        """Delete a conversation; images no other conversation uses are deleted too."""
        with self._lock:
            rows = self._db.execute("SELECT images FROM messages WHERE conv_id = ?", (cid,)).fetchall()
            self._db.execute("DELETE FROM messages WHERE conv_id = ?", (cid,))
            self._db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
            shas = {s for (i,) in rows for s in json.loads(i)}
            still = {s for (i,) in self._db.execute("SELECT images FROM messages WHERE images != '[]'")
                     for s in json.loads(i)}
        for sha in shas - still:
            self.image_path(sha).unlink(missing_ok=True)

    # -- export / import -------------------------------------------------------------------------------

    def export_json(self, cid: str) -> dict:
        """The conversation with every branch (each message's parent as its position) and its images embedded
        (base64 PNG), importable on another machine."""
        conv = self.get(cid)
        with self._lock:
            rows = self._db.execute("SELECT id, parent, role, text, images, model, stats, frames FROM messages "
                                    "WHERE conv_id = ? ORDER BY seq", (cid,)).fetchall()
        at = {r[0]: n for n, r in enumerate(rows)}
        messages: list[dict[str, Any]] = [
            {"role": r if r in ("user", "assistant") else "user", "text": t if isinstance(t, str) else "",
             "images": _shas(i), "model": _text(m, 200) if m else None, "stats": _stats(s),
             "parent": at.get(parent), **({"frames": times} if (times := _times(f, len(_shas(i)))) else {})}
            for _, parent, r, t, i, m, s, f in rows]
        shas = {s for _, _, _, _, i, _, _, _ in rows for s in _shas(i)}
        return {
            "format": EXPORT_FORMAT, "title": conv.title, "system": conv.system, "messages": messages,
            "head": at.get(conv.messages[-1].id) if conv.messages else None,
            "images": {s: base64.b64encode(self.image_path(s).read_bytes()).decode() for s in sorted(shas)},
        }

    @_writes
    def import_json(self, data: object) -> str:
        """Add an exported conversation (every branch) as a new one; return its id. All or nothing."""
        imp = validate_import(data)
        # Images first (content-addressed files: harmless if the insert below fails), then one transaction.
        stored = {sha: self.save_image(img) for sha, img in imp.images.items()}
        cid = uuid.uuid4().hex
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO conversations (id, title, system, created, updated) "
                                 "VALUES (?, ?, ?, ?, ?)", (cid, imp.title, imp.system, now, now))
                ids: list[int] = []
                for n, (m, parent) in enumerate(zip(imp.messages, imp.parents, strict=True)):
                    cur = self._db.execute(
                        "INSERT INTO messages (conv_id, seq, role, text, images, model, stats, created, parent, "
                        "frames) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (cid, n, m.role, m.text, json.dumps([stored[s] for s in m.images]), m.model,
                         json.dumps(m.stats) if m.stats else None, now,
                         ids[parent] if parent is not None else None, json.dumps(m.frames) if m.frames else None))
                    ids.append(cur.lastrowid or 0)
                head = ids[imp.head] if imp.head is not None else None
                self._db.execute("UPDATE conversations SET head = ? WHERE id = ?", (head, cid))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cid

    def export_file(self, cid: str, out_dir: Path) -> Path:
        """export_json written to out_dir as a .json file named after the title; return its path."""
        data = self.export_json(cid)
        path = config.ensure(out_dir) / f"{_file_stem(data['title'], 40)}.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    def import_file(self, path: Path | str) -> str:
        """Import a file written by export_file; return the new conversation's id. All or nothing."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, RecursionError):
            raise InvalidImport("That file is not a conversation exported by Iris (it is not JSON, or nested too "
                                "deeply). Nothing was imported.") from None
        return self.import_json(data)

    def export_markdown(self, cid: str, out_dir: Path) -> Path:
        """A .zip with conversation.md and its images (relative links), for reading anywhere."""
        conv = self.get(cid)
        path = config.ensure(out_dir) / f"{_file_stem(conv.title, 50)}.zip"
        lines = [f"# {conv.title}", ""]
        if conv.system:
            lines += [f"> System: {conv.system}", ""]
        for m in conv.messages:
            who = "You" if m.role == "user" else f"Assistant{f' ({m.model})' if m.model else ''}"
            lines += [f"**{who}:**", ""]
            if m.frames:  # a video: its frames in a row, each with its time
                strip = zip(m.images, m.frames, strict=True)
                lines += [" ".join(f"![frame at {stamp(t)}](images/{s}.png)" for s, t in strip), ""]
            else:
                lines += [f"![image](images/{s}.png)" for s in m.images]
            lines += [m.text, ""]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("conversation.md", "\n".join(lines))
            for s in sorted({s for m in conv.messages for s in m.images}):
                zf.write(self.image_path(s), f"images/{s}.png")
        return path
