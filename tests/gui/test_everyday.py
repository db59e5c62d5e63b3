"""Smaller things met in everyday use: the input box grows with its text and shrinks after
sending, a paste too long for one message can go as several, File > Connect... while online
has a way back, Help > Server help reads as text, and a corrupt history file is named."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from common.protocol import MAX_MESSAGE_CHARS
from gui.input_box import MAX_LINES
from gui.long_message import split_text
from gui.session import State
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import (
    Person,
    answer_next_question,
    online,
    online_pair,
    screenshot,
    wait_until,
)


def _menu_index(menu: tk.Menu, label: str) -> int:
    for index in range(int(menu.index("end") or 0) + 1):
        if menu.type(index) != "separator" and menu.entrycget(index, "label") == label:
            return index
    raise AssertionError(f"no {label!r} in the menu")


def test_the_input_box_grows_with_its_text_and_shrinks_after_sending(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    box = alice.app.chat_view.input
    one_line = box.winfo_height()
    assert int(box.cget("height")) == 1
    alice.type_into(box, "first")
    for n in range(2):
        box.event_generate("<Shift-Return>")
        alice.type_into(box, f"line {n}", clear=False)
    root.update()
    assert int(box.cget("height")) == 3
    assert box.winfo_height() > one_line
    for n in range(6):
        box.event_generate("<Shift-Return>")
        alice.type_into(box, f"more {n}", clear=False)
    root.update()
    assert int(box.cget("height")) == MAX_LINES, "it stops growing and scrolls"
    screenshot(alice.top, ROOT / "test-output" / "tkchat-input-grown.png")
    assert box.bbox("insert") is not None, "the line being typed is in view"
    alice.press(box, "Return")
    wait_until(root, lambda: not alice.app.session.pending, "sent", (alice,))
    root.update()
    assert box.value == ""
    assert int(box.cget("height")) == 1
    assert box.winfo_height() == one_line, "back to one line after sending"


def test_a_paste_too_long_for_one_message_can_go_as_several(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    paragraph = "word " * 190 + "end of paragraph.\n"
    pasted = "".join(f"{n}: {paragraph}" for n in range(9))  # about 9,000 characters
    assert len(pasted) > 2 * MAX_MESSAGE_CHARS
    box = alice.app.chat_view.input
    box.insert("1.0", pasted)
    seen: list[str] = []
    answer_next_question(root, "Cancel", seen)
    alice.press(box, "Return")
    assert "one message holds at most 4,000" in seen[0], seen
    assert box.value == pasted, "Cancel keeps the text to shorten"
    assert not alice.app.session.pending
    parts = split_text(pasted)
    assert len(parts) == 3 and all(len(p) <= MAX_MESSAGE_CHARS for p in parts)
    answer_next_question(root, "Send as 3 messages", seen)
    alice.press(box, "Return")
    assert box.value == ""
    wait_until(root, lambda: "8: word" in bob.shown, "bob gets all of it", (alice, bob))
    wait_until(root, lambda: not alice.app.session.pending, "echoes", (alice, bob))
    shown = bob.shown
    order = [shown.index(f"{n}: word") for n in range(9)]
    assert order == sorted(order), "in the order pasted"
    # Each piece ends at a line break, so no paragraph is cut in two.
    assert all(p.endswith("end of paragraph.") for p in parts)


def test_file_connect_while_online_has_a_way_back(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    file_menu = alice.app.menus[1]
    file_menu.invoke(_menu_index(file_menu, "Connect…"))
    root.update()
    app = alice.app
    assert not app.chat_view.winfo_ismapped()
    assert app.back_button.winfo_ismapped()
    assert f"still in the chat at 127.0.0.1:{server.port} as alice" in str(
        app.back_label.cget("text")
    )
    alice.top.geometry("560x380")
    screenshot(alice.top, ROOT / "test-output" / "tkchat-connect-while-online-560x380.png")
    app.back_button.invoke()
    root.update()
    assert app.chat_view.winfo_ismapped() and alice.state is State.ONLINE
    file_menu.invoke(_menu_index(file_menu, "Connect…"))
    alice.press(app.connect_view.name_entry, "Escape")
    assert app.chat_view.winfo_ismapped(), "Escape goes back too"
    app.disconnect()
    root.update()
    assert not app.back_button.winfo_ismapped(), "no chat to go back to"


def test_server_help_reads_as_text(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    help_menu = alice.app.menus[3]
    help_menu.invoke(_menu_index(help_menu, "Server help"))
    wait_until(root, lambda: "logout" in alice.shown, "the help text", (alice,))
    shown = alice.shown[alice.shown.index("Help from the server") :]
    assert f"Help from the server at 127.0.0.1:{server.port}:" in shown
    assert "{" not in shown and '"request"' not in shown, shown
    assert "names — who is logged in" in shown


def test_a_corrupt_history_file_is_named(root: tk.Tk, tmp_path: Path) -> None:
    bad = tmp_path / "history.sqlite3"
    bad.write_bytes(b"not a database at all, " * 100)
    alice = Person(root, "alice", tmp_path, host_db=str(bad))
    try:
        alice.app.host_and_join("alice")
        assert str(bad) in alice.error, alice.error
        assert "cannot be read" in alice.error
    finally:
        alice.close()


def test_split_text_cuts_at_line_breaks_then_spaces_then_anywhere() -> None:
    assert split_text("short") == ["short"]
    assert split_text("x" * 10, limit=10) == ["x" * 10]
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5], "no space: hard cut"
    assert split_text("aaaa bbbb cccc dddd", limit=10) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("one two\nthree four five", limit=12) == ["one two", "three four", "five"]
    text = "🎈" * 9000
    parts = split_text(text)
    assert "".join(parts) == text and all(len(p) <= MAX_MESSAGE_CHARS for p in parts)
