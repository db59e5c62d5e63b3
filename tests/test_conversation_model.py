"""The Tk client's conversations as plain data (``gui.conversations``), the requests that act
on them (``gui.net.conversation_requests``) and the Ctrl+K matching (``gui.switcher.matches``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from common.message import Message
from common.requests import History, Names, SendMessage
from gui.conversations import ConversationModel, SavedConversations
from gui.display import elided, terminal_safe
from gui.net import conversation_requests as requests
from gui.net.conversation_requests import GENERAL, Conversation, conversation_of
from gui.switcher import matches

DEV = Conversation.room("Dev")
BOB = Conversation.with_user("Bob")


def test_a_message_belongs_to_its_room_or_to_the_other_person() -> None:
    assert conversation_of(Message("hi", "bob"), "alice") == GENERAL
    assert conversation_of(Message("hi", "bob", room="dev"), "alice") == DEV
    assert conversation_of(Message("hi", "alice", to="bob"), "Alice") == BOB  # own, any case
    assert conversation_of(Message("hi", "BOB", to="alice"), "alice") == BOB
    assert Conversation.from_label("#dev") == DEV and Conversation.from_label("@bob") == BOB
    assert Conversation.from_label("#no way") is None and Conversation.from_label("x") is None


def test_requests_address_rooms_and_people_and_leave_general_classic() -> None:
    # general names no room: the request is the classic one (its bytes: test_connection.py)
    assert requests.say(GENERAL, "hi", "n1") == SendMessage("hi", "n1")
    assert requests.say(DEV, "hi") == SendMessage("hi", room="dev")
    assert requests.say(BOB, "hi") == SendMessage("hi", to="Bob")
    assert requests.page(BOB, 10) == History(with_user="Bob", before=10, limit=50)
    assert requests.page(DEV, 10) == History(room="dev", before=10, limit=50)
    assert requests.names(GENERAL) == Names() and requests.names(BOB) == Names()
    assert requests.names(DEV) == Names("dev")


def test_unread_counts_and_marks_follow_what_is_seen() -> None:
    model = ConversationModel()
    model.reset("alice")
    model.extended = True
    model.joined("dev", ["bob", "alice", "Bob"])
    assert model.state(DEV).members == ["alice", "bob"]
    model.arrived(DEV, mention=False, seen=False)
    model.arrived(DEV, mention=False, seen=False)
    model.arrived(GENERAL, mention=False, seen=True)
    model.arrived(BOB, mention=False, seen=False)  # a direct message is always marked
    assert (model.state(DEV).unread, model.state(DEV).mention) == (2, False)
    assert model.state(GENERAL).unread == 0
    assert (model.state(BOB).unread, model.state(BOB).mention) == (1, True)
    assert model.all() == [GENERAL, DEV, BOB]
    model.open(DEV)
    assert model.state(DEV).unread == 0 and model.current == DEV
    model.parted("dev")
    assert model.current == GENERAL and model.all() == [GENERAL, BOB]
    model.extended = False
    assert model.all() == [GENERAL]  # a classic server has one room


def test_paging_asks_once_at_a_time_until_nothing_is_older() -> None:
    model = ConversationModel()
    model.reset("alice")
    assert model.page_request(GENERAL) is None  # not a TkChat server (yet)
    model.extended = True
    model.shown_ids(GENERAL, [300, 250, 280])
    assert model.page_request(GENERAL) == 250
    assert model.page_request(GENERAL) is None  # one on its way
    model.page_arrived(GENERAL, [200, 249], more=True)
    assert model.page_request(GENERAL) == 200
    model.page_arrived(GENERAL, [1], more=False)
    assert model.page_request(GENERAL) is None


def test_rooms_and_open_conversation_are_saved_per_server(tmp_path: Path) -> None:
    model = ConversationModel()
    model.reset("alice")
    model.joined("dev", [])
    model.state(BOB)
    model.open(DEV)
    saved = SavedConversations(tmp_path)
    saved.put("chat.example:9998", model.saved())
    again = ConversationModel()
    again.reset("alice")
    again.restore(SavedConversations(tmp_path).get("chat.example:9998"))
    assert again.wanted_rooms == ["dev"] and again.restore_open == DEV
    assert BOB in again.states
    assert SavedConversations(tmp_path).get("other:1") == {}


def test_a_mangled_saved_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "conversations.json").write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        saved = SavedConversations(tmp_path)
    assert saved.get("x:1") == {} and "unreadable" in caplog.text
    model = ConversationModel()
    model.restore({"rooms": ["general", 7, "ok"], "open": "#bad name!", "people": ["x y"]})
    assert model.wanted_rooms == ["ok"] and model.restore_open is None and model.people() == []


def test_switcher_matches_prefixes_first_in_any_case() -> None:
    choices = ["#general", "#dev", "#devops", "@Bob", "@bobby", "@adevi"]
    assert matches(choices, "DEV") == ["#dev", "#devops", "@adevi"]
    assert matches(choices, "@bo") == ["@Bob", "@bobby"]
    assert matches(choices, "") == sorted(choices, key=str.lower)


def test_terminal_safe_escapes_invisible_characters() -> None:
    assert terminal_safe("a\u202eb\u200bc\u2066d\ufeff\x1b") == (
        "a<U+202E>b<U+200B>c<U+2066>d<U+FEFF>\\x1b"
    )
    assert terminal_safe("tab\tand é 😀") == "tab\tand é 😀"


def test_a_name_is_shortened_to_the_longest_start_that_fits() -> None:
    def within(width: int) -> Callable[[str], bool]:
        return lambda shown: len(shown) <= width

    assert elided("alice", within(5)) == "alice"  # fits: as it is
    assert elided("bartholomew", within(6)) == "barth…"
    assert elided("bartholomew", within(1)) == "b…"  # never less than one letter
    assert elided("q", within(0)) == "q"
