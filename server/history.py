"""``HistoryStore``: the chat history in SQLite, the one thing that outlives the process.

WAL mode with ``synchronous=NORMAL``: a commit is in the WAL file before ``insert`` returns, so
a message the server has echoed survives ``kill -9`` of the server (only a power cut of the
whole machine can lose the last commits).  ``AUTOINCREMENT`` keeps ids strictly increasing
across restarts even if rows are ever deleted.  ``:memory:`` keeps no history at all.

Not thread-safe by itself: its one owner (the room) calls it under the room's lock.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from common.message import Message
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
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (sender_key, id);
"""


class HistoryStore:
    """Append-only message log with ids that carry on across restarts."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def insert_many(self, drafts: Iterable[Message]) -> list[Message]:
        """Store messages (their ``id`` is ignored) in one transaction; return them with ids.

        One transaction per batch is what makes group commit cheap; the commit is done when
        this returns, so the caller may broadcast.
        """
        stored: list[Message] = []
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for draft in drafts:
                cur.execute(
                    "INSERT INTO messages (timestamp, sender, sender_key, text, nonce)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        format_timestamp(draft.timestamp),
                        draft.user,
                        draft.user.lower(),
                        draft.text,
                        draft.nonce,
                    ),
                )
                ident = cur.lastrowid
                assert ident is not None
                stored.append(replace(draft, id=ident))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return stored

    def insert(self, draft: Message) -> Message:
        return self.insert_many([draft])[0]

    def recent(self, limit: int) -> list[Message]:
        """The newest ``limit`` messages, oldest first."""
        rows = self._db.execute(
            "SELECT id, timestamp, sender, text, nonce FROM messages ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_row_message(row) for row in reversed(rows)]

    def get(self, ident: int) -> Message | None:
        """The message with this id, if stored."""
        row = self._db.execute(
            "SELECT id, timestamp, sender, text, nonce FROM messages WHERE id = ?", (ident,)
        ).fetchone()
        return None if row is None else _row_message(row)

    def recent_nonces(self, user: str, limit: int) -> list[tuple[str | None, int]]:
        """``(nonce, id)`` of the newest ``limit`` messages of one user (any case), oldest
        first: what the room needs to recognise a resent message, without the texts."""
        rows = self._db.execute(
            "SELECT nonce, id FROM messages WHERE sender_key = ? ORDER BY id DESC LIMIT ?",
            (user.lower(), limit),
        ).fetchall()
        return [(nonce, ident) for nonce, ident in reversed(rows)]

    def count(self) -> int:
        (total,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        return int(total)

    def close(self) -> None:
        self._db.close()


def _row_message(row: tuple[int, str, str, str, str | None]) -> Message:
    ident, stamp, sender, text, nonce = row
    moment = parse_timestamp(stamp)
    assert moment is not None, f"unreadable timestamp {stamp!r} in history row {ident}"
    return Message(text, sender, moment, ident, nonce)
