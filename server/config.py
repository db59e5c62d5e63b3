"""``ServerConfig``: every knob of the server, with the defaults PROTOCOL.md asks for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

from common.protocol import DEFAULT_PORT


def default_db_path() -> Path:
    """History lives in the user data dir, so a double-clicked server keeps it across runs."""
    return Path(platformdirs.user_data_dir("TkChat", appauthor=False)) / "history.sqlite3"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    db: str = ":memory:"
    history_size: int = 100
    max_connections: int = 1000
    login_timeout: float = 30.0
    # A user may send rate_burst messages at once, then rate_limit per second (0: no limit).
    # Far above what a person types, so a paste, a reconnect resending what was pending, or a
    # bridge never hits it; a flood does, and gets ``rate_limited`` (connection kept).
    rate_limit: float = 50.0
    rate_burst: int = 200
    max_queue_bytes: int = 4 * 1024 * 1024  # unread output per connection before it is dropped
    password: str | None = None
    shutdown_flush_seconds: float = 2.0
    # Retention: None keeps everything; a prune runs at start and every retention_interval s.
    keep_days: float | None = None
    keep_messages: int | None = None
    retention_interval: float = 600.0
    # Seconds a commit waits for another program holding the history file before the senders
    # get ``unavailable`` (they resend later with the same nonce).
    busy_timeout: float = 1.0
