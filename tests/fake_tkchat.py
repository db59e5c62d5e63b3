"""A small stand-in for a TkChat server's conversation extensions (rooms, direct messages,
paging, search, registered names), as a ``tests.fake_ktn`` script.

It answers the way PROTOCOL.md (Rooms, Direct messages, Older history and search, Registered
names) says a TkChat server does, for one client at a time, so the clients' side of those
requests can be tested on their own.  It keeps what was said, numbered with ids, and the
password the name needs once registered.  Every object is built by ``common.protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.message import GENERAL_ROOM, Message
from common.protocol import MessageParser
from tests.fake_ktn import FakeKTN


@dataclass
class FakeTkChat:
    """The script (call it with each request); see the module docstring."""

    password: str | None = None  # set by ``register``; a login must then carry it
    users: tuple[str, ...] = ("bob",)  # the others online
    messages: list[Message] = field(default_factory=list)
    rooms: set[str] = field(default_factory=lambda: {GENERAL_ROOM})
    me: str = ""

    def add(
        self, sender: str, text: str, room: str | None = None, to: str | None = None
    ) -> Message:
        """Store a message with the next id."""
        message = Message(text, sender, id=len(self.messages) + 1, room=None if to else room, to=to)
        self.messages.append(message)
        return message

    def _of(self, room: str | None, with_user: str | None) -> list[Message]:
        if with_user is not None:
            return [m for m in self.messages if m.to and with_user in (m.to, m.user)]
        room = None if room == GENERAL_ROOM else room
        return [m for m in self.messages if not m.to and m.room == room]

    def __call__(self, fake: FakeKTN, request: dict[str, Any]) -> list[bytes]:
        return [MessageParser.encode(answer) for answer in self.answer(request)]

    def answer(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        kind = request.get("request")
        content = request.get("content")
        if kind == "login":
            if self.password is not None and request.get("password") != self.password:
                return [MessageParser.error("auth_failed", "wrong password", field="password")]
            self.me = str(content)
            users = sorted([self.me, *self.users])
            return [MessageParser.info("Welcome", users=users), MessageParser.history([])]
        if kind == "register":
            self.password = request.get("password")
            return [MessageParser.info(f"{self.me} is registered")]
        if kind == "join":
            room = str(content).lower()
            self.rooms.add(room)
            joined = MessageParser.info(
                f"joined {room}", event="joined", room=room, users=[self.me]
            )
            return [joined, MessageParser.history(self._of(room, None)[-100:], room=room)]
        if kind == "part":
            self.rooms.discard(str(content))
            return [MessageParser.info("left", event="parted", room=content)]
        if kind == "rooms":
            listed = [{"name": r, "users": 1} for r in sorted(self.rooms)]
            return [MessageParser.info("rooms", rooms=listed)]
        if kind == "msg":
            message = self.add(self.me, str(content), request.get("room"), request.get("to"))
            return [message.to_response()]
        if kind == "history":
            before = int(request["before"])
            limit = int(request.get("limit", 100))
            mine = self._of(request.get("room"), request.get("with"))
            older = [m for m in mine if m.id is not None and m.id < before]
            page = older[-limit:]
            where = {"room": request["room"]} if "room" in request else {"with": request["with"]}
            more = len(older) > len(page)
            return [MessageParser.history(page, before=before, more=more, **where)]
        if kind == "search":
            words = str(content).lower().split()
            found = [m for m in self.messages if all(w in m.text.lower() for w in words)]
            return [MessageParser.history(found, search=content)]
        if kind == "names":
            return [MessageParser.info("names", users=sorted([self.me, *self.users]))]
        if kind == "logout":
            return [MessageParser.info("bye")]
        return [MessageParser.error("unknown_request", "unknown request")]
