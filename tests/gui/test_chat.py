"""Two people chatting in real windows: messages both ways, pending until echoed, the user
list following joins and leaves, commands, Tab completion, unread notices, and text that has
broken Tk clients before (emoji outside the BMP, control characters, escape sequences)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

from server.app import ChatServer
from tests.gui.harness import Person, online_pair, wait_until
from tests.wire import WireClient


def test_send_and_receive_with_pending_until_echo(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    alice.say("Hello bob, how are you?")
    assert alice.app.chat_view.input.value == ""  # taken
    assert "(sending…)" in alice.shown or "Hello bob" in alice.shown
    wait_until(root, lambda: "Hello bob, how are you?" in bob.shown, "bob hears", (alice, bob))
    wait_until(root, lambda: not alice.app.session.pending, "alice's echo", (alice, bob))
    assert "(sending…)" not in alice.shown
    assert alice.shown.count("Hello bob, how are you?") == 1
    bob.say("fine, see https://example.org/x?y=1 alice")
    wait_until(root, lambda: "example.org" in alice.shown, "alice hears", (alice, bob))
    pane = alice.app.pane.text
    assert pane.tag_ranges("link"), "the URL is a link"
    assert pane.get(*pane.tag_ranges("link")[:2]) == "https://example.org/x?y=1"
    assert pane.tag_ranges("mention"), "alice's name in bob's line is highlighted"


def test_user_list_follows_joins_and_leaves(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    carol = person("carol")
    carol.log_in(server.port)
    wait_until(
        root,
        lambda: alice.app.chat_view.users.names == ["alice", "bob", "carol"],
        "carol in alice's list",
        (alice, bob, carol),
    )
    bob.say("/logout")
    wait_until(
        root,
        lambda: alice.app.chat_view.users.names == ["alice", "carol"],
        "bob gone from alice's list",
        (alice, bob, carol),
    )
    assert "bob left the chat" in alice.shown
    assert bob.app.connect_view.winfo_ismapped()
    carol.close()
    wait_until(
        root,
        lambda: alice.app.chat_view.users.names == ["alice"],
        "carol gone",
        (alice,),
    )
    assert str(alice.app.chat_view.users.header.cget("text")).endswith("1")


def test_emoji_and_other_non_bmp_text_both_ways(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    text = "party 🎉🎉 clef 𝄞 snowman ☃ flag 🇳🇴 family 👨‍👩‍👧 end"
    alice.say(text)
    wait_until(root, lambda: "family" in bob.shown, "emoji to arrive", (alice, bob))
    assert text in bob.shown
    wait_until(root, lambda: not alice.app.session.pending, "echo", (alice, bob))
    assert text in alice.shown
    bob.say("😀")
    wait_until(root, lambda: "😀" in alice.shown, "a lone emoji", (alice, bob))


def test_control_characters_and_escapes_show_harmlessly(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    mallory = WireClient(server.port)  # a hostile peer: raw bytes, any program
    try:
        mallory.login("mallory")
        nasty = "clear\x1b[2J\x1b]0;owned\x07 bell\x00nul \u202egnp.exe tab\tend"
        mallory.send("msg", nasty)
        mallory.expect("message")
    finally:
        mallory.close()
    for who in (alice, bob):
        wait_until(root, lambda w=who: "tab\tend" in w.shown, "nasty text", (alice, bob))  # type: ignore[misc]
        assert "clear\\x1b[2J\\x1b]0;owned\\x07 bell\\x00nul \\u202egnp.exe" in who.shown
        assert not any(c in who.shown for c in "\x1b\x00\x07\u202e")
    alice.say("typed escape \x1b[31m red")
    wait_until(root, lambda: "red" in bob.shown, "typed escape", (alice, bob))
    assert "typed escape \\x1b[31m red" in bob.shown


def test_multi_line_message_with_shift_enter(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    box = alice.app.chat_view.input
    alice.type_into(box, "first line")
    box.event_generate("<Shift-Return>")
    alice.type_into(box, "second line", clear=False)
    assert box.value == "first line\nsecond line"
    alice.press(box, "Return")
    wait_until(root, lambda: "second line" in bob.shown, "two lines", (alice, bob))
    assert "first line\nsecond line" in bob.shown


def test_commands_history_and_tab_completion(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    box = alice.app.chat_view.input
    alice.say("/frobnicate now")
    assert "unknown command /frobnicate" in alice.shown
    assert box.value == "/frobnicate now", "a mistyped command stays to be fixed"
    alice.say("/help")
    assert "/names" in alice.shown and box.value == ""
    alice.say("/names")
    wait_until(root, lambda: "Users in the chat: alice, bob" in alice.shown, "names", (alice,))
    alice.say("one")
    alice.say("two")
    alice.press(box, "Up")
    assert box.value == "two"
    alice.press(box, "Up")
    assert box.value == "one"
    alice.press(box, "Down")
    alice.press(box, "Down")
    assert box.value == ""
    alice.type_into(box, "b")
    alice.press(box, "Tab")
    assert box.value == "bob: "
    alice.type_into(box, "thanks ", clear=False)
    alice.type_into(box, "a", clear=False)
    alice.press(box, "Tab")
    assert box.value == "bob: thanks alice "
    wait_until(root, lambda: not alice.app.session.pending, "echoes", (alice,))
    alice.say("/clear")
    assert "one" not in alice.shown
    alice.say("//slash is fine")
    wait_until(root, lambda: "/slash is fine" in bob.shown, "a message with /", (alice, bob))


def test_unread_count_marker_and_mention_while_away(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    bob.app.chat_view.input.focus_force()  # bob's window has the focus, alice's does not
    wait_until(
        root, lambda: not alice.app.attention.focused, "alice's window to lose focus", (alice,)
    )
    bob.say("are you there")
    bob.say("alice?")
    wait_until(root, lambda: alice.app.attention.unread == 2, "two unread", (alice, bob))
    assert alice.top.title().startswith("(2) ")
    assert "new messages since you looked" in alice.shown
    assert alice.app.pane.text.tag_ranges("mention")
    assert bob.app.attention.unread == 0, "nothing for the window in use"
    alice.app.chat_view.input.focus_force()
    wait_until(root, lambda: alice.app.attention.unread == 0, "unread cleared", (alice,))
    wait_until(root, lambda: not alice.top.title().startswith("("), "title cleared", (alice,))
