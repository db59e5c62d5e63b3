"""``ChatServer``: the listening socket, the connection limit, and an orderly shutdown.

Threads: ``serve_forever`` (the acceptor, one thread), one ``ClientHandler`` thread per
connection, and the ``Sender``.  ``stop`` ends them in this order: no more accepts, a shutdown
notice queued to everyone and flushed (bounded), every connection shut so its reader returns,
handler threads joined, then the Sender and the history store.
"""

from __future__ import annotations

import _thread
import logging
import socketserver
import threading
import time
from typing import Any

from common.protocol import ErrorCode, Event, MessageParser
from server.config import ServerConfig
from server.handler import ClientHandler
from server.history import HistoryStore
from server.outbox import Sender
from server.retention import Retention
from server.room import LocalRoom

log = logging.getLogger(__name__)


class ChatServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP chat server speaking PROTOCOL.md."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False  # stop() joins handler threads itself, with a timeout
    request_queue_size = 1024  # listen backlog: a login storm must not be refused

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = HistoryStore(config.db, config.busy_timeout)
        self.room = LocalRoom(self.store, config.history_size)
        self.retention = Retention(
            self.store, config.keep_days, config.keep_messages, config.retention_interval
        )
        self.sender = Sender()
        self._handlers: set[ClientHandler] = set()
        self._handlers_lock = threading.Lock()
        # Connections let in and not yet shut, counted on the accept thread itself: handlers
        # register on their own threads, too late for a burst of connects to see them.
        self._admitted: set[Any] = set()
        self._stopped = False
        self._serving: threading.Thread | None = None
        try:
            super().__init__((config.host, config.port), ClientHandler)
        except BaseException:
            self.store.close()
            raise
        self.sender.start()
        self.room.start()
        self.retention.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # ------------------------------------------------------------ connections
    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._handlers_lock:
            full = len(self._admitted) >= self.config.max_connections
            if not full:
                self._admitted.add(request)
        if full:
            log.warning(
                "refused %s: %d connections already (--max-connections)",
                client_address,
                self.config.max_connections,
            )
            try:
                request.settimeout(1.0)
                request.sendall(
                    MessageParser.encode(
                        MessageParser.error(
                            ErrorCode.SERVER_FULL, "the server is full; try again later"
                        )
                    )
                )
            except OSError:
                pass
            return False
        return True

    def shutdown_request(self, request: Any) -> None:
        with self._handlers_lock:
            self._admitted.discard(request)
        super().shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the connection's thread without waiting for it to run.

        ``threading.Thread.start`` blocks until the new thread has held the GIL once; with
        hundreds of busy connection threads that wait made the accept loop the bottleneck of a
        login storm (bench/server_load.py).  The thread ends when its connection ends
        (``process_request_thread`` always calls ``shutdown_request``), and ``stop`` waits for
        that through ``connection_count``.
        """
        _thread.start_new_thread(self.process_request_thread, (request, client_address))

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
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, tell every client, flush, close; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving is not None:
            self.shutdown()
            self._serving.join(timeout)
        self.server_close()
        # Store and broadcast every message already accepted before the shutdown notice.
        self.retention.stop(timeout)
        self.room.stop(timeout)
        with self._handlers_lock:
            handlers = list(self._handlers)
        if handlers:
            log.info("telling %d connection(s) that the server is shutting down", len(handlers))
        notice = MessageParser.encode(
            MessageParser.info("The server is shutting down.", event=Event.SHUTDOWN)
        )
        for handler in handlers:
            handler.deliver(notice)
        deadline = time.monotonic() + self.config.shutdown_flush_seconds
        for handler in handlers:
            handler.outbox.drained.wait(max(0.0, deadline - time.monotonic()))
            handler.close()
        deadline = time.monotonic() + timeout
        while self.connection_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.connection_count():
            log.error("%d connection(s) did not close in %.1f s", self.connection_count(), timeout)
        self.sender.stop(timeout)
        self.store.close()
        log.info("server stopped")
