"""Theme switching from the View menu, font size, and screenshots of the main window in the
light and dark theme (saved under test-output/ for a person to look at)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

from gui import theme
from server.app import ChatServer
from tests.conftest import ROOT
from tests.gui.harness import Person, online, screenshot, wait_until

OUTPUT = ROOT / "test-output"


def _view_menu_item(who: Person, label: str) -> int:
    menu = who.app.menus[2]
    for index in range(int(menu.index("end") or 0) + 1):
        if menu.type(index) != "separator" and menu.entrycget(index, "label") == label:
            return index
    raise AssertionError(f"no {label!r} in the View menu")


def test_theme_switch_and_screenshots(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = person("alice"), person("bob")
    alice.log_in(server.port)
    bob.log_in(server.port)
    wait_until(root, online(alice, bob), "both online", (alice, bob))
    bob.say("Morning! Did the build pass? Logs at https://ci.example.org/run/42")
    alice.say("Yes, all green 🎉 thanks bob")
    bob.say("Great. alice, can you tag the release?\nI'll write the notes.")
    wait_until(root, lambda: "write the notes" in alice.shown, "conversation", (alice, bob))
    wait_until(root, lambda: not alice.app.session.pending, "echoes", (alice, bob))
    alice.app.chat_view.input.insert("1.0", "On it — tagging v1.0 now")
    menu = alice.app.menus[2]
    menu.invoke(_view_menu_item(alice, "Light"))
    root.update()
    assert theme.current(alice.top) == "light"
    assert alice.app.pane.text.cget("background") == theme.LIGHT.background
    screenshot(alice.top, OUTPUT / "tkchat-light.png")
    menu.invoke(_view_menu_item(alice, "Dark"))
    root.update()
    assert theme.current(alice.top) == "dark"
    for who in (alice, bob):  # the theme is per application; both windows follow
        assert who.app.pane.text.cget("background") == theme.DARK.background
        assert who.app.chat_view.input.cget("background") == theme.DARK.background
    assert alice.app.settings.theme == "dark"
    screenshot(alice.top, OUTPUT / "tkchat-dark.png")
    assert (OUTPUT / "tkchat-dark.png").stat().st_size > 5000
    alice.app.connect_view.fill("127.0.0.1", server.port, "alice")
    alice.app.show_connect()
    screenshot(alice.top, OUTPUT / "tkchat-connect-dark.png")
    menu.invoke(_view_menu_item(alice, "Light"))


def test_font_size_keys(root: tk.Tk, server: ChatServer, person: Callable[[str], Person]) -> None:
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    box = alice.app.chat_view.input
    before = int(alice.app.text_font.actual("size"))
    box.focus_force()
    box.event_generate("<Control-equal>")
    root.update()
    assert int(alice.app.text_font.actual("size")) == before + 1
    box.event_generate("<Control-minus>")
    box.event_generate("<Control-minus>")
    root.update()
    assert int(alice.app.text_font.actual("size")) == before - 1
    assert alice.app.settings.font_size == before - 1


def test_window_has_the_tkchat_icon(root: tk.Tk, person: Callable[[str], Person]) -> None:
    """The icon comes from the committed picture (a built ChatClient bundles a smaller copy)."""
    alice = person("alice")
    icon = alice.app._icon
    assert icon is not None
    assert (icon.width(), icon.height()) == (64, 64)
    # Not blank: the centre pixel of the picture is painted.
    assert not icon.transparency_get(32, 32)
