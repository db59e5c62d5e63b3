"""The status line while the server is away: it fits the window (wrapped, not cut off), counts
down to the next try, counts the messages waiting, reads as sentences, and "Reconnect now"
(button and menu item) tries at once."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from gui.retry import Backoff
from gui.session import State
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, fully_shown, online, screenshot, set_size, wait_until

OUTPUT = ROOT / "test-output"


def _file_menu_index(who: Person, label: str) -> int:
    menu = who.app.menus[1]
    for index in range(int(menu.index("end") or 0) + 1):
        if menu.type(index) != "separator" and menu.entrycget(index, "label") == label:
            return index
    raise AssertionError(f"no {label!r} in the File menu")


def test_disconnected_status_fits_counts_down_and_reconnects_now(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    server = make_server(db=db)
    port = server.port
    alice = person("alice")
    alice.log_in(port)
    wait_until(root, online(alice), "online", (alice,))
    view = alice.app.chat_view
    assert not view.reconnect_button.winfo_ismapped()
    menu = alice.app.menus[1]
    reconnect_item = _file_menu_index(alice, "Reconnect now")
    assert menu.entrycget(reconnect_item, "state") == "disabled"
    alice.app.session.retry.backoff = Backoff(first=30.0, maximum=30.0)  # a long wait, as at 16 s
    server.stop()
    wait_until(root, lambda: alice.state is State.WAITING, "waiting", (alice,))
    alice.say("one")
    alice.say("two")

    def status() -> str:
        return str(view.status.cget("text"))

    wait_until(root, lambda: "2 messages waiting to be sent" in status(), "count", (alice,))
    assert "Reconnecting in " in status() and "(attempt 1)" in status(), status()
    assert "?." not in status() and "?." not in alice.shown, "sentences end once"
    for size in ("560x380", "980x560"):
        set_size(alice, size)
        assert fully_shown(view.status), size
        assert view.status.winfo_reqwidth() <= view.status.winfo_width(), "wrapped, not cut off"
        assert fully_shown(view.reconnect_button), size
        assert fully_shown(view.input), size
        screenshot(alice.top, OUTPUT / f"tkchat-reconnecting-{size}.png")
    alice.app.set_theme("dark")
    try:
        screenshot(alice.top, OUTPUT / "tkchat-reconnecting-980x560-dark.png")
    finally:
        alice.app.set_theme("light")
    shown = status()
    wait_until(root, lambda: status() != shown, "the countdown to move", (alice,), timeout=3.0)
    assert menu.entrycget(reconnect_item, "state") == "normal"
    # "Reconnect now" with the server still away: one more attempt at once.
    view.reconnect_button.invoke()
    wait_until(root, lambda: "(attempt 2)" in status(), "a second attempt", (alice,))
    # Back on the same port: the menu item reconnects well before the 30 s timer.
    make_server(db=db, port=port)
    menu.invoke(reconnect_item)
    wait_until(root, online(alice), "online at once", (alice,), timeout=5.0)
    wait_until(root, lambda: not alice.app.session.pending, "sent", (alice,))
    assert not view.reconnect_button.winfo_ismapped()
    assert menu.entrycget(reconnect_item, "state") == "disabled"
