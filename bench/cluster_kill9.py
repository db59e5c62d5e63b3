"""kill -9 of a cluster node, N rounds: nothing echoed is lost, its users' names come free.

One redis-server (AOF, ``appendfsync always``) and one surviving node run throughout; each round
starts a fresh node, logs three users in on it who send messages with nonces as fast as they
can, reads their echoes, kills the node with SIGKILL mid-flood, and then checks through the
survivor: a watcher there hears each user's leave event, each name can be logged in again, and
every message any client saw echoed is in the history, once.  Reported per round: echoed
messages, how long the leave events and the free names took after the kill (they wait for the
lease, ``--lease``), and how many echoed messages were missing (must be 0).

Run:  .venv/bin/python bench/cluster_kill9.py --rounds 10     (about 30 s)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cluster_load import redis_server, server  # noqa: E402 - a sibling script

from tests.wire import WireClient  # noqa: E402


def login(port: int, name: str) -> WireClient:
    client = WireClient(port)
    client.send("login", name, client="bench/1.0")
    answer = client.recv(10)
    if answer.get("response") != "info":
        raise RuntimeError(f"login {name}: {answer}")
    client.expect("history", 10)
    return client


def flood(client: WireClient, name: str, echoed: list[int], stop: threading.Event) -> None:
    """Send ten messages with nonces, read until their echoes are back; until the node dies."""
    sent = 0
    try:
        while not stop.is_set() and sent < 5000:
            for _ in range(10):
                client.send("msg", f"{name} {sent}", nonce=f"{sent}")
                sent += 1
            while len(echoed) < sent:
                obj = client.recv(5)
                if obj.get("response") == "message" and obj.get("sender") == name:
                    echoed.append(int(obj["id"]))
    except (OSError, AssertionError):
        pass  # the node was killed


def stored_ids(client: WireClient, since: int) -> list[int]:
    """Every stored id from ``since`` on, paging back through ``history``."""
    ids: list[int] = []
    before: int | None = None
    for _ in range(1000):
        extra = {} if before is None else {"before": before}
        client.send("history", limit=200, **extra)
        page = client.expect("history", 10)
        got = [int(json.loads(item)["id"]) for item in page["content"]]
        ids = got + ids
        if not got or not page.get("more") or got[0] <= since:
            break
        before = got[0]
    return [i for i in ids if i >= since]


def one_round(index: int, node_args: list[str], survivor: int, lease: float) -> dict[str, Any]:
    watcher = login(survivor, f"watcher{index}")
    names = [f"victim{index}x{i}" for i in range(3)]
    with server(node_args) as (pid, port):
        clients = [login(port, name) for name in names]
        echoed: list[list[int]] = [[] for _ in names]
        stop = threading.Event()
        threads = [
            threading.Thread(target=flood, args=(c, n, e, stop), daemon=True)
            for c, n, e in zip(clients, names, echoed, strict=True)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        stop.set()
        for thread in threads:
            thread.join(10)
    waiting = set(names)
    deadline = killed + lease * 4 + 5
    while waiting and time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            obj = watcher.recv(0.5)
            if obj.get("event") == "leave":
                waiting.discard(obj.get("user", ""))
    leaves_s = time.monotonic() - killed
    again = login(survivor, names[0])
    free_s = time.monotonic() - killed
    seen = sorted({i for ids in echoed for i in ids})
    stored = stored_ids(again, seen[0] if seen else 1 << 62)
    missing = set(seen) - set(stored)
    for client in (watcher, again):
        client.close()
    return {
        "round": index,
        "echoed": sum(len(ids) for ids in echoed),
        "leaves_heard": len(names) - len(waiting),
        "leaves_s": round(leaves_s, 2),
        "name_free_s": round(free_s, 2),
        "missing": len(missing),
        "duplicates": len(stored) - len(set(stored)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--lease", type=float, default=2.0, help="--redis-lease of every node")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tkchat-cluster-kill9-"))
        _, url = stack.enter_context(redis_server(Path(tmp)))
        node_args = ["--db", ":memory:", "--redis", url, "--redis-lease", str(args.lease)]
        _, survivor = stack.enter_context(server(node_args))
        for index in range(args.rounds):
            rows.append(one_round(index, node_args, survivor, args.lease))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"{'round':>5} {'echoed':>7} {'leaves':>6} {'leaves s':>8} {'free s':>7} {'missing':>7}")
    for r in rows:
        print(
            f"{r['round']:>5} {r['echoed']:>7} {r['leaves_heard']:>4}/3 {r['leaves_s']:>8} "
            f"{r['name_free_s']:>7} {r['missing'] + r['duplicates']:>7}"
        )
    lost = sum(r["missing"] + r["duplicates"] for r in rows)
    print(f"{len(rows)} rounds, lease {args.lease:g} s: echoed messages missing or twice: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
