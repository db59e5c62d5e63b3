"""``kill -9`` of a real ``python -m server`` under load, then a restart on the same database.

PROTOCOL.md: a message is committed before it is broadcast, so every message any client saw
(echoed or relayed) survives a crash, and ids carry on after the restart.  The server runs as
a subprocess so that SIGKILL really ends it mid-batch, with no cleanup of any kind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ServerProcess
from tests.wire import WireClient

CLIENTS = 4
BATCH = 20  # requests per write: several batches are in flight when the kill lands


def _chat_until_killed(port: int, seen: dict[int, str], lock: threading.Lock) -> list[str]:
    """Run CLIENTS users sending pipelined messages; record every message any of them saw.
    Returns errors seen.  Ends when the server's connections drop (bounded in time)."""
    errors: list[str] = []
    clients = [WireClient(port) for _ in range(CLIENTS)]
    for i, client in enumerate(clients):
        client.login(f"user{i}")

    def run(i: int, client: WireClient) -> None:
        deadline = time.monotonic() + 30
        sent = 0
        try:
            while time.monotonic() < deadline and not client.closed:
                client.send_raw(
                    b"".join(
                        json.dumps({"request": "msg", "content": f"u{i} m{sent + k}"}).encode()
                        + b"\n"
                        for k in range(BATCH)
                    )
                )
                sent += BATCH
                while True:  # read what has come, at least our own last echo
                    obj = client.recv(10.0)
                    if obj["response"] == "message":
                        with lock:
                            seen[obj["id"]] = obj["content"]
                        if obj["content"] == f"u{i} m{sent - 1}":
                            break
                    elif obj["response"] == "error":
                        errors.append(str(obj))
        except (AssertionError, OSError):
            pass  # the server died under us: what we saw so far is the evidence

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    return errors if _join(threads, clients) else [*errors, "chat threads did not end"]


def _join(threads: list[threading.Thread], clients: list[WireClient]) -> bool:
    for thread in threads:
        thread.join(40)
    for client in clients:
        client.close()
    return not any(t.is_alive() for t in threads)


def test_kill_9_under_load_loses_nothing_that_was_echoed(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    db = tmp_path / "history.sqlite3"
    first = server_process(
        "--port", "0", "--db", str(db), "--rate-limit", "0", "--address-rate", "0"
    )
    seen: dict[int, str] = {}
    lock = threading.Lock()
    outcome: list[list[str]] = []
    chat = threading.Thread(
        target=lambda: outcome.append(_chat_until_killed(first.port, seen, lock))
    )
    chat.start()
    deadline = time.monotonic() + 20
    while len(seen) < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(seen) >= 500, "the load never got going"
    first.kill()  # SIGKILL, mid-load
    chat.join(60)
    assert not chat.is_alive()
    assert outcome == [[]], outcome
    with lock:
        echoed = dict(seen)

    second = server_process(
        "--port", "0", "--db", str(db), "--rate-limit", "0", "--address-rate", "0"
    )
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT id, text FROM messages").fetchall())
    missing = {i: t for i, t in echoed.items() if stored.get(i) != t}
    assert not missing, f"{len(missing)} echoed messages lost, e.g. {list(missing.items())[:3]}"
    # each user's stored messages are a prefix of what it sent, in id order: nothing reordered
    for i in range(CLIENTS):
        mine = [int(t.split(" m")[1]) for _, t in sorted(stored.items()) if t.startswith(f"u{i} ")]
        assert mine == list(range(len(mine)))
    client = WireClient(second.port)
    client.login("after")
    client.send("msg", "after the crash")
    new_id = client.expect("message")["id"]
    assert new_id > max(stored), "ids must carry on after the restart"
    client.close()
    assert second.stop() == 0
