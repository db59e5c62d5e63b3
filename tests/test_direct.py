"""Direct messages (PROTOCOL.md, Extensions, Direct messages) and who may have them back."""

from __future__ import annotations

from collections.abc import Callable

from server.app import ChatServer
from tests.conversations import contents, fence, logged_in, login_proven, register
from tests.wire import WireClient

Connect = Callable[[], WireClient]


def test_a_direct_message_reaches_the_two_and_nobody_else(connect: Connect) -> None:
    alice, bob, carol = logged_in(connect, "alice", "Bob", "carol")
    alice.send("msg", "just for you", to="bob", nonce="d1")  # any case finds Bob
    echo = alice.expect("message")
    assert echo["to"] == "Bob" and echo["content"] == "just for you" and echo["nonce"] == "d1"
    assert "room" not in echo
    assert bob.expect("message") == echo
    _, _, before = fence(alice, bob, carol)
    assert not [o for o in before if o.get("content") == "just for you"]


def test_a_direct_message_to_someone_offline_is_refused_and_not_stored(
    server: ChatServer, connect: Connect
) -> None:
    (alice,) = logged_in(connect, "alice")
    alice.send("msg", "anyone?", to="nobody")
    assert alice.expect("error")["code"] == "no_such_user"
    alice.send("msg", "bad name", to="no body")
    assert alice.expect("error")["code"] == "no_such_user"
    alice.send("msg", "both", to="alice", room="dev")
    assert alice.expect("error")["code"] == "bad_request"
    assert server.store.count() == 0


def test_direct_messages_are_read_back_only_by_a_proven_login(connect: Connect) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    alice.send("msg", "secret before registering", to="bob")
    alice.expect("message")
    bob.expect("message")
    alice.send("history", **{"with": "bob"})
    refusal = alice.expect("error")
    assert refusal["code"] == "bad_request" and "registered" in refusal["content"]
    alice.send("search", "secret")
    assert alice.expect("history")["content"] == []  # not proven: own rooms only
    register(alice)
    register(bob)
    alice.send("msg", "secret plan", to="bob")
    first = alice.expect("message")
    bob.expect("message")
    bob.send("msg", "secret reply", to="alice")
    second = bob.expect("message")
    alice.expect("message")
    _, history = login_history(connect, "carol")
    assert "secret" not in history  # never in any room's history
    alice.send("history", **{"with": "BOB", "limit": 10})
    page = alice.expect("history")
    assert page["with"] == "BOB" and page["more"] is False and page["before"] is None
    # What alice said before her name was registered stays live-only: whoever registers a
    # name need not be who used it before.
    assert contents(page) == [first, second]
    alice.send("search", "SECRET")
    assert contents(alice.expect("history", search="SECRET")) == [first, second]
    alice.send("search", "secret", room="general")  # one room: no direct messages
    assert alice.expect("history")["content"] == []


def test_registering_a_name_does_not_hand_over_its_earlier_direct_messages(
    connect: Connect,
) -> None:
    alice, bob = logged_in(connect, "alice", "bob")
    register(bob)
    bob.send("msg", "for alice's eyes", to="alice")
    bob.expect("message")
    alice.expect("message")
    alice.send("logout")
    alice.wait_closed()
    mallory = connect()
    mallory.login("alice")  # the name was never registered: anyone may take it
    register(mallory)
    mallory.send("history", **{"with": "bob"})
    assert mallory.expect("history")["content"] == []
    mallory.send("search", "eyes")
    assert mallory.expect("history")["content"] == []
    bob.send("history", **{"with": "alice"})  # bob sent it proven: it is his to read back
    assert [m["content"] for m in contents(bob.expect("history"))] == ["for alice's eyes"]


def login_history(connect: Connect, name: str) -> tuple[WireClient, str]:
    client = connect()
    client.send("login", name, client="t/1")
    client.expect("info")
    return client, str(client.expect("history")["content"])


def test_a_resent_nonce_does_not_hand_an_unregistered_names_words_to_its_next_owner(
    connect: Connect,
) -> None:
    alice, _ = logged_in(connect, "alice", "bob")
    alice.send("msg", "for bob only", to="bob", nonce="1")
    private = alice.expect("message")
    alice.send("msg", "said in general", nonce="2")
    public = alice.expect("message")
    alice.send("logout")
    alice.expect("info")
    alice.wait_closed()
    mallory = connect()
    mallory.login("Alice")  # the name is free again: anyone may take it
    # The very same message resent (a reconnect) is still recognised: it tells nothing new.
    mallory.send("msg", "for bob only", to="bob", nonce="1")
    assert mallory.expect("message")["id"] == private["id"]
    mallory.send("msg", "guessing", to="bob", nonce="1")
    got = mallory.expect("message")
    assert got["content"] == "guessing" and got["id"] > public["id"]
    mallory.send("msg", "guessing again", nonce="2")
    got = mallory.expect("message")
    assert got["content"] == "guessing again" and got["id"] > public["id"]


def test_a_proven_user_gets_the_original_back_for_a_resent_nonce(connect: Connect) -> None:
    (alice,) = logged_in(connect, "alice")
    register(alice)
    alice.send("msg", "the first text", nonce="n")
    original = alice.expect("message")
    alice.send("logout")
    alice.wait_closed()
    again = connect()
    login_proven(again, "alice")
    again.send("msg", "edited text", nonce="n")
    assert again.expect("message") == original
