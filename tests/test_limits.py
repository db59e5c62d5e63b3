"""A server you can put on a network (issue 11): per-address limits, liveness, safe logs.

Real server, real sockets.  Attacker and victim connect from different loopback addresses
(127.0.0.2, 127.0.0.3, ...: all of 127.0.0.0/8 is loopback on Linux), as they would from
different hosts.  The per-address limits are off in ``TEST_CONFIG`` (other tests open hundreds
of connections from 127.0.0.1); here they run with their defaults (``DEFAULT_LIMITS``) or with
small values that make the count exact.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.protocol import (
    ErrorCode,
    InfoResponse,
    MessageResponse,
    encode_response,
)
from common.requests import Ping, SendMessage
from gui.net.client import Client
from gui.net.events import ClientEvent, Disconnected
from server import handler as handler_module
from server.app import ChatServer
from server.config import ServerConfig
from server.dbfile import prepare_db
from server.limits import (
    FDS_PER_CONNECTION,
    FDS_RESERVED,
    AddressLimits,
    AddressPolicy,
    address_key,
)
from server.logsafe import RepeatFilter, SafeFormatter, Summary, clean
from tests.conftest import DEFAULT_LIMITS, ROOT, ServerProcess, wait_for
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]
ATTACKER = "127.0.0.2"
VICTIM = "127.0.0.3"


@pytest.fixture
def clients() -> Iterator[list[WireClient]]:
    """Every WireClient a test opens, closed after it."""
    opened: list[WireClient] = []
    yield opened
    for client in opened:
        client.close()


def answer(client: WireClient, timeout: float = 5.0) -> dict[str, Any]:
    """The next object that is not someone else's join/leave event."""
    deadline = time.monotonic() + timeout
    while True:
        obj = client.recv(max(0.01, deadline - time.monotonic()))
        if obj.get("response") == "info" and obj.get("event") in ("join", "leave"):
            continue
        return obj


def log_in(port: int, name: str, source: str, client: str | None = "test/1.0") -> WireClient:
    wire = WireClient(port, source=source)
    wire.login(name, client=client)
    return wire


