"""Rooms, direct messages, older pages, search and remembered conversations in real windows,
against the real server (PROTOCOL.md, Rooms, Direct messages, Older history and search).

Screenshots go to test-output/ for a person to look at: two people in two rooms and a
direct conversation, and the search box."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path

from common.message import Message
from common.timestamps import now_utc
from gui.net.conversation_requests import GENERAL, Conversation
from gui.session import State
from server.app import ChatServer
from server.history import HistoryStore
from tests.conftest import ROOT
from tests.fake_ktn import FakeKTN, obj
from tests.gui.harness import (
    Person,
    answer_next_question,
    online,
    online_pair,
    screenshot,
    wait_until,
)
from tests.wire import WireClient

OUTPUT = ROOT / "test-output"
DEV = Conversation.room("dev")
OPS = Conversation.room("ops")


def _rows(who: Person) -> list[str]:
    return who.app.conversations.list.texts()


def _shortcut(who: Person, sequence: str) -> None:
    """Press a key combination in the input box (key events go to the focused widget)."""
    box = who.app.chat_view.input
    box.focus_force()
    who.root.update()
    box.event_generate(sequence)
    who.root.update()


def _click_row(who: Person, text: str) -> None:
    """Click the conversation list's row that starts with ``text``."""
    tree = who.app.conversations.list.tree
    who.root.update()
    for item in tree.get_children():
        if str(tree.item(item, "text")).startswith(text):
            box = tree.bbox(item)
            assert isinstance(box, tuple), box  # (x, y, width, height) once drawn
            x, y, _width, height = (int(v) for v in box)
            tree.event_generate("<ButtonPress-1>", x=x + 5, y=y + height // 2)
            tree.event_generate("<ButtonRelease-1>", x=x + 5, y=y + height // 2)
            who.root.update()
            return
    raise AssertionError(f"no row {text!r} in {who.app.conversations.list.texts()}")


def _pane_of(who: Person, conversation: Conversation) -> str:
    pane = who.app.conversations.panes.get(conversation)
    return "" if pane is None else pane.content()


def test_two_people_in_two_rooms_and_a_direct_conversation(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    people = (alice, bob)
    assert _rows(alice) == ["# general"]
    alice.say("/join dev")
    bob.say("/join dev")
    alice.say("/join ops")
    wait_until(root, lambda: alice.app.conversations.current == OPS, "alice in #ops", people)
    wait_until(root, lambda: bob.app.conversations.current == DEV, "bob in #dev", people)
    assert _rows(alice) == ["# general", "# dev", "# ops"]
    wait_until(
        root,
        lambda: alice.app.conversations.model.state(DEV).members == ["alice", "bob"],
        "alice sees bob in #dev",
        people,
    )
    bob.say("hello dev people")  # bob's open conversation is #dev
    wait_until(root, lambda: "# dev  1" in _rows(alice), "one unread in alice's #dev", people)
    assert "hello dev people" in _pane_of(alice, DEV)
    assert "hello dev people" not in _pane_of(alice, GENERAL)
    assert "hello dev people" not in alice.shown  # she is looking at #ops
    bob.say("/msg alice psst, just you")
    wait_until(root, lambda: "@ bob  1 ●" in _rows(alice), "a marked direct message", people)
    wait_until(root, lambda: "@ alice" in _rows(bob), "bob's direct conversation", people)
    assert "psst, just you" in _pane_of(bob, Conversation.with_user("alice"))
    alice.say("ops only")
    wait_until(root, lambda: "ops only" in alice.shown, "alice's #ops line", people)
    assert "ops only" not in _pane_of(bob, DEV) + _pane_of(bob, GENERAL)
    _click_row(alice, "# dev")
    assert alice.app.conversations.current == DEV
    wait_until(root, lambda: _rows(alice)[1] == "# dev", "#dev seen now", people)
    assert "hello dev people" in alice.shown
    assert alice.app.chat_view.users.names == ["alice", "bob"]  # #dev's members
    screenshot(alice.top, OUTPUT / "conversations-alice.png")
    screenshot(bob.top, OUTPUT / "conversations-bob.png")
    alice.app.conversations.switcher.open()
    alice.app.conversations.switcher.choose("bo")  # Ctrl+K, "bo", Enter
    assert alice.app.conversations.current == Conversation.with_user("bob")
    assert "psst, just you" in alice.shown
    wait_until(root, lambda: "@ bob" in _rows(alice), "seen: no count, no mark", people)
    alice.say("/part dev")
    wait_until(root, lambda: "# dev" not in _rows(alice), "alice left #dev", people)
    wait_until(
        root,
        lambda: bob.app.conversations.model.state(DEV).members == ["bob"],
        "bob sees alice leave #dev",
        people,
    )
    _click_row(bob, "# dev")
    bob.say("/part")  # the open room: the window goes back to general, which says so
    wait_until(root, lambda: "You left #dev." in bob.shown, "bob told", people)
    assert bob.app.conversations.current == GENERAL
    assert bob.app.pane is bob.app.conversations.panes[GENERAL]
    wait_until(root, lambda: _rows(bob) == ["# general", "People", "@ alice"], "no #dev", people)


def test_clicking_a_name_opens_a_direct_conversation(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    users = alice.app.chat_view.users
    index = users.names.index("bob")
    box = users.listbox.bbox(index)
    assert box is not None
    x, y, _w, height = box
    users.listbox.event_generate("<ButtonPress-1>", x=x + 2, y=y + height // 2)
    users.listbox.event_generate("<ButtonRelease-1>", x=x + 2, y=y + height // 2)
    root.update()
    assert alice.app.conversations.current == Conversation.with_user("bob")
    alice.say("hi bob, privately")
    wait_until(
        root,
        lambda: "hi bob, privately" in _pane_of(bob, Conversation.with_user("alice")),
        "bob gets it in his direct conversation",
        (alice, bob),
    )
    assert "hi bob, privately" not in _pane_of(bob, GENERAL)
    wait_until(root, lambda: not alice.app.session.pending, "echoed", (alice, bob))
    assert "(sending…)" not in alice.shown
    alice.say("/msg nobody are you there?")  # not online: no_such_user, nothing waits
    assert alice.app.conversations.current == Conversation.with_user("nobody")
    wait_until(root, lambda: "Not sent" in alice.shown, "the refusal", (alice, bob))
    assert not alice.app.session.pending and "(sending…)" not in alice.shown


def test_scrolling_to_the_top_loads_older_pages_and_keeps_the_view_still(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = tmp_path / "chat.sqlite3"
    store = HistoryStore(db)
    store.insert_many(
        (Message(f"line {i:03d}", "ann", now_utc()), False, False) for i in range(1, 321)
    )
    store.close()
    server = make_server(db=str(db))
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, lambda: "line 320" in alice.shown, "the newest", (alice,))
    text = alice.app.pane.text
    wait_until(root, alice.app.pane.at_bottom, "the first load shows the newest")
    for _ in range(20):  # 320 messages: 100 at login, then pages of 50
        if not alice.app.conversations.model.state(GENERAL).more:
            break
        before = alice.shown.count("line ")
        alice.app.pane.page(-1000)  # as Page Up, the wheel or the scrollbar: to the top
        root.update()
        top = text.get("@0,0 linestart", "@0,0 lineend")
        if top.startswith("────"):  # a day line: the page above takes it over, the
            text.yview_scroll(1, "units")  # message under it must not move
            root.update()
            top = text.get("@0,0 linestart", "@0,0 lineend")
        wait_until(
            root,
            lambda before=before: (  # type: ignore[misc]
                alice.shown.count("line ") > before
                or not alice.app.conversations.model.state(GENERAL).more
            ),
            "an older page",
            (alice,),
        )
        root.update()
        assert text.get("@0,0 linestart", "@0,0 lineend") == top  # the view did not move
    shown = [line.split("  ", 2)[-1] for line in alice.shown.splitlines() if "line " in line]
    assert shown == [f"line {i:03d}" for i in range(1, 321)]  # each once, in order
    assert alice.shown.count("──── Today ────") == 1  # one day: one day line, not one a page


def test_search_lists_results_and_picking_one_pages_back_to_it(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    bob.say("/join dev")
    wait_until(root, lambda: bob.app.conversations.current == DEV, "bob in #dev", (alice, bob))
    bob.say("the needle is in the haystack")
    for i in range(150):  # more than a join's history: the needle is not in it
        bob.app.session.send(f"filler {i}", DEV)
    wait_until(root, lambda: not bob.app.session.pending, "bob's lines stored", (alice, bob))
    alice.say("/join dev")
    wait_until(root, lambda: "filler 149" in _pane_of(alice, DEV), "alice joined", (alice, bob))
    assert "needle" not in _pane_of(alice, DEV)
    alice.app.conversations.open(GENERAL)
    _shortcut(alice, "<Control-f>")
    search = alice.app.conversations.search_box
    assert search.is_open
    search.search_for("NEEDLE hay")  # any case, a word may be a prefix
    wait_until(root, lambda: len(search.rows()) == 1, "one result", (alice, bob))
    where, sender, when, what = search.rows()[0]
    assert (where, sender, what) == ("#dev", "bob", "the needle is in the haystack")
    assert when
    screenshot(alice.top, OUTPUT / "conversations-search.png")
    search.pick(0)
    wait_until(root, lambda: "needle" in alice.shown, "paged back to it", (alice, bob))
    assert alice.app.conversations.current == DEV
    text = alice.app.pane.text
    wait_until(root, lambda: bool(text.tag_ranges("sel")), "the result selected", (alice, bob))
    assert "the needle is in the haystack" in text.get(*text.tag_ranges("sel")[:2])
    top, bottom = (float(f) for f in text.yview())
    line = int(text.index("sel.first").split(".")[0])
    lines = int(text.index("end-1c").split(".")[0])
    assert top <= line / lines <= bottom + 0.01  # in view
    assert alice.shown.count("filler 100") == 1  # pages and live lines: each once


def test_a_direct_message_counts_like_a_mention(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    alice, bob = online_pair(root, server.port, person)
    rings: list[bool] = []

    def ring(loud: bool) -> None:
        rings.append(loud)

    alice.app.attention.ring = ring  # type: ignore[method-assign]
    alice.app.set_focused(False)
    bob.say("just chatting")
    wait_until(root, lambda: "just chatting" in alice.shown, "a plain line", (alice, bob))
    bob.say("/msg alice are you there?")
    wait_until(root, lambda: "@ bob  1 ●" in _rows(alice), "marked", (alice, bob))
    assert rings == [False, True]  # the direct message rings loud
    assert alice.app.attention.unread == 2 and alice.top.title().startswith("(2) ")
    alice.app.set_focused(True)
    _shortcut(alice, "<Control-k>")
    assert alice.app.conversations.switcher.is_open
    alice.app.conversations.switcher.choose("bob")
    wait_until(root, lambda: "@ bob" in _rows(alice), "read", (alice, bob))
    assert "are you there?" in alice.shown


def test_after_a_reconnect_rooms_are_joined_again_and_pending_lines_keep_their_room(
    root: tk.Tk,
    make_server: Callable[..., ChatServer],
    person: Callable[[str], Person],
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "history.sqlite3")
    first = make_server(db=db)
    port = first.port
    alice, bob = online_pair(root, port, person)
    people = (alice, bob)
    alice.say("/join dev")
    bob.say("/join dev")
    wait_until(root, lambda: bob.app.conversations.current == DEV, "bob in #dev", people)
    first.stop()
    wait_until(root, lambda: alice.state is not State.ONLINE, "alice notices", people)
    alice.say("typed in dev while down")
    assert "typed in dev while down" in _pane_of(alice, DEV)
    make_server(db=db, port=port)
    wait_until(root, online(alice, bob), "both back", people)
    wait_until(root, lambda: not alice.app.session.pending, "sent", people)
    wait_until(root, lambda: "typed in dev while down" in _pane_of(bob, DEV), "bob", people)
    assert "typed in dev while down" not in _pane_of(bob, GENERAL)
    assert alice.app.conversations.current == DEV and bob.app.conversations.current == DEV
    assert alice.app.conversations.model.is_joined("dev")
    assert _pane_of(alice, DEV).count("typed in dev while down") == 1


def test_joined_rooms_and_the_open_conversation_come_back_after_a_restart(
    root: tk.Tk, file_server: ChatServer, person: Callable[[str], Person], tmp_path: Path
) -> None:
    alice = person("alice")
    alice.log_in(file_server.port)
    wait_until(root, online(alice), "online", (alice,))
    alice.say("/join dev")
    alice.say("/join ops")
    wait_until(root, lambda: "# ops" in _rows(alice), "joined", (alice,))
    alice.app.conversations.open(DEV)
    alice.close()
    again = Person(root, "alice", tmp_path)  # the same config folder: a restart
    try:
        again.log_in(file_server.port)
        wait_until(root, lambda: _rows(again) == ["# general", "# dev", "# ops"], "rejoined")
        wait_until(root, lambda: again.app.conversations.current == DEV, "#dev open again")
        assert again.app.conversations.model.is_joined("dev")
    finally:
        again.close()


def test_a_classic_server_has_one_room_and_says_so(
    root: tk.Tk, person: Callable[[str], Person]
) -> None:
    def classic(fake: FakeKTN, request: dict[str, object]) -> list[bytes]:
        if request.get("request") == "login":
            return [obj("info", "Login successful", sender="SERVER"), obj("history", [])]
        if request.get("request") == "msg":
            return [obj("message", request.get("content"), sender=fake.username)]
        return [obj("info", "ok")]

    fake = FakeKTN(classic)
    try:
        alice = person("alice")
        alice.log_in(fake.port)
        wait_until(root, online(alice), "online", (alice,))
        root.update()
        assert _rows(alice) == ["# general"]
        for command in ("/join dev", "/rooms", "/msg bob hi"):
            alice.say(command)
            wait_until(root, lambda: "classic KTN server" in alice.shown, command, (alice,))
        assert "classic KTN server" in alice.shown
        alice.say("plain still works")
        wait_until(root, lambda: not alice.app.session.pending, "sent and echoed", (alice,))
        assert [r["request"] for r in fake.requests] == ["login", "msg"]
    finally:
        fake.close()


def test_a_registered_name_gets_its_direct_messages_back_after_a_restart(
    root: tk.Tk, file_server: ChatServer, person: Callable[[str], Person], tmp_path: Path
) -> None:
    secret = "correct horse battery"
    for name in ("alice", "bob"):
        owner = WireClient(file_server.port)
        try:
            owner.login(name)
            owner.send("register", password=secret)
            owner.expect("info")
        finally:
            owner.close()
    alice, bob = person("alice"), person("bob")
    for who in (alice, bob):
        who.app.connect("127.0.0.1", file_server.port, who.name, password=secret)
    wait_until(root, online(alice, bob), "both online", (alice, bob))
    bob.say("/msg alice remember this, privately")
    wait_until(
        root,
        lambda: "remember this" in _pane_of(alice, Conversation.with_user("bob")),
        "alice gets it",
        (alice, bob),
    )
    alice.close()
    again = Person(root, "alice", tmp_path)  # a restart, the same config folder
    try:
        again.app.connect("127.0.0.1", file_server.port, "alice", password=secret)
        wait_until(root, online(again), "online again", (again,))
        wait_until(root, lambda: "@ bob" in _rows(again), "the direct conversation is listed")
        again.app.conversations.open(Conversation.with_user("bob"))
        wait_until(root, lambda: "remember this, privately" in again.shown, "read back", (again,))
        assert again.shown.count("remember this, privately") == 1
    finally:
        again.close()


def test_messages_kept_over_a_quit_go_to_their_conversation_next_time(
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
    alice.say("/join dev")
    wait_until(root, lambda: alice.app.conversations.current == DEV, "in #dev", (alice,))
    server.stop()
    wait_until(root, lambda: alice.state is not State.ONLINE, "offline", (alice,))
    alice.say("typed in dev, kept over the quit")
    seen: list[str] = []
    answer_next_question(root, "Keep and quit", seen)
    alice.app.quit()
    assert seen, "it asked"
    server = make_server(db=db, port=port)
    again = person("alice")
    again.log_in(port)
    wait_until(root, online(again), "online again", (again,))
    wait_until(root, lambda: not again.app.session.pending, "sent", (again,))
    stored = [(m.text, m.room) for m in server.store.recent(100, "dev")]
    assert stored.count(("typed in dev, kept over the quit", "dev")) == 1, stored
    assert "typed in dev" in _pane_of(again, DEV) and "typed in dev" not in _pane_of(again, GENERAL)


def _both_in_dev(root: tk.Tk, alice: Person, bob: WireClient) -> None:
    """bob (a raw client) logs in and joins #dev; alice joins it and has it open."""
    bob.login("bob")
    bob.send("join", "dev")
    bob.expect("info", event="joined")
    alice.app.submit("/join dev")
    wait_until(root, lambda: alice.app.conversations.current == DEV, "#dev open", (alice,))


def test_page_up_in_the_input_scrolls_the_open_conversation(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    """Page Up/Down in the input box page the pane shown now, not the first (general) one."""
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "online", (alice,))
    bob = WireClient(server.port)
    try:
        _both_in_dev(root, alice, bob)
        for i in range(80):
            bob.send("msg", f"dev line {i}", room="dev")
        wait_until(root, lambda: "dev line 79" in _pane_of(alice, DEV), "80 lines", (alice,))
        dev = alice.app.conversations.panes[DEV].text
        general = alice.app.conversations.panes[GENERAL].text
        root.update()
        dev_before, general_before = dev.yview(), general.yview()
        _shortcut(alice, "<Prior>")
        assert dev.yview()[0] < dev_before[0], "the open conversation paged up"
        assert general.yview() == general_before, "the hidden one did not move"
    finally:
        bob.close()


def test_a_long_name_keeps_its_count_and_mark_in_view(
    root: tk.Tk, server: ChatServer, person: Callable[[str], Person]
) -> None:
    """The list widens to its widest row up to 30 % of the window, and a name longer than
    that is shortened with "…": "@ bob  1 ●" once lost its mark behind the list's edge, and a
    longer name its count too."""
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    listing = alice.app.conversations.list
    longest = "Q" * 32  # the longest name there is, in the widest letter
    senders = [WireClient(server.port), WireClient(server.port)]
    try:
        for sender, name in zip(senders, ("Bartholomew3rd", longest), strict=True):
            sender.login(name)
            for i in range(12):
                sender.send("msg", f"note {i}", to="alice")
        wait_until(
            root,
            lambda: "@ Bartholomew3rd  12 ●" in _rows(alice) and len(_rows(alice)) == 4,
            f"two people with twelve marked messages each (rows: {listing.texts()})",
            (alice,),
        )
        root.update()
        shown = listing.tree.winfo_width()
        assert shown <= alice.top.winfo_width() * 3 // 10 + 10  # the messages keep the room
        for row in _rows(alice):
            assert listing.bold_font.measure(row) + 26 <= shown, (row, shown)
        cut = _rows(alice)[-1]
        assert cut.startswith("@ QQQ") and cut.endswith("…  12 ●"), cut
        users = alice.app.chat_view.users  # the list of who is online shortens it too
        items = [str(users.listbox.get(i)) for i in range(users.listbox.size())]
        assert items[-1].startswith("QQQ") and items[-1].endswith("…"), items
        for item in items:
            assert users.font.measure(item) <= users.listbox.winfo_width(), (item, items)
        screenshot(alice.top, OUTPUT / "conversations-long-names.png")
    finally:
        for sender in senders:
            sender.close()


def test_a_busy_hidden_room_keeps_its_name_and_count_whole(
    root: tk.Tk, make_server: Callable[..., ChatServer], person: Callable[[str], Person]
) -> None:
    """A thousand messages into a room one is not looking at: the list, redrawn as they come,
    widens for "999+" rather than shorten the room's name (it once showed "# d…  999+")."""
    server = make_server(rate_limit=0)
    alice = person("alice")
    alice.log_in(server.port)
    wait_until(root, online(alice), "alice online", (alice,))
    bob = WireClient(server.port)
    try:
        _both_in_dev(root, alice, bob)
        alice.app.conversations.open(GENERAL)
        for i in range(1000):
            bob.send("msg", f"dev line {i}", room="dev")
        wait_until(
            root, lambda: "dev line 999" in _pane_of(alice, DEV), "a thousand lines", (alice,)
        )
        root.update()
        listing = alice.app.conversations.list
        assert _rows(alice) == ["# general", "# dev  999+"]
        for row in _rows(alice):
            assert listing.bold_font.measure(row) + 26 <= listing.tree.winfo_width(), row
    finally:
        bob.close()
