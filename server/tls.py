"""TLS on the server side: the context made from ``--tls-cert``/``--tls-key``, and
``ServerTLS``, one connection's TLS layer between its socket and its ``ClientHandler``.

Where TLS sits (and why not ``wrap_socket``: see ``common/tls.py``): the handler's thread reads
raw bytes and calls ``recv`` here, which drives the handshake first (bounded by
``--tls-handshake-timeout`` and the login deadline, so a client that connects and says nothing
costs one waiting thread for a few seconds and blocks no one) and then decrypts.  Everything
the handler queues goes through ``send``, which encrypts and puts the ciphertext on the
connection's ``Outbox`` under the engine's lock: a broadcast from the room's thread and an
answer from the handler's thread cannot swap records.  The Sender thread only ever sees
ciphertext.  A plaintext client on a TLS port gets one plaintext ``error`` saying so (a classic
KTN program shows it) and the connection closes; the log says what happened, no traceback.
"""

from __future__ import annotations

import logging
import ssl
import time

from common.protocol import ErrorCode, ErrorResponse, encode_response
from common.tls import TLS_RECORD_TYPE_HANDSHAKE, TLSEngine
from server.inbound import Inbound
from server.outbox import Outbox

log = logging.getLogger(__name__)

_RECV_BYTES = 65536


class TLSConfigError(Exception):
    """The certificate or key cannot be used; the text says which and why."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for TLS 1.2 or newer with the given certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No session tickets: a chat connection lasts; tickets would only add bytes to each login.
    context.num_tickets = 0
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TLSConfigError(f"TLS certificate or key file not found: {exc.filename}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"cannot use TLS certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return context


class ServerTLS:
    """One connection's TLS layer; ``recv`` on the handler's thread, ``send`` from any."""

    def __init__(
        self, context: ssl.SSLContext, outbox: Outbox, *, label: str, handshake_timeout: float
    ) -> None:
        self.label = label
        self.handshake_timeout = handshake_timeout
        self._outbox = outbox
        self._engine = TLSEngine(context, outbox.put, server_side=True)
        self._failed = False

    @property
    def established(self) -> bool:
        return self._engine.established

    @property
    def version(self) -> str:
        return self._engine.version

    def send(self, data: bytes) -> None:
        """Encrypt and queue (dropped before the handshake is done: only a shutdown notice
        can reach a connection that early, and it closes anyway)."""
        self._engine.send(data)

    def close(self) -> None:
        """Queue close_notify (the handler is done with the connection)."""
        self._engine.close()

    def recv(self, inbound: Inbound, timeout: float) -> bytes:
        """Like ``Inbound.recv`` for the handler: plaintext, ``b""`` at the end (EOF,
        close_notify, a failed handshake or a TLS error); ``TimeoutError`` when ``timeout``
        passes, however many TLS records it takes to get plaintext."""
        if self._failed or self._engine.ended():
            return b""
        deadline = time.monotonic() + timeout
        if not self._engine.established and not self._handshake(inbound, deadline):
            self._failed = True
            return b""
        data = self._engine.decrypt_pending()
        while not data and not self._engine.ended():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no data within the timeout")
            raw = inbound.recv(_RECV_BYTES, left)
            if not raw:
                return b""
            data = self._engine.decrypt(raw)
        if self._engine.ended():
            log.info("%s: %s", self.label, self._engine.end_reason)
        return data

    def _handshake(self, inbound: Inbound, deadline: float) -> bool:
        """Run the handshake on this thread; False (logged, connection to close) if it fails.
        Bounded by ``handshake_timeout`` and by ``deadline`` (the login timeout's)."""
        limit = min(time.monotonic() + self.handshake_timeout, deadline)
        first = True
        while True:
            left = limit - time.monotonic()
            if left <= 0:
                log.info(
                    "%s: TLS handshake not done within %gs; closing",
                    self.label,
                    self.handshake_timeout,
                )
                return False
            try:
                raw = inbound.recv(_RECV_BYTES, left)
            except TimeoutError:
                continue
            except OSError as exc:
                log.info("%s: connection lost during the TLS handshake (%s)", self.label, exc)
                return False
            if not raw:
                log.info("%s: closed during the TLS handshake", self.label)
                return False
            if first and raw[0] != TLS_RECORD_TYPE_HANDSHAKE:
                self._refuse_plaintext()
                return False
            first = False
            try:
                if self._engine.handshake(raw):
                    log.debug("%s: %s, %s", self.label, self._engine.version, self._engine.cipher)
                    return True
            except ssl.SSLError as exc:
                log.info("%s: TLS handshake failed: %s", self.label, exc.reason or exc)
                return False

    def _refuse_plaintext(self) -> None:
        log.info("%s: plaintext on the TLS port (not a TLS client); closing", self.label)
        self._outbox.put(
            encode_response(
                ErrorResponse(
                    "this port speaks TLS only: connect with TLS, or ask the server's owner "
                    "for its plaintext port",
                    ErrorCode.BAD_REQUEST,
                )
            )
        )
