"""PROTOCOL.md, Server duties: persistence, slow and stuck clients, limits, shutdown, and the
gentle treatment of classic KTN clients.  Real servers (in-process and ``python -m server``)
and real sockets throughout."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from server.__main__ import build_parser, config_from_args
from server.app import ChatServer
from server.config import ServerConfig
from tests.conftest import ROOT, ServerProcess, wait_for
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]


def batch(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"request": "msg", "content": t}).encode() + b"\n" for t in texts)


def history_ids(port: int, name: str = "reader", client: str | None = "t/1") -> list[int]:
    wire = WireClient(port)
    try:
        extra = {} if client is None else {"client": client}
        wire.send("login", name, **extra)
        wire.expect("info")
        return [json.loads(item)["id"] for item in wire.expect("history")["content"]]
    finally:
        wire.close()


def stuck_client(port: int, name: str) -> socket.socket:
    """A logged-in client that never reads, with a tiny receive buffer so the server's
    output for it piles up quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(json.dumps({"request": "login", "content": name, "client": "t/1"}).encode())
    return sock


# --------------------------------------------------------------------- persistence
def test_every_echoed_message_survives_kill_9(
    server_process: Callable[..., ServerProcess], tmp_path: object
) -> None:
    db = f"{tmp_path}/chat.sqlite3"
    proc = server_process("--port", "0", "--db", db, "--rate-limit", "0")
    alice = WireClient(proc.port)
    alice.login("alice")
    alice.send_raw(batch([f"m{i}" for i in range(300)]))
    echoed = [alice.expect("message")["id"] for _ in range(30)]
    assert proc.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-chat: more are in flight
    try:  # whatever else reached the client before the kill counts as seen too
        while True:
            obj = alice.recv(2)
            if obj.get("response") == "message":
                echoed.append(obj["id"])
    except AssertionError:
        assert alice.closed
    alice.close()
    again = server_process("--port", "0", "--db", db, "--history-size", "1000")
    stored = history_ids(again.port)
    assert set(echoed) <= set(stored)
    assert stored == sorted(stored)
    assert again.stop() == 0


