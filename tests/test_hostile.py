"""Hostile and broken clients against a real server over real sockets.

Each case runs while two bystanders chat (``tests/bystanders.py``) and ends by checking that they
got every message in order and that a newcomer can still log in and chat.  The answers checked
are the ones PROTOCOL.md gives: ``bad_request`` and the connection goes on for anything
malformed, ``too_large`` and a close past 64 KiB, ``login_timeout`` for connections that never
log in, a dropped connection for a reader that stops reading.  The autouse guard in conftest
also fails a case if the server logged an ERROR while it ran.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from common.decoder import StreamDecoder
from server.app import ChatServer
from tests.bystanders import Bystanders, fresh_client_can_chat, names_now
from tests.conftest import wait_for
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]


def _raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _wrap(sock: socket.socket) -> WireClient:
    """A WireClient reading from a socket this test opened and set up itself."""
    client = WireClient.__new__(WireClient)
    client.sock, client.pending, client.closed = sock, [], False
    client.decoder = StreamDecoder(16 * 1024 * 1024)
    return client


def _own_echo(client: WireClient, sender: str = "mallory") -> dict[str, Any]:
    """The next message ``sender`` sent, skipping the bystanders' traffic (bounded)."""
    for _ in range(10_000):
        obj = client.expect("message")
        if obj["sender"] == sender:
            return obj
    raise AssertionError(f"no message from {sender}")


