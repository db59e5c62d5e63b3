r"""``Session``: one user's conversation with one server, as a state machine on the Tk thread.

States: ``DISCONNECTED`` -> ``CONNECTING`` -> ``LOGGING_IN`` -> ``ONLINE``; a connection that
drops while online goes to ``WAITING`` and a timer (with backoff) starts the next
``CONNECTING``.  Every change is reported to the listener, which shows it to the user.

Threads: the ``Client``'s one thread (it connects, reads and writes) only puts values on
``self.events`` (a ``queue.Queue``); nothing here blocks on the network.  The Tk thread calls
``drain`` from an ``after`` loop; all state lives on that thread, so nothing here needs a
lock.  Each connection attempt has a generation number, and values from an older attempt are
dropped when drained, so a late event from a connection we gave up on can never disturb the
current one.

Never losing what was typed: every message gets a client nonce (PROTOCOL.md, ``msg``) and
stays *pending* until its echo arrives.  After a reconnect, pending messages that the login
``history`` shows as stored are settled from it, and the rest are sent again with the same
nonce; the server stores a repeated nonce only once, so each message appears exactly once.
History fills the pane without duplicates because message ids already shown are skipped.
Both rules live in gui/pending.py (``PendingMessages``, ``SeenMessages``), and the timers
and backoff of retrying in gui/retry.py (``Retry``); this module is the connection's state
machine around them.
"""

from __future__ import annotations

import enum
import logging
import math
import queue
import time
from collections.abc import Callable
from typing import Protocol

from common.message import Message
from common.protocol import (
    MAX_MESSAGE_CHARS,
    ErrorCode,
    ErrorResponse,
    Event,
    HistoryResponse,
    InfoResponse,
    MessageResponse,
)
from common.requests import Help, Names, Register, Request
from gui.net import conversation_requests
from gui.net.client import Client
from gui.net.conversation_requests import GENERAL, Conversation
from gui.net.events import ClientEvent, Connected, Disconnected
from gui.net.trust import TLSOptions
from gui.pending import Pending, PendingMessages, SeenMessages
from gui.retry import RATE_LIMIT_RETRY_SECONDS, Backoff, Retry

log = logging.getLogger(__name__)

# Errors after which retrying the same login cannot help.
_FINAL_LOGIN_ERRORS = frozenset(
    {
        ErrorCode.INVALID_USERNAME,
        ErrorCode.AUTH_FAILED,
        ErrorCode.ALREADY_LOGGED_IN,
        ErrorCode.TOO_MANY_ATTEMPTS,
    }
)
_MAX_NAME_TAKEN_RETRIES = 5  # our own dropped connection may hold the name a little while
_CHECK_CLOCK_EVERY = 64  # events handled between clock reads in ``drain``


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGGING_IN = "logging in"
    ONLINE = "online"
    WAITING = "waiting to reconnect"


class SessionListener(Protocol):
    """What the session tells the window; every call comes on the Tk thread."""

    def session_state(self, state: State, detail: str) -> None: ...

    def login_failed(self, reason: str, error: ErrorResponse | None) -> None:
        """The first login failed: ``error`` is the server's refusal (its ``code`` and
        ``field`` say which field is wrong), None when the connection itself failed."""

    def registered(self, password: str) -> None:
        """The server accepted ``register``: the name now needs ``password``."""

    def logged_in(self, first: bool) -> None: ...

    def show_message(
        self, message: Message, own: bool, settled: str | None, from_history: bool
    ) -> None:
        """A new message; ``settled`` is the nonce of the pending message it replaces."""

    def show_pending(self, pending: Pending) -> None: ...

    def show_info(self, text: str) -> None: ...

    def show_error(self, text: str) -> None: ...

    def show_server_help(self, text: str) -> None:
        """The answer to ``request_help`` (Help > Server help)."""

    def users_changed(self, users: list[str]) -> None: ...


