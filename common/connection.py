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
from common.protocol import (
    MAX_OBJECT_BYTES,
    ErrorResponse,
    InfoResponse,
    MessageParser,
    MessageResponse,
    Response,
    ResponseType,
    history_item,
)
from common.requests import Login, Request, read_request, request_object
from common.timestamps import format_timestamp


class _NeedData(Enum):
    NEED_DATA = "need data"


NEED_DATA: Final = _NeedData.NEED_DATA
"""``next_event`` has nothing complete: call ``receive_data`` with more bytes first."""


def response_object(response: Response) -> dict[str, Any]:
    """The wire object for a response (extension keys only where they have a value)."""
    if isinstance(response, MessageResponse):
        return response.message.to_response()
    extra: dict[str, Any] = {}
    content: Any
    if isinstance(response, ErrorResponse):
        kind, content = ResponseType.ERROR, response.text
        _put(extra, code=response.code, field=response.field)
    elif isinstance(response, InfoResponse):
        kind, content = ResponseType.INFO, response.text
        _put(
            extra,
            event=response.event,
            user=response.user,
            users=None if response.users is None else list(response.users),
            room=response.room,
            rooms=None
            if response.rooms is None
            else MessageParser.rooms_list(list(response.rooms)),
        )
    else:
        kind = ResponseType.HISTORY
        if response.text is not None and not response.messages:
            content = response.text
        else:
            content = [history_item(m) for m in response.messages]
        _put(
            extra,
            room=response.room,
            before=response.before,
            more=response.more,
            search=response.search,
        )
        if response.with_user is not None:
            extra["with"] = response.with_user
    obj: dict[str, Any] = {
        "timestamp": format_timestamp(response.timestamp),
        "sender": "server",
        "response": kind.value,
        "content": content,
    }
    obj.update(extra)
    return obj


def _put(extra: dict[str, Any], **values: Any) -> None:
    extra.update((k, v) for k, v in values.items() if v is not None)


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
        return MessageParser.encode(response_object(response))


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
