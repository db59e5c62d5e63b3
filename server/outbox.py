"""Outgoing data: each connection's bounded ``Outbox`` and the ``Sender`` thread that drains them.

Why not ``sendall`` from the thread that broadcasts: one client that stops reading would block
that thread, and with it everyone.  Why not a writer thread per connection: two threads per
idle user cost memory and GIL hand-offs on every broadcast.  Instead every connection owns an
``Outbox`` (a byte-bounded queue); one ``Sender`` thread writes all outboxes with non-blocking
sends, one ``send`` per connection for everything queued (for TkChat clients), and waits on a
selector for sockets whose kernel buffer is full.  A stuck client only fills its own outbox;
past ``limit`` bytes its connection is shut down and its user can reconnect and get history.

Classic KTN clients decode each ``recv`` as exactly one object, so their outbox sends one object
per ``send`` and can hold a ``pause`` (the 100 ms between login ``info`` and ``history``).

Threads: ``put``/``pause``/``close`` are called from any thread; everything touching the
selector or a socket's send side runs on the ``Sender`` thread.  ``Sender.stop`` ends it.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

_MAX_SEND = 1 << 20  # bytes handed to one send() call


class Outbox:
    """One connection's outgoing queue; owned by its ``ClientHandler``, drained by the Sender."""

    def __init__(
        self,
        sock: socket.socket,
        sender: Sender,
        *,
        label: str,
        limit: int,
        coalesce: bool,
        on_overflow: Callable[[Outbox], None] | None = None,
    ) -> None:
        self.label = label
        self.limit = limit
        self.coalesce = coalesce
        self._sender = sender
        # A duplicate of the connection's socket, non-blocking, used only by the Sender thread.
        self._sock = sock.dup()
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._chunks: deque[bytes | float] = deque()  # float: pause for that many seconds
        self._partial = b""  # the unsent tail of the last send
        self._queued = 0  # bytes in _chunks and _partial
        self._scheduled = False  # on the Sender's ready list or registered for writing
        self._closed = False
        self._failed = False
        self.overflowed = False
        self._on_overflow = on_overflow
        self.drained = threading.Event()
        self.drained.set()

    # --------------------------------------------------------------- any thread
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def put(self, data: bytes) -> bool:
        """Queue bytes for sending; ``False`` if the connection is closed or just overflowed."""
        with self._lock:
            if self._closed:
                return False
            if self._queued + len(data) > self.limit:
                self.overflowed = True
                self._closed = True
                overflow = True
            else:
                overflow = False
                self._chunks.append(data)
                self._queued += len(data)
                wake = not self._scheduled
                if wake:  # while scheduled, drained is already clear (flush sets both)
                    self._scheduled = True
                    self.drained.clear()
        if overflow:
            log.warning(
                "%s: dropping connection, %d bytes of output unread (limit %d)",
                self.label,
                self._queued,
                self.limit,
            )
            self._shutdown_socket()
            self._sender.discard(self)
            if self._on_overflow is not None:
                self._on_overflow(self)
            return False
        if wake:
            self._sender.schedule(self)
        return True

    def put_batch(self, data: bytes, parts: list[bytes]) -> bool:
        """Queue several objects at once: ``data`` (their concatenation, shared by every
        member of a broadcast) as one chunk, or each part alone for a one-object-per-send
        (classic) connection."""
        if self.coalesce:
            return self.put(data)
        return all(self.put(part) for part in parts)

    def pause(self, seconds: float) -> None:
        """Leave at least ``seconds`` between what is queued so far and what is queued next."""
        with self._lock:
            if not self._closed:
                self._chunks.append(float(seconds))
                self.drained.clear()

    def close(self, flush_timeout: float = 0.0) -> bool:
        """Stop queuing; first wait up to ``flush_timeout`` for queued data to go out.

        Returns whether everything queued was sent.  The Sender then forgets this outbox and
        closes its socket duplicate; the connection itself belongs to the handler.
        """
        flushed = self.drained.wait(flush_timeout) if flush_timeout > 0 else self.drained.is_set()
        with self._lock:
            self._closed = True
        self._sender.discard(self)
        return flushed

    def kick(self) -> None:
        """Shut the connection down in both directions so its reader thread wakes and ends."""
        self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---------------------------------------------------------- Sender thread
    def flush(self) -> float | None:
        """Send what can be sent now.  Returns ``None`` when done or blocked on the socket
        (see ``blocked``), or the monotonic time a pause ends."""
        while True:
            data = self._partial
            if not data:
                with self._lock:
                    if not self._chunks:
                        self._scheduled = False
                        self.drained.set()
                        return None
                    head = self._chunks[0]
                    if isinstance(head, float):
                        self._chunks.popleft()
                        return time.monotonic() + head
                    data = self._take_locked()
            try:
                sent = self._sock.send(data[:_MAX_SEND])
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return None
            with self._lock:
                self._queued -= sent
            self._partial = data[sent:]
            if self._partial:
                return None  # the kernel buffer is full: wait for writability

    @property
    def blocked(self) -> bool:
        return bool(self._partial) and not self._failed

    def _take_locked(self) -> bytes:
        chunks = self._chunks
        if not self.coalesce:
            item = chunks.popleft()
            assert isinstance(item, bytes)
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
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fail(self, exc: OSError) -> None:
        log.debug("%s: send failed: %s", self.label, exc)
        with self._lock:
            self._failed = True
            self._closed = True
            self._chunks.clear()
            self._partial = b""
            self._queued = 0
            self._scheduled = False
        self.drained.set()
        self._shutdown_socket()

    def fileno(self) -> int:
        return self._sock.fileno()

    def release(self) -> None:
        """Close the socket duplicate (Sender thread, after unregistering)."""
        self.drained.set()
        self._sock.close()


class Sender(threading.Thread):
    """The one thread that writes to client sockets."""

    def __init__(self) -> None:
        super().__init__(name="tkchat-sender", daemon=True)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._ready: list[Outbox] = []
        self._discarded: list[Outbox] = []
        self._woken = False
        self._stopping = False
        self._waiting: set[Outbox] = set()  # registered for EVENT_WRITE
        self._paused: list[tuple[float, int, Outbox]] = []
        self._counter = 0

    def open(
        self,
        sock: socket.socket,
        *,
        label: str,
        limit: int,
        coalesce: bool,
        on_overflow: Callable[[Outbox], None] | None = None,
    ) -> Outbox:
        return Outbox(
            sock, self, label=label, limit=limit, coalesce=coalesce, on_overflow=on_overflow
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
            self._discarded.append(outbox)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (after releasing every outbox it still holds)."""
        with self._lock:
            self._stopping = True
        self._wake()
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
            for outbox in discarded:
                self._unregister(outbox)
                self._paused = [p for p in self._paused if p[2] is not outbox]
                heapq.heapify(self._paused)
                outbox.release()
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

    def _unregister(self, outbox: Outbox) -> None:
        if outbox in self._waiting:
            self._waiting.discard(outbox)
            try:
                self._selector.unregister(outbox.fileno())
            except (KeyError, ValueError, OSError):
                pass
