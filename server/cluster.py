"""``ClusterRoom``: the chat on Redis Streams, so that several server processes serve one chat.

Same public methods as ``LocalRoom`` (see server/room.py: ``join``/``leave``, ``enter``/``part``,
``post``, ``settle``, ``names``, ``rooms``, ``page``, ``direct_page``, ``search``, ``is_taken``,
``start``/``stop``); ``python -m server --redis URL`` picks it.  The ``redis`` package is
imported only here, when a ``ClusterRoom`` is made: without ``--redis`` it is never loaded (and
need not be installed: it is the ``cluster`` extra).

How a message travels.  ``post`` queues a draft; the writer thread (``tkchat-cluster-writer``)
sends everything queued as one Lua call (``redis_scripts.BATCH``) that, per message, returns the
original id of a known (user, nonce) or takes the next id from the one counter and appends the
message to its room's stream with that id and a Redis timestamp.  Nothing is delivered by the
writer.  The reader thread (``tkchat-cluster-reader``) follows every stream with ``XREAD BLOCK``
from this node's own position and delivers what it reads to this node's members, the sender's
own echo included: a message is echoed only after Redis has it, and every node delivers the same
entries in the same order.  Join and leave events are entries in the same streams (between the
message ids, see ``redis_scripts``), so they keep their place among the messages on every node.

Names.  A login claims its name in Redis (``CLAIM``) for this node's session, tied to the node's
lease, which the keeper thread (``tkchat-cluster-lease``) renews every lease/3.  The claim
appends the join event; the login's answer (``welcome``) is given by the reader when it reaches
that event, so the new member's user list and history are exactly the state at its join, and it
hears live everything after.  When a node dies, its lease runs out and any other node frees its
names (``REAP``), one leave event each.  A node only reaps after it has itself been connected
for a whole lease, so that after a Redis restart every live node has renewed before anyone is
taken for dead.  A node that finds its own lease gone (it was stopped longer than the lease)
closes its connections: the others were told its users left, and their clients log in again.

Redis down.  Posts and logins are ``Refused`` at once with ``unavailable``;
drafts queued behind a failed call are refused the same way; the batch that was in flight is in
doubt and is retried with the same token until Redis answers: the node's last token and result
are kept in Redis, so a retry of a batch that was applied returns its ids and writes nothing.
The reader reconnects and resumes from its last position.  If a stream ends before that
position, or the id counter is below an id this node has seen, Redis lost data: the node logs
an ERROR and refuses every write from then on, rather than hand out an id twice.

Rooms and direct messages.  Each room is a stream; a node follows (XREADs) ``general``, the
direct-message stream and every room one of its members ever entered, from a snapshot of the
room's last id and members taken when it starts following it (a per-node wake-up stream makes
the blocked XREAD take the new stream at once).  Entering a room is like a login: a script
(``ENTER``) appends the join event, and the reader answers ``joined`` there.  A direct message
is an entry of the ``dm`` stream that the reader hands to its sender and its recipient only.
Older history (``page``, ``direct_page``) is ``XREVRANGE`` on a stream.  Search answers
``unavailable`` in cluster mode for now: it needs an index (a per-node SQLite copy fed from the
streams would do).  Registered names and their password hashes are in Redis too
(``server/cluster_accounts.py``).

Locks: ``_lock`` guards the logins, the streams' members, seats, positions and recent history
(the reader holds it while it delivers, so a welcome and a delivery never interleave; the
members' ``welcome``/``joined`` run under it and only queue bytes); ``_cond`` guards the
writer's queue, the pending counts and the ids members wait for.  Neither is taken while the
other is held, and no Redis call is made under either.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

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
from server import redis_scripts
from server.room import MAX_ROOMS_LISTED, NameTaken, Refused, member_key, require_proven
from server.room import Member as RoomMember

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

PREFIX = "tkchat:"
DM_STREAM = f"{PREFIX}dm"
NONCE_MEMORY = 1000  # as in LocalRoom: a nonce is recognised over the user's last 1,000 messages
MAX_PENDING = 256  # posts of one member queued before ``post`` blocks
MAX_BATCH = 500  # messages in one Lua call (bounds how long Redis is busy with one script)
READ_COUNT = 2000  # entries one XREAD returns at most, per stream
READ_BLOCK_MS = 500  # how long one XREAD waits; the reader sees ``stop`` within this
RETRY_SECONDS = 0.2  # between tries while Redis is down
SETTLE_SECONDS = 10.0
DM_STEP = 1000  # direct-message stream entries read at once by ``direct_page``
DM_SCAN = 50_000  # entries ``direct_page`` looks at, at most
JOIN_SECONDS = 10.0  # longest a login or a room join waits for the reader to reach its event
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Member(RoomMember, Protocol):
    """A member the cluster can also disconnect (when this node lost its lease)."""

    def close(self) -> None: ...


def stream_key(room: str) -> str:
    return f"{PREFIX}room:{room}"


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class _Stream:
    """What this node knows of one stream: how far it has delivered, the room's members on
    every node and here, its last messages (for a welcome), and the ids members wait for."""

    room: str  # "" for the direct messages and the wake-up stream
    key: str
    position: str = "0-0"
    members: dict[str, str] = field(default_factory=dict)  # lower name -> name, every node
    seats: dict[str, Member] = field(default_factory=dict)  # lower name -> member, this node
    recent: deque[Message] = field(default_factory=deque)
    # (id, sequence, member, private bytes or None) waiting for position >= id
    awaiting: list[tuple[int, int, Member, bytes | None]] = field(default_factory=list)


@dataclass(slots=True)
class _Draft:
    member: Member
    user: str
    text: str
    nonce: str | None
    stream: _Stream
    to: str  # recipient of a direct message, "" for a room
    who: str  # "session proven" of the sender (see redis_scripts.BATCH)


@dataclass(slots=True)
class _Joining:
    """A login or room join whose event the reader has not reached yet."""

    name: str
    member: Member
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


@dataclass(slots=True)
class _Login:
    name: str
    member: Member
    session: str  # "node number"


class ClusterRoom:
    """The chat of one node in a cluster: local members, the shared state in Redis."""

    def __init__(
        self,
        url: str,
        history_size: int = 100,
        lease: float = 5.0,
        throttle: Callable[[], None] | None = None,
    ) -> None:
        import redis  # noqa: PLC0415 - cluster mode only: a plain server never loads redis
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        self._errors: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._response_error: type[Exception] = redis.ResponseError
        common: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),  # this class decides what is retried, and how
        }
        self._redis: redis.Redis = redis.Redis.from_url(url, socket_timeout=5.0, **common)
        # The reader's blocking XREAD holds its connection: a client of its own.
        self._reader_redis: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=READ_BLOCK_MS / 1000 + 5.0, **common
        )
        self.url = url
        # Called after each delivery, outside the locks (as LocalRoom does): waits for clients
        # that are behind but reading (``Sender.throttle``).
        self._throttle = throttle
        self.history_size = history_size
        self.lease = lease
        self.node = uuid.uuid4().hex[:12]
        scripts = redis_scripts
        self._batch_script = self._redis.register_script(scripts.BATCH)
        self._claim_script = self._redis.register_script(scripts.CLAIM)
        self._release_script = self._redis.register_script(scripts.RELEASE)
        self._enter_script = self._redis.register_script(scripts.ENTER)
        self._part_script = self._redis.register_script(scripts.PART)
        self._renew_script = self._redis.register_script(scripts.RENEW)
        self._reap_script = self._redis.register_script(scripts.REAP)
        self._snapshot_script = self._redis.register_script(scripts.SNAPSHOT)

        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}  # key -> stream this node follows
        self._general = self._new_stream(GENERAL_ROOM, stream_key(GENERAL_ROOM))
        self._dm = self._new_stream("", DM_STREAM)
        self._wake = self._new_stream("", f"{PREFIX}node:{self.node}:wake")
        self._users: dict[str, _Login] = {}  # lower name -> login on this node
        self._classic: set[str] = set()  # lower names (every node) of classic clients
        self._joining: dict[tuple[str, str], _Joining] = {}  # (stream key, owner) -> waiting
        self._sessions = itertools.count(1)

        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Draft] = []
        self._pending: dict[Member, int] = {}
        self._order = itertools.count()
        self._high_id = 0  # the highest message id this node has seen (the stream floor)
        self._available = False
        self._fenced = False  # Redis lost data: this node writes nothing more
        self._stopping = threading.Event()  # no more posts; the writer drains and ends
        self._halt = threading.Event()  # the reader and the keeper end (after the drain)
        self._writer_done = threading.Event()
        self._releases: list[tuple[str, str]] = []  # (session, name) to free once Redis is back
        self._batches = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._write_loop, name="tkchat-cluster-writer", daemon=True),
            threading.Thread(target=self._read_loop, name="tkchat-cluster-reader", daemon=True),
            threading.Thread(target=self._keep_loop, name="tkchat-cluster-lease", daemon=True),
        ]

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Take this node's lease and a consistent snapshot, then start the threads.  Raises
        ``redis.RedisError`` when Redis cannot be reached: a node without it cannot serve."""
        self._renew_script(args=[PREFIX, self.node, int(self.lease * 1000)])
        counter = 0
        for stream, members in (
            (self._general, f"{PREFIX}names"),
            (self._dm, ""),
            (self._wake, ""),
        ):
            counter = self._snap(stream, members)
        if counter < self._high_id:
            self._fence(f"the id counter ({counter}) is below the streams ({self._high_id})")
        self._available = True
        log.info(
            "cluster node %s on %s: %d name(s) online, last message id %d",
            self.node,
            _redacted(self.url),
            len(self._general.members),
            counter,
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write and deliver what is queued, log this node's users out (their leave events go
        out at once rather than after the lease), end the threads."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        writer, reader, keeper = self._threads
        if writer.is_alive():
            writer.join(timeout)
        deadline = time.monotonic() + min(timeout, 2.0)
        while self._awaiting_any() and reader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._halt.set()
        try:
            self._reap_script(args=[PREFIX, self._general.key, self.node])
            self._redis.delete(self._wake.key)
        except self._errors as exc:
            log.warning("could not free this node's names in Redis (%s); the lease will", exc)
        for thread in (reader, keeper):
            if thread.is_alive():
                thread.join(timeout)
        for thread in self._threads:
            if thread.is_alive():
                log.error("%s did not stop within %.1f s", thread.name, timeout)
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------ log in/out
    def join(self, name: str, member: Member) -> None:
        """Claim ``name`` across the cluster, then wait for the reader to welcome ``member`` at
        its own join event.  Raises ``NameTaken``, or ``Refused`` (``unavailable``)."""
        key = name.lower()
        self._check_writable()
        session = f"{self.node} {next(self._sessions)}"
        joining = _Joining(name, member)
        waiting = (self._general.key, session)
        with self._lock:
            if key in self._users:
                raise NameTaken(self._users[key].name)
            self._joining[waiting] = joining
        flag = "c" if member.classic else "t"
        try:
            event_id = self._claim_script(
                args=[PREFIX, self.node, session.split(" ")[1], name, self._general.key, flag]
            )
        except (*self._errors, self._response_error) as exc:
            with self._lock:
                self._joining.pop(waiting, None)
            self._lost(exc)
            raise _unavailable("the chat store cannot be reached; log in again later") from exc
        if event_id is None:
            with self._lock:
                self._joining.pop(waiting, None)
            raise NameTaken(name)
        if self._arrived(joining, waiting):
            return
        log.warning("login of %s: its join event did not come back; freeing the name", name)
        self._release(session, name)
        raise _unavailable("the chat store did not answer in time; log in again later")

    def leave(self, name: str, member: Member) -> None:
        """Log out: out of every room (the script sends the leave events)."""
        key = name.lower()
        with self._lock:
            login = self._users.get(key)
            if login is None or login.member is not member:
                return
            del self._users[key]
            for stream in self._streams.values():
                stream.seats.pop(key, None)
        self._release(login.session, name)

    # ------------------------------------------------------------------ rooms
    def enter(self, room: str, member: Member) -> None:
        """Put ``member`` in ``room`` (creating it); the reader answers ``joined`` at the join
        event.  Joining a room one is in answers the same again, without an event."""
        if member.classic:
            raise Refused(ErrorCode.INVALID_ROOM, "a classic client has only the room general")
        self._check_writable()
        key = member_key(member)
        with self._lock:
            login = self._users.get(key)
            if login is None:
                return  # logged out meanwhile
            stream = self._streams.get(stream_key(room))
            if stream is not None and key in stream.seats:
                member.joined(room, sorted(stream.members.values()), list(stream.recent))
                return
        if stream is None:
            stream = self._follow(room)
        waiting = (stream.key, login.session)
        joining = _Joining(login.name, member)
        with self._lock:
            self._joining[waiting] = joining
        try:
            event_id = self._enter_script(
                args=[PREFIX, self.node, login.session.split(" ")[1], login.name, room]
            )
        except (*self._errors, self._response_error) as exc:
            with self._lock:
                self._joining.pop(waiting, None)
            self._lost(exc)
            raise _unavailable("the chat store cannot be reached; the room was not joined") from exc
        if event_id is None:  # in it already (in Redis): answer as for a repeated join
            with self._lock:
                self._joining.pop(waiting, None)
                stream.seats[key] = member
                member.joined(room, sorted(stream.members.values()), list(stream.recent))
            return
        if not self._arrived(joining, waiting):
            self._call(self._part_script, login.session, login.name, room)
            raise _unavailable("the chat store did not answer in time; join again later")

    def part(self, room: str, member: Member) -> None:
        """Take ``member`` out of ``room`` and tell the others.  ``general`` cannot be left
        (``invalid_room``); a room one is not in: ``not_in_room``."""
        if room == GENERAL_ROOM:
            raise Refused(ErrorCode.INVALID_ROOM, "general cannot be left (log out instead)")
        key = member_key(member)
        with self._lock:
            stream = self._streams.get(stream_key(room))
            login = self._users.get(key)
            if stream is None or login is None or key not in stream.seats:
                raise Refused(ErrorCode.NOT_IN_ROOM, f"you are not in {room}; join it first")
            self._check_writable()
            # Out before the leave event exists: the member does not hear its own leave.
            del stream.seats[key]
        if not self._call(self._part_script, login.session, login.name, room):
            with self._lock:
                if self._users.get(key) is login:
                    stream.seats[key] = member
            raise _unavailable("the chat store cannot be reached; try again later")

    def rooms(self) -> list[RoomInfo]:
        """Every room with its member count (all nodes); this node's view if Redis is down."""
        try:
            names: Any = self._redis.smembers(f"{PREFIX}rooms")
            names = sorted(set(names) | {GENERAL_ROOM})
            if len(names) > MAX_ROOMS_LISTED * 4:
                names = names[: MAX_ROOMS_LISTED * 4]
            with self._redis.pipeline(transaction=False) as pipe:
                for room in names:
                    pipe.hlen(f"{PREFIX}names" if room == GENERAL_ROOM else _members_key(room))
                counts: Any = pipe.execute()
            infos = [RoomInfo(n, int(c)) for n, c in zip(names, counts, strict=True)]
        except self._errors as exc:
            self._lost(exc)
            with self._lock:
                infos = [RoomInfo(s.room, len(s.members)) for s in self._streams.values() if s.room]
            infos.sort(key=lambda r: r.name)
        if len(infos) > MAX_ROOMS_LISTED:
            infos = sorted(infos, key=lambda r: -r.users)[:MAX_ROOMS_LISTED]
            infos.sort(key=lambda r: r.name)
        return infos

    def names(self, room: str = GENERAL_ROOM, member: Member | None = None) -> list[str]:
        """The names in ``room`` on every node, sorted; ``not_in_room`` if ``member`` (the
        asker, when given) is not in it."""
        with self._lock:
            stream = self._streams.get(stream_key(room))
            if member is not None and (stream is None or member_key(member) not in stream.seats):
                raise Refused(ErrorCode.NOT_IN_ROOM, f"you are not in {room}; join it first")
            return [] if stream is None else sorted(stream.members.values())

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
        """Queue a message for the writer.  Raises ``Refused``: ``not_in_room``,
        ``no_such_user``, or ``unavailable`` while Redis is down."""
        key = name.lower()
        with self._lock:
            login = self._users.get(key)
            if to is not None:
                stream = self._dm
                recipient = self._general.members.get(to.lower())
                if recipient is None:
                    raise Refused(ErrorCode.NO_SUCH_USER, f"{to} is not online")
                if to.lower() in self._classic:
                    raise Refused(
                        ErrorCode.NO_SUCH_USER,
                        f"{to} uses a program that cannot receive direct messages",
                    )
                to = recipient
            else:
                found = self._streams.get(stream_key(room or GENERAL_ROOM))
                if found is None or key not in found.seats:
                    shown = room or GENERAL_ROOM
                    raise Refused(ErrorCode.NOT_IN_ROOM, f"you are not in {shown}; join it first")
                stream = found
        session = login.session.split(" ")[1] if login is not None else "0"
        who = f"{session} {1 if member.proven else 0}"
        with self._cond:
            if self._stopping.is_set():
                log.warning("message from %s dropped: the server is stopping", name)
                return
            self._check_writable()
            count = self._pending.get(member, 0)
            if count >= MAX_PENDING:
                self._wait_locked(lambda: self._pending.get(member, 0) < MAX_PENDING, 30.0)
                self._check_writable()
                count = self._pending.get(member, 0)
            self._pending[member] = count + 1
            self._queue.append(_Draft(member, name, text, nonce, stream, to or "", who))
            if len(self._queue) == 1:
                self._cond.notify_all()

    def settle(self, member: Member, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait until the member's posts were echoed to it (or refused).  Returns at once while
        Redis is down: answers then cannot wait for an echo that may be long in coming."""
        with self._cond:
            return self._wait_locked(
                lambda: not self._pending.get(member) or not self._available, timeout
            ) and not self._pending.get(member)

    # ------------------------------------------------------ older history, search
    def page(
        self, member: Member, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest ``limit`` messages of ``room`` older than id ``before`` (oldest first)
        and whether there are older ones, read from the room's stream."""
        with self._lock:
            stream = self._streams.get(stream_key(room))
            if stream is None or member_key(member) not in stream.seats:
                raise Refused(ErrorCode.NOT_IN_ROOM, f"you are not in {room}; join it first")
        limit = max(1, min(limit, MAX_PAGE))
        try:
            found = self._read_back(stream, "+" if before is None else f"({before}-0", limit + 1)
        except self._errors as exc:
            self._lost(exc)
            raise _unavailable("the chat store cannot be reached; try again later") from exc
        return found[-limit:], len(found) > limit

    def direct_page(
        self, member: Member, other: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Like ``page`` for the direct messages between ``member`` and ``other`` (proven logins
        only), read back from the direct-message stream: at most ``DM_SCAN`` entries of it are
        looked at per request, so a pair's old messages far back in a busy stream may not be
        found (``more`` is then false)."""
        require_proven(member)
        pair = {member_key(member), other.lower()}
        limit = max(1, min(limit, MAX_PAGE))
        found: list[Message] = []
        end = "+" if before is None else f"({before}-0"
        scanned = 0
        try:
            while len(found) <= limit and scanned < DM_SCAN:
                entries: Any = self._redis.xrevrange(DM_STREAM, end, "-", count=DM_STEP)
                for entry_id, fields in entries:
                    if {fields.get("u", "").lower(), fields.get("to", "").lower()} == pair:
                        found.append(_message(self._dm, entry_id, fields))
                        if len(found) > limit:
                            break
                if len(entries) < DM_STEP:
                    break
                scanned += len(entries)
                end = "(" + entries[-1][0]
        except self._errors as exc:
            self._lost(exc)
            raise _unavailable("the chat store cannot be reached; try again later") from exc
        found.reverse()
        return found[-limit:], len(found) > limit

    def search(self, member: Member, words: str, room: str | None, limit: int) -> list[Message]:
        raise _unavailable("search is not available on a cluster server yet")

    # -------------------------------------------------------------- helpers
    def is_taken(self, name: str) -> bool:
        """Whether ``name`` is logged in on this node.  Other nodes' names are checked by the
        claim in Redis, which decides (this node's view of them may lag a moment behind)."""
        with self._lock:
            return name.lower() in self._users

    def _new_stream(self, room: str, key: str) -> _Stream:
        stream = _Stream(room, key, recent=deque(maxlen=self.history_size))
        self._streams[key] = stream
        return stream

    def _snap(self, stream: _Stream, members_key: str) -> int:
        """Set ``stream`` to Redis's state of one moment: its last id, its members, its recent
        messages.  Returns the id counter."""
        view = self._snapshot_script(args=[PREFIX, stream.key, members_key])
        top, counter = view[0], int(view[1])
        members: dict[str, str] = {}
        classic: set[str] = set()
        for value in view[2:]:
            _, _, flag, name = value.split(" ", 3)
            members[name.lower()] = name
            if flag == "c":
                classic.add(name.lower())
        recent = self._read_back(stream, top, self.history_size) if stream.room else []
        with self._lock:
            stream.position = top
            stream.members = members
            stream.recent.extend(recent)
            if stream is self._general:
                self._classic = classic
        self._high_id = max(self._high_id, _parse_id(top)[0])
        return counter

    def _follow(self, room: str) -> _Stream:
        """Start following ``room``'s stream from a snapshot; wake the reader to take it."""
        key = stream_key(room)
        fresh = _Stream(room, key, recent=deque(maxlen=self.history_size))
        try:
            self._snap(fresh, _members_key(room))
        except self._errors as exc:
            self._lost(exc)
            raise _unavailable("the chat store cannot be reached; join again later") from exc
        with self._lock:
            stream = self._streams.setdefault(key, fresh)
        if stream is fresh:
            try:
                self._redis.xadd(self._wake.key, {"k": "w"}, maxlen=16, approximate=True)
            except self._errors as exc:
                self._lost(exc)
        return stream

    def _arrived(self, joining: _Joining, waiting: tuple[str, str]) -> bool:
        """Wait for the reader to reach a join event; False (and cancelled) on timeout."""
        if joining.done.wait(JOIN_SECONDS):
            return True
        with self._lock:
            if joining.done.is_set():
                return True
            joining.cancelled = True
            self._joining.pop(waiting, None)
        return False

    def _call(self, script: Any, session: str, name: str, room: str) -> bool:
        """Run ENTER/PART-like ``script`` for this login; False when Redis cannot be reached."""
        try:
            script(args=[PREFIX, self.node, session.split(" ")[1], name, room])
        except (*self._errors, self._response_error) as exc:
            self._lost(exc)
            return False
        return True

    def _check_writable(self) -> None:
        if self._fenced:
            raise _unavailable("Redis lost data this server had seen; it takes no writes")
        if not self._available:
            raise _unavailable(
                "the chat store is unavailable: nothing was stored; "
                "send it again later (with the same nonce)"
            )

    def _fence(self, why: str) -> None:
        if not self._fenced:
            log.error("Redis is behind this node (%s): refusing every write from now on", why)
        self._fenced = True

    def _lost(self, exc: Exception) -> None:
        """Redis failed a call: refuse writes until the reader has reconnected."""
        if isinstance(exc, self._response_error):
            if str(exc).startswith("LEASE"):
                log.warning("this node's lease ran out; logins wait for the keeper")
            return
        if self._available:
            log.warning("Redis cannot be reached (%s); posts and logins get 'unavailable'", exc)
        self._available = False
        with self._cond:
            self._cond.notify_all()

    def _wait_locked(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self._writer_done.is_set():
                return bool(done())
            self._cond.wait(min(left, 0.5))
        return True

    def _awaiting_any(self) -> bool:
        with self._cond:
            return any(s.awaiting for s in self._streams.values())

    def _release(self, session: str, name: str) -> None:
        """Log ``name`` of ``session`` out in Redis (leave events); later if Redis is down."""
        try:
            self._release_script(
                args=[PREFIX, self.node, session.split(" ")[1], name, self._general.key]
            )
        except self._errors as exc:
            self._lost(exc)
            with self._cond:
                self._releases.append((session, name))

    def _read_back(self, stream: _Stream, end: str, count: int) -> list[Message]:
        """The last ``count`` messages of ``stream`` up to ``end`` (an id, "(id" or "+"),
        oldest first; join and leave events are skipped."""
        found: list[Message] = []
        step = max(count * 2, 32)
        while len(found) < count and end != "0-0":
            # redis-py types replies loosely; with decode_responses they are str throughout.
            entries: Any = self._redis.xrevrange(stream.key, end, "-", count=step)
            for entry_id, fields in entries:
                if fields.get("k") == "m":
                    found.append(_message(stream, entry_id, fields))
                    if len(found) == count:
                        break
            if len(entries) < step:
                break
            end = "(" + entries[-1][0]
        found.reverse()
        return found

    # ---------------------------------------------------------- writer thread
    def _write_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping.is_set():
                        self._cond.wait()
                    if not self._queue:
                        return
                    batch = self._queue[:MAX_BATCH]
                    del self._queue[:MAX_BATCH]
                self._write(batch)
        except Exception:
            log.exception("cluster writer failed")
        finally:
            self._writer_done.set()
            with self._cond:
                self._cond.notify_all()

    def _write(self, batch: list[_Draft]) -> None:
        """One Lua call for the batch; retried with the same token while Redis is down."""
        token = f"{next(self._batches)}"
        args: list[str | int] = [PREFIX, self.node, token, 0, NONCE_MEMORY]
        for draft in batch:
            narg = "" if draft.nonce is None else "=" + draft.nonce
            args += [draft.stream.key, draft.user, narg, draft.text, draft.to, draft.who]
        failed = False
        while True:
            args[3] = self._high_id
            try:
                result: list[str] = self._batch_script(args=args)
                break
            except self._response_error as exc:
                if str(exc).startswith("BEHIND"):
                    self._fence(str(exc))
                else:
                    log.error("Redis refused a batch of %d: %s", len(batch), exc)
                self._refuse(batch)
                return
            except self._errors as exc:
                self._lost(exc)
                log.debug("batch %s failed: %r", token, exc)
                if not failed:
                    failed = True
                    log.warning("a batch of %d is in doubt; retrying it by its token", len(batch))
                    with self._cond:
                        queued, self._queue = self._queue, []
                    self._refuse(queued)
                if self._stopping.wait(RETRY_SECONDS):
                    log.warning("stopping: a batch of %d in doubt was not confirmed", len(batch))
                    self._refuse(batch, quiet=True)
                    return
        if failed:
            log.info("the batch in doubt was confirmed by Redis")
        self._available = self._available or not self._fenced
        repeats: list[tuple[_Draft, int, str]] = []
        with self._cond:
            for index, draft in enumerate(batch):
                ident, where = int(result[2 * index]), result[2 * index + 1]
                self._high_id = max(self._high_id, ident)
                if where:
                    repeats.append((draft, ident, where))
                else:
                    heapq.heappush(
                        draft.stream.awaiting, (ident, next(self._order), draft.member, None)
                    )
        for draft, ident, where in repeats:
            self._answer_repeat(draft, ident, where)
        self._release_awaiting()

    def _answer_repeat(self, draft: _Draft, ident: int, where: str) -> None:
        """A resent nonce: its sender gets the original ``message`` again, nobody else."""
        stream = self._streams.get(where)
        data: bytes | None = None
        try:
            entries: Any = self._redis.xrange(where, f"{ident}-0", f"{ident}-0")
        except self._errors as exc:
            log.warning("could not read the original of a repeated nonce: %s", exc)
            entries = []
        if entries:
            room = where.removeprefix(f"{PREFIX}room:") if where != DM_STREAM else ""
            holder = stream or _Stream(room, where)
            data = _encode(_message(holder, entries[0][0], entries[0][1]))
        target = stream or draft.stream
        with self._cond:
            heapq.heappush(target.awaiting, (ident, next(self._order), draft.member, data))

    def _refuse(self, drafts: list[_Draft], quiet: bool = False) -> None:
        """Tell each sender its message was not stored (``unavailable``)."""
        if not drafts:
            return
        error = encode_response(
            ErrorResponse(
                "the chat store is unavailable: your message was not stored; "
                "send it again later (with the same nonce)",
                ErrorCode.UNAVAILABLE,
            )
        )
        with self._cond:
            for draft in drafts:
                self._done_pending(draft.member)
            self._cond.notify_all()
        if not quiet:
            for draft in drafts:
                draft.member.deliver(error)

    def _done_pending(self, member: Member) -> None:
        left = self._pending.get(member, 0) - 1
        if left > 0:
            self._pending[member] = left
        else:
            self._pending.pop(member, None)

    def _release_awaiting(self) -> None:
        """Members whose messages the reader has delivered stop waiting; a resent nonce's
        original goes to its sender once this node has delivered it."""
        private: list[tuple[Member, bytes]] = []
        with self._cond:
            released = False
            for stream in list(self._streams.values()):
                floor = _parse_id(stream.position)[0]
                while stream.awaiting and stream.awaiting[0][0] <= floor:
                    _, _, member, data = heapq.heappop(stream.awaiting)
                    if data is not None:
                        private.append((member, data))
                    self._done_pending(member)
                    released = True
            if released:
                self._cond.notify_all()
        for member, data in private:
            member.deliver(data)

    # ---------------------------------------------------------- reader thread
    def _read_loop(self) -> None:
        resync = False
        while not self._halt.is_set():
            try:
                if resync:
                    self._resume()
                    resync = False
                with self._lock:
                    where: Any = {s.key: s.position for s in self._streams.values()}
                reply: Any = self._reader_redis.xread(where, count=READ_COUNT, block=READ_BLOCK_MS)
            except self._errors as exc:
                self._lost(exc)
                resync = True
                self._halt.wait(RETRY_SECONDS)
                continue
            except Exception:
                log.exception("cluster reader: unexpected failure; retrying")
                resync = True
                self._halt.wait(RETRY_SECONDS)
                continue
            for key, entries in reply or []:
                self._deliver(self._streams[key], entries)
            self._release_awaiting()
            if reply and self._throttle is not None:
                self._throttle()

    def _resume(self) -> None:
        """After a reconnect: check that Redis still has everything this node saw."""
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            top: Any = self._reader_redis.xrevrange(stream.key, "+", "-", count=1)
            last = _parse_id(top[0][0]) if top else (0, 0)
            if stream is not self._wake and last < _parse_id(stream.position):
                self._fence(f"{stream.key} ends at {last}, this node has read to {stream.position}")
        counter = int(self._reader_redis.get(f"{PREFIX}next_id") or 0)
        if counter < self._high_id:
            self._fence(f"next_id is {counter}, this node has seen id {self._high_id}")
        if not self._available and not self._fenced:
            log.info("Redis is reachable again; resuming from the last position")
            self._available = True

    def _deliver(self, stream: _Stream, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Hand entries, in stream order, to this node's members (the reader's one job)."""
        if stream is self._wake:
            with self._lock:
                stream.position = entries[-1][0]
            return
        parts: list[bytes] = []
        welcomed: list[_Joining] = []
        with self._lock:
            for entry_id, fields in entries:
                kind = fields.get("k")
                if kind == "m":
                    message = _message(stream, entry_id, fields)
                    if stream is self._dm:
                        self._deliver_direct(message)
                    else:
                        stream.recent.append(message)
                        parts.append(_encode(message))
                    self._high_id = max(self._high_id, message.id or 0)
                elif kind in ("j", "l"):
                    joining = self._event(stream, fields, parts)
                    if joining is not None:
                        # Everyone here before hears the join; the newcomer starts after it.
                        self._flush(stream, parts)
                        parts = []
                        self._seat(stream, joining, fields.get("o", ""))
                        welcomed.append(joining)
                stream.position = entry_id
            self._flush(stream, parts)
        for joining in welcomed:
            joining.done.set()

    def _event(
        self, stream: _Stream, fields: dict[str, str], parts: list[bytes]
    ) -> _Joining | None:
        """Apply a join or leave event (``_lock`` held): members, the info object for the
        room's members here; returns the local login or room join waiting for it, if any."""
        name = fields.get("u", "")
        key = name.lower()
        general = stream is self._general
        where = "the chat" if general else stream.room
        if fields.get("k") == "j":
            stream.members[key] = name
            if general and fields.get("c") == "c":
                self._classic.add(key)
            text, event = f"{name} joined {where}", Event.JOIN
        else:
            stream.members.pop(key, None)
            if general:
                self._classic.discard(key)
            text, event = f"{name} left {where}", Event.LEAVE
        info = InfoResponse(
            text, _moment(fields), event, user=name, room=None if general else stream.room
        )
        # "room" after "user": the order cluster nodes have always sent (common/protocol.py).
        parts.append(encode_response(info, room_last=True))
        if fields.get("k") != "j":
            return None
        joining = self._joining.pop((stream.key, fields.get("o", "")), None)
        return None if joining is None or joining.cancelled else joining

    def _seat(self, stream: _Stream, joining: _Joining, owner: str) -> None:
        """The login or room join reached its event: seat the member, answer it (``_lock``)."""
        key = joining.name.lower()
        users = sorted(stream.members.values())
        stream.seats[key] = joining.member
        if stream is self._general:
            self._users[key] = _Login(joining.name, joining.member, owner)
            joining.member.welcome(users, list(stream.recent))
        else:
            joining.member.joined(stream.room, users, list(stream.recent))

    def _deliver_direct(self, message: Message) -> None:
        """A direct message goes to its sender and its recipient on this node (``_lock``)."""
        data = _encode(message)
        for name in {message.user.lower(), (message.to or "").lower()}:
            login = self._users.get(name)
            if login is not None:
                login.member.deliver(data)

    def _flush(self, stream: _Stream, parts: list[bytes]) -> None:
        if not parts:
            return
        shared = b"".join(parts)
        for member in stream.seats.values():
            member.deliver_batch(shared, parts)

    # ---------------------------------------------------------- keeper thread
    def _keep_loop(self) -> None:
        """Renew the lease every lease/3; free dead nodes' names; retry pending releases."""
        tick = self.lease / 3
        up_since: float | None = time.monotonic()
        while not self._halt.wait(tick):
            try:
                held = self._renew_script(args=[PREFIX, self.node, int(self.lease * 1000)])
                if not held:
                    self._lease_lost()
                if up_since is None:
                    up_since = time.monotonic()
                with self._cond:
                    releases, self._releases = self._releases, []
                for session, name in releases:
                    self._release(session, name)
                if time.monotonic() - up_since >= self.lease:
                    freed = self._reap_script(args=[PREFIX, self._general.key])
                    if freed:
                        log.info("logged out %d user(s) of node(s) whose lease ran out", freed)
            except self._errors as exc:
                self._lost(exc)
                up_since = None
            except Exception:
                log.exception("cluster lease keeper: unexpected failure")

    def _lease_lost(self) -> None:
        """Another node took this one for dead and logged its users out: close them."""
        with self._lock:
            members = [login.member for login in self._users.values()]
            self._users.clear()
            for stream in self._streams.values():
                stream.seats.clear()
        log.warning(
            "this node's lease ran out (was it stopped?); closing its %d connection(s)",
            len(members),
        )
        for member in members:
            member.close()


def _unavailable(text: str) -> Refused:
    return Refused(ErrorCode.UNAVAILABLE, text)


def _members_key(room: str) -> str:
    return f"{PREFIX}members:{room}"


def _moment(fields: dict[str, str]) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(fields.get("ts", "0")))


def _message(stream: _Stream, entry_id: str, fields: dict[str, str]) -> Message:
    room = None if stream.room in ("", GENERAL_ROOM) else stream.room
    return Message(
        fields.get("t", ""),
        fields.get("u", ""),
        _moment(fields),
        _parse_id(entry_id)[0],
        fields.get("n"),
        room,
        fields.get("to"),
    )


def _encode(message: Message) -> bytes:
    return encode_response(MessageResponse(message))


def _redacted(url: str) -> str:
    """The URL for a log line, without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest
