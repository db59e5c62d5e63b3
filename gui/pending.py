"""What the user sent and the server has not echoed yet, and which messages were shown already.

Split out of ``Session`` (which owns the connection and its states) because these are the two
rules that keep a chat honest across reconnects, and they are easier to read alone:

- ``PendingMessages``: every message gets a client nonce (PROTOCOL.md, ``msg``) and stays
  pending until its echo arrives; after a reconnect the session sends what is still pending
  again with the same nonces, so the server stores each once.  A KTN server that drops nonces
  settles the oldest pending message with the same text instead.
- ``SeenMessages``: a message shown once (live, then again in the login history of a
  reconnect) is not shown twice: by id where the server numbers messages, else by sender,
  text and time among the last few thousand.

Tk thread only, like the session that owns both.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from common.message import Message
from gui.net.conversation_requests import GENERAL, Conversation

SEEN_KEYS = 5000  # messages without ids remembered for de-duplication


@dataclass(slots=True)
class Pending:
    """A message the user sent that the server has not echoed yet."""

    nonce: str
    text: str
    sends: int = 0
    conversation: Conversation = GENERAL  # where it goes (a room or a direct message)


class PendingMessages:
    """The pending messages, oldest first, by nonce."""

    def __init__(self) -> None:
        self._by_nonce: OrderedDict[str, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_nonce)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._by_nonce

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._by_nonce.values()))

    def values(self) -> list[Pending]:
        return list(self._by_nonce.values())

    def add(self, text: str, conversation: Conversation = GENERAL) -> Pending:
        """A new message, with a fresh nonce."""
        return self.keep(Pending(uuid.uuid4().hex[:20], text, conversation=conversation))

    def keep(self, pending: Pending) -> Pending:
        """A message with its own nonce (one kept from an earlier run, say)."""
        self._by_nonce[pending.nonce] = pending
        return pending

    def drop(self, nonce: str) -> Pending | None:
        return self._by_nonce.pop(nonce, None)

    def settle(self, message: Message, *, from_history: bool) -> str | None:
        """The nonce of the pending message that ``message`` (the user's own) is the echo of,
        now settled; ``None`` when it settles none."""
        if message.nonce is not None:
            return message.nonce if self.drop(message.nonce) is not None else None
        if from_history:
            return None
        # A KTN server that drops nonces: the oldest pending message with this text.
        for nonce, pending in self._by_nonce.items():
            if pending.text == message.text and pending.sends:
                del self._by_nonce[nonce]
                return nonce
        return None

    def clear(self) -> None:
        self._by_nonce.clear()


class SeenMessages:
    """Which messages were shown already (see the module docstring)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._keys: set[tuple[str, str, str]] = set()
        self._order: deque[tuple[str, str, str]] = deque()

    def first_time(self, message: Message, *, from_history: bool) -> bool:
        """True the first time ``message`` comes (and from then on it counts as seen)."""
        if message.id is not None:
            if message.id in self._ids:
                return False
            self._ids.add(message.id)
            return True
        key = (message.user, message.text, message.timestamp.isoformat())
        if from_history and key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > SEEN_KEYS:
            self._keys.discard(self._order.popleft())
        return True

    def clear(self) -> None:
        self._ids.clear()
        self._keys.clear()
        self._order.clear()