def _next(client: WireClient, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next ``kind`` response, skipping the bystanders' messages and join/leave events;
    anything else on the way fails the test (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        obj = client.recv(max(0.01, deadline - time.monotonic()))
        if obj["response"] == kind and not obj.get("event"):
            return obj
        assert obj["response"] == "message" or obj.get("event"), obj


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _responses_until_help(client: WireClient) -> list[dict[str, Any]]:
    """Send ``help`` and return everything that came before its answer (bounded)."""
    client.send("help")
    before: list[dict[str, Any]] = []
    for _ in range(50):
        obj = client.recv()
        if obj.get("response") == "info" and "One JSON object per line" in str(obj.get("content")):
            return before
        before.append(obj)
    raise AssertionError(f"no help answer after {before}")


# ------------------------------------------------------------------ malformed input
GARBAGE: list[tuple[str, bytes, str]] = [
    ("truncated", b'{"request": "msg", "content": "half', "bad_request"),
    ("malformed", b'{"request": "msg" "content": "x"}', "bad_request"),
    ("trailing comma", b'{"request": "help",}', "bad_request"),
    ("array", b'["request", "help"]', "bad_request"),
    ("string", b'"help"', "bad_request"),
    ("number", b"12345", "bad_request"),
    ("null", b"null", "bad_request"),
    ("bare word", b"login alice", "bad_request"),
    ("request not a string", b'{"request": 5, "content": null}', "bad_request"),
    ("request missing", b'{"content": "hi"}', "bad_request"),
    ("content a list", b'{"request": "msg", "content": ["hi"]}', "bad_request"),
    ("content an object", b'{"request": "login", "content": {"name": "x"}}', "bad_request"),
    ("unknown request", b'{"request": "frobnicate", "content": null}', "unknown_request"),
    ("request case", b'{"request": "MSG", "content": "hi"}', "unknown_request"),
    ("invalid utf-8", b'{"request": "msg", "content": "\xff\xfe\xc3"}', "bad_request"),
    ("overlong utf-8", b'{"request": "msg", "content": "\xc0\xaf"}', "bad_request"),
    ("nul bytes", b"\x00\x00\x00", "bad_request"),
    ("nul in string", b'{"request": "msg", "content": "a\x00b"}', "bad_request"),
    ("raw escape in string", b'{"request": "msg", "content": "\x1b[2J"}', "bad_request"),
    ("control bytes", b"\x01\x02\x03\x7f\x1b[31m", "bad_request"),
    ("deep nesting", b'{"a": ' * 5000 + b"1" + b"}" * 5000, "bad_request"),
    ("lone surrogate", b'{"request": "msg", "content": "\\udc80"}', "bad_request"),
    ("huge number", b'{"request": "msg", "content": 1' + b"0" * 5000 + b"}", "bad_request"),
]


@pytest.mark.parametrize(("payload", "code"), [g[1:] for g in GARBAGE], ids=[g[0] for g in GARBAGE])
def test_garbage_gets_its_error_and_the_connection_goes_on(
    make_server: MakeServer, payload: bytes, code: str
) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        for _ in range(3):
            mallory.send_raw(payload + b"\n")
            errors = _responses_until_help(mallory)
            # the bystanders' messages and join/leave events come in between
            others = [e for e in errors if e["response"] != "error"]
            assert all(o["response"] == "message" or o.get("event") for o in others), others
            errors = [e for e in errors if e["response"] == "error"]
            assert errors, "no error for the bad request"
            assert all(e["response"] == "error" and e["code"] == code for e in errors), errors
            assert len(errors) == 1, f"one bad line, one error: {errors}"
            chat.wait_for_rounds(2)
        mallory.send("msg", "still here")
        assert _own_echo(mallory)["content"] == "still here"
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
    fresh_client_can_chat(server.port)


def test_escape_sequences_in_valid_json_are_stored_and_sent_escaped(
    make_server: MakeServer,
) -> None:
    server = make_server()
    nasty = "\u001b[2J\u001b]0;pwned\u0007\r\x08\x00\u202e tail"
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        chat.wait_for_rounds(2)
        mallory.send("msg", nasty)
        echo = _own_echo(mallory)
        assert echo["content"] == nasty
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
    for obj in chat.received[0]:
        assert obj["content"] != nasty  # bystanders keep only their own (order check above)
    carol = WireClient(server.port)
    carol.send("login", "carol", client="t/1")
    carol.expect("info")
    history = [json.loads(i) for i in carol.expect("history")["content"]]
    assert nasty in [h["content"] for h in history]
    carol.close()


def test_one_byte_per_send_and_many_requests_per_send(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    with Bystanders(server.port) as chat:
        sock = _raw(server.port)
        mallory = _wrap(sock)
        login = b'{"request": "login", "content": "mallory", "client": "t/1"}\n'
        text = "split \u00e9\u65e5\U0001f600 end"
        msg = json.dumps({"request": "msg", "content": text}, ensure_ascii=False).encode() + b"\n"
        for i in range(len(login)):
            sock.send(login[i : i + 1])
        mallory.expect("info")
        mallory.expect("history")
        for i in range(len(msg)):
            sock.send(msg[i : i + 1])
        assert _own_echo(mallory)["content"] == text
        chat.wait_for_rounds(2)
        # 500 requests in one write, mixing messages and other requests.
        burst = b"".join(
            json.dumps({"request": "msg", "content": f"burst {i}"}).encode()
            + (b'{"request": "names", "content": null}' if i % 50 == 0 else b"")
            for i in range(500)
        )
        sock.sendall(burst + b"\n")
        contents: list[str] = []
        names_answers = 0
        while len(contents) < 500:
            obj = mallory.recv()
            if obj["response"] == "message" and obj["sender"] == "mallory":
                contents.append(obj["content"])
            elif obj["response"] == "info" and "users" in obj:
                names_answers += 1
                # a names answer never overtakes an earlier message's echo
                assert len(contents) >= (names_answers - 1) * 50 + 1
        assert contents == [f"burst {i}" for i in range(500)]
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
        sock.close()
    fresh_client_can_chat(server.port)


@pytest.mark.parametrize("size", [1 << 20, 16 << 20], ids=["1MiB", "16MiB"])
def test_oversize_request_gets_too_large_then_close(make_server: MakeServer, size: int) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        body = b'{"request": "msg", "content": "' + b"a" * size + b'"}\n'

        def push() -> None:
            try:
                mallory.sock.sendall(body)
            except OSError:
                pass  # the server closed on us, as it should

        pusher = threading.Thread(target=push, daemon=True)
        pusher.start()
        chat.wait_for_rounds(2)
        error = _next(mallory, "error")
        assert error["code"] == "too_large"
        mallory.wait_closed(timeout=10.0)
        pusher.join(15.0)
        assert not pusher.is_alive()
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
    wait_for(lambda: "mallory" not in names_now(server.port), what="mallory gone")
    fresh_client_can_chat(server.port)


# --------------------------------------------------------------- connection abuse
def test_slowloris_half_sent_requests(make_server: MakeServer) -> None:
    server = make_server(login_timeout=1.0)
    with Bystanders(server.port) as chat:
        socks = [_raw(server.port) for _ in range(60)]
        for i, sock in enumerate(socks):
            sock.send(b'{"request": "login", "content": "slow' + str(i).encode())
        logged_in = [_raw(server.port) for _ in range(10)]
        for i, sock in enumerate(logged_in):
            sock.sendall(f'{{"request": "login", "content": "drip{i}", "client": "t"}}\n'.encode())
            sock.send(b'{"request": "msg", "content": "never fin')
        chat.wait_for_rounds(10)
        # Every one that never logged in gets login_timeout and is closed.
        for sock in socks:
            sock.settimeout(5.0)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert b'"login_timeout"' in data
            sock.close()
        chat.wait_for_rounds(5)
        chat.finish()
        for sock in logged_in:
            sock.close()
    fresh_client_can_chat(server.port)


def test_connection_flood_that_never_logs_in(make_server: MakeServer) -> None:
    server = make_server(login_timeout=1.0)
    with Bystanders(server.port) as chat:
        baseline = server.connection_count()
        socks = [_raw(server.port) for _ in range(300)]
        wait_for(lambda: server.connection_count() >= baseline + 300, what="flood admitted")
        chat.wait_for_rounds(5)
        # the login timeout sheds them all without help from the clients
        wait_for(lambda: server.connection_count() == baseline, timeout=10.0, what="flood shed")
        chat.wait_for_rounds(5)
        chat.finish()
        for sock in socks:
            sock.close()
    fresh_client_can_chat(server.port)


def test_resets_mid_request(make_server: MakeServer) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        for i in range(30):
            sock = _raw(server.port)
            if i % 2:
                login = {"request": "login", "content": f"rst{i}", "client": "t"}
                sock.sendall(json.dumps(login).encode() + b"\n")
                sock.send(b'{"request": "msg", "content": "cut sho')
            else:
                sock.send(b'{"request": "log')
            _reset(sock)
        chat.wait_for_rounds(5)
        wait_for(lambda: server.connection_count() == 2, what="reset connections gone")
        assert names_now(server.port) == ["alice", "bob"]
        chat.finish()
    fresh_client_can_chat(server.port)


def test_abrupt_disconnects_leave_names_promptly(make_server: MakeServer) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        ghosts = [WireClient(server.port) for _ in range(20)]
        for i, ghost in enumerate(ghosts):
            ghost.login(f"ghost{i}")
            ghost.send("msg", f"boo {i}")  # unread echoes pile up too
        for i, ghost in enumerate(ghosts):
            if i % 2:
                _reset(ghost.sock)
            else:
                ghost.sock.shutdown(socket.SHUT_RDWR)
                ghost.close()
        chat.wait_for_rounds(3)
        wait_for(lambda: names_now(server.port) == ["alice", "bob"], what="ghosts leave names")
        chat.wait_for_rounds(2)
        chat.finish()
    fresh_client_can_chat(server.port)


def test_reader_that_never_reads_while_others_send_20000(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0, max_queue_bytes=512 * 1024)
    sloth = socket.socket()
    sloth.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sloth.connect(("127.0.0.1", server.port))
    sloth.sendall(b'{"request": "login", "content": "sloth", "client": "t/1"}\n')
    total = 20_000
    pad = "x" * 300  # 20,000 messages then outgrow the sloth's kernel buffers (4 MiB here)
    alice, bob = WireClient(server.port), WireClient(server.port)
    alice.login("alice")
    bob.login("bob")
    got: dict[str, list[str]] = {"alice": [], "bob": []}

    def read(name: str, client: WireClient) -> None:
        deadline = time.monotonic() + 60
        while len(got[name]) < total and time.monotonic() < deadline:
            obj = client.recv(30.0)
            if obj["response"] == "message":
                got[name].append(obj["content"].split()[0])

    readers = [
        threading.Thread(target=read, args=(n, c), daemon=True)
        for n, c in (("alice", alice), ("bob", bob))
    ]
    for reader in readers:
        reader.start()
    for start in range(0, total, 500):
        sender = alice if start % 1000 == 0 else bob
        sender.send_raw(
            b"".join(
                json.dumps({"request": "msg", "content": f"m{i} {pad}"}).encode() + b"\n"
                for i in range(start, start + 500)
            )
        )
    for reader in readers:
        reader.join(70)
        assert not reader.is_alive()
    # one order for everyone; each sender's messages in the order sent; none lost
    assert got["alice"] == got["bob"]
    assert sorted(got["alice"]) == sorted(f"m{i}" for i in range(total))
    for first in (0, 500):
        mine = [int(c[1:]) for c in got["alice"] if (int(c[1:]) // 500) % 2 == first // 500]
        assert mine == sorted(mine)
    # the sloth's outbox overflowed: its connection was dropped and it left the room
    wait_for(lambda: "sloth" not in names_now(server.port), what="sloth dropped")
    sloth.close()
    alice.close()
    bob.close()
    fresh_client_can_chat(server.port)


# ------------------------------------------------------------------- names and identity
def test_twenty_sockets_racing_for_one_name(make_server: MakeServer) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        for round_ in range(3):
            socks = [_raw(server.port) for _ in range(20)]
            name = f"racer{round_}"
            spellings = [name, name.upper(), name.capitalize()]
            requests = [
                json.dumps({"request": "login", "content": spellings[i % 3], "client": "t"})
                for i in range(20)
            ]
            barrier = threading.Barrier(20)
            answers: list[str] = [""] * 20

            def race(
                i: int,
                sock: socket.socket,
                request: str,
                barrier: threading.Barrier,
                answers: list[str],
            ) -> None:
                barrier.wait(5.0)
                sock.sendall(request.encode() + b"\n")
                first = _wrap(sock).recv()
                answers[i] = first.get("code") or first["response"]

            threads = [
                threading.Thread(target=race, args=(i, s, r, barrier, answers))
                for i, (s, r) in enumerate(zip(socks, requests, strict=True))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            chat.wait_for_rounds(2)
            assert sorted(answers) == ["info"] + ["name_taken"] * 19, answers
            for sock in socks:
                sock.close()
        chat.finish()
    fresh_client_can_chat(server.port)


NAMES: list[tuple[str, Any, str]] = [
    ("empty", "", "invalid_username"),
    ("10000 chars", "a" * 10000, "invalid_username"),
    ("33 chars", "a" * 33, "invalid_username"),
    ("brackets", "[alice]", "invalid_username"),
    ("underscore", "al_ice", "invalid_username"),
    ("non-ascii", "b\u00f8b", "invalid_username"),
    ("cjk digits", "\u0663\u0664", "invalid_username"),
    ("embedded newline", "bob\nby", "invalid_username"),
    ("spaces", " bob ", "invalid_username"),
    ("nul", "bob\u0000", "invalid_username"),
    ("null", None, "bad_request"),
    ("number", 42, "bad_request"),
    ("list", ["bob"], "bad_request"),
    ("taken other case", "ALICE", "name_taken"),
]


@pytest.mark.parametrize(("name", "code"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_name_edge_cases(make_server: MakeServer, name: Any, code: str) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        chat.wait_for_rounds(2)
        client = WireClient(server.port)
        client.send("login", name, client="t/1")
        assert client.expect("error")["code"] == code
        client.login("Good" + "x" * 28)  # 32 characters: the longest valid name
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
        client.close()
    fresh_client_can_chat(server.port)


def test_client_supplied_sender_is_ignored(make_server: MakeServer) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        chat.wait_for_rounds(2)
        mallory.send("msg", "i am alice", sender="alice", user="alice", id=1, timestamp="x")
        echo = _own_echo(mallory)
        assert echo["sender"] == "mallory" and echo["id"] != 1
        mallory.send("msg", "from server", sender="server", response="info")
        assert _own_echo(mallory)["sender"] == "mallory"
        chat.wait_for_rounds(1)
        chat.finish(min_messages=3)
        mallory.close()
    # the bystanders saw mallory's messages under mallory's name (they skip others' messages
    # in their order check, so look at the history instead)
    carol = WireClient(server.port)
    carol.send("login", "carol", client="t/1")
    carol.expect("info")
    history = [json.loads(i) for i in carol.expect("history")["content"]]
    spoofed = [h for h in history if h["content"] in ("i am alice", "from server")]
    assert [h["sender"] for h in spoofed] == ["mallory", "mallory"]
    carol.close()


def test_nothing_is_sent_after_logout(make_server: MakeServer) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        # logout and a message in one write: the message must not go out
        mallory.send_raw(
            b'{"request": "logout", "content": null}\n'
            b'{"request": "msg", "content": "after logout"}\n'
        )
        assert _next(mallory, "info")["content"].startswith("Goodbye")
        mallory.wait_closed()
        try:
            mallory.send("msg", "after close")
        except OSError:
            pass
        chat.wait_for_rounds(5)
        chat.finish()
        for got in chat.received:
            assert all(m["sender"] in ("alice", "bob") for m in got)
    carol = WireClient(server.port)
    carol.send("login", "carol", client="t/1")
    carol.expect("info")
    history = [json.loads(i)["content"] for i in carol.expect("history")["content"]]
    assert "after logout" not in history and "after close" not in history
    carol.close()
    fresh_client_can_chat(server.port)


def test_replayed_nonces_after_a_drop_and_within_one_write_store_once(
    make_server: MakeServer,
) -> None:
    server = make_server()
    with Bystanders(server.port) as chat:
        mallory = WireClient(server.port)
        mallory.login("mallory")
        # the same nonce twice in one write: both land in one batch of the history writer
        request = json.dumps({"request": "msg", "content": "once", "nonce": "n1"}).encode()
        mallory.send_raw(request + b"\n" + request + b"\n")
        first, again = _own_echo(mallory), _own_echo(mallory)
        assert first == again
        chat.wait_for_rounds(2)
        _reset(mallory.sock)  # dropped; the user's nonce memory goes with the leave
        chat.wait_for_rounds(2)
        wait_for(lambda: "mallory" not in names_now(server.port), what="mallory gone")
        back = WireClient(server.port)
        back.login("Mallory")  # same user, any case
        back.send_raw(request + b"\n")
        assert _own_echo(back, "mallory")["id"] == first["id"]
        back.send("msg", "new", nonce="n2")
        assert _own_echo(back, "Mallory")["id"] > first["id"]
        chat.wait_for_rounds(1)
        chat.finish()
        back.close()
    carol = WireClient(server.port)
    carol.send("login", "carol", client="t/1")
    carol.expect("info")
    history = [json.loads(i)["content"] for i in carol.expect("history")["content"]]
    assert history.count("once") == 1
    carol.close()
