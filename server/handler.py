"""``ClientHandler``: one connection, from accept to close.

The handler's thread (one per connection, from ``socketserver.ThreadingMixIn``) is the only
reader of its socket.  Everything it says goes through ``send``, which queues encoded bytes on
its own ``Outbox``; the room delivers broadcasts the same way, so no thread ever writes to a
socket it does not own and no client can block another.  Cleanup (leave event, closing the
outbox) is in ``finish``, so it runs however ``handle`` ends.
"""

from __future__ import annotations

import hmac
import logging
import socket
import socketserver
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from common.decoder import DecodeError, StreamDecoder
from common.message import GENERAL_ROOM, Message
from common.protocol import (
    CLASSIC_HISTORY_BYTES,
    DEFAULT_SEARCH,
    MAX_MESSAGE_CHARS,
    MAX_NONCE_CHARS,
    MAX_OBJECT_BYTES,
    MAX_PAGE,
    MAX_SEARCH,
    ErrorCode,
    Event,
    MessageParser,
    is_valid_username,
    room_name,
)
from server.room import NameTaken, Refused

if TYPE_CHECKING:
    from server.app import ChatServer

log = logging.getLogger(__name__)

HELP_TEXT = """TkChat server. Requests are JSON objects {"request": R, "content": C}, one per line:
  login <name>   log in; name is 1-32 letters or digits, unique regardless of case
  msg <text>     send a message (1-4000 characters) to everyone logged in
  names          list who is logged in
TkChat clients also have rooms, direct messages, older history and search:
  join <room>, part <room>, rooms; msg and names take "room", msg takes "to": NAME;
  history with "room" or "with", "before", "limit"; search <words> with "room", "limit"
  help           show this text
  logout         log out and close the connection"""

_RECV_BYTES = 65536
CLASSIC_GAP_SECONDS = 0.005  # between objects sent to a classic client (see ``_put``)
_IDLE_POLL_SECONDS = 300.0  # reader wake-up when logged in; the socket must keep a timeout


