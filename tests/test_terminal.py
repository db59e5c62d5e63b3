"""The terminal client as a person uses it: ``python -m gui.terminal`` in a real subprocess,
typing into its stdin and reading what it prints, against real servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.app import ChatServer
from tests.conftest import ROOT, ServerProcess
from tests.tls_certs import self_signed, trusting
from tests.wire import WireClient

CLOCK = r"\[\d\d:\d\d:\d\d\]"


class Terminal:
    """One ``python -m gui.terminal`` process; its output lines are collected by a thread."""

    def __init__(self, port: int, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gui.terminal",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *options,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"},
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: object, into: list[str]) -> None:
        assert hasattr(stream, "readline")
        for line in iter(stream.readline, ""):
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_line(self, pattern: str, timeout: float = 10.0) -> str:
        """The first output line matching ``pattern`` (a regex, searched)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} in {timeout} s; output: {self.lines}; "
                        f"stderr: {self.errors}"
                    )
                self._changed.wait(left)

    def end(self, timeout: float = 10.0) -> int:
        """Close stdin (end of input) and wait for the process to exit."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(port: int, *options: str) -> Terminal:
        terminal = Terminal(port, *options)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        terminal.kill()


def test_terminal_chats_with_another_client_and_prints_formatted_lines(
    server: ChatServer, terminals: Callable[[int], Terminal]
) -> None:
    alice = terminals(server.port)
    alice.wait_line(r"^\* connected to 127\.0\.0\.1:\d+")
    alice.type("login alice")
    alice.wait_line(r"--- end of history ---")
    bob = WireClient(server.port)
    try:
        bob.login("bob")
        alice.wait_line(rf"^{CLOCK} \* bob joined the chat$")
        alice.type("hello bob")  # plain text, once logged in, is a message
        assert bob.expect("message", sender="alice")["content"] == "hello bob"
        alice.wait_line(rf"^{CLOCK} alice: hello bob$")  # the echo
        bob.send("msg", "hi alice \u00e9\U0001f600")
        alice.wait_line(rf"^{CLOCK} bob: hi alice \u00e9\U0001f600$")
        bob.send("msg", "\x1b[2J sneaky")  # a terminal escape is shown, not obeyed
        alice.wait_line(r"bob: \\x1b\[2J sneaky$")
        alice.type("msg  two  spaces")
        alice.wait_line(rf"^{CLOCK} alice:  two  spaces$")
        alice.type("names")
        alice.wait_line(rf"^{CLOCK} \* Users in the chat: alice, bob$")
        alice.type("frobnicate now")  # logged in: sent as a message, never a crash
        alice.wait_line(r"alice: frobnicate now$")
        alice.type("logout")
        alice.wait_line(r"^\* logged out$")
        assert alice.end() == 0
        for _ in range(20):  # skip bob's own echoes and alice's messages
            event = bob.recv()
            if event.get("event") == "leave":
                assert event["user"] == "alice"
                break
        else:
            raise AssertionError("bob never heard alice leave")
    finally:
        bob.close()
    assert not [e for e in alice.errors if "Traceback" in e], alice.errors


def test_terminal_before_login_explains_and_shows_errors(
    server: ChatServer, terminals: Callable[[int], Terminal]
) -> None:
    term = terminals(server.port)
    term.type("hello?")
    term.wait_line(r"^! unknown command 'hello\?'")
    term.type("names")
    term.wait_line(rf"^{CLOCK} ! error \(not_logged_in\): ")
    term.type("login not valid")
    term.wait_line(rf"^{CLOCK} ! error \(invalid_username\): ")
    term.type("help")
    term.wait_line(r"logout")
    assert term.end() == 0  # end of input before login: just leaves


def test_text_right_after_login_is_a_message_not_a_command(
    server: ChatServer, terminals: Callable[[int], Terminal]
) -> None:
    """``printf 'login carol\\nhello\\n' | python -m gui.terminal``: the second line came
    before the server's welcome, and was refused as an unknown command."""
    bob = WireClient(server.port)
    try:
        bob.login("bob")
        carol = terminals(server.port)
        carol.wait_line(r"^\* connected to 127\.0\.0\.1:\d+")
        # One write, as a pipe or a paste delivers it: read before the welcome comes.
        carol.type("login carol\nhello right away\nhelp me read this")
        for text in ("hello right away", "help me read this"):
            assert bob.expect("message", sender="carol")["content"] == text
        assert not [line for line in carol.lines if "unknown command" in line], carol.lines
    finally:
        bob.close()


