"""``python -m server``: run a TkChat server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from common.protocol import DEFAULT_PORT
from server.app import ChatServer
from server.config import ServerConfig, default_db_path

log = logging.getLogger("server")


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        # The frozen ChatServer executable is started by its own name, not as a module.
        prog=None if getattr(sys, "frozen", False) else "python -m server",
        description="TkChat server: a KTN-compatible chat server with persistent history.",
    )
    parser.add_argument(
        "--host",
        default=defaults.host,
        help="address to listen on (default: %(default)s, every interface; "
        "use 127.0.0.1 to keep it on this machine)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--db",
        default=str(default_db_path()),
        help="SQLite file holding the history, ':memory:' to keep none (default: %(default)s)",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=defaults.history_size,
        help="messages sent to a user on login (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="connections open at once; more are refused (default: %(default)s)",
    )
    parser.add_argument(
        "--login-timeout",
        type=float,
        default=defaults.login_timeout,
        help="seconds a connection may stay without logging in (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=defaults.rate_limit,
        help="messages per second per user after a burst; 0 = no limit (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-burst",
        type=int,
        default=defaults.rate_burst,
        help="messages a user may send at once (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue-bytes",
        type=int,
        default=defaults.max_queue_bytes,
        help="unread output per connection before it is dropped (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-days",
        type=_positive(float),
        default=None,
        help="delete messages older than this many days (default: keep everything)",
    )
    parser.add_argument(
        "--keep-messages",
        type=_positive(int),
        default=None,
        help="keep only this many newest messages (default: keep everything)",
    )
    parser.add_argument(
        "--password", default=None, help="require this password on login (default: none)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log; DEBUG shows every request (default: %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        history_size=args.history_size,
        max_connections=args.max_connections,
        login_timeout=args.login_timeout,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        max_queue_bytes=args.max_queue_bytes,
        password=args.password,
        keep_days=args.keep_days,
        keep_messages=args.keep_messages,
    )


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number above zero of ``kind``."""

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text}")
        return value

    return convert


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = config_from_args(args)
    try:
        server = ChatServer(config)
    except OSError as exc:
        log.error(
            "cannot listen on %s:%d: %s. Is another server running there? "
            "Pick another port with --port.",
            config.host,
            config.port,
            exc.strerror or exc,
        )
        return 2
    except Exception as exc:  # e.g. an unreadable or locked database
        log.error("cannot start: %s (history file %s)", exc, config.db)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    where = "every interface" if config.host in ("", "0.0.0.0", "::") else config.host
    log.info(
        "TkChat server listening on %s:%d (%s); history in %s (%d messages stored)",
        config.host,
        server.port,
        where,
        config.db,
        server.store.count(),
    )
    server.start()
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
