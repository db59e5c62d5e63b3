"""``ChatServer``: the listening socket, the connection limits, and an orderly shutdown.

Threads: ``serve_forever`` (the acceptor, one thread; between accepts it also writes summarised
warnings and forgets quiet addresses; a second acceptor for ``--plain-port``), four starters
that start a thread per accepted connection (see ``process_request``), one named
``ClientHandler`` thread per connection (``tkchat-conn-HOST:PORT``, tracked until it ends), the
room's history writer, and the ``Sender``.  ``stop`` ends them in this order: no more accepts
(on either port), the starters (every accepted connection has its thread then), the room's
queue stored and broadcast, a shutdown notice queued to everyone and flushed (bounded), every
connection shut so its reader returns (waiting on a condition that each closing connection
notifies), connection threads joined, then the Sender and the history store.

Limits checked at accept, before a thread exists: ``--max-connections`` for everyone, then
``--max-per-address`` (server/limits.py); a refused socket gets one ``error`` and is closed
(on a TLS port it is only closed: a plaintext error means nothing to a TLS client).
"""

from __future__ import annotations

import logging
import queue
import socket
import socketserver
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from common.protocol import ErrorCode, ErrorResponse, Event, InfoResponse, encode_response
from server.accounts import Accounts, AccountStore, LoginGuard
from server.config import ServerConfig
from server.dbfile import private_db
from server.handler import ClientHandler
from server.history import HistoryStore
from server.limits import AddressLimits, address_key, fit_open_files
from server.logsafe import Summary
from server.outbox import Outbox, Sender
from server.retention import Retention
from server.room import LocalRoom
from server.tls import ServerTLS, server_context

if TYPE_CHECKING:
    from server.cluster import ClusterRoom

log = logging.getLogger(__name__)

_STARTERS = 4  # threads that start connection threads (see process_request)
_HOUSEKEEPING_SECONDS = 1.0  # summarised warnings and the address table, from the accept loop


class ChatServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP chat server speaking PROTOCOL.md."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False  # stop() joins connection threads itself, with a timeout
    request_queue_size = 1024  # listen backlog: a login storm must not be refused

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # A bad --tls-cert/--tls-key raises TLSConfigError here, before anything is opened.
        self.tls_context: ssl.SSLContext | None = (
            server_context(config.tls_cert, config.tls_key or config.tls_cert)
            if config.tls_cert
            else None
        )
        # In cluster mode the history is in Redis; the store stays empty (``:memory:``).
        if not config.redis:
            private_db(config.db)  # folder 0700, file 0600, before SQLite creates it
        self.store = HistoryStore(":memory:" if config.redis else config.db, config.busy_timeout)
        self.max_connections, fitted = fit_open_files(config.max_connections)
        if fitted is not None:
            if self.max_connections < config.max_connections:
                log.warning("%s", fitted)
            else:
                log.info("%s", fitted)
        self.limits = AddressLimits(config.address_policy())
        # Refusals, overflows, timeouts: the first of each kind, then a count per window.
        self.warnings = Summary(log)
        self.sender = Sender(config.max_total_queue_bytes)
        self.room: LocalRoom | ClusterRoom
        if config.redis:
            from server.cluster import ClusterRoom  # noqa: PLC0415 - only cluster mode loads redis

            self.room = ClusterRoom(
                config.redis, config.history_size, config.redis_lease, self.sender.throttle
            )
        else:
            self.room = LocalRoom(self.store, config.history_size, self.sender.throttle)
        self.retention = Retention(
            self.store, config.keep_days, config.keep_messages, config.retention_interval
        )
        self.accounts: AccountStore
        try:
            if config.redis:
                from server.cluster_accounts import RedisAccounts  # noqa: PLC0415

                self.accounts = RedisAccounts(config.redis)
            else:
                self.accounts = Accounts(config.db)
        except BaseException:
            self.store.close()
            raise
        self.login_guard = LoginGuard(config.login_delay_first, config.login_delay_max)
        self._handlers: set[ClientHandler] = set()
        self._handlers_lock = threading.Lock()
        # Notified whenever a connection is fully shut: stop() waits on it.
        self._all_closed = threading.Condition(self._handlers_lock)
        # Connections let in and not yet shut, with the address key they count against; counted
        # on the accept thread itself: handlers register on their own threads, too late for a
        # burst of connects to see them.
        self._admitted: dict[Any, str] = {}
        self._connection_threads: set[threading.Thread] = set()
        self._to_start: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._starters = [
            threading.Thread(target=self._run_starter, name=f"tkchat-starter-{i}", daemon=True)
            for i in range(_STARTERS)
        ]
        self._stopped = False
        self._serving: threading.Thread | None = None
        self._next_housekeeping = 0.0
        self._plain: PlainListener | None = None
        self._plain_serving: threading.Thread | None = None
        try:
            super().__init__((config.host, config.port), ClientHandler)
        except BaseException:
            self.store.close()
            self.accounts.close()
            raise
        if config.plain_port is not None:
            try:
                self._plain = PlainListener(self, (config.host, config.plain_port))
            except BaseException:
                self.server_close()
                self.store.close()
                raise
        self.sender.start()
        try:
            self.room.start()
        except BaseException:
            self.server_close()
            self.sender.stop()
            self.store.close()
            self.accounts.close()
            raise
        self.retention.start()
        for starter in self._starters:
            starter.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def plain_port(self) -> int | None:
        """The ``--plain-port`` listener's port (None without one)."""
        return None if self._plain is None else int(self._plain.server_address[1])

    def tls_layer(self, sock: socket.socket, outbox: Outbox, label: str) -> ServerTLS | None:
        """The TLS layer for a new connection: None on a plaintext server or plain port."""
        if self.tls_context is None or self._on_plain_port(sock):
            return None
        return ServerTLS(
            self.tls_context,
            outbox,
            label=label,
            handshake_timeout=self.config.tls_handshake_timeout,
        )

    def _on_plain_port(self, sock: Any) -> bool:
        try:
            return self._plain is not None and sock.getsockname()[1] == self.plain_port
        except OSError:
            return False

    # ------------------------------------------------------------ connections
    def verify_request(self, request: Any, client_address: Any) -> bool:
        key = address_key(str(client_address[0]))
        with self._handlers_lock:
            full = len(self._admitted) >= self.max_connections
            crowded = not full and not self.limits.admit(key)
            if not full and not crowded:
                self._admitted[request] = key
                return True
        if full:
            self.warnings.note(
                "refusals (--max-connections)",
                logging.WARNING,
                "refused %s: %d connections already (--max-connections)",
                key,
                self.max_connections,
            )
            self._refuse(request, ErrorCode.SERVER_FULL, "the server is full; try again later")
        else:
            self.warnings.note(
                "refusals (--max-per-address)",
                logging.WARNING,
                "refused %s: %d connections from that address already (--max-per-address)",
                key,
                self.config.max_per_address,
            )
            self._refuse(
                request,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"too many connections from your address (at most "
                f"{self.config.max_per_address}); close one and try again",
            )
        return False

    def _refuse(self, request: socket.socket, code: str, text: str) -> None:
        """One error, never waiting: the accept loop must not be slowed by a refused peer."""
        if self.tls_context is not None and not self._on_plain_port(request):
            return  # TLS port: no handshake yet, so nothing to say; it is just closed
        try:
            request.setblocking(False)
            request.send(encode_response(ErrorResponse(text, code)))
            # A request already sent (a login right after connect) left unread would make the
            # close a reset, which can destroy the error before the peer reads it.
            request.shutdown(socket.SHUT_WR)
            request.recv(65536)
        except OSError:
            pass

    def shutdown_request(self, request: Any) -> None:
        with self._handlers_lock:
            key = self._admitted.pop(request, None)
            if key is not None:
                self.limits.release(key)
            self._all_closed.notify_all()
        super().shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a starter thread, which serves it on its own named thread.

        ``ThreadingMixIn.process_request`` starts the thread right here, but ``Thread.start``
        waits until the new thread has held the GIL once; with hundreds of busy connection
        threads that wait made the accept loop the bottleneck of a login storm
        (bench/server_load.py).  So the accept loop only queues, and ``_STARTERS`` threads
        start connection threads, their waits overlapping.
        """
        self._to_start.put((request, client_address))

    def _run_starter(self) -> None:
        """Start a tracked, named thread for each queued connection; ``None`` ends it."""
        while (item := self._to_start.get()) is not None:
            request, client_address = item
            thread = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name=f"tkchat-conn-{client_address[0]}:{client_address[1]}",
                daemon=True,
            )
            with self._handlers_lock:
                self._connection_threads.add(thread)
            thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._handlers_lock:
                self._connection_threads.discard(threading.current_thread())

    def service_actions(self) -> None:
        """Between accepts: write the counts of summarised warnings, forget quiet addresses."""
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + _HOUSEKEEPING_SECONDS
            self.warnings.flush()
            self.limits.prune()

    def register(self, handler: ClientHandler) -> None:
        with self._handlers_lock:
            self._handlers.add(handler)
            late = self._stopped
        if late:  # accepted just before stop() looked at the handlers: end it at once
            handler.close()

    def unregister(self, handler: ClientHandler) -> None:
        with self._handlers_lock:
            self._handlers.discard(handler)

    def connection_count(self) -> int:
        """Connections admitted and not yet fully shut."""
        with self._handlers_lock:
            return len(self._admitted)

    def thread_count(self) -> int:
        """Connection threads still running."""
        with self._handlers_lock:
            return len(self._connection_threads)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("error while serving %s", client_address)

    # -------------------------------------------------------------- lifecycle
    def start(self) -> threading.Thread:
        """Serve on a background thread (tests, the GUI's "Host a chat")."""
        # A short poll interval: stop() waits for serve_forever to notice, once per test.
        thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name="tkchat-accept", daemon=True
        )
        self._serving = thread
        thread.start()
        if self._plain is not None:
            self._plain_serving = threading.Thread(
                target=self._plain.serve_forever, args=(0.05,), name="tkchat-accept-plain"
            )
            self._plain_serving.daemon = True
            self._plain_serving.start()
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, tell every client, flush, close; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving is not None:
            self.shutdown()
            self._serving.join(timeout)
        if self._plain is not None:
            if self._plain_serving is not None:
                self._plain.shutdown()
                self._plain_serving.join(timeout)
            self._plain.server_close()
        self.server_close()
        for _ in self._starters:
            self._to_start.put(None)
        for starter in self._starters:  # each queued connection has its thread after this
            starter.join(timeout)
        # Store and broadcast every message already accepted before the shutdown notice.
        self.retention.stop(timeout)
        self.room.stop(timeout)
        with self._handlers_lock:
            handlers = list(self._handlers)
        if handlers:
            log.info("telling %d connection(s) that the server is shutting down", len(handlers))
        notice = encode_response(InfoResponse("The server is shutting down.", event=Event.SHUTDOWN))
        for handler in handlers:
            handler.deliver(notice)
        deadline = time.monotonic() + self.config.shutdown_flush_seconds
        for handler in handlers:
            handler.outbox.drained.wait(max(0.0, deadline - time.monotonic()))
            handler.close()
        deadline = time.monotonic() + timeout
        with self._handlers_lock:
            self._all_closed.wait_for(lambda: not self._admitted, timeout)
            left = len(self._admitted)
            threads = list(self._connection_threads)
        if left:
            log.error("%d connection(s) did not close in %.1f s", left, timeout)
        for thread in threads:  # each has shut its connection: only its last lines are left
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("%s did not end in %.1f s", thread.name, timeout)
        self.sender.stop(timeout)
        self.store.close()
        self.warnings.flush(force=True)
        self.accounts.close()
        log.info("server stopped")


class PlainListener(socketserver.TCPServer):
    """The ``--plain-port`` listening socket.  It only accepts: each connection goes to the
    ``ChatServer`` (its limits, starters, handlers and room) exactly as one from the main port
    would, and ``ChatServer.tls_layer`` leaves it plaintext.  Its accept loop ends in ``stop``."""

    allow_reuse_address = True
    request_queue_size = ChatServer.request_queue_size

    def __init__(self, owner: ChatServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, ClientHandler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.owner.verify_request(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner.process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.handle_error(request, client_address)
