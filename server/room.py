"""The conversations: who is logged in, who is in which room, what was said, and who hears it.

``LocalRoom`` is the one owner of this state for a server that is one process (a cluster
server puts a Redis-backed class with the same public methods in its place).  Its public
interface, one method per kind of request, is what ``ClientHandler`` calls:

- ``join(name, member)`` / ``leave(name, member)``: log in (into ``general``) / log out (out
  of every room).  ``join`` raises ``NameTaken``.
- ``enter(room, member)`` / ``part(room, member)``: the ``join`` and ``part`` requests.
- ``post(name, member, text, nonce, *, room=None, to=None)``: the ``msg`` request, to a room or
  (``to``) to one person.
- ``settle(member)``: wait until that member's posts are stored and broadcast.
- ``names(room, member)``, ``rooms()``, ``page(member, room, before, limit)``,
  ``direct_page(member, other, before, limit)``, ``search(member, words, room, limit)``:
  the read-only requests.
- ``is_taken(name)``.

A refused request raises ``Refused`` with the protocol's error code and a text for a person;
the handler turns it into an ``error`` answer.

Group commit.  ``post`` does not touch the database: it queues a draft and returns, and one
history writer thread (``tkchat-history``) takes everything that has arrived, stores it in one
SQLite transaction, and only after the commit broadcasts it.  So every message a client sees
echoed is on disk first (PROTOCOL.md, Server duties), ids follow the queue order, and the
broadcast of a batch is encoded once: a member who hears all of a room's part of a batch gets
one shared byte string (one ``put`` and, for TkChat clients, one ``send`` per member per
batch).  Join and leave events ride the same queue, so they are batched the same way and stay
in order with the messages around them.  If the commit fails (the file locked by another
program, the disk full), nothing of the batch is echoed and each of its senders gets an
``error`` with code ``unavailable`` at once; the server goes on.

Who hears what: a room's messages and events go to its members only, a direct message to its
sender and its recipient only.  A classic client (no ``"client"`` at login) is only ever in
``general`` and cannot be sent direct messages, so it sees exactly the classic protocol.
Exactly once: a member's entry in a room records the newest message id and the event count
its welcome showed; a batch broadcast later skips what that welcome already held.

Ordering per connection: messages reach every member in id order (one thread broadcasts them).
A connection's own answers (errors, ``names``, logout) must not overtake the echo of a message
it sent earlier, so the handler calls ``settle`` before answering, which waits until that
member's queued posts are broadcast.  ``post`` also blocks while a member has more than
``MAX_PENDING`` posts queued: a client sending as fast as it can is slowed to the commit rate
instead of growing the queue without bound.

Lock order (never taken the other way round): ``_lock`` -> ``_cond`` -> the store's locks ->
a member's outbox lock.
- ``_lock`` guards membership, the recent history of each room and the nonce memory's
  members; a welcome (login or room join) and a batch's broadcast are atomic with respect to
  each other.  ``Member.welcome``/``Member.joined`` run under it, so they only queue bytes:
  they must never wait for the writer (``settle``), which needs ``_lock`` to broadcast.  The
  handler settles before it calls ``join``/``enter``.
- ``_cond`` guards the writer's queue and the pending counts.  Nothing that holds ``_cond``
  takes ``_lock``; the writer takes them one after the other, never nested.
- The store's locks are held only for one SQLite statement or transaction.  ``enter`` records
  a new room before taking ``_lock``, so a busy database never holds up a broadcast.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from common.message import GENERAL_ROOM, Message
from common.protocol import (
    MAX_PAGE,
    ErrorCode,
    ErrorResponse,
    Event,
    InfoResponse,
    MessageResponse,
    RoomInfo,
    encode_response,
)
from common.timestamps import now_utc
from server.history import HistoryStore, SearchUnavailable

log = logging.getLogger(__name__)

NONCE_MEMORY = 1000  # a user's nonce is remembered over their last this-many messages
MAX_PENDING = 256  # posts of one member queued before ``post`` blocks
MAX_BATCH = 2000  # drafts in one transaction (bounds the latency of a batch)
MAX_BATCH_BYTES = 256 * 1024  # about the most one batch's broadcast takes encoded
NOTICE_LINGER = 0.02  # seconds join/leave events wait to be batched (messages never wait)
SETTLE_SECONDS = 10.0  # longest a handler waits for its posts to be broadcast
MAX_ROOMS_LISTED = 1000  # rooms in a ``rooms`` answer (the busiest), so it fits in 64 KiB
MAX_ROOMS_PER_USER = 100  # rooms one login may be in (each holds its recent history in memory)


class Member(Protocol):
    """What the room needs of a logged-in connection."""

    @property
    def classic(self) -> bool:
        """Logged in without "client": general only, no direct messages."""

    proven: bool  # logged in with the password of a registered name

    @property
    def name(self) -> str | None: ...

    def deliver(self, data: bytes) -> None:
        """Queue already-encoded bytes for this member; never blocks."""

    def deliver_batch(self, data: bytes, parts: list[bytes]) -> None:
        """Queue several encoded objects: ``data`` is ``b"".join(parts)``, shared by every
        member; a member that must send one object per write uses ``parts``.  Never blocks."""

    def welcome(self, users: list[str], history: list[Message]) -> None:
        """Queue the login answer; called under the room lock, so it must not wait."""

    def joined(self, room: str, users: list[str], history: list[Message]) -> None:
        """Queue the answer to ``join``; called under the room lock, so it must not wait."""


class NameTaken(Exception):
    """The name (in any case) belongs to someone logged in."""


class Refused(Exception):
    """A request the room will not carry out: ``code`` (an ``ErrorCode``) and a text."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


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
    proven: bool
    to_proven: bool = False  # a direct message's recipient had proven its name


