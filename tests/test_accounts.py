"""Registered names, the server-wide password and the guard on password guessing
(PROTOCOL.md, Registered names and passwords), over real sockets."""

from __future__ import annotations

import base64
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.accounts import LoginGuard
from server.app import ChatServer
from tests.conftest import ROOT, ServerProcess
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]
SECRET = "correct horse battery"
FAST = {"login_delay_first": 0.01, "login_delay_max": 0.02}


def _login(port: int, name: str, source: str | None = None, **keys: Any) -> WireClient:
    client = WireClient(port, source=source)
    client.send("login", name, client="test/1.0", **keys)
    return client


def _registered(server: ChatServer, name: str = "alice", password: str = SECRET) -> None:
    client = WireClient(server.port)
    try:
        client.login(name)
        client.send("register", password=password)
        assert "registered" in client.expect("info")["content"]
        client.send("logout")
        client.expect("info")
        client.wait_closed()
    finally:
        client.close()


def test_a_registered_name_needs_its_password_at_login(make_server: MakeServer) -> None:
    server = make_server(**FAST)
    _registered(server)
    client = _login(server.port, "alice")
    try:
        error = client.expect("error", code="auth_failed", field="password")
        assert "password" in error["content"]
        for wrong in ("correct horse", 42, None, "\ud800"):
            client.send("login", "alice", client="t/1", password=wrong)
            client.expect("error", code="auth_failed", field="password")
        client.send("login", "ALICE", client="t/1")  # the name in any case is the same name
        client.expect("error", code="auth_failed", field="password")
        client.send("login", "alice", client="t/1", password=SECRET)
        assert client.expect("info")["users"] == ["alice"]
        client.expect("history")
        (handler,) = [h for h in server._handlers if h.name == "alice"]
        assert handler.proven
    finally:
        client.close()
    other = WireClient(server.port)
    try:
        other.login("bob")  # names nobody registered need no password
        (handler,) = [h for h in server._handlers if h.name == "bob"]
        assert not handler.proven
    finally:
        other.close()


def test_register_checks_its_password_and_the_connection_goes_on(
    make_server: MakeServer,
) -> None:
    server = make_server(**FAST)
    client = WireClient(server.port)
    try:
        client.send("register", password=SECRET)
        client.expect("error", code="not_logged_in")
        client.login("alice")
        for bad in ("7chars!", "x" * 257, 12345678, None, "ok" * 4 + "\ud800"):
            client.send("register", password=bad)
            client.expect("error", code="bad_request")
        client.send("register", password="8 chars!")
        client.expect("info")
        client.send("register", password="another one")  # a change needs the old one
        assert "new_password" in client.expect("error", code="bad_request")["content"]
        client.send("msg", "still here")
        client.expect("message", content="still here")
    finally:
        client.close()


def test_change_password_needs_the_old_one(make_server: MakeServer) -> None:
    server = make_server(**FAST)
    client = WireClient(server.port)
    try:
        client.login("alice")
        client.send("register", password=SECRET)
        client.expect("info")
        client.send("register", password="not the one", new_password="new secret 1")
        client.expect("error", code="auth_failed", field="password")
        client.send("register", password=SECRET, new_password="short")
        client.expect("error", code="bad_request")
        client.send("register", password=SECRET, new_password="new secret 1")
        assert "changed" in client.expect("info")["content"]
    finally:
        client.close()
    old = _login(server.port, "alice", password=SECRET)
    try:
        old.expect("error", code="auth_failed", field="password")
        old.send("login", "alice", client="t/1", password="new secret 1")
        old.expect("info")
    finally:
        old.close()


