"""The client's network core (``gui.net.client.Client``) against other KTN servers.

Each test starts a ``FakeKTN`` (a real socket server replaying answers recorded from the kinds
of server PROTOCOL.md lists) and drives a real ``Client`` at it.  The client must show what it
can, never crash (the autouse fixture fails a test on any logged ERROR, and a dead receiver
would miss the later events), and send one request per write.
"""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.protocol import (
    CLIENT_ID,
    ErrorResponse,
    HistoryResponse,
    InfoResponse,
    MessageParser,
    MessageResponse,
)
from common.requests import Help, Names, SendMessage
from gui.net.client import Client
from gui.net.events import ClientEvent, Connected, ConnectFailed, Disconnected
from gui.terminal import TerminalSession, format_event
from server.app import ChatServer
from tests.conftest import ServerProcess, wait_for
from tests.fake_ktn import FakeKTN, Script, obj

T = TypeVar("T")
ANSWER_WAIT = 0.3


class Events:
    """Collects what the client reports; waits for a kind of event with a bounded wait."""

    def __init__(self) -> None:
        self.queue: queue.Queue[ClientEvent] = queue.Queue()
        self.seen: list[ClientEvent] = []

    def __call__(self, event: ClientEvent) -> None:
        format_event(event)  # what the terminal would print must never raise either
        self.queue.put(event)

    def next(self, kind: type[T], timeout: float = 5.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.queue.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(
                    f"no {kind.__name__} within {timeout} s: {self.seen}"
                ) from None
            self.seen.append(event)
            if isinstance(event, kind):
                return event


def reference(fake: FakeKTN, request: dict[str, Any]) -> list[bytes]:
    """Answers like the course's reference KTN server (bare objects, float timestamps)."""
    kind, content = request.get("request"), request.get("content")
    if kind == "login":
        return [obj("info", "Login successful"), obj("history", [])]
    if kind == "msg":
        return [obj("message", content, sender=fake.username)]
    if kind == "names":
        return [obj("info", "Users: " + str(fake.username))]
    if kind == "help":
        return [obj("info", "login <name>, msg <text>, names, help, logout")]
    if kind == "logout":
        return [obj("info", "Logged out")]
    return [obj("error", "unknown request")]


def with_answers(**answers: list[bytes]) -> Script:
    """The reference server, with some requests answered by the given chunks instead."""

    def script(fake: FakeKTN, request: dict[str, Any]) -> list[bytes]:
        kind = request.get("request")
        if isinstance(kind, str) and kind in answers:
            return answers[kind]
        return reference(fake, request)

    return script


@pytest.fixture
def fakes() -> Iterator[list[FakeKTN]]:
    started: list[FakeKTN] = []
    yield started
    for fake in started:
        fake.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    started: list[Client] = []
    yield started
    for client in started:
        client.disconnect()


def start(
    fakes: list[FakeKTN], clients: list[Client], script: Script = reference, **options: Any
) -> tuple[FakeKTN, Client, Events]:
    fake = FakeKTN(script, **options)
    fakes.append(fake)
    events = Events()
    client = Client("127.0.0.1", fake.port, events, answer_wait=ANSWER_WAIT)
    clients.append(client)
    client.run()
    events.next(Connected)
    return fake, client, events


def assert_one_request_per_read(fake: FakeKTN, count: int) -> None:
    wait_for(lambda: len(fake.requests) >= count, what=f"{count} requests at the fake server")
    assert len(fake.requests) == count, fake.requests
    assert fake.violations == []


# ------------------------------------------------------------------------- framing
def test_bare_objects_packed_into_one_read_and_split_across_reads(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    echo = obj("message", "split me", sender="alice")
    packed = obj("info", "Login successful") + obj("history", []) + obj("info", "welcome!")
    script = with_answers(login=[packed], msg=[echo[:7], echo[7:20], echo[20:]])
    _, client, events = start(fakes, clients, script, chunk_gap=0.05)
    client.login("alice")
    assert events.next(InfoResponse).text == "Login successful"
    assert events.next(HistoryResponse).messages == ()
    assert events.next(InfoResponse).text == "welcome!"
    client.send_payload(SendMessage("split me"))
    assert events.next(MessageResponse).message.text == "split me"


def test_pretty_printed_objects(fakes: list[FakeKTN], clients: list[Client]) -> None:
    def pretty(response: str, content: Any) -> bytes:
        return json.dumps(json.loads(obj(response, content)), indent=4).encode() + b"\n\n"

    script = with_answers(login=[pretty("info", "Login successful") + pretty("history", [])])
    _, client, events = start(fakes, clients, script)
    client.login("alice")
    assert events.next(InfoResponse).text == "Login successful"
    events.next(HistoryResponse)


def test_garbage_from_the_server_is_skipped_and_the_client_goes_on(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    fake, client, events = start(fakes, clients)
    client.login("alice")
    events.next(HistoryResponse)
    fake.push(
        b"Welcome to my server!\n",
        b"{'response': 'info', 'content': 'a Python repr'}",
        b"[1, 2, 3]",
        b'{"response": "shout", "content": "?"}',
        b'{"response": "message", "content": {"a": [1]}, "sender": {"x": 1}, "id": "7"}',
        b'{"response": "message", "content": "big", "timestamp": 1' + b"0" * 400 + b"}",
        b'{"response": "message", "content": "year 1", "timestamp": "0001-01-01T00:00:00+01:00"}',
        b'{"response": "message", "content": "\\ud800 lone", "timestamp": "9999-12-31T23:59Z"}',
        b'{"response": "info", "content": null, "users": [1, null]}',
        b'{"response": "history", "content": 42}',
        b'{"response": "error", "content": ["x"], "code": 5}',
        b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"response": "message", "content": "still here", "sender": "bob"}',
    )
    texts: list[str] = []
    while not texts or texts[-1] != "still here":
        texts.append(events.next(MessageResponse).message.text)
    assert texts == ['{"a": [1]}', "big", "year 1", "\ud800 lone", "still here"]
    assert client.connected


# ----------------------------------------------------------------------- timestamps
def local(wall_clock: str) -> datetime:
    """A local wall-clock time (ISO layout, no zone), as a UTC moment."""
    return datetime.fromisoformat(wall_clock).astimezone(UTC)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (1764071000.25, datetime.fromtimestamp(1764071000.25, UTC)),
        (1764071000, datetime.fromtimestamp(1764071000, UTC)),
        ("1764071000.5", datetime.fromtimestamp(1764071000.5, UTC)),
        (1764071000250, datetime.fromtimestamp(1764071000.25, UTC)),  # milliseconds
        ("2026-11-25T11:43:07.123Z", datetime(2026, 11, 25, 11, 43, 7, 123000, UTC)),
        ("2026-11-25 12:43:07", local("2026-11-25 12:43:07")),
        ("2026-11-25 12:43:07.5", local("2026-11-25 12:43:07.5")),
        ("25.11.2026 12:43", local("2026-11-25 12:43")),
        ("25/11/2026 12:43:07", local("2026-11-25 12:43:07")),
        ("Wed Nov 25 12:43:07 2026", local("2026-11-25 12:43:07")),
    ],
)
def test_timestamps_in_every_layout(
    fakes: list[FakeKTN], clients: list[Client], stamp: object, expected: datetime
) -> None:
    fake, client, events = start(fakes, clients)
    client.login("alice")
    events.next(HistoryResponse)
    fake.push(obj("message", "when?", sender="bob", timestamp=stamp))
    assert events.next(MessageResponse).message.timestamp == expected


