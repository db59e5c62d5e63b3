"""The client's network core: ``Client`` and its one thread, ``MessageReceiver``.  No Tk here.

The terminal client, the Tk app and headless tests all use this module.  It hands every value
(``common.protocol.Response``, ``Connected``, ``ConnectFailed``, ``Disconnected``) to one
callback; the Tk app's callback only puts it on a ``queue.Queue`` for the Tk thread, because no
thread but Tk's may touch a widget.

One thread per connection, as in mantaray's backend: ``MessageReceiver`` connects, then is the
only user of the socket in both directions.  The caller's thread never touches the socket:
``send_payload`` appends a typed request (``common.requests``) to a queue and wakes the
receiver through a socket pair, so it never blocks (the Tk thread must not stall on the
network), and ``disconnect`` only asks.  The receiver turns each request into bytes with its
``ClientConnection``, which owns the wire format; nothing here builds or reads JSON.  The
receiver waits on a selector for the socket, the wake-up and its next deadline, so "wait for
the server's answer" is a deadline in its loop, not a thread.

It talks to any KTN server, not only TkChat's.  Classic servers read one request per ``recv``,
so requests go out one per write, and after each write the next waits until the server has
answered and gone quiet, or ``answer_wait`` has passed (PROTOCOL.md, other KTN servers).  Once
the server shows TkChat's extension keys (``ClientConnection.tkchat_peer``) requests are
pipelined, and a quiet line gets a ``ping`` now and then so the server keeps the connection.
Some KTN servers close the connection on ``logout`` and some leave it open; the client closes
it itself once the logout is answered, so a logout always ends in one expected ``Disconnected``.
Nothing a server sends can raise out of the receiver: a bad value is logged and skipped.

TLS (``tls=TLSOptions(...)``): ``gui/net/trust.py`` makes the socket an ``ssl.SSLSocket`` right
after connecting, checking the certificate (CA-signed, or pinned on first use) on the way;
``tls_peer`` says what was checked.  An ``SSLSocket`` is safe here because one thread does all
of its reads and writes.  A refused certificate is a ``ConnectFailed`` with ``final`` set.

How the thread ends: the socket closes (the server's doing, or ours after a logout or a
``disconnect``), and the receiver reports ``Disconnected`` exactly once (``ConnectFailed`` if it
never connected) and closes its sockets.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from common.connection import NEED_DATA, ClientConnection
from common.decoder import DecodeError
from common.protocol import (
    CLIENT_ID,
    PING_AFTER_SECONDS,
    ErrorResponse,
    Event,
    InfoResponse,
    Response,
)
from common.requests import Login, Logout, Ping, Request
from gui.net.events import ClientEvent, Connected, ConnectFailed, Disconnected
from gui.net.trust import TLSOptions, TLSPeer, TrustError, establish

log = logging.getLogger(__name__)

# Other KTN servers may send big history objects; our own never exceeds 64 KiB.
CLIENT_MAX_OBJECT_BYTES = 8 * 1024 * 1024
ANSWER_WAIT_SECONDS = 0.5
ANSWER_QUIET_SECONDS = 0.05
_RECV_BYTES = 65536


class MessageReceiver(threading.Thread):
    """The connection's one thread: connect, then read and write until the socket closes."""

    def __init__(self, client: Client) -> None:
        super().__init__(name="tkchat-receiver", daemon=True)
        self.client = client
        self._conn = ClientConnection(CLIENT_MAX_OBJECT_BYTES)
        self._unsent = b""  # the rest of the request being written
        self._sent_logout = False
        # Waiting for a classic server's answer: until ``_answer_by`` for the first byte, then
        # until it has been quiet for ANSWER_QUIET_SECONDS (``_quiet_by``).
        self._waiting = False
        self._answered = False
        self._answer_by = 0.0
        self._quiet_by = 0.0
        # For the ping: what we *send* counts, not what we read (the server closes a connection
        # it has not heard from for its --idle-timeout, however busy the room it sends to).
        self._last_sent = time.monotonic()

    @property
    def tkchat_peer(self) -> bool:
        return self._conn.tkchat_peer

    def run(self) -> None:
        client = self.client
        try:
            sock = client.open_socket()
        except ConnectionError as exc:
            client.connect_failed(str(exc), final=isinstance(exc, TrustError))
            return
        except Exception as exc:  # a bug: still tell the user, never leave them waiting
            log.exception("connecting failed")
            client.connect_failed(f"cannot connect: {exc}")
            return
        reason = "the server closed the connection"
        try:
            client.report(Connected(client.host, client.port, client.tls_peer))
            reason = self._serve(sock)
        except Exception as exc:  # a bug in here must end in a Disconnected, not silence
            log.exception("receiver failed")
            reason = f"connection lost: {exc}"
        finally:
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock.unwrap()  # close_notify: a deliberate end, not a cut line
                except (OSError, ValueError):
                    pass  # not waiting for the server's close_notify; or already gone
            try:
                sock.close()
            except OSError:
                pass
            client.connection_ended(reason)

    # ------------------------------------------------------------------ loop
    def _serve(self, sock: socket.socket) -> str:
        """Move bytes until the connection ends; return why it ended, for a person."""
        client = self.client
        sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(client.wake_reader, selectors.EVENT_READ)
            writing = False
            while True:
                if client.closing:
                    return "disconnected"
                self._fill(time.monotonic())
                if bool(self._unsent) != writing:
                    writing = bool(self._unsent)
                    mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    selector.modify(sock, mask)
                for key, events in selector.select(self._timeout(time.monotonic())):
                    if key.fileobj is client.wake_reader:
                        client.drain_wakeups()
                        continue
                    if events & selectors.EVENT_READ:
                        ended = self._read(sock)
                        if ended is not None:
                            return ended
                    if events & selectors.EVENT_WRITE and self._unsent:
                        failed = self._write(sock)
                        if failed is not None:
                            return failed
                if self._sent_logout and not self._unsent and self._answer_done(time.monotonic()):
                    return "logged out"

    def _read(self, sock: socket.socket) -> str | None:
        try:
            data = sock.recv(_RECV_BYTES)
            # TLS may hold decrypted bytes the selector cannot see.
            while isinstance(sock, ssl.SSLSocket) and sock.pending():
                data += sock.recv(_RECV_BYTES)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            return f"connection lost: {exc.strerror or exc}"
        if not data:
            return "the server closed the connection"
        now = time.monotonic()
        if self._waiting:
            self._answered = True
            self._quiet_by = now + ANSWER_QUIET_SECONDS
        conn = self._conn
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, DecodeError):
                log.warning("unreadable data from server: %s", event.text)
                if event.fatal:
                    return "the server sent an object too large to read"
                continue
            self.client.receive_message(event)
        return None

    def _write(self, sock: socket.socket) -> str | None:
        try:
            sent = sock.send(self._unsent)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            log.info("send failed: %s", exc)
            return f"connection lost: {exc.strerror or exc}"
        self._unsent = self._unsent[sent:]
        now = time.monotonic()
        self._last_sent = now
        if not self._unsent and (self._sent_logout or not self._conn.tkchat_peer):
            self._waiting, self._answered = True, False
            self._answer_by = now + self.client.answer_wait
        return None

    # ------------------------------------------------------------- pacing
    def _answer_done(self, now: float) -> bool:
        """Whether the last request's answer is over (or will not come)."""
        if not self._waiting:
            return True
        if now >= self._answer_by or (self._answered and now >= self._quiet_by):
            self._waiting = False
        return not self._waiting

    def _fill(self, now: float) -> None:
        """Take the next request(s) off the queue when the pacing allows."""
        if self._unsent or self._sent_logout or not self._answer_done(now):
            return
        client = self.client
        if self._conn.tkchat_peer and now - self._last_sent >= client.ping_after:
            client.send_payload(Ping())
        taken = client.take(pipelined=self._conn.tkchat_peer)
        if taken:
            self._unsent = b"".join(self._conn.send(request) for request in taken)
            self._sent_logout = any(isinstance(request, Logout) for request in taken)

    def _timeout(self, now: float) -> float:
        """Seconds until the loop has something to do without any socket event."""
        deadlines = [self._last_sent + self.client.ping_after]
        if self._waiting:
            deadlines.append(self._quiet_by if self._answered else self._answer_by)
        return max(0.0, min(deadlines) - now)


