"""The history file's place on disk, made ready before SQLite opens it.

Why not in ``HistoryStore``: SQLite creates a missing file with the process's umask (readable
by every local user: the whole chat), and a ``--db`` under a regular file failed deep inside as
"cannot listen ... File exists".  Both ``python -m server`` and the GUI's "Host a chat" (through
``ChatServer``) come through here first.
"""

from __future__ import annotations

import os
from pathlib import Path


class DbPathError(ValueError):
    """The history file cannot be made where ``--db`` says; the text says why, for a person."""


def prepare_db(db: str) -> str | None:
    """Make the history file's folder (0700) and the file (0600), private to this user.

    Returns a sentence for the user when that cannot be done (None when all is well).  Runs
    before the store opens, so that SQLite finds a file it may use and nobody else may read,
    and so a ``--db`` under a regular file is reported as what it is (SQLite's own message
    was "cannot listen ... File exists").
    """
    if db == ":memory:" or db.startswith("file:"):
        return None
    path = Path(db).expanduser()
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"--db {db}: {parent} is a file, not a folder; pick another path"
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_dir():
            return f"--db {db} is a folder; give a file name inside it"
        # O_CREAT with 0600: a new history file is private from its first byte (SQLite's
        # -wal and -shm files take the same mode).  An existing file keeps its mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        return f"--db {db}: cannot create it: {exc.strerror or exc}"
    return None


def private_db(db: str) -> None:
    """``prepare_db``, raising ``DbPathError`` with its sentence."""
    problem = prepare_db(db)
    if problem is not None:
        raise DbPathError(problem)
