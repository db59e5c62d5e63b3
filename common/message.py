"""``Message``: one chat message, the value both ends store, send and show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.timestamps import format_timestamp, now_utc

GENERAL_ROOM = "general"  # every login is in it; a message without "room" belongs to it


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message: what was said, by whom, when (UTC), and its server-wide id.

    ``id`` is ``None`` for messages from KTN servers that do not number them; ``nonce`` is the
    sender's own tag that makes resending after a reconnect safe (PROTOCOL.md, ``msg``).
    ``room`` is the room it was said in (``None`` means ``general``, the only room a classic
    server or client knows); ``to`` is the recipient of a direct message (then ``room`` is
    ``None``).
    """

    text: str
    user: str
    timestamp: datetime = field(default_factory=now_utc)
    id: int | None = None
    nonce: str | None = None
    room: str | None = None
    to: str | None = None

    def peer_of(self, viewer: str) -> str | None:
        """For a direct message, the other person as seen by ``viewer`` (any case); else None."""
        if self.to is None:
            return None
        return self.to if self.user.lower() == viewer.lower() else self.user

    def get_message(self) -> str:
        return self.text

    def get_user(self) -> str:
        return self.user

    def get_timestamp(self) -> datetime:
        return self.timestamp

    def to_response(self) -> dict[str, Any]:
        """The ``message`` response object for this message, ready for ``MessageParser.encode``."""
        obj: dict[str, Any] = {
            "timestamp": format_timestamp(self.timestamp),
            "sender": self.user,
            "response": "message",
            "content": self.text,
        }
        if self.id is not None:
            obj["id"] = self.id
        if self.nonce is not None:
            obj["nonce"] = self.nonce
        if self.room is not None and self.room != GENERAL_ROOM:
            obj["room"] = self.room
        if self.to is not None:
            obj["to"] = self.to
        return obj