# ------------------------------------------------------------- slow / stuck clients
def test_a_client_that_never_reads_does_not_stop_the_others(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    stuck = stuck_client(server.port, "stuck")
    alice, bob = WireClient(server.port), WireClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        texts = [f"{i:04d}" + "z" * 1000 for i in range(300)]  # ~300 KB, far past the buffer
        alice.send_raw(batch(texts))
        assert [bob.expect("message")["content"] for _ in texts] == texts
        assert [alice.expect("message")["content"] for _ in texts] == texts
    finally:
        alice.close()
        bob.close()
        stuck.close()


def test_overflowing_client_is_dropped_logged_and_can_come_back(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(rate_limit=0, max_queue_bytes=64 * 1024)
    stuck = stuck_client(server.port, "stuck")
    stuck_port = stuck.getsockname()[1]
    alice = WireClient(server.port)
    try:
        alice.login("alice")
        left = False
        last_id = None
        for round_ in range(400):  # bounded: ~10 MB at most, dropped long before
            # Small rounds, read at once: alice herself must stay under the limit.
            alice.send_raw(batch([f"{round_}:{i}:" + "w" * 3000 for i in range(8)]))
            echoes = 0
            while echoes < 8:
                obj = alice.recv()
                if obj.get("event") == "leave" and obj.get("user") == "stuck":
                    left = True
                elif obj.get("response") == "message":
                    echoes += 1
                    last_id = obj["id"]
            if left:
                break
        assert left, "the stuck client was never dropped"
        drops = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and "dropping connection" in r.getMessage()
        ]
        assert drops and str(stuck_port) in drops[0].getMessage()
        # Its user can reconnect, and gets the history it missed.
        assert history_ids(server.port, "stuck")[-1] == last_id
    finally:
        alice.close()
        stuck.close()


# ---------------------------------------------------------------------------- limits
def test_connection_limit_refuses_the_next_connection(make_server: MakeServer) -> None:
    server = make_server(max_connections=3)
    clients = [WireClient(server.port) for _ in range(3)]
    try:
        for client in clients:
            client.send("help")
            client.expect("info")
        extra = WireClient(server.port)
        error = extra.recv()
        assert error["response"] == "error" and error["sender"] == "server"
        extra.wait_closed()
        extra.close()
        clients.pop().close()
        wait_for(lambda: server.connection_count() == 2, what="a free slot")
        again = WireClient(server.port)
        clients.append(again)
        again.send("help")
        again.expect("info")
    finally:
        for client in clients:
            client.close()


def test_connection_limit_holds_for_a_burst_of_connects(make_server: MakeServer) -> None:
    server = make_server(max_connections=20)
    clients = [WireClient(server.port) for _ in range(30)]  # no waiting between connects
    try:
        answers = []
        for client in clients:
            client.send("help")
            answers.append(client.recv()["response"])
        assert answers.count("info") == 20 and answers.count("error") == 10
    finally:
        for client in clients:
            client.close()


def test_login_timeout_closes_only_idle_connections(make_server: MakeServer) -> None:
    server = make_server(login_timeout=0.4)
    alice, idle = WireClient(server.port), WireClient(server.port)
    try:
        alice.login("alice")
        idle.send("help")  # talking is not logging in
        idle.expect("info")
        assert idle.recv()["response"] == "error"
        idle.wait_closed()
        alice.send("names")  # well past the timeout: a logged-in user stays
        assert alice.expect("info")["users"] == ["alice"]
    finally:
        alice.close()
        idle.close()


def test_default_rate_limit_lets_a_burst_through_and_stops_a_flood(
    make_server: MakeServer,
) -> None:
    """With the default flags: 200 messages at once all go through, a flood past that gets
    ``rate_limited`` for what is over (each refused message answered), connection kept."""
    defaults = ServerConfig()
    server = make_server()
    alice = WireClient(server.port)
    try:
        alice.login("alice")
        flood = defaults.rate_burst * 2
        alice.send_raw(batch([f"f{i}" for i in range(flood)]))
        got = [alice.recv() for _ in range(flood)]
        messages = [g["content"] for g in got if g["response"] == "message"]
        errors = {g["code"] for g in got if g["response"] == "error"}
        # The bucket refills while the flood is read, so a few more than the burst may pass.
        assert defaults.rate_burst <= len(messages) < flood * 3 // 4
        indices = [int(m[1:]) for m in messages]
        assert indices[: defaults.rate_burst] == list(range(defaults.rate_burst))
        assert indices == sorted(indices)  # what got through kept its order
        assert errors == {"rate_limited"}
        alice.send("names")
        assert alice.expect("info")["users"] == ["alice"]
    finally:
        alice.close()


def test_rate_limited_error_and_the_connection_is_kept(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0.5, rate_burst=3)
    alice, bob = WireClient(server.port), WireClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        alice.expect("info", event="join", user="bob")
        alice.send_raw(batch([f"r{i}" for i in range(6)]))
        got = [alice.recv() for _ in range(6)]
        messages = [g["content"] for g in got if g["response"] == "message"]
        errors = [g["code"] for g in got if g["response"] == "error"]
        assert messages == ["r0", "r1", "r2"]
        assert errors == ["rate_limited"] * 3
        assert [bob.expect("message")["content"] for _ in range(3)] == messages
        alice.send("names")
        assert alice.expect("info")["users"] == ["alice", "bob"]
    finally:
        alice.close()
        bob.close()


# -------------------------------------------------------------------------- shutdown
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_tells_every_client_and_exits_0(
    server_process: Callable[..., ServerProcess], sig: int
) -> None:
    proc = server_process("--port", "0", "--db", ":memory:")
    alice, anon = WireClient(proc.port), WireClient(proc.port)
    alice.login("alice")
    anon.send("help")
    anon.expect("info")
    assert proc.stop(sig) == 0
    for client in (alice, anon):
        notice = client.expect("info", event="shutdown")
        assert notice["sender"] == "server"
        client.wait_closed()
        client.close()
    assert any("shutting down" in line for line in proc.log)


# ------------------------------------------------------------------- classic clients
def recv_one(sock: socket.socket, size: int = 4096) -> tuple[bytes, float]:
    data = sock.recv(size)
    return data, time.monotonic()


def test_classic_client_reading_1_kib_at_a_time_gets_150_messages_of_history(
    make_server: MakeServer,
) -> None:
    """A KTN program that does json.loads(recv(1024)) on every read survives the login: the
    history comes at least 100 ms after the info, as objects of at most 1 KiB, one per read,
    together the whole --history-size."""
    server = make_server(rate_limit=0, history_size=150)
    filler = WireClient(server.port)
    filler.login("filler")
    texts = [f"{i:03d} " + "c" * (i * 37 % 600) for i in range(150)]  # 4 to 603 characters
    filler.send_raw(batch(texts))
    echoes = [filler.expect("message")["id"] for _ in texts]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(json.dumps({"request": "login", "content": "classic"}).encode())
        first, t_info = recv_one(sock, 1024)
        info = json.loads(first)  # exactly one object, or this raises
        assert info["response"] == "info" and info["users"] == ["classic", "filler"]
        ids: list[int] = []
        reads = 0
        t_history = 0.0
        while len(ids) < len(echoes) and reads < len(echoes):
            data, when = recv_one(sock, 1024)
            t_history = t_history or when
            reads += 1
            history = json.loads(data)  # one whole object per read
            assert history["response"] == "history" and len(data) <= 1024
            ids += [json.loads(item)["id"] for item in history["content"]]
        assert t_history - t_info >= 0.08  # at least 100 ms, less a little receive jitter
        assert ids == echoes  # all 150, oldest first
        assert reads > 10  # several objects, not one
    finally:
        sock.close()
        filler.close()


def _history_after(server: ChatServer, texts: list[str]) -> tuple[list[int], bytes]:
    """Store ``texts`` (their ids), then log a TkChat client in; the raw ``history`` line."""
    filler = WireClient(server.port)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        filler.login("filler")
        filler.send_raw(batch(texts))
        echoes = [filler.expect("message")["id"] for _ in texts]
        sock.sendall(
            json.dumps({"request": "login", "content": "new", "client": "tkchat/1.0"}).encode()
            + b"\n"
        )
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"\n") < 2 and time.monotonic() < deadline:
            data += sock.recv(65536)
        return echoes, data.split(b"\n")[1]
    finally:
        sock.close()
        filler.close()


