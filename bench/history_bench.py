"""Older-history paging and search latency at 10k, 100k and 1M stored messages, and the
broadcast rate with 500 users in 20 rooms against the same users in one room.

Latency: each database is built once in a temporary folder (or ``--dir``, to keep them for
the next run): rows go in with ``executemany`` and the FTS5 index is rebuilt in one go, as a
long-running server would have it.  Then ``HistoryStore`` answers what a client asks while
scrolling and searching; each query runs ``--reps`` times and the table shows the median and
the worst, in milliseconds.  Target (issue 12): both under 50 ms at one million.

Broadcast: ``python -m server`` as a subprocess; 500 TkChat connections log in, join their
room (20 rooms of 25, or all in general), and each sends ``--messages`` messages as fast as it
can; deliveries/s is every object the users received divided by the time from the first send
to the last delivery.  The reader counts newlines instead of parsing JSON, so the load
generator is not what is measured.

Run:  .venv/bin/python bench/history_bench.py                 (about a minute)
      .venv/bin/python bench/history_bench.py --dir /tmp/hb   (keep the databases)
      .venv/bin/python bench/history_bench.py --skip-broadcast
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import selectors
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.decoder import StreamDecoder  # noqa: E402
from common.protocol import MessageParser  # noqa: E402
from server.app import ChatServer  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.history import HistoryStore  # noqa: E402
from server.retention import CHUNK  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
ROOMS = [f"room{i}" for i in range(20)]
USERS = [f"user{i}" for i in range(50)]
VOCABULARY = 5000


def _words(rng: random.Random) -> list[str]:
    """A vocabulary with a Zipf-like use: a few words are in most messages, most are rare."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe"]
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def build(path: Path, count: int) -> None:
    """A history of ``count`` messages: 95 % in 20 rooms, 5 % direct between 50 users."""
    rng = random.Random(count)
    vocabulary = _words(rng)
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    HistoryStore(path).close()  # the schema, as the server makes it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    batch: list[tuple[object, ...]] = []
    for i in range(count):
        sender = rng.choice(USERS)
        text = " ".join(rng.choices(vocabulary, cum_weights=weights, k=rng.randint(3, 14)))
        stamp = f"2026-01-01T00:00:{i % 60:02d}.000Z"
        if rng.random() < 0.05:
            other = rng.choice(USERS)
            batch.append((stamp, sender, sender, text, None, None, other, other, 1, 1))
        else:
            row = (stamp, sender, sender, text, None, rng.choice(ROOMS), None, None, 0, 0)
            batch.append(row)
        if len(batch) == 50_000:
            _insert(db, batch)
    _insert(db, batch)
    db.execute("COMMIT")
    db.close()
    HistoryStore(path).close()  # indexes every row for search, as after a kill -9