def test_only_the_hash_is_stored(make_server: MakeServer, tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite3"
    server = make_server(db=str(db))
    _registered(server, "alice", SECRET)
    _registered(server, "bob", SECRET)
    server.stop()
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT name, hash FROM users").fetchall())
    assert set(rows) == {"alice", "bob"}
    for stored in rows.values():
        scheme, n, r, p, salt, digest = stored.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
        assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
        assert SECRET not in stored
    assert rows["alice"] != rows["bob"]  # salted: the same password hashes differently
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    # ... and the names stay registered across a restart of the server.
    again = make_server(db=str(db), **FAST)
    client = _login(again.port, "bob")
    try:
        client.expect("error", code="auth_failed", field="password")
    finally:
        client.close()


# ------------------------------------------------------------ server password
def _gate_checked(port: int, password: str) -> None:
    client = _login(port, "alice")
    try:
        client.expect("error", code="auth_failed", field="server_password")
        client.send("login", "alice", client="t/1", server_password=password)
        assert client.expect("info")["users"] == ["alice"]
    finally:
        client.close()


def test_server_password_from_the_environment(
    server_process: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TKCHAT_SERVER_PASSWORD", "gate keeper 7")
    proc = server_process("--port", "0", "--db", ":memory:")
    _gate_checked(proc.port, "gate keeper 7")
    assert proc.proc is not None
    cmdline = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
    assert b"gate keeper" not in cmdline
    assert proc.stop() == 0


def test_server_password_from_a_file(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    secret = tmp_path / "server-password"
    secret.write_text("from a file 9\n", encoding="utf-8")
    proc = server_process("--port", "0", "--db", ":memory:", "--server-password-file", str(secret))
    _gate_checked(proc.port, "from a file 9")
    assert proc.stop() == 0


def test_a_password_on_the_command_line_is_refused_with_the_two_ways() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--password", "visible"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "TKCHAT_SERVER_PASSWORD" in done.stderr
    assert "--server-password-file" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_server_gate_comes_before_the_name(make_server: MakeServer) -> None:
    server = make_server(password="gate pass", **FAST)
    _registered_behind_gate(server)
    client = _login(server.port, "alice", password=SECRET)
    try:  # a right name password does not open the gate
        client.expect("error", code="auth_failed", field="server_password")
        client.send("login", "alice", client="t/1", server_password="gate pass")
        client.expect("error", code="auth_failed", field="password")
        client.send("login", "alice", client="t/1", server_password="gate pass", password=SECRET)
        client.expect("info")
    finally:
        client.close()


def _registered_behind_gate(server: ChatServer) -> None:
    client = _login(server.port, "alice", server_password="gate pass")
    try:
        client.expect("info")
        client.expect("history")
        client.send("register", password=SECRET)
        client.expect(
            "info", content="The name alice is registered: logging in as alice needs this password."
        )
    finally:
        client.close()


# ------------------------------------------------------------------ guessing
def test_the_guard_doubles_the_delay_up_to_30_seconds() -> None:
    guard = LoginGuard()
    delays = [guard.failed("192.0.2.1", "alice", "password").delay for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert guard.failed("192.0.2.2", "alice", "password").delay == 1.0  # per address


def test_wrong_passwords_are_answered_more_and_more_slowly(make_server: MakeServer) -> None:
    server = make_server(login_delay_first=0.2, login_delay_max=0.4)
    _registered(server)
    client = _login(server.port, "alice", password="wrong one")
    try:
        waited = []
        for _ in range(3):
            start = time.monotonic()
            client.expect("error", code="auth_failed")
            waited.append(time.monotonic() - start)
            client.send("login", "alice", client="t/1", password="wrong one")
        # Lower bounds only: each answer is held back at least its delay.
        assert waited[0] >= 0.19 and waited[1] >= 0.39 and waited[2] >= 0.39, waited
    finally:
        client.close()


def test_too_many_attempts_closes_while_another_address_logs_in(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(**FAST)
    _registered(server)
    attacker = _login(server.port, "alice", password="guess 0")
    try:
        for guess in range(1, 21):
            attacker.expect("error", code="auth_failed", field="password")
            attacker.send("login", "alice", client="t/1", password=f"guess {guess}")
        attacker.expect("error", code="too_many_attempts")  # the 21st in a minute
        attacker.wait_closed()
    finally:
        attacker.close()
    again = _login(server.port, "alice", password=SECRET)  # even the right one, from there
    try:
        again.expect("error", code="too_many_attempts")
        again.wait_closed()
    finally:
        again.close()
    owner = _login(server.port, "alice", source="127.0.0.2", password=SECRET)
    try:
        assert owner.expect("info")["users"] == ["alice"]
    finally:
        owner.close()
    lines = [r.getMessage() for r in caplog.records if "failed password login" in r.getMessage()]
    assert 1 <= len(lines) <= 3, lines  # summarised, not one line per guess
    assert any("127.0.0.1" in line for line in lines)


def test_a_slow_answer_holds_up_nobody_else(make_server: MakeServer) -> None:
    """The attacker's answer is 20 s away; another address logs in and chats meanwhile, and
    stopping the server ends the wait (no stuck thread)."""
    server = make_server(login_delay_first=20.0, login_delay_max=20.0)
    _registered(server)
    attacker = _login(server.port, "alice", password="wrong one")
    other = _login(server.port, "bob", source="127.0.0.2")
    try:
        other.expect("info")
        other.expect("history")
        other.send("msg", "hello")
        other.expect("message", content="hello")
        with pytest.raises(AssertionError):
            attacker.recv(timeout=0.2)  # still waiting for its answer
    finally:
        other.close()
        server.stop()
        attacker.close()


def test_logs_never_show_the_passwords(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(password="gate pass", **FAST)
    _registered_behind_gate(server)
    client = _login(server.port, "alice", server_password="wrong gate")
    try:
        client.expect("error", code="auth_failed")
    finally:
        client.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("gate pass", "wrong gate", SECRET):
        assert secret not in text