def test_tkchat_client_gets_the_full_history_at_once(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    echoes, line = _history_after(server, [f"{i:03d}" + "t" * 300 for i in range(120)])
    history: dict[str, Any] = json.loads(line)
    assert history["response"] == "history"
    assert len(line) + 1 <= 64 * 1024
    assert [json.loads(i)["id"] for i in history["content"]] == echoes[-100:]


def test_tkchat_history_of_long_messages_stays_within_64_kib(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    # ~400 KB in all
    echoes, line = _history_after(server, [f"{i:03d}" + "L" * 3990 for i in range(100)])
    assert len(line) + 1 <= 64 * 1024
    ids = [json.loads(i)["id"] for i in json.loads(line)["content"]]
    assert len(ids) >= 10 and ids == echoes[-len(ids) :]


# --------------------------------------------------------------------- the program
def test_help_explains_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--db",
        "--history-size",
        "--max-connections",
        "--login-timeout",
        "--rate-limit",
        "--server-password-file",
        "--log-level",
    ):
        assert flag in out, flag


def test_the_defaults_are_the_contracts() -> None:
    """PROTOCOL.md, Server duties: 1,000 connections, 30 s to log in, the last 100 messages,
    port 9998.  A KTN program that takes 20 s to send its login is within the contract."""
    config = config_from_args(build_parser().parse_args([]))
    assert (config.max_connections, config.login_timeout) == (1000, 30.0)
    assert (config.history_size, config.port) == (100, 9998)


def test_log_says_where_it_listens_and_who_comes_and_goes(
    server_process: Callable[..., ServerProcess], tmp_path: object
) -> None:
    db = f"{tmp_path}/logged.sqlite3"
    proc = server_process("--port", "0", "--db", db)
    alice = WireClient(proc.port)
    alice.login("alice")
    alice.send("logout")
    alice.expect("info")
    alice.wait_closed()
    alice.close()
    wait_for(lambda: any("disconnect" in line for line in proc.log), what="disconnect log line")
    assert proc.stop() == 0
    text = "\n".join(proc.log)
    assert f"127.0.0.1:{proc.port}" in text and db in text
    for word in ("connect from", "login alice", "logout alice", "shutting down"):
        assert word in text, word


def test_classic_client_gets_a_burst_of_broadcasts_in_separate_reads(
    make_server: MakeServer,
) -> None:
    """A classic KTN program decodes each recv(4096) as one object; a burst of echoes must
    not pile up into one read.  (A few merged reads are tolerated: the reader here may be
    scheduled late on a busy machine; without spacing, about half the reads merge.)"""
    server = make_server(rate_limit=0)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sender = WireClient(server.port)
    try:
        sock.sendall(json.dumps({"request": "login", "content": "classic"}).encode())
        assert json.loads(sock.recv(4096))["response"] == "info"
        assert json.loads(sock.recv(4096))["response"] == "history"
        sender.login("burst")
        assert json.loads(sock.recv(4096))["event"] == "join"
        sender.send_raw(batch([f"b{i}" for i in range(30)]))
        reads: list[bytes] = []
        received = 0
        while received < 30:
            data = sock.recv(4096)
            assert data, "connection closed"
            reads.append(data)
            received += data.count(b"\n")
        assert sum(1 for data in reads if data.count(b"\n") == 1) >= 27, reads
    finally:
        sock.close()
        sender.close()
