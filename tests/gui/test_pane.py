"""The message pane under load and when scrolled back: trimming to the scrollback limit, the
"new messages" button, and a settings file that has been mangled by hand."""

from __future__ import annotations

import json
import tkinter as tk
from collections.abc import Callable
from pathlib import Path

import pytest

from common.protocol import DEFAULT_PORT
from gui import theme
from gui.app import ChatApp
from server.app import ChatServer
from tests.gui.harness import Person, online, wait_until
from tests.wire import WireClient


def _flood(port: int, count: int, prefix: str) -> None:
    sender = WireClient(port)
    try:
        sender.login("flood")
        for n in range(count):
            sender.send("msg", f"{prefix} {n}")
        for _ in range(count):
            sender.expect("message")
    finally:
        sender.close()


def test_a_burst_is_trimmed_to_the_scrollback_and_ends_in_view(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    server = make_server(rate_limit=0)
    alice = person("alice")
    alice.app.pane.scrollback = 200
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    _flood(server.port, 1500, "burst")
    wait_until(root, lambda: "burst 1499" in alice.shown, "the burst", (alice,))
    lines = alice.shown.count("\n")
    assert 200 <= lines <= 230, lines
    assert "burst 0\n" not in alice.shown, "the oldest lines were trimmed"
    assert alice.app.pane.at_bottom(), "the pane followed the burst"
    assert not alice.app.pane.new_button.winfo_ismapped()


def test_scrolled_up_the_pane_stays_put_and_offers_new_messages(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    server = make_server(rate_limit=0)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    _flood(server.port, 120, "filler")
    wait_until(root, lambda: "filler 119" in alice.shown, "filler", (alice,))
    pane = alice.app.pane
    pane.text.focus_force()
    pane.text.event_generate("<KeyPress>", keysym="Home")  # a person scrolls to the top
    root.update()
    top = pane.text.index("@0,0")
    _flood(server.port, 5, "later")
    wait_until(root, lambda: "later 4" in alice.shown, "later messages", (alice,))
    root.update()
    assert pane.text.index("@0,0") == top, "the view did not jump"
    assert pane.new_button.winfo_ismapped()
    pane.new_button.invoke()
    root.update()
    assert pane.at_bottom()
    assert not pane.new_button.winfo_ismapped()


def test_a_mangled_settings_file_falls_back_to_defaults(
    root: tk.Tk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text(
        json.dumps({"host": 5, "port": 99999, "theme": "purple", "font_size": 500})
    )
    top = tk.Toplevel(root)
    try:
        app = ChatApp(top, config)
        assert (app.settings.host, app.settings.port, app.settings.theme) == (
            "127.0.0.1",
            DEFAULT_PORT,
            "system",
        )
        assert app.settings.font_size == 32
        app.close()
    finally:
        top.destroy()
    (config / "settings.json").write_text("{not json")
    top = tk.Toplevel(root)
    try:
        ChatApp(top, config).close()
    finally:
        top.destroy()
    assert "ignoring unreadable settings file" in caplog.text


def test_the_system_theme_is_followed(
    root: tk.Tk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GTK_THEME", "Adwaita:dark")
    assert theme.system_prefers_dark()
    top = tk.Toplevel(root)
    try:
        app = ChatApp(top, tmp_path / "c")
        assert app.settings.theme == "system"
        assert app.theme_in_use == "dark"
        assert app.pane.text.cget("background") == theme.DARK.background
        app.close()
    finally:
        top.destroy()
        theme.apply(root, "light")
    monkeypatch.setenv("GTK_THEME", "Adwaita")
    assert not theme.system_prefers_dark()


def test_day_separators_links_and_own_lines(root: tk.Tk) -> None:
    from datetime import UTC, datetime, timedelta
    from tkinter import font as tkfont

    from common.message import Message
    from gui.message_pane import MessagePane

    top = tk.Toplevel(root)
    try:
        pane = MessagePane(top, tkfont.Font(top, size=10))
        pane.pack(fill="both", expand=True)
        pane.set_own_name("alice")
        now = datetime.now(UTC)
        old = now - timedelta(days=3)
        pane.add_message(Message("from the past, see www.example.com.", "bob", old, 1))
        pane.add_message(Message("today: (https://example.org/a_b), ok", "bob", now, 2))
        pane.add_message(Message("mine", "alice", now, 3), own=True)
        pane.flush()
        shown = pane.content()
        assert f"──── {old.astimezone():%A, %d %B %Y} ────" in shown
        assert "──── Today ────" in shown
        assert shown.index("from the past") < shown.index("Today") < shown.index("today:")
        text = pane.text
        links = text.tag_ranges("link")
        found = [text.get(links[i], links[i + 1]) for i in range(0, len(links), 2)]
        assert found == ["www.example.com", "https://example.org/a_b"]
        own = text.tag_ranges("own")
        assert text.get(own[0], own[1]) == "alice"
    finally:
        top.destroy()
