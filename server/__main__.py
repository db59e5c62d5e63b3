"""``python -m server``: run a TkChat server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from common.protocol import DEFAULT_PORT
from server.app import ChatServer
from server.config import ServerConfig, default_db_path
from server.dbfile import prepare_db
from server.history import StoreError
from server.logsafe import RepeatFilter, SafeFormatter
from server.tls import TLSConfigError

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
        "--max-per-address",
        type=int,
        default=defaults.max_per_address,
        help="connections open at once from one address (IPv6: one /64); more are refused, "
        "so one address can never fill the server; the address's request and login budgets "
        "grow with it; 0 = no per-address limits (default: %(default)s)",
    )
    parser.add_argument(
        "--address-rate",
        type=float,
        default=defaults.address_rate,
        help="requests of any kind per second from one address, after a burst; "
        "0 = no limit (default: 5 per --max-per-address connection: 100)",
    )
    parser.add_argument(
        "--address-burst",
        type=int,
        default=defaults.address_burst,
        help="requests one address may send at once (default: 20 per --max-per-address "
        "connection: 400)",
    )
    parser.add_argument(
        "--login-rate",
        type=float,
        default=defaults.login_rate,
        help="logins per second from one address, after a burst; 0 = no limit "
        "(default: 1 per --max-per-address connection: 20)",
    )
    parser.add_argument(
        "--login-burst",
        type=int,
        default=defaults.login_burst,
        help="logins one address may send at once (default: 5 per --max-per-address "
        "connection: 100)",
    )
    parser.add_argument(
        "--login-timeout",
        type=float,
        default=defaults.login_timeout,
        help="seconds a connection may stay without logging in (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        help="seconds of silence after which a TkChat client (they ping when quiet) is "
        "closed; classic clients never are; 0 = never (default: %(default)s)",
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
        help="bytes of output a connection may leave unread; a connection with more unread"
        " is dropped, and its user can reconnect (default: %(default)s, 1 MiB)",
    )
    parser.add_argument(
        "--max-total-queue-bytes",
        type=int,
        default=defaults.max_total_queue_bytes,
        help="unread output of all connections together; past it the connections with the"
        " most unread are dropped first (default: %(default)s, 256 MiB)",
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
        "--server-password-file",
        metavar="FILE",
        default=None,
        help="require the password in FILE (its first line) on every login; or set "
        f"{PASSWORD_ENV}. Never given on the command line: every local user can read that "
        "(default: no server password)",
    )
    # Gone: a password on the command line is in `ps` and /proc/PID/cmdline for everyone.
    parser.add_argument("--password", action=_RefusedPassword, help=argparse.SUPPRESS)
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="cluster mode: keep the chat in Redis (redis://HOST:PORT/DB), so that several "
        "servers serve one chat; needs the 'cluster' extra (default: SQLite, one process)",
    )
    parser.add_argument(
        "--redis-lease",
        type=float,
        default=defaults.redis_lease,
        help="cluster mode: seconds after which a dead server's names are freed "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        default=None,
        help="PEM certificate (chain): the port then speaks TLS only (1.2 or newer)",
    )
    parser.add_argument(
        "--tls-key",
        metavar="FILE",
        default=None,
        help="PEM private key for --tls-cert (default: read from the --tls-cert file)",
    )
    parser.add_argument(
        "--plain-port",
        type=int,
        default=None,
        metavar="P",
        help="with TLS, also accept plaintext on port P, for classic KTN programs (default: none)",
    )
    parser.add_argument(
        "--tls-handshake-timeout",
        type=_positive(float),
        default=defaults.tls_handshake_timeout,
        help="seconds a connection may take to finish the TLS handshake (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log; DEBUG shows every request and answer (default: %(default)s)",
    )
    return parser


PASSWORD_ENV = "TKCHAT_SERVER_PASSWORD"


class _RefusedPassword(argparse.Action):
    """``--password VALUE`` ends the program with a message saying what to use instead."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs["nargs"] = "?"
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--password is not accepted: a password on the command line is visible to every "
            f"user of this computer (ps). Set the environment variable {PASSWORD_ENV}, or put "
            "the password in a file readable only by you and pass --server-password-file FILE."
        )


