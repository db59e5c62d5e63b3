"""The terminal client's conversations (rooms, direct messages, ``/more``, ``/search``),
passwords, and how it shows text that tries to pass for something else (issue 11 item 8).

Real sockets throughout: ``python -m gui.terminal`` as a subprocess (one on a pseudo-terminal,
as a person runs it) against the real server; a fake classic KTN server for what is missing
there."""

from __future__ import annotations

import io
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common.message import Message
from common.protocol import ErrorResponse, InfoResponse
from common.timestamps import now_utc
from gui.net.client import Client
from gui.net.events import ClientEvent
from gui.terminal import TerminalSession, format_event, format_message
from server.app import ChatServer
from server.history import HistoryStore
from tests.conftest import ROOT, wait_for
from tests.fake_ktn import FakeKTN, obj
from tests.test_terminal import CLOCK, Terminal, terminals  # noqa: F401 - the fixture
from tests.wire import WireClient


def test_continuation_lines_are_indented_under_the_sender_and_invisibles_escaped(
    server: ChatServer,
    terminals: Callable[[int], Terminal],  # noqa: F811
) -> None:
    alice = terminals(server.port)
    alice.type("login alice")
    alice.wait_line(r"--- end of history ---")
    mallory = WireClient(server.port)
    try:
        mallory.login("mallory")
        mallory.send("msg", "hi\n* mallory left the chat\n[12:00:00] admin: log in again")
        alice.wait_line(rf"^{CLOCK} mallory: hi$")
        forged = alice.wait_line(r"\* mallory left the chat$")
        assert forged == " " * len("[00:00:00] ") + "  * mallory left the chat"
        alice.wait_line(r"^ {13}\[12:00:00\] admin: log in again$")
        mallory.send("msg", "evil\u202etxt.exe zero\u200bwidth \ufeffbom \u2066iso\u2069")
        alice.wait_line(
            r"mallory: evil<U\+202E>txt\.exe zero<U\+200B>width <U\+FEFF>bom "
            r"<U\+2066>iso<U\+2069>$"
        )
    finally:
        mallory.close()
    assert alice.end() == 0
    assert not any(line.startswith("* mallory left") for line in alice.lines)
    assert not [line for line in alice.lines if "\u202e" in line or "\u200b" in line]


def test_format_message_labels_rooms_and_direct_messages() -> None:
    assert format_message(Message("hi", "bob"), "alice")[0].endswith("] bob: hi")
    assert format_message(Message("hi", "bob", room="dev"), "alice")[0].endswith("] #dev bob: hi")
    assert format_message(Message("hi", "alice", to="Bob"), "alice")[0].endswith("] @Bob alice: hi")
    two = format_message(Message("a\nb", "bob", room="dev"), "alice")
    assert two[1] == " " * len("[00:00:00] #dev ") + "  b"


def test_names_rooms_and_errors_cannot_break_a_line_either() -> None:
    """Other KTN servers send any sender; errors and info texts may hold newlines too."""
    lines = format_message(Message("hi", "mallory\n[12:00:00] admin"), "alice")
    assert lines == [lines[0]] and lines[0].endswith("] mallory\\n[12:00:00] admin: hi")
    error = format_event(ErrorResponse("bad\n* mallory left the chat", "x\ny"))
    assert error[0].endswith("] ! error (x\\ny): bad")
    assert error[1] == " " * 13 + "* mallory left the chat"
    info = format_event(InfoResponse("x", event="join", user="eve\u202e\n", room="dev"))
    assert info == [info[0]] and info[0].endswith("* eve<U+202E>\\n joined #dev")


