"""Rooms (PROTOCOL.md, Extensions, Rooms) over real sockets against the real server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.app import ChatServer
from tests.conversations import contents, fence, join, logged_in, room_event
from tests.wire import WireClient

Connect = Callable[[], WireClient]
MakeServer = Callable[..., ChatServer]


def test_join_answers_joined_then_the_room_history_and_tells_only_its_members(
    connect: Connect,
) -> None:
    alice, bob, carol = logged_in(connect, "alice", "bob", "carol")
    joined, history = join(alice, "Dev")  # any case means the lower-case room
    assert joined["room"] == "dev" and joined["users"] == ["alice"]
    assert history["room"] == "dev" and history["content"] == []
    joined, _ = join(bob, "dev")
    assert joined["users"] == ["alice", "bob"]
    assert room_event(alice, "join", "dev")["user"] == "bob"
    alice.send("msg", "in dev", room="dev")
    for client in (alice, bob):
        message = client.expect("message")
        assert message["content"] == "in dev" and message["room"] == "dev"
    _, _, before = fence(alice, bob, carol)
    assert not [o for o in before if o.get("room") == "dev" or o.get("content") == "in dev"]


def test_room_history_and_one_id_sequence_across_rooms(connect: Connect) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    join(alice, "dev")
    alice.send("msg", "first in dev", room="dev")
    first = alice.expect("message")
    alice.send("msg", "in general")
    general = alice.expect("message")
    assert "room" not in general  # general's messages look as they always did
    alice.send("msg", "second in dev", room="dev")
    second = alice.expect("message")
    assert first["id"] < general["id"] < second["id"]
    _, history = join(bob, "dev")
    assert [m["content"] for m in contents(history)] == ["first in dev", "second in dev"]
    assert all(m["room"] == "dev" for m in contents(history))
    bob.send("names", room="dev")
    assert bob.expect("info")["users"] == ["alice", "bob"]


def test_part_answers_parted_tells_the_others_and_stops_the_room(connect: Connect) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    join(alice, "dev")
    join(bob, "dev")
    room_event(alice, "join", "dev")
    bob.send("part", "DEV")
    parted = bob.expect("info", event="parted")
    assert parted["room"] == "dev"
    assert room_event(alice, "leave", "dev")["user"] == "bob"
    bob.send("msg", "still here?", room="dev")
    assert bob.expect("error")["code"] == "not_in_room"
    bob.send("part", "dev")
    assert bob.expect("error")["code"] == "not_in_room"
    bob.send("part", "general")
    assert bob.expect("error")["code"] == "invalid_room"
    alice.send("msg", "after bob left", room="dev")
    alice.expect("message", content="after bob left")
    _, before = fence(alice, bob)
    assert not [o for o in before if o.get("content") == "after bob left"]


def test_bad_room_names_and_rooms_one_is_not_in(connect: Connect) -> None:
    (alice,) = logged_in(connect, "alice")
    for bad in ("", "-dev", "a b", "x" * 33, "d\u00e9v", None):
        alice.send("join", bad)
        assert alice.expect("error")["code"] == "invalid_room", bad
    alice.send("msg", "hi", room="no such room")
    assert alice.expect("error")["code"] == "invalid_room"
    alice.send("msg", "hi", room="elsewhere")
    assert alice.expect("error")["code"] == "not_in_room"
    alice.send("names", room="elsewhere")
    assert alice.expect("error")["code"] == "not_in_room"
    alice.send("msg", "hi", room="general")  # general by name is general
    assert "room" not in alice.expect("message", content="hi")


def test_rooms_lists_every_room_sorted_with_its_member_count(connect: Connect) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    join(alice, "zoo")
    join(alice, "dev")
    join(bob, "dev")
    join(bob, "empty")
    bob.send("part", "empty")
    bob.expect("info", event="parted")
    alice.send("rooms")
    answer = alice.expect("info")
    assert answer["rooms"] == [
        {"name": "dev", "users": 2},
        {"name": "empty", "users": 0},
        {"name": "general", "users": 2},
        {"name": "zoo", "users": 1},
    ]


def test_logging_out_leaves_every_room(connect: Connect) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    join(alice, "dev")
    join(bob, "dev")
    join(bob, "ops")
    bob.send("logout")
    bob.expect("info")
    assert room_event(alice, "leave", "dev")["user"] == "bob"
    assert room_event(alice, "leave", None)["user"] == "bob"
    alice.send("rooms")
    counts = {r["name"]: r["users"] for r in alice.expect("info")["rooms"]}
    assert counts == {"dev": 1, "general": 1, "ops": 0}


def test_a_classic_client_sees_exactly_the_classic_protocol(connect: Connect) -> None:
    classic = connect()
    classic.send("login", "carol")  # no "client": a classic KTN program
    classic.expect("info")
    classic.expect("history")
    alice, bob = logged_in(connect, "alice", "bob")
    join(alice, "dev")
    join(bob, "dev")
    alice.send("msg", "room talk", room="dev")
    alice.send("msg", "a word", to="bob")
    bob.send("part", "dev")
    alice.send("msg", "for all")
    _, _, seen = fence(alice, bob, classic)
    classic_keys = {"timestamp", "sender", "response", "content"}
    for obj in seen:
        if obj["response"] == "message":
            assert set(obj) == classic_keys | {"id"}, obj
        else:
            assert obj["response"] == "info" and obj.get("event") in ("join", "leave"), obj
            assert set(obj) == classic_keys | {"event", "user"}, obj
    assert [o["content"] for o in seen if o["response"] == "message"] == ["for all"]
    classic.send("join", "dev")
    assert classic.expect("error")["code"] == "invalid_room"
    alice.send("msg", "psst", to="carol")
    refusal = alice.expect("error")
    assert refusal["code"] == "no_such_user" and "cannot receive direct" in refusal["content"]


def test_rooms_and_their_messages_outlive_the_server_but_membership_does_not(
    make_server: MakeServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "chat.sqlite3")
    first = make_server(db=db)
    alice = WireClient(first.port)
    alice.login("alice")
    join(alice, "dev")
    alice.send("msg", "kept", room="dev")
    kept = alice.expect("message")
    alice.close()
    first.stop()
    second = make_server(db=db)
    bob = WireClient(second.port)
    try:
        bob.login("bob")
        bob.send("rooms")
        assert bob.expect("info")["rooms"] == [
            {"name": "dev", "users": 0},
            {"name": "general", "users": 1},
        ]
        bob.send("msg", "hi", room="dev")
        assert bob.expect("error")["code"] == "not_in_room"
        _, history = join(bob, "dev")
        assert contents(history) == [kept]
        bob.send("msg", "later", room="dev")
        assert bob.expect("message")["id"] > kept["id"]
    finally:
        bob.close()


def _raw_messages(texts_rooms: list[tuple[str, str]]) -> bytes:
    return b"".join(
        json.dumps({"request": "msg", "content": t, "room": r}).encode() + b"\n"
        for t, r in texts_rooms
    )


def _until(client: WireClient, text: str) -> list[dict[str, Any]]:
    """Messages received up to and with the one saying ``text``."""
    got: list[dict[str, Any]] = []
    for _ in range(10_000):
        obj = client.recv()
        if obj["response"] == "message":
            got.append(obj)
            if obj["content"] == text:
                return got
    raise AssertionError(f"{text!r} never came")


def test_a_member_of_two_rooms_hears_both_in_id_order_and_others_only_theirs(
    make_server: MakeServer,
) -> None:
    server = make_server(rate_limit=0)
    alice, bob, carol = (WireClient(server.port) for _ in range(3))
    try:
        for client, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.login(name)
        for client in (alice, bob):
            join(client, "dev")
            join(client, "ops")
        join(carol, "ops")
        said = [(f"m{i}", "dev" if i % 3 else "ops") for i in range(300)] + [("end", "ops")]
        alice.send_raw(_raw_messages(said))
        heard = _until(bob, "end")
        assert [(m["content"], m["room"]) for m in heard] == said
        ids = [m["id"] for m in heard]
        assert ids == sorted(ids)
        only_ops = _until(carol, "end")
        assert [m["content"] for m in only_ops] == [t for t, r in said if r == "ops"]
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_joining_while_a_room_is_busy_gives_each_message_exactly_once(
    make_server: MakeServer,
) -> None:
    server = make_server(rate_limit=0)
    alice, bob = WireClient(server.port), WireClient(server.port)
    try:
        alice.login("alice")
        bob.login("bob")
        join(alice, "dev")
        for round_ in range(3):
            said = [(f"r{round_} m{i}", "dev") for i in range(400)] + [(f"end {round_}", "dev")]
            alice.send_raw(_raw_messages(said))  # the room is busy while bob joins
            _, history = join(bob, "dev")
            live = _until(bob, f"end {round_}")
            ids = [m["id"] for m in contents(history)] + [m["id"] for m in live]
            assert ids == list(range(ids[0], ids[0] + len(ids))), "a gap or a repeat"
            bob.send("part", "dev")
            bob.expect("info", event="parted")
            _until(alice, f"end {round_}")
    finally:
        alice.close()
        bob.close()


def test_one_login_may_be_in_at_most_a_hundred_rooms(connect: Connect) -> None:
    (alice,) = logged_in(connect, "alice")
    for i in range(99):  # general is the first of the hundred
        join(alice, f"r{i}")
    alice.send("join", "one-more")
    refusal = alice.expect("error")
    assert refusal["code"] == "invalid_room" and "100 rooms" in refusal["content"]
    join(alice, "r5")  # one is in already: still answered
    alice.send("part", "r0")
    alice.expect("info", event="parted")
    assert join(alice, "one-more")[0]["room"] == "one-more"


def test_join_after_a_burst_answers_after_the_bursts_echoes(make_server: MakeServer) -> None:
    """``joined`` is queued under the room lock, so the handler settles before ``enter``:
    the answer follows the echoes of what the client sent before it, without a wait for the
    writer under that lock (which would stall every broadcast)."""
    server = make_server(rate_limit=0)
    alice = WireClient(server.port)
    try:
        alice.login("alice")
        burst = b"".join(
            json.dumps({"request": "msg", "content": f"b{i}"}).encode() + b"\n" for i in range(300)
        )
        alice.send_raw(burst + json.dumps({"request": "join", "content": "dev"}).encode() + b"\n")
        got = [alice.recv() for _ in range(302)]
        assert [o["content"] for o in got[:300]] == [f"b{i}" for i in range(300)]
        assert got[300]["event"] == "joined" and got[301]["response"] == "history"
    finally:
        alice.close()
