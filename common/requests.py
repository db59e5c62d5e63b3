"""Typed requests: what a client asks of a server, as frozen values both ends share.

The same classes go into ``ClientConnection.send`` and come out of
``ServerConnection.next_event`` (h11's rule: one set of event classes, both directions).
``read_request`` checks only the *shape* of a request object (each key the type PROTOCOL.md
gives it) and returns a ``DecodeError`` with code ``bad_request`` or ``unknown_request``
otherwise; what the values mean (is the name free, is the room valid, is the text too long)
is the server's business, because only it knows.  So a missing ``content`` reads as ``None``
(a classic program may send ``null``): the server answers it with the error of that request
(``invalid_room`` for a ``join``, ``bad_request`` for a ``msg``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.decoder import DecodeError
from common.protocol import CLIENT_ID, ErrorCode


@dataclass(frozen=True, slots=True)
class Login:
    """``login``.  ``client`` is ``None`` for a classic KTN program (PROTOCOL.md)."""

    name: str | None
    client: str | None = CLIENT_ID
    password: str | None = None
    server_password: str | None = None


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class SendMessage:
    """``msg``: to ``room`` (``None``: general) or, with ``to``, to one person."""

    text: str | None
    nonce: str | None = None
    room: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True)
class Names:
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    room: str | None


@dataclass(frozen=True, slots=True)
class Part:
    room: str | None


@dataclass(frozen=True, slots=True)
class Rooms:
    pass


@dataclass(frozen=True, slots=True)
class History:
    """``history``: a page of ``room`` (or of the direct messages ``with_user``)."""

    room: str | None = None
    with_user: str | None = None
    before: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Search:
    words: str | None
    room: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Register:
    """``register``: set ``password``, or change it to ``new_password``."""

    password: str
    new_password: str | None = None


Request = (
    Login
    | Logout
    | SendMessage
    | Names
    | Help
    | Ping
    | Join
    | Part
    | Rooms
    | History
    | Search
    | Register
)


class _Shape(Exception):
    """A key of the wrong type; becomes a ``bad_request`` ``DecodeError``."""


def _opt_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise _Shape(f'"{key}" must be a string')
    return value


def _req_str(payload: dict[str, Any], key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise _Shape(f'{what} needs "{key}" as a string')
    return value


def _opt_int(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise _Shape(f'"{key}" must be a whole number')
    return value


def _content(payload: dict[str, Any]) -> str | None:
    return _opt_str(payload, "content")


def _login(p: dict[str, Any]) -> Login:
    return Login(
        _content(p),
        _opt_str(p, "client"),
        # A password that is not a string is a wrong password (auth_failed), not a bad request.
        p["password"] if isinstance(p.get("password"), str) else _absent(p, "password"),
        p["server_password"]
        if isinstance(p.get("server_password"), str)
        else _absent(p, "server_password"),
    )


def _absent(p: dict[str, Any], key: str) -> str | None:
    """A present but non-string password reads as the empty (always wrong) one."""
    return None if p.get(key) is None else ""


def _message(p: dict[str, Any]) -> SendMessage:
    return SendMessage(_content(p), _opt_str(p, "nonce"), _opt_str(p, "room"), _opt_str(p, "to"))


_READERS: dict[str, Any] = {
    "login": _login,
    "logout": lambda p: Logout(),
    "msg": _message,
    "names": lambda p: Names(_opt_str(p, "room")),
    "help": lambda p: Help(),
    "ping": lambda p: Ping(),
    "join": lambda p: Join(_content(p)),
    "part": lambda p: Part(_content(p)),
    "rooms": lambda p: Rooms(),
    "history": lambda p: History(
        _opt_str(p, "room"), _opt_str(p, "with"), _opt_int(p, "before"), _opt_int(p, "limit")
    ),
    "search": lambda p: Search(_content(p), _opt_str(p, "room"), _opt_int(p, "limit")),
    "register": lambda p: Register(
        _req_str(p, "password", "register"), _opt_str(p, "new_password")
    ),
}


def read_request(payload: dict[str, Any]) -> Request | DecodeError:
    """The typed request for one decoded object, or the error to answer it with."""
    kind = payload.get("request")
    if not isinstance(kind, str):
        return DecodeError(ErrorCode.BAD_REQUEST, 'bad request: "request" must be a string')
    reader = _READERS.get(kind)
    if reader is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "..."
        return DecodeError(ErrorCode.UNKNOWN_REQUEST, f"unknown request {shown!r}; try 'help'")
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        return DecodeError(ErrorCode.BAD_REQUEST, 'bad request: "content" must be a string or null')
    try:
        request: Request = reader(payload)
    except _Shape as exc:
        return DecodeError(ErrorCode.BAD_REQUEST, f"bad request: {exc}")
    return request


def request_object(request: Request) -> dict[str, Any]:
    """The wire object for a request (keys left out where the value is ``None``).

    Keys come in the order the seed's ``MessageParser.request`` calls put them, so every
    request is byte for byte what it was (tests/test_connection.py pins each kind).
    """
    match request:
        case Login(name, client, password, server_password):
            return _obj(
                "login", name, client=client, password=password, server_password=server_password
            )
        case Logout():
            return _obj("logout", None)
        case SendMessage(text, nonce, room, to):
            # Key order is the seed's: where the message goes, then its nonce.
            return _obj("msg", text, room=room, to=to, nonce=nonce)
        case Names(room):
            return _obj("names", None, room=room)
        case Help():
            return _obj("help", None)
        case Ping():
            return _obj("ping", None)
        case Join(room):
            return _obj("join", room)
        case Part(room):
            return _obj("part", room)
        case Rooms():
            return _obj("rooms", None)
        case History(room, with_user, before, limit):
            # Key order is the seed's: the page, then whose history it is.
            return _obj(
                "history", None, before=before, limit=limit, room=room, **{"with": with_user}
            )
        case Search(words, room, limit):
            return _obj("search", words, room=room, limit=limit)
        case Register(password, new_password):
            return _obj("register", None, password=password, new_password=new_password)


def _obj(kind: str, content: str | None, **extra: object) -> dict[str, Any]:
    obj: dict[str, Any] = {"request": kind, "content": content}
    obj.update((k, v) for k, v in extra.items() if v is not None)
    return obj