class RateLimiter:
    """Token bucket: ``burst`` messages at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ClientHandler(socketserver.BaseRequestHandler):
    """Serves one client connection (see the module docstring for the threading rules)."""

    server: ChatServer
    request: socket.socket

    # ------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        self._name: str | None = None
        self.classic = False
        self.proven: bool = False  # logged in with the password of a registered name
        self.peer = f"{self.client_address[0]}:{self.client_address[1]}"
        self._decoder = StreamDecoder(MAX_OBJECT_BYTES)
        config = self.server.config
        self._limiter = RateLimiter(config.rate_limit, config.rate_burst)
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.outbox = self.server.sender.open(
            self.request, label=self.peer, limit=config.max_queue_bytes, coalesce=True
        )
        self._open = True
        self.server.register(self)
        log.info("connect from %s", self.peer)

    def handle(self) -> None:
        config = self.server.config
        sock = self.request
        deadline = time.monotonic() + config.login_timeout
        while self.is_open():
            if self._name is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.send(
                        MessageParser.error(
                            ErrorCode.LOGIN_TIMEOUT,
                            f"no login within {config.login_timeout:g} seconds; closing",
                        )
                    )
                    log.info("%s: closed, no login within %gs", self.peer, config.login_timeout)
                    return
                sock.settimeout(left)
            else:
                sock.settimeout(_IDLE_POLL_SECONDS)
            try:
                data = sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue
            except OSError as exc:
                log.info("%s: connection lost (%s)", self.who, exc)
                return
            if not data:
                return
            for item in self._decoder.feed(data):
                if isinstance(item, DecodeError):
                    self.send(MessageParser.error(item.code, item.text))
                    if item.fatal:
                        log.warning("%s: %s; closing", self.who, item.text)
                        return
                    continue
                self.parse_request(item)
                if not self.is_open():
                    return

    def finish(self) -> None:
        name = self._name
        if name is not None:
            self.server.room.settle(self)  # others hear this user's last words before the leave
            self._name = None
            self.server.room.leave(name, self)
            log.info("logout %s (%s)", name, self.peer)
        self.outbox.close(self.server.config.shutdown_flush_seconds)
        self.server.unregister(self)
        log.info("disconnect %s", self.peer)

    def is_open(self) -> bool:
        """False once logout or ``close`` ended the conversation."""
        return self._open

    def close(self) -> None:
        """End this connection from another thread: the reader wakes up and ``finish`` runs."""
        self._open = False
        self.outbox.kick()

    def send(self, payload: dict[str, Any]) -> None:
        """Queue one response for this client, after the echoes of messages it sent before
        (the room stores and broadcasts those on its writer thread; see ``Room.settle``)."""
        if self._name is not None:
            self.server.room.settle(self)
        self._put(MessageParser.encode(payload))

    def _put(self, data: bytes) -> None:
        self.outbox.put(data)
        if self.classic:
            # A classic client decodes each recv() as one object: a moment between objects
            # keeps a burst (a batch of echoes, say) from arriving in one read.
            self.outbox.pause(CLASSIC_GAP_SECONDS)

    # ----------------------------------------------------------- Member API
    @property
    def name(self) -> str | None:
        return self._name

    @property
    def who(self) -> str:
        return f"{self._name} ({self.peer})" if self._name else self.peer

    def deliver(self, data: bytes) -> None:
        self._put(data)

    def deliver_batch(self, data: bytes, parts: list[bytes]) -> None:
        if self.classic:
            for part in parts:
                self._put(part)
        else:
            self.outbox.put_batch(data, parts)

    def welcome(self, users: list[str], history: list[Message]) -> None:
        # Under the room's lock: queue only, never ``send`` (its ``settle`` waits for the
        # writer, which needs that lock; see the lock order in server/room.py).
        name = self._name
        self._answer(
            MessageParser.info(
                f"Login successful. Welcome, {name}! Online: {in_words(users)}", users=users
            )
        )
        if self.classic:
            self.outbox.pause(0.1)
            limit = CLASSIC_HISTORY_BYTES
        else:
            limit = MAX_OBJECT_BYTES
        self._answer(MessageParser.history_within(history, limit))

    def joined(self, room: str, users: list[str], history: list[Message]) -> None:
        # Under the room's lock, like ``welcome``.
        self._answer(
            MessageParser.info(
                f"You joined {room}. Members: {in_words(users)}",
                event=Event.JOINED,
                room=room,
                users=users,
            )
        )
        answer = MessageParser.history_within(history, MAX_OBJECT_BYTES - _KEYS_ROOM)
        answer["room"] = room
        self._answer(answer)

    def _answer(self, payload: dict[str, Any]) -> None:
        """Queue a response now, without waiting for this client's queued posts."""
        self._put(MessageParser.encode(payload))

    # ------------------------------------------------------------- requests
    def parse_request(self, payload: dict[str, Any]) -> None:
        """Dispatch one request object; every path answers or closes (PROTOCOL.md, Requests)."""
        request = payload.get("request")
        if not isinstance(request, str):
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "request" must be a string')
            return
        handler = self._REQUESTS.get(request)
        if handler is None:
            shown = request if len(request) <= 40 else request[:40] + "..."
            self._error(ErrorCode.UNKNOWN_REQUEST, f"unknown request {shown!r}; try 'help'")
            return
        content = payload.get("content")
        if content is not None and not isinstance(content, str):
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "content" must be a string or null')
            return
        handler(self, content, payload)

    def parse_login(self, content: str | None, payload: dict[str, Any]) -> None:
        if self._name is not None:
            self._error(ErrorCode.ALREADY_LOGGED_IN, f"already logged in as {self._name}")
            return
        client = payload.get("client")
        if content is None or (client is not None and not isinstance(client, str)):
            self._error(ErrorCode.BAD_REQUEST, 'bad request: login needs "content": NAME')
            return
        if not self._password_ok(payload.get("password")):
            self._error(ErrorCode.AUTH_FAILED, "wrong or missing password")
            return
        if not self.valid_username(content):
            self._error(
                ErrorCode.INVALID_USERNAME,
                "invalid username: use 1-32 letters (A-Z, a-z) or digits (0-9)",
            )
            return
        if not self.username_available(content):
            self._error(ErrorCode.NAME_TAKEN, f"the name {content} is taken")
            return
        self.classic = client is None
        # Classic clients decode each recv() as one object: one object per send for them.
        self.outbox.coalesce = not self.classic
        self._name = content
        try:
            self.server.room.join(content, self)
        except NameTaken:
            self._name = None
            self._error(ErrorCode.NAME_TAKEN, f"the name {content} is taken")
            return
        log.info("login %s (%s, %s)", content, self.peer, client or "classic client")

    def parse_logout(self, content: str | None, payload: dict[str, Any]) -> None:
        name = self._name
        if name is not None:
            self.server.room.settle(self)
            self._name = None
            self.server.room.leave(name, self)
            log.info("logout %s (%s)", name, self.peer)
        self.send(MessageParser.info(f"Goodbye{', ' + name if name else ''}. Logged out."))
        self._open = False

    def parse_message(self, content: str | None, payload: dict[str, Any]) -> None:
        name = self._name
        if name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return
        nonce = payload.get("nonce")
        if nonce is not None and (
            # A lone surrogate cannot be stored (SQLite wants UTF-8): refuse it here, or it
            # would fail the whole batch of messages it was committed with.
            not isinstance(nonce, str) or len(nonce) > MAX_NONCE_CHARS or not _is_unicode(nonce)
        ):
            self._error(
                ErrorCode.BAD_REQUEST,
                f'bad request: "nonce" must be a string of at most {MAX_NONCE_CHARS} characters'
                " of valid Unicode",
            )
            return
        problem = _message_problem(content)
        if problem is not None:
            self._error(ErrorCode.BAD_REQUEST, problem)
            return
        assert content is not None
        to = payload.get("to")
        if to is not None:
            if "room" in payload:
                self._error(
                    ErrorCode.BAD_REQUEST, 'bad request: a msg has "room" or "to", not both'
                )
                return
            if not is_valid_username(to):
                self._error(ErrorCode.NO_SUCH_USER, 'no such user: "to" must be a username')
                return
            if self.classic:
                self._error(
                    ErrorCode.BAD_REQUEST,
                    'direct messages need a client that sends "client" at login',
                )
                return
        room = self._room_of(payload)
        if room is None:
            return
        if not self._limiter.allow():
            self._error(
                ErrorCode.RATE_LIMITED, "slow down: too many messages; this one was not sent"
            )
            return
        try:
            self.server.room.post(name, self, content, nonce, room=room, to=to)
        except Refused as refused:
            self._error(refused.code, refused.text)

    def parse_names(self, content: str | None, payload: dict[str, Any]) -> None:
        if self._name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return
        room = self._room_of(payload)
        if room is None:
            return
        try:
            users = self.server.room.names(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        if room == GENERAL_ROOM:
            self.send(MessageParser.info(f"Users in the chat: {in_words(users)}", users=users))
        else:
            self.send(
                MessageParser.info(f"Users in {room}: {in_words(users)}", users=users, room=room)
            )

    def parse_join(self, content: str | None, payload: dict[str, Any]) -> None:
        if not self._logged_in():
            return
        room = self._valid_room(content)
        if room is None:
            return
        self.server.room.settle(self)  # earlier echoes first; ``enter`` answers under its lock
        try:
            self.server.room.enter(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)

    def parse_part(self, content: str | None, payload: dict[str, Any]) -> None:
        if not self._logged_in():
            return
        room = self._valid_room(content)
        if room is None:
            return
        self.server.room.settle(self)
        try:
            self.server.room.part(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        self.send(MessageParser.info(f"You left {room}.", event=Event.PARTED, room=room))

    def parse_rooms(self, content: str | None, payload: dict[str, Any]) -> None:
        if not self._logged_in():
            return
        rooms = self.server.room.rooms()
        shown = [f"{r.name} ({r.users})" for r in rooms[:NAMES_IN_WORDS]]
        more = f" and {len(rooms) - NAMES_IN_WORDS} more" if len(rooms) > NAMES_IN_WORDS else ""
        self.send(
            MessageParser.info(
                f"Rooms: {', '.join(shown)}{more}", rooms=MessageParser.rooms_list(rooms)
            )
        )

    def parse_history(self, content: str | None, payload: dict[str, Any]) -> None:
        if not self._logged_in():
            return
        before = payload.get("before")
        if before is not None and (not _is_int(before) or before < 1):
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "before" must be a message id')
            return
        limit = self._limit(payload, self.server.room.history_size, MAX_PAGE)
        if limit is None:
            return
        other = payload.get("with")
        try:
            if other is not None:
                if "room" in payload:
                    self._error(
                        ErrorCode.BAD_REQUEST, 'bad request: history has "room" or "with", not both'
                    )
                    return
                if not is_valid_username(other):
                    self._error(ErrorCode.BAD_REQUEST, 'bad request: "with" must be a username')
                    return
                messages, more = self.server.room.direct_page(self, other, before, limit)
                keys: dict[str, Any] = {"with": other}
            else:
                room = self._room_of(payload)
                if room is None:
                    return
                messages, more = self.server.room.page(self, room, before, limit)
                keys = {"room": room}
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        answer, cut = _fitting(messages)
        answer.update(keys, before=before, more=more or cut)
        self.send(answer)

    def parse_search(self, content: str | None, payload: dict[str, Any]) -> None:
        if not self._logged_in():
            return
        if (
            content is None
            or not content.strip()
            or len(content) > MAX_SEARCH_CHARS
            or not _is_unicode(content)
        ):
            self._error(
                ErrorCode.BAD_REQUEST,
                f'bad request: search needs "content": WORDS (at most {MAX_SEARCH_CHARS}'
                " characters of valid Unicode)",
            )
            return
        limit = self._limit(payload, DEFAULT_SEARCH, MAX_SEARCH)
        if limit is None:
            return
        room = None
        if "room" in payload:
            room = self._room_of(payload)
            if room is None:
                return
        try:
            found = self.server.room.search(self, content, room, limit)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        answer, _ = _fitting(found)
        answer["search"] = content
        if room is not None:
            answer["room"] = room
        self.send(answer)

    def _logged_in(self) -> bool:
        """True when logged in; else answer ``not_logged_in``."""
        if self._name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return False
        return True

    def _valid_room(self, given: object) -> str | None:
        """The room a ``join``/``part`` names, or ``None`` after answering ``invalid_room``."""
        room = room_name(given)
        if room is None:
            self._error(
                ErrorCode.INVALID_ROOM,
                "invalid room: use 1-32 letters, digits or '-', starting with a letter or digit",
            )
        return room

    def _room_of(self, payload: dict[str, Any]) -> str | None:
        """The ``"room"`` of a request (general when absent), or ``None`` after an error."""
        given = payload.get("room")
        if given is None:
            return GENERAL_ROOM
        return self._valid_room(given)

    def _limit(self, payload: dict[str, Any], default: int, most: int) -> int | None:
        """The ``"limit"`` of a request (at most ``most``), or ``None`` after an error."""
        limit = payload.get("limit")
        if limit is None:
            return default
        if not _is_int(limit) or limit < 1:
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "limit" must be a positive integer')
            return None
        return min(int(limit), most)

    def parse_help(self, content: str | None, payload: dict[str, Any]) -> None:
        self.send(MessageParser.info(HELP_TEXT))

    def _password_ok(self, given: object) -> bool:
        """Constant-time check against ``--password`` (no server password: anyone may join)."""
        expected = self.server.config.password
        if expected is None:
            return True
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())

    def valid_username(self, name: str) -> bool:
        return is_valid_username(name)

    def username_available(self, name: str) -> bool:
        return not self.server.room.is_taken(name)

    def _error(self, code: str, text: str) -> None:
        log.debug("%s: error %s: %s", self.who, code, text)
        self.send(MessageParser.error(code, text))

    _REQUESTS: ClassVar[dict[str, Callable[[ClientHandler, str | None, dict[str, Any]], None]]] = {
        "login": parse_login,
        "logout": parse_logout,
        "msg": parse_message,
        "names": parse_names,
        "help": parse_help,
        "join": parse_join,
        "part": parse_part,
        "rooms": parse_rooms,
        "history": parse_history,
        "search": parse_search,
    }


_KEYS_ROOM = 64  # room-size bytes kept free when a history answer gets a "room" key
_KEYS_PAGE = 256  # the same for "room"/"with", "before", "more", "search"
MAX_SEARCH_CHARS = 200  # the words of one search


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fitting(messages: list[Message]) -> tuple[dict[str, Any], bool]:
    """A ``history`` answer with the newest of ``messages`` that fit in one object (each may
    be 4,000 escaped characters), and whether older ones had to be left out."""
    answer = MessageParser.history_within(
        messages, MAX_OBJECT_BYTES - _KEYS_PAGE - MAX_SEARCH_CHARS * 6
    )
    return answer, len(answer["content"]) < len(messages)


def _is_unicode(text: str) -> bool:
    """False for text holding an unpaired surrogate (JSON allows it, UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NAMES_IN_WORDS = 50  # names spelled out in an info's text; the "users" key has them all


def in_words(users: list[str]) -> str:
    """The names for a person to read, cut short in a crowd: 1,000 names of 32 letters in the
    text besides the "users" list would take the answer past the 64 KiB object limit."""
    if len(users) <= NAMES_IN_WORDS:
        return ", ".join(users)
    shown = ", ".join(users[:NAMES_IN_WORDS])
    return f"{shown} and {len(users) - NAMES_IN_WORDS} more ({len(users)} in all)"


def _message_problem(content: str | None) -> str | None:
    if content is None:
        return 'bad request: msg needs "content": TEXT'
    if not content.strip():
        return "bad request: the message is empty"
    if len(content) > MAX_MESSAGE_CHARS:
        return f"bad request: messages are at most {MAX_MESSAGE_CHARS} characters"
    if not _is_unicode(content):
        return "bad request: the message holds an unpaired surrogate (not valid Unicode)"
    return None
