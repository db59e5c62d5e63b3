"""The sans-I/O connection objects: every event survives the trip through bytes, for any split.

Requests go ``ClientConnection.send`` -> bytes -> ``ServerConnection.receive_data`` ->
``next_event``; responses the other way.  The bytes are cut at arbitrary points (hypothesis
picks them), so framing across reads is part of every check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common.connection import NEED_DATA, ClientConnection, ServerConnection
from common.decoder import DecodeError
from common.message import Message
from common.protocol import (
    CLIENT_ID,
    ErrorResponse,
    HistoryResponse,
    InfoResponse,
    MessageParser,
    MessageResponse,
    Response,
    RoomInfo,
    encode_response,
)
from common.requests import (
    Help,
    History,
    Join,
    Login,
    Logout,
    Names,
    Part,
    Ping,
    Register,
    Request,
    Rooms,
    Search,
    SendMessage,
)

texts = st.text(max_size=40)
names = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
rooms = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True).filter(lambda r: r != "general")
maybe = st.none
ids = st.integers(min_value=1, max_value=2**53)
# The wire carries UTC milliseconds.
moments = st.integers(min_value=0, max_value=4_000_000_000_000).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)

requests: st.SearchStrategy[Request] = st.one_of(
    st.builds(Login, names, texts | maybe(), texts | maybe(), texts | maybe()),
    st.just(Logout()),
    st.builds(SendMessage, texts, texts | maybe(), rooms | maybe(), names | maybe()),
    st.builds(Names, rooms | maybe()),
    st.just(Help()),
    st.just(Ping()),
    st.builds(Join, rooms),
    st.builds(Part, rooms),
    st.just(Rooms()),
    st.builds(History, rooms | maybe(), names | maybe(), ids | maybe(), ids | maybe()),
    st.builds(Search, texts, rooms | maybe(), ids | maybe()),
    st.builds(Register, texts, texts | maybe()),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    direct = draw(st.booleans())
    return Message(
        draw(texts),
        draw(names),
        draw(moments),
        draw(ids | maybe()),
        draw(texts | maybe()),
        None if direct else draw(rooms | maybe()),
        draw(names) if direct else None,
    )


# A text without "[" : a classic server's names answer is read out of such brackets.
plain = st.text(alphabet=st.characters(blacklist_characters="["), max_size=40)
responses: st.SearchStrategy[Response] = st.one_of(
    st.builds(ErrorResponse, texts, texts | maybe(), moments, texts | maybe()),
    st.builds(
        InfoResponse,
        plain,
        moments,
        texts | maybe(),
        names | maybe(),
        st.lists(names, max_size=5).map(tuple) | maybe(),
        rooms | maybe(),
        st.lists(st.builds(RoomInfo, rooms, st.integers(0, 999)), max_size=3).map(tuple) | maybe(),
    ),
    st.builds(MessageResponse, messages()),
    st.builds(
        HistoryResponse,
        st.lists(messages(), max_size=4).map(tuple),
        st.none(),
        moments,
        rooms | maybe(),
        names | maybe(),
        ids | maybe(),
        st.booleans() | maybe(),
        texts | maybe(),
    ),
)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_requests_survive_any_split(sent: list[Request], cuts: list[int]) -> None:
    client, server = ClientConnection(), ServerConnection()
    data = b"".join(client.send(r) for r in sent)
    got: list[object] = []
    for piece in _cut(data, cuts):
        server.receive_data(piece)
        while (event := server.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == sent


@settings(max_examples=300, deadline=None)
@given(st.lists(responses, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_responses_survive_any_split(sent: list[Response], cuts: list[int]) -> None:
    client, server = ClientConnection(), ServerConnection()
    data = b"".join(server.send(r) for r in sent)
    got: list[object] = []
    for piece in _cut(data, cuts):
        client.receive_data(piece)
        while (event := client.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == sent


@settings(max_examples=200, deadline=None)
@given(st.lists(responses, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_broadcast_encodings_survive_any_split(sent: list[Response], cuts: list[int]) -> None:
    """What a room encodes once for all its members (``encode_response``, with the cluster's
    key order too) reads back the same as ``ServerConnection.send``."""
    client = ClientConnection()
    data = b"".join(encode_response(r, room_last=i % 2 == 1) for i, r in enumerate(sent))
    got: list[object] = []
    for piece in _cut(data, cuts):
        client.receive_data(piece)
        while (event := client.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == sent


def test_shape_errors_are_bad_requests_and_the_stream_goes_on() -> None:
    server = ServerConnection()
    server.receive_data(
        b'{"request": "msg", "content": 5}\n{"request": "names", "room": 5}\n'
        b'{"request": "history", "before": "x"}\n{"request": "fly"}\n'
        b'{"request": "ping", "content": null}\n'
    )
    events = []
    while (event := server.next_event()) is not NEED_DATA:
        events.append(event)
    assert [e.code for e in events[:4] if isinstance(e, DecodeError)] == [
        "bad_request",
        "bad_request",
        "bad_request",
        "unknown_request",
    ]
    assert events[4] == Ping()


def test_non_string_password_reads_as_a_wrong_one() -> None:
    server = ServerConnection()
    server.receive_data(b'{"request": "login", "content": "ann", "password": 7}\n')
    assert server.next_event() == Login("ann", None, "", None)


def test_login_state_and_tkchat_peer() -> None:
    server = ServerConnection()
    server.accept_login(Login("ann", None))
    assert server.classic and server.user == "ann"
    client = ClientConnection()
    client.receive_data(b'{"response": "info", "content": "hi", "sender": "x"}')
    assert not client.tkchat_peer
    client.receive_data(b'{"response": "info", "content": "hi", "users": ["ann"]}')
    assert client.tkchat_peer


# The requests the clients send, as the seed built them with ``MessageParser.request`` (in
# ``gui/client.py`` and ``gui/conversation_requests.py`` then), beside their typed form.  A classic
# KTN server reads exactly these bytes, so the typed encoding must not move one of them (not
# even the order of keys).
_SEED_REQUESTS: list[tuple[dict[str, Any], Request]] = [
    (MessageParser.request("login", "ann"), Login("ann", None)),
    (MessageParser.request("login", "ann", client=CLIENT_ID), Login("ann")),
    (
        MessageParser.request(
            "login", "ann", client="tkchat-terminal/1.0", password="pw", server_password="gate"
        ),
        Login("ann", "tkchat-terminal/1.0", "pw", "gate"),
    ),
    (
        MessageParser.request("login", "ann", server_password="gate"),
        Login("ann", None, None, "gate"),
    ),
    (MessageParser.request("logout"), Logout()),
    (MessageParser.request("help"), Help()),
    (MessageParser.request("ping"), Ping()),
    (MessageParser.request("names"), Names()),
    (MessageParser.request("names", room="dev"), Names("dev")),
    (MessageParser.request("msg", "hi"), SendMessage("hi")),
    (MessageParser.request("msg", "hi", nonce="n1"), SendMessage("hi", "n1")),
    (MessageParser.request("msg", "hi", room="dev", nonce="n1"), SendMessage("hi", "n1", "dev")),
    (MessageParser.request("msg", "hi", to="bob", nonce="n1"), SendMessage("hi", "n1", to="bob")),
    (MessageParser.request("msg", "hi", room="dev"), SendMessage("hi", room="dev")),
    (MessageParser.request("join", "dev"), Join("dev")),
    (MessageParser.request("part", "dev"), Part("dev")),
    (MessageParser.request("rooms"), Rooms()),
    (
        MessageParser.request("history", before=9, limit=50, room="dev"),
        History(room="dev", before=9, limit=50),
    ),
    (
        MessageParser.request("history", before=9, limit=50, **{"with": "Bob"}),
        History(with_user="Bob", before=9, limit=50),
    ),
    (MessageParser.request("search", "a b"), Search("a b")),
    (MessageParser.request("search", "a b", room="dev", limit=3), Search("a b", "dev", 3)),
    (MessageParser.request("register", password="pw"), Register("pw")),
    (
        MessageParser.request("register", password="pw", new_password="pw2"),
        Register("pw", "pw2"),
    ),
    (MessageParser.request("msg", "h\u00e9 \U0001f600"), SendMessage("h\u00e9 \U0001f600")),
]


def test_typed_requests_encode_to_the_seed_bytes() -> None:
    client = ClientConnection()
    wrong = [
        (typed, client.send(typed), MessageParser.encode(seed))
        for seed, typed in _SEED_REQUESTS
        if client.send(typed) != MessageParser.encode(seed)
    ]
    assert wrong == []