def test_rooms_direct_messages_more_and_search_from_the_terminal(
    server: ChatServer,
    terminals: Callable[[int], Terminal],  # noqa: F811
) -> None:
    bob = WireClient(server.port)
    try:
        bob.login("bob")
        bob.send("join", "dev")
        bob.expect("info", event="joined")
        bob.expect("history", room="dev")
        for number in range(1, 61):
            bob.send("msg", f"dev line {number}", room="dev")
        for _ in range(60):
            bob.expect("message")
        term = terminals(server.port)
        term.type("login alice")
        term.wait_line(r"--- end of history ---")
        term.type("/join dev")
        term.wait_line(rf"^{CLOCK} \* you joined #dev; here: alice, bob$")
        term.wait_line(r"^--- history of #dev: 60 earlier message\(s\) ---$")
        term.wait_line(rf"^{CLOCK} #dev bob: dev line 60$")
        term.type("hello dev people")  # plain text goes to the current room
        term.wait_line(rf"^{CLOCK} #dev alice: hello dev people$")
        assert bob.expect("message", room="dev")["content"] == "hello dev people"
        term.type("/msg bob just you and me")
        term.wait_line(rf"^{CLOCK} @bob alice: just you and me$")
        assert bob.expect("message", to="bob")["content"] == "just you and me"
        term.type("/more")  # the oldest #dev message shown is the first: nothing older
        term.wait_line(r"^--- 0 older message\(s\) in #dev ---$")
        term.wait_line(r"^--- that is the first message; nothing older ---$")
        term.type("/search line 57")
        term.wait_line(r"^--- search 'line 57': 1 result\(s\) ---$")
        term.wait_line(rf"^{CLOCK} #dev bob: dev line 57$")
        term.type("/rooms")
        term.wait_line(rf"^{CLOCK} \* rooms: #dev \(2\), #general \(2\)$")
        bob.send("part", "dev")
        bob.expect("info", event="parted")
        term.wait_line(rf"^{CLOCK} \* bob left #dev$")
        term.type("/part")
        term.wait_line(rf"^{CLOCK} \* you left #dev$")
        term.type("back in general")
        term.wait_line(rf"^{CLOCK} alice: back in general$")
        message = bob.expect("message")
        assert message["content"] == "back in general" and "room" not in message
        term.type("/msg nobody hello?")
        term.wait_line(rf"^{CLOCK} ! error \(no_such_user\): ")
        term.type("/frobnicate")
        term.wait_line(r"^! unknown command '/frobnicate'")
        assert term.end() == 0
        assert not [e for e in term.errors if "Traceback" in e], term.errors
    finally:
        bob.close()


def test_more_walks_back_page_by_page_until_the_first(
    make_server: Callable[..., ChatServer],
    terminals: Callable[[int], Terminal],  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "chat.sqlite3"
    store = HistoryStore(db)
    store.insert_many((Message(f"old {i}", "bob", now_utc()), False, False) for i in range(1, 231))
    store.close()
    server = make_server(db=str(db))
    term = terminals(server.port)
    term.type("login alice")
    term.wait_line(r"^--- history: 100 earlier message\(s\) ---$")
    term.wait_line(r"--- end of history ---")
    term.type("/more")
    term.wait_line(r"bob: old 81$")
    term.type("/more")
    term.wait_line(r"bob: old 31$")
    term.type("/more")
    term.wait_line(r"^--- 30 older message\(s\) ---$")
    term.wait_line(r"^--- that is the first message; nothing older ---$")
    shown = [line for line in term.lines if " bob: old " in line]
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in shown) == list(range(1, 231))
    assert term.end() == 0


def test_new_commands_say_they_are_not_available_on_a_classic_server(
    terminals: Callable[[int], Terminal],  # noqa: F811
) -> None:
    def classic(fake: FakeKTN, request: dict[str, object]) -> list[bytes]:
        if request.get("request") == "login":
            return [obj("info", "Login successful", sender="SERVER"), obj("history", [])]
        if request.get("request") == "msg":
            return [obj("message", request.get("content"), sender=fake.username)]
        return [obj("info", "bye")]

    fake = FakeKTN(classic)
    try:
        term = terminals(fake.port)
        term.type("login alice")
        term.wait_line(r"--- end of history ---")
        for command in ("/join dev", "/rooms", "/msg bob hi", "/more", "/search x", "register"):
            term.type(command)
            term.wait_line(rf"! {command.split()[0]} is not available on this server")
        term.type("still works")
        term.wait_line(r"alice: still works$")
        assert [r["request"] for r in fake.requests] == ["login", "msg"]
        assert term.end() == 0
    finally:
        fake.close()


