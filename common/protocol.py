"""``MessageParser``: request/response objects to wire bytes and wire objects to typed values.

Reading is lenient on purpose: the TkChat client talks to any KTN server, and PROTOCOL.md lists
how they differ (bare objects, odd timestamps, history as strings, objects or text, names as a
sentence, a list or a Python repr).  Every field is untrusted: a parse never raises on content
from the network, it returns the best typed value it can.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar

from common.message import GENERAL_ROOM, Message
from common.timestamps import format_timestamp, now_utc, parse_timestamp

DEFAULT_PORT = 9998
MAX_OBJECT_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 4000
MAX_NONCE_CHARS = 64
CLASSIC_HISTORY_BYTES = 1024  # one classic history object, encoded (PROTOCOL.md)
SERVER_SENDER = "server"
CLIENT_ID = "tkchat/1.0"

USERNAME_RE = re.compile(r"[A-Za-z0-9]{1,32}", re.ASCII)
# Names that would read as the server speaking (PROTOCOL.md, login), refused in any case.
RESERVED_NAMES = frozenset({"server", "admin", "root", "system", "moderator"})
# TkChat clients ping a quiet line this often (PROTOCOL.md, ping).
PING_AFTER_SECONDS = 60.0
ROOM_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
MAX_PAGE = 200  # messages in one ``history`` page answer
MAX_SEARCH = 100  # search results in one answer
DEFAULT_SEARCH = 50
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256


class ResponseType(Enum):
    ERROR = "error"
    INFO = "info"
    MESSAGE = "message"
    HISTORY = "history"


class ErrorCode(StrEnum):
    """Error codes of PROTOCOL.md (the ``code`` key of an ``error`` response).

    A ``StrEnum``: a member is its wire string, so it compares equal to a code read off the
    wire and encodes as itself."""

    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    INVALID_USERNAME = "invalid_username"
    NAME_TAKEN = "name_taken"
    ALREADY_LOGGED_IN = "already_logged_in"
    AUTH_FAILED = "auth_failed"
    NOT_LOGGED_IN = "not_logged_in"
    UNKNOWN_REQUEST = "unknown_request"
    RATE_LIMITED = "rate_limited"
    INVALID_ROOM = "invalid_room"
    NOT_IN_ROOM = "not_in_room"
    NO_SUCH_USER = "no_such_user"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    UNAVAILABLE = "unavailable"
    # Server-side refusals that close the connection (not in the KTN core table).
    SERVER_FULL = "server_full"
    LOGIN_TIMEOUT = "login_timeout"
    IDLE_TIMEOUT = "idle_timeout"


class Event(StrEnum):
    """Values of the ``event`` key on ``info`` responses."""

    JOIN = "join"
    LEAVE = "leave"
    SHUTDOWN = "shutdown"
    PONG = "pong"
    JOINED = "joined"  # the answer to ``join``
    PARTED = "parted"  # the answer to ``part``


class AuthField(StrEnum):
    """The ``field`` key of an ``auth_failed`` error: which password was wrong or missing."""

    PASSWORD = "password"
    SERVER_PASSWORD = "server_password"


def is_valid_username(name: object) -> bool:
    return isinstance(name, str) and USERNAME_RE.fullmatch(name) is not None


def room_name(name: object) -> str | None:
    """The room a client means (PROTOCOL.md, Rooms: any case means its lower-case form), or
    ``None`` when ``name`` is not a valid room name."""
    if not isinstance(name, str):
        return None
    lowered = name.lower()
    return lowered if ROOM_RE.fullmatch(lowered) else None


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One entry of a ``rooms`` answer."""

    name: str
    users: int


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    text: str
    code: str | None = None
    timestamp: datetime = field(default_factory=now_utc)
    field: str | None = None  # auth_failed: which password (``AuthField``)
    kind: ClassVar[ResponseType] = ResponseType.ERROR


