"""``ClusterRoom``: the chat on Redis Streams, so that several server processes serve one chat.

Same public methods as ``LocalRoom`` (``join``, ``leave``, ``post``, ``settle``, ``names``,
``is_taken``, ``start``, ``stop``); ``python -m server --redis URL`` picks it.  The ``redis``
package is imported only here, when a ``ClusterRoom`` is made: without ``--redis`` it is never
loaded (and need not be installed: it is the ``cluster`` extra).

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

Redis down.  Posts and logins get ``Unavailable`` at once (the handler answers ``unavailable``);
drafts queued behind a failed call are refused the same way; the batch that was in flight is in
doubt and is retried with the same token until Redis answers: the node's last token and result
are kept in Redis, so a retry of a batch that was applied returns its ids and writes nothing.
The reader reconnects and resumes from its last position.  If a stream ends before that
position, or the id counter is below an id this node has seen, Redis lost data: the node logs
an ERROR and refuses every write from then on, rather than hand out an id twice.

Rooms and direct messages (to come, on this same shape).  A room is a ``_Stream`` in
``_streams``; the writer already takes each draft's stream, the Lua batch appends to any
stream, and the reader follows every stream in ``_streams`` with one XREAD.  Entering a room
is a claim-like script appending a join event to that room's stream (the reader welcomes the
member there, as for a login); a node that starts following a room reads its recent history
with ``_read_recent`` up to the stream's last id and sets its position there.  Direct messages
go to the ``dm`` stream with a ``to`` field; the reader delivers each to the two people only.
Paging is ``XREVRANGE`` on a stream; search would need an index (a per-node SQLite copy fed
from the streams) and answers ``unavailable`` until then.

Locks: ``_lock`` guards members, online names, the streams' positions and recent history (the
reader holds it while it delivers, so a welcome and a delivery never interleave); ``_cond``
guards the writer's queue, the pending counts and the ids members wait for.  ``_cond`` is never
taken while holding ``_lock``'s delivery work, and never the other way round.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from common.message import GENERAL_ROOM, Message
from common.protocol import ErrorCode, Event, MessageParser
from server import redis_scripts
from server.room import Member as RoomMember
from server.room import NameTaken, Unavailable

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

PREFIX = "tkchat:"
NONCE_MEMORY = 1000  # as in LocalRoom: a nonce is recognised over the user's last 1,000 messages
MAX_PENDING = 256  # posts of one member queued before ``post`` blocks
MAX_BATCH = 500  # messages in one Lua call (bounds how long Redis is busy with one script)
READ_COUNT = 2000  # entries one XREAD returns at most
READ_BLOCK_MS = 500  # how long one XREAD waits; the reader sees ``stop`` within this
RETRY_SECONDS = 0.2  # between tries while Redis is down
SETTLE_SECONDS = 10.0
JOIN_SECONDS = 10.0  # longest a login waits for the reader to reach its join event
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Member(RoomMember, Protocol):
    """A member the cluster can also disconnect (when this node lost its lease)."""

    def close(self) -> None: ...


def stream_key(room: str) -> str:
    return f"{PREFIX}room:{room}"


DM_STREAM = f"{PREFIX}dm"  # reserved for direct messages (see redis_scripts)


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class _Stream:
    """What this node knows of one room's stream: how far it has delivered, the last messages
    (for a login's history), and the ids its members wait to see echoed."""

    room: str
    key: str
    position: str = "0-0"
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


@dataclass(slots=True)
class _Joining:
    """A login whose join event the reader has not reached yet."""

    name: str
    member: Member
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


class ClusterRoom:
    """The chat of one node in a cluster: local members, the shared state in Redis."""

    def __init__(self, url: str, history_size: int = 100, lease: float = 5.0) -> None:
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
        self.history_size = history_size
        self.lease = lease
        self.node = uuid.uuid4().hex[:12]
        self._batch_script = self._redis.register_script(redis_scripts.BATCH)
        self._claim_script = self._redis.register_script(redis_scripts.CLAIM)
        self._release_script = self._redis.register_script(redis_scripts.RELEASE)
        self._renew_script = self._redis.register_script(redis_scripts.RENEW)
        self._reap_script = self._redis.register_script(redis_scripts.REAP)
        self._snapshot_script = self._redis.register_script(redis_scripts.SNAPSHOT)

        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._general = self._add_stream(GENERAL_ROOM)
        self._members: dict[str, tuple[str, Member, str]] = {}  # lower name -> (name, m, session)
        self._online: dict[str, str] = {}  # lower name -> name, everyone on every node
        self._joining: dict[str, _Joining] = {}  # "node session" -> login in progress
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
        streams = list(self._streams.values())
        view = self._snapshot_script(args=[PREFIX, *(s.key for s in streams)])
        count = len(streams)
        tops, counter, names = view[:count], int(view[count]), view[count + 1 :]
        with self._lock:
            for stream, top in zip(streams, tops, strict=True):
                stream.position = top
                stream.recent.extend(self._read_recent(stream, top))
            self._online = {name.lower(): name for name in names}
        self._high_id = max((_parse_id(t)[0] for t in tops), default=0)
        if counter < self._high_id:
            self._fence(f"the id counter ({counter}) is below the streams ({self._high_id})")
        self._available = True
        log.info(
            "cluster node %s on %s: %d name(s) online, last message id %d",
            self.node,
            _redacted(self.url),
            len(names),
            counter,
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write and deliver what is queued, free this node's names (one leave event each, so
        the other nodes hear of it at once rather than after the lease), end the threads."""
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

    # ------------------------------------------------------------------ Room
    def join(self, name: str, member: Member) -> None:
        """Claim ``name`` across the cluster, then wait for the reader to welcome ``member`` at
        its own join event.  Raises ``NameTaken`` or ``Unavailable``."""
        key = name.lower()
        self._check_writable()
        session = f"{self.node} {next(self._sessions)}"
        joining = _Joining(name, member)
        with self._lock:
            if key in self._members:
                raise NameTaken(self._members[key][0])
            self._joining[session] = joining
        try:
            event_id = self._claim_script(
                args=[PREFIX, self.node, session.split(" ")[1], name, self._general.key]
            )
        except (*self._errors, self._response_error) as exc:
            with self._lock:
                self._joining.pop(session, None)
            self._lost(exc)
            raise Unavailable(str(exc)) from exc
        if event_id is None:
            with self._lock:
                self._joining.pop(session, None)
            raise NameTaken(name)
        if joining.done.wait(JOIN_SECONDS):
            return
        with self._lock:
            if joining.done.is_set():
                return
            joining.cancelled = True
        log.warning("login of %s: its join event did not come back; freeing the name", name)
        self._release(session, name)
        raise Unavailable("the join event did not come back in time")

    def leave(self, name: str, member: Member) -> None:
        key = name.lower()
        with self._lock:
            held = self._members.get(key)
            if held is None or held[1] is not member:
                return
            del self._members[key]
            session = held[2]
        self._release(session, name)

    def post(self, name: str, member: Member, text: str, nonce: str | None) -> None:
        """Queue a message for the writer.  Raises ``Unavailable`` while Redis is down."""
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
            self._queue.append(_Draft(member, name, text, nonce, self._general))
            if len(self._queue) == 1:
                self._cond.notify_all()

    def settle(self, member: Member, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait until the member's posts were echoed to it (or refused).  Returns at once while
        Redis is down: answers then cannot wait for an echo that may be long in coming."""
        with self._cond:
            return self._wait_locked(
                lambda: not self._pending.get(member) or not self._available, timeout
            ) and not self._pending.get(member)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._online.values())

    def is_taken(self, name: str) -> bool:
        """Whether ``name`` is logged in on this node.  Other nodes' names are checked by the
        claim in Redis, which decides (this node's view of them may lag a moment behind)."""
        with self._lock:
            return name.lower() in self._members

    def member_count(self) -> int:
        """Members on this node."""
        with self._lock:
            return len(self._members)

    def broadcast_info(self, text: str, **extra: object) -> None:
        data = MessageParser.encode(MessageParser.info(text, **extra))
        with self._lock:
            for _, member, _ in self._members.values():
                member.deliver(data)

    # -------------------------------------------------------------- helpers
    def _add_stream(self, room: str) -> _Stream:
        stream = _Stream(room, stream_key(room), recent=deque(maxlen=self.history_size))
        self._streams[stream.key] = stream
        return stream

    def _check_writable(self) -> None:
        if self._fenced:
            raise Unavailable("Redis lost data this node had seen; this node takes no writes")
        if not self._available:
            raise Unavailable("Redis cannot be reached")

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
        """Free ``name`` held by ``session`` (leave event included); later if Redis is down."""
        try:
            self._release_script(
                args=[PREFIX, self.node, session.split(" ")[1], name, self._general.key]
            )
        except self._errors as exc:
            self._lost(exc)
            with self._cond:
                self._releases.append((session, name))

    def _read_recent(self, stream: _Stream, top: str) -> list[Message]:
        """The last ``history_size`` messages of ``stream`` up to ``top``, oldest first."""
        found: list[Message] = []
        end = top
        while len(found) < self.history_size and end != "0-0":
            # redis-py types replies loosely; with decode_responses they are str throughout.
            entries: Any = self._redis.xrevrange(stream.key, end, "-", count=self.history_size * 2)
            for entry_id, fields in entries:
                if fields.get("k") == "m":
                    found.append(_message(stream, entry_id, fields))
                    if len(found) == self.history_size:
                        break
            if len(entries) < self.history_size * 2:
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
            args += [draft.stream.key, draft.user, narg, draft.text]
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
            holder = stream or _Stream(where.removeprefix(f"{PREFIX}room:"), where)
            data = _encode(_message(holder, entries[0][0], entries[0][1]))
        target = stream or draft.stream
        with self._cond:
            heapq.heappush(target.awaiting, (ident, next(self._order), draft.member, data))

    def _refuse(self, drafts: list[_Draft], quiet: bool = False) -> None:
        """Tell each sender its message was not stored (``unavailable``)."""
        if not drafts:
            return
        error = MessageParser.encode(
            MessageParser.error(
                ErrorCode.UNAVAILABLE,
                "the chat store is unavailable: your message was not stored; "
                "send it again later (with the same nonce)",
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
            for stream in self._streams.values():
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

    def _resume(self) -> None:
        """After a reconnect: check that Redis still has everything this node saw."""
        for stream in list(self._streams.values()):
            top: Any = self._reader_redis.xrevrange(stream.key, "+", "-", count=1)
            last = _parse_id(top[0][0]) if top else (0, 0)
            if last < _parse_id(stream.position):
                self._fence(f"{stream.key} ends at {last}, this node has read to {stream.position}")
        counter = int(self._reader_redis.get(f"{PREFIX}next_id") or 0)
        if counter < self._high_id:
            self._fence(f"next_id is {counter}, this node has seen id {self._high_id}")
        if not self._available and not self._fenced:
            log.info("Redis is reachable again; resuming from the last position")
            self._available = True

    def _deliver(self, stream: _Stream, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Hand entries, in stream order, to this node's members (the reader's one job)."""
        parts: list[bytes] = []
        welcomed: list[_Joining] = []
        with self._lock:
            for entry_id, fields in entries:
                kind = fields.get("k")
                if kind == "m":
                    message = _message(stream, entry_id, fields)
                    stream.recent.append(message)
                    parts.append(_encode(message))
                elif kind in ("j", "l"):
                    name = fields.get("u", "")
                    moment = _moment(fields)
                    if kind == "j":
                        self._online[name.lower()] = name
                        text, event = f"{name} joined the chat", Event.JOIN
                    else:
                        self._online.pop(name.lower(), None)
                        text, event = f"{name} left the chat", Event.LEAVE
                    parts.append(
                        MessageParser.encode(
                            MessageParser.info(text, moment=moment, event=event, user=name)
                        )
                    )
                    joining = self._joining.pop(fields.get("o", ""), None) if kind == "j" else None
                    if joining is not None and not joining.cancelled:
                        # Everyone here before hears the join; the newcomer starts after it.
                        self._flush(parts)
                        parts = []
                        self._members[name.lower()] = (name, joining.member, fields["o"])
                        joining.member.welcome(sorted(self._online.values()), list(stream.recent))
                        welcomed.append(joining)
                stream.position = entry_id
                if kind == "m":
                    self._high_id = max(self._high_id, _parse_id(entry_id)[0])
            self._flush(parts)
        for joining in welcomed:
            joining.done.set()

    def _flush(self, parts: list[bytes]) -> None:
        if not parts:
            return
        shared = b"".join(parts)
        for _, member, _ in self._members.values():
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
                        log.info("freed %d name(s) of node(s) whose lease ran out", freed)
            except self._errors as exc:
                self._lost(exc)
                up_since = None
            except Exception:
                log.exception("cluster lease keeper: unexpected failure")

    def _lease_lost(self) -> None:
        """Another node took this one for dead and freed its names: close its connections."""
        with self._lock:
            members = [member for _, member, _ in self._members.values()]
            self._members.clear()
        log.warning(
            "this node's lease ran out (was it stopped?); closing its %d connection(s)",
            len(members),
        )
        for member in members:
            member.close()


def _moment(fields: dict[str, str]) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(fields.get("ts", "0")))


def _message(stream: _Stream, entry_id: str, fields: dict[str, str]) -> Message:
    return Message(
        fields.get("t", ""),
        fields.get("u", ""),
        _moment(fields),
        _parse_id(entry_id)[0],
        fields.get("n"),
        None if stream.room == GENERAL_ROOM else stream.room,
    )


def _encode(message: Message) -> bytes:
    return MessageParser.encode(message.to_response())


def _redacted(url: str) -> str:
    """The URL for a log line, without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest
