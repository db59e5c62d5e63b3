"""``python -m gui.terminal``: a line-based TkChat client for the terminal.

Type ``login NAME``, ``msg TEXT``, ``names``, ``help``, ``logout`` (or, once logged in, plain
text to send it to the current conversation).  Conversations (TkChat servers only): ``/join
ROOM``, ``/part [ROOM]``, ``/rooms``, ``/msg NAME [TEXT]``, ``/more`` (older messages),
``/search WORDS``; ``register`` protects the name with a password.  Incoming lines print with
local time, conversation and sender; the prompt shows the current conversation.

Passwords never come from the command line (every local user can read it): the name's
password is read from ``TKCHAT_PASSWORD`` or asked for with ``getpass`` when the server wants
one, and the server's entry password from ``TKCHAT_SERVER_PASSWORD`` or asked for likewise.
"""

from __future__ import annotations

import argparse
import codecs
import getpass
import io
import logging
import os
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from common.message import GENERAL_ROOM, Message
from common.protocol import (
    DEFAULT_PORT,
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    AuthField,
    ErrorCode,
    ErrorResponse,
    Event,
    HistoryResponse,
    InfoResponse,
    MessageResponse,
    room_name,
)
from common.requests import Help, Join, Part, Register, Rooms, Search
from gui.display import indented, local_clock, one_line, terminal_safe
from gui.net import conversation_requests as requests
from gui.net.client import Client
from gui.net.conversation_requests import GENERAL, Conversation, conversation_of
from gui.net.events import ClientEvent, Connected, ConnectFailed, Disconnected
from gui.net.trust import KNOWN_HOSTS_FILE, KnownHosts, TLSOptions
from gui.settings import default_config_dir

COMMANDS = ("login", "msg", "names", "help", "logout", "register")
SLASH_COMMANDS = {
    "/join": "/join ROOM      join a room (or switch to one you are in)",
    "/part": "/part [ROOM]    leave a room (the current one by default)",
    "/rooms": "/rooms          list the rooms",
    "/msg": "/msg NAME [TEXT] talk to one person (without TEXT: switch to them)",
    "/more": "/more           show older messages of the current conversation",
    "/search": "/search WORDS   find messages holding every word",
}
PASSWORD_ENV = "TKCHAT_PASSWORD"
SERVER_PASSWORD_ENV = "TKCHAT_SERVER_PASSWORD"
LOGIN_ANSWER_SECONDS = 40.0  # a server slows down wrong passwords, up to 30 s each
MAX_PASSWORD_TRIES = 3
_CLOCK_WIDTH = len("[00:00:00] ")
_FAR_FUTURE_ID = 2**53 - 1  # "before" when no message id of a conversation is known yet

Ask = Callable[[str], str]


def format_event(event: ClientEvent, me: str = "") -> list[str]:
    """The terminal lines for one event (pure, so it is easy to test).  ``me`` is the own
    name, which tells the other side of a direct message."""
    if isinstance(event, MessageResponse):
        return format_message(event.message, me)
    if isinstance(event, InfoResponse):
        return _format_info(event)
    if isinstance(event, ErrorResponse):
        code = f" ({event.code})" if event.code else ""
        first = f"[{local_clock(event.timestamp)}] ! error{one_line(code)}: "
        return indented(first, terminal_safe(event.text), _CLOCK_WIDTH + 2)
    if isinstance(event, HistoryResponse):
        return _format_history(event, me)
    if isinstance(event, Connected):
        lines = [f"* connected to {event.host}:{event.port}; type 'login NAME' (or 'help')"]
        if event.tls is not None:
            lines.insert(0, f"* {event.tls.describe()}")
        return lines
    if isinstance(event, Disconnected | ConnectFailed):
        return [f"* {event.reason}"]
    raise AssertionError(f"unhandled event {event!r}")


def format_message(message: Message, me: str = "", always_label: bool = False) -> list[str]:
    """``[12:00:00] alice: hi``; ``#dev`` or ``@bob`` before the sender outside general.
    Further lines of the text are indented under the sender."""
    where = conversation_of(message, me)
    label = f"{one_line(where.label)} " if always_label or where != GENERAL else ""
    head = f"[{local_clock(message.timestamp)}] {label}"
    first = f"{head}{one_line(message.user) or '?'}: "
    return indented(first, terminal_safe(message.text), len(head) + 2)


def _format_info(event: InfoResponse) -> list[str]:
    clock = f"[{local_clock(event.timestamp)}]"
    room = one_line(event.room) if event.room else None
    user = one_line(event.user) if event.user else "someone"
    if event.rooms is not None:
        listed = ", ".join(f"#{one_line(r.name)} ({r.users})" for r in event.rooms)
        return [f"{clock} * rooms: {listed or 'none'}"]
    if event.event == Event.JOINED and room:
        members = ", ".join(one_line(u) for u in event.users or ())
        return [f"{clock} * you joined #{room}" + (f"; here: {members}" if members else "")]
    if event.event == Event.PARTED and room:
        return [f"{clock} * you left #{room}"]
    if event.event in (Event.JOIN, Event.LEAVE) and room and room != GENERAL_ROOM:
        verb = "joined" if event.event == Event.JOIN else "left"
        return [f"{clock} * {user} {verb} #{room}"]
    return indented(f"{clock} * ", terminal_safe(event.text), _CLOCK_WIDTH + 2)


def _format_history(event: HistoryResponse, me: str) -> list[str]:
    where = (
        f"@{event.with_user}"
        if event.with_user
        else f"#{event.room}"
        if event.room and event.room != GENERAL_ROOM
        else ""
    )
    count = len(event.messages)
    if event.search is not None:
        head = f"--- search {one_line(event.search)!r}: {count} result(s) ---"
        tail = "--- end of search ---"
    elif event.before is not None:
        head = f"--- {count} older message(s){' in ' + one_line(where) if where else ''} ---"
        tail = (
            "--- that is the first message; nothing older ---"
            if event.more is False
            else "--- end of older messages (/more for more) ---"
        )
    else:
        head = f"--- history{' of ' + one_line(where) if where else ''}: "
        head += f"{count} earlier message(s) ---"
        tail = "--- end of history ---"
    lines = [head]
    if event.text:
        lines.extend(indented("", terminal_safe(event.text), 2))
    for message in event.messages:
        lines.extend(format_message(message, me, always_label=event.search is not None))
    lines.append(tail)
    return lines


def print_formatted_message(event: ClientEvent, stream: TextIO | None = None) -> None:
    """Print one event as the terminal client shows it."""
    out = stream or sys.stdout
    for line in format_event(event):
        print(line, file=out, flush=True)