# ---------------------------------------------------------------- connections per address
def test_the_connection_past_max_per_address_gets_too_many_connections_and_is_closed(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server(**DEFAULT_LIMITS)
    cap = ServerConfig().max_per_address
    assert cap == 20  # PROTOCOL.md's default
    for _ in range(cap):
        clients.append(WireClient(server.port, source=ATTACKER))
    wait_for(lambda: server.connection_count() == cap, what="the attacker's connections")
    extra = WireClient(server.port, source=ATTACKER)
    clients.append(extra)
    refusal = extra.recv()
    assert refusal["response"] == "error" and refusal["code"] == ErrorCode.TOO_MANY_CONNECTIONS
    extra.wait_closed()
    # Another address is not affected; and a freed slot is free again.
    clients.append(log_in(server.port, "victim", VICTIM))
    clients[0].close()
    wait_for(lambda: server.connection_count() == cap, what="the slot to be freed")
    again = log_in(server.port, "again", ATTACKER)
    clients.append(again)


def test_one_address_cannot_lock_another_out(
    make_server: MakeServer, clients: list[WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 item 3: one address opens its maximum (half of them logged in, the rest never
    logging in) and hammers reconnects; a user from another address logs in every time, and
    the refusals make one summarised log line, not one each."""
    server = make_server(**DEFAULT_LIMITS)
    cap = ServerConfig().max_per_address
    for i in range(cap):
        if i % 2:
            clients.append(log_in(server.port, f"idler{i}", ATTACKER))
        else:
            clients.append(WireClient(server.port, source=ATTACKER))
    wait_for(lambda: server.connection_count() == cap, what="the attacker's connections")
    refused: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        for _ in range(400):  # bounded; stopped when the victim is done
            if stop.is_set():
                return
            try:
                with socket.create_connection(
                    ("127.0.0.1", server.port), timeout=5, source_address=(ATTACKER, 0)
                ) as sock:
                    refused.append(sock.recv(4096).decode())
            except OSError:
                pass

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        for attempt in range(10):
            victim = log_in(server.port, "victim", VICTIM)
            victim.send("msg", f"in {attempt}")
            echo = victim.expect("message")
            assert echo["content"] == f"in {attempt}"
            victim.send("logout")
            victim.wait_closed()
            victim.close()
    finally:
        stop.set()
        thread.join(10)
    assert refused and all("too_many_connections" in r for r in refused if r)
    assert server.connection_count() <= cap  # the attacker never held more than its share
    lines = [r for r in caplog.records if "--max-per-address" in r.getMessage()]
    assert len(lines) <= 2, [r.getMessage() for r in lines]  # first one, then "N more"


def test_max_connections_still_refuses_everyone_past_it(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server(max_connections=4, **DEFAULT_LIMITS)
    for i in range(4):
        clients.append(log_in(server.port, f"user{i}", f"127.0.0.{10 + i}"))
    late = WireClient(server.port, source="127.0.0.20")
    clients.append(late)
    refusal = late.recv()
    assert refusal["code"] == ErrorCode.SERVER_FULL
    late.wait_closed()


def test_summarised_refusals_report_their_count(
    make_server: MakeServer, clients: list[WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(max_per_address=1, address_rate=0)
    clients.append(WireClient(server.port, source=ATTACKER))
    wait_for(lambda: server.connection_count() == 1, what="the first connection")
    for _ in range(30):
        extra = WireClient(server.port, source=ATTACKER)
        assert extra.recv()["code"] == ErrorCode.TOO_MANY_CONNECTIONS
        extra.close()
    server.stop()  # writes what the window held back
    messages = [r.getMessage() for r in caplog.records if "max-per-address" in r.getMessage()]
    assert messages[0].startswith(f"refused {ATTACKER}: 1 connections")
    assert messages[1:] == ["29 more refusals (--max-per-address) in the last 10 s"]


# ------------------------------------------------------------------ requests per address
def test_cycling_names_cannot_pass_the_address_bucket(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    """Issue 11 item 2: new names on new connections share their address's bucket.  A bucket
    of 30 with (almost) no refill: logins, messages, logouts together get 30 answers at most,
    the rest ``rate_limited``; another address still chats."""
    server = make_server(address_rate=0.001, address_burst=30, login_rate=0)
    served = limited = 0
    for cycle in range(8):
        wire = WireClient(server.port, source=ATTACKER)
        clients.append(wire)
        wire.send("login", f"cycler{cycle}", client="test/1.0")
        first = answer(wire)
        if first["response"] == "error":
            assert first["code"] == ErrorCode.RATE_LIMITED
            limited += 1
            continue
        served += 1
        answer(wire)  # history
        for i in range(8):
            wire.send("msg", f"cycle {cycle} message {i}")
            got = answer(wire)
            if got["response"] == "message":
                served += 1
            else:
                assert got["code"] == ErrorCode.RATE_LIMITED, got
                limited += 1
        wire.close()
    # 3 cycles of 9 (login, 8 messages), then a login and 2 messages; then nothing.
    assert (served, limited) == (30, 6 + 4)
    victim = log_in(server.port, "victim", VICTIM)
    clients.append(victim)
    victim.send("msg", "still here")
    assert victim.expect("message")["content"] == "still here"


@pytest.mark.parametrize(
    "request_",
    [
        {"request": "help"},
        {"request": "ping"},
        {"request": "names"},
        {"request": "login", "content": "late", "client": "test/1.0"},
        {"request": "nonsense"},
        {"request": 5},
    ],
)
def test_every_request_kind_takes_from_the_address_bucket(
    make_server: MakeServer, clients: list[WireClient], request_: dict[str, Any]
) -> None:
    server = make_server(address_rate=0.001, address_burst=5, login_rate=0)
    wire = WireClient(server.port, source=ATTACKER)
    clients.append(wire)
    for _ in range(5):
        wire.send("help")
        assert answer(wire)["response"] == "info"
    wire.send_raw((json.dumps(request_) + "\n").encode())
    got = answer(wire)
    assert got["response"] == "error" and got["code"] == ErrorCode.RATE_LIMITED, got
    wire.send_raw(b"{not json\n")
    assert answer(wire)["code"] == ErrorCode.RATE_LIMITED  # even bad bytes count; still open
    assert not wire.closed


def test_logins_per_address_are_limited(make_server: MakeServer, clients: list[WireClient]) -> None:
    server = make_server(address_rate=0, login_rate=0.001, login_burst=3)
    for i in range(3):
        clients.append(log_in(server.port, f"quick{i}", ATTACKER))
    wire = WireClient(server.port, source=ATTACKER)
    clients.append(wire)
    wire.send("login", "quick3", client="test/1.0")
    got = answer(wire)
    assert got["code"] == ErrorCode.RATE_LIMITED
    wire.send("help")  # the connection goes on
    assert answer(wire)["response"] == "info"
    clients.append(log_in(server.port, "elsewhere", VICTIM))


def test_the_per_user_message_limit_still_applies_inside_the_address_bucket(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server(rate_limit=0.001, rate_burst=3, **DEFAULT_LIMITS)
    wire = log_in(server.port, "chatty", ATTACKER)
    clients.append(wire)
    got = []
    for i in range(5):
        wire.send("msg", f"m{i}")
        got.append(answer(wire))
    assert [g["response"] for g in got] == ["message"] * 3 + ["error"] * 2
    assert got[-1]["code"] == ErrorCode.RATE_LIMITED


def test_big_answers_cost_a_token_per_kib(
    make_server: MakeServer, clients: list[WireClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer that amplifies (names in a crowd, a history page) costs its address a token
    per KiB, here per 100 bytes: the help text (~470 bytes) costs 5, so a bucket of 20 serves
    it 4 times, not 20.  Another address is not charged."""
    monkeypatch.setattr(handler_module, "_ANSWER_BYTES_PER_TOKEN", 100)
    server = make_server(address_rate=0.001, address_burst=20, login_rate=0)
    wire = WireClient(server.port, source=ATTACKER)
    clients.append(wire)
    served = 0
    for _ in range(20):
        wire.send("help")
        got = answer(wire)
        if got["response"] == "error":
            assert got["code"] == ErrorCode.RATE_LIMITED
            break
        served += 1
    size = len(encode_response(InfoResponse(handler_module.HELP_TEXT)))
    cost = 1 + size // 100  # the request's token, then one per whole 100 bytes of answer
    tokens, expected = 20, 0
    while tokens >= 1:
        tokens -= cost
        expected += 1
    assert served == expected < 10
    other = WireClient(server.port, source=VICTIM)
    clients.append(other)
    other.send("help")
    assert answer(other)["response"] == "info"


# ------------------------------------------------------------------------------ liveness
def test_ping_is_answered_with_pong_before_and_after_login(
    server: ChatServer, clients: list[WireClient]
) -> None:
    wire = WireClient(server.port)
    clients.append(wire)
    wire.send("ping")
    pong = wire.recv()
    assert pong["response"] == "info" and pong["event"] == "pong"
    wire.login("pinger")
    wire.send("ping", None)
    assert wire.expect("info")["event"] == "pong"


def test_accepted_sockets_have_tcp_keepalive(server: ChatServer, clients: list[WireClient]) -> None:
    clients.append(WireClient(server.port))
    wait_for(lambda: len(server._handlers) == 1, what="the handler")
    (handler,) = server._handlers
    sock = handler.request
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 5


def test_a_silent_tkchat_client_is_closed_and_frees_its_name(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server(idle_timeout=0.5)
    ghost = log_in(server.port, "ghost", VICTIM)
    clients.append(ghost)
    notice = ghost.expect("error", timeout=10)
    assert notice["code"] == ErrorCode.IDLE_TIMEOUT
    ghost.wait_closed()
    clients.append(log_in(server.port, "ghost", VICTIM))  # the name is free again


def test_a_pinging_tkchat_client_and_a_silent_classic_client_stay(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server(idle_timeout=0.5)
    classic = log_in(server.port, "classic", VICTIM, client=None)
    pinger = log_in(server.port, "pinger", ATTACKER)
    clients += [classic, pinger]
    for _ in range(8):  # 1.6 s: three idle timeouts
        pinger.send("ping")
        assert pinger.expect("info")["event"] == "pong"
        time.sleep(0.2)
    classic.send("names")
    assert set(classic.expect("info")["users"]) == {"classic", "pinger"}


def test_the_client_hides_pongs_from_the_app(make_server: MakeServer) -> None:
    """The answer to the client's own ``ping`` is liveness only: the app never sees it (the
    Tk window would show an empty line every minute)."""
    server = make_server()
    events: list[ClientEvent] = []
    client = Client("127.0.0.1", server.port, events.append)
    client.run()
    try:
        client.login("quiet")
        wait_for(lambda: server.room.names() == ["quiet"], what="the login")
        client.send_payload(Ping())
        client.send_payload(SendMessage("after the ping"))
        wait_for(lambda: any(isinstance(e, MessageResponse) for e in events), what="the echo")
        assert not any(isinstance(e, InfoResponse) and e.event == "pong" for e in events)
    finally:
        client.disconnect()


def test_a_tkchat_client_that_only_reads_a_busy_room_is_not_idle_closed(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    """The server hears nothing from a user who only reads; the client pings when it has
    *sent* nothing for a while, however busy the room (reads do not count)."""
    server = make_server(idle_timeout=0.8)
    events: list[ClientEvent] = []
    reader = Client("127.0.0.1", server.port, events.append, ping_after=0.2)
    reader.run()
    try:
        reader.login("reader")
        wait_for(lambda: server.room.names() == ["reader"], what="the login")
        talker = log_in(server.port, "talker", VICTIM)
        clients.append(talker)
        for i in range(25):  # 2.5 s of chat: three idle timeouts
            talker.send("msg", f"busy {i}")
            talker.expect("message")
            time.sleep(0.1)
        talker.send("names")
        assert "reader" in talker.expect("info")["users"]
        assert not any(isinstance(e, Disconnected) for e in events)
    finally:
        reader.disconnect()


# ---------------------------------------------------------------------------- safe logs
HOSTILE = (
    "evil/1.0\n2026-11-28 INFO server.handler: login admin\x1b[31m\x07\u202e\u200b" + "x" * 500
)


def test_peer_strings_reach_the_log_escaped_and_cut(
    server: ChatServer, clients: list[WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="server")
    wire = WireClient(server.port)
    clients.append(wire)
    wire.send(HOSTILE)  # an unknown request name
    wire.expect("error")
    wire.send("login", "mallory", client=HOSTILE)
    wire.expect("info")
    wire.expect("history")
    wire.send("msg", HOSTILE * 7)
    wire.expect("message")
    wire.send_raw(b'{"request": "\\u001b]0;pwned\\u0007"}\n')
    wire.expect("error")
    messages = [r.getMessage() for r in caplog.records]
    assert any("login mallory" in m for m in messages)
    for message in messages:
        assert not any(ch in message for ch in "\n\r\x1b\x07\u202e\u200b"), message
        assert len(message) < 1000, message
    (login,) = [m for m in messages if m.startswith("login mallory")]
    assert "evil/1.0\\n2026" in login and "more)" in login  # escaped, and cut at 64


def test_debug_logs_each_request_and_response_on_one_line(
    server: ChatServer, clients: list[WireClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="server")
    wire = WireClient(server.port)
    clients.append(wire)
    wire.login("talker")
    wire.send("help")
    wire.expect("info")
    messages = [r.getMessage() for r in caplog.records if r.name == "server.handler"]
    assert any("-> {'request': 'help'" in m for m in messages)
    assert any(" <- {" in m and "'content': 'TkChat server." in m for m in messages)
    assert all(len(m) < 400 for m in messages)  # the history and help text are cut


def test_clean_escapes_and_cuts() -> None:
    assert clean("a\nb\x1b\u202ec\u2028") == "a\\nb\\x1b\\u202ec\\u2028"
    assert clean("z" * 100, 64) == "z" * 64 + "...(36 more)"
    assert clean("\ud800") == "\\ud800"  # a lone surrogate, escaped not raised
    assert clean("café 😀") == "café 😀"


def test_the_server_log_format_keeps_every_record_on_one_line() -> None:
    """``python -m server``'s formatter escapes what a call site forgot; tracebacks stay."""
    formatter = SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("server", logging.INFO, __file__, 1, "got %s", ("a\nb\x1b",), None)
    assert formatter.format(record) == "INFO got a\\nb\\x1b"
    try:
        raise ValueError("boom")
    except ValueError:
        exc = sys.exc_info()
    record = logging.LogRecord("server", logging.ERROR, __file__, 1, "failed", (), exc)
    assert formatter.format(record).splitlines()[1] == "Traceback (most recent call last):"


def test_the_server_log_handler_summarises_any_repeated_warning() -> None:
    """``python -m server``'s handler filter: the first of 50 overflow-like warnings, then
    one count; other templates, other loggers and ERRORs are not held back."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    repeats = RepeatFilter(handler, window=0.2)
    handler.addFilter(repeats)
    logger = logging.getLogger("tests.repeats")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(50):
            logger.warning("%s: dropping connection, %d bytes unread", f"peer{i}", i)
            if i == 3:
                logger.error("real trouble %d", i)
        logger.warning("something else")
        time.sleep(0.25)
        repeats.flush()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert [r.getMessage() for r in records] == [
        "peer0: dropping connection, 0 bytes unread",
        "real trouble 3",
        "something else",
        "49 more like '%s: dropping connection, %d bytes unread' in the last 0.2 s",
    ]


def test_python_m_server_writes_a_repeated_warning_once_plus_a_count(
    server_process: Callable[..., ServerProcess],
) -> None:
    """30 connections each sending 70 KB with no object end: 30 "too large; closing" warnings
    in the real server's log are one line and, at stop, one count."""
    proc = server_process("--port", "0", "--db", ":memory:", "--max-per-address", "0")
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
            sock.sendall(b'{"request": "msg", "content": "' + b"x" * 70_000)
            while sock.recv(65536):  # until the server closes it
                pass
    assert proc.stop() == 0
    warnings = [line for line in proc.log if "WARNING" in line and "closing" in line]
    assert len(warnings) == 2, warnings
    assert "request too large" in warnings[0]
    assert "29 more like '%s: %s; closing' in the last 10 s" in warnings[1]


def test_summary_holds_repeats_back_until_the_window_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.summary")
    summary = Summary(logger, window=0.2)
    for i in range(5):
        summary.note("floods", logging.WARNING, "flood %d", i)
    time.sleep(0.25)
    summary.flush()
    summary.note("floods", logging.WARNING, "flood %d", 99)
    assert [r.getMessage() for r in caplog.records if r.name == "tests.summary"] == [
        "flood 0",
        "4 more floods in the last 0.2 s",
        "flood 99",
    ]


# ------------------------------------------------------------------------------ accounting
def test_address_keys_group_ipv6_by_64_and_unmap_ipv4() -> None:
    assert address_key("127.0.0.2") == "127.0.0.2"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")


def test_an_address_keeps_its_spent_bucket_across_reconnects() -> None:
    limits = AddressLimits(AddressPolicy(request_rate=0.001, request_burst=2))
    assert limits.admit("a") and limits.allow_request("a") and limits.allow_request("a")
    limits.release("a")
    limits.prune()  # not full again: not forgotten
    assert limits.admit("a") and not limits.allow_request("a")
    limits.release("a")
    quick = AddressLimits(AddressPolicy(request_rate=1000.0, request_burst=2))
    quick.admit("b")
    quick.release("b")
    time.sleep(0.01)
    assert quick.prune() == 1 and len(quick) == 0


# ------------------------------------------------------------------- names of authority
@pytest.mark.parametrize("name", ["server", "SERVER", "Admin", "root", "System", "moderator"])
def test_names_that_read_as_authority_are_refused(
    server: ChatServer, clients: list[WireClient], name: str
) -> None:
    wire = WireClient(server.port)
    clients.append(wire)
    wire.send("login", name, client="test/1.0")
    got = wire.expect("error")
    assert got["code"] == ErrorCode.INVALID_USERNAME
    wire.login("administrator")  # only the exact names


# ----------------------------------------------------------------- threads and shutdown
def test_connection_threads_are_named_tracked_and_end_with_stop(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    server = make_server()
    for i in range(3):
        clients.append(log_in(server.port, f"t{i}", "127.0.0.1"))
    named = [t for t in threading.enumerate() if t.name.startswith("tkchat-conn-127.0.0.1:")]
    assert len(named) == 3 and server.thread_count() == 3
    server.stop()
    assert server.thread_count() == 0
    assert not any(t.is_alive() for t in named)


def test_the_error_guard_reads_teardown(tmp_path: Path) -> None:
    """A test whose fixture logs an ERROR while tearing down (where servers stop) fails."""
    (tmp_path / "test_inner.py").write_text(
        "import logging\n"
        "import pytest\n"
        "from tests.conftest import fail_on_logged_errors  # noqa: F401\n"
        "@pytest.fixture\n"
        "def stopping():\n"
        "    yield\n"
        "    logging.getLogger('server.app').error('did not stop')\n"
        "def test_inner(stopping):\n"
        "    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1, result.stdout
    assert "ERROR logged: did not stop" in result.stdout


# ------------------------------------------------------------------- files and fd limit
def _start_with_nofile(soft: int, hard: int, *args: str) -> ServerProcess:
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = ServerProcess("--port", "0", "--db", ":memory:", *args)
    proc.preexec = limit
    return proc.start()


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_a_low_open_files_limit_lowers_max_connections_and_says_so() -> None:
    proc = _start_with_nofile(256, 256, "--max-per-address", "0", "--address-rate", "0")
    socks: list[socket.socket] = []
    try:
        fits = (256 - FDS_RESERVED) // FDS_PER_CONNECTION  # 192: one fd per connection
        assert any(f"--max-connections lowered to {fits}" in line for line in proc.log), proc.log
        for _ in range(fits + 14):  # past the lowered limit: refused cleanly, no traceback
            socks.append(socket.create_connection(("127.0.0.1", proc.port), timeout=5))
        last = socks[-1].recv(4096)
        assert b"server_full" in last
        assert proc.stop() == 0
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
    assert not any("Too many open files" in line or "Traceback" in line for line in proc.log)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_the_soft_open_files_limit_is_raised_where_the_hard_limit_allows() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = 1000 * FDS_PER_CONNECTION + FDS_RESERVED  # the default --max-connections
    if hard != resource.RLIM_INFINITY and hard < need:
        hard_arg = hard
        expected = f"lowered to {(hard - FDS_RESERVED) // FDS_PER_CONNECTION}"
    else:
        hard_arg = hard
        expected = f"raised the open-files limit from 256 to {need}"
    proc = _start_with_nofile(256, hard_arg)
    try:
        assert any(expected in line for line in proc.log), proc.log
        assert proc.stop() == 0
    finally:
        proc.kill()


def test_a_db_under_a_regular_file_is_reported_as_such(tmp_path: Path) -> None:
    blocker = tmp_path / "notafolder"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--db", str(blocker / "h.sqlite3")],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{blocker} is a file, not a folder" in result.stderr
    assert "cannot listen" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_the_history_file_and_its_folder_are_private(tmp_path: Path) -> None:
    hosted = tmp_path / "hosted" / "history.sqlite3"  # the GUI's "Host a chat" way
    ChatServer(ServerConfig(host="127.0.0.1", port=0, db=str(hosted))).stop()
    assert stat.S_IMODE(hosted.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(hosted.stat().st_mode) == 0o600
    db = tmp_path / "new" / "deeper" / "history.sqlite3"
    assert prepare_db(str(db)) is None
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    proc = ServerProcess("--port", "0", "--db", str(db)).start()
    try:
        client = WireClient(proc.port)
        client.login("keeper")
        client.send("msg", "private")
        client.expect("message")
        client.close()
        assert proc.stop() == 0
    finally:
        proc.kill()
    for path in db.parent.iterdir():  # the -wal and -shm files too, if left
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_address_budgets_grow_with_max_per_address(
    make_server: MakeServer, clients: list[WireClient]
) -> None:
    """An operator who lets 300 people in from one address (an office behind NAT, a load
    test) with --max-per-address also lets their logins and messages in: the address's
    budgets are sized per allowed connection.  With the default 20 the same burst is cut."""
    assert ServerConfig(max_per_address=20).address_policy().request_burst == 400
    server = make_server(max_per_address=300, address_rate=None, login_rate=None)
    crowd = [log_in(server.port, f"user{i}", ATTACKER) for i in range(200)]
    clients.extend(crowd)
    for i, wire in enumerate(crowd):
        wire.send("msg", f"hello {i}")
        wire.send("msg", f"again {i}")
    # 200 logins and 400 messages from one address, past the default budgets (50 logins,
    # 400 requests at once): every message is stored, none refused.
    wait_for(lambda: server.store.count() == 400, timeout=20, what="all 400 messages stored")
    # The same from an address held to the default 20 is refused at the 21st connection.
    small = make_server(max_per_address=20, address_rate=None, login_rate=None)
    held = [WireClient(small.port, source=VICTIM) for _ in range(21)]
    clients.extend(held)
    assert answer(held[-1])["code"] == ErrorCode.TOO_MANY_CONNECTIONS


def test_a_reconnect_loop_from_one_address_writes_a_few_log_lines(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Connect and close 200 times from one address (under its cap): the log gets the first
    "connect from" and "disconnect" and then counts, not 400 lines (an attacker or a broken
    script must not be able to fill the disk with INFO lines either)."""
    caplog.set_level(logging.INFO, logger="server")
    server = make_server()
    for _ in range(200):
        wire = WireClient(server.port, source=ATTACKER)
        wire.send("ping")  # answered: the server has this connection's handler running
        assert wire.recv()["event"] == "pong"
        wire.close()
    wait_for(lambda: server.connection_count() == 0, what="every connection gone")
    server.warnings.flush(force=True)
    lines = [r.getMessage() for r in caplog.records if ATTACKER in r.getMessage()]
    firsts = [m for m in lines if m.startswith(f"connect from {ATTACKER}:")]
    counts = [int(m.split()[0]) for m in lines if f"more connections from {ATTACKER}" in m]
    assert len(firsts) + sum(counts) == 200, lines  # every connection counted ...
    assert len(firsts) + len(counts) <= 4, lines  # ... in a few lines
    victim = WireClient(server.port, source=VICTIM)
    try:
        victim.login("victim")  # another address is logged as usual
    finally:
        victim.close()
    assert any(f"connect from {VICTIM}:" in r.getMessage() for r in caplog.records)