def test_two_terminals_chat_and_a_late_third_sees_the_history(
    server_process: Callable[..., ServerProcess],
    terminals: Callable[[int], Terminal],
    tmp_path: object,
) -> None:
    proc = server_process("--port", "0", "--db", f"{tmp_path}/chat.sqlite3")
    alice, bob = terminals(proc.port), terminals(proc.port)
    alice.type("login alice")
    alice.wait_line(r"--- end of history ---")
    bob.type("login bob")
    bob.wait_line(r"--- end of history ---")
    alice.wait_line(r"\* bob joined the chat$")
    alice.type("msg hello from alice")
    bob.wait_line(rf"^{CLOCK} alice: hello from alice$")
    bob.type("hi alice, bob here")
    alice.wait_line(rf"^{CLOCK} bob: hi alice, bob here$")
    carol = terminals(proc.port)
    carol.type("login carol")
    carol.wait_line(r"^--- history: 2 earlier message\(s\) ---$")
    carol.wait_line(rf"^{CLOCK} alice: hello from alice$")
    carol.wait_line(rf"^{CLOCK} bob: hi alice, bob here$")
    carol.wait_line(r"^--- end of history ---$")
    for term in (alice, bob, carol):
        assert term.end() == 0  # end of input: logs out and exits
    assert proc.stop() == 0
    assert not [e for t in (alice, bob, carol) for e in t.errors if "Traceback" in e]


def test_terminal_ends_by_itself_when_the_server_shuts_down(
    server_process: Callable[..., ServerProcess], terminals: Callable[[int], Terminal]
) -> None:
    proc = server_process("--port", "0", "--db", ":memory:")
    term = terminals(proc.port)
    term.type("login alice")
    term.wait_line(r"--- end of history ---")
    assert proc.stop() == 0
    term.wait_line(rf"^{CLOCK} \* The server is shutting down\.$")
    term.wait_line(r"^\* the server closed the connection$")
    assert term.proc.wait(10) == 0  # stdin still open: nobody typed anything


def test_terminal_over_tls_pins_the_certificate_and_refuses_a_changed_one(
    make_server: Callable[..., ChatServer],
    terminals: Callable[..., Terminal],
    tmp_path: Path,
) -> None:
    pair = self_signed(tmp_path)
    server = make_server(tls_cert=str(pair.cert), tls_key=str(pair.key))
    known = tmp_path / "known_hosts"
    tls = ("--tls", "--known-hosts", str(known))
    alice = terminals(server.port, *tls)
    alice.wait_line(rf"First connection to this server.*fingerprint is {pair.fingerprint}$")
    alice.wait_line(r"^\* connected to 127\.0\.0\.1:\d+")
    alice.type("login alice")
    alice.wait_line(r"--- end of history ---")
    bob = WireClient(server.port, tls=trusting(pair.cert))
    try:
        bob.login("bob")
        alice.type("hello over TLS")
        assert bob.expect("message", sender="alice")["content"] == "hello over TLS"
    finally:
        bob.close()
    alice.type("logout")
    assert alice.end() == 0
    again = terminals(server.port, *tls)
    again.wait_line(rf"certificate is the one trusted for it \(SHA-256 {pair.fingerprint}\)")
    again.end()

    known.write_text(known.read_text().replace(pair.fingerprint, "AB:" * 31 + "CD"))
    changed = terminals(server.port, *tls)
    assert changed.end() == 1
    assert any("HAS CHANGED" in line for line in changed.errors), changed.errors
    assert not [e for e in changed.errors if "Traceback" in e], changed.errors


def test_the_login_name_fallback_never_picks_a_reserved_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make run` logs in as the OS user; as root that was refused ("reads as the server")."""
    import getpass

    from gui.__main__ import login_name

    for os_name, chat_name in (("root", "rootuser"), ("Admin", "Adminuser"), ("jo.ann", "joann")):
        monkeypatch.setattr(getpass, "getuser", lambda os_name=os_name: os_name)
        assert login_name() == chat_name


def test_a_connected_terminal_client_is_two_threads(
    server: ChatServer, terminals: Callable[[int], Terminal]
) -> None:
    """Design card: the terminal (main) thread and the client's receiver, nothing else; the
    input is read on the main thread, which still wakes when the connection ends."""
    term = terminals(server.port)
    term.type("login alice")
    term.wait_line(r"--- end of history ---")
    term.type("hello")
    term.wait_line(rf"^{CLOCK} alice: hello$")
    tasks = Path(f"/proc/{term.proc.pid}/task")
    assert len(list(tasks.iterdir())) == 2, "threads of the terminal client"
    term.type("logout")
    assert term.end() == 0
