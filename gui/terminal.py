"""``python -m gui.terminal``: a line-based TkChat client for the terminal.

Type ``login NAME``, ``msg TEXT``, ``names``, ``help``, ``logout`` (or, once logged in, plain
text to send it as a message).  Incoming lines print with local time and sender.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import threading
from pathlib import Path
from typing import TextIO

from common.protocol import (
    DEFAULT_PORT,
    ErrorResponse,
    HistoryResponse,
    InfoResponse,
    MessageResponse,
)
from gui.client import Client
from gui.display import local_clock, printable
from gui.events import ClientEvent, Connected, ConnectFailed, Disconnected
from gui.settings import default_config_dir
from gui.trust import KNOWN_HOSTS_FILE, KnownHosts, TLSOptions

COMMANDS = ("login", "msg", "names", "help", "logout")


def format_event(event: ClientEvent) -> list[str]:
    """The terminal lines for one event (pure, so it is easy to test)."""
    if isinstance(event, MessageResponse):
        m = event.message
        return [f"[{local_clock(m.timestamp)}] {printable(m.user) or '?'}: {printable(m.text)}"]
    if isinstance(event, InfoResponse):
        return [f"[{local_clock(event.timestamp)}] * {printable(event.text)}"]
    if isinstance(event, ErrorResponse):
        code = f" ({event.code})" if event.code else ""
        return [f"[{local_clock(event.timestamp)}] ! error{code}: {printable(event.text)}"]
    if isinstance(event, HistoryResponse):
        lines = [f"--- history: {len(event.messages)} earlier message(s) ---"]
        if event.text:
            lines.append(printable(event.text))
        for message in event.messages:
            lines.extend(format_event(MessageResponse(message)))
        lines.append("--- end of history ---")
        return lines
    if isinstance(event, Connected):
        lines = [f"* connected to {event.host}:{event.port}; type 'login NAME' (or 'help')"]
        if event.tls is not None:
            lines.insert(0, f"* {event.tls.describe()}")
        return lines
    if isinstance(event, Disconnected | ConnectFailed):
        return [f"* {event.reason}"]
    raise AssertionError(f"unhandled event {event!r}")


def print_formatted_message(event: ClientEvent, stream: TextIO | None = None) -> None:
    """Print one event as the terminal client shows it."""
    out = stream or sys.stdout
    for line in format_event(event):
        print(line, file=out, flush=True)


class TerminalSession:
    """Maps typed lines to requests; tracks whether we are logged in.

    KTN servers answer a login differently (an ``info``, only a ``history``, or only a
    broadcast), so any answer but an ``error`` to a pending login counts as success.
    """

    def __init__(self, client: Client, stream: TextIO | None = None) -> None:
        self.client = client
        self.stream = stream
        self.logged_in = False
        self._login_pending = False

    def on_event(self, event: ClientEvent) -> None:
        if isinstance(event, ErrorResponse):
            self._login_pending = False
        elif isinstance(event, Disconnected):
            self.logged_in = self._login_pending = False
        elif isinstance(event, HistoryResponse | MessageResponse) or (
            isinstance(event, InfoResponse) and self._login_pending
        ):
            self.logged_in = True
            self._login_pending = False
        print_formatted_message(event, self.stream)

    def handle_line(self, line: str) -> bool:
        """Send what the line asks for; False when the user is done.

        ``names``, ``help`` and ``logout`` are commands only on their own: once logged in,
        "help me with this" or "logout is broken?" is something to say, not to do.
        """
        text = line.rstrip("\r\n")
        if not text.strip():
            return True
        word, _, rest = text.strip().partition(" ")
        command = word.lower()
        if command in ("names", "help", "logout") and rest.strip() and self.logged_in:
            command = ""  # a sentence that starts with a command word
        if command == "login":
            self._login_pending = not self.logged_in
            self.client.login(rest.strip())
        elif command == "msg":
            self.client.send_message(rest)
        elif command == "names":
            self.client.request_names()
        elif command == "help":
            self.client.request_help()
        elif command == "logout":
            self.client.logout()
            return False
        elif self.logged_in:
            self.client.send_message(text)
        else:
            print(
                f"! unknown command {word!r}: use {', '.join(COMMANDS)}",
                file=self.stream or sys.stdout,
                flush=True,
            )
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.terminal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="server port (default: %(default)s)"
    )
    parser.add_argument(
        "--classic", action="store_true", help="log in as a classic KTN client (no client id)"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS: a CA-signed certificate is verified, a self-signed one is "
        "trusted on first use and pinned (a changed one is refused)",
    )
    parser.add_argument(
        "--ca-file", default=None, help="with --tls: also trust this CA certificate (PEM)"
    )
    parser.add_argument(
        "--known-hosts",
        type=Path,
        default=default_config_dir() / KNOWN_HOSTS_FILE,
        help="with --tls: pinned self-signed servers (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    # A console that cannot show a character (or a lone surrogate from a server) must not
    # raise in the receiver thread: show an escape instead.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    session: TerminalSession | None = None

    def on_event(event: ClientEvent) -> None:
        if session is not None:
            session.on_event(event)
        else:
            print_formatted_message(event)
        if isinstance(event, ConnectFailed):
            failed.append(event.reason)
        if isinstance(event, Connected | ConnectFailed):
            settled.set()
        if isinstance(event, Disconnected | ConnectFailed):
            done.set()

    client_id = None if args.classic else "tkchat-terminal/1.0"
    tls = TLSOptions(KnownHosts(args.known_hosts), args.ca_file) if args.tls else None
    client = Client(args.host, args.port, on_event, client_id=client_id, tls=tls)
    session = TerminalSession(client)
    failed: list[str] = []
    settled = threading.Event()
    client.run()  # connects on the client's thread: Connected or ConnectFailed follows
    try:
        while not settled.wait(0.2):  # a timeout keeps Ctrl-C working on every platform
            pass
    except KeyboardInterrupt:
        client.disconnect(2.0)
        return 1
    if failed:
        print(f"! {failed[0]}", file=sys.stderr)
        return 1
    # Input is read on its own thread, so that the program also ends when the server closes
    # the connection while the person is not typing (a shutdown, a logout elsewhere).
    threading.Thread(
        target=_read_input, args=(session, sys.stdin, done), name="tkchat-input", daemon=True
    ).start()
    try:
        while not done.wait(0.2):  # a timeout keeps Ctrl-C working on every platform
            pass
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect(2.0)
    return 0


def _read_input(session: TerminalSession, stream: TextIO, done: threading.Event) -> None:
    """Send each typed line; at ``logout`` or end of input, leave and let ``done`` be set.

    After a logout the client closes the connection once it is answered (or after a short
    wait), and its ``Disconnected`` sets ``done``; without a login there is nothing to wait for.
    """
    for line in stream:
        if done.is_set() or not session.handle_line(line):
            return
    if session.logged_in and session.client.connected:
        session.client.logout()  # end of input: leave politely
    else:
        done.set()


if __name__ == "__main__":
    sys.exit(main())