@pytest.mark.parametrize("stamp", ["12:43", "soon", "", None, [2026], {"t": 1}, True, -5])
def test_unreadable_timestamp_becomes_the_arrival_time(
    fakes: list[FakeKTN], clients: list[Client], stamp: object
) -> None:
    fake, client, events = start(fakes, clients)
    client.login("alice")
    events.next(HistoryResponse)
    before = datetime.now(UTC)
    fake.push(obj("message", "when?", sender="bob", timestamp=stamp))
    moment = events.next(MessageResponse).message.timestamp
    if stamp == "12:43":  # a time of day alone: today, local time
        assert moment.astimezone().strftime("%H:%M") == "12:43"
    else:
        assert before <= moment <= datetime.now(UTC)


# -------------------------------------------------------------------------- senders
@pytest.mark.parametrize("sender", ["SERVER", "", None, "alice", 42])
def test_any_sender_on_info_and_error(
    fakes: list[FakeKTN], clients: list[Client], sender: object
) -> None:
    script = with_answers(
        login=[obj("info", "Welcome alice", sender=sender), obj("history", [])],
        names=[obj("error", "names is disabled", sender=sender)],
    )
    _, client, events = start(fakes, clients, script)
    client.login("alice")
    assert events.next(InfoResponse).text == "Welcome alice"
    client.send_payload(Names())
    assert events.next(ErrorResponse).text == "names is disabled"


