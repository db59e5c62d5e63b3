"""A raw KTN test client: real socket, exact bytes, bounded waits.  No project code in the
receive path except the stream decoder, so tests see what a foreign client would see."""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

from common.decoder import DecodeError, StreamDecoder

TIMEOUT = 5.0


class WireClient:
    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        source: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``source``: the local address to connect from (127.0.0.2, ... for another "host").
        ``tls``: talk TLS with this client context (the test's own, single-threaded use)."""
        where = None if source is None else (source, 0)
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT, source_address=where)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.decoder = StreamDecoder(16 * 1024 * 1024)
        self.pending: list[dict[str, Any]] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, request: str, content: Any = None, **extra: Any) -> None:
        payload = {"request": request, "content": content, **extra}
        self.sock.sendall((json.dumps(payload) + "\n").encode())

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next object; AssertionError if none arrives in time or the server closed."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"no response within {timeout} s (closed={self.closed})")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                continue
            for item in self.decoder.feed(data):
                assert not isinstance(item, DecodeError), f"server sent bad JSON: {item}"
                self.pending.append(item)
        return self.pending.pop(0)

    def expect(self, response: str, timeout: float = TIMEOUT, **keys: Any) -> dict[str, Any]:
        """Skip join/leave events until a ``response`` object arrives; check ``keys`` on it."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.recv(max(0.01, deadline - time.monotonic()))
            if (
                obj.get("response") == "info"
                and obj.get("event") in ("join", "leave")
                and (response != "info" or "event" not in keys)
            ):
                continue
            assert obj.get("response") == response, f"expected {response}, got {obj}"
            for key, value in keys.items():
                assert obj.get(key) == value, f"{key}: expected {value!r} in {obj}"
            return obj

    def login(self, name: str, client: str | None = "test/1.0") -> dict[str, Any]:
        extra = {} if client is None else {"client": client}
        self.send("login", name, **extra)
        info = self.expect("info")
        self.expect("history")
        return info

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                self.recv(max(0.01, deadline - time.monotonic()))
            except AssertionError:
                if not self.closed:
                    raise
        assert self.closed

    def close(self) -> None:
        self.sock.close()
