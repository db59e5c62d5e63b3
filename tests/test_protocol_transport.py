"""PROTOCOL.md, Transport: framing, split and packed reads, the 64 KiB limit, bad input.

Every test talks to a real in-process server over a real socket on 127.0.0.1, writing the
exact bytes a KTN program (or a careless one) would write.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from server.app import ChatServer
from tests.wire import WireClient

Connect = Callable[[], WireClient]


def req(request: str, content: str | None = None, **extra: object) -> bytes:
    """A request as bare ``json.dumps`` output, no newline (what KTN programs send)."""
    return json.dumps({"request": request, "content": content, **extra}).encode()


def assert_goes_on(client: WireClient) -> None:
    """The connection still works: a help request gets its info."""
    client.send("help")
    assert "help" in client.expect("info")["content"].lower()


def test_newline_separated_requests_each_get_an_answer(connect: Connect) -> None:
    client = connect()
    client.send_raw(req("help") + b"\n" + req("login", "alice", client="t/1") + b"\n")
    client.expect("info")
    assert client.expect("info")["users"] == ["alice"]
    client.expect("history")


def test_bare_back_to_back_objects_without_separator(connect: Connect) -> None:
    client = connect()
    client.send_raw(req("login", "alice", client="t/1") + req("msg", "one") + req("msg", "two"))
    client.expect("info")
    client.expect("history")
    assert client.expect("message")["content"] == "one"
    assert client.expect("message")["content"] == "two"


@pytest.mark.parametrize("sep", [b" ", b"\t", b"\r\n", b"\n\n\n", b" \t\r\n "])
def test_any_whitespace_between_objects(connect: Connect, sep: bytes) -> None:
    client = connect()
    client.send_raw(sep + req("help") + sep + req("help") + sep)
    client.expect("info")
    client.expect("info")


def test_request_split_byte_by_byte_across_reads(connect: Connect) -> None:
    client = connect()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = json.dumps(
        {"request": "login", "content": "alice", "client": "t/1"}, ensure_ascii=False
    ).encode() + json.dumps({"request": "msg", "content": "h\u00e9 \U0001f600"}).encode("utf-8")
    # Non-ASCII sent raw too, so a UTF-8 character is split between two writes.
    data += '{"request": "msg", "content": "\u4e2d\u6587 \U0001f600"}\n'.encode()
    for i in range(len(data)):
        client.send_raw(data[i : i + 1])
    client.expect("info")
    client.expect("history")
    assert client.expect("message")["content"] == "h\u00e9 \U0001f600"
    assert client.expect("message")["content"] == "\u4e2d\u6587 \U0001f600"


def test_many_requests_packed_into_one_write(connect: Connect) -> None:
    client = connect()
    client.send_raw(
        req("login", "alice", client="t/1")
        + b"\n"
        + b"".join(req("msg", f"m{i}") + b"\n" for i in range(50))
    )
    client.expect("info")
    client.expect("history")
    assert [client.expect("message")["content"] for _ in range(50)] == [f"m{i}" for i in range(50)]


def test_object_of_64_kib_is_accepted(connect: Connect) -> None:
    client = connect()
    head = b'{"request": "help", "content": null, "pad": "'
    tail = b'"}'
    body = head + b"x" * (64 * 1024 - len(head) - len(tail)) + tail
    assert len(body) == 64 * 1024
    client.send_raw(body + b"\n")
    client.expect("info")
    assert_goes_on(client)


@pytest.mark.parametrize("size", [64 * 1024 + 10, 1024 * 1024])
def test_more_than_64_kib_without_a_complete_object_is_too_large_and_closes(
    connect: Connect, size: int
) -> None:
    client = connect()
    client.send_raw(b'{"request": "msg", "content": "' + b"x" * size)
    error = client.expect("error")
    assert error["code"] == "too_large"
    client.wait_closed()


def test_complete_object_over_64_kib_in_one_read_is_too_large(connect: Connect) -> None:
    client = connect()
    client.send_raw(req("help", None, pad="y" * (70 * 1024)) + b"\n")
    assert client.expect("error")["code"] == "too_large"
    client.wait_closed()


BAD_LINES = [
    pytest.param(b"this is not json", id="not-json"),
    pytest.param(b'{"request": "help", "content": nul}', id="malformed-object"),
    pytest.param(b'{"request": "help", "content": [}]}', id="unbalanced-brackets"),
    pytest.param(b'{"request": "help"', id="truncated-at-newline"),
    pytest.param(b'{"request": "msg", "content": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"\xc3\x28", id="invalid-utf8-outside-object"),
    pytest.param(b'["help", null]', id="array"),
    pytest.param(b'"help"', id="string"),
    pytest.param(b"42", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b'{"content": null}', id="missing-request"),
    pytest.param(b'{"request": 7, "content": null}', id="request-not-string"),
    pytest.param(b'{"request": null, "content": null}', id="request-null"),
    pytest.param(b'{"request": "login", "content": 5}', id="content-not-string"),
    pytest.param(b'{"request": "login", "content": ["a"]}', id="content-list"),
    pytest.param(b'{"request": "login", "content": null}', id="login-content-null"),
    pytest.param(b'{"request": "login"}', id="login-content-missing"),
    pytest.param(b"{" + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-nesting"),
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_input_gets_one_bad_request_and_the_connection_goes_on(
    connect: Connect, line: bytes
) -> None:
    client = connect()
    client.send_raw(line + b"\n")
    assert client.expect("error")["code"] == "bad_request"
    # Exactly one error for one bad line: the very next answer is the help info.
    assert_goes_on(client)


@pytest.mark.parametrize("line", BAD_LINES[:4])
def test_bad_input_after_login_keeps_the_session(connect: Connect, line: bytes) -> None:
    client = connect()
    client.login("alice")
    client.send_raw(line + b"\n")
    assert client.expect("error")["code"] == "bad_request"
    client.send("msg", "still here")
    assert client.expect("message")["content"] == "still here"


def test_bad_bytes_are_skipped_up_to_the_next_newline(connect: Connect) -> None:
    client = connect()
    # The help on the bad line is part of the bad bytes; the one after the newline counts.
    client.send_raw(b"garbage " + req("help") + b"\n" + req("names") + b"\n")
    assert client.expect("error")["code"] == "bad_request"
    assert client.expect("error")["code"] == "not_logged_in"


def test_server_writes_each_response_followed_by_a_newline(server: ChatServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(req("help") + b"\n" + req("bogus") + b"\n")
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"\n") < 2 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        lines = data.split(b"\n")
        assert len(lines) == 3 and lines[2] == b"", data
        assert json.loads(lines[0])["response"] == "info"
        assert json.loads(lines[1])["code"] == "unknown_request"
    finally:
        sock.close()


@pytest.mark.parametrize("client", ["t/1", None], ids=["tkchat", "classic"])
def test_client_that_sends_then_half_closes_still_gets_every_answer(
    server: ChatServer, client: str | None
) -> None:
    """``printf '...' | nc host port``: all requests, then end of input, then read."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    login = req("login", "alice") if client is None else req("login", "alice", client=client)
    try:
        sock.sendall(login + b"\n" + req("msg", "bye") + b"\n" + req("names"))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        kinds = [json.loads(line)["response"] for line in data.splitlines()]
        assert kinds == ["info", "history", "message", "info"], data
    finally:
        sock.close()
