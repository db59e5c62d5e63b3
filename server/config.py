"""``ServerConfig``: every knob of the server, with the defaults PROTOCOL.md asks for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

from common.protocol import DEFAULT_PORT
from server.limits import AddressPolicy


def default_db_path() -> Path:
    """History lives in the user data dir, so a double-clicked server keeps it across runs."""
    return Path(platformdirs.user_data_dir("TkChat", appauthor=False)) / "history.sqlite3"


# Per-address budgets for each connection an address may hold (``address_policy``): far above
# a person (a user's own limit is --rate-limit), far below a flood of renamed reconnects.
REQUESTS_PER_CONNECTION = 5.0
REQUEST_BURST_PER_CONNECTION = 20.0
LOGINS_PER_CONNECTION = 1.0
LOGIN_BURST_PER_CONNECTION = 5.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    db: str = ":memory:"
    history_size: int = 100
    max_connections: int = 1000
    # Per address (server/limits.py): one address can never fill the server, nor flood it by
    # reconnecting under new names.  0 turns a limit off.
    max_per_address: int = 20
    # The address's budgets; None sizes each for ``max_per_address`` people behind the one
    # address (``address_policy``), so an operator who lets a whole office (or a load test) in
    # with --max-per-address also lets its traffic in, and 0 there turns them all off.
    address_rate: float | None = None  # requests of any kind per second, after a burst
    address_burst: int | None = None
    login_rate: float | None = None  # logins per second, after a burst
    login_burst: int | None = None
    # Sockets that never log in are closed after this long (they hold a connection slot).
    login_timeout: float = 30.0  # PROTOCOL.md: "seconds to log in after connect (30)"
    # A TkChat client (it sent "client") pings after 60 s of quiet; one silent this long is
    # gone (its network vanished) and frees its name.  Classic clients never time out.
    idle_timeout: float = 300.0
    # A user may send rate_burst messages at once, then rate_limit per second (0: no limit).
    # Far above what a person types, so a paste, a reconnect resending what was pending, or a
    # bridge never hits it; a flood does, and gets ``rate_limited`` (connection kept).
    rate_limit: float = 50.0
    rate_burst: int = 200
    max_queue_bytes: int = 1024 * 1024  # unread output per connection before it is dropped
    # Unread output of all connections together; past it the largest backlogs are dropped.
    max_total_queue_bytes: int = 256 * 1024 * 1024
    # The server-wide password (``server_password`` on login); from TKCHAT_SERVER_PASSWORD or
    # --server-password-file, never a bare command-line value (see server/__main__.py).
    password: str | None = None
    # Failed password logins from one address: answered after login_delay_first seconds,
    # doubling up to login_delay_max (server/accounts.py, LoginGuard).
    login_delay_first: float = 1.0
    login_delay_max: float = 30.0
    # TLS (PROTOCOL.md, TLS): with a certificate and key the port speaks TLS only;
    # ``plain_port`` also opens a plaintext port for classic KTN programs (never by default).
    tls_cert: str | None = None
    tls_key: str | None = None
    plain_port: int | None = None
    tls_handshake_timeout: float = 10.0
    shutdown_flush_seconds: float = 2.0
    # Cluster mode: a Redis URL (redis://HOST:PORT/DB) makes this process one node of a chat
    # kept in Redis (server/cluster.py); None is the single process with SQLite.
    redis: str | None = None
    redis_lease: float = 5.0  # seconds a dead node's names stay taken
    # Retention: None keeps everything; a prune runs at start and every retention_interval s.
    keep_days: float | None = None
    keep_messages: int | None = None
    retention_interval: float = 600.0
    # Seconds a commit waits for another program holding the history file before the senders
    # get ``unavailable`` (they resend later with the same nonce).
    busy_timeout: float = 1.0

    def address_policy(self) -> AddressPolicy:
        """The per-address limits: what was set, else sized per allowed connection (with the
        default 20: 100 requests/s after 400 at once, 20 logins/s after 100 at once)."""
        people = self.max_per_address

        def sized(given: float | None, per_connection: float) -> float:
            return given if given is not None else people * per_connection

        return AddressPolicy(
            max_connections=people,
            request_rate=sized(self.address_rate, REQUESTS_PER_CONNECTION),
            request_burst=round(sized(self.address_burst, REQUEST_BURST_PER_CONNECTION)),
            login_rate=sized(self.login_rate, LOGINS_PER_CONNECTION),
            login_burst=round(sized(self.login_burst, LOGIN_BURST_PER_CONNECTION)),
        )
