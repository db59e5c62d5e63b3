"""Sans-I/O connection objects, one per side, in the manner of h11's ``Connection``.

Each holds one direction's ``StreamDecoder`` and what the protocol remembers about the peer,
and turns bytes into typed events and typed events into bytes.  No sockets, threads or clocks:
the server's ``ClientHandler``, the network client and the tests move the bytes.

- ``ServerConnection`` (the server's view of one client): ``receive_data(bytes)``, then
  ``next_event()`` until it returns ``NEED_DATA``; each event is a ``Request``
  (``common.requests``) or a ``DecodeError`` to answer (``fatal``: answer, then close).
  ``send(response)`` gives the bytes of a ``Response``.  It knows whether the peer is a
  classic KTN program (its ``Login`` had no ``client``) once the server ``accept_login``\\ s it.
- ``ClientConnection`` (a client's view of a server): ``receive_data``/``next_event`` yield
  ``Response`` values (or ``DecodeError``); ``send(request)`` gives the bytes of a ``Request``.
  ``tkchat_peer`` turns true once the server shows TkChat's extension keys, which is when a
  client may pipeline requests instead of waiting for each answer (PROTOCOL.md, other KTN
  servers).

The same event classes go in on one side and come out on the other; tests/test_connection.py
checks that every event survives ``send`` -> bytes -> ``receive_data`` -> ``next_event`` for any
split of the bytes.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, Final

from common.decoder import DecodeError, StreamDecoder
from common.protocol import MAX_OBJECT_BYTES, MessageParser, Response, encode_response
from common.requests import Login, Request, read_request, request_object


class _NeedData(Enum):
    NEED_DATA = "need data"


NEED_DATA: Final = _NeedData.NEED_DATA
"""``next_event`` has nothing complete: call ``receive_data`` with more bytes first."""


class ServerConnection:
    """The server's side of one connection (see the module docstring)."""

    def __init__(self, max_bytes: int = MAX_OBJECT_BYTES) -> None:
        self._decoder = StreamDecoder(max_bytes)
        self._events: deque[Request | DecodeError] = deque()
        self.user: str | None = None  # set by ``accept_login``, cleared by ``logged_out``
        self.classic = False  # the logged-in peer is a classic KTN program

    def receive_data(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            self._events.append(item if isinstance(item, DecodeError) else read_request(item))

    def next_event(self) -> Request | DecodeError | _NeedData:
        return self._events.popleft() if self._events else NEED_DATA

    def accept_login(self, login: Login) -> None:
        """The server let ``login`` in: from now on the peer is that user."""
        self.user = login.name
        self.classic = login.client is None

    def logged_out(self) -> None:
        self.user = None

    def send(self, response: Response) -> bytes:
        """The bytes of ``response`` (``common.protocol.encode_response``)."""
        return encode_response(response)


class ClientConnection:
    """A client's side of one connection to any KTN server (see the module docstring)."""

    def __init__(self, max_bytes: int = MAX_OBJECT_BYTES) -> None:
        # KTN servers send bare objects with no newline: resync at the next "{", not newline.
        self._decoder = StreamDecoder(max_bytes, resync_at_newline=False)
        self._events: deque[Response | DecodeError] = deque()
        self.tkchat_peer = False

    def receive_data(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if isinstance(item, DecodeError):
                self._events.append(item)
                continue
            if not self.tkchat_peer and _speaks_tkchat(item):
                self.tkchat_peer = True
            self._events.append(MessageParser.parse(item))

    def next_event(self) -> Response | DecodeError | _NeedData:
        return self._events.popleft() if self._events else NEED_DATA

    def send(self, request: Request) -> bytes:
        return MessageParser.encode(request_object(request))


def _speaks_tkchat(obj: dict[str, Any]) -> bool:
    """Keys only TkChat servers send: message ids, error codes, the users list."""
    return (
        isinstance(obj.get("id"), int)
        or isinstance(obj.get("code"), str)
        or isinstance(obj.get("users"), list)
    )
