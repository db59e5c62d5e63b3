"""Which conversation a message belongs to, and the requests addressed to one.

Shared by the terminal and the Tk client (no Tk here).  A conversation is a room (``#dev``)
or a direct conversation with one person (``@bob``); PROTOCOL.md, sections Rooms, Direct
messages, Older history and search.  ``say``, ``names`` and ``page`` turn a conversation into
the keys of a typed request (``common.requests``); requests that name no conversation
(``Join``, ``Rooms``, ``Search``...) are built from those classes directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.message import GENERAL_ROOM, Message
from common.protocol import room_name
from common.requests import History, Names, SendMessage

PAGE_SIZE = 50  # older messages asked for at a time (the server gives at most 200)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A room or a direct conversation.  ``key`` is what compares: room names are lower
    case already and user names are unique without regard to case, so ``@Bob`` is ``@bob``;
    ``name`` keeps the spelling to show."""

    direct: bool
    key: str
    name: str = field(compare=False)

    @classmethod
    def room(cls, name: str) -> Conversation:
        room = room_name(name) or name.lower()
        return cls(False, room, room)

    @classmethod
    def with_user(cls, name: str) -> Conversation:
        return cls(True, name.lower(), name)

    @property
    def label(self) -> str:
        """``#room`` or ``@name``: how lists, prompts and saved settings spell it."""
        return ("@" if self.direct else "#") + self.name

    @classmethod
    def from_label(cls, label: str) -> Conversation | None:
        """The inverse of ``label`` (None for anything else, such as a hand-edited file)."""
        if label.startswith("#") and room_name(label[1:]) is not None:
            return cls.room(label[1:])
        if label.startswith("@") and 1 < len(label) <= 33 and label[1:].isalnum():
            return cls.with_user(label[1:])
        return None


GENERAL = Conversation.room(GENERAL_ROOM)


def conversation_of(message: Message, me: str) -> Conversation:
    """Where a message goes: its direct conversation (seen from ``me``) or its room."""
    peer = message.peer_of(me) if me else None
    if peer is not None:
        return Conversation.with_user(peer)
    if message.to is not None:  # no own name known yet: the sender is the other side
        return Conversation.with_user(message.user)
    return Conversation.room(message.room or GENERAL_ROOM)


def say(conversation: Conversation, text: str, nonce: str | None = None) -> SendMessage:
    """A message to a room (``general`` leaves ``room`` out, so the request stays exactly the
    classic one) or to one person."""
    if conversation.direct:
        return SendMessage(text, nonce, to=conversation.name)
    room = None if conversation.key == GENERAL_ROOM else conversation.key
    return SendMessage(text, nonce, room=room)


def names(conversation: Conversation) -> Names:
    """Who is in a room; for ``general`` or a direct conversation, who is on the server (the
    classic request, with no ``room``)."""
    direct_or_general = conversation.direct or conversation.key == GENERAL_ROOM
    return Names(None if direct_or_general else conversation.key)


def page(conversation: Conversation, before: int, limit: int = PAGE_SIZE) -> History:
    """The ``limit`` messages of the conversation older than id ``before``."""
    if conversation.direct:
        return History(with_user=conversation.name, before=before, limit=limit)
    return History(room=conversation.key, before=before, limit=limit)
