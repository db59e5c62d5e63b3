"""The server goes away mid-chat and comes back on the same port: nothing typed is lost,
nothing is shown or stored twice, and history fills in without duplicates."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from gui.session import State
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, online, online_pair, screenshot, wait_until


def _stored_texts(server: ChatServer) -> list[str]:
    return [m.text for m in server.store.recent(1000)]


def test_server_restart_mid_chat_loses_nothing_typed(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    first = make_server(db=db)
    port = first.port
    alice, bob = online_pair(root, port, person)
    alice.say("before the restart")
    wait_until(root, lambda: "before the restart" in bob.shown, "first message", (alice, bob))
    # Sent just as the server stops: its echo may or may not come back before the close.
    alice.say("racing the shutdown")
    first.stop()
    wait_until(
        root,
        lambda: alice.state is not State.ONLINE and bob.state is not State.ONLINE,
        "both to notice",
        (alice, bob),
    )
    assert "Reconnecting" in alice.shown
    typed = ["while down one", "while down two 🎈", "while down three"]
    for text in typed:
        alice.say(text)
    assert len(alice.app.session.pending) >= 3
    assert alice.shown.count("(sending…)") >= 3
    screenshot(alice.top, ROOT / "test-output" / "tkchat-reconnecting.png")
    second = make_server(db=db, port=port)
    wait_until(root, online(alice, bob), "both back online", (alice, bob))
    wait_until(root, lambda: not alice.app.session.pending, "pending sent", (alice, bob))
    wait_until(root, lambda: typed[-1] in bob.shown, "bob to get them", (alice, bob))
    for text in ["before the restart", "racing the shutdown", *typed]:
        assert alice.shown.count(text) == 1, f"alice shows {text!r} once\n{alice.dump()}"
        assert bob.shown.count(text) == 1, f"bob shows {text!r} once\n{bob.dump()}"
        assert _stored_texts(second).count(text) == 1, f"{text!r} stored once"
    assert "(sending…)" not in alice.shown
    # Order on both screens is the server's order.
    order = [bob.shown.index(t) for t in typed]
    assert order == sorted(order)
    alice.say("after the restart")
    wait_until(root, lambda: "after the restart" in bob.shown, "chat goes on", (alice, bob))


def test_history_fills_in_without_duplicates(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    first = make_server(db=db)
    port = first.port
    alice = person("alice")
    alice.log_in(port)
    wait_until(root, online(alice), "alice online", (alice,))
    for n in range(3):
        alice.say(f"early {n}")
    wait_until(root, lambda: not alice.app.session.pending, "echoes", (alice,))
    bob = person("bob")
    bob.log_in(port)
    wait_until(root, lambda: "early 2" in bob.shown, "history for bob", (alice, bob))
    assert [bob.shown.count(f"early {n}") for n in range(3)] == [1, 1, 1]
    first.stop()
    wait_until(root, lambda: bob.state is State.WAITING, "bob waiting", (alice, bob))
    second = make_server(db=db, port=port)
    wait_until(root, online(alice, bob), "both back", (alice, bob))
    # Messages sent while bob was away arrive via his login history, once.
    alice.say("missed by nobody")
    wait_until(root, lambda: "missed by nobody" in bob.shown, "new message", (alice, bob))
    for who in (alice, bob):
        assert [who.shown.count(f"early {n}") for n in range(3)] == [1, 1, 1], who.dump()
    assert second.store.count() == 4


def test_messages_refused_for_rate_are_sent_again_exactly_once(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    """A burst past the server's rate limit: the refused messages stay pending, go out again
    after a pause, and each reaches bob exactly once, in the order typed."""
    server = make_server(rate_limit=4.0, rate_burst=2)
    alice, bob = online_pair(root, server.port, person)
    typed = [f"burst line {i}" for i in range(8)]
    for text in typed:
        alice.say(text)
    wait_until(root, lambda: "sending too fast" in alice.shown, "rate notice", (alice, bob))
    wait_until(root, lambda: not alice.app.session.pending, "all sent", (alice, bob), timeout=20.0)
    wait_until(root, lambda: typed[-1] in bob.shown, "bob to get them", (alice, bob))
    for text in typed:
        assert bob.shown.count(text) == 1, f"bob shows {text!r} once\n{bob.dump()}"
        assert _stored_texts(server).count(text) == 1, f"{text!r} stored once"
