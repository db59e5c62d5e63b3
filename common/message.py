"""``Message``: one chat message, the value both ends store, send and show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.timestamps import format_timestamp, now_utc


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message: what was said, by whom, when (UTC), and its server-wide id.

    ``id`` is ``None`` for messages from KTN servers that do not number them; ``nonce`` is the
    sender's own tag that makes resending after a reconnect safe (PROTOCOL.md, ``msg``).
    """

    text: str
    user: str
    timestamp: datetime = field(default_factory=now_utc)
    id: int | None = None
    nonce: str | None = None

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
        return obj

    @classmethod
    def from_response(cls, obj: dict[str, Any]) -> Message:
        """Read a ``message`` response leniently (see ``MessageParser.parse_message``)."""
        from common.protocol import MessageParser  # noqa: PLC0415 - avoids an import cycle

        return MessageParser.message_from_object(obj)