def test_passwords_come_from_the_environment_never_a_flag(
    make_server: Callable[..., ChatServer],
    terminals: Callable[[int], Terminal],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    server = make_server(db=str(tmp_path / "chat.sqlite3"), password="let me in")
    monkeypatch.setenv("TKCHAT_SERVER_PASSWORD", "let me in")
    monkeypatch.setenv("TKCHAT_PASSWORD", "correct horse")
    first = terminals(server.port)
    first.type("login alice")
    first.wait_line(r"--- end of history ---")
    first.type("register")
    first.wait_line(rf"^{CLOCK} \* The name alice is registered: ")
    assert first.end() == 0
    again = terminals(server.port)  # the same environment: the name's password goes along
    again.type("login alice")
    again.wait_line(r"--- end of history ---")
    assert again.end() == 0
    monkeypatch.setenv("TKCHAT_PASSWORD", "a wrong guess")
    wrong = terminals(server.port)  # no one at a terminal to ask: the refusal is shown
    wrong.type("login alice")
    wrong.wait_line(rf"^{CLOCK} ! error \(auth_failed\): ")
    assert wrong.end() == 0
    for term in (first, again, wrong):
        args = term.proc.args
        assert isinstance(args, list)
        assert not [a for a in args if "horse" in str(a) or "let me" in str(a)]


class _Asker:
    """Stands in for ``getpass``: answers the questions in order and records them."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []

    def __call__(self, question: str) -> str:
        self.questions.append(question)
        return self.answers.pop(0)


def _session(port: int, asker: _Asker, out: io.StringIO) -> tuple[Client, TerminalSession]:
    holder: list[TerminalSession] = []

    def on_event(event: ClientEvent) -> None:
        holder[0].on_event(event)

    client = Client("127.0.0.1", port, on_event, client_id="tkchat-terminal/1.0")
    session = TerminalSession(client, out, ask_password=asker, environ={})
    holder.append(session)
    client.run()
    return client, session


def test_register_asks_twice_and_a_later_login_asks_for_the_password(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    server = make_server(db=str(tmp_path / "chat.sqlite3"), login_delay_first=0.05)
    out = io.StringIO()
    asker = _Asker("short", "short", "a good password", "a good password")
    client, session = _session(server.port, asker, out)
    try:
        session.handle_line("login alice")
        wait_for(lambda: session.logged_in, what="login")
        session.handle_line("register")
        assert "8-256 characters" in out.getvalue()  # too short: nothing sent
        session.handle_line("register")
        wait_for(lambda: "is registered" in out.getvalue(), what="register")
        assert asker.questions == ["New password for alice: ", "The same password again: "] * 2
        session.handle_line("logout")
        wait_for(lambda: not client.connected, what="logged out")
    finally:
        client.disconnect()
    asker = _Asker("wrong guess", "a good password")
    out = io.StringIO()
    client, session = _session(server.port, asker, out)
    try:
        session.handle_line("login alice")  # waits while it asks and tries again
        assert session.logged_in, out.getvalue()
        assert asker.questions == ["Password for alice: "] * 2
        assert out.getvalue().count("(auth_failed)") == 2
    finally:
        client.disconnect()


def test_prompt_shows_the_current_conversation(server: ChatServer) -> None:
    out = io.StringIO()
    client, session = _session(server.port, _Asker(), out)
    try:
        assert session.prompt == "#general> "
        session.handle_line("login alice")
        wait_for(lambda: session.logged_in, what="login")
        session.handle_line("/join Dev")
        wait_for(lambda: session.prompt == "#dev> ", what="the prompt to follow the join")
        session.handle_line("/msg bob")
        assert session.prompt == "@bob> "
        session.handle_line("/join general")
        assert session.prompt == "#general> "
    finally:
        client.disconnect()


class _PtyTerminal:
    """``python -m gui.terminal`` on a pseudo-terminal that is its controlling terminal, as
    a person runs it: ``getpass`` asks there (without echo) and the prompt is shown."""

    def __init__(self, port: int) -> None:
        import pty  # POSIX only (the test is skipped on Windows)

        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes the terminal client
            os.chdir(ROOT)
            os.execve(
                sys.executable,
                [sys.executable, "-m", "gui.terminal", "--host", "127.0.0.1", "--port", str(port)],
                {k: v for k, v in os.environ.items() if not k.startswith("TKCHAT_")},
            )
        self.pid, self.fd = pid, fd
        self.output = ""

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} in {timeout} s; output: {self.output!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child has gone: its side of the terminal is closed
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed; output: {self.output!r}")
                self.output += chunk.decode("utf-8", "replace")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_the_password_is_asked_without_echo_and_the_prompt_shows_the_room(
    make_server: Callable[..., ChatServer], tmp_path: Path
) -> None:
    server = make_server(db=str(tmp_path / "chat.sqlite3"), login_delay_first=0.05)
    owner = WireClient(server.port)
    try:
        owner.login("alice")
        owner.send("register", password="a good password")
        owner.expect("info")
    finally:
        owner.close()
    term = _PtyTerminal(server.port)
    try:
        term.wait_for("#general> ")
        term.type("login alice")
        term.wait_for("Password for alice: ")
        term.type("a good password")
        term.wait_for("end of history")
        assert "a good password" not in term.output  # not echoed
        term.type("/join dev")
        term.wait_for("#dev> ")
        term.type("/msg bob")
        term.wait_for("@bob> ")
    finally:
        term.close()
