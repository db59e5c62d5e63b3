"""``ConversationModel``: the Tk window's conversations as plain data (no Tk, easy to test).

It owns the list the window shows beside the message pane - rooms first (``general`` at the
top), then the people one has direct messages with - and for each conversation its unread
count, whether something in it asks for the user (a mention, or any direct message), its
members (rooms), and where paging back stands (the oldest id shown, whether older ones exist,
whether a page is on its way).  It also says which conversation is open.

What outlives the connection: ``SavedConversations`` keeps, per server (``host:port``), the
rooms joined and the conversation that was open, so a reconnect or a restart joins them
again and opens the same one (PROTOCOL.md, Rooms: membership does not persist on the server).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.message import GENERAL_ROOM
from gui.net.conversation_requests import GENERAL, Conversation

log = logging.getLogger(__name__)

CONVERSATIONS_FILE = "conversations.json"
MAX_SAVED_SERVERS = 50


@dataclass(slots=True)
class ConversationState:
    unread: int = 0
    mention: bool = False  # a mention or a direct message not seen yet
    members: list[str] = field(default_factory=list)
    oldest_id: int | None = None  # the oldest message id shown
    more: bool = True  # older messages may exist (until a page says ``"more": false``)
    loading: bool = False  # a page request is on its way
    joined: bool = False  # rooms: the server has confirmed the join on this connection


class ConversationModel:
    """See the module docstring.  ``extended`` is False against a classic KTN server: then
    only ``general`` exists."""

    def __init__(self) -> None:
        self.me = ""
        self.extended = False
        self.states: dict[Conversation, ConversationState] = {GENERAL: ConversationState()}
        self.current = GENERAL
        self.wanted_rooms: list[str] = []  # rooms to (re)join once online
        self.restore_open: Conversation | None = None  # to open once its room is joined

    # ----------------------------------------------------------------- lists
    def rooms(self) -> list[Conversation]:
        others = sorted((c for c in self.states if not c.direct and c != GENERAL), key=_by_key)
        return [GENERAL, *others]

    def people(self) -> list[Conversation]:
        return sorted((c for c in self.states if c.direct), key=_by_key)

    def all(self) -> list[Conversation]:
        return [*self.rooms(), *self.people()] if self.extended else [GENERAL]

    def state(self, conversation: Conversation) -> ConversationState:
        state = self.states.get(conversation)
        if state is None:
            state = self.states[conversation] = ConversationState()
        return state

    def is_joined(self, room: str) -> bool:
        state = self.states.get(Conversation.room(room))
        return state is not None and state.joined

    # --------------------------------------------------------------- changes
    def reset(self, me: str) -> None:
        """A new login (another server or name): only ``general``."""
        self.me = me
        self.extended = False
        self.states = {GENERAL: ConversationState()}
        self.current = GENERAL
        self.wanted_rooms = []
        self.restore_open = None

    def open(self, conversation: Conversation) -> None:
        """Show this conversation: what was unread in it is seen now."""
        state = self.state(conversation)
        state.unread = 0
        state.mention = False
        self.current = conversation

    def arrived(self, conversation: Conversation, *, mention: bool, seen: bool) -> None:
        """A live message from someone else.  ``seen``: the conversation is open in a focused
        window.  A direct message always counts as asking for the user."""
        state = self.state(conversation)
        if not seen:
            state.unread += 1
            state.mention = state.mention or mention or conversation.direct

    def joined(self, room: str, members: list[str]) -> Conversation:
        conversation = Conversation.room(room)
        state = self.state(conversation)
        state.joined = True
        state.members = _sorted_names(members)
        if room not in self.wanted_rooms and room != GENERAL_ROOM:
            self.wanted_rooms.append(room)
        return conversation

    def parted(self, room: str) -> None:
        conversation = Conversation.room(room)
        self.states.pop(conversation, None)
        if room in self.wanted_rooms:
            self.wanted_rooms.remove(room)
        if self.current == conversation:
            self.open(GENERAL)

    def member_joined(self, room: str, user: str) -> None:
        state = self.state(Conversation.room(room))
        state.members = _sorted_names([*state.members, user])

    def member_left(self, room: str, user: str) -> None:
        state = self.state(Conversation.room(room))
        state.members = [m for m in state.members if m.lower() != user.lower()]

    def disconnected(self) -> None:
        """Membership does not outlive the connection: rooms are joined again when back."""
        for state in self.states.values():
            state.joined = False
            state.loading = False

    def shown_ids(self, conversation: Conversation, ids: list[int]) -> None:
        """Messages with these ids are in the conversation's pane."""
        if not ids:
            return
        state = self.state(conversation)
        oldest = min(ids)
        if state.oldest_id is None or oldest < state.oldest_id:
            state.oldest_id = oldest

    def page_request(self, conversation: Conversation) -> int | None:
        """The ``before`` id for the next page back, or None when no page is due (one is on
        its way, nothing older exists, or the server has no paging)."""
        state = self.state(conversation)
        if not self.extended or state.loading or not state.more:
            return None
        state.loading = True
        return state.oldest_id if state.oldest_id is not None else _NEWEST

    def page_arrived(self, conversation: Conversation, ids: list[int], more: bool | None) -> None:
        state = self.state(conversation)
        state.loading = False
        self.shown_ids(conversation, ids)
        state.more = bool(more) and bool(ids)

    # ------------------------------------------------------------ persistence
    def saved(self) -> dict[str, Any]:
        return {
            "rooms": list(self.wanted_rooms),
            "open": self.current.label,
            "people": [c.name for c in self.people()],
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Remember what a previous run had open (joined once online)."""
        rooms = saved.get("rooms")
        if isinstance(rooms, list):
            self.wanted_rooms = [r for r in rooms if isinstance(r, str) and r != GENERAL_ROOM]
        people = saved.get("people")
        if isinstance(people, list):
            for name in people:
                if isinstance(name, str) and name.isascii() and name.isalnum():
                    self.state(Conversation.with_user(name))
        label = saved.get("open")
        wanted = Conversation.from_label(label) if isinstance(label, str) else None
        if wanted is not None:
            self.restore_open = wanted


_NEWEST = 2**53 - 1  # "before" for the first page of a conversation with no id known


def _by_key(conversation: Conversation) -> str:
    return conversation.key


def _sorted_names(names: list[str]) -> list[str]:
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(name.lower(), name)
    return sorted(unique.values(), key=str.lower)


class SavedConversations:
    """The rooms and open conversation per server, in ``conversations.json`` beside the
    settings.  An unreadable file is logged and treated as empty; writes are atomic."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CONVERSATIONS_FILE
        self._servers: dict[str, Any] = {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return
        if isinstance(raw, dict):
            self._servers = {k: v for k, v in raw.items() if isinstance(v, dict)}

    def get(self, server: str) -> dict[str, Any]:
        value = self._servers.get(server)
        return value if isinstance(value, dict) else {}

    def put(self, server: str, saved: dict[str, Any]) -> None:
        self._servers.pop(server, None)
        self._servers[server] = saved  # the newest last; the oldest go past the limit
        while len(self._servers) > MAX_SAVED_SERVERS:
            del self._servers[next(iter(self._servers))]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._servers, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save conversations to %s: %s", self.path, exc)
