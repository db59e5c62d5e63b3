"""End-to-end basics against a real server: login, chat, history, restart persistence."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import ServerProcess
from tests.wire import WireClient


def test_two_clients_chat_and_a_late_third_sees_history(
    connect: Callable[[], WireClient],
) -> None:
    alice, bob = connect(), connect()
    assert alice.login("alice")["users"] == ["alice"]
    assert bob.login("bob")["users"] == ["alice", "bob"]
    alice.expect("info", event="join", user="bob")
    alice.send("msg", "hello bob")
    echo = alice.expect("message", sender="alice", content="hello bob")
    got = bob.expect("message", sender="alice", content="hello bob")
    assert echo["id"] == got["id"]
    carol = connect()
    carol.send("login", "carol", client="test/1.0")
    carol.expect("info")
    history = carol.expect("history")
    assert [item["content"] for item in map(json.loads, history["content"])] == ["hello bob"]


def test_history_and_ids_survive_a_restart(
    server_process: Callable[..., ServerProcess], tmp_path: object
) -> None:
    db = f"{tmp_path}/chat.sqlite3"
    first = server_process("--port", "0", "--db", db)
    alice = WireClient(first.port)
    alice.login("alice")
    alice.send("msg", "before restart")
    before = alice.expect("message")
    assert first.stop() == 0
    second = server_process("--port", "0", "--db", db)
    bob = WireClient(second.port)
    bob.send("login", "bob", client="test/1.0")
    bob.expect("info")
    history = bob.expect("history")
    assert [json.loads(i)["id"] for i in history["content"]] == [before["id"]]
    bob.send("msg", "after restart")
    assert bob.expect("message")["id"] > before["id"]
    assert second.stop() == 0
