"""Registered names and the guard on password logins (PROTOCOL.md, Registered names).

``Accounts`` keeps one salted ``hashlib.scrypt`` hash per registered name, in a ``users``
table of the history's SQLite file (its own connection; the history store set WAL mode, so
a password change never waits for a batch of messages).  Only the hash is stored, with the
parameters it was made with (``scrypt$N$r$p$salt$hash``), so the cost can be raised later
without locking anyone out.  A ``:memory:`` database keeps the accounts in memory too.

``LoginGuard`` answers failed password logins from one address more and more slowly (1 s,
2 s, 4 s, ... at most 30 s) and refuses an address that failed more than 20 times in a minute.
Without it one connection tried 96,000 passwords a second.  The delay is slept in the failing
connection's own thread, so nobody else waits.  Failures are logged as a summary per address
(the first at once, then at most one line a minute), never one line per guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from common.protocol import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

log = logging.getLogger(__name__)

# scrypt cost: 16 MiB and about 50 ms per hash on a laptop core (the parameters OWASP lists).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAXMEM = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""


class AccountsUnavailable(Exception):
    """The database could not take the write (locked, disk full)."""


def password_problem(password: object) -> str | None:
    """Why ``password`` cannot be a password, in words, or None when it can."""
    if not isinstance(password, str):
        return "the password must be a string"
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        return f"a password is {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return "the password holds an unpaired surrogate (not valid Unicode)"
    return None


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): everything ``check_password`` needs."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_MAXMEM,
        dklen=HASH_BYTES,
    )
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def check_password(password: object, stored: str) -> bool:
    """Whether ``password`` hashes to ``stored``; compared in constant time.  A non-string
    or invalid-Unicode password is simply wrong."""
    if not isinstance(password, str):
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, UnicodeEncodeError):
        if not stored.startswith("scrypt$"):
            log.error("unreadable password hash in the users table")
        return False
    return scheme == "scrypt" and hmac.compare_digest(got, expected)


class AccountStore(ABC):
    """Registered names and their password hashes, wherever they are kept: the checks are
    the same (scrypt made and compared here, outside any lock); only the storage differs
    (SQLite here, Redis in cluster mode: server/cluster_accounts.py)."""

    @abstractmethod
    def stored_hash(self, name: str) -> str | None:
        """The hash for ``name`` (any case), or None when the name is not registered."""

    @abstractmethod
    def _store_hash(self, name: str, hashed: str) -> None:
        """Keep ``hashed`` for ``name``; ``AccountsUnavailable`` when it cannot."""

    @abstractmethod
    def close(self) -> None: ...

    def is_registered(self, name: str) -> bool:
        return self.stored_hash(name) is not None

    def verify(self, name: str, password: object) -> bool:
        """True when ``name`` is registered and ``password`` is its password."""
        stored = self.stored_hash(name)
        return stored is not None and check_password(password, stored)

    def set_password(self, name: str, password: str) -> None:
        """Register ``name`` or change its password (the caller checked the old one)."""
        self._store_hash(name, hash_password(password))  # hashing takes ~50 ms


class Accounts(AccountStore):
    """Registered names in the history file's ``users`` table.  Thread-safe (one lock, one
    connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    def stored_hash(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT hash FROM users WHERE name_key = ?", (name.lower(),)
            ).fetchone()
        return None if row is None else str(row[0])

    def _store_hash(self, name: str, hashed: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO users (name_key, name, hash, updated) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name_key) DO UPDATE SET hash = excluded.hash,"
                    " updated = excluded.updated",
                    (name.lower(), name, hashed, stamp),
                )
        except sqlite3.Error as exc:
            log.warning("cannot store the password of %s: %s", name, exc)
            raise AccountsUnavailable(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------------ the guard
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
WINDOW_SECONDS = 60.0
MAX_FAILURES = 20  # in WINDOW_SECONDS; one more and the address is refused
LOG_EVERY_SECONDS = 60.0
_MAX_ADDRESSES = 10_000  # records kept before the quiet ones are forgotten


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a failed password login: wait ``delay`` seconds and answer
    ``auth_failed``, or (``refused``) answer ``too_many_attempts`` and close."""

    delay: float
    refused: bool


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)
    unlogged: int = 0
    last_log: float = -math.inf
    refused_logged: bool = False


class LoginGuard:
    """Failed password logins per address (see the module docstring).  Thread-safe."""

    def __init__(
        self, first_delay: float = FIRST_DELAY_SECONDS, max_delay: float = MAX_DELAY_SECONDS
    ) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def refused(self, address: str) -> bool:
        """True while ``address`` has more than ``MAX_FAILURES`` failures in the window: its
        logins are not even checked (a guess then costs the attacker a connection)."""
        with self._lock:
            record = self._records.get(address)
            if record is None:
                return False
            _expire(record, time.monotonic())
            return len(record.failures) > MAX_FAILURES

    def failed(self, address: str, name: str, what: str) -> Verdict:
        """Count one failed login from ``address``; say how to answer it."""
        now = time.monotonic()
        with self._lock:
            record = self._records.get(address)
            if record is None:
                if len(self._records) >= _MAX_ADDRESSES:
                    self._forget_quiet(now)
                record = self._records[address] = _Record()
            _expire(record, now)
            record.failures.append(now)
            while len(record.failures) > MAX_FAILURES + 1:
                record.failures.popleft()
            count = len(record.failures)
            record.unlogged += 1
            refused = count > MAX_FAILURES
            if refused and not record.refused_logged:
                record.refused_logged = True
                log.warning(
                    "%s: more than %d failed password logins in %g s; refusing its logins "
                    "for a while (too_many_attempts)",
                    address,
                    MAX_FAILURES,
                    WINDOW_SECONDS,
                )
            if now - record.last_log >= LOG_EVERY_SECONDS:
                log.warning(
                    "%s: %d failed password login(s) since the last report "
                    "(%d in the last minute; latest: %s for name %r)",
                    address,
                    record.unlogged,
                    count,
                    what,
                    name[:32],
                )
                record.unlogged = 0
                record.last_log = now
        delay = min(self.max_delay, self.first_delay * 2 ** (count - 1))
        return Verdict(0.0 if refused else delay, refused)

    def _forget_quiet(self, now: float) -> None:
        for address in list(self._records):
            record = self._records[address]
            _expire(record, now)
            if not record.failures:
                del self._records[address]


def _expire(record: _Record, now: float) -> None:
    while record.failures and now - record.failures[0] > WINDOW_SECONDS:
        record.failures.popleft()
    if not record.failures:
        record.refused_logged = False