@dataclass(frozen=True, slots=True)
class InfoResponse:
    text: str
    timestamp: datetime = field(default_factory=now_utc)
    event: str | None = None
    user: str | None = None
    users: tuple[str, ...] | None = None
    room: str | None = None  # join/leave/joined/parted of a room; None: general
    rooms: tuple[RoomInfo, ...] | None = None  # the answer to ``rooms``
    kind: ClassVar[ResponseType] = ResponseType.INFO


@dataclass(frozen=True, slots=True)
class MessageResponse:
    message: Message
    kind: ClassVar[ResponseType] = ResponseType.MESSAGE


@dataclass(frozen=True, slots=True)
class HistoryResponse:
    """Earlier messages, oldest first; ``text`` holds a plain-text history some servers send."""

    messages: tuple[Message, ...]
    text: str | None = None
    timestamp: datetime = field(default_factory=now_utc)
    room: str | None = None  # whose history (join, paging, search in one room)
    with_user: str | None = None  # paging of direct messages (``"with"``)
    before: int | None = None  # a page answer: the id it was asked for
    more: bool | None = None  # a page answer: whether older messages exist
    search: str | None = None  # a search answer: the words searched for
    kind: ClassVar[ResponseType] = ResponseType.HISTORY


Response = ErrorResponse | InfoResponse | MessageResponse | HistoryResponse


@functools.lru_cache(maxsize=256)
def history_item(message: Message) -> str:
    """One ``history`` item: the JSON text of the message's ``message`` object.

    Cached because a server sends the same last 100 messages to every user who logs in: in a
    login storm, encoding them again for each login was the top of the server's profile
    (bench/server_load.py).  ``Message`` is frozen, so a cached text never goes stale.  The
    size covers the default history with room to spare and bounds the memory: one item can
    be 48 KB (4,000 escaped emoji), so 4,096 of them could have held 200 MB.
    """
    return json.dumps(message.to_response())


# ---------------------------------------------------------------- responses to bytes
# The server's one way to put a response on the wire: ``ServerConnection.send`` for one
# connection, ``encode_response`` for an object encoded once and shared by a room's members.
# The key order is the wire's since the first version (tests/test_response_bytes.py pins it
# byte for byte against the dict builders it replaced): classic KTN programs read these bytes.


def _dumps(payload: dict[str, Any]) -> bytes:
    # The default separators are the wire's (", " and ": "); naming them would make json
    # build a new encoder for every response.
    return (json.dumps(payload) + "\n").encode("ascii")


def encode_response(response: Response, *, room_last: bool = False) -> bytes:
    """The bytes of one response: ``response_object`` encoded (``MessageParser.encode``)."""
    return _dumps(response_object(response, room_last=room_last))


def response_object(response: Response, *, room_last: bool = False) -> dict[str, Any]:
    """The wire object of a response; an extension key only where it has a value.

    Key order: an ``info`` names its ``"room"`` right after its ``"event"`` (``joined``,
    ``parted``, a room's ``join``/``leave``), and last when it has no event (``names`` of a
    room).  ``room_last`` puts it last after an event too: the cluster's join/leave events have
    always been sent that way (server/cluster.py), and their bytes are kept as they were.
    """
    if isinstance(response, MessageResponse):
        return response.message.to_response()
    if isinstance(response, ErrorResponse):
        obj = _envelope(response.timestamp, ResponseType.ERROR, response.text)
        if response.code is not None:
            obj["code"] = response.code
        if response.field is not None:
            obj["field"] = response.field
        return obj
    if isinstance(response, InfoResponse):
        return _info_object(response, room_last)
    if response.text is not None and not response.messages:
        content: Any = response.text
    else:
        content = [history_item(m) for m in response.messages]
    return _history_object(response, content)


def _envelope(moment: datetime, kind: ResponseType, content: Any) -> dict[str, Any]:
    return {
        "timestamp": format_timestamp(moment),
        "sender": SERVER_SENDER,
        "response": kind.value,
        "content": content,
    }


