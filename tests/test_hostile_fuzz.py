"""Fuzzing: arbitrary bytes into the stream decoder, and into a real server over real sockets.

The property for the server: whatever a client sends, it only ever gets well-formed protocol
responses back (or a closed connection), the two bystanders keep chatting without loss, and a
newcomer can still log in afterwards.  One server serves every example on purpose: state left
behind by one example (half-read buffers, names, rate-limit buckets) is part of what is tested.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.decoder import DecodeError, StreamDecoder
from common.protocol import ErrorCode
from server.app import ChatServer
from tests.bystanders import Bystanders, fresh_client_can_chat
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
CODES = {v for k, v in vars(ErrorCode).items() if k.isupper()}
HELP = b'\n{"request": "help", "content": null}\n'


def check_response(obj: dict[str, Any]) -> None:
    """One object the server sent, checked against PROTOCOL.md's response shapes."""
    assert set(obj) >= {"timestamp", "sender", "response", "content"}, obj
    assert ISO.match(obj["timestamp"]), obj
    kind = obj["response"]
    assert kind in ("error", "info", "message", "history"), obj
    if kind == "message":
        assert isinstance(obj["content"], str) and isinstance(obj["id"], int), obj
        assert isinstance(obj["sender"], str) and obj["sender"], obj
    else:
        assert obj["sender"] == "server", obj
    if kind == "error":
        assert obj["code"] in CODES, obj
        assert isinstance(obj["content"], str), obj
    if kind == "history":
        assert all(isinstance(item, str) for item in obj["content"]), obj
        for item in obj["content"]:
            check_response(json.loads(item))


def drain_until_help(client: WireClient, timeout: float = 5.0) -> None:
    """Read until the help answer or a close; check every response on the way."""
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        try:
            obj = client.recv(max(0.01, deadline - time.monotonic()))
        except AssertionError:
            closed: bool = client.closed  # a logout or a fatal error in the input
            assert closed, "the server stopped answering"
            return
        check_response(obj)
        if obj["response"] == "info" and "One JSON object per line" in obj["content"]:
            return
    raise AssertionError("no end to the answers")


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["login", "logout", "msg", "names", "help", "alice", "server", ""]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
REQUESTS = st.dictionaries(
    st.sampled_from(["request", "content", "client", "nonce", "sender", "password", "to", "id"]),
    JSON_VALUES,
    max_size=5,
).map(lambda d: json.dumps(d).encode() + b"\n")
CHUNKS = st.lists(st.one_of(st.binary(max_size=120), REQUESTS), min_size=1, max_size=6)


def test_fuzzed_bytes_get_only_protocol_responses(make_server: MakeServer) -> None:
    server = make_server(login_timeout=2.0)
    counter = itertools.count()
    with Bystanders(server.port) as chat:

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(chunks=CHUNKS, log_in=st.booleans())
        def one_connection(chunks: list[bytes], log_in: bool) -> None:
            client = WireClient(server.port)
            try:
                client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if log_in:
                    client.login(f"fuzz{next(counter)}")
                for chunk in chunks:
                    try:
                        client.send_raw(chunk)
                    except OSError:
                        break  # a logout in the input closed the connection
                try:
                    client.send_raw(HELP)
                except OSError:
                    pass
                drain_until_help(client)
            finally:
                client.close()

        one_connection()
        assert next(counter) > 20  # the examples really ran, about half of them logged in
        chat.finish()
    fresh_client_can_chat(server.port)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=20))
def test_decoder_never_raises_and_any_split_gives_the_same_answer(
    data: bytes, cuts: list[int]
) -> None:
    whole = StreamDecoder().feed(data)
    assert all(isinstance(item, dict | DecodeError) for item in whole)
    assert all(isinstance(item, dict) or item.code in CODES for item in whole)
    decoder = StreamDecoder()
    pieces: list[dict[str, Any] | DecodeError] = []
    start = 0
    for cut in sorted(set(cuts)):
        pieces += decoder.feed(data[start:cut])
        start = max(start, cut)
    pieces += decoder.feed(data[start:])
    assert pieces == whole
