"""PROTOCOL.md, Responses: the four keys, timestamps, senders, codes, ids and history items."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from server.app import ChatServer
from tests.conftest import ServerProcess
from tests.wire import WireClient

Connect = Callable[[], WireClient]
MakeServer = Callable[..., ChatServer]
ISO_MS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def check_envelope(obj: dict[str, Any], response: str, sender: str) -> None:
    """The four keys every response has, with a fresh ISO 8601 UTC millisecond timestamp."""
    assert obj["response"] == response, obj
    assert obj["sender"] == sender, obj
    assert "content" in obj, obj
    stamp = obj["timestamp"]
    assert isinstance(stamp, str) and ISO_MS_Z.fullmatch(stamp), stamp
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5), stamp


def fill(port: int, count: int, size: int, name: str = "filler") -> list[dict[str, Any]]:
    """Post ``count`` messages of ``size`` characters; return their echoes."""
    client = WireClient(port)
    try:
        client.login(name)
        client.send_raw(
            b"".join(
                json.dumps({"request": "msg", "content": f"{i:05d}" + "m" * (size - 5)}).encode()
                + b"\n"
                for i in range(count)
            )
        )
        return [client.expect("message") for _ in range(count)]
    finally:
        client.close()


def login_history(port: int, name: str, client: str | None = "t/1") -> list[dict[str, Any]]:
    wire = WireClient(port)
    try:
        extra = {} if client is None else {"client": client}
        wire.send("login", name, **extra)
        wire.expect("info")
        history = wire.expect("history")
        items = history["content"]
        assert all(isinstance(item, str) for item in items), items
        return [json.loads(item) for item in items]
    finally:
        wire.close()


def test_every_response_kind_has_the_envelope(connect: Connect) -> None:
    alice, bob = connect(), connect()
    alice.send("bogus")
    error = alice.expect("error")
    check_envelope(error, "error", "server")
    assert isinstance(error["code"], str) and isinstance(error["content"], str)
    alice.send("help")
    check_envelope(alice.expect("info"), "info", "server")
    alice.send("login", "alice", client="t/1")
    check_envelope(alice.expect("info"), "info", "server")
    check_envelope(alice.expect("history"), "history", "server")
    bob.login("bob")
    join = alice.recv()
    check_envelope(join, "info", "server")
    assert (join["event"], join["user"]) == ("join", "bob")
    alice.send("msg", "hi")
    message = alice.expect("message")
    check_envelope(message, "message", "alice")
    assert message["content"] == "hi"
    assert isinstance(message["id"], int) and not isinstance(message["id"], bool)
    assert "nonce" not in message  # only where the request had one
    alice.send("names")
    names = alice.expect("info")
    check_envelope(names, "info", "server")
    assert names["users"] == ["alice", "bob"]


def test_message_sender_keeps_the_case_the_user_logged_in_with(connect: Connect) -> None:
    client = connect()
    client.login("AlIcE")
    client.send("msg", "x")
    assert client.expect("message")["sender"] == "AlIcE"


def test_ids_strictly_increase(connect: Connect) -> None:
    client = connect()
    client.login("alice")
    ids = []
    for i in range(20):
        client.send("msg", f"n{i}")
        ids.append(client.expect("message")["id"])
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_history_items_are_json_strings_of_message_objects_oldest_first(
    server: ChatServer,
) -> None:
    echoes = fill(server.port, 5, 20)
    items = login_history(server.port, "reader")
    assert items == echoes  # the same objects, in the same (oldest first) order
    for item in items:
        check_envelope(item, "message", "filler")
        assert isinstance(item["id"], int)


def test_history_is_the_last_100_by_default(make_server: MakeServer) -> None:
    server = make_server(rate_limit=0)
    echoes = fill(server.port, 130, 10)
    items = login_history(server.port, "reader")
    assert [i["id"] for i in items] == [e["id"] for e in echoes[-100:]]


def test_history_size_flag(server_process: Callable[..., ServerProcess], tmp_path: object) -> None:
    proc = server_process("--port", "0", "--db", f"{tmp_path}/h.db", "--history-size", "7")
    echoes = fill(proc.port, 12, 10)
    items = login_history(proc.port, "reader")
    assert [i["id"] for i in items] == [e["id"] for e in echoes[-7:]]
    assert proc.stop() == 0


def test_empty_history_is_still_sent_as_an_empty_list(connect: Connect) -> None:
    client = connect()
    client.send("login", "first", client="t/1")
    client.expect("info")
    assert client.expect("history")["content"] == []


def test_ids_and_history_carry_on_across_restarts(
    server_process: Callable[..., ServerProcess], tmp_path: object
) -> None:
    db = f"{tmp_path}/chat.sqlite3"
    seen: list[int] = []
    for round_ in range(3):
        proc = server_process("--port", "0", "--db", db)
        seen += [e["id"] for e in fill(proc.port, 3, 10, name=f"r{round_}")]
        assert proc.stop() == 0
    assert all(a < b for a, b in itertools.pairwise(seen))
    proc = server_process("--port", "0", "--db", db)
    assert [i["id"] for i in login_history(proc.port, "reader")] == seen
    assert proc.stop() == 0


def test_history_size_0_still_answers_with_one_empty_history(make_server: MakeServer) -> None:
    server = make_server(history_size=0)
    fill(server.port, 3, 10)
    assert login_history(server.port, "reader") == []
