"""The server's answers, built as typed responses, are byte for byte what it sent as dicts.

Until the typed path, the server built each answer as a ``dict`` with ``MessageParser``'s
builders (``error``, ``info``, ``history_within``, ``history_chunks``, ``Message.to_response``)
and encoded it with ``MessageParser.encode``.  ``_Legacy`` below is a verbatim copy of those
builders (with the clock passed in, so that both sides can be compared); every shape of answer
the server sends, at each of its call sites, is built both ways here and must give the same
bytes: same keys, same key order, same values, same separators.  Classic KTN programs read these
bytes, some of them with ``recv(1024)`` and naive parsers, so "the same JSON" is not enough.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common.connection import ServerConnection
from common.message import Message
from common.protocol import (
    CLASSIC_HISTORY_BYTES,
    SERVER_SENDER,
    AuthField,
    ErrorCode,
    ErrorResponse,
    Event,
    HistoryResponse,
    InfoResponse,
    MessageResponse,
    ResponseType,
    RoomInfo,
    encode_response,
    history_chunks,
    history_item,
    history_within,
)
from common.timestamps import format_timestamp


class _Legacy:
    """The dict builders the server used before typed responses (copied, not imported)."""

    @staticmethod
    def encode(payload: dict[str, Any]) -> bytes:
        return (json.dumps(payload, separators=(", ", ": ")) + "\n").encode("ascii")

    @staticmethod
    def server_response(
        response: ResponseType, content: Any, *, moment: datetime, **extra: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "timestamp": format_timestamp(moment),
            "sender": SERVER_SENDER,
            "response": response.value,
            "content": content,
        }
        payload.update(extra)
        return payload

    @classmethod
    def error(cls, code: str, text: str, **extra: Any) -> dict[str, Any]:
        return cls.server_response(ResponseType.ERROR, text, code=code, **extra)

    @classmethod
    def info(cls, text: str, **extra: Any) -> dict[str, Any]:
        return cls.server_response(ResponseType.INFO, text, **extra)

    @staticmethod
    def rooms_list(rooms: list[RoomInfo]) -> list[dict[str, Any]]:
        return [{"name": r.name, "users": r.users} for r in rooms]

    @classmethod
    def history_within(
        cls, messages: list[Message], max_bytes: int, moment: datetime
    ) -> dict[str, Any]:
        items = [history_item(m) for m in messages]
        payload = cls.server_response(ResponseType.HISTORY, items, moment=moment)
        size = len(cls.encode(payload))
        dropped = 0
        while size > max_bytes and dropped < len(items):
            size -= len(json.dumps(items[dropped])) + (2 if dropped < len(items) - 1 else 0)
            dropped += 1
        payload["content"] = items[dropped:]
        return payload

    @classmethod
    def history_chunks(
        cls, messages: list[Message], max_bytes: int, moment: datetime
    ) -> list[dict[str, Any]]:
        empty = len(cls.encode(cls.server_response(ResponseType.HISTORY, [], moment=moment)))
        groups: list[list[str]] = []
        size = max_bytes
        for message in messages:
            item = history_item(message)
            cost = len(json.dumps(item))
            if groups and size + 2 + cost <= max_bytes:
                groups[-1].append(item)
                size += 2 + cost
            else:
                groups.append([item])
                size = empty + cost
        return [
            cls.server_response(ResponseType.HISTORY, items, moment=moment)
            for items in groups or [[]]
        ]


old = _Legacy
send = ServerConnection().send

# Any text, lone surrogates and emoji included: the escaping must agree too.
texts = st.text(max_size=60)
long_texts = st.text(max_size=400)
names = st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True)
rooms = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
ids = st.integers(min_value=1, max_value=2**53)
moments = st.integers(min_value=0, max_value=4_000_000_000_000).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
users = st.lists(names, max_size=8)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    direct = draw(st.booleans())
    return Message(
        draw(long_texts),
        draw(names),
        draw(moments),
        draw(ids | st.none()),
        draw(st.text(max_size=64) | st.none()),
        None if direct else draw(rooms | st.none()),
        draw(names) if direct else None,
    )


histories = st.lists(messages(), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ErrorCode), texts, moments, st.sampled_from(AuthField) | st.none())
def test_errors(code: ErrorCode, text: str, moment: datetime, field: AuthField | None) -> None:
    extra = {} if field is None else {"field": field.value}
    legacy = old.encode(old.error(code, text, moment=moment, **extra))
    assert send(ErrorResponse(text, code, moment, None if field is None else field.value)) == (
        legacy
    )
    assert encode_response(ErrorResponse(text, code, moment, extra.get("field"))) == legacy


@settings(max_examples=300, deadline=None)
@given(
    text=texts,
    moment=moments,
    crowd=users,
    room=rooms,
    name=names,
    listed=st.lists(st.builds(RoomInfo, rooms, st.integers(0, 9))),
)
def test_infos_of_every_call_site(
    *, text: str, moment: datetime, crowd: list[str], room: str, name: str, listed: list[RoomInfo]
) -> None:
    who = tuple(crowd)
    pairs: list[tuple[dict[str, Any], InfoResponse]] = [
        # register, logout, help
        (old.info(text, moment=moment), InfoResponse(text, moment)),
        # welcome, names of general
        (old.info(text, moment=moment, users=crowd), InfoResponse(text, moment, users=who)),
        # names of a room
        (
            old.info(text, moment=moment, users=crowd, room=room),
            InfoResponse(text, moment, users=who, room=room),
        ),
        # joined
        (
            old.info(text, moment=moment, event=Event.JOINED, room=room, users=crowd),
            InfoResponse(text, moment, Event.JOINED, room=room, users=who),
        ),
        # parted
        (
            old.info(text, moment=moment, event=Event.PARTED, room=room),
            InfoResponse(text, moment, Event.PARTED, room=room),
        ),
        # rooms
        (
            old.info(text, moment=moment, rooms=old.rooms_list(listed)),
            InfoResponse(text, moment, rooms=tuple(listed)),
        ),
        # pong, shutdown
        (old.info("", moment=moment, event=Event.PONG), InfoResponse("", moment, Event.PONG)),
        (
            old.info(text, moment=moment, event=Event.SHUTDOWN),
            InfoResponse(text, moment, "shutdown"),
        ),
    ]
    for event in (Event.JOIN, Event.LEAVE):
        # join/leave of general, and of a room (server/room.py)
        pairs.append(
            (
                old.info(text, moment=moment, event=event, user=name),
                InfoResponse(text, moment, event, user=name),
            )
        )
        pairs.append(
            (
                old.info(text, moment=moment, event=event, room=room, user=name),
                InfoResponse(text, moment, event, user=name, room=room),
            )
        )
    for legacy, typed in pairs:
        assert send(typed) == old.encode(legacy), legacy
        assert encode_response(typed) == old.encode(legacy), legacy


@settings(max_examples=200, deadline=None)
@given(texts, moments, names, rooms | st.none(), st.sampled_from([Event.JOIN, Event.LEAVE]))
def test_cluster_room_events_keep_their_key_order(
    text: str, moment: datetime, name: str, room: str | None, event: Event
) -> None:
    """server/cluster.py put "room" after "user" (server/room.py puts it before)."""
    extra = {} if room is None else {"room": room}
    legacy = old.encode(old.info(text, moment=moment, event=event, user=name, **extra))
    typed = InfoResponse(text, moment, event, user=name, room=room)
    assert encode_response(typed, room_last=True) == legacy


@settings(max_examples=300, deadline=None)
@given(messages())
def test_messages(message: Message) -> None:
    legacy = old.encode(message.to_response())
    assert send(MessageResponse(message)) == legacy
    assert encode_response(MessageResponse(message)) == legacy


@settings(max_examples=300, deadline=None)
@given(histories, st.integers(100, 4000))
def test_history_within_keeps_the_same_newest_messages(
    history: list[Message], max_bytes: int
) -> None:
    typed = history_within(history, max_bytes)
    assert send(typed) == old.encode(old.history_within(history, max_bytes, typed.timestamp))


@settings(max_examples=300, deadline=None)
@given(
    history=histories,
    max_bytes=st.integers(100, 4000),
    room=rooms,
    other=names,
    before=ids | st.none(),
    more=st.booleans(),
    words=texts,
    in_room=st.booleans(),
)
def test_history_answers_with_their_keys(
    *,
    history: list[Message],
    max_bytes: int,
    room: str,
    other: str,
    before: int | None,
    more: bool,
    words: str,
    in_room: bool,
) -> None:
    """joined (``room``), a page (``room`` or ``with``, ``before`` even when null, ``more``)
    and a search (``search``, then ``room`` if given), as server/handler.py adds them."""
    typed = history_within(history, max_bytes)
    moment = typed.timestamp

    joined = old.history_within(history, max_bytes, moment)
    joined["room"] = room
    assert send(replace(typed, room=room)) == old.encode(joined)

    page = old.history_within(history, max_bytes, moment)
    page.update({"room": room}, before=before, more=more)
    assert send(replace(typed, room=room, before=before, more=more)) == old.encode(page)

    direct = old.history_within(history, max_bytes, moment)
    direct.update({"with": other}, before=before, more=more)
    assert send(replace(typed, with_user=other, before=before, more=more)) == old.encode(direct)

    found = old.history_within(history, max_bytes, moment)
    found["search"] = words
    if in_room:
        found["room"] = room
    assert send(replace(typed, search=words, room=room if in_room else None)) == old.encode(found)


@settings(max_examples=300, deadline=None)
@given(histories, st.sampled_from([CLASSIC_HISTORY_BYTES, 200, 600, 4000]))
def test_classic_history_chunks(history: list[Message], max_bytes: int) -> None:
    typed = history_chunks(history, max_bytes)
    legacy = old.history_chunks(history, max_bytes, typed[0].timestamp)
    assert [send(chunk) for chunk in typed] == [old.encode(chunk) for chunk in legacy]


def test_a_newest_page_says_before_null() -> None:
    """Pinned literally: a page answer without "before" still carries the key, as null."""
    moment = datetime(2024, 5, 6, 7, 8, 9, 10_000, tzinfo=UTC)
    answer = HistoryResponse((), timestamp=moment, room="dev", before=None, more=False)
    assert send(answer) == (
        b'{"timestamp": "2024-05-06T07:08:09.010Z", "sender": "server", "response": "history",'
        b' "content": [], "room": "dev", "before": null, "more": false}\n'
    )