class Session:
    """See the module docstring.  ``after``/``after_cancel`` are a Tk widget's timer calls."""

    def __init__(
        self,
        listener: SessionListener,
        after: Callable[[int, Callable[[], None]], str],
        after_cancel: Callable[[str], None],
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        login_timeout: float = 8.0,
    ) -> None:
        self.listener = listener
        # The login deadline, the next attempt and its backoff, the resend after rate_limited.
        self.retry = Retry(after, after_cancel, backoff or Backoff())
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.events: queue.Queue[tuple[int, ClientEvent]] = queue.Queue()
        self.state = State.DISCONNECTED
        self.host = ""
        self.port = 0
        self.name = ""
        self.password: str | None = None  # the registered name's (PROTOCOL.md, register)
        self.server_password: str | None = None
        self._registering: str | None = None  # sent in ``register``, not yet answered
        self.tls: TLSOptions | None = None  # how TLS is checked; None: plaintext
        self.users: list[str] = []
        self.pending = PendingMessages()
        self._client: Client | None = None
        self._generation = 0
        self._name_taken = 0
        self._ever_online = False
        self._seen = SeenMessages()
        self._expect_history = False
        self._welcome: str | None = None  # a TkChat login's welcome, shown after its history
        self._help_asked = 0  # help requests not answered yet
        # Conversations (gui/conversation_view.py) sees each event first and takes those of
        # rooms, direct messages, paging and search (True: taken, the session skips it).
        self.claim: Callable[[ClientEvent], bool] | None = None

    @property
    def ever_online(self) -> bool:
        """This conversation got online at least once (a retry is a reconnect, not a first
        login)."""
        return self._ever_online

    # ------------------------------------------------------- conversations hooks
    @property
    def speaks_tkchat(self) -> bool:
        """The server has sent TkChat's keys (ids, codes, users): it has the extensions."""
        return self._client is not None and self._client.pipelining

    def request(self, request: Request) -> bool:
        """Send a typed request (``common.requests``); False when offline."""
        if self._client is None or self.state is not State.ONLINE:
            self.listener.show_error("not connected")
            return False
        self._client.send_payload(request)
        return True

    # ------------------------------------------------------------ user actions
    def connect(
        self,
        host: str,
        port: int,
        name: str,
        password: str | None = None,
        server_password: str | None = None,
        *,
        tls: TLSOptions | None = None,
    ) -> None:
        """Start a new conversation (from the connect screen): fresh history, no retries
        until the first login succeeded.  The passwords go with every login, reconnects too.
        ``tls``: connect with TLS, checked as it says."""
        self.close()
        self.host, self.port, self.name = host, port, name
        self.password, self.server_password = password, server_password
        self.tls = tls
        self._ever_online = False
        self.retry.attempt = 0
        self._name_taken = 0
        self._seen.clear()
        self.pending.clear()
        self.users = []
        self._help_asked = 0
        self._open_connection()

    def send(self, text: str, conversation: Conversation = GENERAL) -> Pending | None:
        """Queue a message for sending; it is pending until echoed.  None if not allowed."""
        if not self.name or self.state is State.DISCONNECTED:
            self.listener.show_error("not connected: connect to a server first")
            return None
        if len(text) > MAX_MESSAGE_CHARS:
            self.listener.show_error(
                f"message too long ({len(text)} characters; at most {MAX_MESSAGE_CHARS})"
            )
            return None
        pending = self.pending.add(text, conversation)
        self.listener.show_pending(pending)
        if self.state is State.ONLINE:
            self._transmit(pending)
        return pending

    def restore_pending(self, messages: list[tuple[str, str, str]]) -> None:
        """Messages kept from an earlier run (nonce, text, conversation label): shown as
        pending in their conversation, and sent with their own nonces once online, so one the
        server already stored is not stored twice."""
        for nonce, text, where in messages:
            if nonce not in self.pending and 0 < len(text) <= MAX_MESSAGE_CHARS:
                conversation = Conversation.from_label(where) or GENERAL
                pending = self.pending.keep(Pending(nonce, text, conversation=conversation))
                self.listener.show_pending(pending)
        if self.state is State.ONLINE and not self._expect_history:
            self._resend_pending()

    def reconnect_now(self) -> bool:
        """ "Reconnect now": while waiting to reconnect, try at once instead of at the timer.
        False (nothing done) in any other state."""
        if self.state is not State.WAITING:
            return False
        self.retry.cancel()
        self._reconnect()
        return True

    def request_names(self) -> None:
        if self._client is not None and self.state is State.ONLINE:
            self._client.send_payload(Names())
        else:
            self.listener.show_error("not connected")

    def request_help(self) -> None:
        if self._client is not None and self.state in (State.ONLINE, State.LOGGING_IN):
            self._help_asked += 1
            self._client.send_payload(Help())
        else:
            self.listener.show_error("not connected")

    def register(self, password: str) -> bool:
        """Register the name with ``password`` (or, if it logged in with one, change it to
        ``password``).  False when not online."""
        if self._client is None or self.state is not State.ONLINE:
            self.listener.show_error("not connected: connect to a server first")
            return False
        if self.password is None:
            self._client.send_payload(Register(password))
        else:
            self._client.send_payload(Register(self.password, new_password=password))
        self._registering = password
        return True

    def logout(self) -> None:
        """Say goodbye politely (the server closes), then forget the connection."""
        client = self._client
        sent = client is not None and self.state is State.ONLINE
        if client is not None and sent:
            client.logout()
        self.close(wait_for_logout=sent)

    def close(self, wait_for_logout: bool = False) -> None:
        """End the connection and any retry; pending messages stay (they are shown)."""
        self.retry.stop()
        self._generation += 1
        client, self._client = self._client, None
        if client is not None and not wait_for_logout:
            client.disconnect()  # after a logout the client closes by itself once answered
        if self.state is not State.DISCONNECTED:
            self._set_state(State.DISCONNECTED, "disconnected")

    # -------------------------------------------------------------- draining
    def drain(self, budget: float, limit: int = 1_000_000) -> bool:
        """Handle queued events for at most ``budget`` seconds and ``limit`` events; True if
        some are left.  The limit bounds the widget work that follows (the pane's flush)."""
        deadline = time.perf_counter() + budget
        get = self.events.get_nowait
        count = 0
        while count < limit:
            try:
                generation, event = get()
            except queue.Empty:
                return False
            if generation == self._generation:
                self._handle(event)
            count += 1
            if count % _CHECK_CLOCK_EVERY == 0 and time.perf_counter() > deadline:
                break
        return not self.events.empty()

    def _handle(self, event: ClientEvent) -> None:
        if self.claim is not None and self.claim(event):
            return
        if isinstance(event, MessageResponse):
            self._on_message(event.message, from_history=False)
            if self.state is State.LOGGING_IN:
                self._went_online()  # some KTN servers answer login with a broadcast only
        elif isinstance(event, InfoResponse):
            self._on_info(event)
        elif isinstance(event, HistoryResponse):
            self._on_history(event)
        elif isinstance(event, ErrorResponse):
            self._on_error(event)
        elif isinstance(event, Connected):
            self._on_connected(event)
        elif isinstance(event, Disconnected):
            self._on_disconnected(event.reason)
        else:
            self._on_connect_failed(event.reason, event.final)

    # ------------------------------------------------------------ connection
    def _open_connection(self) -> None:
        self._generation += 1
        self._welcome = None
        generation = self._generation
        events = self.events

        def on_event(event: ClientEvent) -> None:  # runs on the client's threads
            events.put((generation, event))

        client = Client(
            self.host, self.port, on_event, connect_timeout=self.connect_timeout, tls=self.tls
        )
        self._client = client
        self._set_state(State.CONNECTING, f"connecting to {self.host}:{self.port}")
        client.run()  # connects on the client's own thread; Connected or ConnectFailed follow

    def _on_connected(self, event: Connected) -> None:
        assert self._client is not None
        if event.tls is not None and (event.tls.trust == "first use" or not self._ever_online):
            self.listener.show_info(event.tls.describe())  # a first-use pin: compare it
        self._set_state(State.LOGGING_IN, f"logging in to {self.host}:{self.port} as {self.name}")
        self._client.login(self.name, self.password, self.server_password)
        generation = self._generation
        self.retry.start(self.login_timeout, lambda: self._login_timed_out(generation))

    def _login_timed_out(self, generation: int) -> None:
        if generation != self._generation or self.state is not State.LOGGING_IN:
            return
        reason = (
            f"no answer to the login from {self.host}:{self.port} within "
            f"{self.login_timeout:g} s. Is that a KTN chat server?"
        )
        self._connection_lost(reason)

    def _on_connect_failed(self, reason: str, final: bool = False) -> None:
        self._client = None
        if final:  # e.g. a changed certificate: retrying would only repeat the warning
            self._ever_online = False
        self._connection_lost(reason)

    def _on_disconnected(self, reason: str) -> None:
        self._client = None
        self._connection_lost(reason)

    def _connection_lost(self, reason: str, refusal: ErrorResponse | None = None) -> None:
        """The socket is gone (or never came), or the server refused the login
        (``refusal``): retry if we had been online, else give up."""
        self.retry.stop()  # the reconnect resends everything pending anyway
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
        self._generation += 1
        self._registering = None
        if not self._ever_online:
            if refusal is None and self.state is State.LOGGING_IN and "KTN" not in reason:
                # Connected, then nothing sensible: most likely not a chat server at all.
                reason += (
                    f" before answering the login. Is {self.host}:{self.port} a KTN chat server?"
                )
            self._set_state(State.DISCONNECTED, reason)
            self.listener.login_failed(reason, refusal)
            return
        delay = self.retry.wait(sentence(reason), self._reconnect)
        retry = self.retry
        self._set_state(
            State.WAITING,
            f"{retry.reason} Reconnecting in {math.ceil(delay)} s (attempt {retry.attempt}).",
        )

    def _reconnect(self) -> None:
        if self.state is State.WAITING:
            self._open_connection()

    def _went_online(self) -> None:
        self.retry.cancel()
        first = not self._ever_online
        self._ever_online = True
        self.retry.attempt = 0
        self._name_taken = 0
        how = " over TLS" if self.tls is not None else ""
        self._set_state(State.ONLINE, f"connected to {self.host}:{self.port}{how} as {self.name}")
        self.listener.logged_in(first)
        if not self._expect_history:
            self._resend_pending()

    # -------------------------------------------------------------- responses
    def _on_info(self, info: InfoResponse) -> None:
        if info.event == Event.JOIN and info.user:
            self._set_users([*self.users, info.user])
        elif info.event == Event.LEAVE and info.user:
            self._set_users([u for u in self.users if u.lower() != info.user.lower()])
        elif info.users is not None:
            self._set_users(list(info.users))
        if self.state is State.LOGGING_IN and info.event is None:
            if info.users is not None:
                # A TkChat server says who is online and always sends the history next: the
                # welcome waits for it, so the pane reads oldest first (``_on_history``).
                self._welcome = info.text
                self._expect_history = True
                return
            self.listener.show_info(info.text)
            self._went_online()
            return
        if self._registering is not None and info.event is None and info.users is None:
            # The answer to ``register`` (answers come in order; names answers have users).
            self.password, self._registering = self._registering, None
            self.listener.registered(self.password)
        if info.event in (Event.JOIN, Event.LEAVE) and info.user:
            verb = "joined" if info.event == Event.JOIN else "left"
            self.listener.show_info(f"{info.user} {verb} the chat")
        elif self._help_asked and info.event is None and info.users is None:
            self._help_asked -= 1
            self.listener.show_server_help(info.text)
        else:
            self.listener.show_info(info.text)

    def _on_history(self, history: HistoryResponse) -> None:
        logging_in = self.state is State.LOGGING_IN
        if logging_in:
            self._expect_history = True
        if history.text:
            self.listener.show_info(history.text)
        for message in history.messages:
            self._on_message(message, from_history=True)
        if logging_in:  # the history first, then what is new: the welcome, being online
            welcome, self._welcome = self._welcome, None
            if welcome is not None:
                self.listener.show_info(welcome)
            self._went_online()
        if self._expect_history:
            self._expect_history = False
            self._resend_pending()

    def _on_error(self, error: ErrorResponse) -> None:
        if self.state is State.LOGGING_IN:
            self._login_refused(error)
            return
        if error.code == ErrorCode.RATE_LIMITED and self.pending:
            self._rate_limited()
            return
        if self._registering is not None and error.code in (
            ErrorCode.BAD_REQUEST,
            ErrorCode.AUTH_FAILED,
            ErrorCode.UNAVAILABLE,
            ErrorCode.UNKNOWN_REQUEST,
        ):
            self._registering = None  # the register was refused; the old password holds
        self.listener.show_error(error.text or "the server reported an error")

    def _rate_limited(self) -> None:
        """A message was refused for coming too fast: it stays pending and goes out again.

        The error does not say which message it refused, so every pending one is resent;
        their nonces make the server store each only once (the rest just echo again).  One
        notice and one retry for a whole burst of refusals."""
        if self.retry.resend_later(self._retry_after_rate_limit):
            self.listener.show_error(
                "The server says you are sending too fast; unsent messages go out again in "
                f"{RATE_LIMIT_RETRY_SECONDS:g} s."
            )

    def _retry_after_rate_limit(self) -> None:
        if self.state is State.ONLINE:
            self._resend_pending()

    def _login_refused(self, error: ErrorResponse) -> None:
        reason = error.text or "the server refused the login"
        if not self._ever_online or error.code in _FINAL_LOGIN_ERRORS:
            self._ever_online = False
            self._connection_lost(reason, error)
            return
        # On a reconnect the server may not have noticed our old connection dropping yet.
        self._name_taken += 1
        if error.code == ErrorCode.NAME_TAKEN and self._name_taken > _MAX_NAME_TAKEN_RETRIES:
            self._ever_online = False
        self._connection_lost(reason)

    def _on_message(self, message: Message, *, from_history: bool) -> None:
        if not self._seen.first_time(message, from_history=from_history):
            return
        own = bool(self.name) and message.user.lower() == self.name.lower()
        settled = self.pending.settle(message, from_history=from_history) if own else None
        self.listener.show_message(message, own, settled, from_history)

    def _set_users(self, users: list[str]) -> None:
        unique: dict[str, str] = {}
        for user in users:
            unique.setdefault(user.lower(), user)
        self.users = sorted(unique.values(), key=str.lower)
        self.listener.users_changed(self.users)

    # -------------------------------------------------------------- sending
    def _resend_pending(self) -> None:
        for pending in self.pending:
            self._transmit(pending)

    def _transmit(self, pending: Pending) -> None:
        if self._client is None:
            return
        pending.sends += 1
        if pending.sends > 1:
            log.info("resending pending message %s (send %d)", pending.nonce, pending.sends)
        request = conversation_requests.say(pending.conversation, pending.text, pending.nonce)
        self._client.send_payload(request)

    # ---------------------------------------------------------------- helpers
    def _set_state(self, state: State, detail: str) -> None:
        self.state = state
        log.info("session %s: %s", state.value, detail)
        self.listener.session_state(state, detail)


def sentence(text: str) -> str:
    """``text`` as a sentence: capital first letter, one full stop (none after a "?")."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."
