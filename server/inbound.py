"""``Inbound``: how a connection's thread reads its socket.

The socket is non-blocking for good (server/outbox.py: other threads send on it and must never
wait), so the reader cannot use a socket timeout; it waits with ``poll`` (``select`` where
there is none, as on Windows) and then reads.

Why a class and not a function: in a quiet room every request costs its thread a wake-up, and
what that wake-up costs is what a thread per connection pays over an event loop (bench/
SERVER.md, the quiet case).  So the poll object is made and registered once per connection,
not once per wait, and the reader waits *first* and reads second: after a read that did not
fill the buffer the kernel has nothing more, and trying anyway would cost a ``recv`` that fails
with ``EAGAIN`` and a Python exception on every request.  Only after a read that filled the
buffer does it read again before waiting.
"""

from __future__ import annotations

import math
import select
import socket
import time


class Inbound:
    """The one reader of ``sock`` (a non-blocking socket).  Not thread-safe: one thread
    reads."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poller: select.poll | None = None
        if hasattr(select, "poll"):  # no FD_SETSIZE limit
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
        self._more = False  # the last read filled the buffer: more may be waiting

    def recv(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, ``b""`` at the end of the stream; ``TimeoutError`` if nothing
        comes within ``timeout`` seconds.  ``OSError`` for a broken connection."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._more and not self._wait(timeout):
                raise TimeoutError("no data within the timeout")
            try:
                data = self._sock.recv(size)
            except BlockingIOError:  # woken with nothing to read after all
                self._more = False
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError("no data within the timeout") from None
                continue
            self._more = len(data) == size
            return data

    def _wait(self, timeout: float) -> bool:
        """Until the socket has data, an end or an error to read (False: timed out)."""
        if self._poller is not None:
            return bool(self._poller.poll(math.ceil(max(timeout, 0.0) * 1000)))
        readable, _, broken = select.select([self._sock], [], [self._sock], max(timeout, 0.0))
        return bool(readable or broken)