class TerminalSession:
    """Maps typed lines to requests; tracks the login, the current conversation, the rooms
    joined and the oldest message seen in each conversation (for ``/more``).

    KTN servers answer a login differently (an ``info``, only a ``history``, or only a
    broadcast), so any answer but an ``error`` to a pending login counts as success.

    Threads: ``handle_line`` runs on the input thread and ``on_event`` on the client's
    receiver thread; the state they share is guarded by ``_lock``.
    """

    def __init__(
        self,
        client: Client,
        stream: TextIO | None = None,
        *,
        ask_password: Ask | None = None,
        environ: dict[str, str] | None = None,
        interactive: bool = False,
    ) -> None:
        self.client = client
        self.stream = stream
        self.ask_password = ask_password  # None: nobody to ask (input is not a terminal)
        self.environ = os.environ if environ is None else environ
        self.interactive = interactive
        self.logged_in = False
        self.me = ""
        self.current = GENERAL
        self.rooms: set[str] = {GENERAL_ROOM}
        self.oldest: dict[Conversation, int] = {}
        self._login_pending = False
        self._login_answer = threading.Event()
        self._login_error: ErrorResponse | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- output
    @property
    def prompt(self) -> str:
        return f"{one_line(self.current.label)}> "

    def _print(self, lines: list[str]) -> None:
        out = self.stream or sys.stdout
        with self._lock:
            if self.interactive:  # the prompt waits on the last line: write over it
                out.write("\r" + " " * len(self.prompt) + "\r")  # no escape codes: any console
            for line in lines:
                out.write(line + "\n")
            if self.interactive:
                out.write(self.prompt)
            out.flush()

    def show_prompt(self) -> None:
        self._print([])

    def say(self, text: str) -> None:
        """A line of the client's own (not from the server)."""
        self._print([text])

    # ---------------------------------------------------------------- events
    def on_event(self, event: ClientEvent) -> None:
        with self._lock:
            self._track(event)
            lines = format_event(event, self.me)
        self._print(lines)

    def _track(self, event: ClientEvent) -> None:
        if isinstance(event, ErrorResponse):
            if self._login_pending:
                self._login_error = event
                self._login_answer.set()
            self._login_pending = False
        elif isinstance(event, Disconnected):
            self.logged_in = self._login_pending = False
            self._login_answer.set()
        elif isinstance(event, HistoryResponse | MessageResponse) or (
            isinstance(event, InfoResponse) and self._login_pending
        ):
            if self._login_pending:
                self._login_answer.set()
            self.logged_in = True
            self._login_pending = False
        if isinstance(event, InfoResponse) and event.room:
            room = room_name(event.room)
            if room is not None and event.event == Event.JOINED:
                self.rooms.add(room)
                self.current = Conversation.room(room)
            elif room is not None and event.event == Event.PARTED:
                self.rooms.discard(room)
                if self.current == Conversation.room(room):
                    self.current = GENERAL
        if isinstance(event, MessageResponse):
            self._note_oldest([event.message])
        elif isinstance(event, HistoryResponse) and event.search is None:
            self._note_oldest(list(event.messages))

    def _note_oldest(self, messages: list[Message]) -> None:
        for message in messages:
            if message.id is None:
                continue
            where = conversation_of(message, self.me)
            known = self.oldest.get(where)
            if known is None or message.id < known:
                self.oldest[where] = message.id

    # ---------------------------------------------------------------- input
    def handle_line(self, line: str) -> bool:
        """Send what the line asks for; False when the user is done.

        ``names``, ``help``, ``logout`` and ``register`` are commands only on their own: once
        logged in, "help me with this" or "logout is broken?" is something to say, not to do.
        ``//text`` sends ``/text``.
        """
        text = line.rstrip("\r\n")
        if not text.strip():
            return True
        word, _, rest = text.strip().partition(" ")
        command = word.lower()
        # Once logged in, or once a login is on its way (lines typed or piped right after
        # ``login NAME`` are meant for the chat; the server answers them in order).
        talking = self.logged_in or self._login_pending
        if command in ("names", "help", "logout", "register") and rest.strip() and talking:
            command = ""  # a sentence that starts with a command word
        if command.startswith("/") and not command.startswith("//"):
            return self._slash(command, rest.strip(), word)
        if command == "login":
            self._login(rest.strip())
        elif command == "msg":
            self._send(self.current, rest)
        elif command == "names":
            self.client.send_payload(requests.names(self.current))
        elif command == "help":
            self.client.send_payload(Help())
            self.say("* this client also knows: " + "; ".join(SLASH_COMMANDS.values()))
        elif command == "logout":
            self.client.logout()
            return False
        elif command == "register":
            self._register()
        elif talking:
            self._send(self.current, text[1:] if text.startswith("//") else text)
        else:
            self.say(f"! unknown command {word!r}: use {', '.join(COMMANDS)}")
        return True

    def _slash(self, command: str, rest: str, word: str) -> bool:
        if command in ("/login", "/names", "/help", "/logout", "/register"):
            return self.handle_line(f"{command[1:]} {rest}" if rest else command[1:])
        if command not in SLASH_COMMANDS:
            known = ", ".join([*SLASH_COMMANDS, *(f"/{c}" for c in COMMANDS if c != "msg")])
            self.say(f"! unknown command {word!r}: use {known} (// sends a leading /)")
            return True
        if not self.logged_in:
            self.say("! log in first: login NAME")
            return True
        if not self.client.pipelining:  # no TkChat key seen: a classic KTN server
            self.say(f"! {command} is not available on this server (a classic KTN server)")
            return True
        if command == "/join":
            self._join(rest)
        elif command == "/part":
            room = room_name(rest.removeprefix("#")) if rest else self.current.key
            if room is None or (self.current.direct and not rest):
                self.say("! which room? /part ROOM")
            else:
                self.client.send_payload(Part(room))
        elif command == "/rooms":
            self.client.send_payload(Rooms())
        elif command == "/msg":
            self._direct(rest)
        elif command == "/more":
            before = self.oldest.get(self.current, _FAR_FUTURE_ID)
            self.client.send_payload(requests.page(self.current, before))
        elif command == "/search":
            if rest:
                self.client.send_payload(Search(rest))
            else:
                self.say("! search for what? /search WORDS")
        return True

    def _join(self, rest: str) -> None:
        room = room_name(rest.removeprefix("#"))
        if room is None:
            self.say("! a room name is 1-32 letters, digits or '-': /join ROOM")
        elif room in self.rooms:
            with self._lock:
                self.current = Conversation.room(room)
            self.say(f"* now talking in #{room}")
        else:
            self.client.send_payload(Join(room))

    def _direct(self, rest: str) -> None:
        name, _, body = rest.partition(" ")
        name = name.removeprefix("@")
        if not name or not name.isascii() or not name.isalnum() or len(name) > 32:
            self.say("! to whom? /msg NAME [TEXT]")
            return
        conversation = Conversation.with_user(name)
        if body.strip():
            self._send(conversation, body)
        else:
            with self._lock:
                self.current = conversation
            self.say(f"* now talking with {terminal_safe(name)} (/join general to go back)")

    def _send(self, conversation: Conversation, text: str) -> None:
        if conversation != GENERAL and not self.client.pipelining:
            self.say("! this server only has the one room")
            return
        self.client.send_payload(requests.say(conversation, text))

    # -------------------------------------------------------------- passwords
    def _login(self, name: str) -> None:
        """Log in, with the passwords from the environment; when the server says one is
        wrong or missing and someone is at the terminal, ask for it and try again."""
        if self.logged_in:
            self.client.login(name)  # the server says "already logged in"
            return
        self.me = name
        passwords: dict[str, str] = {}
        for field, env in (
            (AuthField.PASSWORD, PASSWORD_ENV),
            (AuthField.SERVER_PASSWORD, SERVER_PASSWORD_ENV),
        ):
            if self.environ.get(env):
                passwords[field] = self.environ[env]
        for _ in range(MAX_PASSWORD_TRIES):
            with self._lock:
                self._login_pending = True
                self._login_error = None
                self._login_answer.clear()
            self.client.login(
                name,
                password=passwords.get(AuthField.PASSWORD),
                server_password=passwords.get(AuthField.SERVER_PASSWORD),
            )
            if self.ask_password is None or not self._login_answer.wait(LOGIN_ANSWER_SECONDS):
                return
            error = self._login_outcome()
            if error is None or error.code != ErrorCode.AUTH_FAILED:
                return
            field = (
                AuthField.SERVER_PASSWORD
                if error.field == AuthField.SERVER_PASSWORD
                else AuthField.PASSWORD
            )
            question = (
                "Server password: "
                if field == AuthField.SERVER_PASSWORD
                else (f"Password for {terminal_safe(name)}: ")
            )
            answer = self.ask_password(question)
            if not answer:
                return
            passwords[field] = answer

    def _login_outcome(self) -> ErrorResponse | None:
        """The error that answered the last login, if one did (set on the receiver thread)."""
        with self._lock:
            return self._login_error

    def _register(self) -> None:
        if not self.logged_in:
            self.say("! log in first, then register the name: login NAME")
            return
        if not self.client.pipelining:
            self.say("! register is not available on this server (a classic KTN server)")
            return
        password = self.environ.get(PASSWORD_ENV, "")
        if not password:
            if self.ask_password is None:
                self.say(f"! set {PASSWORD_ENV} or run in a terminal to give a password")
                return
            password = self.ask_password(f"New password for {terminal_safe(self.me)}: ")
            if password != self.ask_password("The same password again: "):
                self.say("! the two passwords differ; nothing registered")
                return
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            self.say(
                f"! a password has {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters; "
                "nothing registered"
            )
            return
        self.client.send_payload(Register(password))


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
    # The receiver thread wakes the input loop through this when the connection ends.
    wake_reader, wake_writer = socket.socketpair()
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
            try:
                wake_writer.send(b"\0")
            except OSError:
                pass

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    client_id = None if args.classic else "tkchat-terminal/1.0"
    tls = TLSOptions(KnownHosts(args.known_hosts), args.ca_file) if args.tls else None
    client = Client(args.host, args.port, on_event, client_id=client_id, tls=tls)
    session = TerminalSession(
        client,
        ask_password=getpass.getpass if sys.stdin.isatty() else None,
        interactive=interactive,
    )
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
    try:
        if os.name == "nt":
            # Windows cannot wait on a console and a socket at once: input gets a thread, so
            # the program still ends when the server closes while the person is not typing.
            threading.Thread(
                target=_read_input,
                args=(session, sys.stdin, done),
                name="tkchat-input",
                daemon=True,
            ).start()
            while not done.wait(0.2):  # a timeout keeps Ctrl-C working
                pass
        else:
            _serve_input(session, sys.stdin, done, wake_reader)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect(2.0)
        wake_reader.close()
        wake_writer.close()
    return 0


