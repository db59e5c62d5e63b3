"""Closing the window: unsent messages are asked about (kept for the next start with the same
server and name, or dropped), and a hosted chat others are in is not ended without asking."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from gui import outbox
from gui.session import State
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, answer_next_question, online, wait_until

OUTPUT = ROOT / "test-output"


def _offline_with_unsent(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person], db: str
) -> tuple[Person, int]:
    server = make_server(db=db)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    server.stop()
    wait_until(root, lambda: alice.state is not State.ONLINE, "offline", (alice,))
    for text in ("unsent one", "unsent two ✈"):
        alice.say(text)
    assert len(alice.app.session.pending) == 2
    return alice, server.port


def test_quitting_with_unsent_messages_asks_and_keeps_them_for_next_time(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    alice, port = _offline_with_unsent(root, make_server, person, db)
    seen: list[str] = []
    answer_next_question(root, "Cancel", seen, OUTPUT / "tkchat-quit-unsent.png")
    alice.app.quit()
    assert seen and "2 messages you typed are not sent yet" in seen[0], seen
    assert f"127.0.0.1:{port} as alice" in seen[0]
    assert alice.top.winfo_exists(), "Cancel keeps the window"
    answer_next_question(root, "Keep and quit", seen)
    alice.app.quit()
    assert not alice.top.winfo_exists()
    assert outbox.count(alice.app.config_dir) == 2
    # The next start, same server and name: they show as pending and go out once.
    server = make_server(db=db, port=port)
    again = person("alice")
    assert again.app.config_dir == alice.app.config_dir
    again.log_in(port)
    wait_until(root, online(again), "online again", (again,))
    wait_until(root, lambda: not again.app.session.pending, "kept messages sent", (again,))
    stored = [m.text for m in server.store.recent(100)]
    assert stored.count("unsent one") == 1 and stored.count("unsent two ✈") == 1, stored
    assert again.shown.count("unsent one") == 1
    assert outbox.count(again.app.config_dir) == 0, "taken from the file"


def test_discarding_unsent_messages_on_quit_drops_them(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    alice, _port = _offline_with_unsent(root, make_server, person, ":memory:")
    seen: list[str] = []
    answer_next_question(root, "Discard and quit", seen)
    alice.app.quit()
    assert "lost" in seen[0]
    assert not alice.top.winfo_exists()
    assert outbox.count(alice.app.config_dir) == 0


def test_closing_a_hosted_chat_others_are_in_asks_first(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.app.host_and_join("alice")
    wait_until(root, online(alice), "hosting", (alice,))
    hosted = alice.app.host.server
    assert hosted is not None
    bob, carol = person("bob"), person("carol")
    bob.log_in(hosted.port, tls=True)  # a hosted chat speaks TLS
    carol.log_in(hosted.port, tls=True)
    wait_until(root, online(bob, carol), "guests online", (alice, bob, carol))
    seen: list[str] = []
    where: list[tuple[int, int]] = []
    answer_next_question(root, "Cancel", seen, OUTPUT / "tkchat-quit-hosting.png", where)
    alice.app.quit()
    top = alice.top
    x, y = where[0]
    assert top.winfo_rootx() < x < top.winfo_rootx() + top.winfo_width() // 2, "centred"
    assert top.winfo_rooty() < y < top.winfo_rooty() + top.winfo_height() // 2
    assert seen == [
        "3 people are in this chat; closing ends it. bob, carol will be disconnected, and "
        "the chat is gone until someone hosts it again."
    ]
    assert alice.top.winfo_exists() and alice.app.host.server is hosted, "Cancel keeps hosting"
    # Closing must not wait 2 s on a guest whose connection was reset (bench/quit_bench.py).
    assert hosted.server.config.shutdown_flush_seconds < 0.5
    answer_next_question(root, "Close the chat", seen)
    alice.app.quit()
    assert not alice.top.winfo_exists()
    wait_until(root, lambda: bob.state is not State.ONLINE, "bob sees it end", (bob, carol))


def test_closing_with_nothing_to_lose_does_not_ask(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.app.host_and_join("alice")
    wait_until(root, online(alice), "hosting alone", (alice,))
    seen: list[str] = []
    stop = answer_next_question(root, "Cancel", seen)  # if it asked, Cancel keeps the window
    alice.app.quit()
    stop()
    assert seen == []
    assert not alice.top.winfo_exists()


def test_kept_messages_are_per_server_and_name_and_a_damaged_file_is_ignored(
    tmp_path: Path,
) -> None:
    first = ("n1", "to the first", "#dev")
    outbox.keep(tmp_path, "chat.example.org", 9998, "Alice", [first])
    outbox.keep(tmp_path, "chat.example.org", 9999, "alice", [("n2", "to the second", "@bob")])
    outbox.keep(tmp_path, "chat.example.org", 9998, "alice", [first])
    assert outbox.count(tmp_path) == 2, "the same nonce is kept once"
    assert outbox.take(tmp_path, "chat.example.org", 9998, "ALICE") == [first]
    assert outbox.take(tmp_path, "chat.example.org", 9998, "alice") == [], "taken once"
    assert outbox.take(tmp_path, "chat.example.org", 9999, "bob") == []
    assert outbox.count(tmp_path) == 1
    path = tmp_path / outbox.OUTBOX_FILE
    path.write_text('{"a@h:1": [{"nonce": "n3", "text": "older file"}]}', encoding="utf-8")
    assert outbox.take(tmp_path, "h", 1, "a") == [("n3", "older file", "#general")]
    (tmp_path / outbox.OUTBOX_FILE).write_text("{not json", encoding="utf-8")
    assert outbox.take(tmp_path, "chat.example.org", 9999, "alice") == []