@dataclass(slots=True)
class _Notice:
    """A join/leave event of one room waiting for the writer.  Only members who entered the
    room before it (a smaller ``epoch``) hear it: a later member's welcome shows its outcome."""

    data: bytes
    epoch: int
    room: str
    left: str | None = None  # lower-case name of a user who logged out, for a leave event


@dataclass(slots=True)
class _Seat:
    """A member's place in one room: the event count and newest message id its welcome to
    the room already covered (a broadcast skips what is not newer)."""

    member: Member
    epoch: int
    since_id: int


class LocalRoom:
    """The conversations of this process: the one owner of users, rooms, recent history and
    nonces.  See the module docstring for the interface and the locking rules."""

    def __init__(
        self,
        store: HistoryStore,
        history_size: int = 100,
        throttle: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        # Called after each broadcast, outside the locks: waits for readers that are behind
        # but reading (``Sender.throttle``), so big bursts go out at the readers' pace.
        self._throttle = throttle
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}  # lower-case name -> name as logged in
        self._rooms: dict[str, dict[str, _Seat]] = {GENERAL_ROOM: {}}  # room -> key -> seat
        self._joined: dict[str, set[str]] = {}  # lower-case name -> rooms it is in
        self._epoch = 0  # counts joins and leaves of every room
        # The last messages of each room that has members (general always).
        self._recent: dict[str, deque[Message]] = {
            GENERAL_ROOM: deque(store.recent(history_size), maxlen=history_size)
        }
        self._nonces: dict[str, _Nonces] = {}
        self.history_size = history_size
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Draft | _Notice] = []
        self._pending: dict[Member, int] = {}
        self._waiters = 0
        self._stopping = False
        self._stopped = False
        self._lingering = False  # the writer is holding a batch of notices back for more
        # A batch is being stored and broadcast, by the writer thread or (``_enqueue``) by the
        # thread that posted it: one at a time, so ids and deliveries keep the queue's order.
        self._writing = False
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

    # ------------------------------------------------------------ log in/out
    def join(self, name: str, member: Member) -> None:
        """Log ``name`` in (into ``general``); ``member.welcome`` runs before anyone else
        hears of it.  Raises ``NameTaken``."""
        key = name.lower()
        with self._lock:
            if key in self._users:
                raise NameTaken(self._users[key])
            self._users[key] = name
            self._joined[key] = {GENERAL_ROOM}
            recent = self._recent[GENERAL_ROOM]
            self._epoch += 1
            self._rooms[GENERAL_ROOM][key] = _Seat(member, self._epoch, _last_id(recent))
            member.welcome(self._sorted_names(GENERAL_ROOM), list(recent))
            event = encode_response(
                InfoResponse(f"{name} joined the chat", event=Event.JOIN, user=name)
            )
            # Queued under the lock, so the notices of one name stay in join/leave order.
            self._enqueue(_Notice(event, self._epoch, GENERAL_ROOM), None)

    def leave(self, name: str, member: Member) -> None:
        """Log out: leave every room and tell their members.  Does nothing if ``member`` is
        not ``name``'s holder."""
        key = name.lower()
        with self._lock:
            seat = self._rooms[GENERAL_ROOM].get(key)
            if seat is None or seat.member is not member:
                return
            del self._users[key]
            for room in sorted(self._joined.pop(key), key=lambda r: r == GENERAL_ROOM):
                self._remove_seat(room, key)
                self._epoch += 1
                if room == GENERAL_ROOM:
                    info = InfoResponse(f"{name} left the chat", event=Event.LEAVE, user=name)
                    self._enqueue(_Notice(encode_response(info), self._epoch, room, key), None)
                else:
                    self._enqueue(self._leave_notice(name, room), None)

    # ------------------------------------------------------------------ rooms
    def enter(self, room: str, member: Member) -> None:
        """Put ``member`` in ``room`` (a valid, lower-case name), creating it if new;
        ``member.joined`` runs before the room's members hear of it.  Joining a room one is in
        answers the same again, without an event."""
        name = member.name
        assert name is not None
        if member.classic:
            raise Refused(ErrorCode.INVALID_ROOM, "a classic client has only the room general")
        key = name.lower()
        if room not in self._joined.get(key, ()) and len(self._joined.get(key, ())) >= (
            MAX_ROOMS_PER_USER
        ):
            raise Refused(
                ErrorCode.INVALID_ROOM,
                f"you are in {MAX_ROOMS_PER_USER} rooms already; part one before joining {room}",
            )
        try:
            if room not in self._rooms:  # a room with members is stored already
                self._store.add_room(room)
        except sqlite3.Error as exc:
            log.warning("room %s not created: %s", room, exc)
            raise Refused(
                ErrorCode.UNAVAILABLE, "the history store is busy; the room was not created"
            ) from exc
        with self._lock:
            rooms = self._joined.get(key)
            if rooms is None:
                return  # logged out meanwhile
            recent = self._recent.get(room)
            if recent is None:
                with _store_reads():
                    stored = self._store.recent(self.history_size, room)
                recent = deque(stored, self.history_size)
                self._recent[room] = recent
            seats = self._rooms.setdefault(room, {})
            fresh = key not in seats
            if fresh:
                self._epoch += 1
                seats[key] = _Seat(member, self._epoch, _last_id(recent))
                rooms.add(room)
            member.joined(room, self._sorted_names(room), list(recent))
            if fresh:
                info = InfoResponse(f"{name} joined {room}", event=Event.JOIN, room=room, user=name)
                self._enqueue(_Notice(encode_response(info), self._epoch, room), None)

    def part(self, room: str, member: Member) -> None:
        """Take ``member`` out of ``room`` and tell the others.  ``general`` cannot be left
        (``invalid_room``); a room one is not in: ``not_in_room``."""
        if room == GENERAL_ROOM:
            raise Refused(ErrorCode.INVALID_ROOM, "general cannot be left (log out instead)")
        name = member.name
        assert name is not None
        key = name.lower()
        with self._lock:
            self._check_seat(room, key)
            self._remove_seat(room, key)
            self._joined[key].discard(room)
            self._epoch += 1
            self._enqueue(self._leave_notice(name, room), None)

    def rooms(self) -> list[RoomInfo]:
        """Every room (stored ones, even empty), sorted by name, with its member count; the
        busiest ``MAX_ROOMS_LISTED`` when there are more."""
        with _store_reads():
            names = self._store.rooms()
        with self._lock:
            infos = [RoomInfo(n, len(self._rooms.get(n, ()))) for n in names]
        if len(infos) > MAX_ROOMS_LISTED:
            infos = sorted(infos, key=lambda r: -r.users)[:MAX_ROOMS_LISTED]
            infos.sort(key=lambda r: r.name)
        return infos

    def names(self, room: str = GENERAL_ROOM, member: Member | None = None) -> list[str]:
        """The names in ``room``, sorted; ``not_in_room`` if ``member`` (when given: the
        asker) is not in it."""
        with self._lock:
            if member is not None:
                self._check_seat(room, member_key(member))
            return self._sorted_names(room)

    # --------------------------------------------------------------- messages
    def post(
        self,
        name: str,
        member: Member,
        text: str,
        nonce: str | None,
        *,
        room: str | None = None,
        to: str | None = None,
    ) -> None:
        """Queue a message to ``room`` (default general) or, with ``to``, to that user: it is
        stored, then delivered to the room's members (or the two), the sender included.
        Returns before that happens; see ``settle``.  Raises ``Refused`` (``not_in_room``,
        ``no_such_user``) when it cannot be delivered; nothing is stored then."""
        key = name.lower()
        with self._lock:
            if to is not None:
                recipient = self._rooms[GENERAL_ROOM].get(to.lower())
                if recipient is None:
                    raise Refused(ErrorCode.NO_SUCH_USER, f"{to} is not online")
                if recipient.member.classic:
                    raise Refused(
                        ErrorCode.NO_SUCH_USER,
                        f"{to} uses a program that cannot receive direct messages",
                    )
                to = self._users[to.lower()]
                to_proven = recipient.member.proven
                message = Message(text, name, now_utc(), None, nonce, None, to)
            else:
                room = room or GENERAL_ROOM
                self._check_seat(room, key)
                to_proven = False
                message = Message(text, name, now_utc(), None, nonce, room)
        self._enqueue(_Draft(member, message, member.proven, to_proven), member)

    def settle(self, member: Member, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait until every message ``member`` posted has been stored and broadcast."""
        with self._cond:
            if not self._pending.get(member):
                return True
            return self._wait_locked(lambda: not self._pending.get(member), timeout)

    # ------------------------------------------------------ older history, search
    def page(
        self, member: Member, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest ``limit`` messages of ``room`` older than id ``before`` (oldest first)
        and whether there are older ones; ``not_in_room`` if ``member`` is not in it."""
        with self._lock:
            self._check_seat(room, member_key(member))
        with _store_reads():
            return self._store.page(room, before, min(limit, MAX_PAGE))

    def direct_page(
        self, member: Member, other: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Like ``page`` for the direct messages between ``member`` and ``other``: only for a
        login that proved its name (anyone may log in with an unregistered name), and only
        those it sent or received proven."""
        require_proven(member)
        with _store_reads():
            return self._store.direct_page(member_key(member), other, before, min(limit, MAX_PAGE))

    def search(self, member: Member, words: str, room: str | None, limit: int) -> list[Message]:
        """The newest ``limit`` messages holding every word, oldest first: from ``room``, or
        from every room ``member`` is in plus (proven logins only) its direct messages."""
        key = member_key(member)
        with self._lock:
            if room is not None:
                self._check_seat(room, key)
                rooms = [room]
            else:
                rooms = sorted(self._joined.get(key, ()))
        direct = key if room is None and member.proven else None
        try:
            with _store_reads():
                return self._store.search(words, rooms, direct, limit)
        except SearchUnavailable as exc:
            raise Refused(ErrorCode.UNAVAILABLE, f"search is not available here: {exc}") from exc

    # -------------------------------------------------------------- helpers
    def is_taken(self, name: str) -> bool:
        """Whether someone is logged in as ``name`` in any case."""
        with self._lock:
            return name.lower() in self._users

    def _sorted_names(self, room: str) -> list[str]:
        return sorted(self._users[key] for key in self._rooms.get(room, ()))

    def _check_seat(self, room: str, key: str) -> None:
        """Raise ``not_in_room`` unless the user ``key`` is in ``room`` (``_lock`` held)."""
        if key not in self._rooms.get(room, ()):
            raise Refused(ErrorCode.NOT_IN_ROOM, f"you are not in {room}; join it first")

    def _remove_seat(self, room: str, key: str) -> None:
        """Take ``key`` out of ``room``; an emptied room (not general) lets go of its recent
        history (reloaded from the store when someone joins again)."""
        seats = self._rooms[room]
        del seats[key]
        if not seats and room != GENERAL_ROOM:
            del self._rooms[room]
            self._recent.pop(room, None)

    def _leave_notice(self, name: str, room: str) -> _Notice:
        info = InfoResponse(f"{name} left {room}", event=Event.LEAVE, room=room, user=name)
        return _Notice(encode_response(info), self._epoch, room)

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
            # A quiet room: nothing queued and nobody writing, so the poster's own thread
            # stores and broadcasts its message, as the writer would have.  It saves a hand-over
            # to the writer thread (a wake-up, and the message's objects moving to the cache
            # of another core), which was most of a quiet message's cost (bench/SERVER.md).
            inline = member is not None and not self._queue and not self._writing
            if inline:
                self._writing = True
            else:
                self._queue.append(item)
                if len(self._queue) == 1 or (self._lingering and member is not None):
                    self._cond.notify_all()
        if inline:
            self._write_batch([item])

    def _write_batch(self, batch: list[_Draft | _Notice]) -> None:
        """Store and broadcast ``batch`` (``_writing`` is set), then let the next one go."""
        try:
            self._write(batch)
        except Exception:
            log.exception("history writer: a batch of %d was not stored", len(batch))
        try:
            if self._throttle is not None:
                self._throttle()
        finally:
            with self._cond:
                for item in batch:
                    if isinstance(item, _Draft):
                        left = self._pending[item.member] - 1
                        if left:
                            self._pending[item.member] = left
                        else:
                            del self._pending[item.member]
                self._writing = False
                if self._waiters or self._queue or self._stopping:
                    self._cond.notify_all()

    # ---------------------------------------------------------- writer thread
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._writing or (not self._queue and not self._stopping):
                        self._cond.wait()
                    if not self._queue:
                        return
                    if not self._stopping and all(isinstance(i, _Notice) for i in self._queue):
                        # Only join/leave events: wait a moment for more, so that a login storm
                        # costs each member one write per moment instead of one per login.
                        self._lingering = True
                        self._cond.wait(NOTICE_LINGER)
                        self._lingering = False
                    size = _batch_size(self._queue)
                    batch = self._queue[:size]
                    del self._queue[:size]
                    self._writing = True
                self._write_batch(batch)
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _write(self, batch: list[_Draft | _Notice]) -> None:
        """Store the batch's new messages in one transaction, then broadcast the batch.  If
        the store fails (reading nonces back or committing), every draft of the batch is
        refused with ``unavailable``; its join/leave events still go out."""
        drafts = [item for item in batch if isinstance(item, _Draft)]
        stored: list[Message] = []
        fresh: list[_Draft] = []
        repeats: dict[int, Message | _Draft] = {}
        failed = False
        try:
            fresh, repeats = self._sort_out(batch)
            if fresh:
                stored = self._store.insert_many((d.message, d.proven, d.to_proven) for d in fresh)
        except sqlite3.Error as exc:
            failed = True
            log.warning("history store unavailable, %d message(s) refused: %s", len(drafts), exc)
        except Exception:
            failed = True
            log.exception("history store failed, %d message(s) refused", len(drafts))
        if failed:
            stored, repeats = [], {}
        try:
            for message in stored:
                assert message.id is not None
                self._nonces_of(message.user).remember(message.nonce, message.id)
        except sqlite3.Error as exc:  # stored all the same: they are broadcast
            log.warning("nonce memory not updated: %s", exc)
        by_draft = {id(d): m for d, m in zip(fresh, stored, strict=False)}
        self._broadcast(batch, repeats, by_draft, failed)

    def _sort_out(
        self, batch: list[_Draft | _Notice]
    ) -> tuple[list[_Draft], dict[int, Message | _Draft]]:
        """The drafts to store, and the nonce repeats (index in batch -> the original
        message, or the earlier draft of this batch it repeats)."""
        fresh: list[_Draft] = []
        repeats: dict[int, Message | _Draft] = {}
        seen: dict[tuple[str, str], _Draft] = {}  # (user key, nonce) in this batch
        for index, item in enumerate(batch):
            if isinstance(item, _Notice):
                continue
            message = item.message
            if message.nonce is not None:
                key = (message.user.lower(), message.nonce)
                known = self._nonces_of(message.user).by_nonce.get(message.nonce)
                original = None if known is None else self._store.get(known)
                if original is not None and _same_sender(
                    item, original.message, original.proven, same_login=False
                ):
                    repeats[index] = original.message
                    continue
                earlier = seen.get(key)
                if earlier is not None and _same_sender(
                    item, earlier.message, earlier.proven, earlier.member is item.member
                ):
                    repeats[index] = earlier
                    continue
                seen[key] = item
            fresh.append(item)
        return fresh, repeats

    def _broadcast(
        self,
        batch: list[_Draft | _Notice],
        repeats: dict[int, Message | _Draft],
        by_draft: dict[int, Message],
        failed: bool,
    ) -> None:
        """Deliver a stored batch: each room's part to its members, each direct message to its
        two, nonce repeats and ``unavailable`` errors to their sender only."""
        # Encode each object once.  For each part: its room (None: a direct message), its
        # event count (0 for a message) and its message id (0 for an event).
        parts: list[bytes] = []
        rooms_of: list[str | None] = []
        epochs: list[int] = []
        idents: list[int] = []
        stored: list[Message | None] = []  # the message of each part (None: an event)
        direct: dict[int, tuple[Member, str]] = {}  # part index -> sender, recipient key
        private: list[tuple[Member, bytes]] = []
        refusal = b""
        if failed:
            refusal = encode_response(
                ErrorResponse(
                    "the history store cannot take messages now; this one was not stored"
                    " (resend it later)",
                    ErrorCode.UNAVAILABLE,
                )
            )
        for index, item in enumerate(batch):
            if isinstance(item, _Notice):
                parts.append(item.data)
                rooms_of.append(item.room)
                epochs.append(item.epoch)
                idents.append(0)
                stored.append(None)
                continue
            if index in repeats:
                again = repeats[index]
                original = again if isinstance(again, Message) else by_draft.get(id(again))
                private.append((item.member, refusal if original is None else _encode(original)))
                continue
            message = by_draft.get(id(item))
            if message is None:
                private.append((item.member, refusal))
                continue
            assert message.id is not None
            if message.to is not None:
                direct[len(parts)] = (item.member, message.to.lower())
            parts.append(_encode(message))
            rooms_of.append(message.room if message.to is None else None)
            epochs.append(0)
            idents.append(message.id)
            stored.append(message)
        by_room: dict[str, list[int]] = {}
        for index, room in enumerate(rooms_of):
            if room is not None:
                by_room.setdefault(room, []).append(index)
        with self._lock:
            for message in stored:
                if message is None or message.to is not None or message.room is None:
                    continue
                recent = self._recent.get(message.room)
                # A room's recent history loaded from the store after this commit has it.
                if recent is not None and _last_id(recent) < (message.id or 0):
                    recent.append(message)
            if len(by_room) == 1 and not direct:
                # The common case (one room, no direct message): each member hears one part,
                # the room's whole part or what came after it sat down; no bookkeeping.
                ((room, indices),) = by_room.items()
                self._to_seats(room, indices, parts, epochs, idents)
                for member, data in private:
                    member.deliver(data)
                self._forget_gone(batch)
                return
            hears: dict[Member, list[list[int]]] = {}
            whole: dict[Member, str] = {}  # members who hear all of one room's part, only
            for room, indices in by_room.items():
                seats = self._rooms.get(room)
                if not seats:
                    continue
                first_epoch = min((epochs[i] for i in indices if epochs[i]), default=0)
                first_id = min((idents[i] for i in indices if idents[i]), default=0)
                for seat in seats.values():
                    if (not first_epoch or seat.epoch < first_epoch) and (
                        not first_id or seat.since_id < first_id
                    ):
                        own = indices
                    else:
                        own = [
                            i
                            for i in indices
                            if (epochs[i] and epochs[i] > seat.epoch)
                            or (idents[i] and idents[i] > seat.since_id)
                        ]
                    if not own:
                        continue
                    lists = hears.setdefault(seat.member, [])
                    lists.append(own)
                    if own is indices and len(lists) == 1:
                        whole[seat.member] = room
                    else:
                        whole.pop(seat.member, None)
            for index, (sender, recipient_key) in direct.items():
                targets = [sender]
                held = self._rooms[GENERAL_ROOM].get(recipient_key)
                if held is not None and held.member is not sender:
                    targets.append(held.member)
                for member in targets:
                    hears.setdefault(member, []).append([index])
                    whole.pop(member, None)
            shared: dict[str, tuple[bytes, list[bytes]]] = {}  # room -> its part, joined
            for member, lists in hears.items():
                room_of_all = whole.get(member)
                if room_of_all is not None:
                    whole_part = shared.get(room_of_all)
                    if whole_part is None:
                        own_parts = [parts[i] for i in by_room[room_of_all]]
                        whole_part = shared[room_of_all] = (b"".join(own_parts), own_parts)
                    member.deliver_batch(*whole_part)
                    continue
                indices = sorted(i for own in lists for i in own)
                mine = [parts[i] for i in indices]
                member.deliver_batch(b"".join(mine), mine)
            for member, data in private:
                member.deliver(data)
            self._forget_gone(batch)

    def _to_seats(
        self,
        room: str,
        indices: list[int],
        parts: list[bytes],
        epochs: list[int],
        idents: list[int],
    ) -> None:
        """Deliver one room's part of a batch to its seats (lock held): all of it to those
        seated before its first event and message, the rest only what came after them."""
        seats = self._rooms.get(room)
        if not seats:
            return
        own_parts = [parts[i] for i in indices]
        data = b"".join(own_parts)
        first_epoch = min((epochs[i] for i in indices if epochs[i]), default=0)
        first_id = min((idents[i] for i in indices if idents[i]), default=0)
        for seat in seats.values():
            if (not first_epoch or seat.epoch < first_epoch) and (
                not first_id or seat.since_id < first_id
            ):
                seat.member.deliver_batch(data, own_parts)
                continue
            mine = [
                parts[i]
                for i in indices
                if (epochs[i] and epochs[i] > seat.epoch)
                or (idents[i] and idents[i] > seat.since_id)
            ]
            if mine:
                seat.member.deliver_batch(b"".join(mine), mine)

    def _forget_gone(self, batch: list[_Draft | _Notice]) -> None:
        """A user who left takes their nonce memory along (it is reloaded from the store if
        they come back), so a server that sees many names does not grow without bound."""
        gone = [i.left for i in batch if isinstance(i, _Notice) and i.left]
        for name_key in gone:
            if name_key not in self._users:
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


def _same_sender(draft: _Draft, original: Message, proven: bool, same_login: bool) -> bool:
    """Whether a resent nonce may be answered with ``original`` (PROTOCOL.md, ``msg``).

    The same login, or a name proven by its password both times, is the same person.  An
    unregistered name may be someone else's next time: then only a resend of the very same
    message (text and destination) counts, which hands back nothing the sender did not
    already know, instead of the previous owner's words."""
    if same_login or (draft.proven and proven):
        return True
    message = draft.message
    return (
        original.text == message.text
        and (original.to or "").lower() == (message.to or "").lower()
        and (original.room if original.to is None else None)
        == (message.room if message.to is None else None)
    )


@contextlib.contextmanager
def _store_reads() -> Iterator[None]:
    """A read the store cannot do now (a file in rollback-journal mode locked by another
    program, a disk error) is the client's ``unavailable``, not a dropped connection."""
    try:
        yield
    except sqlite3.Error as exc:
        log.warning("history store read failed: %s", exc)
        raise Refused(ErrorCode.UNAVAILABLE, "the history store cannot be read now") from exc


def require_proven(member: Member) -> None:
    """Direct messages are read back only by a password-proven login (PROTOCOL.md)."""
    if not member.proven:
        raise Refused(
            ErrorCode.BAD_REQUEST,
            "direct messages are read back only by a registered name logged in with its"
            " password (send register first)",
        )


def member_key(member: Member) -> str:
    """A logged-in member's name as rooms and stores key it: lower case."""
    name = member.name
    assert name is not None, "a request of a logged-in member"
    return name.lower()


def _last_id(recent: deque[Message]) -> int:
    return (recent[-1].id or 0) if recent else 0


def _encode(message: Message) -> bytes:
    return encode_response(MessageResponse(message))


def _batch_size(queue: list[_Draft | _Notice]) -> int:
    """How many queued items the writer takes at once: at most ``MAX_BATCH``, at most about
    ``MAX_BATCH_BYTES`` encoded (one item at least).

    A batch goes to every member as one string.  Bounded in bytes, it stays far under a
    connection's ``--max-queue-bytes``, so a reader that keeps up never holds more than a
    couple of batches (two users' bursts of 4,000 emoji once made one 19 MB string).  A
    message's encoded size is estimated from above without encoding it: printable ASCII is at
    most 2 bytes a character escaped, anything else at most 12 (an escaped surrogate pair)."""
    size = 0
    for count, item in enumerate(queue[:MAX_BATCH]):
        if isinstance(item, _Notice):
            size += len(item.data)
        else:
            text = item.message.text
            per_char = 2 if text.isascii() and text.isprintable() else 12
            size += 300 + per_char * len(text)  # 300: the envelope, name and nonce
        if size > MAX_BATCH_BYTES and count:
            return count
    return min(len(queue), MAX_BATCH)
