""" "Host a chat": the same ``server`` package, run inside the app on background threads.

The server binds every interface (others on the network join with the address shown) on the
usual port, or on any free port if that one is taken (another TkChat may be hosting already),
and keeps its history in the user data dir, exactly like ``python -m server``.

It speaks TLS: on first use it makes a self-signed certificate, kept in the user data dir
(``server/certs.py``), and ``fingerprint`` is what the host shows so that people joining can
compare it with the one their client pinned.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from common.protocol import DEFAULT_PORT
from server.app import ChatServer
from server.certs import ensure_self_signed
from server.config import ServerConfig, default_db_path

log = logging.getLogger(__name__)

SHUTDOWN_FLUSH = 0.25  # seconds for the last words to guests when the host closes


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Where a hosted chat listens; tests use 127.0.0.1, port 0 and a temporary database."""

    bind: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    db: str = ""  # empty: the default SQLite file in the user data dir
    fallback_to_free_port: bool = True
    tls: bool = True
    cert_dir: str = ""  # empty: next to the default database, in the user data dir


class HostedServer:
    """A ``ChatServer`` this app started; ``stop`` ends it (bounded) on a helper thread."""

    def __init__(self, config: HostConfig) -> None:
        db = config.db or str(default_db_path())
        # Closing the window stops the server: guests get the shutdown notice within
        # SHUTDOWN_FLUSH or see the connection close (both reconnect), and the window closes
        # at once (a connection that was reset would otherwise hold the stop for 2 s).
        server_config = ServerConfig(
            host=config.bind, port=config.port, db=db, shutdown_flush_seconds=SHUTDOWN_FLUSH
        )
        self.fingerprint: str | None = None  # SHA-256 of the certificate, with TLS
        if config.tls:
            pair = ensure_self_signed(Path(config.cert_dir or default_db_path().parent))
            self.fingerprint = pair.fingerprint
            server_config = replace(server_config, tls_cert=str(pair.cert), tls_key=str(pair.key))
        try:
            self.server = ChatServer(server_config)
        except OSError as exc:
            if not (config.fallback_to_free_port and exc.errno == errno.EADDRINUSE):
                raise
            log.info("port %d is taken; hosting on a free port instead", config.port)
            self.server = ChatServer(replace(server_config, port=0))
        self.bind = config.bind
        self.db = db
        self.server.start()
        log.info("hosting a chat on %s:%d, history in %s", config.bind, self.port, db)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def connect_host(self) -> str:
        """Where this app itself connects: loopback unless bound to one address."""
        return "127.0.0.1" if self.bind in ("", "0.0.0.0", "::") else self.bind

    def share_address(self) -> str:
        """What to tell others: this machine's network address and the port."""
        if self.bind not in ("", "0.0.0.0", "::"):
            return f"{self.bind}:{self.port}"
        return f"{lan_address()}:{self.port}"

    def stop(self, wait: bool = True) -> None:
        thread = threading.Thread(target=self.server.stop, name="tkchat-host-stop", daemon=True)
        thread.start()
        if wait:
            thread.join(10.0)


def lan_address() -> str:
    """The address other machines most likely reach us on (no packet is sent: a UDP
    ``connect`` only picks the outgoing interface)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed anywhere real
        address = str(probe.getsockname()[0])
    except OSError:
        address = ""
    finally:
        probe.close()
    if not address or address.startswith("0."):
        try:
            address = socket.gethostbyname(socket.gethostname())
        except OSError:
            address = "127.0.0.1"
    return address
