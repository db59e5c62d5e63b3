"""``HistoryStore``: the chat history in SQLite, the one thing that outlives the process.

WAL mode with ``synchronous=NORMAL``: a commit is in the WAL file before ``insert_many``
returns, so a message the server has echoed survives ``kill -9`` of the server (only a power
cut of the whole machine can lose the last commits).  ``AUTOINCREMENT`` keeps ids strictly
increasing across restarts, across rooms and after retention deletes old rows: an id is never
given twice.  ``:memory:`` keeps no history at all.

What is stored: every message with its room (``NULL`` for a direct message, which has a
``recipient`` instead), whether its sender and (direct messages) its recipient had proven
their names with a password when it was sent, and the rooms ever created.  Nonce replay and
direct-message read-back depend on the proofs: a direct message is read back only by a side
that was proven at the time, so whoever registers a name later (perhaps not the person who
used it unregistered before) does not get the earlier conversations.  ``messages_fts`` is an
external-content FTS5 index of the texts.  Indexing a message costs more than storing it (every
prefix length below is a term of its own), so new messages are indexed in batches, inside the
transaction of a later ``insert_many``: once ``FTS_BATCH`` wait or the oldest has waited
``FTS_DELAY`` seconds (bench/SERVER.md, the quiet case).  ``fts_indexed.upto`` is the newest id
in the index, committed with it; a search first indexes whatever is newer, so it never misses a
stored message (nor sees one that is not stored), and a file left by ``kill -9`` is caught up
when it is opened.  A delete takes a row out of the index only if it is in it (a trigger).
Every word of a search is a prefix; FTS5 answers a prefix query by merging the
whole doclists of every term that starts with it (300 ms for a common 4-letter prefix at a
million messages), unless it has a prefix index of that length: so prefixes of 1-6 characters
are indexed (the index is about twice the size of the texts; bench/history_bench.py).  Longer
prefixes are shared by few terms.  If the SQLite build has no FTS5 the store still works and
``search`` raises ``SearchUnavailable`` (said once, clearly, in the log at start).

Threads: the room's writer thread stores batches and the retention thread deletes old rows,
both through the write connection under ``_write_lock``, so their transactions never
interleave.  Readers (login history, paging, search, from connection threads) use a second
connection under ``_read_lock``: in WAL mode they see only committed rows and never wait for a
writer.  ``:memory:`` has one connection, so there the two locks are the same lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.message import GENERAL_ROOM, Message
from common.timestamps import format_timestamp, parse_timestamp

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    text TEXT NOT NULL,
    nonce TEXT
);
CREATE TABLE IF NOT EXISTS rooms (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT OR IGNORE INTO rooms (name) VALUES ('general');
"""

# Columns added after the first release: an old history file gets them on open, its messages
# all in general.
_ADDED_COLUMNS = {
    "room": "TEXT DEFAULT 'general'",
    "recipient": "TEXT",
    "recipient_key": "TEXT",
    "proven": "INTEGER NOT NULL DEFAULT 0",
    "recipient_proven": "INTEGER NOT NULL DEFAULT 0",
}

_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (sender_key, id);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room, id);
CREATE INDEX IF NOT EXISTS messages_by_pair ON messages (recipient_key, sender_key, id)
    WHERE recipient_key IS NOT NULL;
"""

_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts"
    " USING fts5(text, content='messages', content_rowid='id', prefix='1 2 3 4 5 6')",
    "CREATE TABLE IF NOT EXISTS fts_indexed (upto INTEGER NOT NULL)",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_unindex AFTER DELETE ON messages
    WHEN old.id <= (SELECT upto FROM fts_indexed) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END""",
)
# Index new messages once this many wait, or the oldest of them has waited this long.
FTS_BATCH = 64
FTS_DELAY = 1.0

_COLUMNS = "id, timestamp, sender, text, nonce, room, recipient"
_MAX_SEARCH_WORDS = 16


class StoreError(Exception):
    """The history file cannot be opened (its folder is a file, no permission, ...).  Not an
    ``OSError``, so the server does not report it as a port it cannot listen on."""


class SearchUnavailable(Exception):
    """This Python's SQLite was built without FTS5."""