def _info_object(info: InfoResponse, room_last: bool) -> dict[str, Any]:
    obj = _envelope(info.timestamp, ResponseType.INFO, info.text)
    room_early = info.event is not None and not room_last
    if info.event is not None:
        obj["event"] = info.event
    if room_early and info.room is not None:
        obj["room"] = info.room
    if info.user is not None:
        obj["user"] = info.user
    if info.users is not None:
        obj["users"] = list(info.users)
    if info.rooms is not None:
        obj["rooms"] = [{"name": r.name, "users": r.users} for r in info.rooms]
    if not room_early and info.room is not None:
        obj["room"] = info.room
    return obj


def _history_object(history: HistoryResponse, content: Any) -> dict[str, Any]:
    """A ``history`` object; a page answer (``more`` set) always carries ``"before"``, null
    for the newest page."""
    obj = _envelope(history.timestamp, ResponseType.HISTORY, content)
    if history.search is not None:
        obj["search"] = history.search
    if history.room is not None:
        obj["room"] = history.room
    if history.with_user is not None:
        obj["with"] = history.with_user
    if history.before is not None or history.more is not None:
        obj["before"] = history.before
    if history.more is not None:
        obj["more"] = history.more
    return obj


def history_within(messages: Sequence[Message], max_bytes: int) -> HistoryResponse:
    """The ``history`` answer holding as many of the newest ``messages`` as fit in
    ``max_bytes`` encoded (a caller adding keys keeps room for them below its limit)."""
    answer = HistoryResponse(tuple(messages))
    items = [history_item(m) for m in answer.messages]
    size = len(_dumps(_history_object(answer, items)))
    dropped = 0
    while size > max_bytes and dropped < len(items):
        # Each item costs its JSON-escaped text plus ", " between items.
        size -= len(json.dumps(items[dropped])) + (2 if dropped < len(items) - 1 else 0)
        dropped += 1
    return replace(answer, messages=answer.messages[dropped:]) if dropped else answer


def history_chunks(messages: Sequence[Message], max_bytes: int) -> list[HistoryResponse]:
    """The history as several ``history`` answers, oldest first, each at most ``max_bytes``
    encoded (newline included); a message too long for that goes alone.

    For classic KTN programs, which decode each ``recv(1024)`` as one object
    (PROTOCOL.md, Classic clients).  No messages: one empty ``history``."""
    moment = now_utc()
    empty = len(_dumps(_history_object(HistoryResponse((), timestamp=moment), [])))
    groups: list[list[Message]] = []
    size = max_bytes  # the size of the last group encoded; starts "full"
    for message in messages:
        cost = len(json.dumps(history_item(message)))  # the item as a JSON string in the list
        if groups and size + 2 + cost <= max_bytes:
            groups[-1].append(message)
            size += 2 + cost  # ", " before it
        else:
            groups.append([message])
            size = empty + cost
    return [HistoryResponse(tuple(group), timestamp=moment) for group in groups or [[]]]


