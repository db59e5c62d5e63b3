"""A fake KTN server for client tests: a real TCP server on 127.0.0.1, port 0, that answers
each request with recorded bytes, the way one of the public KTN servers would.

PROTOCOL.md lists how other KTN servers differ (bare objects, odd timestamps and senders,
history shapes, no login info, no echo, logout behaviour, names formats).  A test describes one
server as a ``Script``: a function from each request to the byte chunks to answer with, each
chunk one ``sendall``.  The fake reads like a classic server, one request per ``recv``, and
records any ``recv`` that held more (or less) than exactly one whole request in ``violations``,
so a test can check that the client sends one request per write.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.decoder import DecodeError, StreamDecoder

Script = Callable[["FakeKTN", dict[str, Any]], list[bytes]]


def obj(
    response: str, content: Any, sender: Any = "server", timestamp: Any = None, **extra: Any
) -> bytes:
    """One response as bare ``json.dumps`` output (no newline), as classic servers send it."""
    payload: dict[str, Any] = {
        "timestamp": time.time() if timestamp is None else timestamp,
        "sender": sender,
        "response": response,
        "content": content,
    }
    payload.update(extra)
    return json.dumps(payload).encode()


@dataclass
class FakeKTN:
    """Serves one client connection at a time; see the module docstring."""

    script: Script
    greeting: list[bytes] = field(default_factory=list)
    close_on_logout: bool = True
    chunk_gap: float = 0.0  # pause between answer chunks, so they arrive in separate reads
    requests: list[dict[str, Any]] = field(default_factory=list)
    reads: list[bytes] = field(default_factory=list)  # each recv's bytes, as they came
    violations: list[bytes] = field(default_factory=list)
    username: str | None = None

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="fake-ktn", daemon=True)
        self._thread.start()

    def push(self, *chunks: bytes) -> None:
        """Send unsolicited bytes (a broadcast) to the connected client."""
        with self._lock:
            conn = self._conn
        assert conn is not None, "no client connected"
        for chunk in chunks:
            conn.sendall(chunk)

    def close(self) -> None:
        """Stop serving; a connected client sees the connection close."""
        self._stop.set()
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5)
        assert not self._thread.is_alive(), "fake KTN server did not stop"
        self._listener.close()

    # ------------------------------------------------------------ server thread
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                with self._lock:
                    self._conn = conn
                self._talk(conn)
                with self._lock:
                    self._conn = None

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        for chunk in self.greeting:
            conn.sendall(chunk)
        decoder = StreamDecoder()
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.reads.append(data)
            items = decoder.feed(data)
            # One recv, one whole request: what a classic server needs to json.loads it.
            if len(items) != 1 or decoder.buffered:
                self.violations.append(data)
            for item in items:
                if isinstance(item, DecodeError):
                    continue
                self.requests.append(item)
                if item.get("request") == "login" and isinstance(item.get("content"), str):
                    self.username = item["content"]
                try:
                    for index, chunk in enumerate(self.script(self, item)):
                        if index and self.chunk_gap:
                            self._stop.wait(self.chunk_gap)
                        conn.sendall(chunk)
                except OSError:
                    return
                if item.get("request") == "logout" and self.close_on_logout:
                    return