# -------------------------------------------------------------------------- history
def item(text: str, sender: str, ident: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "timestamp": 1764071000.0,
        "sender": sender,
        "response": "message",
        "content": text,
    }
    if ident is not None:
        msg["id"] = ident
    return msg


@pytest.mark.parametrize(
    ("content", "texts", "users"),
    [
        (
            [json.dumps(item("one", "bob", 1)), json.dumps(item("two", "carol", 2))],
            ["one", "two"],
            ["bob", "carol"],
        ),
        ([item("one", "bob"), item("two", "carol")], ["one", "two"], ["bob", "carol"]),
        (
            [json.dumps(item("ok", "bob")), "not json", 7, None, {"weird": True}],
            ["ok", "not json", "7", ""],
            ["bob", "", "", ""],
        ),
    ],
    ids=["json-strings", "objects", "mixed-junk"],
)
def test_history_items_as_strings_or_objects(
    fakes: list[FakeKTN],
    clients: list[Client],
    content: list[Any],
    texts: list[str],
    users: list[str],
) -> None:
    script = with_answers(login=[obj("info", "hi"), obj("history", content)])
    _, client, events = start(fakes, clients, script)
    client.login("alice")
    history = events.next(HistoryResponse)
    assert [m.text for m in history.messages] == texts
    assert [m.user for m in history.messages] == users


def test_history_as_one_plain_text_string(fakes: list[FakeKTN], clients: list[Client]) -> None:
    text = "bob: hello\ncarol: hi bob"
    script = with_answers(login=[obj("info", "hi"), obj("history", text)])
    _, client, events = start(fakes, clients, script)
    client.login("alice")
    history = events.next(HistoryResponse)
    assert history.messages == () and history.text == text
    assert text.splitlines()[0] in "\n".join(format_event(history))


def test_no_history_at_all_when_it_is_empty(fakes: list[FakeKTN], clients: list[Client]) -> None:
    script = with_answers(login=[obj("info", "Login successful")])
    _, client, events = start(fakes, clients, script)
    session = TerminalSession(client)
    client.login("alice")
    session._login_pending = True
    session.on_event(events.next(InfoResponse))
    assert session.logged_in
    client.send_payload(SendMessage("first!"))
    assert events.next(MessageResponse).message.text == "first!"


# ---------------------------------------------------------------------- login shapes
@pytest.mark.parametrize(
    "answer",
    [
        [obj("history", [json.dumps(item("earlier", "bob"))])],
        [obj("message", "alice has joined", sender="server")],
        [],
    ],
    ids=["only-history", "only-broadcast", "nothing"],
)
def test_login_without_info(
    fakes: list[FakeKTN], clients: list[Client], answer: list[bytes]
) -> None:
    fake, client, events = start(fakes, clients, with_answers(login=answer))
    client.login("alice")
    client.send_payload(SendMessage("hello"))
    client.send_payload(Names())
    texts = [
        events.next(MessageResponse).message.text
        for _ in range(1 + sum(b"joined" in a for a in answer))
    ]
    assert texts[-1] == "hello"
    assert "alice" in events.next(InfoResponse).text
    assert_one_request_per_read(fake, 3)


