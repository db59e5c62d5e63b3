"""The chat room: who is logged in, what was said, and who hears it.

``Room`` is the small interface the connection handlers use: ``join``, ``leave``, ``post``,
``settle``, ``names``.  ``LocalRoom`` implements it for one process.

Group commit.  ``post`` does not touch the database: it queues a draft and returns, and one
history writer thread (``tkchat-history``) takes everything that has arrived, stores it in one
SQLite transaction, and only after the commit broadcasts it.  So every message a client sees
echoed is on disk first (PROTOCOL.md, Server duties), ids follow the queue order, and the
broadcast of a whole batch is encoded once and handed to each member as one byte string (one
``put`` and, for TkChat clients, one ``send`` per member per batch instead of per message).
Join and leave events ride the same queue, so they are batched the same way and stay in order
with the messages around them.

Ordering per connection: messages reach every member in id order (one thread broadcasts them).
A connection's own answers (errors, ``names``, logout) must not overtake the echo of a message
it sent earlier, so the handler calls ``settle`` before answering, which waits until that
member's queued posts are broadcast.  ``post`` also blocks while a member has more than
``MAX_PENDING`` posts queued: a client sending as fast as it can is slowed to the commit rate
instead of growing the queue without bound.

Locks: ``_lock`` guards the members and the recent history (join's welcome and a batch's
broadcast are atomic with respect to each other, so a new member gets each message exactly once,
in history or live).  ``_cond`` guards the writer's queue and the pending counts.  The writer
takes ``_cond`` and ``_lock`` one after the other, never nested.  Only the writer thread uses the
store after start-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from common.message import Message
from common.protocol import Event, MessageParser
from common.timestamps import now_utc
from server.history import HistoryStore

log = logging.getLogger(__name__)

NONCE_MEMORY = 1000  # a user's nonce is remembered over their last this-many messages
MAX_PENDING = 256  # posts of one member queued before ``post`` blocks
MAX_BATCH = 2000  # drafts in one transaction (bounds the latency of a batch)
NOTICE_LINGER = 0.02  # seconds join/leave events wait to be batched (messages never wait)
SETTLE_SECONDS = 10.0  # longest a handler waits for its posts to be broadcast


class Member(Protocol):
    """What the room needs of a logged-in connection."""

    @property
    def name(self) -> str | None: ...

    def deliver(self, data: bytes) -> None:
        """Queue already-encoded bytes for this member; never blocks."""

    def deliver_batch(self, data: bytes, parts: list[bytes]) -> None:
        """Queue several encoded objects: ``data`` is ``b"".join(parts)``, shared by every
        member; a member that must send one object per write uses ``parts``.  Never blocks."""

    def welcome(self, users: list[str], history: list[Message]) -> None:
        """Queue the login answer; called under the room lock, before any later broadcast."""


class NameTaken(Exception):
    """The name (in any case) belongs to someone logged in."""


class Unavailable(Exception):
    """The store cannot take the write now (in cluster mode: Redis cannot be reached); nothing
    was stored, and the client is told ``unavailable``."""


class Room(Protocol):
    def join(self, name: str, member: Member) -> None:
        """Register ``member`` as ``name``; ``member.welcome`` runs before anyone else hears of
        it. Raises ``NameTaken``."""

    def leave(self, name: str, member: Member) -> None:
        """Unregister; tell the others.  Does nothing if ``member`` is not ``name``'s holder."""

    def post(self, name: str, member: Member, text: str, nonce: str | None) -> None:
        """Queue a message: it is stored, then delivered to every member (the sender
        included).  Returns before that happens; see ``settle``."""

    def settle(self, member: Member, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait until every message ``member`` posted has been stored and broadcast."""

    def names(self) -> list[str]:
        """Logged-in names, sorted."""


@dataclass
class _Nonces:
    """One user's nonces over their last ``NONCE_MEMORY`` messages, each with its message id.

    Ids, not messages: a thousand 4,000-character texts per user would make memory grow with
    what users say; a repeat (rare) reads its original back from the store."""

    order: deque[str | None] = field(default_factory=lambda: deque(maxlen=NONCE_MEMORY))
    by_nonce: dict[str, int] = field(default_factory=dict)

    def remember(self, nonce: str | None, ident: int) -> None:
        if len(self.order) == NONCE_MEMORY:
            old = self.order[0]
            if old is not None and old != nonce:
                self.by_nonce.pop(old, None)
        self.order.append(nonce)
        if nonce is not None:
            self.by_nonce[nonce] = ident


@dataclass(slots=True)
class _Draft:
    """A message waiting for the writer."""

    member: Member
    message: Message


@dataclass(slots=True)
class _Notice:
    """A join/leave event waiting for the writer.  Only members who joined before it
    (a smaller ``epoch``) hear it: a later member's welcome already shows its outcome."""

    data: bytes
    epoch: int
    left: str | None = None  # lower-case name of the user who left, for a leave event


class LocalRoom:
    """A room in this process: the one owner of users, recent history and nonces."""

    def __init__(self, store: HistoryStore, history_size: int = 100) -> None:
        self._store = store
        self._lock = threading.Lock()
        # lower-case name -> (name, member, epoch of its join)
        self._members: dict[str, tuple[str, Member, int]] = {}
        self._epoch = 0  # counts joins and leaves
        self._recent: deque[Message] = deque(store.recent(history_size), maxlen=history_size)
        self._nonces: dict[str, _Nonces] = {}
        self.history_size = history_size
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Draft | _Notice] = []
        self._pending: dict[Member, int] = {}
        self._waiters = 0
        self._stopping = False
        self._stopped = False
        self._lingering = False  # the writer is holding a batch of notices back for more
        self._writer = threading.Thread(target=self._run, name="tkchat-history", daemon=True)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._writer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Store and broadcast everything queued, then end the writer thread.  Posts after
        this are dropped (never echoed, so the client knows they were not stored)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer.is_alive():
            self._writer.join(timeout)
            if self._writer.is_alive():
                log.error("history writer did not stop within %.1f s", timeout)

    # ------------------------------------------------------------------ Room
    def join(self, name: str, member: Member) -> None:
        key = name.lower()
        with self._lock:
            if key in self._members:
                raise NameTaken(self._members[key][0])
            self._epoch += 1
            self._members[key] = (name, member, self._epoch)
            member.welcome(self._sorted_names(), list(self._recent))
            event = MessageParser.encode(
                MessageParser.info(f"{name} joined the chat", event=Event.JOIN, user=name)
            )
            # Queued under the lock, so the notices of one name stay in join/leave order.
            self._enqueue(_Notice(event, self._epoch), None)

    def leave(self, name: str, member: Member) -> None:
        key = name.lower()
        with self._lock:
            held = self._members.get(key)
            if held is None or held[1] is not member:
                return
            del self._members[key]
            self._epoch += 1
            event = MessageParser.encode(
                MessageParser.info(f"{name} left the chat", event=Event.LEAVE, user=name)
            )
            self._enqueue(_Notice(event, self._epoch, key), None)

    def post(self, name: str, member: Member, text: str, nonce: str | None) -> None:
        self._enqueue(_Draft(member, Message(text, name, now_utc(), None, nonce)), member)

    def settle(self, member: Member, timeout: float = SETTLE_SECONDS) -> bool:
        with self._cond:
            if not self._pending.get(member):
                return True
            return self._wait_locked(lambda: not self._pending.get(member), timeout)

    def names(self) -> list[str]:
        with self._lock:
            return self._sorted_names()

    # -------------------------------------------------------------- helpers
    def is_taken(self, name: str) -> bool:
        """Whether someone is logged in as ``name`` in any case."""
        with self._lock:
            return name.lower() in self._members

    def member_count(self) -> int:
        with self._lock:
            return len(self._members)

    def broadcast_info(self, text: str, **extra: object) -> None:
        """Send a server ``info`` to every member now (used for the shutdown notice)."""
        data = MessageParser.encode(MessageParser.info(text, **extra))
        with self._lock:
            for _, member, _ in self._members.values():
                member.deliver(data)

    def _sorted_names(self) -> list[str]:
        return sorted(name for name, _, _ in self._members.values())

    def _wait_locked(self, done: object, timeout: float) -> bool:
        """Wait on ``_cond`` (held) until ``done()`` or the writer has stopped."""
        assert callable(done)
        deadline = time.monotonic() + timeout
        self._waiters += 1
        try:
            while not done() and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        finally:
            self._waiters -= 1
        return bool(done())

    def _closing(self) -> bool:
        """Whether ``stop`` has begun (a method, so a re-check after a wait is not "narrowed")."""
        return self._stopping

    def _enqueue(self, item: _Draft | _Notice, member: Member | None) -> None:
        with self._cond:
            if self._closing():
                if member is not None:
                    log.warning("message from %s dropped: the server is stopping", member.name)
                return
            if member is not None:
                count = self._pending.get(member, 0)
                if count >= MAX_PENDING:
                    self._wait_locked(lambda: self._pending.get(member, 0) < MAX_PENDING, 30.0)
                    if self._closing():
                        return
                    count = self._pending.get(member, 0)
                self._pending[member] = count + 1
            self._queue.append(item)
            if len(self._queue) == 1 or (self._lingering and member is not None):
                self._cond.notify_all()

    # ---------------------------------------------------------- writer thread
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        return
                    if not self._stopping and all(isinstance(i, _Notice) for i in self._queue):
                        # Only join/leave events: wait a moment for more, so that a login storm
                        # costs each member one write per moment instead of one per login.
                        self._lingering = True
                        self._cond.wait(NOTICE_LINGER)
                        self._lingering = False
                    batch = self._queue[:MAX_BATCH]
                    del self._queue[:MAX_BATCH]
                try:
                    self._write(batch)
                except Exception:
                    log.exception("history writer: a batch of %d was not stored", len(batch))
                with self._cond:
                    for item in batch:
                        if isinstance(item, _Draft):
                            left = self._pending[item.member] - 1
                            if left:
                                self._pending[item.member] = left
                            else:
                                del self._pending[item.member]
                    if self._waiters:
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _write(self, batch: list[_Draft | _Notice]) -> None:
        """Store the batch's new messages in one transaction, then broadcast the batch."""
        fresh: list[_Draft] = []
        repeats: dict[int, Message | _Draft] = {}  # index in batch -> original, or its draft
        seen: dict[tuple[str, str], _Draft] = {}  # (user key, nonce) in this batch
        for index, item in enumerate(batch):
            if isinstance(item, _Notice):
                continue
            message = item.message
            if message.nonce is not None:
                key = (message.user.lower(), message.nonce)
                known = self._nonces_of(message.user).by_nonce.get(message.nonce)
                original = None if known is None else self._store.get(known)
                earlier = seen.get(key)
                if original is not None:
                    repeats[index] = original
                    continue
                if earlier is not None:
                    repeats[index] = earlier
                    continue
                seen[key] = item
            fresh.append(item)
        stored = self._store.insert_many([d.message for d in fresh]) if fresh else []
        by_draft = {id(d): m for d, m in zip(fresh, stored, strict=True)}
        for message in stored:
            assert message.id is not None
            self._nonces_of(message.user).remember(message.nonce, message.id)
        # Encode each object once; the whole batch becomes one byte string for most members.
        parts: list[bytes] = []
        epochs: list[int] = []  # a notice's epoch; 0 for a message (everyone hears it)
        private: list[tuple[Member, bytes]] = []  # nonce repeats: only their sender hears them
        for index, item in enumerate(batch):
            if isinstance(item, _Notice):
                parts.append(item.data)
                epochs.append(item.epoch)
            elif index in repeats:
                again = repeats[index]
                original = again if isinstance(again, Message) else by_draft[id(again)]
                private.append((item.member, _encode(original)))
            else:
                parts.append(_encode(by_draft[id(item)]))
                epochs.append(0)
        shared = b"".join(parts)
        first_notice = min((e for e in epochs if e), default=0)
        with self._lock:
            self._recent.extend(stored)
            for _, member, joined in self._members.values():
                if first_notice and joined >= first_notice:  # joined during this batch
                    own = [p for p, e in zip(parts, epochs, strict=True) if e == 0 or e > joined]
                    if own:
                        member.deliver_batch(b"".join(own), own)
                elif parts:
                    member.deliver_batch(shared, parts)
            for member, data in private:
                member.deliver(data)
            # A user who left takes their nonce memory along (it is reloaded from the store if
            # they come back), so a server that sees many names does not grow without bound.
            gone = [i.left for i in batch if isinstance(i, _Notice) and i.left]
            for name_key in gone:
                if name_key not in self._members:
                    self._nonces.pop(name_key, None)

    def _nonces_of(self, name: str) -> _Nonces:
        key = name.lower()
        nonces = self._nonces.get(key)
        if nonces is None:
            nonces = _Nonces()
            for nonce, ident in self._store.recent_nonces(name, NONCE_MEMORY):
                nonces.remember(nonce, ident)
            self._nonces[key] = nonces
        return nonces


def _encode(message: Message) -> bytes:
    return MessageParser.encode(message.to_response())