@dataclass(frozen=True, slots=True)
class Original:
    """A stored message as nonce replay needs it: the message and whether its sender had
    proven the name with a password."""

    message: Message
    proven: bool


class HistoryStore:
    """Message log with ids that carry on across restarts, per-room and direct-message reads,
    full-text search, and bounded deletes for retention."""

    def __init__(self, path: str | Path, busy_timeout: float = 1.0) -> None:
        self.path = str(path)
        memory = self.path == ":memory:"
        try:
            if not memory:
                _make_private(Path(self.path))
            # ``timeout`` is SQLite's busy timeout: how long a commit waits for another
            # process holding the file before it fails (and the senders hear ``unavailable``).
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the history file {self.path}: {exc}") from exc
        if not memory:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
        self._db.executescript(_INDEXES)
        self.has_search = _create_fts(self._db)
        self._write_lock = threading.Lock()
        # The index's position and the newest stored id: only the writer (under _write_lock)
        # changes them; ``_index_due`` is when the oldest message not indexed must be.
        self._indexed = self._newest = 0
        self._index_due = 0.0
        if self.has_search:
            ((upto,),) = self._db.execute("SELECT upto FROM fts_indexed").fetchall()
            ((newest,),) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchall()
            self._indexed, self._newest = int(upto), int(newest)
            self.index_now()  # what a kill -9 left unindexed
        if memory:
            self._reader = self._db
            self._read_lock = self._write_lock
        else:
            self._reader = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout
            )
            self._read_lock = threading.Lock()

    # ----------------------------------------------------------------- writes
    def insert_many(self, drafts: Iterable[tuple[Message, bool, bool]]) -> list[Message]:
        """Store ``(message, sender proven, recipient proven)`` (the ``id`` is ignored) in one
        transaction; return the messages with ids.  Raises ``sqlite3.Error`` if the commit
        failed (the file locked by another program, the disk full): then nothing is stored.

        One transaction per batch is what makes group commit cheap; the commit is done when
        this returns, so the caller may broadcast.
        """
        stored: list[Message] = []
        with self._write_lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for draft, proven, recipient_proven in drafts:
                    room = None if draft.to is not None else (draft.room or GENERAL_ROOM)
                    cur.execute(
                        "INSERT INTO messages (timestamp, sender, sender_key, text, nonce, room,"
                        " recipient, recipient_key, proven, recipient_proven)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            format_timestamp(draft.timestamp),
                            draft.user,
                            draft.user.lower(),
                            draft.text,
                            draft.nonce,
                            room,
                            draft.to,
                            None if draft.to is None else draft.to.lower(),
                            int(proven),
                            int(recipient_proven and draft.to is not None),
                        ),
                    )
                    ident = cur.lastrowid
                    assert ident is not None
                    # (Not ``dataclasses.replace``: this is once per message, and it costs 5x.)
                    stored.append(
                        Message(
                            draft.text,
                            draft.user,
                            draft.timestamp,
                            ident,
                            draft.nonce,
                            room,
                            draft.to,
                        )
                    )
                newest = stored[-1].id if stored else self._newest
                assert newest is not None
                indexed = self._indexed
                if self.has_search and newest > indexed:
                    now = time.monotonic()
                    if indexed == self._newest:  # the first one waiting
                        self._index_due = now + FTS_DELAY
                    if newest - indexed >= FTS_BATCH or now >= self._index_due:
                        indexed = self._index_locked(cur, newest)
                cur.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            self._newest, self._indexed = newest, indexed
        return stored

    def index_now(self) -> None:
        """Index every stored message not in the search index yet (a search calls this)."""
        if not self.has_search or self._indexed >= self._newest:
            return
        with self._write_lock:
            if self._indexed >= self._newest:
                return
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                indexed = self._index_locked(cur, self._newest)
                cur.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            self._indexed = indexed

    def _index_locked(self, cur: sqlite3.Cursor, newest: int) -> int:
        """Add the messages after ``_indexed`` up to ``newest`` to the index, in the caller's
        transaction; return the new position (the caller sets it once committed)."""
        cur.execute(
            "INSERT INTO messages_fts (rowid, text)"
            " SELECT id, text FROM messages WHERE id > ? AND id <= ? ORDER BY id",
            (self._indexed, newest),
        )
        cur.execute("UPDATE fts_indexed SET upto = ?", (newest,))
        return newest

    def add_room(self, room: str) -> None:
        """Remember a room (rooms persist even while nobody is in them)."""
        with self._write_lock:
            self._db.execute("INSERT OR IGNORE INTO rooms (name) VALUES (?)", (room,))

    def prune(self, before_id: int, chunk: int = 500) -> int:
        """Delete up to ``chunk`` of the oldest messages with an id below ``before_id``, in one
        short transaction (so the writer's commits go on between chunks); return how many."""
        with self._write_lock:
            cur = self._db.execute(
                "DELETE FROM messages WHERE id IN"
                " (SELECT id FROM messages WHERE id < ? ORDER BY id LIMIT ?)",
                (before_id, chunk),
            )
            return cur.rowcount

    # ------------------------------------------------------------------ reads
    def recent(self, limit: int, room: str = GENERAL_ROOM) -> list[Message]:
        """The newest ``limit`` messages of ``room``, oldest first."""
        return self.page(room, None, limit)[0]

    def page(self, room: str, before: int | None, limit: int) -> tuple[list[Message], bool]:
        """The newest ``limit`` messages of ``room`` with an id below ``before`` (all when
        ``None``), oldest first, and whether older ones exist."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (room, _upper(before), limit + 1),
        )
        return _page(rows, limit)

    def direct_page(
        self, user: str, other: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Like ``page``, for the direct messages between ``user`` and ``other`` (any case)
        that ``user`` sent or received with a proven name."""
        me, them = user.lower(), other.lower()
        sql = (
            f"SELECT {_COLUMNS} FROM messages WHERE recipient_key = ? AND sender_key = ?"
            " AND {} = 1 AND id < ? ORDER BY id DESC LIMIT ?"
        )
        # Each direction is one walk down its index; the newest of both are merged here.
        rows = self._read(sql.format("proven"), (them, me, _upper(before), limit + 1))
        if me != them:
            rows += self._read(
                sql.format("recipient_proven"), (me, them, _upper(before), limit + 1)
            )
            rows.sort(key=lambda row: int(row[0]), reverse=True)
        return _page(rows[: limit + 1], limit)

    def search(
        self, words: str, rooms: Sequence[str], direct_of: str | None, limit: int
    ) -> list[Message]:
        """The newest ``limit`` messages holding every word of ``words`` (case-insensitive,
        each word a prefix), oldest first, from ``rooms`` and, with ``direct_of``, from that
        name's direct messages (those its side sent or received proven).  Raises
        ``SearchUnavailable`` without FTS5."""
        if not self.has_search:
            raise SearchUnavailable("this server's SQLite has no FTS5")
        query = fts_query(words)
        if query is None or (not rooms and direct_of is None):
            return []
        self.index_now()
        scopes: list[str] = []
        params: list[object] = [query]
        if rooms:
            scopes.append(f"m.room IN ({', '.join('?' * len(rooms))})")
            params.extend(rooms)
        if direct_of is not None:
            scopes.append(
                "(m.room IS NULL AND ((m.sender_key = ? AND m.proven = 1)"
                " OR (m.recipient_key = ? AND m.recipient_proven = 1)))"
            )
            params.extend([direct_of.lower()] * 2)
        params.append(limit)
        columns = ", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))
        rows = self._read(
            f"SELECT {columns} FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            f" WHERE messages_fts MATCH ? AND ({' OR '.join(scopes)})"
            " ORDER BY messages_fts.rowid DESC LIMIT ?",
            params,
        )
        return [_row_message(row) for row in reversed(rows)]

    def get(self, ident: int) -> Original | None:
        """The message with this id, if stored, and whether its sender was proven."""
        rows = self._read(
            f"SELECT {_COLUMNS}, proven FROM messages WHERE id = ?",
            (ident,),
        )
        if not rows:
            return None
        *row, proven = rows[0]
        return Original(_row_message(tuple(row)), bool(proven))

    def recent_nonces(self, user: str, limit: int) -> list[tuple[str | None, int]]:
        """``(nonce, id)`` of the newest ``limit`` messages of one user (any case), oldest
        first: what the room needs to recognise a resent message, without the texts."""
        rows = self._read(
            "SELECT nonce, id FROM messages WHERE sender_key = ? ORDER BY id DESC LIMIT ?",
            (user.lower(), limit),
        )
        return [(nonce, ident) for nonce, ident in reversed(rows)]

    def rooms(self) -> list[str]:
        """Every room ever created, sorted."""
        return [name for (name,) in self._read("SELECT name FROM rooms ORDER BY name", ())]

    def first_id_since(self, stamp: str) -> int | None:
        """The id of the oldest message stamped at or after ``stamp`` (ISO text, as stored)."""
        rows = self._read(
            "SELECT id FROM messages WHERE timestamp >= ? ORDER BY id LIMIT 1", (stamp,)
        )
        return int(rows[0][0]) if rows else None

    def id_keeping(self, keep: int) -> int | None:
        """The id of the oldest of the newest ``keep`` messages (older ones may go)."""
        rows = self._read("SELECT id FROM messages ORDER BY id DESC LIMIT 1 OFFSET ?", (keep - 1,))
        return int(rows[0][0]) if rows else None

    def count(self) -> int:
        (total,) = self._read("SELECT COUNT(*) FROM messages", ())[0]
        return int(total)

    def close(self) -> None:
        with self._write_lock:
            self._db.close()
        if self._reader is not self._db:
            with self._read_lock:
                self._reader.close()

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Rows of a query on the read connection (``Any``: as sqlite3 types them)."""
        with self._read_lock:
            return self._reader.execute(sql, params).fetchall()


def _make_private(path: Path) -> None:
    """Create the history file's folder (0700) and the file (0600) if missing: the history
    holds direct messages, so other local users must not read it."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def fts_query(words: str) -> str | None:
    """An FTS5 query holding every word of ``words`` as a prefix, or ``None`` if there is no
    word.  Each word is one double-quoted string (quotes doubled), so nothing a user types can
    be FTS5 syntax (``AND``, ``NEAR``, ``:``, ``*``, parentheses are all just text)."""
    parts = words.split()[:_MAX_SEARCH_WORDS]
    if not parts:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in parts)


