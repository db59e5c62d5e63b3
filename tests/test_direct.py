"""Direct messages (PROTOCOL.md, Extensions, Direct messages) and who may have them back."""

from __future__ import annotations

from collections.abc import Callable

from server.app import ChatServer
from tests.conversations import contents, fence, prove
from tests.wire import WireClient

Connect = Callable[[], WireClient]


def _logged_in(connect: Connect, *names: str) -> list[WireClient]:
    clients = []
    for name in names:
        client = connect()
        client.login(name)
        clients.append(client)
    return clients


def test_a_direct_message_reaches_the_two_and_nobody_else(connect: Connect) -> None:
    alice, bob, carol = _logged_in(connect, "alice", "Bob", "carol")
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
    (alice,) = _logged_in(connect, "alice")
    alice.send("msg", "anyone?", to="nobody")
    assert alice.expect("error")["code"] == "no_such_user"
    alice.send("msg", "bad name", to="no body")
    assert alice.expect("error")["code"] == "no_such_user"
    alice.send("msg", "both", to="alice", room="dev")
    assert alice.expect("error")["code"] == "bad_request"
    assert server.store.count() == 0


def test_direct_messages_are_read_back_only_by_a_proven_login(
    server: ChatServer, connect: Connect
) -> None:
    alice, bob = _logged_in(connect, "alice", "bob")
    alice.send("msg", "secret plan", to="bob")
    first = alice.expect("message")
    bob.expect("message")
    bob.send("msg", "secret reply", to="alice")
    second = bob.expect("message")
    alice.expect("message")
    alice.send("history", **{"with": "bob"})
    refusal = alice.expect("error")
    assert refusal["code"] == "bad_request" and "registered" in refusal["content"]
    alice.send("search", "secret")
    assert alice.expect("history")["content"] == []  # not proven: own rooms only
    _, history = login_history(connect, "carol")
    assert "secret" not in str(history)  # never in any room's history
    prove(server, "alice")
    alice.send("history", **{"with": "BOB", "limit": 10})
    page = alice.expect("history")
    assert page["with"] == "BOB" and page["more"] is False and page["before"] is None
    assert contents(page) == [first, second]
    alice.send("search", "SECRET")
    assert contents(alice.expect("history", search="SECRET")) == [first, second]
    alice.send("search", "secret", room="general")  # one room: no direct messages
    assert alice.expect("history")["content"] == []


def login_history(connect: Connect, name: str) -> tuple[WireClient, str]:
    client = connect()
    client.send("login", name, client="t/1")
    client.expect("info")
    return client, str(client.expect("history")["content"])


def test_a_resent_nonce_does_not_hand_an_unregistered_names_words_to_its_next_owner(
    connect: Connect,
) -> None:
    alice, _ = _logged_in(connect, "alice", "bob")
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


def test_a_proven_user_gets_the_original_back_for_a_resent_nonce(
    server: ChatServer, connect: Connect
) -> None:
    (alice,) = _logged_in(connect, "alice")
    prove(server, "alice")
    alice.send("msg", "the first text", nonce="n")
    original = alice.expect("message")
    alice.send("logout")
    alice.wait_closed()
    again = connect()
    again.login("alice")
    prove(server, "alice")
    again.send("msg", "edited text", nonce="n")
    assert again.expect("message") == original
