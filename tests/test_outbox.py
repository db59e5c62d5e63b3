"""The server's outgoing path (server/outbox.py): one socket per connection, classic clients that
keep up, big bursts that drop no fast reader, and memory bounded per connection and in all.
Real servers in-process and real sockets on 127.0.0.x; attackers and victims come from
different loopback addresses."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from common.message import Message
from common.protocol import InfoResponse, encode_response, history_chunks
from common.timestamps import now_utc
from server.app import ChatServer
from server.handler import HELP_TEXT
from server.inbound import Inbound
from server.outbox import Sender
from tests.bystanders import Bystanders, fresh_client_can_chat
from tests.conftest import wait_for
from tests.wire import WireClient

MakeServer = Callable[..., ChatServer]
MESSAGE = b'"response": "message"'


def login_from(port: int, name: str, source: str, *, client: str | None = "t/1") -> socket.socket:
    """A raw socket from ``source`` (a 127.0.0.x address), login sent, nothing read."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    request: dict[str, str] = {"request": "login", "content": name}
    if client is not None:
        request["client"] = client
    sock.sendall(json.dumps(request).encode() + b"\n")
    return sock


def msgs(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"request": "msg", "content": t}).encode() + b"\n" for t in texts)


class Counter(threading.Thread):
    """Reads a socket as fast as it can, counting ``message`` objects (no JSON parsing: the
    test's readers must be fast).  Uses ``select``, not a socket timeout, so another thread
    may send on the same socket."""

    def __init__(self, sock: socket.socket, expected: int, seconds: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.expected = expected
        self.seconds = seconds
        self.count = 0
        self.closed = False
        self.data = bytearray()  # kept only for a classic reader (see ``keep``)
        self.keep = False
        self.stop = threading.Event()

    def run(self) -> None:
        tail = b""
        deadline = time.monotonic() + self.seconds
        while self.count < self.expected and time.monotonic() < deadline:
            if self.stop.is_set():
                return
            if not select.select([self.sock], [], [], 0.2)[0]:
                continue
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            if self.keep:
                self.data += data
            chunk = tail + data
            self.count += chunk.count(MESSAGE)
            tail = chunk[-len(MESSAGE) + 1 :]


# ------------------------------------------------------------ issue 11 item 1: the batch attack
def test_two_users_bursts_of_emoji_drop_no_fast_reader(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two users each send their allowed burst (200 messages of 4,000 emoji, ~48 KB each
    escaped) while 10 readers read as fast as they can: none is dropped, all see everything.
    A small per-connection limit makes the old failure certain: one broadcast batch bigger
    than the limit dropped even empty outboxes."""
    server = make_server(max_queue_bytes=256 * 1024)  # default rate limit: a burst of 200
    burst = 200
    readers = [login_from(server.port, f"reader{i}", f"127.0.0.{2 + i}") for i in range(10)]
    attackers = [login_from(server.port, f"burst{i}", f"127.0.0.{100 + i}") for i in range(2)]
    wait_for(lambda: len(server.room.names()) == 12, what="everyone logged in")
    counters = [Counter(s, 2 * burst) for s in readers + attackers]
    for counter in counters:
        counter.start()
    payload = msgs(["\U0001f600" * 4000] * burst)
    senders = [threading.Thread(target=a.sendall, args=(payload,)) for a in attackers]
    for thread in senders:
        thread.start()
    for thread in senders + counters:
        thread.join(90)
    try:
        assert not any(c.closed for c in counters), "a reader was dropped"
        assert [c.count for c in counters] == [2 * burst] * len(counters)
        assert not [r for r in caplog.records if "dropping connection" in r.getMessage()]
    finally:
        for sock in readers + attackers:
            sock.close()


# --------------------------------------------------------------- issue 11 item 4: memory caps
def test_non_readers_asking_for_answers_stay_under_the_global_cap(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten non-readers each ask for ~1 MB of answers; the server holds at most the global
    cap (plus one answer per connection thread in flight), dropping the largest backlogs
    first, and a reading pair keeps chatting."""
    cap = 2 * 1024 * 1024
    # address_rate=0: the flood of requests is the point here (per-address limits: test_limits)
    server = make_server(rate_limit=0, address_rate=0, max_total_queue_bytes=cap)
    help_bytes = len(encode_response(InfoResponse(HELP_TEXT)))
    asks = 1_000_000 // help_bytes  # each: ~1 MB of answers, most of it past the kernel's share
    sloths: list[socket.socket] = []
    with Bystanders(server.port) as chat:
        chat.wait_for_rounds(2)
        for i in range(10):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((f"127.0.1.{1 + i}", 0))
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b'{"request": "help"}\n' * asks)
            sloths.append(sock)
        wait_for(
            lambda: sum("the most while" in r.getMessage() for r in caplog.records) >= 3,
            timeout=30,
            what="the largest backlogs dropped",
        )
        chat.wait_for_rounds(3)
        chat.finish()
    assert server.sender.peak_total <= cap + 12 * help_bytes
    for sock in sloths:
        sock.close()
    fresh_client_can_chat(server.port)


def test_accepted_sockets_get_a_capped_send_buffer(make_server: MakeServer) -> None:
    """The kernel's share of a backlog is bounded too (Linux doubles what it is asked)."""
    server = make_server()
    client = WireClient(server.port)
    client.login("alice")
    handler = next(iter(server._handlers))
    assert handler.request.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * 256 * 1024
    client.close()


# ----------------------------------------------------- issue 9 section 3: one socket per client
def server_socket_fds(port: int) -> int:
    """Descriptors in this process on sockets whose local port is ``port``: the listening
    socket and the server's end of each connection (a ``dup`` counts twice)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        count += target.startswith("socket:[") and target[8:-1] in inodes
    return count


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads /proc (Linux)")
def test_one_file_descriptor_per_connection(make_server: MakeServer) -> None:
    server = make_server()
    assert server_socket_fds(server.port) == 1  # listening
    clients = [WireClient(server.port) for _ in range(20)]
    for number, client in enumerate(clients):
        client.login(f"user{number}")
    assert server_socket_fds(server.port) == 1 + len(clients)
    for client in clients:
        client.close()


def test_a_silent_non_reader_delays_nobody_in_a_room_chatting_at_50_per_second(
    make_server: MakeServer,
) -> None:
    """A logged-in client that never reads, its kernel buffers full, in a room where one user
    sends 50 msg/s and two others chat in round trips: they all get everything in time
    (``Bystanders`` allows each round trip 5 s).  If a send could block (a blocking socket, a
    socket timeout), the Sender would wait on the non-reader and everyone would stall."""
    server = make_server(rate_limit=0, address_rate=0)  # the sloth's 1,500 requests at once
    sloth = socket.socket()
    sloth.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sloth.connect(("127.0.0.1", server.port))
    sloth.sendall(b'{"request": "login", "content": "sloth", "client": "t/1"}\n')
    asks = 900_000 // len(encode_response(InfoResponse(HELP_TEXT)))
    sloth.sendall(b'{"request": "help"}\n' * asks)  # ~900 KB (< 1 MiB) it never reads
    wait_for(
        lambda: any(h.outbox.blocked for h in list(server._handlers)),
        timeout=10,
        what="the non-reader's socket full",
    )
    chatter = WireClient(server.port)
    chatter.login("chatter")
    drain = Counter(chatter.sock, 10**9)
    drain.start()
    with Bystanders(server.port) as chat:
        for second in range(4):
            for n in range(50):
                chatter.send_raw(msgs([f"chatter {second}.{n}"]))
                time.sleep(0.02)
        chat.wait_for_rounds(3)
        chat.finish(min_messages=20)
    drain.stop.set()
    drain.join(5)
    assert drain.count >= 200 and not drain.closed
    assert "sloth" in server.room.names()  # not dropped: its backlog is under the limit
    sloth.close()
    chatter.close()


def test_pause_after_the_sender_flushed_still_drains() -> None:
    """``pause`` used to clear ``drained`` without scheduling the outbox: when the Sender had
    flushed between a ``put`` and the ``pause`` (every object to a classic client), nothing
    ever set it again and ``close``/``ChatServer.stop`` waited their full timeout."""
    sender = Sender()
    sender.start()
    ours, theirs = socket.socketpair()
    outbox = sender.open(ours, label="pair", limit=1 << 20)
    try:
        outbox.put(b"one\n")
        assert outbox.drained.wait(5)  # the Sender sent it
        outbox.pause(0.005)
        assert outbox.drained.wait(5)
        assert outbox.close(5)
    finally:
        sender.stop()
        ours.close()
        theirs.close()


# ------------------------------------------------------- issue 9 section 4: classic clients
def test_classic_reader_in_a_room_of_2500_messages_a_second_loses_nothing(
    make_server: MakeServer,
) -> None:
    """Pacing alone (200 objects/s) would leave it ~20 s behind after 2 s of 2,500 msg/s;
    with the backlog going out as whole lines it gets everything, in order, soon after."""
    server = make_server(rate_limit=0)
    classic = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    classic.sendall(json.dumps({"request": "login", "content": "classic"}).encode())
    senders = [WireClient(server.port) for _ in range(4)]
    for number, sender in enumerate(senders):
        sender.login(f"sender{number}")
    drains = [Counter(s.sock, 10**9) for s in senders]
    for drain in drains:
        drain.start()
    per_tick = 25  # 4 senders x 25 messages every 40 ms: 2,500 msg/s
    ticks = 50
    reader = Counter(classic, 4 * per_tick * ticks, seconds=15)
    reader.keep = True
    reader.start()
    start = time.monotonic()
    for tick in range(ticks):
        for number, sender in enumerate(senders):
            sender.send_raw(msgs([f"{number}-{tick}-{i}" for i in range(per_tick)]))
        time.sleep(max(0.0, start + (tick + 1) * 0.04 - time.monotonic()))
    reader.join(20)
    for drain in drains:
        drain.stop.set()
    try:
        assert not reader.closed
        lines = [json.loads(line) for line in bytes(reader.data).splitlines()]
        got = [o["content"] for o in lines if o["response"] == "message"]
        assert len(got) == 4 * per_tick * ticks
        for number in range(4):  # each sender's messages, all of them, in order
            mine = [c for c in got if c.startswith(f"{number}-")]
            assert mine == [f"{number}-{t}-{i}" for t in range(ticks) for i in range(per_tick)]
    finally:
        classic.close()
        for sender in senders:
            sender.close()


def test_classic_history_chunks_are_at_most_1_kib_and_cover_everything() -> None:
    lengths = [5, 300, 900, 2000, 1, 700, 3000, 40, 40, 40]
    messages = [
        Message("m" * n, "bob", now_utc(), number) for number, n in enumerate(lengths, start=1)
    ]
    chunks = history_chunks(messages, 1024)
    items: list[str] = []
    for chunk in chunks:
        data = encode_response(chunk)
        content = json.loads(data)["content"]
        assert len(data) <= 1024 or len(content) == 1  # too long: alone
        items += content
    assert [json.loads(i)["id"] for i in items] == list(range(1, len(lengths) + 1))
    assert len(chunks) < len(lengths)  # the short ones share objects
    empty = history_chunks([], 1024)
    assert len(empty) == 1 and json.loads(encode_response(empty[0]))["content"] == []


def test_put_on_an_idle_outbox_sends_at_once_and_queues_only_the_rest() -> None:
    """Nothing queued and the Sender not on it: ``put`` writes the socket itself (the Sender is
    not even running for the first part), and what the kernel does not take is queued behind
    it, in order."""
    sender = Sender()
    ours, theirs = socket.socketpair()
    outbox = sender.open(ours, label="pair", limit=64 << 20)
    try:
        assert outbox.put(b"first\n")
        theirs.settimeout(5)
        assert theirs.recv(100) == b"first\n"  # no Sender thread yet: sent by put itself
        assert outbox.drained.is_set()
        sender.start()
        big = bytes(range(256)) * (8 << 12)  # 8 MiB: far more than the socket buffers take
        assert outbox.put(big)
        assert outbox.put(b"last\n")
        received = bytearray()
        while len(received) < len(big) + 5:
            chunk = theirs.recv(1 << 20)
            assert chunk
            received += chunk
        assert bytes(received) == big + b"last\n"
        assert outbox.drained.wait(5)
    finally:
        outbox.close()
        sender.stop()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("waiter", ["poll", "select"])
def test_inbound_waits_for_data_times_out_and_sees_the_end(
    waiter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's wait on the non-blocking socket, with ``poll`` and with the ``select``
    used where there is no ``poll`` (Windows)."""
    if waiter == "select":
        monkeypatch.delattr(select, "poll", raising=False)
    elif not hasattr(select, "poll"):
        pytest.skip("no poll on this platform; the select case covers it")
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    inbound = Inbound(ours)
    try:
        with pytest.raises(TimeoutError):
            inbound.recv(100, 0.05)
        timer = threading.Timer(0.05, theirs.sendall, args=(b"late",))
        timer.start()
        assert inbound.recv(100, 5.0) == b"late"
        timer.join()
        # More than one read's worth: the rest is read without waiting for more to come.
        theirs.sendall(b"x" * 150)
        assert inbound.recv(100, 5.0) == b"x" * 100
        assert inbound.recv(100, 5.0) == b"x" * 50
        with pytest.raises(TimeoutError):
            inbound.recv(100, 0.05)
        theirs.close()
        assert inbound.recv(100, 5.0) == b""  # the peer closed
    finally:
        ours.close()
        theirs.close()