def _create_fts(db: sqlite3.Connection) -> bool:
    """Create (or bring up to date) the search index; False without FTS5.  A file from before
    batched indexing had every row indexed by a trigger: it starts indexed up to its newest
    row, and the trigger goes."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            for statement in _FTS:
                db.execute(statement)
            if db.execute("SELECT 1 FROM fts_indexed").fetchone() is None:
                if "messages_fts" not in names:
                    db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
                # Indexed up to the newest row: rebuilt just now, or kept so by the old trigger.
                db.execute("INSERT INTO fts_indexed SELECT COALESCE(MAX(id), 0) FROM messages")
            db.execute("DROP TRIGGER IF EXISTS messages_fts_insert")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        if "fts5" not in str(exc):
            raise
        log.warning(
            "this Python's SQLite (%s) has no FTS5: search is off (clients get 'unavailable');"
            " the official Python builds for Windows, macOS and Linux include it",
            sqlite3.sqlite_version,
        )
        return False
    return True


def _upper(before: int | None) -> int:
    """The exclusive id bound of a page (SQLite integers stop at 2**63 - 1)."""
    return 2**63 - 1 if before is None else min(before, 2**63 - 1)


def _page(rows: list[tuple[object, ...]], limit: int) -> tuple[list[Message], bool]:
    more = len(rows) > limit
    return [_row_message(row) for row in reversed(rows[:limit])], more


def _row_message(row: tuple[object, ...]) -> Message:
    ident, stamp, sender, text, nonce, room, recipient = row
    assert isinstance(ident, int) and isinstance(stamp, str)
    assert isinstance(sender, str) and isinstance(text, str)
    moment = parse_timestamp(stamp)
    assert moment is not None, f"unreadable timestamp {stamp!r} in history row {ident}"
    return Message(
        text,
        sender,
        moment,
        ident,
        nonce if isinstance(nonce, str) else None,
        room if isinstance(room, str) else None,
        recipient if isinstance(recipient, str) else None,
    )
