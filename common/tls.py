"""``TLSEngine``: TLS over memory buffers, for a connection one thread reads and others write.

Why not ``SSLContext.wrap_socket`` on the server: a connection is read on its handler thread
while the ``Sender`` thread writes it with non-blocking sends of bytes queued from any thread (a
broadcast comes from the room's thread).  An ``SSLSocket`` would be read and written from two
threads at once, which OpenSSL does not allow for one connection.  Here the socket stays a
plain socket: ``ssl.SSLObject`` works on two ``MemoryBIO`` buffers, every call into it holds one
lock, and the ciphertext it makes is handed, still under that lock, to a ``sink`` (the server's
outbox), so TLS records reach the wire in the order they were made.  (The client has one thread
per connection, so it simply uses an ``SSLSocket``: ``gui/net/trust.py``.)

No sockets here: the caller moves bytes (``handshake``/``decrypt`` take what was received,
``send`` and the sink carry what is to be sent).  ``fingerprint`` is the SHA-256 both ends show.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

TLS_RECORD_TYPE_HANDSHAKE = 0x16  # the first byte a TLS client sends
_READ_BYTES = 65536


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as colon-separated upper-case hex pairs, the form
    browsers and ``openssl x509 -fingerprint -sha256`` show, so people can compare them."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class TLSEngine:
    """One TLS connection's state; thread-safe (see the module docstring).

    ``sink`` receives ciphertext to send, always in order and while the engine's lock is
    held, so it must not block (the server's outbox never does)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        sink: Callable[[bytes], object],
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._sink = sink
        self._lock = threading.Lock()
        self.established = False
        self._ended = False
        self.end_reason = ""
        self._close_sent = False

    # ------------------------------------------------------------ handshake
    def handshake(self, data: bytes = b"") -> bool:
        """Feed bytes received during the handshake (none to start it); True once complete.

        Raises ``ssl.SSLError`` (``ssl.SSLCertVerificationError`` for a certificate the
        context does not accept); any alert OpenSSL made for the peer goes to the sink first.
        """
        with self._lock:
            if data:
                self._incoming.write(data)
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                return False
            finally:
                self._flush_locked()
            self.established = True
            return True

    def decrypt_pending(self) -> bytes:
        """Application data that arrived together with the end of the handshake."""
        return self.decrypt(b"")

    def ended(self) -> bool:
        """True once the peer sent close_notify or the TLS layer failed: nothing more to read."""
        return self._ended

    @property
    def version(self) -> str:
        return self._ssl.version() or ""

    @property
    def cipher(self) -> str:
        info = self._ssl.cipher()
        return info[0] if info else ""

    # ----------------------------------------------------------------- data
    def send(self, data: bytes) -> bool:
        """Encrypt ``data`` and hand it to the sink; False (nothing sent) before the handshake
        is done or after the connection's TLS ended."""
        with self._lock:
            if not self.established or self._close_sent:
                return False
            view = memoryview(data)
            try:
                while view:
                    written = self._ssl.write(view)
                    view = view[written:]
            except ssl.SSLError as exc:
                self._end_locked(f"TLS error while sending: {exc.reason or exc}")
                return False
            finally:
                self._flush_locked()
            return True

    def decrypt(self, data: bytes) -> bytes:
        """The plaintext in ``data`` plus what was buffered before: may be empty while a
        record is incomplete.  Never raises: on close_notify or a TLS error, ``ended()`` turns
        True (``end_reason`` says why) and whatever came before it is returned."""
        chunks: list[bytes] = []
        with self._lock:
            if self._ended:
                return b""
            if data:
                self._incoming.write(data)
            try:
                while True:
                    chunk = self._ssl.read(_READ_BYTES)
                    if not chunk:  # what SSLObject.read makes of close_notify
                        self._end_locked("closed by the peer (TLS close_notify)")
                        break
                    chunks.append(chunk)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self._end_locked("closed by the peer (TLS close_notify)")
            except ssl.SSLError as exc:
                self._end_locked(f"TLS error: {exc.reason or exc}")
            finally:
                self._flush_locked()
        return b"".join(chunks)

    def close(self) -> None:
        """Send close_notify (once), so the peer can tell a deliberate end from a cut line."""
        with self._lock:
            if not self.established or self._close_sent:
                return
            self._close_sent = True
            try:
                self._ssl.unwrap()
            except ssl.SSLWantReadError:
                pass  # the peer's close_notify is not awaited: the socket closes next
            except ssl.SSLError as exc:
                log.debug("TLS close: %s", exc)
            finally:
                self._flush_locked()

    # -------------------------------------------------------------- private
    def _end_locked(self, reason: str) -> None:
        if not self._ended:
            self._ended = True
            self.end_reason = reason

    def _flush_locked(self) -> None:
        if self._outgoing.pending:
            self._sink(self._outgoing.read())
