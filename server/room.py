"""The chat room: who is logged in, what was said, and who hears it.

``Room`` is the small interface the connection handlers use: ``join``, ``leave``, ``post``,
``names``.  ``LocalRoom`` implements it for one process, with the user registry, the recent
history and the nonce memory behind one lock, so that "store, then broadcast" happens in the
same order for everybody.  A room shared by several server processes (Redis pub/sub, say) only
has to implement the same four calls.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from common.message import Message
from common.protocol import Event, MessageParser
from common.timestamps import now_utc
from server.history import HistoryStore

log = logging.getLogger(__name__)

NONCE_MEMORY = 1000  # a user's nonce is remembered over their last this-many messages


class Member(Protocol):
    """What the room needs of a logged-in connection."""

    @property
    def name(self) -> str | None: ...

    def deliver(self, data: bytes) -> None:
        """Queue already-encoded bytes for this member; never blocks."""

    def welcome(self, users: list[str], history: list[Message]) -> None:
        """Queue the login answer; called under the room lock, before any later broadcast."""


class NameTaken(Exception):
    """The name (in any case) belongs to someone logged in."""


class Room(Protocol):
    def join(self, name: str, member: Member) -> None:
        """Register ``member`` as ``name``; ``member.welcome`` runs before anyone else hears of
        it. Raises ``NameTaken``."""

    def leave(self, name: str, member: Member) -> None:
        """Unregister; tell the others.  Does nothing if ``member`` is not ``name``'s holder."""

    def post(self, name: str, member: Member, text: str, nonce: str | None) -> Message:
        """Store a message, then deliver it to every member (the sender included)."""

    def names(self) -> list[str]:
        """Logged-in names, sorted."""


@dataclass
class _Nonces:
    """One user's nonces over their last ``NONCE_MEMORY`` messages."""

    order: deque[str | None] = field(default_factory=lambda: deque(maxlen=NONCE_MEMORY))
    by_nonce: dict[str, Message] = field(default_factory=dict)

    def remember(self, message: Message) -> None:
        if len(self.order) == NONCE_MEMORY:
            old = self.order[0]
            if old is not None and old != message.nonce:
                self.by_nonce.pop(old, None)
        self.order.append(message.nonce)
        if message.nonce is not None:
            self.by_nonce[message.nonce] = message


class LocalRoom:
    """A room in this process: the one owner of users, recent history and nonces."""

    def __init__(self, store: HistoryStore, history_size: int = 100) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._members: dict[str, tuple[str, Member]] = {}  # lower-case name -> (name, member)
        self._recent: deque[Message] = deque(store.recent(history_size), maxlen=history_size)
        self._nonces: dict[str, _Nonces] = {}
        self.history_size = history_size

    # ------------------------------------------------------------------ Room
    def join(self, name: str, member: Member) -> None:
        key = name.lower()
        with self._lock:
            if key in self._members:
                raise NameTaken(self._members[key][0])
            self._members[key] = (name, member)
            member.welcome(self._sorted_names(), list(self._recent))
            event = MessageParser.encode(
                MessageParser.info(f"{name} joined the chat", event=Event.JOIN, user=name)
            )
            for other_key, (_, other) in self._members.items():
                if other_key != key:
                    other.deliver(event)

    def leave(self, name: str, member: Member) -> None:
        key = name.lower()
        with self._lock:
            held = self._members.get(key)
            if held is None or held[1] is not member:
                return
            del self._members[key]
            event = MessageParser.encode(
                MessageParser.info(f"{name} left the chat", event=Event.LEAVE, user=name)
            )
            for _, other in self._members.values():
                other.deliver(event)

    def post(self, name: str, member: Member, text: str, nonce: str | None) -> Message:
        key = name.lower()
        with self._lock:
            nonces = self._nonces_of(name)
            if nonce is not None:
                original = nonces.by_nonce.get(nonce)
                if original is not None:
                    member.deliver(MessageParser.encode(original.to_response()))
                    return original
            message = self._store.insert(Message(text, name, now_utc(), None, nonce))
            nonces.remember(message)
            self._recent.append(message)
            data = MessageParser.encode(message.to_response())
            for _, other in self._members.values():
                other.deliver(data)
            log.debug("message %d from %s (%d bytes)", message.id, key, len(data))
            return message

    def names(self) -> list[str]:
        with self._lock:
            return self._sorted_names()

    # -------------------------------------------------------------- helpers
    def member_count(self) -> int:
        with self._lock:
            return len(self._members)

    def broadcast_info(self, text: str, **extra: object) -> None:
        """Send a server ``info`` to every member (used for the shutdown notice)."""
        data = MessageParser.encode(MessageParser.info(text, **extra))
        with self._lock:
            for _, member in self._members.values():
                member.deliver(data)

    def _sorted_names(self) -> list[str]:
        return sorted(name for name, _ in self._members.values())

    def _nonces_of(self, name: str) -> _Nonces:
        key = name.lower()
        nonces = self._nonces.get(key)
        if nonces is None:
            nonces = _Nonces()
            for message in self._store.recent_by(name, NONCE_MEMORY):
                nonces.remember(message)
            self._nonces[key] = nonces
        return nonces