def server_password(args: argparse.Namespace) -> str | None:
    """The server-wide password from --server-password-file or the environment, or None.

    ``ValueError`` says, for a person, why a password file cannot be used."""
    path = args.server_password_file
    if path is not None:
        try:
            with open(path, encoding="utf-8") as file:
                password = file.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the server password file {path}: {exc}") from exc
        if not password:
            raise ValueError(f"the server password file {path} is empty")
        return password
    return os.environ.get(PASSWORD_ENV) or None


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        history_size=args.history_size,
        max_connections=args.max_connections,
        max_per_address=args.max_per_address,
        address_rate=args.address_rate,
        address_burst=args.address_burst,
        login_rate=args.login_rate,
        login_burst=args.login_burst,
        login_timeout=args.login_timeout,
        idle_timeout=args.idle_timeout,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        max_queue_bytes=args.max_queue_bytes,
        keep_days=args.keep_days,
        keep_messages=args.keep_messages,
        password=server_password(args),
        redis=args.redis,
        redis_lease=args.redis_lease,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        plain_port=args.plain_port,
        tls_handshake_timeout=args.tls_handshake_timeout,
        max_total_queue_bytes=args.max_total_queue_bytes,
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    if args.plain_port is not None and not args.tls_cert:
        parser.error("--plain-port is for a TLS server (with --tls-cert); the port is plaintext")
    handler = logging.StreamHandler(sys.stderr)
    # Peer-supplied text is escaped at each call site too; this catches any that is not.
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    # A WARNING repeated per connection under attack is one line per 10 s, plus a count.
    repeats = RepeatFilter(handler)
    handler.addFilter(repeats)
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        config = config_from_args(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    problem = prepare_db(config.db)
    if problem is not None:
        log.error("cannot start: %s", problem)
        return 2
    try:
        server = ChatServer(config)
    except (TLSConfigError, StoreError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    except OSError as exc:
        log.error(
            "cannot listen on %s:%d: %s. Is another server running there? "
            "Pick another port with --port.",
            config.host,
            config.port,
            exc.strerror or exc,
        )
        return 2
    except ImportError as exc:
        log.error("cluster mode needs the redis package: pip install 'tkchat[cluster]' (%s)", exc)
        return 2
    except Exception as exc:  # e.g. an unreadable or locked database, or Redis unreachable
        where = "Redis (cluster mode)" if config.redis else f"history file {config.db}"
        log.error("cannot start: %s (%s)", exc, where)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    where = "every interface" if config.host in ("", "0.0.0.0", "::") else config.host
    tls = ", TLS only" if server.tls_context is not None else ""
    if config.redis:
        stored = "history in Redis (cluster mode)"
    else:
        stored = f"history in {config.db} ({server.store.count()} messages stored)"
    log.info(
        "TkChat server listening on %s:%d (%s%s); %s", config.host, server.port, where, tls, stored
    )
    if config.password is not None:
        log.info("every login needs the server password (server_password)")
    if server.plain_port is not None:
        log.info("plaintext port for classic KTN programs: %d (not encrypted)", server.plain_port)
    if config.keep_days is not None or config.keep_messages is not None:
        log.info(
            "history retention: %s%s%s, pruned in the background",
            f"the last {config.keep_days:g} days" if config.keep_days is not None else "",
            " and " if config.keep_days is not None and config.keep_messages is not None else "",
            f"the newest {config.keep_messages} messages" if config.keep_messages else "",
        )
    server.start()
    while not stop.wait(0.5):
        repeats.flush()
    server.stop()
    repeats.flush(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