class MessageParser:
    """Encode requests and responses; parse any KTN server's responses into ``Response`` values."""

    # ----------------------------------------------------------------- encoding
    @staticmethod
    def encode(payload: dict[str, Any]) -> bytes:
        """One object on the wire: compact ASCII JSON and a newline (safe for every KTN client)."""
        return _dumps(payload)

    @staticmethod
    def request(request: str, content: str | None = None, **extra: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"request": request, "content": content}
        payload.update(extra)
        return payload

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, payload: object) -> Response:
        """Dispatch a decoded object to the ``parse_*`` method for its ``response`` type."""
        if not isinstance(payload, dict):
            return ErrorResponse(f"unreadable response from server: {_preview(payload)}")
        kind = payload.get("response")
        if kind == "error":
            return cls.parse_error(payload)
        if kind == "info":
            return cls.parse_info(payload)
        if kind == "message":
            return cls.parse_message(payload)
        if kind == "history":
            return cls.parse_history(payload)
        return ErrorResponse(f"unknown response type from server: {_preview(kind)}")

    @classmethod
    def parse_error(cls, payload: dict[str, Any]) -> ErrorResponse:
        code = payload.get("code")
        return ErrorResponse(
            text=_text(payload.get("content")),
            code=code if isinstance(code, str) else None,
            timestamp=_when(payload.get("timestamp")),
            field=_str_or_none(payload.get("field")),
        )

    @classmethod
    def parse_info(cls, payload: dict[str, Any]) -> InfoResponse:
        content = payload.get("content")
        users = _names(payload.get("users"))
        if users is None:
            users = _names_from_content(content)
        return InfoResponse(
            text=_text(content),
            timestamp=_when(payload.get("timestamp")),
            event=_str_or_none(payload.get("event")),
            user=_str_or_none(payload.get("user")),
            users=users,
            room=_str_or_none(payload.get("room")),
            rooms=_rooms(payload.get("rooms")),
        )

    @classmethod
    def parse_message(cls, payload: dict[str, Any]) -> MessageResponse:
        return MessageResponse(cls.message_from_object(payload))

    @classmethod
    def parse_history(cls, payload: dict[str, Any]) -> HistoryResponse:
        content = payload.get("content")
        when = _when(payload.get("timestamp"))
        before = payload.get("before")
        more = payload.get("more")
        keys: dict[str, Any] = {
            "room": _str_or_none(payload.get("room")),
            "with_user": _str_or_none(payload.get("with")),
            "before": before if isinstance(before, int) and not isinstance(before, bool) else None,
            "more": more if isinstance(more, bool) else None,
            "search": _str_or_none(payload.get("search")),
        }
        if isinstance(content, str):
            return HistoryResponse(messages=(), text=content, timestamp=when, **keys)
        if not isinstance(content, list):
            text = None if content is None else _text(content)
            return HistoryResponse(messages=(), text=text, timestamp=when, **keys)
        messages: list[Message] = []
        for item in content:
            obj: object = item
            if isinstance(item, str):
                try:
                    obj = json.loads(item)
                except ValueError:
                    messages.append(Message(text=item, user="", timestamp=when))
                    continue
            if isinstance(obj, dict):
                messages.append(cls.message_from_object(obj))
            elif obj is not None:
                messages.append(Message(text=_text(obj), user="", timestamp=when))
        return HistoryResponse(messages=tuple(messages), timestamp=when, **keys)

    @staticmethod
    def message_from_object(obj: dict[str, Any]) -> Message:
        ident = obj.get("id")
        nonce = obj.get("nonce")
        sender = obj.get("sender")
        return Message(
            text=_text(obj.get("content")),
            user=sender if isinstance(sender, str) else _text(sender) if sender else "",
            timestamp=_when(obj.get("timestamp")),
            id=ident if isinstance(ident, int) and not isinstance(ident, bool) else None,
            nonce=nonce if isinstance(nonce, str) else None,
            room=_room_or_none(obj.get("room")),
            to=_str_or_none(obj.get("to")),
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _room_or_none(value: object) -> str | None:
    """A message's room; ``general`` reads as ``None`` (the default), so both forms compare
    equal on the client."""
    room = _str_or_none(value)
    return None if room == GENERAL_ROOM else room


def _rooms(value: object) -> tuple[RoomInfo, ...] | None:
    if not isinstance(value, list):
        return None
    rooms: list[RoomInfo] = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            count = item.get("users")
            users = count if isinstance(count, int) and not isinstance(count, bool) else 0
            rooms.append(RoomInfo(item["name"], users))
    return tuple(rooms)


def _when(value: object) -> datetime:
    return parse_timestamp(value) or now_utc()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _preview(value: object, limit: int = 80) -> str:
    text = _text(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _names_from_content(content: object) -> tuple[str, ...] | None:
    """Names answers from classic servers: a JSON list, or a Python repr of one."""
    names = _names(content)
    if names is not None:
        return names
    if isinstance(content, str) and len(content) < 65536:
        start, end = content.find("["), content.rfind("]")
        if 0 <= start < end:
            try:
                value = ast.literal_eval(content[start : end + 1])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
            return _names(value)
    return None
