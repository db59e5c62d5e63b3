"""The client's network core: ``Client`` and its ``MessageReceiver`` thread.  No Tk in here.

The terminal client, the Tk app and headless tests all use this module.  It hands every value
(``common.protocol.Response``, ``Connected``, ``Disconnected``) to one callback; the Tk app's
callback only puts it on a ``queue.Queue`` for the Tk thread, because no thread but Tk's may
touch a widget.

It talks to any KTN server, not only TkChat's.  Classic servers read one request per ``recv``,
so requests go out one per write from a small writer thread that, after each write, waits
briefly for the server's answer before sending the next (PROTOCOL.md, other KTN servers).
Some KTN servers close the connection on ``logout`` and some leave it open; the client closes
it itself once the logout is answered, so a logout always ends in one expected ``Disconnected``.
Nothing a server sends can raise out of the receiver: a bad value is logged and skipped.

TLS (``tls=TLSOptions(...)``): ``gui/trust.py`` checks the certificate (CA or pinned) during
``run``; the socket stays a plain socket and a ``TLSEngine`` decrypts what the receiver reads
and encrypts what the writer sends (one lock, so two threads can share one TLS connection).

Threads and how they end: ``MessageReceiver`` reads until the socket closes (``disconnect``
shuts it down; the server may close it) and then reports ``Disconnected`` exactly once; the
writer ends on a sentinel that both ``disconnect`` and the receiver's end put on its queue.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from common.decoder import DecodeError, StreamDecoder
from common.protocol import CLIENT_ID, ErrorResponse, MessageParser, Response
from common.tls import TLSEngine
from gui.events import ClientEvent, Connected, Disconnected
from gui.trust import TLSOptions, TLSPeer, establish

log = logging.getLogger(__name__)

# Other KTN servers may send big history objects; our own never exceeds 64 KiB.
CLIENT_MAX_OBJECT_BYTES = 8 * 1024 * 1024
ANSWER_WAIT_SECONDS = 0.5
ANSWER_QUIET_SECONDS = 0.05
_STOP = None


def _speaks_tkchat(obj: dict[str, Any]) -> bool:
    """Keys only TkChat servers send: message ids, error codes, the users list."""
    return (
        isinstance(obj.get("id"), int)
        or isinstance(obj.get("code"), str)
        or isinstance(obj.get("users"), list)
    )


class MessageReceiver(threading.Thread):
    """Reads the socket, decodes objects, and hands each parsed value to the client."""

    def __init__(self, client: Client, sock: socket.socket) -> None:
        super().__init__(name="tkchat-receiver", daemon=True)
        self.client = client
        self.sock = sock

    def run(self) -> None:
        # Resync at the next "{", not the next newline: bare-object servers never send one.
        decoder = StreamDecoder(CLIENT_MAX_OBJECT_BYTES, resync_at_newline=False)
        reason = "the server closed the connection"
        try:
            while True:
                try:
                    data = self.client.read_socket(self.sock)
                except OSError as exc:
                    reason = f"connection lost: {exc.strerror or exc}"
                    break
                if not data:
                    break
                fatal = False
                for item in decoder.feed(data):
                    if isinstance(item, DecodeError):
                        log.warning("unreadable data from server: %s", item.text)
                        if item.fatal:
                            reason = "the server sent an object too large to read"
                            fatal = True
                        continue
                    if not self.client.pipelining and _speaks_tkchat(item):
                        self.client.pipelining = True
                    try:
                        response = MessageParser.parse(item)
                    except Exception:  # a parser bug must cost one value, not the connection
                        log.exception("cannot parse %.200r", item)
                        continue
                    self.client.receive_message(response)  # contains its own failures
                if fatal:
                    break
        finally:
            self.client.connection_ended(reason)


class Client:
    """A connection to a KTN chat server; see the module docstring for the threads."""

    def __init__(
        self,
        host: str,
        port: int,
        on_event: Callable[[ClientEvent], None],
        *,
        client_id: str | None = CLIENT_ID,
        connect_timeout: float = 10.0,
        answer_wait: float = ANSWER_WAIT_SECONDS,
        tls: TLSOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_event = on_event
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.answer_wait = answer_wait
        self.tls = tls
        self.tls_peer: TLSPeer | None = None  # set by ``run`` on a TLS connection
        self._tls_engine: TLSEngine | None = None
        self._sock: socket.socket | None = None
        self._outgoing: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._answered = threading.Event()
        # True once the server shows TkChat's extension keys: it reads any number of requests
        # per recv, so requests need not wait for answers (a busy room would slow each send).
        self.pipelining = False
        self._lock = threading.Lock()
        self._ended = False
        self._closing = False
        self._logged_out = False
        self.receiver: MessageReceiver | None = None
        self._writer: threading.Thread | None = None

    # --------------------------------------------------------------- connect
    def run(self) -> None:
        """Connect and start the threads; ``ConnectionError`` says what went wrong, for a person
        (``gui.trust.TrustError`` when TLS refused the server's certificate)."""
        sock = self._open_socket()
        if self.tls is not None:
            sock, self._tls_engine, self.tls_peer = establish(
                sock,
                self._open_socket,
                self.host,
                self.port,
                options=self.tls,
                timeout=self.connect_timeout,
            )
        sock.settimeout(None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._sock = sock
        self.on_event(Connected(self.host, self.port, self.tls_peer))
        self.receiver = MessageReceiver(self, sock)
        self._writer = threading.Thread(target=self._write_loop, name="tkchat-writer", daemon=True)
        self.receiver.start()
        self._writer.start()

    def _open_socket(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ConnectionError(f"unknown host {self.host!r}: {exc.strerror}") from exc
        except TimeoutError as exc:
            raise ConnectionError(
                f"no answer from {self.host}:{self.port} within {self.connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            raise ConnectionError(
                f"cannot reach {self.host}:{self.port}: {exc.strerror or exc}. "
                "Is the server running, and are host and port right?"
            ) from exc
        return sock

    def read_socket(self, sock: socket.socket) -> bytes:
        """The receiver's ``recv``: plaintext, ``b""`` once the connection (or its TLS) ended."""
        engine = self._tls_engine
        if engine is None:
            return sock.recv(65536)
        data = engine.decrypt_pending()
        while not data and not engine.ended():
            raw = sock.recv(65536)
            if not raw:
                return b""
            data = engine.decrypt(raw)
        if engine.ended() and not data:
            log.info("TLS ended: %s", engine.end_reason)
        return data

    def _write(self, sock: socket.socket, data: bytes) -> None:
        engine = self._tls_engine
        if engine is None:
            sock.sendall(data)
        elif not engine.send(data):
            raise ConnectionError("the TLS connection has ended")

    @property
    def connected(self) -> bool:
        return self._sock is not None and not self._ended

    # --------------------------------------------------------------- requests
    def send_payload(self, payload: dict[str, Any]) -> None:
        """Queue one request; requests go out in order, one per write."""
        if self._ended:
            log.debug("not sent, connection closed: %s", payload.get("request"))
            return
        self._outgoing.put(payload)

    def login(self, name: str, password: str | None = None) -> None:
        extra: dict[str, Any] = {}
        if self.client_id is not None:
            extra["client"] = self.client_id
        if password is not None:
            extra["password"] = password
        self.send_payload(MessageParser.request("login", name, **extra))

    def send_message(self, text: str, nonce: str | None = None) -> None:
        extra = {} if nonce is None else {"nonce": nonce}
        self.send_payload(MessageParser.request("msg", text, **extra))

    def request_names(self) -> None:
        self.send_payload(MessageParser.request("names"))

    def request_help(self) -> None:
        self.send_payload(MessageParser.request("help"))

    def logout(self) -> None:
        self.send_payload(MessageParser.request("logout"))

    # ---------------------------------------------------- receiver callbacks
    def receive_message(self, response: Response) -> None:
        """Called on the receiver thread for each parsed response.

        A failing ``on_event`` is a bug in the program using this client, but it must not end
        the receiver (and with it the connection): it is logged with its traceback instead.
        """
        self._answered.set()
        if isinstance(response, ErrorResponse):
            log.info("server error %s: %s", response.code, response.text)
        try:
            self.on_event(response)
        except Exception:
            log.exception("event handler failed on %r", response)

    def connection_ended(self, reason: str) -> None:
        """Called once by the receiver as it ends; reports ``Disconnected`` once."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            expected = self._closing or self._logged_out
        self._outgoing.put(_STOP)
        self._answered.set()
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        if expected:
            reason = "logged out" if self._logged_out else "disconnected"
        try:
            self.on_event(Disconnected(reason, expected))
        except Exception:
            log.exception("event handler failed on Disconnected")

    # --------------------------------------------------------------- closing
    def disconnect(self, timeout: float = 2.0) -> None:
        """Close the connection and wait (bounded) for both threads to end."""
        with self._lock:
            self._closing = True
        self._outgoing.put(_STOP)
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        current = threading.current_thread()
        for thread in (self.receiver, self._writer):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(timeout)
                if thread.is_alive():
                    log.error("%s did not stop within %.1f s", thread.name, timeout)
        if self.receiver is None:
            self.connection_ended("disconnected")

    def _write_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            payload = self._outgoing.get()
            if payload is _STOP or self._ended:
                return
            self._answered.clear()
            if payload.get("request") == "logout":
                with self._lock:
                    self._logged_out = True  # from now on a close is what we asked for
            try:
                self._write(sock, MessageParser.encode(payload))
            except OSError as exc:
                log.info("send failed: %s", exc)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._await_answer()
            if payload.get("request") == "logout":
                self._close_after_logout(sock)
                return

    def _await_answer(self) -> None:
        """Wait (bounded by ``answer_wait``) until the server has answered and gone quiet.

        An answer can be several objects (a login: ``info``, then ``history``).  Sending the
        next request on the first of them could put two requests in one ``recv`` of a classic
        server that is still writing the rest; once it has been quiet for ``ANSWER_QUIET``
        seconds it is back in ``recv``.
        """
        if self.pipelining:
            return
        deadline = time.monotonic() + self.answer_wait
        if not self._answered.wait(self.answer_wait):
            return  # no answer at all (a server that does not echo, say): go on
        while True:
            self._answered.clear()
            left = deadline - time.monotonic()
            if left <= 0 or not self._answered.wait(min(ANSWER_QUIET_SECONDS, left)):
                return

    def _close_after_logout(self, sock: socket.socket) -> None:
        """End the connection ourselves: some KTN servers leave it open after a logout."""
        with self._lock:
            self._closing = True
        if self._tls_engine is not None:
            try:
                self._tls_engine.close()  # close_notify: a deliberate end, not a cut line
            except OSError:
                pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