def _insert(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany(
        "INSERT INTO messages (timestamp, sender, sender_key, text, nonce, room, recipient,"
        " recipient_key, proven, recipient_proven) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    rows.clear()


def timed(call: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median and worst wall time of ``call`` in milliseconds."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def latency(folder: Path, reps: int) -> list[tuple[str, int, float, float]]:
    rows: list[tuple[str, int, float, float]] = []
    for size in SIZES:
        path = folder / f"history-{size}.sqlite3"
        if not path.exists():
            start = time.monotonic()
            build(path, size)
            print(f"built {size:,} messages in {time.monotonic() - start:.1f} s", flush=True)
        store = HistoryStore(path)
        cases = _cases(store, size)
        for label, call in cases.items():
            call()  # the first read pages the file in; a server has it hot
            median, worst = timed(call, reps)
            rows.append((label, size, median, worst))
        store.close()
        rows.extend(_over_the_wire(path, size, reps))
    return rows


def _over_the_wire(path: Path, size: int, reps: int) -> list[tuple[str, int, float, float]]:
    """The same requests from a client: request written to the answer decoded, through a
    ``ChatServer`` (in this process) on 127.0.0.1."""
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, db=str(path), rate_limit=0))
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    decoder = StreamDecoder(1 << 24)
    pending: list[object] = []

    def ask(request: str, content: str | None = None, **extra: object) -> object:
        sock.sendall(MessageParser.encode(MessageParser.request(request, content, **extra)))
        while True:
            while pending:
                item = pending.pop(0)
                if isinstance(item, dict) and item.get("response") in ("history", "error"):
                    return item
            pending.extend(decoder.feed(sock.recv(1 << 20)))

    try:
        sock.sendall(MessageParser.encode(MessageParser.request("login", "bench", client="b/1")))
        ask("join", "room3")
        word = _words(random.Random(size))[0]
        middle = size // 2
        cases: dict[str, Callable[[], object]] = {
            "wire: history, 200 before the middle": lambda: ask(
                "history", room="room3", before=middle, limit=200
            ),
            "wire: search common word, 1 room": lambda: ask("search", word, room="room3"),
            "wire: search 2 words, all my rooms": lambda: ask("search", f"{word} ka"),
        }
        rows = []
        for label, call in cases.items():
            answer = call()
            assert isinstance(answer, dict) and answer["response"] == "history", answer
            median, worst = timed(call, reps)
            rows.append((label, size, median, worst))
        return rows
    finally:
        sock.close()
        server.stop()


def _cases(store: HistoryStore, size: int) -> dict[str, Callable[[], object]]:
    """What a client asks while scrolling and searching, against a store of ``size``."""
    vocabulary = _words(random.Random(size))
    # Ranks follow the sorted order, so "dada..." words are all frequent: prefixes of the
    # common word are shared by other common words (the hard case for a prefix search).
    common, rare = vocabulary[0], vocabulary[2000]
    long_common = next(w for w in vocabulary if len(w) >= 7)  # past the prefix index
    mine = ROOMS[:5]
    middle = size // 2
    return {
        "page: newest 200 of a room": lambda: store.page("room3", None, 200),
        "page: 200 before the middle id": lambda: store.page("room3", middle, 200),
        "page: direct, newest 200": lambda: store.direct_page("user1", "user2", None, 200),
        "search: common word, 5 rooms": lambda: store.search(common, mine, None, 50),
        "search: rare word, 5 rooms": lambda: store.search(rare, mine, None, 50),
        "search: common 7+ letters, 5 rooms": lambda: store.search(long_common, mine, None, 50),
        "search: absent word, 5 rooms": lambda: store.search("qqqq", mine, None, 50),
        "search: 2-letter prefix, 5 rooms": lambda: store.search("ka", mine, None, 50),
        "search: two words, 1 room": lambda: store.search(
            f"{common} {vocabulary[50]}", ["room7"], None, 50
        ),
        "search: rare word, rooms + direct": lambda: store.search(rare, mine, "user1", 100),
    }


def prune_chunks(folder: Path) -> tuple[float, float, int]:
    """Retention's cost to chat: how long each chunk of deletes holds the store's write lock
    (the history writer waits that long at most), pruning half of a copy of the 100k
    database.  Median and worst ms, and the chunks."""
    source = folder / "history-100000.sqlite3"
    copy = folder / "prune-copy.sqlite3"
    shutil.copyfile(source, copy)
    store = HistoryStore(copy)
    times = []
    try:
        while True:
            start = time.perf_counter()
            removed = store.prune(50_000, CHUNK)
            times.append((time.perf_counter() - start) * 1000)
            if removed < CHUNK:
                break
    finally:
        store.close()
        for leftover in folder.glob("prune-copy.sqlite3*"):
            leftover.unlink()
    return statistics.median(times), max(times), len(times)


# ------------------------------------------------------------------ broadcast
def broadcast(users: int, rooms: int, messages: int, timeout: float) -> tuple[float, int]:
    """Deliveries/s and deliveries with ``users`` TkChat connections spread over ``rooms``
    rooms (1: everyone in general), each sending ``messages`` messages."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0",
             "--rate-limit", "0", "--log-level", "INFO", "--max-connections", "2000",
             "--db", f"{tmp}/chat.sqlite3"],
            cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            port = _port_of(proc)
            return _drive(port, users, rooms, messages, timeout)
        finally:
            proc.terminate()
            proc.wait(15)


def _port_of(proc: subprocess.Popen[str]) -> int:
    """The port from the server's start-up line; its later log is read (and dropped) on a
    thread, so a full pipe never stops the server."""
    assert proc.stderr is not None
    stream = proc.stderr
    for line in stream:
        match = re.search(r"listening on [^ ]+:(\d+)", line)
        if match:
            threading.Thread(target=stream.read, daemon=True).start()
            return int(match.group(1))
    raise RuntimeError("the server did not start")


def _drive(port: int, users: int, rooms: int, messages: int, timeout: float) -> tuple[float, int]:
    socks: list[socket.socket] = []
    for i in range(users):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        room = "general" if rooms == 1 else f"r{i % rooms}"
        login = {"request": "login", "content": f"u{i}", "client": "bench/1"}
        requests = [login] if rooms == 1 else [login, {"request": "join", "content": room}]
        sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        socks.append(sock)
    # Wait until every login (and join) is answered: quiet for a moment.
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    _drain(selector, quiet=1.0, limit=30.0)
    per_room = users if rooms == 1 else users // rooms
    expected = users * messages * per_room
    payloads = []
    for i in range(users):
        where: dict[str, str] = {} if rooms == 1 else {"room": f"r{i % rooms}"}
        lines = [
            json.dumps({"request": "msg", "content": f"message {n} from u{i}", **where}).encode()
            for n in range(messages)
        ]
        payloads.append(b"\n".join(lines) + b"\n")
    start = time.perf_counter()
    for sock, payload in zip(socks, payloads, strict=True):
        sock.setblocking(True)
        sock.sendall(payload)
        sock.setblocking(False)
    received, last = _count(selector, expected, start + timeout)
    elapsed = last - start
    for sock in socks:
        sock.close()
    return received / elapsed, received


def _drain(selector: selectors.BaseSelector, quiet: float, limit: float) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        events = selector.select(quiet)
        if not events:
            return
        for key, _ in events:
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sock.recv(1 << 20)


def _count(selector: selectors.BaseSelector, expected: int, deadline: float) -> tuple[int, float]:
    received = 0
    last = time.perf_counter()
    while received < expected and time.perf_counter() < deadline:
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            received += data.count(b"\n")
            last = time.perf_counter()
    return received, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="", help="keep the databases here (default: a temp dir)")
    parser.add_argument("--reps", type=int, default=20, help="runs of each query")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--messages", type=int, default=4, help="messages each user sends")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-broadcast", action="store_true")
    args = parser.parse_args()
    if not args.skip_latency:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(args.dir or tmp)
            folder.mkdir(parents=True, exist_ok=True)
            rows = latency(folder, args.reps)
            prune_median, prune_worst, chunks = prune_chunks(folder)
        print(f"\n{'query':36} {'messages':>10} {'median ms':>10} {'worst ms':>9}")
        for label, size, median, worst in rows:
            print(f"{label:36} {size:>10,} {median:>10.2f} {worst:>9.2f}")
        print(
            f"\nretention: {chunks} chunks of {CHUNK} deletes, each holding the write lock"
            f" {prune_median:.1f} ms median, {prune_worst:.1f} ms worst"
        )
    if not args.skip_broadcast:
        print(f"\nbroadcast, {args.users} users, {args.messages} messages each")
        print("(in 20 rooms each user sends 20 times as many: the same deliveries in all)")
        for rooms in (1, 20):
            count = args.messages * rooms
            rate, got = broadcast(args.users, rooms, count, 60.0)
            per_room = args.users // rooms
            where = "one room (general)" if rooms == 1 else f"{rooms} rooms of {per_room}"
            print(
                f"{where:20} {rate:>10,.0f} deliveries/s {rate / per_room:>8,.0f} messages/s"
                f" ({got:,} delivered)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