def _serve_input(
    session: TerminalSession, stream: TextIO, done: threading.Event, wake: socket.socket
) -> None:
    """Send each typed line, on this (the main) thread, until the connection ends.

    One wait covers both the keyboard and the end of the connection (the receiver writes to
    ``wake``), so a connected terminal client is two threads, this one and the receiver, and
    still ends at once when the server closes while nobody types.  Input is read as raw bytes
    and cut into lines here: a buffered ``readline`` could hold a second line the selector
    would never report.  At end of input it logs out politely, as ``_read_input`` does.
    """
    fd = stream.fileno()
    decoder = codecs.getincrementaldecoder(stream.encoding or "utf-8")(errors="replace")
    buffered = ""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while not done.is_set():
            ready = {key.fileobj for key, _ in selector.select(0.5)}  # 0.5 s: Ctrl-C works
            if fd not in ready:
                continue
            chunk = os.read(fd, 65536)
            buffered += decoder.decode(chunk, final=not chunk)
            while "\n" in buffered and not done.is_set():
                line, buffered = buffered.split("\n", 1)
                if not session.handle_line(line + "\n"):
                    return
                if session.interactive:
                    session.show_prompt()
            if chunk:
                continue
            # End of input: a last line without a newline, then leave.
            selector.unregister(fd)
            if buffered.strip() and not session.handle_line(buffered):
                return
            if session.logged_in and session.client.connected:
                session.client.logout()  # the Disconnected that follows ends the wait
            else:
                return


def _read_input(session: TerminalSession, stream: TextIO, done: threading.Event) -> None:
    """Send each typed line; at ``logout`` or end of input, leave and let ``done`` be set.

    After a logout the client closes the connection once it is answered (or after a short
    wait), and its ``Disconnected`` sets ``done``; without a login there is nothing to wait for.
    """
    for line in stream:
        if done.is_set() or not session.handle_line(line):
            return
        if session.interactive:
            session.show_prompt()
    if session.logged_in and session.client.connected:
        session.client.logout()  # end of input: leave politely
    else:
        done.set()


if __name__ == "__main__":
    sys.exit(main())
