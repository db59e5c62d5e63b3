"""The chat window at everyday sizes: the input box, Send and the status line stay on screen
in small windows, joining a busy chat shows the newest line, a resize at the bottom stays at
the bottom, and "New messages" goes to the first unread line first."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

import pytest

from gui import theme
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, fully_shown, online, screenshot, set_size, wait_until
from tests.wire import WireClient

OUTPUT = ROOT / "test-output"
SIZES = ("560x380", "980x560", "1280x450")


def fill_history(port: int, count: int, prefix: str = "history") -> None:
    """``count`` messages from ``carol`` stored on the server (and echoed back to her)."""
    sender = WireClient(port)
    try:
        sender.login("carol")
        for n in range(count):
            sender.send("msg", f"{prefix} {n} " + "words to wrap " * (n % 4))
        for _ in range(count):
            sender.expect("message")
    finally:
        sender.close()


def last_line_visible(who: Person) -> bool:
    """The newest line is in view, and nothing covers the pane there (on screen, the widget
    at that point is the pane's text: a frame stacked above it once hid every line)."""
    text = who.app.pane.text
    box = text.bbox("incoming -1 line")
    if box is None or not who.app.pane.at_bottom():
        return False
    x, y = text.winfo_rootx() + box[0] + 1, text.winfo_rooty() + box[1] + 1
    return text.winfo_containing(x, y) is text


@pytest.mark.parametrize("size", SIZES)
def test_input_send_and_status_stay_visible_in_small_windows(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person], size: str
) -> None:
    server = make_server(rate_limit=0)
    fill_history(server.port, 150)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    wait_until(root, lambda: "history 149" in alice.shown, "history", (alice,))
    set_size(alice, size)
    view = alice.app.chat_view
    for widget in (view.input, view.send_button, view.status):
        assert fully_shown(widget), (size, widget, widget.winfo_height(), widget.winfo_reqheight())
    assert view.pane.winfo_height() > 60, "the pane shrank but still shows some lines"
    # The user list keeps its width ("alice  (you)" was cut at 560 px): the pane gives way.
    assert view.users.winfo_width() >= view.users.winfo_reqwidth(), size
    assert last_line_visible(alice), "the newest line is on screen"


def test_the_minimum_size_is_enforced(root: tk.Tk, person: Callable[[str], Person]) -> None:
    alice = person("alice")
    alice.top.geometry("300x200")
    for _ in range(5):
        root.update()
    assert alice.top.winfo_width() >= 560
    assert alice.top.winfo_height() >= 380
    assert tuple(int(v) for v in alice.top.minsize()) == (560, 380)


def test_joining_and_reconnecting_show_the_newest_line(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    server = make_server(rate_limit=0, db=db, history_size=150)
    fill_history(server.port, 150)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, lambda: "history 149" in alice.shown, "history", (alice,))
    for _ in range(3):
        root.update()
    assert "history 0 " in alice.shown, "all 150 history lines are in the pane"
    # Oldest first: the history, then the welcome that is newer than all of it.
    assert alice.shown.index("Login successful") > alice.shown.index("history 149")
    assert last_line_visible(alice), "joining shows the newest line"
    assert not alice.app.pane.new_button.winfo_ismapped()
    # The server goes and comes back with more history: the newest line again.
    port = server.port
    server.stop()
    wait_until(root, lambda: alice.state is not alice.state.ONLINE, "offline", (alice,))
    second = make_server(rate_limit=0, db=db, history_size=150, port=port)
    fill_history(second.port, 40, "while away")
    wait_until(root, lambda: "while away 39" in alice.shown, "new history", (alice,))
    for _ in range(3):
        root.update()
    assert last_line_visible(alice), "reconnecting shows the newest line"


def test_at_the_bottom_before_a_resize_means_at_the_bottom_after(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    server = make_server(rate_limit=0)
    fill_history(server.port, 100)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, lambda: "history 99" in alice.shown, "history", (alice,))
    for size in ("1200x700", "600x400", "1100x500", "560x380"):
        set_size(alice, size)
        assert last_line_visible(alice), f"still at the bottom at {size}"
        alice.say(f"typed at {size}")
        wait_until(root, lambda: not alice.app.session.pending, "the echo", (alice,))
        for _ in range(3):
            root.update()
        assert last_line_visible(alice), f"own line visible at {size}"
        assert not alice.app.pane.new_button.winfo_ismapped()
    fill_history(server.port, 3, "after the resizes")
    wait_until(root, lambda: "after the resizes 2" in alice.shown, "more", (alice,))
    for _ in range(3):
        root.update()
    assert last_line_visible(alice), "others' next lines are visible too"
    assert not alice.app.pane.new_button.winfo_ismapped()