class Client:
    """A connection to a KTN chat server; see the module docstring for the thread."""

    def __init__(
        self,
        host: str,
        port: int,
        on_event: Callable[[ClientEvent], None],
        *,
        client_id: str | None = CLIENT_ID,
        connect_timeout: float = 10.0,
        answer_wait: float = ANSWER_WAIT_SECONDS,
        ping_after: float = PING_AFTER_SECONDS,
        tls: TLSOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_event = on_event
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.answer_wait = answer_wait
        self.ping_after = ping_after
        self.tls = tls
        self.tls_peer: TLSPeer | None = None  # what TLS checked, once connected with ``tls``
        self._lock = threading.Lock()
        self._outgoing: deque[Request] = deque()
        self.wake_reader, self._wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._ended = False
        self._connected = False
        self.closing = False  # ``disconnect`` was called: the receiver closes and ends
        self._logged_out = False
        self.receiver: MessageReceiver | None = None

    # --------------------------------------------------------------- connect
    def run(self) -> None:
        """Start the receiver thread, which connects: ``Connected`` or ``ConnectFailed`` follow."""
        if self.receiver is not None:
            raise RuntimeError("Client.run() called twice")
        self.receiver = MessageReceiver(self)
        self.receiver.start()

    def open_socket(self, *, with_tls: bool = True) -> socket.socket:
        """Connect (receiver thread); ``ConnectionError`` says what went wrong, for a person.
        ``with_tls=False``: TCP only (``gui/net/trust.py`` may need a second connection).

        The wait is on a selector with the wake-up socket, so ``disconnect`` cancels a
        connection attempt to a silent address at once instead of after ``connect_timeout``.
        """
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectionError(f"unknown host {self.host!r}: {exc.strerror}") from exc
        deadline = time.monotonic() + self.connect_timeout
        problem: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                self._connect(sock, address, deadline)
            except TimeoutError as exc:
                sock.close()
                raise ConnectionError(
                    f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s"
                ) from exc
            except InterruptedError as exc:
                sock.close()
                raise ConnectionError("connection attempt cancelled") from exc
            except OSError as exc:
                sock.close()
                problem = exc
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if with_tls and self.tls is not None:
                sock, self.tls_peer = establish(
                    sock,
                    lambda: self.open_socket(with_tls=False),
                    self.host,
                    self.port,
                    options=self.tls,
                    timeout=max(0.1, deadline - time.monotonic()),
                )
            self._connected = True
            return sock
        detail = problem.strerror or str(problem) if problem is not None else "no address"
        raise ConnectionError(
            f"cannot reach {self.host}:{self.port}: {detail}. "
            "Is the server running, and are host and port right?"
        )

    def _connect(self, sock: socket.socket, address: Any, deadline: float) -> None:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code == 0:
            return
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            selector.register(self.wake_reader, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                ready = {key.fileobj for key, _ in selector.select(left)}
                if self.closing:
                    raise InterruptedError
                if self.wake_reader in ready:
                    self.drain_wakeups()
                if sock in ready:
                    break
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))

    @property
    def connected(self) -> bool:
        return self._connected and not self._ended

    @property
    def pipelining(self) -> bool:
        """True once the server shows TkChat's extension keys: it reads any number of
        requests per recv, so requests need not wait for answers."""
        receiver = self.receiver
        return receiver is not None and receiver.tkchat_peer

    # --------------------------------------------------------------- requests
    def send_payload(self, request: Request) -> None:
        """Queue one typed request; requests go out in order.  Never blocks.

        The receiver encodes it (``ClientConnection.send``) when the pacing lets it go out.
        After a ``Logout`` the close that follows is the one we asked for.
        """
        with self._lock:
            if self._ended or self.closing:
                log.debug("not sent, connection closed: %s", type(request).__name__)
                return
            self._outgoing.append(request)
            if isinstance(request, Logout):
                self._logged_out = True  # from now on a close is what we asked for
        self._wake()

    def login(
        self, name: str, password: str | None = None, server_password: str | None = None
    ) -> None:
        """Log in as this client (``client_id``; ``None``: as a classic KTN program).
        ``password``: the registered name's; ``server_password``: the server-wide one
        (PROTOCOL.md, Registered names).  Each is sent only when given."""
        self.send_payload(Login(name, self.client_id, password, server_password))

    def logout(self) -> None:
        """Say goodbye; the connection closes once the server has answered (or not, briefly)."""
        self.send_payload(Logout())

    # ------------------------------------------------------ receiver thread
    def take(self, *, pipelined: bool) -> list[Request]:
        """The next request, or every queued one when the server reads them pipelined."""
        with self._lock:
            if not self._outgoing:
                return []
            if not pipelined:
                return [self._outgoing.popleft()]
            taken = list(self._outgoing)
            self._outgoing.clear()
            return taken

    def drain_wakeups(self) -> None:
        try:
            while self.wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def report(self, event: ClientEvent) -> None:
        """Hand one value to ``on_event``.  A failing handler is a bug in the program using
        this client, but it must not end the connection: it is logged instead."""
        try:
            self.on_event(event)
        except Exception:
            log.exception("event handler failed on %r", event)

    def receive_message(self, response: Response) -> None:
        """Called on the receiver thread for each parsed response."""
        if isinstance(response, InfoResponse) and response.event == Event.PONG:
            return  # the answer to our ``ping``: liveness only, nothing for a person to see
        if isinstance(response, ErrorResponse):
            log.info("server error %s: %s", response.code, response.text)
        self.report(response)

    def connect_failed(self, reason: str, final: bool = False) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self._close_wakeups()
        self.report(ConnectFailed(reason, final))

    def connection_ended(self, reason: str) -> None:
        """Called once as the connection ends; reports ``Disconnected`` once."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            expected = self.closing or self._logged_out
        self._close_wakeups()
        if expected:
            reason = "logged out" if self._logged_out else "disconnected"
        self.report(Disconnected(reason, expected))

    # --------------------------------------------------------------- closing
    def disconnect(self, timeout: float = 0.0) -> None:
        """Close the connection.  Returns at once; with ``timeout``, waits (bounded) for the
        receiver thread to end (tests and the terminal client, never the Tk thread)."""
        with self._lock:
            self.closing = True
        receiver = self.receiver
        if receiver is None:
            self.connection_ended("disconnected")
            return
        self._wake()
        if timeout > 0 and receiver is not threading.current_thread() and receiver.is_alive():
            receiver.join(timeout)
            if receiver.is_alive():
                log.error("%s did not stop within %.1f s", receiver.name, timeout)

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups, or closed

    def _close_wakeups(self) -> None:
        for sock in (self.wake_reader, self._wake_writer):
            try:
                sock.close()
            except OSError:
                pass
