"""The two rules behind "nothing typed is lost, nothing shown twice" (gui/pending.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from common.message import Message
from gui.net.conversation_requests import Conversation
from gui.pending import Pending, PendingMessages, SeenMessages

WHEN = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_an_echo_settles_its_own_pending_message_by_nonce() -> None:
    pending = PendingMessages()
    first = pending.add("hello")
    second = pending.add("hello", Conversation.room("dev"))
    echo = Message("hello", "ann", WHEN, 7, second.nonce, "dev")
    assert pending.settle(echo, from_history=False) == second.nonce
    assert [p.nonce for p in pending] == [first.nonce]
    assert pending.settle(echo, from_history=False) is None  # settled once


def test_a_server_that_drops_nonces_settles_the_oldest_sent_one_with_that_text() -> None:
    pending = PendingMessages()
    unsent = pending.add("same")
    sent = pending.keep(Pending("n2", "same", sends=1))
    echo = Message("same", "ann", WHEN)
    assert pending.settle(echo, from_history=True) is None  # history cannot tell whose
    assert pending.settle(echo, from_history=False) == sent.nonce
    assert unsent.nonce in pending and len(pending) == 1


def test_seen_messages_by_id_and_by_content_without_ids() -> None:
    seen = SeenMessages()
    numbered = Message("a", "ann", WHEN, 1)
    assert seen.first_time(numbered, from_history=False)
    assert not seen.first_time(numbered, from_history=True)
    bare = Message("b", "bob", WHEN)
    assert seen.first_time(bare, from_history=False)
    assert not seen.first_time(bare, from_history=True)  # the reconnect's history repeats it
    assert seen.first_time(bare, from_history=False)  # said again live: a new message