def test_new_messages_goes_to_the_first_unread_line_then_the_end(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    server = make_server(rate_limit=0)
    fill_history(server.port, 100)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, lambda: "history 99" in alice.shown, "history", (alice,))
    set_size(alice, "980x560")
    pane = alice.app.pane
    pane.text.focus_force()
    for _ in range(3):  # a person pages up to read older lines
        pane.text.event_generate("<KeyPress>", keysym="Prior")
        root.update()
    assert not pane.at_bottom()
    top = pane.text.index("@0,0")
    fill_history(server.port, 60, "unread")
    wait_until(root, lambda: "unread 59" in alice.shown, "unread lines", (alice,))
    root.update()
    assert pane.text.index("@0,0") == top, "the view stayed where the person was reading"
    assert pane.new_button.winfo_ismapped()
    screenshot(alice.top, OUTPUT / "tkchat-new-messages-980x560.png")
    pane.new_button.invoke()
    root.update()
    first = pane.text.get("@0,0 linestart", "@0,0 +1 line lineend")
    # carol's join came first, then her first line.
    assert "carol joined the chat" in first and "unread 0 " in first, first
    assert not pane.at_bottom()
    assert pane.new_button.winfo_ismapped(), "the button stays for the rest"
    fill_history(server.port, 30, "later still")
    wait_until(root, lambda: "later still 29" in alice.shown, "more lines", (alice,))
    root.update()
    assert "unread 0 " in pane.text.get("@0,0 linestart", "@0,0 +1 line lineend"), "stays put"
    pane.new_button.invoke()
    root.update()
    assert last_line_visible(alice), "the second press goes to the end"
    assert not pane.new_button.winfo_ismapped()


LINES = (
    "Morning all. The build on main is green again: https://ci.example.org/run/{n}",
    "alice, could you look at the release notes when you have a minute?",
    "I pushed the fix for the reconnect bug; the status line now counts down.",
    "Short one.",
    "Lunch at 12:30? The place on the corner has a new menu and it is supposedly much "
    "better than last time, or so the reviews say.",
)


def test_screenshots_both_themes_after_a_busy_join_and_resizes(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    """For a person to look at (test-output/): full size after joining 150 lines of history,
    then each everyday size after a resize, in the light and the dark theme."""
    server = make_server(rate_limit=0, history_size=150)
    talkers = [WireClient(server.port) for _ in range(2)]
    try:
        for who, name in zip(talkers, ("carol", "dave"), strict=True):
            who.login(name)
        for n in range(150):  # one at a time, so that the two take turns as people do
            talkers[n % 2].send("msg", LINES[n % len(LINES)].format(n=n))
            for who in talkers:
                who.expect("message")
        alice = person("alice")
        alice.log_in(server.port)
        wait_until(root, lambda: "run/145" in alice.shown, "history", (alice,))
        view = alice.app.chat_view
        for name in ("light", "dark"):
            alice.app.set_theme(name)
            set_size(alice, "1280x990")
            assert last_line_visible(alice)
            screenshot(alice.top, OUTPUT / f"tkchat-full-{name}.png")
            for size in SIZES:
                set_size(alice, size)
                for widget in (view.input, view.send_button, view.status):
                    assert fully_shown(widget), (name, size, widget)
                assert last_line_visible(alice), (name, size)
                screenshot(alice.top, OUTPUT / f"tkchat-{size}-{name}.png")
    finally:
        for who in talkers:
            who.close()
        theme.apply(root, "light")


def test_a_larger_text_size_keeps_the_newest_line_in_view(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    server = make_server(rate_limit=0)
    fill_history(server.port, 100)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, lambda: "history 99" in alice.shown, "history", (alice,))
    set_size(alice, "980x560")
    assert last_line_visible(alice)
    box = alice.app.chat_view.input
    box.focus_force()
    for key in ("<Control-equal>",) * 4 + ("<Control-minus>",) * 6:
        box.event_generate(key)
        for _ in range(3):
            root.update()
        assert last_line_visible(alice), key
