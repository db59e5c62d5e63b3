"""PROTOCOL.md, Requests: login, logout, msg, names, help, unknown requests, not_logged_in.

Each test drives a real in-process server over real sockets with raw KTN requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from common.protocol import InfoResponse, encode_response
from server.app import ChatServer
from server.config import ServerConfig
from server.handler import NAMES_IN_WORDS, in_words
from tests.conftest import ServerProcess
from tests.wire import WireClient

Connect = Callable[[], WireClient]
MakeServer = Callable[..., ChatServer]


def history_of(obj: dict[str, object]) -> list[dict[str, object]]:
    content = obj["content"]
    assert isinstance(content, list)
    return [json.loads(item) for item in content]


# ----------------------------------------------------------------------------- login
@pytest.mark.parametrize("name", ["a", "Z", "7", "A" * 32, "abcXYZ019", "0000"])
def test_login_accepts_1_to_32_ascii_letters_and_digits(connect: Connect, name: str) -> None:
    client = connect()
    client.send("login", name, client="t/1")
    info = client.expect("info")
    assert info["users"] == [name]
    client.expect("history")


@pytest.mark.parametrize(
    "name",
    ["", "A" * 33, "al ice", " alice", "alice\n", "ali-ce", "al_ice", "\u00e5lice", "\u0661\u0662"],
)
def test_login_rejects_other_names_with_invalid_username(connect: Connect, name: str) -> None:
    client = connect()
    client.send("login", name, client="t/1")
    assert client.expect("error")["code"] == "invalid_username"
    client.send("names")  # still not logged in, connection goes on
    assert client.expect("error")["code"] == "not_logged_in"


def test_names_are_unique_without_regard_to_case(connect: Connect) -> None:
    alice = connect()
    alice.login("Alice")
    other = connect()
    for name in ("Alice", "alice", "ALICE", "aLiCe"):
        other.send("login", name, client="t/1")
        assert other.expect("error")["code"] == "name_taken"
    alice.send("logout")
    alice.expect("info")
    alice.wait_closed()
    # Once Alice has gone, the name is free again (in any case).
    other.login("alice")


def test_login_answers_info_with_users_then_exactly_one_history(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.send("login", "bob", client="t/1")
    info = bob.recv()
    assert info["response"] == "info" and info["users"] == ["alice", "bob"]
    assert "event" not in info
    assert bob.recv()["response"] == "history"
    bob.send("help")
    assert bob.recv()["response"] == "info"  # no second history, no own join event


def test_join_event_goes_to_others_only(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    join = alice.recv()
    assert join["response"] == "info" and join["event"] == "join" and join["user"] == "bob"
    assert join["sender"] == "server"
    bob.send("help")
    reply = bob.recv()
    assert reply.get("event") is None and reply["response"] == "info"


def test_second_login_on_a_connection_is_already_logged_in(connect: Connect) -> None:
    client = connect()
    client.login("alice")
    for name in ("alice", "bob"):
        client.send("login", name, client="t/1")
        assert client.expect("error")["code"] == "already_logged_in"
    client.send("msg", "still alice")
    assert client.expect("message")["sender"] == "alice"


def test_password_checked_with_auth_failed(make_server: MakeServer) -> None:
    server = make_server(password="s3cret", login_delay_first=0.01, login_delay_max=0.02)
    client = WireClient(server.port)
    try:
        client.send("login", "alice", client="t/1")
        assert client.expect("error", field="server_password")["code"] == "auth_failed"
        for wrong in ("wrong", "s3cret ", 42, None, "\ud800"):
            client.send("login", "alice", client="t/1", server_password=wrong)
            assert client.expect("error")["code"] == "auth_failed", wrong
        # The server-wide password goes in "server_password"; "password" is the name's.
        client.send("login", "alice", client="t/1", password="s3cret")
        assert client.expect("error", field="server_password")["code"] == "auth_failed"
        client.send("login", "alice", client="t/1", server_password="s3cret")
        assert client.expect("info")["users"] == ["alice"]
        client.expect("history")
    finally:
        client.close()


# ----------------------------------------------------------------------------- logout
def test_logout_before_login_answers_info_then_closes(connect: Connect) -> None:
    client = connect()
    client.send("logout")
    assert client.recv()["response"] == "info"
    client.wait_closed()


def test_logout_after_login_answers_info_closes_and_others_hear_leave(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    alice.expect("info", event="join", user="bob")
    bob.send("logout")
    assert bob.recv()["response"] == "info"
    bob.wait_closed()
    leave = alice.recv()
    assert leave["response"] == "info" and leave["event"] == "leave" and leave["user"] == "bob"
    alice.send("names")
    assert alice.expect("info")["users"] == ["alice"]


def test_dropped_connection_counts_as_logout(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    alice.expect("info", event="join", user="bob")
    bob.close()
    alice.expect("info", event="leave", user="bob")
    again = connect()
    again.login("bob")  # the name is free again


# -------------------------------------------------------------------------------- msg
@pytest.mark.parametrize(
    "text", ["x", "y" * 4000, "  padded  ", "\u00e9\U0001f600\u4e2d", "line one\nline two"]
)
def test_msg_of_1_to_4000_characters_is_echoed(connect: Connect, text: str) -> None:
    client = connect()
    client.login("alice")
    client.send("msg", text)
    echo = client.expect("message")
    assert echo["content"] == text and echo["sender"] == "alice"


def test_msg_length_counts_characters_not_bytes(connect: Connect) -> None:
    client = connect()
    client.login("alice")
    client.send("msg", "\U0001f600" * 4000)  # 16,000 bytes of UTF-8, 4,000 characters
    assert client.expect("message")["content"] == "\U0001f600" * 4000
    client.send("msg", "\u00e9" * 4001)
    assert client.expect("error")["code"] == "bad_request"


@pytest.mark.parametrize(
    "text", ["", " ", "\n\t \r", "\u2003\u3000", "z" * 4001, None, "lone \udc80 surrogate"]
)
def test_msg_empty_whitespace_too_long_or_null_is_bad_request(
    connect: Connect, text: str | None
) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    alice.send("msg", text)
    assert alice.expect("error")["code"] == "bad_request"
    alice.send("msg", "after")
    assert alice.expect("message")["content"] == "after"
    assert bob.expect("message")["content"] == "after"  # the bad one reached nobody


def test_msg_goes_to_every_user_sender_included_in_one_order(connect: Connect) -> None:
    users = {name: connect() for name in ("alice", "bob", "carol")}
    for name, client in users.items():
        client.login(name)
    # Interleave senders; every user must see the same sequence, ids strictly increasing.
    for i in range(10):
        for name, client in users.items():
            client.send("msg", f"{name} {i}")
    seen = {}
    for name, client in users.items():
        got = [client.expect("message") for _ in range(30)]
        seen[name] = [(m["id"], m["sender"], m["content"]) for m in got]
    first = seen["alice"]
    assert seen["bob"] == first and seen["carol"] == first
    ids = [ident for ident, _, _ in first]
    assert ids == sorted(ids) and len(set(ids)) == 30
    for name in users:  # each sender's own messages in the order sent
        assert [c for _, s, c in first if s == name] == [f"{name} {i}" for i in range(10)]


def test_msg_before_login_is_not_logged_in(connect: Connect) -> None:
    client = connect()
    client.send("msg", "hello")
    assert client.expect("error")["code"] == "not_logged_in"
    client.login("alice")  # connection went on


def test_nonce_is_echoed_and_a_repeat_returns_the_original_to_the_sender_only(
    connect: Connect,
) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    alice.send("msg", "once", nonce="n-1")
    first = alice.expect("message")
    assert first["nonce"] == "n-1"
    assert bob.expect("message")["nonce"] == "n-1"
    alice.send("msg", "once", nonce="n-1")
    again = alice.expect("message")
    assert again == first  # same id, timestamp, everything: the original
    alice.send("msg", "marker")
    assert alice.expect("message")["content"] == "marker"
    assert bob.expect("message")["content"] == "marker"  # bob never got the repeat
    carol = WireClient(alice.sock.getpeername()[1])
    try:
        carol.send("login", "carol", client="t/1")
        carol.expect("info")
        texts = [m["content"] for m in history_of(carol.expect("history"))]
        assert texts == ["once", "marker"]  # stored once
    finally:
        carol.close()


def test_nonce_belongs_to_its_user(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.login("alice")
    bob.login("bob")
    alice.send("msg", "from alice", nonce="same")
    a = alice.expect("message")
    bob.expect("message")
    bob.send("msg", "from bob", nonce="same")
    b = bob.expect("message")
    assert b["id"] > a["id"] and b["sender"] == "bob"


@pytest.mark.parametrize("nonce", ["n" * 65, 12, ["x"], {"a": 1}, "\ud800"])
def test_bad_nonce_is_bad_request(connect: Connect, nonce: object) -> None:
    client = connect()
    client.login("alice")
    client.send("msg", "hi", nonce=nonce)
    assert client.expect("error")["code"] == "bad_request"
    client.send("msg", "hi", nonce="n" * 64)
    assert client.expect("message")["nonce"] == "n" * 64


def test_nonce_is_remembered_over_the_last_1000_messages(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    alice = WireClient(server.port)
    try:
        alice.login("alice")
        alice.send("msg", "tagged", nonce="keep")
        original = alice.expect("message")
        batch = b"".join(
            json.dumps({"request": "msg", "content": f"m{i}"}).encode() + b"\n" for i in range(999)
        )
        alice.send_raw(batch)
        for _ in range(999):
            alice.expect("message")
        alice.send("msg", "tagged", nonce="keep")  # "keep" is the 1,000th newest: a repeat
        assert alice.expect("message")["id"] == original["id"]
        alice.send("msg", "one more")
        alice.expect("message")
        alice.send("msg", "tagged", nonce="keep")  # now 1,001st: forgotten, a new message
        fresh = alice.expect("message")
        assert fresh["id"] > original["id"] and fresh["nonce"] == "keep"
    finally:
        alice.close()


def test_nonce_repeat_is_recognised_after_a_server_restart(
    server_process: Callable[..., ServerProcess], tmp_path: object
) -> None:
    db = f"{tmp_path}/chat.sqlite3"
    first = server_process("--port", "0", "--db", db)
    alice = WireClient(first.port)
    alice.login("alice")
    alice.send("msg", "resend me", nonce="abc")
    original = alice.expect("message")
    alice.close()
    assert first.stop() == 0
    second = server_process("--port", "0", "--db", db)
    alice = WireClient(second.port)
    try:
        alice.send("login", "ALICE", client="t/1")  # same user, any case
        alice.expect("info")
        assert len(history_of(alice.expect("history"))) == 1
        alice.send("msg", "resend me", nonce="abc")
        assert alice.expect("message")["id"] == original["id"]
        alice.send("msg", "new")
        alice.expect("message")
        bob = WireClient(second.port)
        bob.send("login", "bob", client="t/1")
        bob.expect("info")
        assert [m["content"] for m in history_of(bob.expect("history"))] == ["resend me", "new"]
        bob.close()
    finally:
        alice.close()
    assert second.stop() == 0


# ------------------------------------------------------------------ names, help, other
def test_names_lists_users_in_words_and_sorted(connect: Connect) -> None:
    clients = {name: connect() for name in ("mallory", "Bob", "alice", "zed9")}
    for name, client in clients.items():
        client.login(name)
    me = clients["mallory"]
    me.send("names")
    info = me.expect("info")
    assert info["users"] == sorted(clients)
    assert info["sender"] == "server"
    for name in clients:
        assert name in info["content"]


def test_names_in_a_crowd_stay_within_the_object_limit(connect: Connect) -> None:
    """60 users: every name in "users", the text cut short; and the largest room the default
    connection limit allows (1,000 names of 32 letters) still answers in one 64 KiB object."""
    names = [f"{i:02d}" + "n" * 30 for i in range(60)]
    clients = [connect() for _ in names]
    for name, client in zip(names, clients, strict=True):
        client.login(name)
    clients[0].send("names")
    info = clients[0].expect("info")
    assert info["users"] == sorted(names)
    assert info["content"].endswith(f"and {60 - NAMES_IN_WORDS} more (60 in all)")
    crowd = sorted(f"{i:04d}" + "x" * 28 for i in range(ServerConfig().max_connections))
    for text in (f"Users in the chat: {in_words(crowd)}", f"Online: {in_words(crowd)}"):
        assert len(encode_response(InfoResponse(text, users=tuple(crowd)))) <= 64 * 1024


def test_names_before_login_is_not_logged_in(connect: Connect) -> None:
    client = connect()
    client.send("names")
    assert client.expect("error")["code"] == "not_logged_in"


@pytest.mark.parametrize("logged_in", [False, True])
def test_help_works_before_and_after_login(connect: Connect, logged_in: bool) -> None:
    client = connect()
    if logged_in:
        client.login("alice")
    client.send("help")
    info = client.expect("info")
    for word in ("login", "msg", "names", "help", "logout"):
        assert word in info["content"]


@pytest.mark.parametrize("request_name", ["shout", "LOGIN", "Msg", "", "history2", "x" * 500])
@pytest.mark.parametrize("logged_in", [False, True])
def test_unknown_request_is_unknown_request_and_goes_on(
    connect: Connect, request_name: str, logged_in: bool
) -> None:
    client = connect()
    if logged_in:
        client.login("alice")
    client.send(request_name, "x")
    assert client.expect("error")["code"] == "unknown_request"
    client.send("help")
    client.expect("info")
