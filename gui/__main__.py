"""``python -m gui``: the TkChat desktop client.

Flags for scripts and tests: ``--connect HOST:PORT`` with ``--user NAME`` logs in at once;
``--host-local`` starts a chat server on 127.0.0.1 (port 9998, or a free one) with the usual
history file and joins it; ``--config-dir`` keeps settings (and the log) elsewhere.
"""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import sys
from pathlib import Path

from common.protocol import DEFAULT_PORT, RESERVED_NAMES, is_valid_username

log = logging.getLogger("gui")

TK_MISSING = (
    "TkChat needs Tk, which this Python lacks: install it "
    "(Debian/Ubuntu: sudo apt install python3-tk; Fedora: sudo dnf install python3-tkinter; "
    "macOS/Windows: use the python.org installer)."
)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too); a bare host means the default port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or "]" in port_text:
        host, port_text = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}: use HOST:PORT") from None
    if not host or not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: use HOST:PORT")
    return host, port


def login_name() -> str:
    """The OS user name made into a valid chat name ("" if nothing usable is left).

    A name the server refuses as reading like authority (``root``, ``admin``: PROTOCOL.md,
    login) gets "user" added, so that `make run` as root still ends in a chat."""
    try:
        raw = getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""
    name = "".join(c for c in raw if c.isascii() and c.isalnum())[:32]
    if name.lower() in RESERVED_NAMES:
        name += "user"
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gui", description="TkChat desktop client.")
    parser.add_argument("--connect", metavar="HOST:PORT", type=parse_address, help="connect now")
    parser.add_argument("--user", metavar="NAME", help="log in with this name")
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --connect: use TLS, or not (--no-tls) (default: as the last time)",
    )
    parser.add_argument(
        "--host-local",
        action="store_true",
        help="start a chat server on 127.0.0.1 (port 9998 or a free one) and join it",
    )
    parser.add_argument("--config-dir", type=Path, help="where settings and the log live")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="what goes to stderr (the log file always gets INFO) (default: %(default)s)",
    )
    return parser


def setup_logging(level: str, log_dir: Path) -> None:
    """stderr at ``level``; a fresh log file per run at INFO for bug reports."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_dir / "tkchat.log", mode="w", encoding="utf-8")
    except OSError as exc:
        log.warning("no log file: %s", exc)
        return
    handler.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.user is not None and not is_valid_username(args.user):
        parser.error("--user: names are 1-32 letters (A-Z) or digits")
    try:
        import tkinter as tk  # noqa: PLC0415 - the friendly message needs the failure here
    except ImportError:
        print(TK_MISSING, file=sys.stderr)  # noqa: T201
        return 1

    import platformdirs  # noqa: PLC0415

    from gui.app import ChatApp  # noqa: PLC0415
    from gui.hosting import HostConfig  # noqa: PLC0415
    from gui.settings import APP_NAME, default_config_dir  # noqa: PLC0415

    config_dir: Path = args.config_dir or default_config_dir()
    log_dir = (
        config_dir / "logs"
        if args.config_dir
        else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    )
    setup_logging(args.log_level, log_dir)
    try:
        root = tk.Tk(className="TkChat")
    except tk.TclError as exc:
        print(f"TkChat cannot open a window: {exc} (is a display available?)", file=sys.stderr)  # noqa: T201
        return 1

    def report(exc: type[BaseException], value: BaseException, tb: object) -> None:
        log.error("error in a Tk callback", exc_info=(exc, value, tb))  # type: ignore[arg-type]

    root.report_callback_exception = report
    host_config = HostConfig(bind="127.0.0.1") if args.host_local else HostConfig()
    app = ChatApp(root, config_dir, host_config=host_config)
    name = args.user or app.settings.username
    if args.host_local:
        # `make run` should end in a chat, not a form: fall back to the login name.
        name = name or login_name()
        hosted = app.host.start_for_others(app.settings.username)
        if hosted is not None and is_valid_username(name):
            app.connect(hosted.connect_host, hosted.port, name)
    elif args.connect is not None:
        host, port = args.connect
        app.connect_view.fill(host, port, name)
        if args.tls is not None:
            app.connect_view.tls_var.set(args.tls)
        if is_valid_username(name):
            app.connect_view.submit()  # as the Connect button: with remembered passwords
    # Everything built so far lives as long as the app: keep it out of the garbage
    # collector's full passes, which a burst of messages would otherwise make slower.
    gc.freeze()
    try:
        root.mainloop()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
