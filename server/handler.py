"""``ClientHandler``: one connection, from accept to close.

The handler's thread (one per connection, started by ``ChatServer.process_request``) is the only
reader of its socket.  Everything it says goes through ``send``, which queues encoded bytes on
its own ``Outbox``; the room delivers broadcasts the same way, so no thread ever writes to a
socket it does not own and no client can block another.  Cleanup (leave event, closing the
outbox) is in ``finish``, so it runs however ``handle`` ends.

Limits (server/limits.py): every request, whatever its kind, first takes a token from its
address's bucket (``parse_request``); logins also take one from the address's login bucket, and
messages one from the user's own bucket.  Past any of them: ``rate_limited``, connection kept.
Liveness: TCP keepalive on every connection (it ends the dead connections of classic clients,
which never ping); a TkChat client silent past ``--idle-timeout`` is closed.  Everything a peer
sent that reaches the log goes through ``logsafe.clean``.
"""

from __future__ import annotations

import hmac
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from common.connection import NEED_DATA, ServerConnection
from common.decoder import DecodeError
from common.message import GENERAL_ROOM, Message
from common.protocol import (
    CLASSIC_HISTORY_BYTES,
    DEFAULT_SEARCH,
    MAX_MESSAGE_CHARS,
    MAX_NONCE_CHARS,
    MAX_OBJECT_BYTES,
    MAX_PAGE,
    MAX_SEARCH,
    RESERVED_NAMES,
    AuthField,
    ErrorCode,
    ErrorResponse,
    Event,
    HistoryResponse,
    InfoResponse,
    Response,
    history_chunks,
    history_within,
    is_valid_username,
    response_object,
    room_name,
)
from common.requests import (
    Help,
    History,
    Join,
    Login,
    Logout,
    Names,
    Part,
    Ping,
    Register,
    Request,
    Rooms,
    Search,
    SendMessage,
    request_object,
)
from server.accounts import AccountsUnavailable, password_problem
from server.inbound import Inbound
from server.limits import TokenBucket, address_key
from server.logsafe import CLIENT_CHARS, clean, redacted
from server.room import NameTaken, Refused
from server.tls import ServerTLS

if TYPE_CHECKING:
    from server.app import ChatServer

log = logging.getLogger(__name__)

HELP_TEXT = """TkChat server. One JSON object per line: {"request": R, "content": C}
  login NAME  1-32 letters or digits, unique in any case
  msg TEXT    1-4000 characters, to everyone logged in
  names       who is logged in
  help, ping, logout
TkChat clients also: join/part ROOM, rooms, history, search WORDS,
register with "password" (then login needs it)"""

_RECV_BYTES = 65536
CLASSIC_GAP_SECONDS = 0.005  # between objects sent to a classic client (see ``parse_login``)
CLASSIC_HISTORY_DELAY = 0.1  # between a classic client's login info and its history
_IDLE_POLL_SECONDS = 300.0  # reader wake-up when logged in; the socket must keep a timeout
# TCP keepalive: first probe after a minute of silence, then every 10 s, 5 unanswered = dead.
KEEPALIVE_IDLE_SECONDS = 60
KEEPALIVE_INTERVAL_SECONDS = 10
KEEPALIVE_PROBES = 5
# An answer costs its address one more token per this many bytes (see ``send``).
_ANSWER_BYTES_PER_TOKEN = 1024


