"""Outgoing data: each connection's bounded ``Outbox`` and the ``Sender`` thread that drains them.

Why not ``sendall`` from the thread that broadcasts: one client that stops reading would block
that thread, and with it everyone.  Why not a writer thread per connection: two threads per
idle user cost memory and GIL hand-offs on every broadcast.  Instead every connection owns an
``Outbox`` (a byte-bounded queue); one ``Sender`` thread writes all outboxes with non-blocking
sends, one ``send`` per connection for everything queued (for TkChat clients), and waits on a
selector for sockets whose kernel buffer is full.  When nothing is queued and the Sender is not
on the outbox, ``put`` tries the (non-blocking) socket itself first, as an asyncio transport
does: in a quiet room most objects go out without a hand-over (bench/SERVER.md, paced load).

One socket, one file descriptor.  The Sender sends on the connection's own socket object, which
is non-blocking for good (``open`` makes it so): a send can never wait, whatever any thread
does, and it works the same on Windows (no ``MSG_DONTWAIT``).  The handler's thread, the only
reader, waits for input with ``Inbound`` (server/inbound.py: ``poll``/``select`` with a
timeout) instead of a socket timeout.  The handler closes the socket only after
``Outbox.close`` returned, and that waits until the Sender has let go of it, so a closed (and
reused) descriptor is never written.

Limits.  A connection is judged on its own unsent backlog: a ``put`` finding more than ``limit``
bytes still unsent drops the connection (its user can reconnect and get history), whatever the
size of what is being queued, so a big broadcast batch never drops an empty, fast reader.  The
Sender also counts the bytes queued on all connections; past ``total_limit``, the connections
with the largest backlogs are dropped first.

Classic KTN clients decode each ``recv`` as exactly one object: their outbox has a ``gap`` and
sends one object per ``send``, ``gap`` seconds apart, while its backlog is short; once the
backlog is more than pacing can send in one second, it goes out as whole lines, as much as one
``send`` takes, rather than fall behind.  ``pause`` holds what is queued next back (the 100 ms
between the login ``info`` and the history).

Threads: ``put``/``pause``/``close``/``kick`` are called from any thread; everything touching the
selector or a socket's send side runs on the ``Sender`` thread.  ``Sender.stop`` ends it.
Locks: an outbox's ``_lock`` may be held while taking the Sender's ``_count_lock`` (never the
other way round); the Sender's ``_lock`` is never held while taking either.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import socket
import threading
import time
from collections import deque

log = logging.getLogger(__name__)

_MAX_SEND = 1 << 20  # bytes handed to one send() call
SEND_BUFFER_BYTES = 256 * 1024  # SO_SNDBUF of accepted sockets: the kernel's share of a backlog
THROTTLE_SECONDS = 1.0  # longest the history writer waits for one reader (``throttle``)
PROGRESS_SECONDS = 2.0  # a reader whose last send was longer ago is not waited for
RELEASE_SECONDS = 5.0  # longest ``close`` waits for the Sender to let go of the socket


class Outbox:
    """One connection's outgoing queue; owned by its ``ClientHandler``, drained by the Sender."""

    def __init__(self, sock: socket.socket, sender: Sender, *, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit
        # Seconds between objects (classic clients); 0 sends everything queued at once.
        self.gap = 0.0
        self._sender = sender
        self._sock = sock  # the connection's socket: the Sender sends, the handler reads
        self._lock = threading.Lock()
        self._chunks: deque[bytes | float] = deque()  # float: pause for that many seconds
        self._objects = 0  # bytes items in _chunks (a paced outbox's backlog)
        self._partial: memoryview | None = None  # the unsent tail of the last send
        self._paced = False  # _partial is one object of a paced outbox
        self._queued = 0  # bytes in _chunks and _partial, counted in the Sender's total
        self._scheduled = False  # on the Sender's ready list, paused, or waiting to write
        self._closed = False
        # Backpressure (see ``Sender.throttle``).  ``progress`` is written by whoever sends
        # and only read elsewhere (a float: no lock); the two flags by ``Sender.count`` and
        # ``Sender.throttle`` under the Sender's ``_count_lock``.
        self.progress = time.monotonic()  # when a send last took bytes
        self.behind = False  # backlog went past limit/2 and not yet back under limit/4
        self.slow = False  # made the writer wait in vain; not waited for until caught up
        self.drained = threading.Event()
        self.drained.set()
        self._released = threading.Event()

    # --------------------------------------------------------------- any thread
    @property
    def queued_bytes(self) -> int:
        return self._queued

    def put(self, data: bytes) -> bool:
        """Queue bytes for sending; ``False`` if the connection is closed or was just dropped
        (it had more than ``limit`` bytes unsent)."""
        with self._lock:
            if self._closed:
                return False
            backlog = self._queued
            if not self._scheduled and not self.gap:
                # Nothing queued and the Sender not on it: try the socket at once, as an
                # asyncio transport does (never blocks: the socket is non-blocking).  Only
                # what the kernel does not take is queued for the Sender.
                try:
                    sent = self._sock.send(data)
                except OSError:
                    sent = 0  # the Sender's flush meets the error again and ends it
                if sent:
                    self.progress = time.monotonic()
                    if sent == len(data):
                        return True
                    data = data[sent:]
            if backlog <= self.limit:
                self._chunks.append(data)
                self._objects += 1
                self._queued += len(data)
                total = self._sender.count(self, len(data))
                wake = self._schedule_locked()
        if backlog > self.limit:
            self.drop(f"{backlog} bytes of output unread (limit {self.limit})")
            return False
        if wake:
            self._sender.schedule(self)
        if total > self._sender.total_limit:
            self._sender.trim()
        return True

    def pause(self, seconds: float) -> None:
        """Leave at least ``seconds`` between what is queued so far and what is queued next."""
        with self._lock:
            if self._closed:
                return
            self._chunks.append(float(seconds))
            wake = self._schedule_locked()
        if wake:
            self._sender.schedule(self)

    def close(self, flush_timeout: float = 0.0) -> bool:
        """Stop queuing; first wait up to ``flush_timeout`` for queued data to go out.

        Returns whether everything queued was sent.  Returns once the Sender has let go of
        the socket, so the caller may close it.
        """
        flushed = self.drained.wait(flush_timeout) if flush_timeout > 0 else self.drained.is_set()
        with self._lock:
            self._closed = True
        self._sender.discard(self)
        if not self._released.wait(RELEASE_SECONDS):
            log.error("%s: the sender did not let go of the socket", self.label)
        return flushed

    def kick(self) -> None:
        """Shut the connection down in both directions so its reader thread wakes and ends."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _schedule_locked(self) -> bool:
        """Mark for the Sender (lock held); True if the caller must hand it over."""
        if self._scheduled:
            return False  # while scheduled, drained is already clear (flush sets both)
        self._scheduled = True
        self.drained.clear()
        return True

    def drop(self, why: str) -> None:
        """End a connection for its backlog: forget what is queued, wake its reader."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._forget_locked()
        log.warning("%s: dropping connection, %s", self.label, why)
        self.kick()
        self._sender.discard(self)

    def _forget_locked(self) -> None:
        """Drop everything still queued from the counts (lock held).  ``_partial`` is the
        Sender's; it sees ``_closed`` and leaves the bytes alone."""
        self._chunks.clear()
        self._objects = 0
        freed = self._queued
        self._queued = 0
        self._sender.count(self, -freed)

    # ---------------------------------------------------------- Sender thread
    def flush(self) -> float | None:
        """Send what can be sent now.  Returns ``None`` when done or blocked on the socket
        (see ``blocked``), or the monotonic time to go on (a pause or a paced gap)."""
        while True:
            if self._closed:
                data = self._partial = None
            else:
                data = self._partial
            if data is None:
                with self._lock:
                    if self._closed or not self._chunks:
                        self._scheduled = False
                        self.drained.set()
                        return None
                    head = self._chunks[0]
                    if isinstance(head, float):
                        self._chunks.popleft()
                        return time.monotonic() + head
                    data = memoryview(self._take_locked())
            try:
                sent = self._sock.send(data[:_MAX_SEND])
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return None
            if sent:
                with self._lock:
                    if not self._closed:
                        self._queued -= sent
                        self.progress = time.monotonic()
                        self._sender.count(self, -sent)
            if sent < len(data):
                self._partial = data[sent:]
                return None  # the kernel buffer is full: wait for writability
            self._partial = None
            if self._paced:
                return time.monotonic() + self.gap

    @property
    def blocked(self) -> bool:
        return self._partial is not None and not self._closed

    def _take_locked(self) -> bytes:
        """The next write: one object (paced, short backlog), else every object up to the next
        pause, at most about ``_MAX_SEND`` bytes."""
        chunks = self._chunks
        self._paced = self.gap > 0 and self._objects * self.gap <= 1.0
        if self._paced:
            item = chunks.popleft()
            assert isinstance(item, bytes)
            self._objects -= 1
            return item
        parts: list[bytes] = []
        size = 0
        while chunks and size < _MAX_SEND:
            item = chunks[0]
            if isinstance(item, float):
                break
            chunks.popleft()
            parts.append(item)
            size += len(item)
        self._objects -= len(parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fail(self, exc: OSError) -> None:
        log.debug("%s: send failed: %s", self.label, exc)
        with self._lock:
            self._closed = True
            self._forget_locked()
            self._scheduled = False
        self._partial = None
        # Nothing more will go out: ``close`` must not wait its flush timeout for it.
        self.drained.set()
        self.kick()

    def fileno(self) -> int:
        return self._sock.fileno()

    def release(self) -> None:
        """The Sender lets go (after unregistering): forget the rest, wake ``close``."""
        with self._lock:
            self._closed = True
            self._forget_locked()
            self._scheduled = False
        self._partial = None
        self.drained.set()
        self._released.set()


class Sender(threading.Thread):
    """The one thread that writes to client sockets."""

    def __init__(self, total_limit: int = 1 << 62) -> None:
        super().__init__(name="tkchat-sender", daemon=True)
        self.total_limit = total_limit
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._ready: list[Outbox] = []
        self._discarded: list[Outbox] = []
        self._outboxes: set[Outbox] = set()
        self._woken = False
        self._stopping = False
        self._finished = False
        self._waiting: set[Outbox] = set()  # registered for EVENT_WRITE
        self._paused: list[tuple[float, int, Outbox]] = []
        self._counter = 0
        self._count_lock = threading.Lock()
        self._caught_up = threading.Condition(self._count_lock)
        self._behind: set[Outbox] = set()  # outboxes with ``behind`` set
        self._total = 0  # bytes queued on every outbox
        self.peak_total = 0  # the most ``_total`` has been (tests, bench)

    def open(self, sock: socket.socket, *, label: str, limit: int) -> Outbox:
        """An outbox for ``sock``, which becomes non-blocking for good (see the module doc)."""
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError:
            pass
        outbox = Outbox(sock, self, label=label, limit=limit)
        with self._lock:
            self._outboxes.add(outbox)
        return outbox

    def count(self, outbox: Outbox, delta: int) -> int:
        """Add to the bytes queued on all outboxes, ``outbox``'s own count being already
        changed by ``delta`` (called with its lock held).  Returns the new total."""
        with self._count_lock:
            self._total += delta
            self.peak_total = max(self.peak_total, self._total)
            queued = outbox.queued_bytes
            if queued > outbox.limit // 2:
                if not outbox.behind:
                    outbox.behind = True
                    self._behind.add(outbox)
            elif outbox.behind and queued <= outbox.limit // 4:
                outbox.behind = outbox.slow = False
                self._behind.discard(outbox)
                self._caught_up.notify_all()
            return self._total

    def throttle(self, timeout: float = THROTTLE_SECONDS) -> None:
        """Wait (at most ``timeout``) until no reader that keeps reading is behind.

        The history writer calls this after each broadcast, so a burst of big messages goes
        out at the pace of the readers instead of piling up in their outboxes until they are
        dropped (issue 11: two users' allowed bursts dropped every reader).  Who is waited
        for: connections with more than half their limit unsent whose last send took bytes
        less than ``PROGRESS_SECONDS`` ago.  A silent non-reader makes no progress, so it
        delays nobody; one that does not catch up within ``timeout`` is marked slow and not
        waited for again until its backlog is back under a quarter of its limit."""
        deadline: float | None = None
        with self._caught_up:
            while self._behind:
                now = time.monotonic()
                waiting = [
                    o for o in self._behind if not o.slow and now - o.progress < PROGRESS_SECONDS
                ]
                if not waiting:
                    return
                if deadline is None:
                    deadline = now + timeout
                elif now >= deadline:
                    for outbox in waiting:
                        outbox.slow = True
                        log.info("%s: slow reader, not waited for", outbox.label)
                    return
                self._caught_up.wait(deadline - now)

    def trim(self) -> None:
        """Past ``total_limit``: drop the connections with the largest backlogs first."""
        with self._lock:
            largest = sorted(self._outboxes, key=lambda o: o.queued_bytes, reverse=True)
        for outbox in largest:
            total = self._total
            if total <= self.total_limit:
                return
            outbox.drop(
                f"{outbox.queued_bytes} bytes of output unread, the most while the server holds"
                f" {total} in all (limit {self.total_limit})"
            )

    def schedule(self, outbox: Outbox) -> None:
        with self._lock:
            self._ready.append(outbox)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    def discard(self, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes.discard(outbox)
            finished = self._finished
            if not finished:
                self._discarded.append(outbox)
                wake = not self._woken
                self._woken = True
        if finished:  # no Sender thread any more: nothing else touches the outbox
            outbox.release()
        elif wake:
            self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (after releasing every outbox it still holds)."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self.is_alive():
            self.join(timeout)
            if self.is_alive():
                log.error("sender thread did not stop within %.1f s", timeout)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups, or shutting down

    def run(self) -> None:
        try:
            self._loop()
        except Exception:  # pragma: no cover - a bug; make it loud
            log.exception("sender thread crashed")
            raise
        finally:
            for outbox in list(self._waiting):
                self._unregister(outbox)
            with self._lock:
                self._finished = True
                left = self._outboxes | set(self._discarded)
                self._discarded = []
            for outbox in left:
                outbox.release()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _loop(self) -> None:
        while True:
            timeout = None
            if self._paused:
                timeout = max(0.0, self._paused[0][0] - time.monotonic())
            work: list[Outbox] = []
            for key, _ in self._selector.select(timeout):
                if key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                else:
                    outbox = key.data
                    assert isinstance(outbox, Outbox)
                    self._unregister(outbox)
                    work.append(outbox)
            with self._lock:
                self._woken = False
                work.extend(self._ready)
                self._ready.clear()
                discarded = self._discarded
                self._discarded = []
                stopping = self._stopping
            now = time.monotonic()
            while self._paused and self._paused[0][0] <= now:
                work.append(heapq.heappop(self._paused)[2])
            gone = set(discarded)
            for outbox in work:
                if outbox not in gone:
                    self._flush(outbox)
            if gone:
                self._unregister_all(gone)
            if stopping:
                return

    def _flush(self, outbox: Outbox) -> None:
        if outbox in self._waiting:
            return  # still waiting for the socket to drain
        resume = outbox.flush()
        if resume is not None:
            self._counter += 1
            heapq.heappush(self._paused, (resume, self._counter, outbox))
        elif outbox.blocked:
            self._selector.register(outbox.fileno(), selectors.EVENT_WRITE, outbox)
            self._waiting.add(outbox)

    def _unregister_all(self, gone: set[Outbox]) -> None:
        for outbox in gone:
            self._unregister(outbox)
        if any(p[2] in gone for p in self._paused):
            self._paused = [p for p in self._paused if p[2] not in gone]
            heapq.heapify(self._paused)
        for outbox in gone:
            outbox.release()

    def _unregister(self, outbox: Outbox) -> None:
        if outbox in self._waiting:
            self._waiting.discard(outbox)
            try:
                self._selector.unregister(outbox.fileno())
            except (KeyError, ValueError, OSError):
                pass