def test_terminal_session_counts_any_answer_but_an_error_as_logged_in(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    script = with_answers(login=[obj("message", "alice has joined", sender="server")])
    _, client, events = start(fakes, clients, script)
    session = TerminalSession(client)
    assert session.handle_line("login alice")
    session.on_event(events.next(MessageResponse))
    assert session.logged_in


def test_terminal_session_stays_logged_out_after_a_login_error(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    script = with_answers(login=[obj("error", "Username taken"), obj("info", "try again")])
    _, client, events = start(fakes, clients, script)
    session = TerminalSession(client)
    assert session.handle_line("login alice")
    session.on_event(events.next(ErrorResponse))
    session.on_event(events.next(InfoResponse))
    assert not session.logged_in


# ------------------------------------------------------------------------ no echo
def test_server_that_does_not_echo(fakes: list[FakeKTN], clients: list[Client]) -> None:
    fake, client, events = start(fakes, clients, with_answers(msg=[]))
    client.login("alice")
    events.next(HistoryResponse)
    for i in range(3):
        client.send_payload(SendMessage(f"unanswered {i}"))
    client.send_payload(Names())
    assert "alice" in events.next(InfoResponse).text
    assert [r["content"] for r in fake.requests[1:4]] == [f"unanswered {i}" for i in range(3)]
    assert_one_request_per_read(fake, 5)


# -------------------------------------------------------------------------- logout
@pytest.mark.parametrize("closes", [True, False], ids=["server-closes", "server-stays-open"])
def test_logout_ends_the_connection_either_way(
    fakes: list[FakeKTN], clients: list[Client], closes: bool
) -> None:
    fake, client, events = start(fakes, clients, close_on_logout=closes)
    client.login("alice")
    events.next(HistoryResponse)
    client.logout()
    assert events.next(InfoResponse).text == "Logged out"
    gone = events.next(Disconnected)
    assert gone.expected
    assert not client.connected
    client.send_payload(SendMessage("after logout"))  # quietly dropped, never raises
    assert_one_request_per_read(fake, 2)


def test_server_dropping_the_connection_is_an_unexpected_disconnect(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    script = with_answers(names=[b'{"response": "info", "cont'])
    fake, client, events = start(fakes, clients, script, close_on_logout=True)
    client.login("alice")
    events.next(HistoryResponse)
    client.send_payload(Names())
    fake.close()  # closes mid-object
    gone = events.next(Disconnected)
    assert not gone.expected and "closed" in gone.reason


def test_unreachable_server_is_a_readable_connect_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    events = Events()
    client = Client("127.0.0.1", port, events, connect_timeout=2)
    client.run()  # returns at once: connecting happens on the client's thread
    failed = events.next(ConnectFailed)
    assert "cannot reach 127.0.0.1" in failed.reason
    assert client.receiver is not None
    client.receiver.join(5)
    assert not client.receiver.is_alive()


def test_a_connected_client_runs_one_thread_and_ends_it(
    server_process: Callable[..., ServerProcess],
) -> None:
    """Design card: the caller's thread and one receiver, which connects, reads and writes."""
    proc = server_process()
    before = {t.ident for t in threading.enumerate()}
    events = Events()
    client = Client("127.0.0.1", proc.port, events)
    client.run()
    events.next(Connected)
    client.login("alice")
    events.next(HistoryResponse)
    client.send_payload(SendMessage("hello", nonce="n1"))
    events.next(MessageResponse)
    added = [t for t in threading.enumerate() if t.ident not in before]
    assert [t.name for t in added] == ["tkchat-receiver"]
    client.disconnect(5.0)
    assert events.next(Disconnected).expected
    assert not added[0].is_alive()


def test_sending_never_blocks_on_a_server_that_does_not_read() -> None:
    """The Tk thread calls ``send_payload``: it must return at once even when the server's
    receive buffer and ours are full (the old writer thread blocked in sendall instead)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        events = Events()
        client = Client("127.0.0.1", listener.getsockname()[1], events, answer_wait=0.01)
        client.run()
        events.next(Connected)
        peer, _ = listener.accept()  # accepted, never read
        with peer:
            peer.sendall(b'{"response": "info", "content": "hi", "users": []}')
            wait_for(lambda: client.pipelining, what="the client to see a TkChat server")
            text = "x" * 4000
            for i in range(3000):  # about 12 MB: far past every socket buffer
                client.send_payload(SendMessage(text, str(i)))
            client.disconnect(5.0)
            assert events.next(Disconnected).expected


def test_disconnect_while_the_login_goes_unanswered_is_immediate() -> None:
    """A silent listener: the caller can always give up, and hears Disconnected once."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        events = Events()
        client = Client("127.0.0.1", listener.getsockname()[1], events)
        client.run()
        events.next(Connected)
        client.login("alice")
        client.disconnect()  # the Tk thread's call: it does not wait
        gone = events.next(Disconnected)
        assert gone.expected and gone.reason == "disconnected"


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("answer", "users"),
    [
        (obj("info", "Connected users: alice, bob"), None),
        (obj("info", ["alice", "bob"]), ("alice", "bob")),
        (obj("info", "['alice', 'bob']"), ("alice", "bob")),
        (obj("info", "Users online: ['alice', 'bob']"), ("alice", "bob")),
        (obj("info", "alice, bob", users=["alice", "bob"]), ("alice", "bob")),
        (obj("info", "[1, 2]"), None),
        (obj("info", "[" * 200 + "]" * 200), None),
    ],
    ids=["sentence", "list", "repr", "sentence-with-repr", "users-key", "numbers", "deep"],
)
def test_names_answers(
    fakes: list[FakeKTN],
    clients: list[Client],
    answer: bytes,
    users: tuple[str, ...] | None,
) -> None:
    _, client, events = start(fakes, clients, with_answers(names=[answer]))
    client.login("alice")
    events.next(HistoryResponse)
    client.send_payload(Names())
    info = events.next(InfoResponse)
    assert info.users == users
    assert info.text


# ----------------------------------------------------------------- one per write
def test_a_burst_of_requests_goes_out_one_per_write_in_order(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    fake, client, events = start(fakes, clients)
    client.login("alice")
    for i in range(5):
        client.send_payload(SendMessage(f"burst {i}", nonce=f"n{i}"))
    client.send_payload(Names())
    client.send_payload(Help())
    client.logout()
    events.next(Disconnected)
    assert_one_request_per_read(fake, 9)
    assert [r["request"] for r in fake.requests] == ["login"] + ["msg"] * 5 + [
        "names",
        "help",
        "logout",
    ]
    assert fake.requests[0]["client"] == "tkchat/1.0"
    assert [r.get("nonce") for r in fake.requests[1:6]] == [f"n{i}" for i in range(5)]
    assert not client.pipelining, "a classic server must get one request per write"


@pytest.mark.parametrize("client_id", [CLIENT_ID, None], ids=["tkchat", "classic-id"])
def test_a_classic_server_reads_the_bytes_the_seed_sent(
    fakes: list[FakeKTN], clients: list[Client], client_id: str | None
) -> None:
    """Typed requests go out byte for byte as the seed's ``MessageParser.request`` objects
    did: classic KTN servers depend on it (``Login`` with and without ``client``)."""
    fake = FakeKTN(reference)
    fakes.append(fake)
    events = Events()
    client = Client("127.0.0.1", fake.port, events, client_id=client_id, answer_wait=ANSWER_WAIT)
    clients.append(client)
    client.run()
    events.next(Connected)
    client.login("alice", password="pw")
    client.send_payload(SendMessage("h\u00e9 \U0001f600", "n1"))
    client.send_payload(Names())
    client.send_payload(Help())
    client.logout()
    events.next(Disconnected)
    login = {"client": client_id} if client_id is not None else {}
    seed = [
        MessageParser.request("login", "alice", **login, password="pw"),
        MessageParser.request("msg", "h\u00e9 \U0001f600", nonce="n1"),
        MessageParser.request("names"),
        MessageParser.request("help"),
        MessageParser.request("logout"),
    ]
    assert fake.reads == [MessageParser.encode(obj) for obj in seed]


def test_against_a_tkchat_server_requests_are_pipelined_in_order(
    server: ChatServer, clients: list[Client]
) -> None:
    """TkChat's own server shows its extension keys; the client then stops waiting for
    answers between requests (a busy room would delay every send), and order still holds."""
    events = Events()
    client = Client("127.0.0.1", server.port, events, answer_wait=ANSWER_WAIT)
    clients.append(client)
    client.run()
    client.login("alice")
    events.next(HistoryResponse)
    assert client.pipelining
    for i in range(50):
        client.send_payload(SendMessage(f"piped {i}", nonce=f"p{i}"))
    texts = [events.next(MessageResponse).message.text for _ in range(50)]
    assert texts == [f"piped {i}" for i in range(50)]


# ------------------------------------------------------------------ parse property
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["2026-11-25 12:00:00", "0001-01-01T00:00:00", "['a', 'b']", "[[[["])
)
json_any = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=15,
)
response_like = st.fixed_dictionaries(
    {"response": st.sampled_from(["info", "error", "message", "history", "x", None])},
    optional={
        "content": json_any,
        "sender": json_any,
        "timestamp": json_any,
        "users": json_any,
        "id": json_any,
        "nonce": json_any,
        "event": json_any,
        "user": json_any,
        "code": json_any,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(response_like, json_any))
def test_parse_and_format_never_raise_on_any_json(value: object) -> None:
    response = MessageParser.parse(value)
    lines = format_event(response)
    assert lines and all(isinstance(line, str) for line in lines)


def test_a_failing_event_handler_is_logged_and_the_connection_goes_on(
    fakes: list[FakeKTN], caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeKTN(reference)
    fakes.append(fake)
    events = Events()

    def fragile(event: ClientEvent) -> None:
        if isinstance(event, InfoResponse):
            raise RuntimeError("bug in the program using the client")
        events(event)

    client = Client("127.0.0.1", fake.port, fragile, answer_wait=ANSWER_WAIT)
    client.run()
    try:
        client.login("alice")
        events.next(HistoryResponse)  # came after the info whose handler raised
        client.send_payload(SendMessage("still working"))
        assert events.next(MessageResponse).message.text == "still working"
    finally:
        client.disconnect()
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failures and "event handler failed" in failures[0].getMessage()
    caplog.clear()  # expected: the autouse guard fails tests on unexpected ERRORs only


def test_terminal_session_maps_typed_lines_to_requests(
    fakes: list[FakeKTN], clients: list[Client]
) -> None:
    fake, client, events = start(fakes, clients)
    out = io.StringIO()
    session = TerminalSession(client, stream=out)
    assert session.handle_line("hello?\n")  # not logged in: not a message
    assert "unknown command 'hello?'" in out.getvalue()
    assert session.handle_line("help me\n")  # not logged in: the help command
    events.next(InfoResponse)
    assert session.handle_line("login alice\n")
    session.on_event(events.next(InfoResponse))
    assert session.logged_in
    for line in ("", "   ", "msg  hi there", "NAMES", "help me with this", "just talking"):
        assert session.handle_line(line + "\n")
    assert not session.handle_line("logout\n")
    events.next(Disconnected)
    assert [(r["request"], r["content"]) for r in fake.requests] == [
        ("help", None),
        ("login", "alice"),
        ("msg", " hi there"),
        ("names", None),
        ("msg", "help me with this"),
        ("msg", "just talking"),
        ("logout", None),
    ]