def enable_keepalive(sock: socket.socket) -> None:
    """Turn on TCP keepalive with the timings above, where the OS has the knobs."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:
        return
    # TCP_KEEPALIVE is macOS's name for TCP_KEEPIDLE.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE_SECONDS),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL_SECONDS),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_PROBES),
    ):
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                pass


class ClientHandler(socketserver.BaseRequestHandler):
    """Serves one client connection (see the module docstring for the threading rules)."""

    server: ChatServer
    request: socket.socket

    # ------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        # True once this connection proved a registered name with its password (login or
        # register): only then may it read back what that name was sent privately.
        self.proven: bool = False
        self._closing = threading.Event()  # set by ``close``: ends a login delay early
        self.peer = f"{self.client_address[0]}:{self.client_address[1]}"
        self.address = address_key(str(self.client_address[0]))  # what the limits count
        self.client: str | None = None  # the login's "client" string (None: classic)
        # Bytes in, typed requests (or the error to answer) out: the protocol side of it all.
        self.conn = ServerConnection(MAX_OBJECT_BYTES)
        config = self.server.config
        self._limiter = TokenBucket(config.rate_limit, config.rate_burst)
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        enable_keepalive(self.request)
        self.outbox = self.server.sender.open(
            self.request, label=self.peer, limit=config.max_queue_bytes
        )
        # From here on the socket is non-blocking: this thread reads it through ``inbound``.
        self.inbound = Inbound(self.request)
        # TLS between the socket and everything above it, on a TLS port (server/tls.py).
        self.tls: ServerTLS | None = self.server.tls_layer(self.request, self.outbox, self.peer)
        self._open = True
        self.server.register(self)
        # Summarised per address: a client reconnecting in a loop (an attack, or a broken
        # script) writes one line and a count per window, not hundreds of lines a second.
        self.server.warnings.note(
            f"connections from {self.address}", logging.INFO, "connect from %s", self.peer
        )

    def handle(self) -> None:
        """Read and dispatch requests until the peer closes, logs out, times out or is closed.

        Before login the connection has ``--login-timeout`` in all.  After it, a TkChat client
        (it sent ``"client"``; it pings when quiet) silent for ``--idle-timeout`` is gone; a
        classic client only ever ends by closing or by TCP keepalive.
        """
        config = self.server.config
        deadline = time.monotonic() + config.login_timeout
        heard = time.monotonic()
        while self.is_open():
            now = time.monotonic()
            if self._name is None:
                left = deadline - now
                if left <= 0:
                    self._close_with(
                        ErrorCode.LOGIN_TIMEOUT,
                        f"no login within {config.login_timeout:g} seconds; closing",
                        "closed: no login in time (--login-timeout)",
                    )
                    return
                timeout = left
            elif self.client is not None and config.idle_timeout > 0:
                left = heard + config.idle_timeout - now
                if left <= 0:
                    self._close_with(
                        ErrorCode.IDLE_TIMEOUT,
                        f"nothing heard for {config.idle_timeout:g} seconds; closing",
                        "closed: silent too long (--idle-timeout)",
                    )
                    return
                timeout = min(left, _IDLE_POLL_SECONDS)
            else:
                timeout = _IDLE_POLL_SECONDS
            try:
                if self.tls is None:
                    data = self.inbound.recv(_RECV_BYTES, timeout)
                else:
                    data = self.tls.recv(self.inbound, timeout)
            except TimeoutError:
                continue
            except OSError as exc:
                log.info("%s: connection lost (%s)", self.who, exc)
                return
            if not data:
                return
            heard = time.monotonic()
            conn = self.conn
            conn.receive_data(data)
            while (item := conn.next_event()) is not NEED_DATA:
                if isinstance(item, DecodeError):
                    if item.fatal:
                        self._error(item.code, item.text)
                        log.warning("%s: %s; closing", self.who, clean(item.text))
                        return
                    if self._within_address_limit():
                        self._error(item.code, item.text)
                    continue
                self.parse_request(item)
                if not self.is_open():
                    return

    def finish(self) -> None:
        name = self._name
        if name is not None:
            self.server.room.settle(self)  # others hear this user's last words before the leave
            self.conn.logged_out()
            self.server.room.leave(name, self)
            log.info("logout %s (%s)", name, self.peer)
        if self.tls is not None:
            self.tls.close()  # close_notify, queued after everything else
        self.outbox.close(self.server.config.shutdown_flush_seconds)
        self.server.unregister(self)
        self.server.warnings.note(
            f"disconnects from {self.address}", logging.INFO, "disconnect %s", self.peer
        )

    def _close_with(self, code: str, text: str, summary: str) -> None:
        """Tell the client why, log it (summarised: a flood of these is one line per window)."""
        self._error(code, text)
        self.server.warnings.note(summary, logging.INFO, "%s: %s", self.who, summary)

    def is_open(self) -> bool:
        """False once logout or ``close`` ended the conversation."""
        return self._open

    def close(self) -> None:
        """End this connection from another thread: the reader wakes up and ``finish`` runs."""
        self._open = False
        self._closing.set()
        self.outbox.kick()

    def send(self, response: Response) -> None:
        """Queue one response for this client, after the echoes of messages it sent before
        (the room stores and broadcasts those on its writer thread; see ``LocalRoom.settle``).

        Answers that amplify (40 bytes asked, 37 KB of ``names`` or 64 KB of history answered)
        cost the address a token per KiB, into debt: its next requests wait for it."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %s", self.who, clean(response_object(response)))
        if self._name is not None:
            self.server.room.settle(self)
        data = self.conn.send(response)
        if len(data) >= _ANSWER_BYTES_PER_TOKEN:
            self.server.limits.charge(self.address, len(data) // _ANSWER_BYTES_PER_TOKEN)
        self._put(data)

    def _put(self, data: bytes) -> None:
        """The one way bytes for this connection enter its outbox (on a TLS connection,
        encrypted for it first: server/tls.py)."""
        if self.tls is None:
            self.outbox.put(data)
        else:
            self.tls.send(data)

    # ----------------------------------------------------------- Member API
    @property
    def name(self) -> str | None:
        return self.conn.user

    @property
    def _name(self) -> str | None:
        """The logged-in name; ``ServerConnection`` is its one owner."""
        return self.conn.user

    @property
    def classic(self) -> bool:
        """The logged-in peer is a classic KTN program (its login had no ``"client"``)."""
        return self.conn.classic

    @property
    def who(self) -> str:
        return f"{self._name} ({self.peer})" if self._name else self.peer

    def deliver(self, data: bytes) -> None:
        self._put(data)

    def deliver_batch(self, data: bytes, parts: list[bytes]) -> None:
        # Once per member of every broadcast: ``_put`` inlined for the common case.
        if self.conn.classic:  # paced one object per write (see ``parse_login``)
            for part in parts:
                self._put(part)
        elif self.tls is None:
            self.outbox.put(data)
        else:
            self.tls.send(data)

    def welcome(self, users: list[str], history: list[Message]) -> None:
        # Under the room's lock: queue only, never ``send`` (its ``settle`` waits for the
        # writer, which needs that lock; see the lock order in server/room.py).
        name = self._name
        self._answer(
            InfoResponse(
                f"Login successful. Welcome, {name}! Online: {in_words(users)}", users=tuple(users)
            )
        )
        if not self.classic:
            self._answer(history_within(history, MAX_OBJECT_BYTES))
            return
        # A classic program reads the history with recv(1024) after a moment: small objects,
        # paced like everything else it gets (PROTOCOL.md, Classic clients).
        self.outbox.pause(CLASSIC_HISTORY_DELAY)
        for chunk in history_chunks(history, CLASSIC_HISTORY_BYTES):
            self._put(self.conn.send(chunk))

    def joined(self, room: str, users: list[str], history: list[Message]) -> None:
        # Under the room's lock, like ``welcome``.
        self._answer(
            InfoResponse(
                f"You joined {room}. Members: {in_words(users)}",
                event=Event.JOINED,
                room=room,
                users=tuple(users),
            )
        )
        answer = history_within(history, MAX_OBJECT_BYTES - _KEYS_ROOM)
        self._answer(replace(answer, room=room))

    def _answer(self, response: Response) -> None:
        """Queue a response now, without waiting for this client's queued posts."""
        self._put(self.conn.send(response))

    # ------------------------------------------------------------- requests
    def parse_request(self, request: Request) -> None:
        """Dispatch one typed request (``common.requests``); every path answers or closes
        (PROTOCOL.md, Requests).  Its shape was checked by ``ServerConnection``; what its
        values mean is checked here.

        Every request, of any kind and valid or not, first takes a token from its address's
        bucket (server/limits.py): past it the answer is ``rate_limited`` and nothing else
        happens, so a new request kind is limited without doing anything for it.
        """
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %s", self.who, clean(request_object(redacted(request))))
        if not self._within_address_limit():
            return
        self._REQUESTS[type(request)](self, request)

    def parse_login(self, request: Login) -> None:
        if self._name is not None:
            self._error(ErrorCode.ALREADY_LOGGED_IN, f"already logged in as {self._name}")
            return
        content, client = request.name, request.client
        if content is None:
            self._error(ErrorCode.BAD_REQUEST, 'bad request: login needs "content": NAME')
            return
        if not self.server.limits.allow_login(self.address):
            self._error(
                ErrorCode.RATE_LIMITED,
                "slow down: too many logins from your address; try again in a few seconds",
            )
            return
        guard = self.server.login_guard
        if guard.refused(self.client_address[0]):
            self._too_many_attempts()
            return
        if not self._password_ok(request.server_password):
            self._auth_failed(AuthField.SERVER_PASSWORD, content)
            return
        if not self.valid_username(content):
            reserved = isinstance(content, str) and content.lower() in RESERVED_NAMES
            self._error(
                ErrorCode.INVALID_USERNAME,
                f"the name {content} is reserved (it would read as the server speaking)"
                if reserved
                else "invalid username: use 1-32 letters (A-Z, a-z) or digits (0-9)",
            )
            return
        # The password before the name's availability: without it nobody learns whether a
        # registered user is online.
        proven = False
        try:
            registered = self.server.accounts.is_registered(content)
            if registered and not self.server.accounts.verify(content, request.password):
                self._auth_failed(AuthField.PASSWORD, content)
                return
        except AccountsUnavailable:  # cluster mode: Redis cannot be reached
            self._error(ErrorCode.UNAVAILABLE, "the server cannot check names now; try later")
            return
        proven = registered
        if not self.username_available(content):
            self._error(ErrorCode.NAME_TAKEN, f"the name {content} is taken")
            return
        self.conn.accept_login(request)  # from here on ``name`` and ``classic`` say so
        if self.classic:
            # A classic client decodes each recv() as one object: a moment between objects
            # keeps a burst (a batch of echoes, say) from arriving in one read.
            self.outbox.gap = CLASSIC_GAP_SECONDS
        self.client = client
        self.proven = proven  # before join: its welcome may be read at once
        try:
            self.server.room.join(content, self)
        except NameTaken:
            self.conn.logged_out()
            self.proven = False
            self._error(ErrorCode.NAME_TAKEN, f"the name {content} is taken")
            return
        except Refused as refused:  # cluster mode: Redis cannot be reached
            self.conn.logged_out()
            self.proven = False
            self._error(refused.code, refused.text)
            return
        log.info(
            "login %s (%s, %s%s)",
            content,
            self.peer,
            "classic client" if client is None else clean(client, CLIENT_CHARS),
            ", registered" if proven else "",
        )

    def parse_register(self, request: Register) -> None:
        """Register the logged-in name with ``password``, or change its password (the old one
        as ``password``, the new one as ``new_password``)."""
        name = self._name
        if name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return
        password, new_password = request.password, request.new_password
        accounts = self.server.accounts
        try:
            registered = accounts.is_registered(name)
        except AccountsUnavailable:
            self._error(ErrorCode.UNAVAILABLE, "the server cannot check names now; try later")
            return
        chosen = password if new_password is None else new_password
        problem = password_problem(chosen)
        if problem is not None:
            key = "password" if new_password is None else "new_password"
            self._error(ErrorCode.BAD_REQUEST, f'bad request: "{key}": {problem}')
            return
        if new_password is None and registered:
            self._error(
                ErrorCode.BAD_REQUEST,
                f"bad request: the name {name} is registered already; to change its password "
                'send the current one as "password" and the new one as "new_password"',
            )
            return
        if new_password is not None and not registered:
            self._error(
                ErrorCode.BAD_REQUEST,
                f'bad request: the name {name} is not registered; send "password" alone '
                "to register it",
            )
            return
        assert isinstance(chosen, str)
        try:
            if new_password is not None and not accounts.verify(name, password):
                self._auth_failed(AuthField.PASSWORD, name)
                return
            accounts.set_password(name, chosen)
        except AccountsUnavailable:
            self._error(
                ErrorCode.UNAVAILABLE, "the server cannot store the password now; try again later"
            )
            return
        self.proven = True
        if new_password is None:
            log.info("register %s (%s)", name, self.peer)
            text = f"The name {name} is registered: logging in as {name} needs this password."
        else:
            log.info("password changed for %s (%s)", name, self.peer)
            text = f"The password of {name} is changed."
        self.send(InfoResponse(text))

    def parse_logout(self, request: Logout) -> None:
        name = self._name
        if name is not None:
            self.server.room.settle(self)
            self.conn.logged_out()
            self.server.room.leave(name, self)
            log.info("logout %s (%s)", name, self.peer)
        self.send(InfoResponse(f"Goodbye{', ' + name if name else ''}. Logged out."))
        self._open = False

    def parse_message(self, request: SendMessage) -> None:
        name = self._name
        if name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return
        content, nonce, to = request.text, request.nonce, request.to
        if nonce is not None and (
            # A lone surrogate cannot be stored (SQLite wants UTF-8): refuse it here, or it
            # would fail the whole batch of messages it was committed with.
            len(nonce) > MAX_NONCE_CHARS or not _is_unicode(nonce)
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
        if to is not None:
            if request.room is not None:
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
        room = self._room_of(request.room)
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

    def parse_names(self, request: Names) -> None:
        if self._name is None:
            self._error(ErrorCode.NOT_LOGGED_IN, "log in first: send a login request")
            return
        room = self._room_of(request.room)
        if room is None:
            return
        try:
            users = self.server.room.names(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        if room == GENERAL_ROOM:
            self.send(InfoResponse(f"Users in the chat: {in_words(users)}", users=tuple(users)))
        else:
            self.send(
                InfoResponse(f"Users in {room}: {in_words(users)}", users=tuple(users), room=room)
            )

    def parse_join(self, request: Join) -> None:
        if not self._logged_in():
            return
        room = self._valid_room(request.room)
        if room is None:
            return
        self.server.room.settle(self)  # earlier echoes first; ``enter`` answers under its lock
        try:
            self.server.room.enter(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)

    def parse_part(self, request: Part) -> None:
        if not self._logged_in():
            return
        room = self._valid_room(request.room)
        if room is None:
            return
        self.server.room.settle(self)
        try:
            self.server.room.part(room, self)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        self.send(InfoResponse(f"You left {room}.", event=Event.PARTED, room=room))

    def parse_rooms(self, request: Rooms) -> None:
        if not self._logged_in():
            return
        try:
            rooms = self.server.room.rooms()
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        shown = [f"{r.name} ({r.users})" for r in rooms[:NAMES_IN_WORDS]]
        more = f" and {len(rooms) - NAMES_IN_WORDS} more" if len(rooms) > NAMES_IN_WORDS else ""
        self.send(InfoResponse(f"Rooms: {', '.join(shown)}{more}", rooms=tuple(rooms)))

    def parse_history(self, request: History) -> None:
        if not self._logged_in():
            return
        before = request.before
        if before is not None and before < 1:
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "before" must be a message id')
            return
        limit = self._limit(request.limit, self.server.room.history_size, MAX_PAGE)
        if limit is None:
            return
        other = request.with_user
        try:
            if other is not None:
                if request.room is not None:
                    self._error(
                        ErrorCode.BAD_REQUEST, 'bad request: history has "room" or "with", not both'
                    )
                    return
                if not is_valid_username(other):
                    self._error(ErrorCode.BAD_REQUEST, 'bad request: "with" must be a username')
                    return
                messages, more = self.server.room.direct_page(self, other, before, limit)
                room = None
            else:
                room = self._room_of(request.room)
                if room is None:
                    return
                messages, more = self.server.room.page(self, room, before, limit)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        answer, cut = _fitting(messages)
        self.send(replace(answer, room=room, with_user=other, before=before, more=more or cut))

    def parse_search(self, request: Search) -> None:
        if not self._logged_in():
            return
        content = request.words
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
        limit = self._limit(request.limit, DEFAULT_SEARCH, MAX_SEARCH)
        if limit is None:
            return
        room = None
        if request.room is not None:
            room = self._room_of(request.room)
            if room is None:
                return
        try:
            found = self.server.room.search(self, content, room, limit)
        except Refused as refused:
            self._error(refused.code, refused.text)
            return
        answer, _ = _fitting(found)
        self.send(replace(answer, search=content, room=room))

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

    def _room_of(self, given: str | None) -> str | None:
        """The ``"room"`` of a request (general when absent), or ``None`` after an error."""
        if given is None:
            return GENERAL_ROOM
        return self._valid_room(given)

    def _limit(self, limit: int | None, default: int, most: int) -> int | None:
        """The ``"limit"`` of a request (at most ``most``), or ``None`` after an error."""
        if limit is None:
            return default
        if limit < 1:
            self._error(ErrorCode.BAD_REQUEST, 'bad request: "limit" must be a positive integer')
            return None
        return min(int(limit), most)

    def parse_help(self, request: Help) -> None:
        self.send(InfoResponse(HELP_TEXT))

    def parse_ping(self, request: Ping) -> None:
        """Liveness, allowed before login: a TkChat client sends it when the line is quiet."""
        self.send(InfoResponse("", event=Event.PONG))

    def _auth_failed(self, field: AuthField, name: str) -> None:
        """A wrong or missing password: answered late (``LoginGuard``), or with
        ``too_many_attempts`` and a close once this address failed too often."""
        verdict = self.server.login_guard.failed(self.client_address[0], name, field.value)
        if verdict.refused:
            self._too_many_attempts()
            return
        # Slept on this connection's own thread: no other client waits; ``close`` ends it.
        self._closing.wait(verdict.delay)
        if field is AuthField.SERVER_PASSWORD:
            text = "this server needs a password: wrong or missing server password"
        else:
            text = f"the name {name} is registered: wrong or missing password"
        self._error(ErrorCode.AUTH_FAILED, text, field)

    def _too_many_attempts(self) -> None:
        self._error(
            ErrorCode.TOO_MANY_ATTEMPTS,
            "too many failed password logins from your address; try again in a few minutes",
        )
        self._open = False

    def _password_ok(self, given: object) -> bool:
        """Constant-time check of ``server_password`` against the server-wide password
        (none set: anyone may join)."""
        expected = self.server.config.password
        if expected is None:
            return True
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())

    def valid_username(self, name: str) -> bool:
        """1-32 ASCII letters or digits, and not a name that reads as authority."""
        return is_valid_username(name) and name.lower() not in RESERVED_NAMES

    def username_available(self, name: str) -> bool:
        return not self.server.room.is_taken(name)

    def _within_address_limit(self, cost: float = 1.0) -> bool:
        """Take ``cost`` from the address's request bucket; past it, say ``rate_limited``."""
        if self.server.limits.allow_request(self.address, cost):
            return True
        self.server.warnings.note(
            f"rate-limited requests from {self.address}",
            logging.INFO,
            "%s: rate limited (--address-rate)",
            self.who,
        )
        self._error(
            ErrorCode.RATE_LIMITED,
            "slow down: too many requests from your address; this one was not served",
        )
        return False

    def _error(self, code: str, text: str, field: AuthField | None = None) -> None:
        self.send(ErrorResponse(text, code, field=None if field is None else field.value))

    # One method per request type; mypy checks each takes its own type.
    _REQUESTS: ClassVar[dict[type[Any], Callable[[ClientHandler, Any], None]]] = {
        Login: parse_login,
        Logout: parse_logout,
        SendMessage: parse_message,
        Names: parse_names,
        Help: parse_help,
        Join: parse_join,
        Part: parse_part,
        Rooms: parse_rooms,
        History: parse_history,
        Search: parse_search,
        Ping: parse_ping,
        Register: parse_register,
    }


_KEYS_ROOM = 64  # room-size bytes kept free when a history answer gets a "room" key
_KEYS_PAGE = 256  # the same for "room"/"with", "before", "more", "search"
MAX_SEARCH_CHARS = 200  # the words of one search


def _fitting(messages: list[Message]) -> tuple[HistoryResponse, bool]:
    """A ``history`` answer with the newest of ``messages`` that fit in one object (each may
    be 4,000 escaped characters), and whether older ones had to be left out."""
    answer = history_within(messages, MAX_OBJECT_BYTES - _KEYS_PAGE - MAX_SEARCH_CHARS * 6)
    return answer, len(answer.messages) < len(messages)


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
